"""Planning time of the goal-conditioned grasp and intercept planners (field prediction included)."""
from __future__ import annotations

import time

import numpy as np


def add_arguments(p) -> None:
    p.add_argument("--backend", default="flow", help="flow | model | static")
    p.add_argument("--checkpoint", default=None, help="model checkpoint (backend model)")
    p.add_argument("--episodes", type=int, default=5, help="scenes per planner")


def run(args) -> dict:
    """Each planner as ``traceany eval-policy`` runs it (``policies.run.make_planner``: backend ``model`` is the
    ``trajfield`` planner, with its goal-image and intercept settings), timed on seeded scenes."""
    from traceany_ros.policies.run import make_planner
    from traceany_ros.sim.tasks import make_task

    planner = make_planner("trajfield" if args.backend == "model" else args.backend, checkpoint=args.checkpoint)
    grasp_s, intercept_s = [], []
    for seed in range(args.episodes):
        task = make_task("pick-place-goal", seed=seed)
        t0 = time.perf_counter()
        planner(task)
        grasp_s.append(time.perf_counter() - t0)
        task.close()
        task = make_task("intercept", seed=seed)
        window = task.observe()
        t0 = time.perf_counter()
        planner(task)
        intercept_s.append(time.perf_counter() - t0)
        task.close()
    return {"backend": args.backend, "episodes": args.episodes,
            "pick_place_plan_s_median": round(float(np.median(grasp_s)), 3),
            "pick_place_plan_s_max": round(float(np.max(grasp_s)), 3),
            "intercept_plan_s_median": round(float(np.median(intercept_s)), 3),
            "intercept_plan_s_max": round(float(np.max(intercept_s)), 3),
            "intercept_clip_frames": len(window), "image": list(window[0].rgb.shape[:2])}
