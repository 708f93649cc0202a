"""``articulated-goal``: open a door (a jointed body) to the angle the goal image shows.

A door panel hangs on a fixed post by a revolute joint about the vertical;
a handle stands on top of the panel near its free end. The goal image shows
the same scene with the door turned open by 40-75 degrees (either way). The
robot must grasp the handle from above and carry it along the door's arc:
a straight pull would fight the hinge. The joint has friction, so the door
stays where it is left.

Success: the door's angle within ``angle_tol_deg`` of the goal's, and the
gripper has let go. Grasp success: the door turned at least
``moved_min_deg`` towards the goal while the gripper held the handle.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from traceany_ros.sim.tasks.env import Observation, Task


@dataclass(frozen=True)
class ArticulatedTaskConfig:
    """Door geometry, scene sampling and tolerances (metres, degrees, N m)."""

    hinge_x: tuple[float, float] = (0.45, 0.54)
    hinge_y: tuple[float, float] = (-0.10, 0.10)
    panel_length: tuple[float, float] = (0.13, 0.16)
    panel_thickness: float = 0.015
    panel_height: float = 0.06
    post_half: float = 0.012
    handle_half: float = 0.012
    handle_height: float = 0.04
    handle_inset: float = 0.022
    opening_deg: tuple[float, float] = (40.0, 75.0)
    panel_yaw_deg: float = 35.0
    joint_friction: float = 0.25
    panel_mass: float = 0.3
    angle_tol_deg: float = 7.0
    moved_min_deg: float = 10.0


def _yaw_matrix(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])


class ArticulatedGoalTask(Task):
    """See the module doc. Use::

        task = make_task("articulated-goal", seed=0)
        obs, goal = task.render(), task.goal_observation
        plan = plan_articulated(frame_window([obs]), goal.rgb, goal.depth, backend)   # policies.articulated
        task.execute(plan); task.success()
    """

    name = "articulated-goal"
    kind = "articulated"

    config_class = ArticulatedTaskConfig

    def reset(self, seed: int) -> Observation:
        self._new_world(seed)
        c, r, env = self.config, self.rng, self.env
        cl = env.client
        self.hinge = np.array([r.uniform(*c.hinge_x), r.uniform(*c.hinge_y)])
        self.length = float(r.uniform(*c.panel_length))
        # closed, the panel runs across the camera's view (within panel_yaw_deg of the y axis, either way)
        self.yaw0 = float((np.pi / 2 if r.uniform() < 0.5 else -np.pi / 2)
                          + np.deg2rad(r.uniform(-c.panel_yaw_deg, c.panel_yaw_deg)))
        side = 1.0 if r.uniform() < 0.5 else -1.0
        self.goal_angle = side * np.deg2rad(r.uniform(*c.opening_deg))
        ph, pt, L = c.panel_height, c.panel_thickness, self.length
        post_h = ph + 0.006
        z_mid = 0.003 + ph / 2
        post_col = cl.createCollisionShape(cl.GEOM_BOX, halfExtents=[c.post_half, c.post_half, post_h / 2],
                                           collisionFramePosition=[0, 0, post_h / 2 - z_mid])
        post_vis = cl.createVisualShape(cl.GEOM_BOX, halfExtents=[c.post_half, c.post_half, post_h / 2],
                                        visualFramePosition=[0, 0, post_h / 2 - z_mid], rgbaColor=[0.35, 0.35, 0.4, 1])
        off = [c.post_half + L / 2 + 0.002, 0, 0]
        panel_col = cl.createCollisionShape(cl.GEOM_BOX, halfExtents=[L / 2, pt / 2, ph / 2],
                                            collisionFramePosition=off)
        panel_vis = cl.createVisualShape(cl.GEOM_BOX, halfExtents=[L / 2, pt / 2, ph / 2], visualFramePosition=off,
                                         rgbaColor=[0.75, 0.55, 0.3, 1])
        hh = c.handle_height
        handle_col = cl.createCollisionShape(cl.GEOM_BOX, halfExtents=[c.handle_half, c.handle_half, hh / 2])
        handle_vis = cl.createVisualShape(cl.GEOM_BOX, halfExtents=[c.handle_half, c.handle_half, hh / 2],
                                          rgbaColor=[0.15, 0.2, 0.7, 1])
        self.handle_radius = c.post_half + 0.002 + L - c.handle_inset
        self.door = cl.createMultiBody(
            baseMass=0, baseCollisionShapeIndex=post_col, baseVisualShapeIndex=post_vis,
            basePosition=[self.hinge[0], self.hinge[1], z_mid],
            baseOrientation=cl.getQuaternionFromEuler([0, 0, self.yaw0]),
            linkMasses=[c.panel_mass, 0.02], linkCollisionShapeIndices=[panel_col, handle_col],
            linkVisualShapeIndices=[panel_vis, handle_vis],
            linkPositions=[[0, 0, 0], [self.handle_radius, 0, ph / 2 + hh / 2]],
            linkOrientations=[[0, 0, 0, 1]] * 2, linkInertialFramePositions=[off, [0, 0, 0]],
            linkInertialFrameOrientations=[[0, 0, 0, 1]] * 2, linkParentIndices=[0, 1],
            linkJointTypes=[cl.JOINT_REVOLUTE, cl.JOINT_FIXED], linkJointAxis=[[0, 0, 1], [0, 0, 1]])
        cl.changeDynamics(self.door, 1, lateralFriction=1.2)
        cl.changeDynamics(self.door, 0, jointDamping=0.05)
        cl.setJointMotorControl2(self.door, 0, cl.VELOCITY_CONTROL, targetVelocity=0, force=c.joint_friction)
        self._turned_while_held = 0.0
        env.wait(0.2)
        self.start_angle = self.angle()
        self.goal_observation = self._render_at(self.goal_angle)
        self.initial_observation = self.render()
        return self.initial_observation

    def angle(self) -> float:
        """The door's joint angle now (rad; 0 = closed)."""
        return float(self.env.client.getJointState(self.door, 0)[0])

    def _render_at(self, angle: float) -> Observation:
        cl = self.env.client
        a0 = self.angle()
        cl.resetJointState(self.door, 0, angle)
        obs = self.env.render()
        cl.resetJointState(self.door, 0, a0)
        return obs

    def handle_pose(self, angle: float | None = None) -> np.ndarray:
        """[4,4] world pose of the handle's centre at the door angle ``angle`` (default: now)."""
        a = self.angle() if angle is None else angle
        T = np.eye(4)
        T[:3, :3] = _yaw_matrix(self.yaw0 + a)
        z = 0.003 + self.config.panel_height + self.config.handle_height / 2
        T[:3, 3] = [self.hinge[0], self.hinge[1], z] + _yaw_matrix(self.yaw0 + a) @ [self.handle_radius, 0, 0]
        return T

    # ------------------------------------------------------------------ acting
    def execute(self, plan, record: bool = False) -> dict:
        env = self.env
        env.recording = record
        env.frames = [env.render(with_seg=False).rgb] if record else []
        a0 = self.angle()

        def on_waypoint(label):
            if label == "release":  # the turn made while the gripper held the handle
                self._turned_while_held = (self.angle() - a0) * np.sign(self.goal_angle - a0)

        if plan.success:
            env.execute(plan, on_waypoint=on_waypoint)
        env.wait(0.5)
        self.frames = list(env.frames)
        env.recording = False
        return self.metrics()

    def angle_error_deg(self) -> float:
        return float(abs(np.rad2deg(self.angle() - self.goal_angle)))

    def success(self) -> bool:
        released = not self.env.client.getContactPoints(self.env.panda.id, self.door)
        return bool(self.angle_error_deg() <= self.config.angle_tol_deg and released)

    def grasp_success(self) -> bool:
        return bool(np.rad2deg(self._turned_while_held) >= self.config.moved_min_deg)

    def metrics(self) -> dict:
        ok = self.success()
        pos = float(np.linalg.norm(self.handle_pose()[:2, 3] - self.handle_pose(self.goal_angle)[:2, 3]))
        return {"success": ok, "grasp_success": self.grasp_success(), "place_success": ok,
                "pos_error_cm": 100 * pos, "rot_error_deg": self.angle_error_deg()}

    def part_motion(self, body: int, link: int) -> np.ndarray:
        if body == self.door and link >= 0:
            return self.handle_pose(self.goal_angle) @ np.linalg.inv(self.handle_pose(self.start_angle))
        return np.eye(4)

    def oracle_info(self) -> dict:
        """Ground truth for the oracle: the handle's pose now and at the goal [4,4], its half size, the
        hinge (world xy) and the door's motion start -> goal [4,4] (a turn about the hinge)."""
        c = self.config
        T0, T1 = self.handle_pose(self.start_angle), self.handle_pose(self.goal_angle)
        return {"handle_pose": T0, "handle_goal_pose": T1,
                "handle_half_extents": np.array([c.handle_half, c.handle_half, c.handle_height / 2]),
                "hinge": self.hinge.copy(), "motion": T1 @ np.linalg.inv(T0)}
