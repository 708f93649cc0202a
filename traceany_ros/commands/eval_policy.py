"""``traceany eval-policy``: closed-loop success of a planner on a simulated task.

    traceany eval-policy --task pick-place-goal --episodes 100 --planner flow --json

Episode i uses seed ``--seed + i``. Reports the success rate with a Wilson 95 %
interval, grasp and place success separately, final position error (cm) and
yaw error (deg) of the object, and planning time (field prediction included);
``--video-dir`` writes GIFs of the first ``--gifs`` episodes.
"""
from __future__ import annotations

import json
import sys


def register(sub) -> None:
    from traceany_ros.sim.tasks import TASK_HELP, TASK_NAMES

    tasks = "; ".join(f"{k}: {v}" for k, v in TASK_HELP.items())
    p = sub.add_parser("eval-policy", help="closed-loop success rate of a planner on a simulated task",
                       description="Closed-loop success rate of a planner on a seeded simulated task. Tasks: "
                                   + tasks + ".")
    p.add_argument("--task", required=True, choices=list(TASK_NAMES), help=tasks)
    p.add_argument("--episodes", type=int, default=20)
    p.add_argument("--planner", default="flow-rigid",
                   choices=["trajfield", "flow", "flow-rigid", "static", "oracle", "oracle-field"],
                   help="trajfield = the network backend (the shipped checkpoint, or --checkpoint), flow / flow-rigid = "
                        "optical-flow backends, static = no-motion backend (baseline), oracle = ground-truth "
                        "plans, oracle-field = the field planners on a ground-truth field (their upper bound)")
    p.add_argument("--grasp-motion", default="field", choices=["field", "registration"],
                   help="goal-image tasks: object motion from the field's own tracks (field: confidence-weighted "
                        "Kabsch, refined by registration inside a trust region at most), or from goal "
                        "registration alone (registration: a baseline that ignores the tracks); the result's "
                        "plan_methods counts where each plan came from")
    p.add_argument("--planning-clock", default="wall", choices=["wall", "cpu"],
                   help="how the planning time a live task (intercept) charges is measured: wall = elapsed time, "
                        "cpu = this process's CPU time (on a machine shared with other jobs)")
    p.add_argument("--seed", type=int, default=0, help="seed of the first episode")
    p.add_argument("--checkpoint", default=None, help="model checkpoint for --planner trajfield")
    p.add_argument("--device", default="cpu")
    p.add_argument("--zoom", type=int, default=None,
                   help="--planner trajfield, goal-image tasks: the network sees the images this many times larger "
                        "(finer cells for small objects, more than zoom^2 the time; default 2)")
    p.add_argument("--selection", default=None, choices=["blend", "top"],
                   help="--planner trajfield, goal-image tasks: each refinement pass moves by the blend of the "
                        "network's candidate moves, or by the top-weighted one (default top)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--output", help="also write the JSON result here")
    p.add_argument("--video-dir", default=None, help="write GIFs of the first episodes here")
    p.add_argument("--gifs", type=int, default=3, help="how many episodes to record with --video-dir")
    p.set_defaults(func=run)


def _gif(path, result, task) -> None:
    import imageio
    import numpy as np

    frames = list(task.frames)
    if not frames:
        return
    head = []
    goal = getattr(task, "goal_observation", None)
    if goal is not None:  # show the goal image first
        head = [goal.rgb] * 10
    tag = np.zeros_like(frames[-1])
    tag[:] = (40, 160, 40) if result["success"] else (180, 40, 40)
    frames = head + frames + [frames[-1]] * 8 + [tag] * 2
    imageio.mimsave(path, frames, duration=0.08, loop=0)


