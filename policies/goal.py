"""One entry point for the goal-image planners (what ``eval-policy`` and the planner node call).

    plan = plan_goal("rearrange", window, goal_rgb, goal_depth, backend)

``task`` is the kind of goal: ``pick-place`` (one object moved: :mod:`grasp`),
``rearrange`` (several at once: :mod:`rearrange`) or ``articulated`` (a door
or drawer: :mod:`articulated`). Every one predicts the live clip plus the goal
image with ``backend`` and takes the objects and their motions from the
field's tracks; ``motion_source="registration"`` is the baseline that
registers onto the goal view instead.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from traceany_ros.policies.plan import Plan

GOAL_TASKS = ("pick-place", "rearrange", "articulated")


def plan_goal(task: str, window, goal_rgb: np.ndarray, goal_depth: np.ndarray | None, backend,
              motion_source: str = "field", grasp_config=None) -> Plan:
    """Plan for goal task ``task`` (one of :data:`GOAL_TASKS`) on ``window`` (the live clip, last frame
    "now") and the goal image; see the module doc. Raises ValueError for an unknown task."""
    from traceany_ros.policies.grasp import GraspConfig, plan_pick_place

    if task not in GOAL_TASKS:
        raise ValueError(f"unknown goal task {task!r}; choose one of {list(GOAL_TASKS)}")
    gcfg = replace(grasp_config or GraspConfig(), motion_source=motion_source)
    if task == "rearrange":
        from traceany_ros.policies.rearrange import plan_rearrange

        return plan_rearrange(window, goal_rgb, goal_depth, backend, gcfg)
    if task == "articulated":
        from traceany_ros.policies.articulated import ArticulatedConfig, plan_articulated

        acfg = ArticulatedConfig()
        return plan_articulated(window, goal_rgb, goal_depth, backend,
                                replace(acfg, grasp=replace(acfg.grasp, motion_source=motion_source)))
    return plan_pick_place(window, goal_rgb, goal_depth, backend, gcfg)
