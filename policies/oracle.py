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


class OracleFieldBackend:
    """A perfect trajectory field from the task's ground truth (the upper bound of any backend).

    It stands in for a field backend behind the same field planners (``eval-policy --planner
    oracle-field``): what the planners make of a field that is exactly right. Goal tasks: every
    pixel of the current frames stays put until the last current frame, then moves with its
    part's true motion start -> goal (``task.part_motion(body, link)``) to the goal time; the goal
    frame's pixels come from their part's start. Intercept tasks: the box's pixels move with its
    true centre path (``task.centre_at(t)``, the forecast included). Curves are least-squares
    B-splines through the true positions. ``supports_forecast``: ``predict(window, future_s)``
    extends the span ``future_s`` past the last frame, as the network's forecast does.
    """

    name = "oracle-field"
    supports_forecast = True

    def __init__(self, task, stride: int = 4, num_control_points: int = 10, samples: int = 24):
        self.task, self.stride, self.k, self.samples = task, int(stride), int(num_control_points), int(samples)
        self.device = "cpu"

    def predict(self, window, future_s: float = 0.0):
        from traceany_ros.geometry import check_window, grid_points_world
        from traceany_ros.field import TrajectoryField, fit_trajectory

        t, h, w = check_window(window)
        pts, valid = grid_points_world(window, self.stride, 0)           # [T,h,w,3]
        times = np.asarray(window.times, np.float64)
        span = (float(times[0]), float(times[-1]) + max(0.0, float(future_s)))
        ts = np.unique(np.concatenate([np.linspace(*span, self.samples), times]))
        s = (ts - span[0]) / max(span[1] - span[0], 1e-9)
        moved = []                                                         # (frame, mask [h,w], positions [N,M,3])
        if getattr(self.task, "kind", "") == "intercept":
            obs = self.task.observations[-t:]
            centres = np.stack([self.task.centre_at(x) for x in ts])       # [M,3]
            for f in range(t):
                on = obs[f].body[::self.stride, ::self.stride][:h, :w] == self.task.target
                c_f = self.task.centre_at(times[f])
                moved.append((f, on, pts[f][on][:, None, :] + (centres - c_f)[None]))
        else:
            segs = [self.task.segmentation()] * (t - 1) + [self.task.goal_segmentation()]
            t_now, t_goal = times[-2], times[-1]
            a = np.clip((ts - t_now) / max(t_goal - t_now, 1e-9), 0.0, 1.0)    # [M] 0 until now, 1 at the goal
            for f in range(t):
                body, link = (x[::self.stride, ::self.stride][:h, :w] for x in segs[f])
                for b, l in {(int(b), int(l)) for b, l in zip(body.ravel(), link.ravel()) if b >= 0}:
                    M = self.task.part_motion(b, l)
                    if np.allclose(M, np.eye(4)):
                        continue
                    on = (body == b) & (link == l)
                    x = pts[f][on]
                    x0 = x if f < t - 1 else (x - M[:3, 3]) @ M[:3, :3]       # the goal frame's pixels at the start
                    x1 = x0 @ M[:3, :3].T + M[:3, 3]
                    moved.append((f, on, x0[:, None, :] + a[None, :, None] * (x1 - x0)[:, None, :]))
        # still pixels keep K equal control points; only the moving ones are fitted
        cp = np.repeat(pts[:, :, :, None, :].astype(np.float32), self.k, axis=3)
        for f, on, pos in moved:
            if on.any():
                cp[f][on] = fit_trajectory(s, pos, self.k).astype(np.float32)
        return TrajectoryField(cp, valid.astype(np.float32), times, stride=self.stride, pixel_offset=0,
                               image_size=(h, w), time_span=span, meta={"backend": self.name})
