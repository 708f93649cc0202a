"""Goal planners on synthetic fields: the door's screw path, the move order, the refinement's trust region,
the forecast contract, and plans that need the field's tracks."""
import numpy as np

from traceany_ros.field import TrajectoryField
from traceany_ros.policies.articulated import plan_articulated_from_motion, screw_path
from traceany_ros.policies.grasp import GraspConfig, refine_motion
from traceany_ros.policies.intercept import predict_with_forecast
from traceany_ros.policies.rearrange import order_moves


def _turn(angle_deg, centre):
    a = np.deg2rad(angle_deg)
    T = np.eye(4)
    T[:3, :3] = [[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]]
    T[:3, 3] = np.array(centre) - T[:3, :3] @ np.array(centre)
    return T


def test_screw_path_of_a_turn_is_an_arc_about_the_hinge():
    hinge = np.array([0.5, 0.1, 0.0])
    handle = np.array([0.5, -0.05, 0.08])
    path, turns, info = screw_path(_turn(60, hinge), handle)
    assert info["joint"] == "revolute" and np.allclose(info["centre"], hinge[:2], atol=1e-9)
    r = np.linalg.norm(path[:, :2] - hinge[:2], axis=1)
    assert np.allclose(r, 0.15, atol=1e-9)                       # every step on the circle, not the chord
    assert np.isclose(turns[-1], np.deg2rad(60)) and len(path) == int(np.ceil(60 / 8))
    assert np.allclose(path[-1], _turn(60, hinge)[:3, :3] @ handle + _turn(60, hinge)[:3, 3])
    # the chord's midpoint is well inside the circle: a straight pull would be centimetres off
    mid = (handle + path[-1]) / 2
    assert 0.15 - np.linalg.norm(mid[:2] - hinge[:2]) > 0.02


def test_screw_path_of_a_shift_is_a_straight_slide():
    T = np.eye(4)
    T[:3, 3] = [0.1, 0.0, 0.0]
    path, turns, info = screw_path(T, np.array([0.4, 0.0, 0.05]))
    assert info["joint"] == "prismatic" and np.allclose(turns, 0)
    assert np.allclose(path[:, 1:], [0.0, 0.05]) and np.isclose(path[-1, 0], 0.5)


def test_articulated_plan_follows_the_arc_and_turns_the_hand_without_a_flip():
    from scipy.spatial.transform import Rotation

    hinge = [0.5, 0.1, 0.0]
    g = np.random.default_rng(0)
    handle = np.array([0.5, -0.05, 0.09]) + g.uniform(-0.01, 0.01, (200, 3)) * [1, 1, 0.5]
    plan = plan_articulated_from_motion(handle, _turn(-70, hinge))
    labels = plan.labels()
    assert labels[:2] == ["pre-grasp", "grasp"] and labels[-2:] == ["release", "retreat"]
    pulls = [w for w in plan.waypoints if w.label.startswith("pull-")]
    assert len(pulls) >= 8 and all(w.gripper == 0.0 for w in pulls)
    # finger (closing) axis of a top-down hand with yaw psi: (sin psi, -cos psi)
    axes = [Rotation.from_quat(w.quaternion).as_matrix()[:, 1] for w in [plan.waypoints[1]] + pulls]
    yaws = np.unwrap([np.arctan2(a[0], -a[1]) for a in axes])
    assert np.all(np.abs(np.diff(yaws)) < np.deg2rad(10))          # turns step by step with the door
    assert np.isclose(yaws[-1] - yaws[0], np.deg2rad(-70), atol=1e-6)


def test_order_moves_fills_an_occupied_place_last():
    starts = [np.array([0.4, 0.0, 0]), np.array([0.6, 0.0, 0])]
    places = [np.array([0.6, 0.01, 0]), np.array([0.5, 0.2, 0])]   # box 0 goes where box 1 is now
    assert order_moves(starts, places) == [1, 0]
    assert order_moves(starts[::-1], places[::-1]) == [0, 1]


