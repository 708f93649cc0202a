"""Table-top environment shared by the tasks: its own BulletClient, a plane, a Panda, a camera.

Ravens-style split: the environment (this file) owns the physics client and
the robot and executes plans; a task (``pick_place.py``, ``intercept.py``)
builds a scene, says what success is, and gives its oracle the ground truth.

World: z up, the table is the plane z = 0, the Panda base at the origin, the
workspace in front of it (x 0.35..0.70 m, y -0.30..0.30 m). The camera
(``traceany_ros.sim.camera``) looks at the workspace from the front and renders
RGB-D 256x192 in the OpenCV optical convention.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from traceany_ros.sim import camera as cam
from traceany_ros.sim.panda import Panda, PandaConfig


@dataclass(frozen=True)
class EnvConfig:
    """Physics and camera settings of a table-top environment.

    time_step: physics step in seconds.
    camera: image size and field of view; eye/target: camera placement (world, m).
    record_every: with recording on, keep one video frame every this many physics steps.
    """

    time_step: float = 1.0 / 240.0
    camera: cam.CameraConfig = cam.CameraConfig(width=256, height=192, fov_deg=55.0)
    eye: tuple[float, float, float] = (0.88, 0.0, 0.50)
    target: tuple[float, float, float] = (0.50, 0.0, 0.0)
    panda: PandaConfig = PandaConfig()
    record_every: int = 16
    table_friction: float = 0.8


@dataclass
class Observation:
    """One RGB-D view. rgb [H,W,3] uint8, depth [H,W] float32 metres (z-depth, 0 = none),
    intrinsics [3,3], cam_to_world [4,4] (world <- OpenCV camera), time (s of simulation)."""

    rgb: np.ndarray
    depth: np.ndarray
    intrinsics: np.ndarray
    cam_to_world: np.ndarray
    time: float
    body: np.ndarray | None = field(default=None, repr=False)  # segmentation: ground truth, tasks/oracle only
    link: np.ndarray | None = field(default=None, repr=False)  # link index of each pixel's body (-1 = base)


def frame_window(observations: list[Observation]):
    """Stack observations into a ``traceany_ros.backends.FrameWindow`` (no ground truth)."""
    from traceany_ros.episode import FrameWindow

    return FrameWindow(rgb=np.stack([o.rgb for o in observations]),
                       depth=np.stack([o.depth for o in observations]).astype(np.float32),
                       intrinsics=np.asarray(observations[0].intrinsics, np.float32),
                       cam_to_world=np.stack([o.cam_to_world for o in observations]).astype(np.float32),
                       times=np.array([o.time for o in observations], np.float64))


class RealtimePacer:
    """Keeps a simulation at ``factor`` times real time (0: as fast as it goes): call it with the
    simulated time after each published frame; it sleeps while the simulation is ahead of the wall clock."""

    def __init__(self, factor: float):
        self.factor = float(factor)
        self._origin: tuple[float, float] | None = None  # (wall, simulated) time of the first call

    def __call__(self, sim_time: float) -> None:
        if self.factor <= 0:
            return
        if self._origin is None:
            self._origin = (time.monotonic(), sim_time)
        wall0, sim0 = self._origin
        lag = (sim_time - sim0) / self.factor - (time.monotonic() - wall0)
        if lag > 0:
            time.sleep(lag)


class TableEnv:
    """A DIRECT-mode PyBullet world with a table plane, a Panda and a fixed camera."""

    def __init__(self, config: EnvConfig = EnvConfig()):
        import pybullet as pb
        import pybullet_data
        from pybullet_utils import bullet_client

        from traceany_ros.sim.camera import quiet_stdout

        self.config = config
        with quiet_stdout():  # pybullet prints its argv on connect; keep stdout clean for --json
            self.client = bullet_client.BulletClient(connection_mode=pb.DIRECT)
        c = self.client
        c.setAdditionalSearchPath(pybullet_data.getDataPath())
        c.setGravity(0, 0, -9.81)
        c.setTimeStep(config.time_step)
        c.setPhysicsEngineParameter(numSolverIterations=50, deterministicOverlappingPairs=1)
        self.plane = c.loadURDF("plane.urdf", [0, 0, 0])
        c.changeDynamics(self.plane, -1, lateralFriction=config.table_friction)
        self.panda = Panda(c, config.panda)
        self.cam_to_world = cam.look_at(config.eye, config.target)
        self.intrinsics = cam.intrinsics(config.camera)
        self.steps = 0
        self.recording = False
        self.frames: list[np.ndarray] = []
        self._step_hooks = []

    @property
    def time(self) -> float:
        return self.steps * self.config.time_step

    def close(self) -> None:
        if self.client is not None:
            self.client.disconnect()
            self.client = None

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    # ------------------------------------------------------------------ scene
    def add_box(self, half_extents, position, yaw: float = 0.0, rgba=(0.8, 0.2, 0.2, 1.0), mass: float = 0.1,
                friction: float = 1.0) -> int:
        """A box resting at ``position`` [3] (its centre), turned by ``yaw`` about z. Returns the body id."""
        c = self.client
        he = [float(v) for v in half_extents]
        col = c.createCollisionShape(c.GEOM_BOX, halfExtents=he)
        vis = c.createVisualShape(c.GEOM_BOX, halfExtents=he, rgbaColor=list(rgba))
        body = c.createMultiBody(mass, col, vis, basePosition=list(map(float, position)),
                                 baseOrientation=c.getQuaternionFromEuler([0, 0, float(yaw)]))
        c.changeDynamics(body, -1, lateralFriction=friction, spinningFriction=0.001, rollingFriction=0.0)
        return body

    def pose(self, body: int) -> np.ndarray:
        """[4,4] world pose of a body's base."""
        pos, q = self.client.getBasePositionAndOrientation(body)
        T = np.eye(4)
        T[:3, :3] = np.array(self.client.getMatrixFromQuaternion(q)).reshape(3, 3)
        T[:3, 3] = pos
        return T

    def set_pose(self, body: int, T: np.ndarray) -> None:
        from scipy.spatial.transform import Rotation

        self.client.resetBasePositionAndOrientation(body, list(map(float, T[:3, 3])),
                                                    Rotation.from_matrix(T[:3, :3]).as_quat().tolist())
        self.client.resetBaseVelocity(body, [0, 0, 0], [0, 0, 0])

    # ------------------------------------------------------------------ time
    def add_step_hook(self, fn) -> None:
        """Call ``fn()`` before every physics step (e.g. a conveyor force)."""
        self._step_hooks.append(fn)

    def step(self) -> None:
        for fn in self._step_hooks:
            fn()
        self.client.stepSimulation()
        self.steps += 1
        if self.recording and self.steps % self.config.record_every == 0:
            self.frames.append(self.render(with_seg=False).rgb)

    def wait(self, seconds: float) -> None:
        for _ in range(int(round(seconds / self.config.time_step))):
            self.step()

    def render(self, with_seg: bool = True) -> Observation:
        rgb, depth, body, link = cam.render(self.client, self.cam_to_world, self.config.camera)
        return Observation(rgb=rgb, depth=depth, intrinsics=self.intrinsics.copy(),
                           cam_to_world=self.cam_to_world.copy(), time=self.time,
                           body=body if with_seg else None, link=link if with_seg else None)

    # ------------------------------------------------------------------ execution
    def execute(self, plan, on_waypoint=None) -> dict:
        """Follow a :class:`traceany_ros.policies.plan.Plan` with the Panda.

        ``on_waypoint(label)`` is called after each waypoint (and its gripper action).
        Returns {"tracking_error_m": max end-effector error at the waypoints}.
        """
        err = 0.0
        for wp in plan.waypoints:
            err = max(err, self.panda.move_to(wp.position, wp.quaternion, self.step, speed=wp.speed))
            if abs(wp.gripper - self.panda.commanded_width) > 1e-4:
                self.panda.gripper_to(wp.gripper, self.step)
            if on_waypoint is not None:
                on_waypoint(wp.label)
        return {"tracking_error_m": err}


