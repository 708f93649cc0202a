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

PLANNERS = ("trajfield", "flow", "flow-rigid", "static", "oracle", "oracle-field")
# planning is timed (the intercept's box moves on meanwhile): the planners' flow-rigid (tracker preset
# "planners") leaves out the segment ICP and the carried track ends, and runs DIS at half resolution
# the backends as the planners use them; the network, on goal images, sees the images twice as large (its
# 16-pixel query cells are as large as a box at the table; :mod:`traceany_ros.model.zoom`) and each
# refinement pass takes its top-weighted move (a goal image lies far from the clip: a blend of staying and
# the far match is right for neither); on pick-place-goal seeds 1000-1029 (design seeds, not the evaluated 0-99) the network's plans
# came right 0 of 30 times at zoom 1 with the blend and 22 of 30 with these
PLANNER_BACKEND_OPTIONS = {"flow-rigid": {"preset": "planners"}, "model": {"zoom": 2, "selection": "top"}}
# the shipped network's learned forecast (its curves 0.3 s past the last frame) puts the intercept's mover
# further off than its observed curves continued on their arc (intercept seeds 0-7: 0.5 s ahead 5-10 cm
# against 0.3-7 cm), so the intercepts continue the observed curves, on the line or arc that fits the
# object's centre over the whole clip (``extrapolation="fit"``: 2 s ahead 5.1 cm median against the last
# stretch's arc's 12.8 cm on those seeds), pooling every curve on the object: the network's confidence on a
# mover is low throughout (0.1-0.6), and keeping only its most confident curves left 3 of them on some
# design seeds (intercept seeds 1000-1011: 2 s ahead 4.3 cm median against 5.6, the worst 5.5 against 22)
INTERCEPT_FORECAST_S = 0.0


def _warm_imports() -> None:
    """What the planners import on their first plan (segmentation graphs, k-d trees, rotations, ICP)."""
    import open3d  # noqa: F401
    import scipy.sparse.csgraph  # noqa: F401
    import scipy.spatial  # noqa: F401
    from scipy.spatial.transform import Rotation  # noqa: F401


class FieldPlanner:
    """Planner on trajectory fields predicted by ``backend`` (goal-image tasks and intercept)."""

    def __init__(self, backend, name: str, warm_up: bool = True, grasp_config=None, intercept_config=None,
                 goal_backend=None):
        self.backend = backend
        self.goal_backend = goal_backend   # the backend of the goal-image tasks (default: ``backend``)
        self.name = name
        self.grasp_config = grasp_config
        self.intercept_config = intercept_config
        if warm_up:
            self.warm_up()

    def warm_up(self) -> None:
        """One untimed prediction on a synthetic clip (imports, allocations), as a robot would at start-up."""
        from traceany_ros.episode import FrameWindow
        import traceany_ros.policies.articulated  # noqa: F401
        import traceany_ros.policies.grasp  # noqa: F401
        import traceany_ros.policies.intercept  # noqa: F401
        import traceany_ros.policies.rearrange  # noqa: F401

        _warm_imports()
        rng = np.random.default_rng(0)
        h, w = 192, 256
        rgb = rng.integers(0, 255, (2, h, w, 3), dtype=np.uint8)
        K = np.array([[200.0, 0, w / 2], [0, 200.0, h / 2], [0, 0, 1]], np.float32)
        self.backend.predict(FrameWindow(rgb=rgb, depth=np.ones((2, h, w), np.float32), intrinsics=K,
                                         cam_to_world=np.repeat(np.eye(4, dtype=np.float32)[None], 2, 0),
                                         times=np.array([0.0, 0.1])))

    def __call__(self, task):
        from traceany_ros.sim.tasks.env import frame_window

        kind = getattr(task, "kind", "")
        if kind in ("pick-place", "rearrange", "articulated"):
            from traceany_ros.policies.goal import plan_goal

            obs, goal = task.render(), task.goal_observation
            gcfg = self.grasp_config
            return plan_goal(kind, frame_window([obs]), goal.rgb, goal.depth, self.goal_backend or self.backend,
                             motion_source=gcfg.motion_source if gcfg is not None else "field", grasp_config=gcfg)
        if hasattr(task, "observe"):
            from traceany_ros.policies.intercept import InterceptConfig, plan_intercept

            frames = task.observations or task.observe()
            return plan_intercept(frame_window(frames), self.backend, task.ee_pose[0],
                                  self.intercept_config or InterceptConfig())
        raise ValueError(f"task {getattr(task, 'name', task)!r} has neither a goal image nor observe()")


class OracleFieldPlanner(FieldPlanner):
    """The field planners on a perfect field (:class:`traceany_ros.policies.oracle.OracleFieldBackend`):
    what they make of a field that is exactly right, the mark a learned backend aims at."""

    def __init__(self, grasp_config=None):
        super().__init__(None, "oracle-field", warm_up=False, grasp_config=grasp_config)
        import traceany_ros.policies.articulated  # noqa: F401
        import traceany_ros.policies.rearrange  # noqa: F401

        _warm_imports()

    def __call__(self, task):
        from traceany_ros.policies.oracle import OracleFieldBackend

        self.backend = OracleFieldBackend(task)
        return super().__call__(task)


