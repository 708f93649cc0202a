"""Planner registry and one closed-loop episode: what ``traceany eval-policy`` and the demo share.

    planner = make_planner("flow")            # "trajfield" | "flow" | "oracle"
    result = run_episode(make_task("pick-place-goal", seed=3), planner)

A planner is a callable ``planner(task) -> Plan`` that sees only what a real
robot would see (camera frames, goal image, its own end-effector pose), except
the oracle, which reads the task's ground truth.
"""
from __future__ import annotations

import time

import numpy as np

PLANNERS = ("trajfield", "flow", "oracle")


class FieldPlanner:
    """Planner on trajectory fields predicted by ``backend`` (goal-image tasks and intercept)."""

    def __init__(self, backend, name: str):
        self.backend = backend
        self.name = name

    def __call__(self, task):
        from traceany_ros.sim.tasks.env import frame_window

        if hasattr(task, "goal_observation"):
            from traceany_ros.policies.grasp import plan_pick_place

            obs, goal = task.render(), task.goal_observation
            return plan_pick_place(frame_window([obs]), goal.rgb, goal.depth, self.backend)
        if hasattr(task, "observe"):
            from traceany_ros.policies.intercept import plan_intercept

            frames = task.observe()
            return plan_intercept(frame_window(frames), self.backend, task.ee_pose[0])
        raise ValueError(f"task {getattr(task, 'name', task)!r} has neither a goal image nor observe()")


class OraclePlanner:
    name = "oracle"

    def __call__(self, task):
        from traceany_ros.policies.oracle import plan_oracle

        if hasattr(task, "observe"):
            task.observe()  # same time passes as for the field planners
        return plan_oracle(task)


def make_planner(name: str, checkpoint: str | None = None, device: str = "cpu"):
    """``trajfield`` = the model backend (needs a checkpoint), ``flow`` = the optical-flow backend,
    ``oracle`` = ground truth."""
    from traceany_ros.backends import make_backend

    if name == "oracle":
        return OraclePlanner()
    if name == "flow":
        return FieldPlanner(make_backend("flow"), "flow")
    if name == "trajfield":
        try:
            backend = make_backend("model", checkpoint=checkpoint, device=device)
        except (FileNotFoundError, ImportError, AttributeError) as e:
            raise SystemExit(f"trajfield planner needs a trained model checkpoint ({e}); "
                             "train one with `traceany train` or pass --checkpoint PATH") from e
        return FieldPlanner(backend, "trajfield")
    raise ValueError(f"unknown planner {name!r}; choose one of {PLANNERS}")


def run_episode(task, planner, record: bool = False) -> dict:
    """Plan (timed) and execute on ``task``; returns the task's metrics plus planning info."""
    t0 = time.perf_counter()
    try:
        plan = planner(task)
        err = ""
    except ValueError as e:  # a planner that cannot plan says why; the episode counts as a failure
        from traceany_ros.policies.plan import Plan

        plan, err = Plan.failure(str(e)), str(e)
    plan_s = time.perf_counter() - t0
    metrics = task.execute(plan, record=record)
    out = dict(metrics)
    out.update(planned=bool(plan.success), message=plan.message or err, planning_time_s=plan_s,
               method=plan.info.get("method", ""), plan=plan)
    budget = getattr(getattr(task, "config", None), "latency_s", None)
    if budget is not None:  # tasks where the world moves while the planner thinks
        out["over_latency_budget"] = bool(plan_s > budget)
    return out


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (95 % by default)."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))
