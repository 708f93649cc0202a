"""The learned coarse matcher: symmetry, ground-truth matches, training/resume, checkpoints, DIS refinement."""
import json

import numpy as np
import pytest
import torch

from traceany_ros.checkpoint_file import CheckpointError
from traceany_ros.tracker.flow import FlowConfig, learned_flow, track_window
from traceany_ros.tracker.matcher import Matcher, MatcherConfig, load_matcher, match_pair, match_window, save_matcher
from traceany_ros.tracker.train_matcher import MatcherTrainConfig, coarse_matches, train_matcher

F_PX = 100.0
SHIFT_M = 0.24  # the square, 0.8 m from the camera, moves 30 px per frame
Z_CARD = 0.8
SHIFT_PX = SHIFT_M / Z_CARD * F_PX


def _texture(rng, shape, block):
    small = rng.integers(0, 256, (shape[0] // block + 1, shape[1] // block + 1, 3))
    return np.kron(small, np.ones((block, block, 1)))[:shape[0], :shape[1]].astype(np.uint8)


def plane_episode(T=4, H=64, W=96, seed=0):
    """Camera looking straight down (+z) at a textured floor 1 m away; a textured square (link 1) 0.8 m away
    slides along +x by SHIFT_M per frame. Arrays as an episode .npz with the gt extras."""
    rng = np.random.default_rng(seed)
    K = np.array([[F_PX, 0, (W - 1) / 2], [0, F_PX, (H - 1) / 2], [0, 0, 1]], np.float32)
    floor, card = _texture(rng, (400, 400), 6), _texture(rng, (200, 200), 4)
    rows, cols = np.mgrid[0:H, 0:W]
    x, y = (cols - K[0, 2]) / F_PX, (rows - K[1, 2]) / F_PX  # world = camera frame, z = 1
    rgb = np.zeros((T, H, W, 3), np.uint8)
    labels = np.zeros((T, H, W), np.int32)
    depth = np.ones((T, H, W), np.float32)
    poses = np.tile(np.eye(4, dtype=np.float32), (2, T, 1, 1))
    for t in range(T):
        cx = -0.3 + SHIFT_M * t
        poses[1, t, 0, 3] = cx
        lx, ly = x * Z_CARD - cx, y * Z_CARD
        inside = (np.abs(lx) < 0.12) & (np.abs(ly) < 0.12)
        labels[t] = inside
        depth[t] = np.where(inside, Z_CARD, 1.0)
        ci = np.clip(((lx + 0.12) * 800).astype(int), 0, 199)
        ri = np.clip(((ly + 0.12) * 800).astype(int), 0, 199)
        fi_c = np.clip(((x + 1) * 200).astype(int), 0, 399)
        fi_r = np.clip(((y + 1) * 200).astype(int), 0, 399)
        rgb[t] = np.where(inside[..., None], card[ri, ci], floor[fi_r, fi_c])
    return {"rgb": rgb, "depth": depth, "intrinsics": K,
            "cam_to_world": np.tile(np.eye(4, dtype=np.float32), (T, 1, 1)), "gt_labels": labels,
            "gt_link_poses": poses, "timestamps": np.arange(T) / 10.0}


@pytest.mark.parametrize("scale", [1, 2])
def test_match_pair_is_symmetric(scale):
    torch.manual_seed(0)
    model = Matcher(MatcherConfig(dim=32, layers=1, heads=2, input_scale=scale)).eval()
    ep = plane_episode()
    f01, f10, c01, c10 = match_pair(model, ep["rgb"][0], ep["depth"][0], ep["rgb"][1], ep["depth"][1])
    g01, g10, d01, d10 = match_pair(model, ep["rgb"][1], ep["depth"][1], ep["rgb"][0], ep["depth"][0])
    assert f01.shape == (64, 96, 2) and c01.shape == (64, 96)
    np.testing.assert_allclose(f10, g01, atol=1e-3)
    np.testing.assert_allclose(c10, d01, atol=1e-5)
    assert np.all((c01 >= 0) & (c01 <= 1))
    # the clip form (CNN once per frame, pairs batched) gives the pairwise flows
    flows = match_window(model, ep["rgb"], ep["depth"], batch=2)
    assert sorted(flows) == [(0, 1), (1, 0), (1, 2), (2, 1), (2, 3), (3, 2)]
    np.testing.assert_allclose(flows[0, 1], f01, atol=1e-3)
    np.testing.assert_allclose(flows[1, 0], f10, atol=1e-3)
    h01, _, _, _ = match_pair(model, ep["rgb"][2], ep["depth"][2], ep["rgb"][3], ep["depth"][3])
    np.testing.assert_allclose(flows[2, 3], h01, atol=1e-3)


def test_match_pair_refuses_mismatched_frames():
    model = Matcher(MatcherConfig(dim=32, layers=1, heads=2)).eval()
    ep = plane_episode()
    with pytest.raises(ValueError, match="one size"):
        match_pair(model, ep["rgb"][0], ep["depth"][0], ep["rgb"][1][:32], ep["depth"][1][:32])
    # sizes that are not a multiple of the cell size are padded inside and cropped back
    f01, f10, c01, _ = match_pair(model, ep["rgb"][0][:60, :90], ep["depth"][0][:60, :90], ep["rgb"][1][:60, :90],
                                  ep["depth"][1][:60, :90])
    assert f01.shape == (60, 90, 2) and f10.shape == (60, 90, 2) and c01.shape == (60, 90)
    half = Matcher(MatcherConfig(dim=32, layers=1, heads=2, input_scale=2)).eval()
    flows = match_window(half, ep["rgb"][:, :57, :91], ep["depth"][:, :57, :91])
    assert flows[0, 1].shape == (57, 91, 2) and np.isfinite(flows[0, 1]).all()


def test_coarse_matches_move_with_the_links():
    ep = plane_episode()
    m = coarse_matches(ep, 1, 2)  # cells of frame 1 in frame 2
    r = 4 + 8 * np.arange(8)[:, None].repeat(12, 1).reshape(-1)
    c = 4 + 8 * np.arange(12)[None, :].repeat(8, 0).reshape(-1)
    on_card = ep["gt_labels"][1][r, c] == 1
    ok = np.isfinite(m[:, 0])
    assert on_card.any() and (on_card & ok).any()
    np.testing.assert_allclose(m[ok & on_card, 1] - c[ok & on_card], SHIFT_PX, atol=1e-3)
    np.testing.assert_allclose(m[ok & ~on_card, 1], c[ok & ~on_card], atol=1e-3)
    np.testing.assert_allclose(m[ok, 0], r[ok], atol=1e-3)
    assert np.all(m[ok & on_card, 2] == 1) and np.all(m[ok & ~on_card, 2] == 0)
    # floor cells that the card covers in frame 2 are occluded there: no match
    covered = ~on_card & (ep["gt_labels"][2][r, c] == 1)
    assert covered.any() and not ok[covered].any()


def test_training_learns_the_shift_resumes_and_checkpoints(tmp_path):
    data = tmp_path / "train"
    data.mkdir()
    for s in range(2):
        np.savez(data / f"ep_{s:06d}.npz", **plane_episode(seed=s))
    out = tmp_path / "run"
    cfg = dict(data=str(data), val_data=str(data), out=str(out), batch_size=4, lr=3e-3, val_every=30, progress=False,
               threads=1)
    first = train_matcher(MatcherTrainConfig(steps=30, **cfg), MatcherConfig(dim=32, layers=1, heads=2))
    last = train_matcher(MatcherTrainConfig(steps=150, **cfg), MatcherConfig(dim=32, layers=1, heads=2))
    log = json.loads((out / "log.json").read_text())
    steps = [e["step"] for e in log["train"]]
    assert steps == list(range(1, 151))  # resumed at 31, no step repeated
    assert [v["step"] for v in log["val"]] == [30, 60, 90, 120, 150]
    assert last["loss"] < first["loss"]
    assert last["acc_big"] > 0.8, last  # the 30 px moves of the card are found
    assert (out / "curves.png").stat().st_size > 0

    model, meta = load_matcher(out / "matcher.pt")
    assert meta["kind"] == "matcher" and meta["train"]["step"] == 150
    ep = plane_episode(seed=0)
    f01, _, _, _ = match_pair(model, ep["rgb"][1], ep["depth"][1], ep["rgb"][2], ep["depth"][2])
    card = (ep["gt_labels"][1] == 1) & (ep["gt_labels"][2][:, np.clip(np.arange(96) + 30, 0, 95)] == 1)
    assert np.median(np.abs(f01[card][:, 0] - SHIFT_PX)) < 8  # within one cell before refinement

    bad = tmp_path / "bad.pt"
    bad.write_bytes((out / "matcher.pt").read_bytes()[:200])
    with pytest.raises(CheckpointError, match="corrupt"):
        load_matcher(bad)
    other = tmp_path / "other.pt"
    save_matcher(other, Matcher(MatcherConfig(dim=32, layers=1, heads=2)))
    ck = torch.load(other, weights_only=True)
    ck["kind"] = "model"
    torch.save(ck, other)
    with pytest.raises(CheckpointError, match="not a matcher"):
        load_matcher(other)


def test_learned_flow_refines_a_coarse_start_that_dis_alone_misses():
    import cv2

    rng = np.random.default_rng(1)
    tex = cv2.GaussianBlur(rng.integers(0, 256, (192, 256)).astype(np.uint8), (5, 5), 0)
    a = np.full((192, 256), 128, np.uint8)
    b = a.copy()
    a[50:130, 60:120] = tex[50:130, 60:120]
    b[50:130, 100:160] = tex[50:130, 60:120]  # the patch moves 40 px right
    plain = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM).calc(a, b, None)
    coarse = np.zeros((192, 256, 2), np.float32)
    coarse[..., 0] = 36.0  # a coarse match one cell off
    refined = learned_flow(a, b, coarse)
    inner = (slice(60, 120), slice(70, 110))
    assert np.median(np.abs(plain[inner][..., 0] - 40)) > 20  # DIS alone sees no large move
    assert np.median(np.abs(refined[inner][..., 0] - 40)) < 0.5
    assert np.median(np.abs(refined[inner][..., 1])) < 0.5


def test_learned_matches_need_a_dis_method():
    with pytest.raises(ValueError, match="farneback"):
        FlowConfig(learned_matches=True, method="farneback")


def test_learned_matches_reach_the_tracker(tmp_path, monkeypatch):
    import traceany_ros.tracker.matcher as matcher_module

    calls = []
    real = matcher_module.match_window

    def spy(model, rgb, depth):
        calls.append(len(rgb))
        return real(model, rgb, depth)

    monkeypatch.setattr(matcher_module, "match_window", spy)
    path = tmp_path / "m.pt"
    torch.manual_seed(0)
    save_matcher(path, Matcher(MatcherConfig(dim=32, layers=1, heads=2)))
    from traceany_ros.sim.synthetic import make_synthetic_episode

    ep = make_synthetic_episode(num_frames=5, height=64, width=96, seed=3)
    points, weights, alive, valid = track_window(ep.inputs(), FlowConfig(stride=8, learned_matches=True,
                                                                          matcher=str(path), depth_flow=True))
    assert calls == [5]  # one matcher pass over the window serves every pair, both directions
    assert points.shape == (5, 8, 12, 5, 3) and np.isfinite(points).all()
