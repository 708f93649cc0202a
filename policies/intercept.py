"""Forecast-based intercept: stop a moving object where the gripper can get to first.

From a live clip the backend predicts the trajectory field; the moving object
is the largest group of the last frame's pixels whose curves move
(:mod:`segment`); its future is the field's forecast: the backend's own
(learned) curve past the last frame where it has one (``supports_forecast``,
:func:`predict_with_forecast`), and past that the curves continued along their
end tangents (``TrajectoryField.positions`` with t beyond the span, see docs/method.md, section 2). The planner walks along the forecast and
picks the earliest time tau at which the gripper, starting now (plus the
time already spent planning and the actuation delay), can be down in the object's path with ``margin_s`` to
spare; it lowers the closed fingers there and holds them as a wall.

    plan = plan_intercept(window, make_backend("flow"), ee_position)
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from traceany_ros.policies.plan import Plan, Waypoint, top_down_quaternion
from traceany_ros.policies.segment import SegmentConfig, moving_segments


@dataclass(frozen=True)
class InterceptConfig:
    """Timing and geometry of the intercept (metres, seconds, m/s).

    speed / settle_s: the robot's Cartesian speed and the settle time after each segment
        (match ``sim.panda.PandaConfig``: speed, settle_steps * time_step).
    actuation_delay_s: time from the end of planning until the robot starts to move.
    compute_margin_s: planning time still to come after the intercept search starts.
    margin_s: the gripper must be in place this long before the object arrives.
    hover_height: height of the approach waypoint; block_height: grasp-target height of the wall.
    block_opening: finger opening while blocking (less than the object's width).
    reach_x / reach_y: where the gripper may go (world).
    max_horizon_s: furthest forecast considered.
    top_band / pool_radius / min_track_confidence: which curves vote in the forecast (see object_forecast).
    forecast_s: seconds of forecast asked of a backend that has its own (``supports_forecast``; the
        network's learned forecast covers 0.3 s).
    turn_gain: with ``extrapolation="fit"``, an arc is taken over a straight line where its residual is at
        most this fraction of the line's.
    region_zoom: a backend that can (``predict_moving``: the network) predicts the clip's moving region
        again this many times larger (finer cells on the mover); 1 = one pass over the whole clip.
    extrapolation: past the field's span, "arc" (the centre goes on at the turn rate and speed its
        curve has over the last ``turn_window_s`` of the span, at most ``max_turn_rate`` rad/s), "fit"
        (at the constant speed, on the line or arc of constant turn rate, that best fits the centre over the
        field's whole span: steadier on a noisy field than the last stretch's tangent) or "tangent"
        (straight on along the end tangents, ``TrajectoryField.positions`` past the span).
    """

    speed: float = 0.6
    settle_s: float = 0.125
    actuation_delay_s: float = 0.1
    compute_margin_s: float = 0.05
    margin_s: float = 0.35
    hover_height: float = 0.07
    block_height: float = 0.02
    block_opening: float = 0.025
    reach_x: tuple[float, float] = (0.32, 0.72)
    reach_y: tuple[float, float] = (-0.24, 0.24)
    max_horizon_s: float = 4.0
    dt: float = 0.02
    top_band: float = 0.01
    pool_radius: float = 0.04
    min_track_confidence: float = 0.75
    segment: SegmentConfig = SegmentConfig(min_displacement=0.02, displacement_weight=1.0)
    forecast_s: float = 0.3
    extrapolation: str = "arc"
    turn_window_s: float = 0.5
    max_turn_rate: float = 1.5
    region_zoom: int = 2
    turn_gain: float = 0.9


def travel_time(a: np.ndarray, b: np.ndarray, config: InterceptConfig) -> float:
    """Seconds the robot needs for a straight end-effector move a -> b (its own speed model)."""
    return float(np.linalg.norm(np.asarray(b) - np.asarray(a)) / config.speed + config.settle_s)


def plan_intercept_from_track(position, velocity, t_now: float, ee_start, config: InterceptConfig = InterceptConfig(),
                              object_half_size: float = 0.02, track: Callable[[float], np.ndarray] | None = None,
                              elapsed_s: float = 0.0) -> Plan:
    """Intercept plan for an object whose centre will be at ``track(tau)`` (default ``position + velocity * tau``).

    Args:
        position [3], velocity [3]: object centre now and its velocity (world).
        t_now: time of "now" (s), only recorded.
        ee_start [3]: end-effector position when planning starts.
        track: optional forecast tau (s after now) -> [3] centre position.
        elapsed_s: seconds of planning already spent since "now" (the last frame).
    Returns:
        Plan with waypoints "pre-block" and "block", or a failure when no point of the
        forecast is reachable in time.
    """
    p = np.asarray(position, np.float64)
    v = np.asarray(velocity, np.float64)
    track = track or (lambda tau: p + v * tau)
    ee = np.asarray(ee_start, np.float64)
    heading_now = float(np.arctan2(v[1], v[0])) if np.linalg.norm(v[:2]) > 1e-6 else 0.0
    taus = np.arange(0.0, config.max_horizon_s + config.dt, config.dt)
    many = getattr(track, "many", None)  # a forecast that evaluates all times at once
    path = np.asarray(many(taus) if many is not None else np.stack([track(x) for x in taus]), np.float64)
    for i, tau in enumerate(taus[:-1]):
        c = path[i]
        if not (config.reach_x[0] <= c[0] <= config.reach_x[1] and config.reach_y[0] <= c[1] <= config.reach_y[1]):
            continue
        block = np.array([c[0], c[1], config.block_height])
        hover = block + np.array([0, 0, config.hover_height])
        t_ready = (elapsed_s + config.compute_margin_s + config.actuation_delay_s
                   + travel_time(ee, hover, config) + travel_time(hover, block, config))
        if t_ready + config.margin_s <= tau:
            # closing axis (sin yaw, -cos yaw) across the path where the object will meet it: the two
            # fingers, a little apart, form a fork narrower than the object, which cradles it instead of
            # letting it slide off one finger
            ahead = path[i + 1] - c
            heading = float(np.arctan2(ahead[1], ahead[0])) if np.linalg.norm(ahead[:2]) > 1e-6 else heading_now
            q = top_down_quaternion(heading)
            wps = [Waypoint("pre-block", hover, q, config.block_opening, config.speed),
                   Waypoint("block", block, q, config.block_opening, config.speed)]
            return Plan(success=True, message="ok", waypoints=wps, grasp=wps[1],
                        info={"tau_s": float(tau), "t_ready_s": float(t_ready), "elapsed_s": float(elapsed_s),
                              "intercept": block,
                              "velocity": v, "position": p, "t_now": float(t_now)})
    return Plan.failure("no point of the forecast path is reachable before the object gets there",
                        velocity=v, position=p)


def object_forecast(fld, config: InterceptConfig = InterceptConfig(), table_z: float = 0.0):
    """The moving object's centre now, its velocity, and a forecast function, from a field.

    The object is the largest group of the last frame's moving pixels
    (:mod:`segment`). Its forecast pools the curves of every frame's moving
    pixels that are at the object now (within ``pool_radius`` of it at the end
    of the clip), as in spatio-temporal fusion: each curve continued past the
    clip along its end tangent (the method's forecast) votes, and the per-time
    median over the confident curves on the object's top face (its xy centre
    is the object's centre, unlike the camera-facing sides) is the track.
    Returns (centre [3], velocity [3], track(tau) -> [3], segment) or raises ValueError.
    """
    from traceany_ros.field import evaluate

    last = fld.num_frames - 1
    # "now" is the last frame; a forecast field's span runs on past it (its learned future)
    t0, t_end = float(fld.times[0]), float(fld.times[-1])
    segs = moving_segments(fld, t0, t_end, frame=last, config=config.segment, table_z=table_z)
    if not segs:
        raise ValueError("no moving object in the clip: nothing to intercept")
    seg = segs[0]
    now_last = fld.positions(t_end, frames=[last])[0][seg.pixels[:, 0], seg.pixels[:, 1]]
    centre0 = np.median(now_last, axis=0)
    top = float(np.percentile(now_last[:, 2], 90))
    cps, confs = [], []
    for f in range(fld.num_frames):
        ends = fld.positions(np.array([t0, t_end]), frames=[f])[0]  # [h, w, 2, 3]
        moving = np.linalg.norm(ends[..., 1, :] - ends[..., 0, :], axis=-1) > config.segment.min_displacement
        near = np.linalg.norm(ends[..., 1, :2] - centre0[:2], axis=-1) < config.pool_radius
        face = ends[..., 1, 2] > top - config.top_band
        m = moving & near & face & (fld.confidence[f] > 0)
        cps.append(fld.control_points[f][m])
        confs.append(fld.confidence[f][m])
    cp, conf = np.concatenate(cps), np.concatenate(confs)
    good = conf >= config.min_track_confidence * conf.max() if len(conf) else conf > 0
    if good.sum() >= 3:
        cp = cp[good]
    if len(cp) < 3:  # fall back on the last frame's object pixels
        cp = fld.control_points[last, seg.pixels[:, 0], seg.pixels[:, 1]]

    def on_field(taus) -> np.ndarray:
        """[M,3] the field's own centre at each of taus [M] (s after now; past the span: end tangents)."""
        x = evaluate(cp, fld.normalized_time(t_end + np.asarray(taus, np.float64)))  # [N, M, 3]
        return np.median(x, axis=0)

    many, seg_turn = on_field, {}
    span_end = max(float(fld.time_span[1]), t_end)
    motion = None  # (centre at the span's end [3], heading, speed, turn rate) to go on with past the span
    if config.extrapolation == "arc":
        # past the field's span the centre goes on at the turn rate and speed of its curve's last stretch
        ts = np.linspace(max(t0, t_end - config.turn_window_s), span_end, 12)
        c = on_field(ts - t_end)
        v = np.diff(c[:, :2], axis=0) / np.diff(ts)[:, None]
        speed = float(np.median(np.linalg.norm(v, axis=1)))
        if speed > 0.02:
            tm = 0.5 * (ts[1:] + ts[:-1])
            th = np.unwrap(np.arctan2(v[:, 1], v[:, 0]))
            omega = float(np.clip(np.polyfit(tm, th, 1)[0], -config.max_turn_rate, config.max_turn_rate))
            motion = (on_field([span_end - t_end])[0], float(th[-1] + omega * (span_end - tm[-1])), speed, omega)
    elif config.extrapolation == "fit":
        motion = _fit_motion(on_field, t0, t_end, span_end, config)
    if motion is not None:
        p_end, h_end, speed, omega = motion

        def many(taus) -> np.ndarray:
            taus = np.asarray(taus, np.float64)
            out = on_field(taus)
            dt = t_end + taus - span_end
            past = dt > 0
            if past.any():
                out[past, :2] = p_end[:2] + _arc_step(dt[past], h_end, speed, omega)
                out[past, 2] = p_end[2]
            return out

        seg_turn = {"turn_rate": omega, "speed": speed}

    def track(tau: float) -> np.ndarray:
        return many([tau])[0]

    track.many = many

    centre = track(0.0)
    vel = (track(0.5) - centre) / 0.5
    seg.info = {"pooled_curves": int(len(cp)), "extrapolation": config.extrapolation,
                **seg_turn}
    return centre, vel, track, seg


def _arc_step(d: np.ndarray, heading: float, speed: float, omega: float) -> np.ndarray:
    """[M,2] displacement after d [M] s at ``speed`` from ``heading``, turning at ``omega`` rad/s."""
    if abs(omega) < 1e-3:  # the arc to second order in omega (smooth through 0, for the fit's derivatives)
        c, s = np.cos(heading), np.sin(heading)
        return speed * np.stack([d * c - 0.5 * omega * d ** 2 * s, d * s + 0.5 * omega * d ** 2 * c], 1)
    h = heading + omega * d
    return (speed / omega) * np.stack([np.sin(h) - np.sin(heading), np.cos(heading) - np.cos(h)], 1)


def _fit_motion(on_field, t0: float, t_end: float, span_end: float, config: InterceptConfig):
    """The centre's constant-speed motion over the field's whole span, by least squares: a straight line,
    or an arc of constant turn rate where that fits the span's centres clearly better (its residual at
    most ``turn_gain`` of the line's). Returns (centre at the span's end [3], heading, speed, turn rate),
    or None when the centre moves slower than 2 cm/s."""
    from scipy.optimize import least_squares

    ts = np.linspace(t0, span_end, 16)
    c = on_field(ts - t_end)
    tt = ts - span_end                                         # <= 0: seconds before the span's end
    A = np.stack([np.ones_like(tt), tt], 1)
    coef, *_ = np.linalg.lstsq(A, c[:, :2], rcond=None)        # [2,2]: centre at the end, velocity
    res_line = float(np.sqrt(((A @ coef - c[:, :2]) ** 2).sum(1).mean()))
    speed, heading = float(np.linalg.norm(coef[1])), float(np.arctan2(coef[1, 1], coef[1, 0]))
    if speed < 0.02:
        return None
    p_end = np.array([coef[0, 0], coef[0, 1], c[-1, 2]])

    def arc(x):  # x = (px, py, heading, speed, omega): the centre at times tt, minus the field's
        return (x[:2] + _arc_step(tt, x[2], x[3], x[4]) - c[:, :2]).ravel()

    fit = least_squares(arc, [p_end[0], p_end[1], heading, speed, 0.0],
                        bounds=([-np.inf, -np.inf, -np.inf, 0.0, -config.max_turn_rate],
                                [np.inf, np.inf, np.inf, np.inf, config.max_turn_rate]))
    res_arc = float(np.sqrt((fit.fun.reshape(-1, 2) ** 2).sum(1).mean()))
    if res_arc <= config.turn_gain * res_line:
        x = fit.x
        return np.array([x[0], x[1], c[-1, 2]]), float(x[2]), float(x[3]), float(x[4])
    return p_end, heading, speed, 0.0


def predict_with_forecast(backend, window, future_s: float, region_zoom: int = 1):
    """The backend's field of ``window``, with its own forecast ``future_s`` s past the last frame
    when it has one (``backend.supports_forecast``: the field's time span then ends ``future_s``
    after the last frame); otherwise the plain field, whose positions past the span are the
    end-tangent extrapolation. Read future positions with ``field.positions(t)`` either way.
    With ``region_zoom`` > 1 a backend with ``predict_moving`` returns its field of the moving region
    seen that many times larger (the crop's field: its points are in the world as any field's)."""
    opts = {"future_s": future_s} if future_s > 0 and getattr(backend, "supports_forecast", False) else {}
    if region_zoom > 1 and hasattr(backend, "predict_moving"):
        return backend.predict_moving(window, zoom=region_zoom, **opts)[0]
    return backend.predict(window, **opts)


def plan_intercept(window, backend, ee_start, config: InterceptConfig = InterceptConfig()) -> Plan:
    """Forecast-based intercept from a live clip.

    Args:
        window: FrameWindow-like clip (rgb [T,H,W,3], depth [T,H,W], intrinsics [3,3],
            cam_to_world [T,4,4], times [T] s); its last frame is "now".
        backend: ``traceany_ros.backends`` backend.
        ee_start [3]: end-effector position now.
    Returns:
        :class:`Plan` (pre-block, block) with ``info["forecast"]`` the object's centre path.
    """
    t0 = time.perf_counter()
    fld = predict_with_forecast(backend, window, config.forecast_s, config.region_zoom)
    try:
        centre, vel, track, seg = object_forecast(fld, config)
    except ValueError as e:
        plan = Plan.failure(str(e))
        plan.planning_time_s = time.perf_counter() - t0
        return plan
    # the object's centre is below its visible surface: put the track at the object's mid-height
    plan = plan_intercept_from_track(centre, vel, float(fld.times[-1]), ee_start, config, track=track,
                                     elapsed_s=time.perf_counter() - t0)
    plan.num_object_points = len(seg)
    forecast_s = float(fld.time_span[1] - fld.times[-1])
    plan.info.update(field=fld, backend=getattr(backend, "name", ""), forecast_s=forecast_s,
                     method=("field-forecast" if forecast_s > 0 else "field")
                     + (f"+{seg.info['extrapolation']}" if "turn_rate" in seg.info else "+tangent"),
                     forecast=track.many(np.arange(0, 2.0, 0.1)))
    plan.planning_time_s = time.perf_counter() - t0
    return plan
