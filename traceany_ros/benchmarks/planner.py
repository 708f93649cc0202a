"""Planning time of the goal-conditioned grasp and intercept planners (field prediction included)."""
from __future__ import annotations

import time

import numpy as np


def add_arguments(p) -> None:
    p.add_argument("--backend", default="flow", help="flow | model | static")
    p.add_argument("--checkpoint", default=None, help="model checkpoint (backend model)")
    p.add_argument("--episodes", type=int, default=5, help="scenes per planner")


def run(args) -> dict:
    from traceany_ros.backends import make_backend
    from traceany_ros.policies.grasp import plan_pick_place
    from traceany_ros.policies.intercept import plan_intercept
    from traceany_ros.sim.tasks import make_task
    from traceany_ros.sim.tasks.env import frame_window

    opts = {"checkpoint": args.checkpoint} if args.backend == "model" else {}
    backend = make_backend(args.backend, **opts)
    grasp_s, intercept_s = [], []
    for seed in range(args.episodes):
        task = make_task("pick-place-goal", seed=seed)
        obs, goal = task.render(), task.goal_observation
        t0 = time.perf_counter()
        plan_pick_place(frame_window([obs]), goal.rgb, goal.depth, backend)
        grasp_s.append(time.perf_counter() - t0)
        task.close()
        task = make_task("intercept", seed=seed)
        window = frame_window(task.observe())
        t0 = time.perf_counter()
        plan_intercept(window, backend, task.ee_pose[0])
        intercept_s.append(time.perf_counter() - t0)
        task.close()
    return {"backend": args.backend, "episodes": args.episodes,
            "pick_place_plan_s_median": round(float(np.median(grasp_s)), 3),
            "pick_place_plan_s_max": round(float(np.max(grasp_s)), 3),
            "intercept_plan_s_median": round(float(np.median(intercept_s)), 3),
            "intercept_plan_s_max": round(float(np.max(intercept_s)), 3),
            "intercept_clip_frames": int(window.rgb.shape[0]), "image": list(window.rgb.shape[1:3])}
