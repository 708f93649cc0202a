"""The trajectory-field network: shapes, the static hypothesis, anchoring, the spline fit, forecasts,
checkpoints (round trip, the refused hybrid), independence from OpenCV."""
import subprocess
import sys

import numpy as np
import pytest
import torch

from traceany_ros.checkpoint_file import CheckpointError, save_checkpoint
from traceany_ros.episode import FrameWindow, save_episode
from traceany_ros.field import bspline_basis, evaluate
from traceany_ros.geometry import grid_points_world
from traceany_ros.model import ModelConfig, TraceModel, load_checkpoint, predict_field, save_model, window_tensors
from traceany_ros.model.network import convex_upsample, fit_matrix
from traceany_ros.sim.synthetic import make_synthetic_episode

SMALL = dict(name="test", channels=(8, 16, 16), feat_dim=16, dim=16, heads=2, layers=1, iterations=2, radius=1,
             levels=2)


@pytest.fixture(scope="module")
def window():
    ep = make_synthetic_episode(num_frames=5, height=64, width=96, seed=2, num_queries=16)
    w = ep.inputs()
    return FrameWindow(w.rgb, w.depth, w.intrinsics, w.cam_to_world, w.times)


def _randomise(model):
    with torch.no_grad():  # the heads start at zero (the static hypothesis); make them say something
        for head in (model.pair_head, model.cell_head):
            head.weight.normal_(0, 0.3)
            head.bias.normal_(0, 0.3)
        model.cell_head.bias[0] = 3.0  # moving
    return model