def run(args) -> int:
    import os
    import platform
    import time

    import numpy as np
    from tqdm import tqdm

    from traceany_ros.policies.run import make_planner, run_episode, wilson_interval
    from traceany_ros.sim.tasks import TASK_NAMES, make_task

    if args.task not in TASK_NAMES:
        print(f"unknown task {args.task!r}; choose one of {list(TASK_NAMES)}", file=sys.stderr)
        return 2
    if args.episodes < 1:
        print("--episodes must be >= 1", file=sys.stderr)
        return 2
    planner = make_planner(args.planner, checkpoint=args.checkpoint, device=args.device, zoom=args.zoom,
                           selection=args.selection, grasp_motion=args.grasp_motion)
    if args.video_dir:
        os.makedirs(args.video_dir, exist_ok=True)
    rows = []
    t0 = time.time()
    for i in tqdm(range(args.episodes), desc=f"{args.task}/{args.planner}", file=sys.stderr, disable=None):
        seed = args.seed + i
        task = make_task(args.task, seed=seed)
        record = bool(args.video_dir) and i < args.gifs
        r = run_episode(task, planner, record=record, clock=args.planning_clock)
        if record:
            _gif(os.path.join(args.video_dir, f"{args.task}_{args.planner}_seed{seed}.gif"), r, task)
        r.pop("plan")
        r["seed"] = seed
        rows.append(r)
        task.close()
    n = len(rows)
    k = sum(bool(r["success"]) for r in rows)
    lo, hi = wilson_interval(k, n)

    def mean(key):
        v = [float(r[key]) for r in rows if key in r and np.isfinite(float(r[key]))]
        return float(np.mean(v)) if v else float("nan")

    def median(key):
        v = [float(r[key]) for r in rows if key in r and np.isfinite(float(r[key]))]
        return float(np.median(v)) if v else float("nan")

    result = {
        "task": args.task, "planner": args.planner, "episodes": n, "seed": args.seed,
        "grasp_motion": args.grasp_motion, "planning_clock": args.planning_clock,
        "success_rate": k / n, "ci_low": lo, "ci_high": hi,
        "grasp_success_rate": sum(bool(r.get("grasp_success")) for r in rows) / n,
        "place_success_rate": sum(bool(r.get("place_success")) for r in rows) / n,
        "planned_rate": sum(bool(r["planned"]) for r in rows) / n,
        "pos_error_cm_mean": mean("pos_error_cm"), "pos_error_cm_median": median("pos_error_cm"),
        "rot_error_deg_mean": mean("rot_error_deg"), "rot_error_deg_median": median("rot_error_deg"),
        "planning_time_s_mean": mean("planning_time_s"), "planning_time_s_median": median("planning_time_s"),
        "wall_s": round(time.time() - t0, 1),
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform()},
        "failed_seeds": [r["seed"] for r in rows if not r["success"]],
    }
    if any("stop_margin_cm" in r for r in rows):
        result["stop_margin_cm_mean"] = mean("stop_margin_cm")
    methods = [r["method"] for r in rows if r.get("method")]
    if methods:
        result["plan_methods"] = {m: methods.count(m) for m in sorted(set(methods))}
    result = {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in result.items()}
    text = json.dumps(result, default=float, allow_nan=False)
    if args.output:
        with open(args.output, "w") as f:
            f.write(json.dumps(result, indent=2, default=float, allow_nan=False) + "\n")
    if args.json:
        print(text)
    else:
        print(f"{'task':>22}: {args.task}\n{'planner':>22}: {args.planner}\n{'episodes':>22}: {n}")
        print(f"{'success':>22}: {k}/{n} = {k / n:.1%}  (Wilson 95 %: {lo:.1%} .. {hi:.1%})")
        for key in ("grasp_success_rate", "place_success_rate", "planned_rate"):
            print(f"{key:>22}: {result[key]:.1%}")
        for key in ("pos_error_cm", "rot_error_deg", "planning_time_s"):
            if result[key + "_mean"] is not None:
                print(f"{key:>22}: mean {result[key + '_mean']:.3g}  median {result[key + '_median']:.3g}")
        if "stop_margin_cm_mean" in result:
            print(f"{'stop margin (cm)':>22}: mean {result['stop_margin_cm_mean']:.3g} (short of the exit line)")
        if result["failed_seeds"]:
            print(f"{'failed seeds':>22}: {result['failed_seeds'][:30]}")
    sys.stdout.flush()
    return 0
