"""Segment ICP refinement of the flow (traceany_ros.tracker.icp) on ray-cast synthetic RGB-D frames."""
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from traceany_ros.episode import FrameWindow
from traceany_ros.tracker.flow import TRACKERS, FlowConfig, track_window
from traceany_ros.tracker.icp import IcpConfig, IcpFrame, constraint, depth_segments, refine_flow

H, W = 96, 128
K = np.array([[110.0, 0, (W - 1) / 2], [0, 110.0, (H - 1) / 2], [0, 0, 1]])


def _rays():
    rows, cols = np.mgrid[0:H, 0:W]
    return np.stack([(cols - K[0, 2]) / K[0, 0], (rows - K[1, 2]) / K[1, 1], np.ones((H, W))], -1)


def _render(R, centre, half=(0.06, 0.04, 0.05), wall=1.2):
    """Depth and grey of a checkered box (pose R, centre; camera frame = world) before a plain wall.

    Returns depth [H,W], grey [H,W] uint8 and the box's own coordinates of each box pixel (NaN elsewhere)."""
    d = _rays()
    half = np.asarray(half)
    o = -(R.T @ centre)                       # camera origin in box coordinates
    db = d @ R                                # ray directions in box coordinates
    with np.errstate(divide="ignore", invalid="ignore"):
        t1, t2 = (-half - o) / db, (half - o) / db
    tmin = np.nanmax(np.minimum(t1, t2), -1)
    tmax = np.nanmin(np.maximum(t1, t2), -1)
    hit = (tmax >= tmin) & (tmin > 0)
    depth = np.full((H, W), wall)
    depth[hit] = tmin[hit]                    # rays have z = 1, so t is the z-depth
    local = np.where(hit[..., None], o + tmin[..., None] * db, np.nan)
    grey = np.full((H, W), 90.0)
    check = (np.floor(local[hit] / 0.02).astype(int).sum(-1) % 2)
    grey[hit] = 60.0 + 120.0 * check + 40.0 * (local[hit][:, 0] / half[0])
    return depth.astype(np.float32), grey.astype(np.uint8), local


def _box_pair(turn_deg=10.0):
    R0 = Rotation.from_euler("xyz", [35, 30, 0], degrees=True).as_matrix()
    spin = Rotation.from_rotvec(np.radians(turn_deg) * R0[:, 2]).as_matrix()  # about the box's own z axis
    centre = np.array([0.0, 0.0, 0.6])
    return (R0, centre), (spin @ R0, centre)


def _gt_flow(pose1, local):
    """Flow of the box pixels of frame 0 (box coordinates ``local``) into frame 1 (NaN off the box)."""
    R1, c1 = pose1
    p1 = local @ R1.T + c1
    u = K[0, 0] * p1[..., 0] / p1[..., 2] + K[0, 2]
    v = K[1, 1] * p1[..., 1] / p1[..., 2] + K[1, 2]
    rows, cols = np.mgrid[0:H, 0:W]
    return np.stack([u - cols, v - rows], -1)


def _turn_frames(turn_deg):
    """Two ICP frames of the box turning by turn_deg, its ground-truth flow and box mask."""
    pose0, pose1 = _box_pair(turn_deg)
    d0, g0, local0 = _render(*pose0)
    d1, g1, _ = _render(*pose1)
    gt = _gt_flow(pose1, local0)
    return (pose0, pose1), IcpFrame(d0, g0, K, np.eye(4)), IcpFrame(d1, g1, K, np.eye(4)), gt, np.isfinite(gt[..., 0])


def test_segments_cut_concave_folds_and_gaps_but_not_convex_ridges():
    d = _rays()
    a = np.abs(d[..., 0])
    valley = (1.0 / (1.0 + 0.5 * a)).astype(np.float32)     # z = 1 - 0.5 |x|: the fold is furthest (concave)
    ridge = (1.0 / (1.0 - 0.5 * a)).astype(np.float32)      # z = 1 + 0.5 |x|: the fold is nearest (convex)
    step = np.where(d[..., 0] < 0, 1.0, 1.3).astype(np.float32)
    big = lambda lab: sorted(np.bincount(lab[lab >= 0]))[::-1]  # noqa: E731
    v, r, s = big(depth_segments(valley, K)), big(depth_segments(ridge, K)), big(depth_segments(step, K))
    assert len(v) >= 2 and v[1] > 0.4 * H * W                 # two halves
    assert r[0] > 0.95 * H * W                                # one surface
    assert len(s) >= 2 and s[1] > 0.4 * H * W
    assert (depth_segments(np.zeros((H, W), np.float32), K) == -1).all()