def _box_top(centre, yaw, n=12):
    xs, ys = np.meshgrid(np.linspace(-0.025, 0.025, n), np.linspace(-0.015, 0.015, n))
    p = np.stack([xs.ravel(), ys.ravel(), np.full(xs.size, 0.04)], 1)
    return p @ _turn(yaw, [0, 0, 0])[:3, :3].T + centre


def test_registration_refines_the_field_inside_its_trust_region_only():
    src = _box_top(np.array([0.5, 0.0, 0.0]), 0.0)
    true = _turn(30, [0.5, 0.0, 0.0])
    true[:3, 3] += [0.0, 0.15, 0.0]
    goal = src @ true[:3, :3].T + true[:3, 3]
    near = true.copy()
    near[:3, 3] += [0.01, -0.008, 0.0]                              # the field 1.3 cm off: refined onto the goal
    T, info = refine_motion(near, src, goal, GraspConfig())
    err = lambda M: float(np.max(np.linalg.norm(src @ M[:3, :3].T + M[:3, 3] - goal, axis=1)))
    assert info["refined"] and err(T) < 0.007 < err(near)
    far = true.copy()
    far[:3, 3] += [0.06, 0.0, 0.0]                                  # 6 cm off: registration may not replace it
    T, info = refine_motion(far, src, goal, GraspConfig())
    assert not info["refined"] and np.allclose(T, far)


class _Backend:
    def __init__(self, forecast):
        self.supports_forecast = forecast
        self.calls = []

    def predict(self, window, **kw):
        self.calls.append(kw)
        times = np.asarray(window.times, float)
        cp = np.zeros((len(times), 2, 2, 10, 3), np.float32)
        end = times[-1] + kw.get("future_s", 0.0)
        return TrajectoryField(cp, np.ones((len(times), 2, 2), np.float32), times, time_span=(times[0], end))


def test_forecast_is_asked_of_backends_that_have_one():
    from traceany_ros.episode import FrameWindow

    w = FrameWindow(rgb=np.zeros((3, 4, 4, 3), np.uint8), depth=np.ones((3, 4, 4), np.float32),
                    intrinsics=np.eye(3, dtype=np.float32), cam_to_world=np.repeat(np.eye(4)[None], 3, 0),
                    times=np.array([0.0, 0.1, 0.2]))
    b = _Backend(True)
    fld = predict_with_forecast(b, w, 0.5)
    assert b.calls == [{"future_s": 0.5}] and np.isclose(fld.time_span[1], 0.7)
    b = _Backend(False)
    fld = predict_with_forecast(b, w, 0.5)
    assert b.calls == [{}] and np.isclose(fld.time_span[1], 0.2)   # positions past it: end tangents


def _arc_field(omega=0.6, speed=0.15, frames=8, rate=10.0, h=12, w=16, K=10):
    """Table grid with a 4x4-pixel box top face moving at ``speed`` on a circle (turn rate ``omega``)."""
    from traceany_ros.field import fit_trajectory

    times = np.arange(frames) / rate
    s = times / times[-1]
    xs, ys = np.meshgrid(np.linspace(0.35, 0.75, w), np.linspace(-0.3, 0.3, h))
    table = np.stack([xs, ys, np.zeros_like(xs)], -1)
    pts = np.repeat(np.repeat(table[None, :, :, None], frames, 0), frames, 3)

    def centre(t):
        h0 = np.pi / 2
        return np.array([0.5 + speed / omega * (np.sin(h0 + omega * t) - np.sin(h0)),
                         -0.2 + speed / omega * (np.cos(h0) - np.cos(h0 + omega * t)), 0.04])

    offsets = np.stack(np.meshgrid(np.linspace(-0.015, 0.015, 4), np.linspace(-0.015, 0.015, 4)), -1).reshape(-1, 2)
    for f in range(frames):
        c = centre(times[f])
        j0 = int(np.argmin(np.abs(xs[0] - c[0])))
        i0 = int(np.argmin(np.abs(ys[:, 0] - c[1])))
        for k, (dx, dy) in enumerate(offsets):
            i, j = i0 - 2 + k // 4, j0 - 2 + k % 4
            pts[f, i, j] = np.stack([centre(t) for t in times]) + [dx, dy, 0.0]
    cp = fit_trajectory(s, pts, K)
    return TrajectoryField(cp.astype(np.float32), np.ones((frames, h, w), np.float32), times), centre


