"""SlidingWindowPredictor: worker thread, bounded input, drops, rejects, restarts, continuous joins."""
import threading
import time

import numpy as np
import pytest

from traceany_ros.field import TrajectoryField
from traceany_ros.stream import FrameRejected, SlidingWindowPredictor, StreamConfig, join_fields

H, W = 24, 32
K = np.array([[30.0, 0, 15.5], [0, 30.0, 11.5], [0, 0, 1]])


class FakeBackend:
    """Every pixel moves along +x at 1 m/s, plus a per-call bias (to make window borders visible)."""

    name = "fake"
    device = "cpu"

    def __init__(self, delay=0.0, bias_step=0.0, stride=4):
        self.delay, self.bias_step, self.stride = delay, bias_step, stride
        self.threads, self.calls = [], 0

    def predict(self, window):
        self.threads.append(threading.current_thread())
        time.sleep(self.delay)
        t = np.asarray(window.times)
        n, h, w = len(t), H // self.stride, W // self.stride
        s = np.linspace(0, 1, 10)
        tk = t[0] + s * (t[-1] - t[0])  # curves sampled at the control points' times (linear motion is exact)
        cp = np.zeros((n, h, w, 10, 3), np.float32)
        cp[..., 0] = (tk - t[:, None])[:, None, None, :] + self.bias_step * self.calls
        cp[..., 2] = 1.0
        self.calls += 1
        return TrajectoryField(cp, np.ones((n, h, w)), t, stride=self.stride, image_size=(H, W),
                               meta={"backend": "fake"})


def frame(value=100, depth=1.0):
    return np.full((H, W, 3), value, np.uint8), np.full((H, W), depth, np.float32), K, np.eye(4)


def test_backend_runs_on_worker_thread_and_push_never_waits():
    be = FakeBackend(delay=0.3)
    with SlidingWindowPredictor(StreamConfig(window=4, step=2), backend=be) as p:
        t0 = time.monotonic()
        for i in range(8):
            p.push(*frame(), stamp=i / 30)
        push_time = time.monotonic() - t0
        assert p.wait_for_field(0, timeout=5) is not None
    assert push_time < 0.2, f"push blocked for {push_time:.3f} s"
    assert be.threads and all(t is not threading.main_thread() for t in be.threads)


def test_burst_of_200_frames_is_bounded_and_drops_are_counted():
    be = FakeBackend(delay=0.05)
    with SlidingWindowPredictor(StreamConfig(window=4, step=2), backend=be) as p:
        for i in range(200):
            p.push(*frame(i % 255), stamp=i / 1000)
            assert p.stats()["buffered"] <= 4
        deadline = time.monotonic() + 5
        while not p.idle and time.monotonic() < deadline:
            time.sleep(0.01)
        st = p.stats()
    assert st["pushed"] == 200
    assert st["dropped"] > 100, st  # the backend cannot keep up with a burst: most frames are skipped
    assert st["fields"] <= 200 // 2 and st["fields"] == be.calls
    # every frame is either seen by the backend, dropped, or still among the last window's unsent frames
    assert st["kept"] + st["dropped"] <= 200 and st["kept"] + st["dropped"] >= 200 - 2
    assert np.isfinite(st["latency_p95_ms"])


