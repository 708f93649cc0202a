"""The trajectory-field network: shapes, anchoring, world-frame fields, checkpoints."""
import numpy as np
import pytest
import torch

from traceany_ros.backends import make_backend
from traceany_ros.checkpoint_file import CheckpointError, save_checkpoint
from traceany_ros.field import evaluate
from traceany_ros.geometry import grid_points_world
from traceany_ros.model import ModelConfig, TraceModel, load_checkpoint
from traceany_ros.sim.synthetic import make_synthetic_episode

SMALL = dict(name="test", dim=32, heads=2, encoder_layers=1, decoder_layers=1, head_channels=8)


def _randomise_head(model):
    with torch.no_grad():  # the output layer starts at zero (static); make it say something
        model.out.weight.normal_(0, 0.5)
        model.out.bias.normal_(0, 0.5)
    return model


@pytest.mark.parametrize("T,H,W,K", [(1, 32, 48, 10), (3, 64, 32, 4), (5, 32, 32, 7)])
def test_forward_shapes_any_frame_count(T, H, W, K):
    model = _randomise_head(TraceModel(ModelConfig(num_control_points=K, **SMALL)))
    out = model(torch.randn(2, T, 7, H, W), torch.linspace(0, 1, T).expand(2, T))
    assert out["offsets"].shape == (2, T, H // 4, W // 4, K, 3)
    assert out["confidence"].shape == (2, T, H // 4, W // 4)
    assert out["time"].shape == (2, T)
    assert torch.all(out["confidence"] >= 1.0)
    assert torch.all((out["motion"] > 0) & (out["motion"] < 1))


def test_offsets_are_anchored_at_own_frame():
    T = 4
    model = _randomise_head(TraceModel(ModelConfig(**SMALL)))
    s = torch.tensor([[0.0, 0.3, 0.7, 1.0]])
    out = model(torch.randn(1, T, 7, 32, 32), s)
    off = out["offsets"][0]
    assert float(off.detach().abs().max()) > 1e-3  # the curves do move
    for f in range(T):
        at_own = evaluate(off[f], s[0, f:f + 1])  # [h,w,1,3]
        assert float(at_own.abs().max()) < 1e-5


def test_size_not_multiple_of_patch_is_refused():
    model = TraceModel(ModelConfig(**SMALL))
    with pytest.raises(ValueError, match="multiple of the patch size"):
        model(torch.randn(1, 2, 7, 40, 32), torch.tensor([[0.0, 1.0]]))


def test_rgb_only_model_takes_three_channels():
    model = TraceModel(ModelConfig(use_depth=False, **SMALL))
    assert model(torch.randn(1, 2, 3, 32, 32), torch.tensor([[0.0, 1.0]]))["offsets"].shape[:2] == (1, 2)
    with pytest.raises(ValueError, match="image channels"):
        model(torch.randn(1, 2, 7, 32, 32), torch.tensor([[0.0, 1.0]]))


def test_predict_field_is_world_frame_and_passes_through_own_points():
    ep = make_synthetic_episode(num_frames=5, height=40, width=72, seed=4, camera_velocity=(0.1, 0.0))
    model = _randomise_head(TraceModel(ModelConfig(**SMALL)))
    field = model.predict_field(ep.inputs())  # 40x72 is padded to 48x80 internally
    assert field.control_points.shape == (5, 10, 18, 10, 3)
    assert field.time_span == (ep.timestamps[0], ep.timestamps[-1])
    base, valid = grid_points_world(ep.inputs(), 4, 2)
    np.testing.assert_allclose(field.frame_points(), base, atol=1e-4)
    assert np.ptp(field.control_points, axis=3).max() > 1e-3  # not trivially static


def test_untrained_backend_equals_static():
    ep = make_synthetic_episode(num_frames=4, height=32, width=48, seed=5)
    from traceany_ros.predict import predict_episode
    a, _ = predict_episode(ep, make_backend("model", preset="tiny-pure"))
    b, _ = predict_episode(ep, make_backend("static"))
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_checkpoint_round_trip(tmp_path):
    model = _randomise_head(TraceModel(ModelConfig(**SMALL))).eval()
    path = save_checkpoint(tmp_path / "m.pt", model, data={"train_dir": "somewhere", "train_episodes": 3},
                           train={"step": 7})
    loaded, meta = load_checkpoint(path)
    assert loaded.config == model.config
    assert meta["data"]["train_episodes"] == 3 and meta["train"]["step"] == 7
    assert isinstance(meta["git_commit"], str) and meta["git_commit"]
    x, s = torch.randn(1, 2, 7, 32, 32), torch.tensor([[0.0, 1.0]])
    with torch.no_grad():
        torch.testing.assert_close(loaded.eval()(x, s)["offsets"], model(x, s)["offsets"])


def test_corrupt_and_mismatched_checkpoints_fail_clearly(tmp_path):
    model = TraceModel(ModelConfig(**SMALL))
    good = save_checkpoint(tmp_path / "good.pt", model)
    data = good.read_bytes()
    trunc = tmp_path / "truncated.pt"
    trunc.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(trunc)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint at all" * 10)
    with pytest.raises(CheckpointError, match="not a readable traceany checkpoint"):
        load_checkpoint(junk)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    with pytest.raises(CheckpointError, match="not a traceany checkpoint"):
        load_checkpoint(foreign)
    ck = torch.load(good, weights_only=True)
    ck["config"]["dim"] = 64  # weights no longer fit the config
    bad = tmp_path / "mismatch.pt"
    torch.save(ck, bad)
    with pytest.raises(CheckpointError, match="do not match"):
        load_checkpoint(bad)
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt")


@pytest.mark.parametrize("anchor", ["constant", "local"])
@pytest.mark.parametrize("tracker,baseline", [("plain", "flow"), ("offline", "flow-rigid")])
def test_flow_prior_model_starts_from_the_flow_baseline(tracker, baseline, anchor):
    """With a zero residual and an open gate the tiny preset predicts its prior's curves, made to pass
    through each cell's own point: shifted whole ("constant") or only where the basis is non-zero at
    the own time ("local": the other control points are the prior's own)."""
    import dataclasses

    from traceany_ros.field import bspline_basis

    ep = make_synthetic_episode(num_frames=8, height=48, width=64, seed=7)
    backend = make_backend("model", preset="tiny")
    assert backend.model.config.prior_anchor == "local"  # the preset's
    backend.model.config = dataclasses.replace(backend.model.config, flow_tracker=tracker, prior_anchor=anchor)
    assert backend.model.config.flow_prior and backend.model.config.in_channels == 20
    with torch.no_grad():
        backend.model.out.bias[-1] = 30.0  # gate fully open
    model_field = backend.predict(ep.inputs())
    flow_field = make_backend(baseline, stride=4, method=backend.model.config.flow_method).predict(ep.inputs())
    assert model_field.control_points.shape == flow_field.control_points.shape
    own = model_field.frame_points()  # [T,h,w,3] the cells' points
    b = bspline_basis(model_field.frame_parameters(), model_field.num_control_points)  # [T,K]
    at_own = np.einsum("tk,thwkd->thwd", b, model_field.control_points.astype(np.float64))
    np.testing.assert_allclose(at_own, own, atol=2e-4)  # through the cell's point at its own time
    d_model = model_field.control_points - own[:, :, :, None]
    d_flow = flow_field.control_points - flow_field.frame_points()[:, :, :, None]
    assert np.abs(d_flow).max() > 0.01
    if anchor == "constant":  # same curves up to a shift
        np.testing.assert_allclose(d_model, d_flow, atol=1e-4)
    else:
        idle = b == 0  # [T,K] control points that do not reach the own time stay the prior's
        np.testing.assert_allclose(model_field.control_points.transpose(0, 3, 1, 2, 4)[idle],
                                   flow_field.control_points.transpose(0, 3, 1, 2, 4)[idle], atol=1e-4)


def test_local_prior_anchoring_moves_only_the_control_points_at_the_own_time():
    from traceany_ros.field import TrajectoryField, bspline_basis
    from traceany_ros.model.inputs import flow_prior

    rng = np.random.default_rng(0)
    T, K = 7, 7
    cp = rng.normal(size=(T, 2, 3, K, 3)).astype(np.float32)
    times = np.linspace(0.0, 1.2, T)
    field = TrajectoryField(cp, np.ones((T, 2, 3), np.float32), times, stride=4, pixel_offset=2, image_size=(8, 12),
                            time_span=(0.0, 1.2))
    cells = rng.normal(size=(T, 2, 3, 3)).astype(np.float32)  # where the curves must pass at their own time
    valid = np.ones((T, 2, 3), bool)
    valid[0, 0, 0] = False
    const, _ = flow_prior(field, np.eye(3), 1.0)
    local, _ = flow_prior(field, np.eye(3), 1.0, cells, valid)
    b = bspline_basis(field.frame_parameters(), K)
    for off in (const, local):  # offsets are zero at the own frame's time either way
        np.testing.assert_allclose(np.einsum("tk,thwkd->thwd", b, off), 0.0, atol=1e-5)
    # as curves from the cell's point: unchanged where the basis is zero at the own time
    curve = cells[:, :, :, None] + local
    idle = np.broadcast_to((b == 0)[:, None, None, :], curve.shape[:4]).copy()
    idle[0, 0, 0] = False  # invalid cell: the constant shift
    np.testing.assert_allclose(curve[idle], cp[idle], atol=1e-5)
    # the least change: smaller than the constant shift wherever the fit missed
    own = np.einsum("tk,thwkd->thwd", b, cp)
    change_local = ((curve - cp) ** 2).sum((-1, -2))
    change_const = ((cells[:, :, :, None] + const - cp) ** 2).sum((-1, -2))
    assert (change_local[valid] < change_const[valid]).all()
    np.testing.assert_allclose(const[0, 0, 0], local[0, 0, 0], atol=1e-6)
    assert np.abs(own - cells).min() > 0  # the fit misses every valid cell here


def test_prior_anchor_is_checked_and_old_configs_keep_the_constant_one():
    with pytest.raises(ValueError, match="prior_anchor"):
        ModelConfig.preset("tiny", prior_anchor="magic")
    assert ModelConfig.from_dict({"name": "old", "flow_prior": True}).prior_anchor == "constant"


def test_unknown_flow_tracker_is_refused():
    with pytest.raises(ValueError, match="flow_tracker"):
        ModelConfig.preset("tiny", flow_tracker="magic")


def test_bf16_trunk_stays_close_to_float32_and_only_at_inference():
    """The trunk under bfloat16 autocast (the model backend's CPU default where the CPU has native bf16)
    changes outputs only at bf16 precision; training never uses it."""
    torch.manual_seed(0)
    model = TraceModel(ModelConfig.preset("tiny"))
    with torch.no_grad():
        model.out.weight.normal_(0.0, 0.05)  # a non-trivial head (it starts at zero)
    T, H, W = 3, 32, 48
    image = torch.randn(1, T, model.config.image_channels, H, W)
    s = torch.linspace(0, 1, T)[None]
    prior = 0.01 * torch.randn(1, T, H // 4, W // 4, model.config.num_control_points, 3)
    feats = torch.randn(1, T, 13, H // 4, W // 4)
    model.eval()
    with torch.no_grad():
        ref = model(image, s, prior, feats)
        model.trunk_bf16 = True
        low = model(image, s, prior, feats)
        model.train()
        trained = model(image, s, prior, feats)
    for key in ("offsets", "confidence", "motion"):
        assert low[key].dtype == torch.float32
        assert not torch.equal(low[key], ref[key])  # it did run in bf16
        scale = ref[key].abs().max().item()
        assert (low[key] - ref[key]).abs().max().item() < 0.05 * scale + 1e-3
        torch.testing.assert_close(trained[key], ref[key])  # training: float32


def test_model_backend_bf16_option():
    from traceany_ros.model.network import cpu_has_native_bf16

    assert make_backend("model", preset="tiny", bf16="on").model.trunk_bf16
    assert not make_backend("model", preset="tiny", bf16="off").model.trunk_bf16
    assert make_backend("model", preset="tiny").model.trunk_bf16 == cpu_has_native_bf16()
    with pytest.raises(ValueError, match="bf16"):
        make_backend("model", preset="tiny", bf16="maybe")


def test_model_backend_prior_options_change_how_the_prior_is_made():
    ep = make_synthetic_episode(num_frames=6, height=48, width=64, seed=5)
    base = make_backend("model", preset="tiny", prior_tracker="rigid")
    fine = make_backend("model", preset="tiny", prior_tracker="rigid", prior_flow_method="dis_fine")
    assert (base.model.config.flow_method, fine.model.config.flow_method) == ("dis_medium", "dis_fine")
    fine.model.load_state_dict(base.model.state_dict())
    with torch.no_grad():  # an open gate passes the prior through: the two priors differ
        for b in (base, fine):
            b.model.out.bias[-1] = 30.0
    assert not np.allclose(base.predict(ep.inputs()).control_points, fine.predict(ep.inputs()).control_points)
    with pytest.raises(ValueError, match="prior flow method"):
        make_backend("model", preset="tiny", prior_flow_method="lucas")
    with pytest.raises(ValueError, match="no flow prior"):
        make_backend("model", preset="tiny-pure", prior_flow_method="dis_fine")


def test_fused_attention_layer_matches_the_torch_encoder_layer():
    """encoder_layer (F.scaled_dot_product_attention) computes what nn.TransformerEncoderLayer computes with the
    same weights, in training and in eval mode, and its gradients flow."""
    from traceany_ros.model.network import encoder_layer

    torch.manual_seed(0)
    layer = torch.nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, activation="gelu", batch_first=True,
                                             norm_first=True)
    x = torch.randn(2, 50, 32, requires_grad=True)
    for train in (True, False):
        layer.train(train)
        torch.testing.assert_close(encoder_layer(layer, x), layer(x), rtol=1e-5, atol=1e-5)
    encoder_layer(layer, x).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_prior_channels_per_cell_equal_the_convolutions_on_upsampled_channels():
    """conv_with_cells (the prior's channels at cell resolution, the kernel summed over each cell) computes the
    patchify convolution of the image with the cells' channels upsampled to every pixel of their cell."""
    from traceany_ros.model.network import conv_with_cells

    torch.manual_seed(0)
    for k, cell in ((16, 4), (4, 4), (8, 2)):
        conv = torch.nn.Conv2d(7 + 13, 24, k, k)
        x = torch.randn(3, 7, 32, 48)
        cells = torch.randn(3, 13, 32 // cell, 48 // cell, requires_grad=True)
        up = cells.repeat_interleave(cell, 2).repeat_interleave(cell, 3)
        ref = conv(torch.cat([x, up], 1))
        got = conv_with_cells(conv, x, cells, cell)
        torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-4)
        got.square().sum().backward()  # gradients reach the weights and the cells
        assert conv.weight.grad.abs().sum() > 0 and cells.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="patchify"):
        conv_with_cells(torch.nn.Conv2d(20, 8, 3, padding=1), torch.randn(1, 7, 8, 8), torch.randn(1, 13, 2, 2), 4)


def test_prior_features_are_checked_and_the_image_has_only_pixel_channels():
    ep = make_synthetic_episode(num_frames=4, height=48, width=64, seed=2)
    backend = make_backend("model", preset="tiny", prior_tracker="rigid")
    from traceany_ros.model import prepare_window

    inp = prepare_window(ep.inputs(), backend.model.config)
    assert inp.image.shape == (4, 7, 48, 64) and inp.prior_features.shape == (4, 13, 12, 16)
    # the prior's curve at s = 0 (channels 0-2) is its first control point; its confidence is the last channel
    np.testing.assert_allclose(inp.prior_features[:, :3].permute(0, 2, 3, 1).numpy(), inp.prior[..., 0, :].numpy(),
                               atol=1e-6)
    model = backend.model
    with pytest.raises(ValueError, match="prior_features"):
        model(inp.image[None], inp.s[None], inp.prior[None])
    with pytest.raises(ValueError, match="image channels"):
        model(torch.zeros(1, 4, 20, 48, 64), inp.s[None], inp.prior[None], inp.prior_features[None])
