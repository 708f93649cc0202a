"""Oracle planners: the same path builders fed with ground truth from the task.

``plan_oracle(task)`` dispatches on the task: goal-image tasks get the true
object pose, size and goal pose (-> :func:`grasp.plan_from_motion`; every
moved object's for ``rearrange-goal``), ``articulated-goal`` the handle's pose
and the door's true motion (-> :func:`articulated.plan_articulated_from_motion`);
the intercept tasks get the object's true position and velocity, and its true
curved path where it curves (-> :func:`intercept.plan_intercept_from_track`). They bound what a perfect
trajectory field could achieve with these path builders.
"""
from __future__ import annotations

import time

import numpy as np

from traceany_ros.policies.plan import Plan


def box_surface_points(pose: np.ndarray, half_extents, spacing: float = 0.004) -> np.ndarray:
    """[N,3] world points on the top face and the four sides of a box at ``pose`` [4,4]."""
    hx, hy, hz = (float(v) for v in half_extents)
    xs = np.arange(-hx, hx + 1e-9, spacing)
    ys = np.arange(-hy, hy + 1e-9, spacing)
    zs = np.arange(-hz, hz + 1e-9, spacing)
    X, Y = np.meshgrid(xs, ys, indexing="ij")
    top = np.stack([X.ravel(), Y.ravel(), np.full(X.size, hz)], 1)
    sides = []
    for x in (-hx, hx):
        Yz, Z = np.meshgrid(ys, zs, indexing="ij")
        sides.append(np.stack([np.full(Yz.size, x), Yz.ravel(), Z.ravel()], 1))
    for y in (-hy, hy):
        Xz, Z = np.meshgrid(xs, zs, indexing="ij")
        sides.append(np.stack([Xz.ravel(), np.full(Xz.size, y), Z.ravel()], 1))
    local = np.concatenate([top] + sides)
    return local @ pose[:3, :3].T + pose[:3, 3]


def plan_oracle(task, config=None) -> Plan:
    """Plan with the task's ground truth (see the module doc)."""
    t0 = time.perf_counter()
    gt = task.oracle_info()
    if "objects" in gt:
        from traceany_ros.policies.grasp import GraspConfig, plan_from_motion
        from traceany_ros.policies.rearrange import combine_plans, order_moves

        cfg = config or GraspConfig()
        plans = [plan_from_motion(box_surface_points(o["start_pose"], o["half_extents"]),
                                  o["goal_pose"] @ np.linalg.inv(o["start_pose"]), cfg) for o in gt["objects"]]
        order = order_moves([p.waypoints[1].position for p in plans], [p.waypoints[4].position for p in plans])
        plan = combine_plans([plans[i] for i in order])
    elif "handle_pose" in gt:
        from traceany_ros.policies.articulated import ArticulatedConfig, plan_articulated_from_motion

        cfg = config or ArticulatedConfig()
        plan = plan_articulated_from_motion(box_surface_points(gt["handle_pose"], gt["handle_half_extents"]),
                                            gt["motion"], cfg)
    elif "goal_pose" in gt:
        from traceany_ros.policies.grasp import GraspConfig, plan_from_motion

        cfg = config or GraspConfig()
        motion = gt["goal_pose"] @ np.linalg.inv(gt["start_pose"])
        plan = plan_from_motion(box_surface_points(gt["start_pose"], gt["half_extents"]), motion, cfg)
    elif "velocity" in gt:
        from traceany_ros.policies.intercept import InterceptConfig, plan_intercept_from_track

        cfg = config or InterceptConfig()
        plan = plan_intercept_from_track(gt["position"], gt["velocity"], gt["time"], task.ee_pose[0], cfg,
                                         object_half_size=gt["half_size"], track=gt.get("track"))
    else:
        raise ValueError(f"task {getattr(task, 'name', task)!r} gives no ground truth the oracle understands")
    plan.planning_time_s = time.perf_counter() - t0
    return plan
