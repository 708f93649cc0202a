"""Long windows on key frames: which frames, the filled frames' curves, and the network's field on them."""
import numpy as np
import pytest
import torch

from traceany_ros.episode import FrameWindow, window_frames
from traceany_ros.field import TrajectoryField, fit_trajectory
from traceany_ros.geometry import grid_points_world
from traceany_ros.model import ModelConfig, TraceModel, predict_field
from traceany_ros.model.keyframes import fill_frames, pick_key_frames
from traceany_ros.sim.synthetic import make_synthetic_episode

STRIDE, OFF = 8, 4


def test_key_frames_are_evenly_spaced_and_keep_both_ends():
    k = pick_key_frames(24, 8)
    assert len(k) == 8 and k[0] == 0 and k[-1] == 23 and np.all(np.diff(k) >= 3)
    assert pick_key_frames(8, 8) is None and pick_key_frames(24, None) is None and pick_key_frames(24, 0) is None
    with pytest.raises(ValueError, match="key_frames"):
        pick_key_frames(24, 1)


def _wall_window(T=9, H=48, W=64, depth=1.5, focal=300.0):
    """A still camera looking at a flat wall; every frame sees the wall at the same depth."""
    K = np.array([[focal, 0, W / 2], [0, focal, H / 2], [0, 0, 1]], np.float32)
    rng = np.random.default_rng(0)
    return FrameWindow(rgb=rng.integers(0, 255, (T, H, W, 3), dtype=np.uint8),
                       depth=np.full((T, H, W), depth, np.float32), intrinsics=K,
                       cam_to_world=np.repeat(np.eye(4, dtype=np.float32)[None], T, 0),
                       times=np.arange(T) / 15.0)


def _sliding_field(window, keys, v):
    """The key frames' true field of a wall sliding at v m/s in its own plane: each cell's curve is its own
    point moving at v."""
    times = np.asarray(window.times)
    span = (times[0], times[-1])
    s = (times - span[0]) / (span[1] - span[0])
    own, _ = grid_points_world(window_frames(window, keys), STRIDE, OFF)  # [Tk,h,w,3]
    pos = own[..., None, :] + (times[None, None, None, :, None] - times[keys][:, None, None, None, None]) * v
    cp = fit_trajectory(s, pos, 10)
    Tk, h, w = own.shape[:3]
    return TrajectoryField(cp.astype(np.float32), np.ones((Tk, h, w), np.float32), times[keys], stride=STRIDE,
                           pixel_offset=OFF, image_size=window.depth.shape[1:], time_span=span,
                           motion=np.ones((Tk, h, w), np.float32),
                           visibility=np.ones((Tk, h, w, Tk), np.float32))


def test_filled_frames_follow_the_key_frames_motion():
    win = _wall_window()
    keys = pick_key_frames(9, 3)  # 0, 4, 8
    v = np.array([0.3, -0.15, 0.0])
    full = fill_frames(_sliding_field(win, keys, v), win, keys)
    assert full.num_frames == 9 and full.meta["key_frames"] == [0, 4, 8]
    own, _ = grid_points_world(win, STRIDE, OFF)
    times = np.asarray(win.times)
    truth = own[..., None, :] + (times[None, None, None, :, None] - times[:, None, None, None, None]) * v
    got = full.positions(times)  # [T,h,w,T,3]
    assert np.abs(got - truth).max() < 1e-3
    assert np.all(full.confidence > 0.99) and np.all(full.motion > 0.99)
    assert full.visibility.shape == (9,) + full.shape + (9,)


def test_a_surface_no_key_frame_saw_stays_still_with_no_confidence():
    win = _wall_window()
    keys = pick_key_frames(9, 3)
    depth = np.asarray(win.depth).copy()
    depth[2] = 3.0  # frame 2 sees a wall 1.5 m behind the one the key frames saw
    depth[3, :, :32] = 0.0  # frame 3 has no depth on its left half
    win = FrameWindow(win.rgb, depth, win.intrinsics, win.cam_to_world, win.times)
    full = fill_frames(_sliding_field(win, keys, np.zeros(3)), win, keys)
    own, _ = grid_points_world(win, STRIDE, OFF)
    assert np.all(full.confidence[2] == 0) and np.abs(full.control_points[2] - own[2][..., None, :]).max() < 1e-5
    assert np.all(full.confidence[3][:, :4] == 0) and np.all(full.confidence[3][:, 4:] > 0.99)


def test_the_network_predicts_a_long_window_on_its_key_frames():
    ep = make_synthetic_episode(num_frames=9, height=64, width=96, seed=2, num_queries=16)
    w = ep.inputs()
    win = FrameWindow(w.rgb, w.depth, w.intrinsics, w.cam_to_world, w.times)
    torch.manual_seed(0)
    model = TraceModel(ModelConfig(name="test", channels=(8, 16, 16), feat_dim=16, dim=16, heads=2, layers=1,
                                   iterations=1, radius=1, levels=2))
    full = predict_field(model, win, key_frames=4)
    keys = full.meta["key_frames"]
    assert full.num_frames == 9 and keys == [0, 3, 5, 8] and full.time_span == (w.times[0], w.times[-1])
    alone = predict_field(model, window_frames(win, keys))
    assert np.allclose(full.control_points[keys], alone.control_points, atol=1e-6)
    assert full.visibility.shape == (9,) + full.shape + (9,)
    every = predict_field(model, win)  # an untrained network is the static hypothesis: filled frames agree
    assert np.abs(full.control_points - every.control_points)[full.confidence > 0].max() < 1e-3


