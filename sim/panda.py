"""Franka Panda in a given PyBullet client: IK, gripper, waypoint following.

The arm is pybullet_data's ``franka_panda/panda.urdf`` on a fixed base. The
end effector is the ``panda_grasptarget`` link (between the finger pads).
Poses are world-frame ``(position [3] metres, quaternion [4] x y z w)``.
Top-down poses point the hand's z axis straight down; their yaw turns the
finger closing axis (the hand's y axis) in the table plane.

Never touches PyBullet's global client: every call goes through ``self.client``
(a ``pybullet_utils.bullet_client.BulletClient``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np


ARM_JOINTS = tuple(range(7))
FINGER_JOINTS = (9, 10)
EE_LINK = 11
HAND_LINK = 8
MAX_WIDTH = 0.08

_LOWER = np.array([-2.9671, -1.8326, -2.9671, -3.1416, -2.9671, -0.0873, -2.9671])
_UPPER = np.array([2.9671, 1.8326, 2.9671, 0.0, 2.9671, 3.8223, 2.9671])
_FORCES = np.array([87.0, 87.0, 87.0, 87.0, 12.0, 12.0, 12.0])


@dataclass(frozen=True)
class PandaConfig:
    """How the simulated Panda moves.

    base_position: world position of the base [3].
    rest_joints: null-space rest posture (and initial joint angles) [7].
    speed: Cartesian end-effector speed while following a path, m/s.
    ik_every: physics steps between IK solves while tracking.
    settle_steps: extra physics steps after the last point of each segment.
    gripper_force: N per finger; finger_speed: m/s per finger.
    """

    base_position: tuple[float, float, float] = (0.0, 0.0, 0.0)
    rest_joints: tuple[float, ...] = (0.0, -0.3, 0.0, -2.2, 0.0, 2.0, 0.785)
    speed: float = 0.5
    ik_every: int = 2
    settle_steps: int = 30
    gripper_force: float = 60.0
    finger_friction: float = 1.5
    finger_speed: float = 0.1


class Panda:
    """A Panda in ``client``.

    Args:
        client: a ``BulletClient`` owned by the environment.
        config: :class:`PandaConfig`.
    """

    def __init__(self, client, config: PandaConfig = PandaConfig()):
        import pybullet_data

        self.client = client
        self.config = config
        client.setAdditionalSearchPath(pybullet_data.getDataPath())
        flags = client.URDF_ENABLE_CACHED_GRAPHICS_SHAPES
        self.id = client.loadURDF("franka_panda/panda.urdf", list(config.base_position), [0, 0, 0, 1],
                                  useFixedBase=True, flags=flags)
        for j in FINGER_JOINTS:
            client.changeDynamics(self.id, j, lateralFriction=config.finger_friction,
                                  spinningFriction=0.01, frictionAnchor=True)
        # Couple the two fingers (as the pybullet Panda examples do).
        c = client.createConstraint(self.id, FINGER_JOINTS[0], self.id, FINGER_JOINTS[1],
                                    jointType=client.JOINT_GEAR, jointAxis=[1, 0, 0],
                                    parentFramePosition=[0, 0, 0], childFramePosition=[0, 0, 0])
        client.changeConstraint(c, gearRatio=-1, erp=0.1, maxForce=50)
        self.reset()

    # ------------------------------------------------------------------ state
    def reset(self, joints: Sequence[float] | None = None, width: float = MAX_WIDTH) -> None:
        """Teleport to ``joints`` [7] (default the rest posture) with the gripper at ``width``."""
        q = self.config.rest_joints if joints is None else joints
        for j, v in zip(ARM_JOINTS, q):
            self.client.resetJointState(self.id, j, float(v))
        for j in FINGER_JOINTS:
            self.client.resetJointState(self.id, j, width / 2)
        self._hold(np.asarray(q, float), width)

    def joint_positions(self) -> np.ndarray:
        """[7] arm joint angles."""
        return np.array([s[0] for s in self.client.getJointStates(self.id, ARM_JOINTS)])

    def ee_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """(position [3], quaternion xyzw [4]) of the grasp target."""
        s = self.client.getLinkState(self.id, EE_LINK, computeForwardKinematics=True)
        return np.array(s[4]), np.array(s[5])

    def gripper_width(self) -> float:
        """Measured finger opening, metres."""
        return float(sum(s[0] for s in self.client.getJointStates(self.id, FINGER_JOINTS)))

    @property
    def commanded_width(self) -> float:
        """Last commanded finger opening, metres."""
        return self._width

    # ------------------------------------------------------------------ control
    def ik(self, position, quaternion) -> np.ndarray:
        """Null-space IK: [7] joint angles reaching the pose, near the rest posture."""
        rest = list(self.config.rest_joints)
        sol = self.client.calculateInverseKinematics(
            self.id, EE_LINK, list(map(float, position)), list(map(float, quaternion)),
            lowerLimits=list(_LOWER), upperLimits=list(_UPPER), jointRanges=list(_UPPER - _LOWER),
            restPoses=rest, maxNumIterations=100, residualThreshold=1e-5)
        return np.clip(np.asarray(sol[:7]), _LOWER, _UPPER)

    def _hold(self, q: np.ndarray, width: float) -> None:
        self.client.setJointMotorControlArray(
            self.id, list(ARM_JOINTS), self.client.POSITION_CONTROL, targetPositions=list(map(float, q)),
            forces=list(_FORCES), positionGains=[0.3] * 7)
        self.set_gripper(width)

    def set_gripper(self, width: float) -> None:
        """Command the finger opening (metres, 0..0.08)."""
        w = float(np.clip(width, 0.0, MAX_WIDTH))
        self._width = w
        for j in FINGER_JOINTS:
            self.client.setJointMotorControl2(self.id, j, self.client.POSITION_CONTROL, targetPosition=w / 2,
                                              force=self.config.gripper_force, positionGain=0.2,
                                              maxVelocity=self.config.finger_speed)

    def move_to(self, position, quaternion, step: Callable[[], None], speed: float | None = None,
                settle_steps: int | None = None) -> float:
        """Move the end effector along a straight line to the pose.

        Args:
            position [3], quaternion [4] xyzw: target pose in the world.
            step: advances the world by one physics step (the env's, which may record frames).
            speed: m/s (default config.speed).
        Returns:
            final position error, metres.
        """
        from scipy.spatial.transform import Rotation, Slerp

        speed = self.config.speed if speed is None else speed
        p0, q0 = self.ee_pose()
        p1 = np.asarray(position, float)
        dt = self.client.getPhysicsEngineParameters()["fixedTimeStep"]
        dist = float(np.linalg.norm(p1 - p0))
        ang = float((Rotation.from_quat(q0).inv() * Rotation.from_quat(quaternion)).magnitude())
        n = max(1, int(np.ceil(max(dist / speed, ang / 3.0) / dt)))
        slerp = Slerp([0, 1], Rotation.from_quat([q0, quaternion]))
        q = self.joint_positions()
        for i in range(1, n + 1):
            if i % self.config.ik_every == 0 or i == n:
                a = i / n
                q = self.ik(p0 + a * (p1 - p0), slerp(a).as_quat())
                self._hold(q, self._width)
            step()
        for _ in range(self.config.settle_steps if settle_steps is None else settle_steps):
            if _ % 10 == 0:
                q = self.ik(p1, quaternion)
                self._hold(q, self._width)
            step()
        return float(np.linalg.norm(self.ee_pose()[0] - p1))

    def gripper_to(self, width: float, step: Callable[[], None], steps: int = 60) -> None:
        """Open/close the gripper and wait ``steps`` physics steps."""
        self.set_gripper(width)
        for _ in range(steps):
            step()