def test_forecast_past_the_span_follows_the_curve_of_the_field():
    from dataclasses import replace

    from traceany_ros.policies.intercept import InterceptConfig, object_forecast

    fld, centre = _arc_field()
    t_end = fld.times[-1]
    _, _, track, seg = object_forecast(fld, InterceptConfig())
    true = centre(t_end + 1.2)
    assert abs(seg.info["turn_rate"] - 0.6) < 0.15, seg.info
    arc = np.linalg.norm(track(1.2)[:2] - true[:2])
    _, _, straight, _ = object_forecast(fld, replace(InterceptConfig(), extrapolation="tangent"))
    tangent = np.linalg.norm(straight(1.2)[:2] - true[:2])
    assert arc < 0.015 and tangent > 0.05, (arc, tangent)   # a constant velocity is off by more than a box


def test_yaw_uncertainty_shrinks_with_more_and_wider_spread_tracks():
    from traceany_ros.policies.grasp import yaw_uncertainty_deg

    rng = np.random.default_rng(0)
    few = rng.uniform(-0.01, 0.01, (4, 3))
    many_wide = rng.uniform(-0.04, 0.04, (20, 3))
    assert yaw_uncertainty_deg(few, 0.0, 0.01) > 30 > 3 * yaw_uncertainty_deg(many_wide, 0.0, 0.01)
    assert yaw_uncertainty_deg(few, 0.02, 0.01) > yaw_uncertainty_deg(few, 0.0, 0.01)  # the residual counts


def test_upright_part_of_a_tilted_motion_keeps_the_object_centre_in_place():
    """ICP's small tilt about the world origin, half a metre from the object, must not move the object."""
    from scipy.spatial.transform import Rotation

    from traceany_ros.policies.grasp import _upright

    T = _turn(30, [0.0, 0.0, 0.0])
    T[:3, :3] = Rotation.from_euler("x", 3, degrees=True).as_matrix() @ T[:3, :3]
    T[:3, 3] = [0.1, 0.2, 0.0]
    centre = np.array([0.55, 0.1, 0.03])
    U = _upright(T, centre)
    assert np.allclose(U[:3, :3] @ centre + U[:3, 3], T[:3, :3] @ centre + T[:3, 3], atol=1e-9)
    assert np.allclose(U[2, :3], [0, 0, 1]) and abs(np.rad2deg(np.arctan2(U[1, 0], U[0, 0])) - 30) < 0.5
    plain = _upright(T)
    assert np.linalg.norm(plain[:3, :3] @ centre + plain[:3, 3] - (T[:3, :3] @ centre + T[:3, 3])) > 0.01


def test_a_forecast_fitted_over_the_whole_clip_follows_the_arc_and_keeps_a_line_straight():
    from dataclasses import replace

    from traceany_ros.policies.intercept import InterceptConfig, object_forecast

    cfg = replace(InterceptConfig(), extrapolation="fit")
    fld, centre = _arc_field()
    t_end = fld.times[-1]
    _, _, track, seg = object_forecast(fld, cfg)
    assert abs(seg.info["turn_rate"] - 0.6) < 0.1, seg.info
    assert np.linalg.norm(track(1.2)[:2] - centre(t_end + 1.2)[:2]) < 0.015
    fld, centre = _arc_field(omega=1e-4)                                   # a straight path: no turn
    _, _, track, seg = object_forecast(fld, cfg)
    assert abs(seg.info["turn_rate"]) < 0.05 and np.linalg.norm(track(1.2)[:2] - centre(t_end + 1.2)[:2]) < 0.015