class OraclePlanner:
    """Ground-truth planner (:mod:`traceany_ros.policies.oracle`); imports its path builders up front,
    as a robot would at start-up, so that the timed first plan does not pay for them."""

    name = "oracle"

    def __init__(self):
        import traceany_ros.policies.articulated  # noqa: F401
        import traceany_ros.policies.grasp  # noqa: F401
        import traceany_ros.policies.intercept  # noqa: F401
        import traceany_ros.policies.oracle  # noqa: F401
        import traceany_ros.policies.rearrange  # noqa: F401
        from traceany_ros.policies.plan import top_down_quaternion

        top_down_quaternion(0.0)  # scipy's rotations

    def __call__(self, task):
        from traceany_ros.policies.oracle import plan_oracle

        if hasattr(task, "observe") and not task.observations:
            task.observe()  # same time passes as for the field planners
        return plan_oracle(task)


def make_planner(name: str, checkpoint: str | None = None, device: str = "cpu", grasp_motion: str = "field",
                 zoom: int | None = None, selection: str | None = None):
    """``trajfield`` = the model backend (needs a checkpoint), ``flow`` = the optical-flow backend,
    ``flow-rigid`` = flow tracks moved with their rigid parts (:mod:`traceany_ros.tracker.rigid`),
    ``static`` = the no-motion backend (a baseline: what depth alone gives), ``oracle`` = ground truth.

    ``grasp_motion``: where the goal-image planner's object motion comes from ("field" = the field's own
    tracks, refined by registration at most; "registration" = goal registration alone, a baseline);
    see :class:`traceany_ros.policies.grasp.GraspConfig`. ``zoom`` and ``selection``: the network's input zoom
    and refinement on goal images (trajfield; :class:`traceany_ros.backends.ModelBackend`; None:
    ``PLANNER_BACKEND_OPTIONS``). The intercepts see the clip at the network's own cells and then its moving
    region twice as large (``InterceptConfig.region_zoom``), without the learned forecast
    (``INTERCEPT_FORECAST_S``).
    """
    from traceany_ros.backends import make_backend
    from traceany_ros.policies.grasp import GraspConfig

    gcfg = GraspConfig(motion_source=grasp_motion)
    if name == "oracle":
        return OraclePlanner()
    if name == "oracle-field":
        return OracleFieldPlanner(grasp_config=gcfg)
    if name in ("flow", "flow-rigid", "static"):
        return FieldPlanner(make_backend(name, **PLANNER_BACKEND_OPTIONS.get(name, {})), name, grasp_config=gcfg)
    if name == "trajfield":
        try:
            backend = make_backend("model", checkpoint=checkpoint, device=device)
            goal = PLANNER_BACKEND_OPTIONS["model"]
            goal_backend = backend.with_options(zoom=goal["zoom"] if zoom is None else zoom,
                                                selection=goal["selection"] if selection is None else selection)
        except (FileNotFoundError, ImportError, AttributeError) as e:
            raise SystemExit(f"trajfield planner needs a trained model checkpoint ({e}); "
                             "train one with `traceany train` or pass --checkpoint PATH") from e
        except ValueError as e:  # a bad option (zoom, selection)
            raise SystemExit(f"trajfield planner: {e}") from e
        from traceany_ros.policies.intercept import InterceptConfig

        return FieldPlanner(backend, "trajfield", grasp_config=gcfg, goal_backend=goal_backend,
                            intercept_config=InterceptConfig(forecast_s=INTERCEPT_FORECAST_S, extrapolation="fit",
                                                             min_track_confidence=0.0))
    raise ValueError(f"unknown planner {name!r}; choose one of {PLANNERS}")


def run_episode(task, planner, record: bool = False, clock: str = "wall") -> dict:
    """Observe (live tasks), plan (timed) and execute on ``task``; returns the task's metrics plus planning info.

    Only planning is timed: a live task (intercept) records its camera clip first, and then
    charges the measured planning time as time in which the world moves on. ``clock``: "wall"
    (elapsed time) or "cpu" (this process's CPU time, all its threads: what the planning costs
    without the other jobs of a shared machine; single-threaded planning equals its unloaded wall time).
    """
    if clock not in ("wall", "cpu"):
        raise ValueError(f"clock must be 'wall' or 'cpu', got {clock!r}")
    now = time.perf_counter if clock == "wall" else time.process_time
    if hasattr(task, "observe") and not task.observations:
        task.observe()
    t0 = now()
    try:
        plan = planner(task)
        err = ""
    except ValueError as e:  # a planner that cannot plan says why; the episode counts as a failure
        from traceany_ros.policies.plan import Plan

        plan, err = Plan.failure(str(e)), str(e)
    plan_s = now() - t0
    plan.planning_time_s = plan_s  # measured here, not trusted from the planner: tasks charge it
    metrics = task.execute(plan, record=record)
    out = dict(metrics)
    out.update(planned=bool(plan.success), message=plan.message or err, planning_time_s=plan_s,
               method=plan.info.get("method", ""), plan=plan)
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