def test_bad_frames_are_rejected_with_reasons_and_stream_goes_on():
    p = SlidingWindowPredictor(StreamConfig(window=2, step=1), backend=FakeBackend())
    rgb, depth, k, pose = frame()
    p.push(rgb, depth, k, pose, 1.0)
    cases = [
        (dict(depth=np.zeros((H, W), np.float32)), 2.0, "depth"),
        (dict(depth=np.full((H, W), np.nan, np.float32)), 2.0, "depth"),
        (dict(depth=np.ones((H // 2, W), np.float32)), 2.0, "shape"),
        (dict(rgb=np.zeros((H, W), np.uint8)), 2.0, "shape"),
        (dict(intrinsics=np.zeros((3, 3))), 2.0, "intrinsics"),
        (dict(), 1.0, "duplicate"),
        (dict(), 0.5, "out_of_order"),
    ]
    for override, stamp, reason in cases:
        args = dict(rgb=rgb, depth=depth, intrinsics=k, cam_to_world=pose)
        args.update(override)
        with pytest.raises(FrameRejected) as ei:
            p.push(stamp=stamp, **args)
        assert ei.value.reason == reason, (reason, str(ei.value))
    assert "align_depth" in _msg(p, dict(depth=np.ones((H // 2, W), np.float32)))
    p.push(rgb, depth, k, pose, 1.1)  # still accepts good frames
    st = p.stats()
    assert st["pushed"] == 2 and st["rejected"] == len(cases) + 1 and st["rejected_depth"] == 2


def _msg(p, override):
    rgb, depth, k, pose = frame()
    args = dict(rgb=rgb, depth=depth, intrinsics=k, cam_to_world=pose)
    args.update(override)
    with pytest.raises(FrameRejected) as ei:
        p.push(stamp=50.0, **args)
    return str(ei.value)


def test_gap_restarts_window_and_stream_recovers():
    be = FakeBackend()
    with SlidingWindowPredictor(StreamConfig(window=3, step=3, max_gap_s=0.5), backend=be) as p:
        for i in range(3):
            p.push(*frame(), stamp=i * 0.1)
        assert p.wait_for_field(0, timeout=5)
        p.push(*frame(), stamp=0.3)
        p.push(*frame(), stamp=0.4)
        # camera dies for 2 s, then comes back: the half-filled window is discarded
        for i in range(3):
            p.push(*frame(), stamp=2.4 + i * 0.1)
        got = p.wait_for_field(1, timeout=5)
        assert got is not None
        field, info = got
        st = p.stats()
    assert st["restarts"] == 1
    np.testing.assert_allclose(field.times, [2.4, 2.5, 2.6])
    assert "joined_frames" not in field.meta  # nothing from before the gap is blended in


def test_windows_join_continuously_in_world_frame():
    be = FakeBackend(bias_step=0.05)  # each window is 5 cm off the previous one
    fields = []
    with SlidingWindowPredictor(StreamConfig(window=6, step=2), backend=be,
                                on_field=lambda f, info: fields.append(f)) as p:
        for i in range(12):
            p.push(*frame(), stamp=i / 10)
            while not p.idle:
                time.sleep(0.005)
    assert len(fields) >= 3
    for prev, cur in zip(fields, fields[1:]):
        a = cur.time_span[0]
        shared = [i for i, t in enumerate(cur.times) if np.any(np.isclose(prev.times, t))]
        assert shared
        j = [int(np.argmin(np.abs(prev.times - cur.times[i]))) for i in shared]
        gap = np.abs(cur.positions(a, frames=shared) - prev.positions(a, frames=j)).max()
        assert gap < 2e-3, f"joined curves jump by {gap * 1e3:.1f} mm at the window border"
        # the newest frames keep the backend's own curves
        assert cur.meta["joined_frames"] == len(shared) < cur.num_frames
    # without joining, the same border jumps by the bias
    raw_prev = FakeBackend(bias_step=0.05)
    from traceany_ros.episode import FrameWindow

    def win(t):
        n = len(t)
        return FrameWindow(np.zeros((n, H, W, 3), np.uint8), np.ones((n, H, W), np.float32), K,
                           np.repeat(np.eye(4)[None], n, 0), np.asarray(t))
    f0, f1 = raw_prev.predict(win(np.arange(6) / 10)), raw_prev.predict(win(np.arange(2, 8) / 10))
    assert np.abs(f1.positions(0.2, frames=[0]) - f0.positions(0.2, frames=[2])).max() > 0.04
    joined = join_fields(f0, f1)
    assert np.abs(joined.positions(0.2, frames=[0]) - f0.positions(0.2, frames=[2])).max() < 2e-3
    # after the previous span ends, the joined curve follows the new window
    np.testing.assert_allclose(joined.positions(0.7, frames=[0]), f1.positions(0.7, frames=[0]), atol=2e-3)


def test_backend_failure_is_reported_and_worker_survives():
    class Flaky(FakeBackend):
        def predict(self, window):
            if self.calls == 0:
                self.calls += 1
                raise RuntimeError("CUDA out of memory (simulated)")
            return super().predict(window)

    errors = []
    with SlidingWindowPredictor(StreamConfig(window=2, step=1), backend=Flaky(), on_error=errors.append) as p:
        p.push(*frame(), stamp=0.0)
        p.push(*frame(), stamp=0.1)
        deadline = time.monotonic() + 5
        while p.stats()["errors"] == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        p.push(*frame(), stamp=0.2)
        assert p.wait_for_field(0, timeout=5) is not None
        st = p.stats()
    assert st["errors"] == 1 and "out of memory" in st["last_error"] and len(errors) == 1


def test_config_validates_ranges():
    with pytest.raises(ValueError, match="step .* must be <= window"):
        StreamConfig(window=4, step=8)
    with pytest.raises(ValueError, match="backend must be one of"):
        StreamConfig(backend="magic")
    with pytest.raises(ValueError, match="window must be in"):
        StreamConfig(window=1)


@pytest.mark.parametrize("backend,downscale", [("flow", 1), ("flow", 2), ("flow-rigid", 1)])
def test_flow_stream_beats_static_on_moving_points(backend, downscale):
    from traceany_ros.sim.synthetic import make_synthetic_episode

    ep = make_synthetic_episode(num_frames=16, height=72 * downscale, width=96 * downscale, seed=3,
                                num_queries=1024 * downscale ** 2)
    fields = []
    cfg = StreamConfig(window=8, step=4, backend=backend, field_stride=1, input_downscale=downscale)
    with SlidingWindowPredictor(cfg, on_field=lambda f, i: fields.append(f)) as p:
        for t in range(ep.num_frames):
            p.push(ep.rgb[t], ep.depth[t], ep.intrinsics, ep.cam_to_world[t], ep.timestamps[t])
            while not p.idle:
                time.sleep(0.005)
    assert len(fields) == 3  # windows ending at frames 7, 11, 15
    last = fields[-1]
    assert last.stride == downscale and last.pixel_offset == 0 and last.meta["joined_frames"] == 4
    assert last.image_size == ep.image_size
    # moving queries on the field grid, of the last window's frames, each on its own frame's curve
    first = int(np.searchsorted(ep.timestamps, last.times[0]))
    q = ep.query_pixels
    sel = (q[:, 0] >= first) & ep.dynamic & (q[:, 1] % downscale == 0) & (q[:, 2] % downscale == 0)
    assert sel.sum() >= 20
    win = slice(first, first + 8)
    pos = last.positions(ep.timestamps[win])  # [8, h, w, 8, 3]
    pred = pos[q[sel, 0] - first, q[sel, 1] // downscale, q[sel, 2] // downscale]
    gt = ep.tracks_world[sel][:, win]
    static = ep.tracks_world[sel, q[sel, 0]][:, None]
    err_pred = np.linalg.norm(pred - gt, axis=-1).mean()
    err_static = np.linalg.norm(static - gt, axis=-1).mean()
    assert err_pred < 0.5 * err_static, (err_pred, err_static)


def test_input_downscale_feeds_small_frames_and_reports_full_size_pixels():
    seen = []

    class Recorder(FakeBackend):
        def predict(self, window):
            seen.append((window.rgb.shape, np.asarray(window.intrinsics).copy(), int(window.rgb.min())))
            return super().predict(window)

    big = 2
    K2 = K.copy()
    K2[:2] *= big  # the same camera at twice the resolution
    rgb = np.full((H * big, W * big, 3), 7, np.uint8)
    with SlidingWindowPredictor(StreamConfig(window=2, step=1, input_downscale=big), backend=Recorder()) as p:
        for i in range(2):
            p.push(rgb, np.ones((H * big, W * big), np.float32), K2, np.eye(4), stamp=i / 10)
        field, _ = p.wait_for_field(0, timeout=5)
    shape, k_seen, lowest = seen[0]
    assert shape == (2, H, W, 3) and lowest == 7
    np.testing.assert_allclose(k_seen, K)
    # Recorder's field has stride 4 on the small images = stride 8 on the camera's
    assert field.stride == 8 and field.pixel_offset == 0 and field.image_size == (H * big, W * big)


def test_tracer_flow_options_reach_the_flow_rigid_tracker():
    from traceany_ros.backends import make_backend
    from traceany_ros.tracker.flow import STITCH_DISTANCE

    on = StreamConfig(backend="flow-rigid")
    off = StreamConfig(backend="flow-rigid", stitch=False, icp=True, learned_matches=False)
    c_on = make_backend(on.backend, **on.backend_options()).config
    c_off = make_backend(off.backend, **off.backend_options()).config
    assert c_on.stitch == STITCH_DISTANCE and c_on.stitch_parts and c_on.rigid and not c_on.icp
    assert c_off.stitch == 0.0 and c_off.icp and not c_off.learned_matches
    # the offline default carries moving tracks on past their ends; the tracer only when asked (latency)
    assert c_on.stitch_ends == 0.0 and c_on.neighbour_reach == 0.0 and c_on.join_next == 0.0
    assert make_backend("flow-rigid").config.stitch_ends == STITCH_DISTANCE
    carry = StreamConfig(backend="flow-rigid", carry_ends=True)
    c_carry = make_backend(carry.backend, **carry.backend_options()).config
    assert c_carry.stitch_ends == STITCH_DISTANCE and c_carry.neighbour_reach > 0 and c_carry.join_next > 0
    assert c_carry.learned_matches == carry.learned_matches and not c_carry.icp  # its own options stand
