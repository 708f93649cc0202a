"""Goal-conditioned articulation: open a door or drawer to the state the goal image shows.

    plan = plan_articulated(window, goal_rgb, goal_depth, make_backend("flow-rigid"))
    # plan.waypoints: pre-grasp, grasp, pull-1 .. pull-n (along the handle's path), release, retreat

The goal image becomes the clip's last frame; the backend predicts the field;
the moved part (door or drawer with its handle) is the group of pixels the
field moves (:func:`grasp.motions_from_field`), its motion the confidence-
weighted Kabsch fit of its tracks. A single-joint part moves by a screw
about a fixed axis: an upright motion (a turn by theta about z and a shift t)
is a pure turn about the point c with (I - R) c = t, unless theta is near
zero (a drawer: a straight slide). The handle is the part's highest piece;
the gripper grasps it from above and follows its path, the arc of the turn
(or the slide) cut into steps of ``step_deg`` (``step_m``), turning with it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from traceany_ros.policies.grasp import (GraspConfig, goal_clip, motions_from_field, top_down_grasp, yaw_of,
                                         _wrap_half_turn)
from traceany_ros.policies.plan import Plan, Waypoint, top_down_quaternion


@dataclass(frozen=True)
class ArticulatedConfig:
    """Path of the articulation (metres, degrees, m/s).

    handle_band: points within this of the part's top are the handle.
    min_turn_deg: below this the motion is a slide (drawer), above a turn about its centre (door).
    step_deg / step_m: path step along the arc / the slide.
    approach_height: pre-grasp and retreat height above the grasp / the path's end.
    grasp_depth: grasp this far below the handle's top.
    pull_speed: end-effector speed along the path.
    grasp: settings of the field's motion (segmentation, Kabsch, refinement).
    """

    handle_band: float = 0.025
    min_turn_deg: float = 5.0
    step_deg: float = 8.0
    step_m: float = 0.02
    approach_height: float = 0.08
    grasp_depth: float = 0.025
    pull_speed: float = 0.1
    fast_speed: float = 0.6
    grasp: GraspConfig = GraspConfig(refine_max_yaw=10.0)


def screw_path(motion: np.ndarray, point: np.ndarray, config: ArticulatedConfig = ArticulatedConfig()):
    """Where ``point`` [3] goes along the single-joint motion ``motion`` [4,4] (upright: yaw + shift).

    Returns (positions [n,3], turns [n] rad, info): the arc about the turn's centre (door) or the
    straight slide (drawer), from just after the start to the end, in steps of ``step_deg`` / ``step_m``.
    """
    p = np.asarray(point, np.float64)
    theta = yaw_of(motion[:3, :3])
    t = np.asarray(motion[:3, 3], np.float64)
    end = motion[:3, :3] @ p + t
    if abs(np.rad2deg(theta)) < config.min_turn_deg:
        n = max(1, int(np.ceil(np.linalg.norm(end[:2] - p[:2]) / config.step_m)))
        s = np.arange(1, n + 1) / n
        return p + s[:, None] * (end - p), np.zeros(n), {"joint": "prismatic", "slide_m": float(np.linalg.norm(end - p))}
    R2 = motion[:2, :2]
    centre = np.linalg.solve(np.eye(2) - R2, t[:2])
    n = max(1, int(np.ceil(abs(np.rad2deg(theta)) / config.step_deg)))
    turns = theta * np.arange(1, n + 1) / n
    rel = p[:2] - centre
    out = []
    for a in turns:
        c, s = np.cos(a), np.sin(a)
        out.append([centre[0] + c * rel[0] - s * rel[1], centre[1] + s * rel[0] + c * rel[1],
                    p[2] + (end[2] - p[2]) * a / theta])
    return np.array(out), turns, {"joint": "revolute", "centre": centre, "turn_deg": float(np.rad2deg(theta))}


def plan_articulated_from_motion(handle_points: np.ndarray, motion: np.ndarray,
                                 config: ArticulatedConfig = ArticulatedConfig()) -> Plan:
    """Grasp the handle seen as ``handle_points`` [N,3] and carry it along ``motion``'s screw path."""
    g = top_down_grasp(handle_points, GraspConfig(grasp_depth=config.grasp_depth, top_band=0.008))
    path, turns, pinfo = screw_path(motion, g.position, config)
    # close the fingers along the path's first step: a finger then pushes the handle along the path
    # (a grip across the path would pull by friction alone and let the handle slip out)
    d = path[0] - g.position
    if np.linalg.norm(d[:2]) > 1e-6:
        g.yaw = _wrap_half_turn(float(np.arctan2(d[1], d[0])) + np.pi / 2)
    # the hand turns with the part, without a half-turn flip on the way: of the grasp's two yaws
    # (the gripper is symmetric) take the one whose path stays nearest the wrist's middle
    g.yaw = min((g.yaw, g.yaw + np.pi, g.yaw - np.pi), key=lambda y: max(abs(y), abs(y + turns[-1])))
    up = np.array([0, 0, 1.0])
    q0 = top_down_quaternion(g.yaw)
    wps = [Waypoint("pre-grasp", g.position + config.approach_height * up, q0, 0.08, config.fast_speed),
           Waypoint("grasp", g.position, q0, 0.0, config.pull_speed)]
    for i, (pos, a) in enumerate(zip(path, turns)):
        wps.append(Waypoint(f"pull-{i + 1}", pos, top_down_quaternion(g.yaw + a), 0.0,
                            config.pull_speed))
    last = wps[-1]
    wps.append(Waypoint("release", last.position, last.quaternion, 0.08, config.pull_speed))
    wps.append(Waypoint("retreat", last.position + config.approach_height * up, last.quaternion, 0.08,
                        config.fast_speed))
    return Plan(success=True, message="ok", waypoints=wps, object_motion=np.asarray(motion, np.float64),
                grasp=wps[1], info={"path": path, "grasp_width": g.width, **pinfo})


