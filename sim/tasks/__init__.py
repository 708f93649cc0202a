"""Ravens-style task suite (imported as ``traceany_ros.sim.tasks``).

Each task owns a :class:`~traceany_ros.sim.tasks.env.TableEnv` (its own DIRECT
``BulletClient``, a Panda, a camera rendering RGB-D 256x192, OpenCV optical
convention), is seeded and reproducible, and has ``render()``,
``execute(plan)``, ``success()``, ``metrics()`` and ``oracle_info()`` (ground
truth for the oracle planner only)::

    from traceany_ros.sim.tasks import make_task
    task = make_task("pick-place-goal", seed=0)
    obs = task.render()                       # Observation: rgb, depth, intrinsics, cam_to_world, time
    goal = task.goal_observation              # goal-image tasks
    task.execute(plan); task.success()

Tasks (:data:`TASK_NAMES`, one line each in :data:`TASK_HELP`): ``pick-place-goal``,
``stack-goal``, ``rearrange-goal``, ``articulated-goal`` (goal image: the planner reads
``task.kind``), ``intercept``, ``intercept-curved`` (live clip: ``task.observe()``).
"""
from __future__ import annotations


def _registry() -> dict:
    from traceany_ros.sim.tasks.articulated import ArticulatedGoalTask
    from traceany_ros.sim.tasks.intercept import CurvedInterceptTask, InterceptTask
    from traceany_ros.sim.tasks.pick_place import PickPlaceGoalTask, RearrangeGoalTask, StackGoalTask

    return {"pick-place-goal": PickPlaceGoalTask, "stack-goal": StackGoalTask, "rearrange-goal": RearrangeGoalTask,
            "articulated-goal": ArticulatedGoalTask, "intercept": InterceptTask,
            "intercept-curved": CurvedInterceptTask}


TASK_NAMES = ("pick-place-goal", "stack-goal", "rearrange-goal", "articulated-goal", "intercept", "intercept-curved")
TASK_HELP = {
    "pick-place-goal": "move one box to where the goal image shows it (distractors stay)",
    "stack-goal": "stack one box on another, as the goal image shows",
    "rearrange-goal": "move two or three boxes at once to their places in the goal image",
    "articulated-goal": "open a door (a jointed body) to the angle in the goal image, along its arc",
    "intercept": "stop a box sliding straight across the table before the far line",
    "intercept-curved": "stop a box sliding across on a curve (a constant-velocity forecast misses it)",
}


def make_task(name: str, seed: int = 0, **kwargs):
    """Build task ``name`` (one of :data:`TASK_NAMES`) reset to ``seed``."""
    reg = _registry()
    if name not in reg:
        raise ValueError(f"unknown task {name!r}; choose one of {list(TASK_NAMES)}")
    return reg[name](seed=seed, **kwargs)
