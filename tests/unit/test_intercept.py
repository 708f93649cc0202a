"""Forecast-based intercept on a synthetic field of a constant-velocity object."""
import numpy as np

from traceany_ros.field import TrajectoryField, fit_trajectory
from traceany_ros.policies.intercept import (InterceptConfig, object_forecast, plan_intercept,
                                             plan_intercept_from_track, travel_time)

V = np.array([0.01, 0.15, 0.0])         # m/s
P0 = np.array([0.55, -0.25, 0.04])      # object top-face centre at t = 0


def _field(velocity=V, p0=P0, frames=8, rate=10.0, h=12, w=16, K=10):
    """Table grid (static, z = 0) with a 4x4-pixel box top face (z = 0.04) moving at ``velocity``."""
    times = np.arange(frames) / rate
    s = (times - times[0]) / (times[-1] - times[0])
    xs, ys = np.meshgrid(np.linspace(0.35, 0.75, w), np.linspace(-0.3, 0.3, h))
    table = np.stack([xs, ys, np.zeros_like(xs)], -1)  # [h, w, 3]
    pts = np.repeat(np.repeat(table[None, :, :, None], frames, 0), frames, 3)  # [T(src), h, w, T(time), 3]
    offsets = np.stack(np.meshgrid(np.linspace(-0.015, 0.015, 4), np.linspace(-0.015, 0.015, 4)), -1).reshape(-1, 2)
    for f in range(frames):  # the box covers different pixels as it moves; fill the 4x4 patch of each frame
        c = p0 + velocity * times[f]
        j0 = int(np.argmin(np.abs(xs[0] - c[0])))
        i0 = int(np.argmin(np.abs(ys[:, 0] - c[1])))
        for k, (dx, dy) in enumerate(offsets):
            i, j = i0 - 2 + k // 4, j0 - 2 + k % 4
            x_f = c + [dx, dy, 0.0]  # the point on the box seen at frame f
            pts[f, i, j] = x_f[None] + (times - times[f])[:, None] * velocity[None]
    cp = fit_trajectory(s, pts, K)
    return TrajectoryField(cp.astype(np.float32), np.ones((frames, h, w), np.float32), times)


class FakeBackend:
    name = "fake"

    def __init__(self, field):
        self.field = field

    def predict(self, window):
        return self.field


def test_forecast_matches_constant_velocity_object():
    fld = _field()
    centre, vel, track, seg = object_forecast(fld)
    t_end = fld.time_span[1]
    assert len(seg) == 16  # exactly the box's pixels, no table
    assert np.allclose(vel, V, atol=1e-3)
    for tau in (0.0, 0.5, 1.0, 2.0):
        truth = P0 + V * (t_end + tau)
        assert np.linalg.norm(track(tau) - truth) < 1e-3, tau
    # the same numbers come out of TrajectoryField.forecast (end-tangent extrapolation)
    last = fld.num_frames - 1
    fc = fld.forecast(1.0, frames=[last])[0][seg.pixels[:, 0], seg.pixels[:, 1]]
    assert np.linalg.norm(np.median(fc, 0) - (P0 + V * (t_end + 1.0))) < 1e-3


def test_plan_blocks_on_the_path_in_time():
    fld = _field()
    cfg = InterceptConfig()
    ee = np.array([0.48, 0.0, 0.41])
    plan = plan_intercept(None, FakeBackend(fld), ee, cfg)
    assert plan.success, plan.message
    assert plan.labels() == ["pre-block", "block"]
    block = plan.waypoints[-1].position
    tau = plan.info["tau_s"]
    on_path = P0 + V * (fld.time_span[1] + tau)
    assert np.linalg.norm(block[:2] - on_path[:2]) < 2e-3
    hover = plan.waypoints[0].position
    ready = (plan.info["elapsed_s"] + cfg.compute_margin_s + cfg.actuation_delay_s
             + travel_time(ee, hover, cfg) + travel_time(hover, block, cfg))
    assert ready + cfg.margin_s <= tau + 1e-9
    assert tau - cfg.dt < ready + cfg.margin_s  # the earliest such point, not a later one
    # a slower robot has to go further down the path
    slow = plan_intercept(None, FakeBackend(fld), ee, InterceptConfig(speed=0.45))
    assert slow.info["tau_s"] > tau


def test_no_plan_when_unreachable_or_static():
    cfg = InterceptConfig()
    away = plan_intercept_from_track([0.9, 0.0, 0.02], [0.3, 0.0, 0.0], 0.0, [0.48, 0.0, 0.41], cfg)
    assert not away.success and "reachable" in away.message
    static = _field(velocity=np.zeros(3))
    plan = plan_intercept(None, FakeBackend(static), np.array([0.48, 0.0, 0.41]), cfg)
    assert not plan.success and "no moving object" in plan.message