def handle_points(points: np.ndarray, config: ArticulatedConfig = ArticulatedConfig()) -> np.ndarray:
    """The handle of a moved part's points [N,3]: the highest piece (within ``handle_band`` of its top)."""
    top = float(np.percentile(points[:, 2], 99.5))
    h = points[points[:, 2] > top - config.handle_band]
    return h if len(h) >= 3 else points


def plan_articulated(window, goal_rgb: np.ndarray, goal_depth: np.ndarray | None, backend,
                     config: ArticulatedConfig = ArticulatedConfig()) -> Plan:
    """Plan to move a jointed part (door, drawer) to its state in the goal image; args as
    :func:`traceany_ros.policies.grasp.plan_pick_place`. ``plan.info["method"]`` says where the motion came from."""
    t0 = time.perf_counter()
    gcfg = config.grasp
    clip = goal_clip(window, goal_rgb, goal_depth, gcfg.goal_dt)
    t_pred = time.perf_counter()
    fld = backend.predict(clip)
    pred_s = time.perf_counter() - t_pred
    try:
        pts, info = motions_from_field(fld, clip, frame=np.asarray(window.rgb).shape[0] - 1, config=gcfg,
                                       max_objects=1)[0]
        plan = plan_articulated_from_motion(handle_points(pts, config), info["motion"], config)
    except ValueError as e:
        p = Plan.failure(str(e), predict_s=pred_s, method="none")
        p.planning_time_s = time.perf_counter() - t0
        return p
    plan.fit_rmse = float(info.get("rmse", np.nan))
    plan.num_object_points = int(info["num_points"])
    plan.info.update({k: v for k, v in info.items() if k != "motion"}, predict_s=pred_s, field=fld,
                     backend=getattr(backend, "name", type(backend).__name__))
    plan.planning_time_s = time.perf_counter() - t0
    return plan