def test_the_backend_and_the_stream_pass_the_key_frames_on():
    from traceany_ros.backends import make_backend
    from traceany_ros.stream import StreamConfig

    assert StreamConfig(backend="model").backend_options()["key_frames"] == 4
    assert StreamConfig(backend="model", key_frames=0).backend_options()["key_frames"] is None
    with pytest.raises(ValueError, match="key_frames"):
        StreamConfig(backend="model", key_frames=1)
    ep = make_synthetic_episode(num_frames=10, height=64, width=96, seed=3, num_queries=8)
    w = ep.inputs()
    win = FrameWindow(w.rgb, w.depth, w.intrinsics, w.cam_to_world, w.times)
    assert make_backend("model", preset="tiny", key_frames=5).predict(win).meta["key_frames"] == [0, 2, 4, 7, 9]
    assert "key_frames" not in make_backend("model", preset="tiny", key_frames=None).predict(win).meta
    with pytest.raises(ValueError, match="key_frames"):
        make_backend("model", preset="tiny", key_frames=1)


def test_a_zoomed_window_gives_a_finer_field_of_the_same_pixels():
    from traceany_ros.backends import make_backend
    from traceany_ros.model.zoom import check_zoom, zoom_window

    ep = make_synthetic_episode(num_frames=3, height=48, width=64, seed=4, num_queries=8)
    w = ep.inputs()
    win = FrameWindow(w.rgb, w.depth, w.intrinsics, w.cam_to_world, w.times)
    big = zoom_window(win, 2)
    assert big.rgb.shape == (3, 96, 128, 3) and big.depth.shape == (3, 96, 128)
    assert np.array_equal(big.rgb[:, ::2, ::2], np.asarray(win.rgb)) and np.array_equal(big.depth[:, ::2, ::2], win.depth)
    field = make_backend("model", preset="tiny", zoom=2).predict(win)  # untrained: the static hypothesis
    assert (field.stride, field.pixel_offset, field.shape, field.image_size) == (4, 2, (12, 16), (48, 64))
    own, valid = grid_points_world(win, 4, 2)
    ok = valid & (field.confidence > 0)
    assert ok.mean() > 0.5 and np.abs(field.frame_points()[ok] - own[ok]).max() < 1e-4
    with pytest.raises(ValueError, match="zoom"):
        check_zoom(3, 8)


def test_a_crop_of_the_moving_region_shows_the_same_world_and_the_box_covers_the_movers():
    from traceany_ros.backends import make_backend
    from traceany_ros.field import TrajectoryField
    from traceany_ros.model.zoom import crop_window, moving_box

    ep = make_synthetic_episode(num_frames=3, height=48, width=64, seed=4, num_queries=8)
    w = ep.inputs()
    win = FrameWindow(w.rgb, w.depth, w.intrinsics, w.cam_to_world, w.times)
    box = (16, 48, 16, 48)
    crop = crop_window(win, box)
    assert crop.rgb.shape == (3, 32, 32, 3)
    full, _ = grid_points_world(win, 1, 0)
    part, _ = grid_points_world(crop, 1, 0)
    assert np.abs(part - full[:, 16:48, 16:48]).max() < 1e-5           # the same world points
    with pytest.raises(ValueError, match="not inside"):
        crop_window(win, (0, 60, 0, 10))
    # the box around the cells that move, grown and aligned, inside the image; None when nothing moves
    motion = np.zeros((3, 6, 8), np.float32)
    motion[1, 2, 3] = 0.9                                                 # cell (2, 3): pixel (20, 28)
    cp = np.zeros((3, 6, 8, 4, 3), np.float32)
    fld = TrajectoryField(cp, np.ones((3, 6, 8), np.float32), w.times, stride=8, pixel_offset=4,
                          image_size=(48, 64), motion=motion)
    assert moving_box(fld, pad=4, align=8) == (16, 32, 24, 40)
    assert moving_box(fld, pad=24, align=16) == (0, 48, 0, 64)
    fld.motion[:] = 0.1
    assert moving_box(fld) is None
    # the backend: an untrained network moves nothing, so its field is the whole window's
    be = make_backend("model", preset="tiny")
    field, box = be.predict_moving(win)
    assert box is None and field.image_size == (48, 64)
    zoomed = be.with_options(zoom=2, selection="top")
    assert (zoomed.zoom, zoomed.selection, be.zoom, be.selection) == (2, "top", 1, "blend")
    assert zoomed.model is be.model                                        # the weights are shared
    with pytest.raises(ValueError, match="selection"):
        be.with_options(selection="best")
    with torch.no_grad():
        be.model.cell_head.bias[0] = 3.0                                   # every cell "moves"
    field, box = be.predict_moving(win, zoom=2)
    assert box == (0, 48, 0, 64) and field.meta["crop"] == box and field.stride == 4 and be.zoom == 1
