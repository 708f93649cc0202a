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

Tasks: ``pick-place-goal``, ``stack-goal``, ``intercept``.
"""
from __future__ import annotations


def _registry() -> dict:
    from traceany_ros.sim.tasks.pick_place import PickPlaceGoalTask, StackGoalTask

    reg = {"pick-place-goal": PickPlaceGoalTask, "stack-goal": StackGoalTask}
    try:
        from traceany_ros.sim.tasks.intercept import InterceptTask
    except ImportError:  # pragma: no cover - while intercept.py is being written
        return reg
    reg["intercept"] = InterceptTask
    return reg


TASK_NAMES = ("pick-place-goal", "stack-goal", "intercept")


def make_task(name: str, seed: int = 0, **kwargs):
    """Build task ``name`` (one of :data:`TASK_NAMES`) reset to ``seed``."""
    reg = _registry()
    if name not in reg:
        raise ValueError(f"unknown task {name!r}; choose one of {list(TASK_NAMES)}")
    return reg[name](seed=seed, **kwargs)