class Task:
    """Base of the tasks: a seeded scene in its own :class:`TableEnv` (ravens-style).

    A subclass sets ``name`` and ``config_class`` and implements ``reset(seed)``,
    which starts with :meth:`_new_world`; it adds ``execute``, ``success``,
    ``metrics`` and ``oracle_info``.
    """

    name = "task"
    kind = "task"   # what a planner must make: "pick-place", "rearrange", "articulated", "intercept"
    config_class: type = None

    def __init__(self, seed: int = 0, config=None, env_config: EnvConfig = EnvConfig()):
        self.config = config if config is not None else self.config_class()
        self.env_config = env_config
        self.env: TableEnv | None = None
        self.reset(seed)

    def reset(self, seed: int) -> Observation:
        raise NotImplementedError

    def _new_world(self, seed: int) -> None:
        """Close the previous world; set ``seed``, ``rng`` (seeded generator) and a fresh ``env``."""
        if self.env is not None:
            self.env.close()
        self.seed = int(seed)
        self.rng = np.random.default_rng(self.seed)
        self.env = TableEnv(self.env_config)

    def render(self) -> Observation:
        """Current RGB-D view (OpenCV optical, 256x192 by default)."""
        return self.env.render()

    def segmentation(self) -> tuple[np.ndarray, np.ndarray]:
        """(body [H,W], link [H,W]) ids of the current view (ground truth: the oracle-field only)."""
        obs = self.env.render()
        return obs.body, obs.link

    def goal_segmentation(self) -> tuple[np.ndarray, np.ndarray]:
        """(body, link) ids of the goal image (goal tasks; ground truth: the oracle-field only)."""
        return self.goal_observation.body, self.goal_observation.link

    def part_motion(self, body: int, link: int) -> np.ndarray:
        """[4,4] true world motion start -> goal of a body's link (goal tasks; identity = stays)."""
        return np.eye(4)

    @property
    def ee_pose(self):
        return self.env.panda.ee_pose()

    def close(self) -> None:
        if self.env is not None:
            self.env.close()
            self.env = None
