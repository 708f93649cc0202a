"""The plan a planner hands to a robot: end-effector waypoints with gripper commands.

Poses are in the world frame (z up), positions in metres, quaternions x y z w.
Execution semantics (``sim.tasks``' executor and the ROS message alike): the
robot moves the end effector (Panda ``panda_grasptarget``) in a straight line
to each waypoint in order, at the waypoint's ``speed`` (m/s, None = the
robot's default), then sets the gripper opening to the waypoint's
``gripper`` (metres; 0 = closed) and waits for it if it changed.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Waypoint:
    """One end-effector target. position [3], quaternion [4] xyzw, gripper width (m) after arriving."""

    label: str
    position: np.ndarray
    quaternion: np.ndarray
    gripper: float
    speed: float | None = None

    def __post_init__(self):
        self.position = np.asarray(self.position, np.float64).reshape(3)
        self.quaternion = np.asarray(self.quaternion, np.float64).reshape(4)
        self.gripper = float(self.gripper)


@dataclass
class Plan:
    """A plan, or the reason there is none.

    success: False means no plan; ``message`` says why.
    waypoints: ordered :class:`Waypoint` list (pick-and-place: pre-grasp, grasp,
        lift, carry, place, release).
    object_motion: [4,4] world rigid motion of the object, start -> goal (identity when unknown).
    fit_rmse: residual of the rigid fit (m); num_object_points: points that carried it.
    grasp: :class:`Waypoint` of the grasp itself (also in ``waypoints``), or None.
    planning_time_s: wall time of planning, including the field prediction.
    info: anything else worth logging (segment sizes, forecast, timings).
    """

    success: bool
    message: str = ""
    waypoints: list[Waypoint] = field(default_factory=list)
    object_motion: np.ndarray = field(default_factory=lambda: np.eye(4))
    fit_rmse: float = float("nan")
    num_object_points: int = 0
    grasp: Waypoint | None = None
    planning_time_s: float = 0.0
    info: dict = field(default_factory=dict)

    @staticmethod
    def failure(message: str, **info) -> "Plan":
        return Plan(success=False, message=message, info=dict(info))

    def labels(self) -> list[str]:
        return [w.label for w in self.waypoints]


def top_down_quaternion(yaw: float) -> np.ndarray:
    """[4] xyzw of a Panda hand pointing straight down, turned by ``yaw`` (rad) about world z.

    Convention (pybullet_data ``franka_panda/panda.urdf``): the hand's z axis points down and its
    finger (closing) axis is (sin yaw, -cos yaw, 0) in the world.
    """
    from scipy.spatial.transform import Rotation

    return (Rotation.from_euler("z", yaw) * Rotation.from_euler("x", np.pi)).as_quat()