def test_constraint_is_zero_for_a_plane_and_positive_for_a_box_corner():
    pose, _ = _box_pair()
    depth, grey, _ = _render(*pose)
    f = IcpFrame(depth, grey, K, np.eye(4))
    rng = np.random.default_rng(0)
    plane = np.c_[rng.uniform(-1, 1, (200, 2)), np.zeros(200)]
    assert constraint(plane, np.tile([0.0, 0.0, 1.0], (200, 1))) < 1e-9
    box = f.labels == f.labels[H // 2, W // 2]
    r, c = np.nonzero(box & f.normal_ok)
    assert constraint(f.world[r, c], f.normals[r, c]) > IcpConfig().min_constraint
    # the box is one registrable segment; the wall behind it is too big to register
    assert len(f.segments) == 1 and len(f.segments[0][0]) > 0.9 * box.sum()


@pytest.mark.parametrize("solver", ["batched", "open3d"])
def test_refine_flow_recovers_a_turn_the_flow_missed_and_leaves_the_rest(solver):
    _, fa, fb, gt, on_box = _turn_frames(20.0)
    still = np.zeros((H, W, 2), np.float32)                   # a flow that saw nothing move
    out, accepted = refine_flow(still, fa, fb, IcpConfig(solver=solver))
    err_before = np.linalg.norm(gt[on_box], axis=-1).mean()
    err_after = np.linalg.norm(out[on_box] - gt[on_box], axis=-1).mean()
    assert err_before > 2.0                                   # the turn moves box pixels by pixels
    assert err_after < 0.3 * err_before and accepted[on_box].mean() > 0.8
    assert not accepted[~on_box].any() and np.all(out[~on_box] == 0)
    # nothing moved: the flow stays (ICP cannot beat a motion that already explains frame b)
    same, acc_same = refine_flow(still, fa, fa, IcpConfig(solver=solver))
    assert not acc_same.any() and np.all(same == 0)


def test_refine_flow_keeps_the_flow_on_shapes_that_slide_along_themselves():
    d = _rays()
    plane = np.where(np.abs(d[..., 0]) < 0.15, 0.8, 1.2).astype(np.float32)  # a strip in front of a wall
    grey = np.full((H, W), 100, np.uint8)
    f = IcpFrame(plane, grey, K, np.eye(4), IcpConfig(max_share=0.5))
    assert f.segments == []                                   # a flat strip pins nothing along itself
    flow = np.full((H, W, 2), 1.5, np.float32)
    out, accepted = refine_flow(flow, f, f, IcpConfig(max_share=0.5))
    assert not accepted.any() and np.all(out == flow)


def test_tracker_with_icp_follows_a_turning_box_better():
    """Three frames of the box turning 10 degrees per frame; grey flow alone sees little of it."""
    poses = [_box_pair(0.0)[0]]
    for k in (1, 2):
        poses.append(_box_pair(10.0 * k)[1])
    frames = [_render(*p) for p in poses]
    rgb = np.stack([np.repeat(g[..., None], 3, -1) for _, g, _ in frames])
    depth = np.stack([d for d, _, _ in frames])
    window = FrameWindow(rgb=rgb, depth=depth, intrinsics=K.astype(np.float32),
                         cam_to_world=np.repeat(np.eye(4, dtype=np.float32)[None], 3, 0),
                         times=np.array([0.0, 0.1, 0.2]))
    local0 = frames[0][2]
    base = {**TRACKERS["rigid"], "depth_flow": True, "depth_flow_margin": 1.0, "stride": 4}
    errs = {}
    for icp in (False, True):
        points, _, alive, own_valid = track_window(window, FlowConfig(**base, icp=icp))
        grid = local0[2::4, 2::4]
        on = np.isfinite(grid[..., 0]) & own_valid[0]
        R2, c2 = poses[2]
        truth = grid[on] @ R2.T + c2
        errs[icp] = np.linalg.norm(points[0][on][:, 2] - truth, axis=-1).mean()
    assert errs[True] < 0.5 * errs[False]
    assert errs[True] < 0.005


@pytest.mark.parametrize("bad", [{"min_pixels": 0}, {"max_share": 0.0}, {"solver": "magic"}])
def test_icp_config_rejects_nonsense(bad):
    with pytest.raises(ValueError):
        IcpConfig(**bad)


def test_batched_icp_registers_each_set_onto_its_own_motion():
    """Two segments of one frame, started from identity and from a wrong guess, each land on the truth."""
    from traceany_ros.tracker.icp import register_batched

    (pose0, pose1), fa, fb, _, _ = _turn_frames(8.0)
    (R0, c0), (R1, c1) = pose0, pose1
    truth = np.eye(4)
    truth[:3, :3] = R1 @ R0.T
    truth[:3, 3] = c1 - truth[:3, :3] @ c0
    k = int(np.argmax(fa.sub_mask.sum(1)))                     # the box's largest face
    off = np.eye(4)
    off[:3, 3] = [0.004, -0.003, 0.002]
    starts = np.stack([np.eye(4), off @ truth, np.eye(4)])
    sub, mask = fa.sub_world[[k, k, k]], fa.sub_mask[[k, k, k]].copy()
    mask[2] = False                                           # a set with no points: not registered
    T, ok = register_batched(sub, mask, starts, fb, IcpConfig())
    assert ok.tolist() == [True, True, False]
    for j in (0, 1):
        moved = sub[j][mask[j]] @ T[j, :3, :3].T + T[j, :3, 3]
        true = sub[j][mask[j]] @ truth[:3, :3].T + truth[:3, 3]
        assert np.linalg.norm(moved - true, axis=-1).mean() < 0.002


def test_refine_flow_uses_a_second_start_where_the_flow_is_far_off():
    """A 35-degree turn is beyond ICP's reach from a zero flow; started near the truth as well (the
    tracker passes the inverse of the motion to the other neighbour frame) it lands on it."""
    from traceany_ros.tracker.icp import flow_motions

    (pose0, pose1), fa, fb, gt, on_box = _turn_frames(35.0)
    still = np.zeros((H, W, 2), np.float32)
    init = flow_motions(still, fa, fb)                        # what a flow that saw nothing implies
    (R0, c0), (R1, c1) = pose0, pose1
    truth = np.eye(4)
    truth[:3, :3] = R1 @ R0.T
    truth[:3, 3] = c1 - truth[:3, :3] @ c0
    near = Rotation.from_rotvec(np.radians(5.0) * np.array([0.0, 0.6, 0.8])).as_matrix()
    guess = truth.copy()
    guess[:3, :3] = near @ truth[:3, :3]
    guess[:3, 3] = c1 - guess[:3, :3] @ c0
    out_one, _ = refine_flow(still, fa, fb, init=init)
    out_two, acc_two = refine_flow(still, fa, fb, init=init, extra_init=guess[None].repeat(len(fa.segments), 0))
    # (a 35-degree turn hides part of the box: its true motion scores 1.57, which a score cap of 1.5
    # would refuse)
    err_one = np.linalg.norm(out_one[on_box] - gt[on_box], axis=-1).mean()
    err_two = np.linalg.norm(out_two[on_box] - gt[on_box], axis=-1).mean()
    assert err_two < 0.5 and acc_two[on_box].mean() > 0.8
    assert err_two < 0.5 * err_one


def test_scores_of_many_sets_rank_the_true_motion_first_and_ignore_padding():
    """_score_many: the box face moved by its true motion predicts frame b better than by no motion or a
    shifted one, and a set's padding (mask False, any values) changes nothing."""
    from traceany_ros.tracker.icp import _score_many

    (pose0, pose1), fa, fb, _, _ = _turn_frames(8.0)
    (R0, c0), (R1, c1) = pose0, pose1
    truth = np.eye(4)
    truth[:3, :3] = R1 @ R0.T
    truth[:3, 3] = c1 - truth[:3, :3] @ c0
    off = truth.copy()
    off[:3, 3] += [0.01, 0.0, 0.0]
    k = int(np.argmax(fa.sub_mask.sum(1)))
    sub, mask = fa.sub_world[[k] * 3], fa.sub_mask[[k] * 3]
    grey = fa.gray[fa.sub_rows[[k] * 3], fa.sub_cols[[k] * 3]]
    s = _score_many(np.stack([truth, np.eye(4), off]), sub, grey, mask, fb, IcpConfig())
    assert s[0] < s[1] and s[0] < s[2]
    n = int(mask[0].sum())
    padded_sub = np.concatenate([sub[:1, :n], np.full((1, 50, 3), 7.0)], 1)
    padded_mask = np.concatenate([np.ones((1, n), bool), np.zeros((1, 50), bool)], 1)
    padded_grey = np.concatenate([grey[:1, :n], np.full((1, 50), 99.0)], 1)
    alone = _score_many(truth[None], sub[:1, :n], grey[:1, :n], np.ones((1, n), bool), fb, IcpConfig())
    np.testing.assert_allclose(_score_many(truth[None], padded_sub, padded_grey, padded_mask, fb, IcpConfig()), alone,
                               rtol=1e-12)
    np.testing.assert_allclose(alone, s[:1], rtol=1e-12)