def test_forward_shapes(window):
    model = TraceModel(ModelConfig(**SMALL))
    out = model(window_tensors(window), return_all=True)
    T, h, w = 5, 64 // 8, 96 // 8
    assert out["offsets"].shape == (1, T, h, w, 10, 3)
    assert out["positions"].shape == (1, T, h, w, T, 3)
    assert out["visibility_logit"].shape == (1, T, h, w, T)
    assert out["motion_logit"].shape == out["confidence_logit"].shape == (1, T, h, w)
    assert len(out["iterates"]) == 2 and out["iterates"][0].shape == (1, T, h // 2, w // 2, T, 3)


def test_untrained_network_is_the_static_hypothesis(window):
    """Zero heads: every curve stays at its cell's own unprojected point, whatever the camera does."""
    model = TraceModel(ModelConfig(**SMALL))
    field = predict_field(model, window)
    pts, valid = grid_points_world(window, 8, 4)
    cp = field.control_points
    assert cp.shape == pts.shape[:3] + (10, 3)
    assert np.abs(cp[valid] - pts[valid][:, None]).max() < 1e-4
    assert np.all((field.confidence >= 0) & (field.confidence <= 1))
    assert field.motion.shape == field.confidence.shape and field.visibility.shape == cp.shape[:3] + (5,)


def test_curves_pass_through_each_cells_own_point(window):
    model = _randomise(TraceModel(ModelConfig(**SMALL, hard_gate=False)))
    field = predict_field(model, window)
    pts, valid = grid_points_world(window, 8, 4)
    assert np.abs(field.control_points - field.control_points[:, :, :, :1]).max() > 1e-3  # the curves do move
    own = field.frame_points()
    assert np.abs(own[valid] - pts[valid]).max() < 1e-4


def test_hard_gate_keeps_static_cells_exactly_still(window):
    model = _randomise(TraceModel(ModelConfig(**SMALL)))
    with torch.no_grad():
        model.cell_head.bias[0] = -3.0  # every cell static
    field = predict_field(model, window)
    spread = np.abs(field.control_points - field.control_points[:, :, :, :1]).max()
    assert spread < 1e-5


def test_fit_reproduces_linear_motion_and_handles_few_frames():
    K = 10
    s = torch.linspace(0, 1, 12)[None]
    pos = torch.stack([torch.linspace(0, 1, 12), 2 * torch.linspace(0, 1, 12), torch.zeros(12)], -1)
    cp = fit_matrix(s, K, 1e-3)[0] @ pos
    back = bspline_basis(s[0].double(), K).float() @ cp
    assert torch.allclose(back, pos, atol=1e-5)
    few = torch.tensor([[0.0, 0.4, 1.0]])  # fewer frames than control points: still a defined, smooth fit
    M = fit_matrix(few, K, 1e-3)
    assert torch.isfinite(M).all()
    p3 = torch.tensor([[0.0, 0, 0], [0.4, 0, 0], [1.0, 0, 0]])
    assert torch.allclose(bspline_basis(few[0].double(), K).float() @ (M[0] @ p3), p3, atol=1e-3)


def test_convex_upsample_keeps_constants_and_stays_inside_neighbours():
    x = torch.full((1, 3, 4, 5), 2.5)
    mask = torch.randn(1, 9, 8, 10)
    assert torch.allclose(convex_upsample(x, mask), torch.full((1, 3, 8, 10), 2.5))
    x = torch.rand(1, 1, 4, 5)
    up = convex_upsample(x, torch.randn(1, 9, 8, 10) * 5)
    assert float(up.min()) >= 0.0 and float(up.max()) <= float(x.max()) + 1e-6


def test_forecast_extends_the_time_span(window):
    model = _randomise(TraceModel(ModelConfig(**SMALL, hard_gate=False)))
    plain = predict_field(model, window)
    ahead = predict_field(model, window, future_s=0.3)
    t = np.asarray(window.times)
    assert plain.time_span == pytest.approx((t[0], t[-1]))
    assert ahead.time_span == pytest.approx((t[0], t[-1] + 0.3))
    assert ahead.control_points.shape == plain.control_points.shape  # the same observed frames' cells


def test_checkpoint_round_trip(window, tmp_path):
    model = _randomise(TraceModel(ModelConfig(**SMALL)))
    path = save_model(tmp_path / "m.pt", model, data={"what": "test"})
    back, meta = load_checkpoint(path)
    assert back.config == model.config and meta["data"] == {"what": "test"}
    a, b = predict_field(model, window), predict_field(back, window)
    np.testing.assert_array_equal(a.control_points, b.control_points)


def test_old_hybrid_checkpoint_is_refused_with_what_to_do(tmp_path):
    class Old(torch.nn.Module):
        def __init__(self):
            super().__init__()
            from dataclasses import make_dataclass

            self.config = make_dataclass("C", [("name", str, "tiny"), ("flow_prior", bool, True),
                                               ("patch_size", int, 16)])()
            self.lin = torch.nn.Linear(2, 2)

    path = save_checkpoint(tmp_path / "old.pt", Old())
    with pytest.raises(CheckpointError, match="hybrid.*(traceany train|flow-rigid)"):
        load_checkpoint(path)
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(tmp_path / "bad.pt")


def test_predict_runs_where_opencv_cannot_be_imported(tmp_path):
    """Also on key frames (10 frames: a window longer than 8) and zoomed."""
    ep = make_synthetic_episode(num_frames=10, height=48, width=64, seed=1, num_queries=8)
    save_episode(tmp_path / "ep.npz", ep)
    ck = save_model(tmp_path / "m.pt", TraceModel(ModelConfig(**SMALL)))
    code = ("import sys; sys.modules['cv2'] = None\n"
            "from traceany_ros.cli import main\n"
            f"rc = main(['predict', '--input', {str(tmp_path / 'ep.npz')!r}, '--output', {str(tmp_path / 'p.npz')!r},"
            f" '--method', 'model', '--checkpoint', {str(ck)!r}, '--zoom', '2'])\n"
            "assert 'cv2' not in sys.modules or sys.modules['cv2'] is None\n"
            "sys.exit(rc)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "p.npz").is_file()


def test_curves_evaluate_as_the_field_says(window):
    """The network's curves are the project's B-spline: evaluating its control points at its frame times
    gives the per-frame positions the fit was made from, up to the fit's smoothing."""
    model = _randomise(TraceModel(ModelConfig(**SMALL, hard_gate=False)))
    model.eval()
    with torch.no_grad():
        out = model(window_tensors(window))
    cp = out["points"][..., None, :] + out["offsets"]
    pos = evaluate(cp, out["norm"].s[0])
    assert pos.shape == out["positions"].shape
    assert torch.isfinite(pos).all()


def test_a_network_grown_by_cell_attention_computes_what_it_did(window):
    """Weights of a network without the attention across cells load into one with it; the added blocks
    start as the identity, and weights of another shape are refused."""
    torch.manual_seed(0)
    old = _randomise(TraceModel(ModelConfig(**SMALL)))
    new = TraceModel(ModelConfig(**SMALL, cell_attention=True))
    assert new.grow_from(old.state_dict()) == ["cell_blocks"]
    old.train(), new.train()
    with torch.no_grad():
        a, b = old(window_tensors(window)), new(window_tensors(window))
    assert torch.allclose(a["offsets"], b["offsets"], atol=1e-6) and a["offsets"].abs().max() > 1e-3
    with torch.no_grad():  # once trained, the block changes the answer
        for blk in new.cell_blocks:
            blk.proj.weight.normal_(0, 0.3)
        assert not torch.allclose(a["offsets"], new(window_tensors(window))["offsets"], atol=1e-4)
    # and by the global argmax candidate: its inputs start with zero weights and its option without weight
    both = TraceModel(ModelConfig(**SMALL, cell_attention=True, global_argmax=True))
    assert both.grow_from(old.state_dict()) == ["cell_blocks", "global_argmax"]
    both.train()
    with torch.no_grad():
        c = both(window_tensors(window), return_all=True)
    assert torch.allclose(a["offsets"], c["offsets"], atol=2e-3)  # the new option: weight ~e^-8 of the others
    assert c["proposals"][0].shape[-2] == 2 + 2 and float(c["weights"][0][..., -1].max()) < 1e-3
    partial = {k: v for k, v in old.state_dict().items() if k != "cell_head.bias"}
    with pytest.raises(RuntimeError, match="do not match.*cell_head.bias"):
        new.grow_from(partial)
    wider = TraceModel(ModelConfig(**{**SMALL, "dim": 24, "heads": 2}))
    with pytest.raises(RuntimeError, match="do not match|size mismatch"):
        new.grow_from(wider.state_dict())


def test_top_selection_moves_each_estimate_by_one_candidate_alone(window):
    """selection="top": a pass moves every estimate to exactly one candidate (the top-weighted), not a blend."""
    torch.manual_seed(0)
    model = _randomise(TraceModel(ModelConfig(**SMALL)))
    L = model.config.levels
    with torch.no_grad():  # no residual: the move is the chosen candidate's alone
        model.pair_head.weight[L + 2: L + 5] = 0
        model.pair_head.bias[L + 2: L + 5] = 0
        top = model(window_tensors(window), return_all=True, selection="top")
        blend = model(window_tensors(window), return_all=True)
    own = top["coarse_points"][..., None, :]                                   # [B,I,h,w,1,3]
    options = torch.cat([own.expand_as(top["iterates"][0])[..., None, :], top["proposals"][0]], -2)
    k = top["weights"][0].argmax(-1)                                           # [B,I,h,w,T]
    chosen = torch.gather(options, -2, k[..., None, None].expand(*k.shape, 1, 3))[..., 0, :]
    T = k.shape[-1]
    not_own = ~torch.eye(T, dtype=torch.bool)[None, :, None, None, :].expand_as(k)
    assert torch.allclose(top["iterates"][0][not_own], chosen[not_own], atol=1e-5)
    assert (k[not_own] > 0).any()  # some estimates did move
    assert not torch.allclose(blend["iterates"][0][not_own], chosen[not_own], atol=1e-3)
    with pytest.raises(ValueError, match="selection must be one of"):
        model(window_tensors(window), selection="argmax")
