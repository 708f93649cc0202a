"""Goal-image tasks: ``pick-place-goal`` and ``stack-goal``.

Both show the robot the current view and a goal image of the same scene with
one box moved (the goal is rendered at reset by teleporting the box to its goal
pose and back). Success: the box rests within ``pos_tol`` (xy) and ``yaw_tol``
of its goal pose (a uniformly coloured box looks the same after a half turn, so
yaw is compared modulo 180 degrees), upright, and the gripper has let go.
Grasp success: the box rose at least 3 cm when the plan's ``lift`` waypoint was reached.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from traceany_ros.sim.tasks.env import Observation, Task

PALETTE = ((0.85, 0.15, 0.15, 1), (0.15, 0.65, 0.2, 1), (0.15, 0.3, 0.85, 1), (0.9, 0.75, 0.1, 1),
           (0.6, 0.2, 0.7, 1), (0.95, 0.5, 0.1, 1))


@dataclass(frozen=True)
class GoalTaskConfig:
    """Scene sampling and success tolerances of the goal-image tasks (metres, degrees)."""

    workspace_x: tuple[float, float] = (0.38, 0.66)
    workspace_y: tuple[float, float] = (-0.22, 0.22)
    size_long: tuple[float, float] = (0.045, 0.06)   # box footprint, long side
    size_short: tuple[float, float] = (0.03, 0.04)   # short side (the grasp width)
    height: tuple[float, float] = (0.035, 0.05)
    num_distractors: int = 2
    min_move: float = 0.10          # goal at least this far from the start (xy)
    max_yaw_change_deg: float = 60.0
    min_clearance: float = 0.09     # between box centres
    base_clearance: float = 0.14    # stack-goal: between the top box and the (larger) base
    pos_tol: float = 0.03
    yaw_tol_deg: float = 15.0
    lift_min: float = 0.03


def _yaw(T: np.ndarray) -> float:
    return float(np.arctan2(T[1, 0], T[0, 0]))


def yaw_error_deg(T_a: np.ndarray, T_b: np.ndarray, symmetry_deg: float = 180.0) -> float:
    """Smallest yaw difference between two poses modulo the object's symmetry, degrees."""
    d = np.rad2deg(_yaw(T_a) - _yaw(T_b))
    d = (d + symmetry_deg / 2) % symmetry_deg - symmetry_deg / 2
    return float(abs(d))


class GoalImageTask(Task):
    """Base of the goal-image tasks: move ``self.target`` to ``self.goal_pose``.

    Use::

        task = make_task("pick-place-goal", seed=3)
        obs, goal = task.render(), task.goal_observation
        plan = plan_pick_place(frame_window([obs]), goal.rgb, goal.depth, backend)   # policies.grasp
        task.execute(plan); print(task.success(), task.metrics())
    """

    name = "goal-image"
    kind = "pick-place"

    config_class = GoalTaskConfig

    # ------------------------------------------------------------------ scene
    def reset(self, seed: int) -> Observation:
        """Build a fresh scene for ``seed`` (deterministic) and return the current view."""
        self._new_world(seed)
        self._grasped = None
        self._lift_z = None
        self._build()
        self.env.wait(0.3)  # let everything settle
        self.start_pose = self.env.pose(self.target)
        self.goal_observation = self._render_goal()
        self.initial_observation = self.render()
        return self.initial_observation

    def _sample_box(self):
        c, r = self.config, self.rng
        half = np.array([r.uniform(*c.size_long), r.uniform(*c.size_short), r.uniform(*c.height)]) / 2
        return half

    def _free_xy(self, taken: list[np.ndarray], avoid_min: float | None = None) -> np.ndarray:
        c = self.config
        for _ in range(200):
            xy = np.array([self.rng.uniform(*c.workspace_x), self.rng.uniform(*c.workspace_y)])
            if all(np.linalg.norm(xy - t) >= (avoid_min or c.min_clearance) for t in taken):
                return xy
        raise RuntimeError(f"could not place an object without overlap (seed {self.seed}); "
                           "widen the workspace or use fewer distractors")

    def _add_target(self):
        """Place the target box at a random free spot; returns (colour order, taken xy list, xy, yaw)."""
        r = self.rng
        colors = list(r.permutation(len(PALETTE)))
        taken: list[np.ndarray] = []
        self.half_extents = self._sample_box()
        xy = self._free_xy(taken)
        taken.append(xy)
        yaw = r.uniform(-np.pi / 2, np.pi / 2)
        self.target = self.env.add_box(self.half_extents, [xy[0], xy[1], self.half_extents[2]], yaw,
                                       rgba=PALETTE[colors[0]])
        return colors, taken, xy, yaw

    def _build(self) -> None:
        raise NotImplementedError

    def _render_goal(self) -> Observation:
        """Teleport the target to its goal pose, render, put it back."""
        env = self.env
        env.set_pose(self.target, self.goal_pose)
        goal = env.render()
        env.set_pose(self.target, self.start_pose)
        return goal

    # ------------------------------------------------------------------ acting
    def execute(self, plan, record: bool = False) -> dict:
        """Run ``plan`` (see ``traceany_ros.policies.plan``) in the simulator; returns :meth:`metrics`.

        With ``record`` the frames of the execution are kept in ``self.frames`` ([H,W,3] uint8 each).
        """
        env = self.env
        env.recording = record
        env.frames = []
        if record:
            env.frames.append(env.render(with_seg=False).rgb)
        z0 = self.start_pose[2, 3]

        def on_waypoint(label):
            if label == "lift":
                self._lift_z = float(env.pose(self.target)[2, 3]) - z0

        if plan.success:
            env.execute(plan, on_waypoint=on_waypoint)
        env.wait(0.5)  # let the object come to rest
        self.frames = list(env.frames)
        env.recording = False
        return self.metrics()

    # ------------------------------------------------------------------ scoring
    def final_errors(self) -> tuple[float, float]:
        """(xy position error m, yaw error deg modulo 180) of the target against its goal."""
        T = self.env.pose(self.target)
        return (float(np.linalg.norm(T[:2, 3] - self.goal_pose[:2, 3])), yaw_error_deg(T, self.goal_pose))

    def _rests_at_goal_height(self, T: np.ndarray) -> bool:
        return abs(T[2, 3] - self.goal_pose[2, 3]) < 0.015 and T[2, 2] > np.cos(np.deg2rad(15))

    def success(self) -> bool:
        """Place success: within tolerance of the goal pose, upright, at the goal height, released."""
        T = self.env.pose(self.target)
        pos, yaw = self.final_errors()
        released = not self._in_gripper()
        return bool(pos <= self.config.pos_tol and yaw <= self.config.yaw_tol_deg
                    and self._rests_at_goal_height(T) and released)

    def grasp_success(self) -> bool:
        return self._lift_z is not None and self._lift_z >= self.config.lift_min

    def _in_gripper(self) -> bool:
        pts = self.env.client.getContactPoints(self.env.panda.id, self.target)
        return len(pts) > 0

    def metrics(self) -> dict:
        pos, yaw = self.final_errors()
        ok = self.success()
        return {"success": ok, "grasp_success": self.grasp_success(), "place_success": ok,
                "pos_error_cm": 100 * pos, "rot_error_deg": yaw}

    # ------------------------------------------------------------------ ground truth (oracle only)
    def part_motion(self, body: int, link: int) -> np.ndarray:
        return self.goal_pose @ np.linalg.inv(self.start_pose) if body == self.target else np.eye(4)

    def oracle_info(self) -> dict:
        """Ground truth for the oracle: start/goal poses [4,4], half extents [3], body id."""
        return {"start_pose": self.start_pose.copy(), "goal_pose": self.goal_pose.copy(),
                "half_extents": self.half_extents.copy(), "body": self.target}


class PickPlaceGoalTask(GoalImageTask):
    """Pick one box and place it where the goal image shows it (distractors stay put)."""

    name = "pick-place-goal"

    def _build(self) -> None:
        c, r, env = self.config, self.rng, self.env
        colors, taken, xy, yaw = self._add_target()
        # goal: far enough from the start, clear of everything
        for _ in range(200):
            gxy = self._free_xy([])
            if np.linalg.norm(gxy - xy) >= c.min_move:
                break
        taken.append(gxy)
        gyaw = yaw + np.deg2rad(r.uniform(-c.max_yaw_change_deg, c.max_yaw_change_deg))
        self.goal_pose = np.eye(4)
        cz, sz = np.cos(gyaw), np.sin(gyaw)
        self.goal_pose[:3, :3] = [[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]]
        self.goal_pose[:3, 3] = [gxy[0], gxy[1], self.half_extents[2]]
        self.distractors = []
        for i in range(c.num_distractors):
            half = self._sample_box()
            dxy = self._free_xy(taken)
            taken.append(dxy)
            self.distractors.append(env.add_box(half, [dxy[0], dxy[1], half[2]], r.uniform(-np.pi, np.pi),
                                                rgba=PALETTE[colors[1 + i]]))


class StackGoalTask(GoalImageTask):
    """Stack one box on another; the goal image shows the stack."""

    name = "stack-goal"

    def _build(self) -> None:
        c, r, env = self.config, self.rng, self.env
        colors, taken, xy, yaw = self._add_target()
        # the base: wider than the top box, heavy, at least min_move away
        base_half = np.array([r.uniform(0.035, 0.045), r.uniform(0.035, 0.045), r.uniform(0.02, 0.03)])
        # far enough that the open gripper (8 cm + fingers) reaching for the top box clears the base
        bxy = self._free_xy(taken, avoid_min=max(c.min_move, c.base_clearance))
        taken.append(bxy)
        byaw = r.uniform(-np.pi, np.pi)
        self.base = env.add_box(base_half, [bxy[0], bxy[1], base_half[2]], byaw, rgba=PALETTE[colors[1]],
                                mass=0.5)
        self.base_half_extents = base_half
        gyaw = yaw + np.deg2rad(r.uniform(-c.max_yaw_change_deg, c.max_yaw_change_deg))
        cz, sz = np.cos(gyaw), np.sin(gyaw)
        self.goal_pose = np.eye(4)
        self.goal_pose[:3, :3] = [[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]]
        self.goal_pose[:3, 3] = [bxy[0], bxy[1], 2 * base_half[2] + self.half_extents[2]]
        self.distractors = []
        for i in range(max(0, c.num_distractors - 1)):
            half = self._sample_box()
            dxy = self._free_xy(taken)
            taken.append(dxy)
            self.distractors.append(env.add_box(half, [dxy[0], dxy[1], half[2]], r.uniform(-np.pi, np.pi),
                                                rgba=PALETTE[colors[2 + i]]))

    def success(self) -> bool:
        """On the base (the goal pose, at the stacked height), upright, released; the base did not move much."""
        ok = super().success()
        base_shift = float(np.linalg.norm(self.env.pose(self.base)[:2, 3] - self.goal_pose[:2, 3]))
        return bool(ok and base_shift <= self.config.pos_tol)


@dataclass(frozen=True)
class RearrangeTaskConfig(GoalTaskConfig):
    """``rearrange-goal``: how many boxes move at once (the rest stay), besides the goal-task settings."""

    num_moved: tuple[int, int] = (2, 3)
    num_distractors: int = 1
    min_clearance: float = 0.10


class RearrangeGoalTask(GoalImageTask):
    """Move two or three boxes at once to where the goal image shows them (a distractor stays put).

    Every moved box has its own goal pose (clear of every box's start and of each other's goal, so
    any order works). Success: every moved box within tolerance of its goal (as ``pick-place-goal``),
    upright, released, and the distractor left within ``pos_tol``. Grasp success: every moved box
    rose at least ``lift_min`` when its ``lift`` waypoint was reached.
    """

    name = "rearrange-goal"
    kind = "rearrange"

    config_class = RearrangeTaskConfig

    def reset(self, seed: int) -> Observation:
        self._new_world(seed)
        self._lifts: dict[int, float] = {}
        self._build()
        self.env.wait(0.3)
        self.start_poses = [self.env.pose(b) for b in self.targets]
        self.distractor_starts = [self.env.pose(b) for b in self.distractors]
        self.start_pose = self.start_poses[0]
        env = self.env
        for b, T in zip(self.targets, self.goal_poses):
            env.set_pose(b, T)
        self.goal_observation = env.render()
        for b, T in zip(self.targets, self.start_poses):
            env.set_pose(b, T)
        self.initial_observation = self.render()
        return self.initial_observation

    def _build(self) -> None:
        c, r, env = self.config, self.rng, self.env
        colors = list(r.permutation(len(PALETTE)))
        n = int(r.integers(c.num_moved[0], c.num_moved[1] + 1))
        starts: list[np.ndarray] = []
        self.targets, self.half_extents_list, self.goal_poses = [], [], []
        for i in range(n):
            half = self._sample_box()
            xy = self._free_xy(starts)
            starts.append(xy)
            yaw = r.uniform(-np.pi / 2, np.pi / 2)
            self.targets.append(env.add_box(half, [xy[0], xy[1], half[2]], yaw, rgba=PALETTE[colors[i]]))
            self.half_extents_list.append(half)
        dxy_list = []
        for i in range(c.num_distractors):
            dxy = self._free_xy(starts)
            starts.append(dxy)
            dxy_list.append(dxy)
        goals: list[np.ndarray] = []
        for i in range(n):
            x0 = np.array(env.client.getBasePositionAndOrientation(self.targets[i])[0][:2])
            for _ in range(200):
                gxy = self._free_xy(starts + goals)
                if np.linalg.norm(gxy - x0) >= c.min_move:
                    break
            else:
                raise RuntimeError(f"no goal spot far enough from box {i} (seed {self.seed})")
            goals.append(gxy)
            yaw = _yaw(self.env.pose(self.targets[i]))
            gyaw = yaw + np.deg2rad(r.uniform(-c.max_yaw_change_deg, c.max_yaw_change_deg))
            T = np.eye(4)
            cz, sz = np.cos(gyaw), np.sin(gyaw)
            T[:3, :3] = [[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]]
            T[:3, 3] = [gxy[0], gxy[1], self.half_extents_list[i][2]]
            self.goal_poses.append(T)
        self.distractors = []
        for i, dxy in enumerate(dxy_list):
            half = self._sample_box()
            self.distractors.append(env.add_box(half, [dxy[0], dxy[1], half[2]], r.uniform(-np.pi, np.pi),
                                                rgba=PALETTE[colors[n + i]]))
        self.target = self.targets[0]
        self.goal_pose = self.goal_poses[0]
        self.half_extents = self.half_extents_list[0]

    def execute(self, plan, record: bool = False) -> dict:
        """Run ``plan`` (several pick-and-place sequences in a row); returns :meth:`metrics`."""
        env = self.env
        env.recording = record
        env.frames = [env.render(with_seg=False).rgb] if record else []
        self._lifts = {}

        def on_waypoint(label):
            if label == "lift":  # the box nearest the gripper is the one being carried
                p = env.panda.ee_pose()[0]
                d = [np.linalg.norm(env.pose(b)[:2, 3] - p[:2]) for b in self.targets]
                i = int(np.argmin(d))
                self._lifts[i] = float(env.pose(self.targets[i])[2, 3] - self.start_poses[i][2, 3])

        if plan.success:
            env.execute(plan, on_waypoint=on_waypoint)
        env.wait(0.5)
        self.frames = list(env.frames)
        env.recording = False
        return self.metrics()

    def object_errors(self) -> list[tuple[float, float]]:
        """(xy error m, yaw error deg) of every moved box against its goal."""
        out = []
        for b, G in zip(self.targets, self.goal_poses):
            T = self.env.pose(b)
            out.append((float(np.linalg.norm(T[:2, 3] - G[:2, 3])), yaw_error_deg(T, G)))
        return out

    def success(self) -> bool:
        c = self.config
        for b, G, (pos, yaw) in zip(self.targets, self.goal_poses, self.object_errors()):
            T = self.env.pose(b)
            if not (pos <= c.pos_tol and yaw <= c.yaw_tol_deg and abs(T[2, 3] - G[2, 3]) < 0.015
                    and T[2, 2] > np.cos(np.deg2rad(15))):
                return False
            if self.env.client.getContactPoints(self.env.panda.id, b):
                return False
        for b, S in zip(self.distractors, self.distractor_starts):
            if np.linalg.norm(self.env.pose(b)[:2, 3] - S[:2, 3]) > c.pos_tol:
                return False
        return True

    def grasp_success(self) -> bool:
        return len(self._lifts) == len(self.targets) and min(self._lifts.values()) >= self.config.lift_min

    def metrics(self) -> dict:
        errs = self.object_errors()
        ok = self.success()
        return {"success": ok, "grasp_success": self.grasp_success(), "place_success": ok,
                "pos_error_cm": 100 * max(e[0] for e in errs), "rot_error_deg": max(e[1] for e in errs),
                "num_objects": len(self.targets)}

    def part_motion(self, body: int, link: int) -> np.ndarray:
        if body in self.targets:
            i = self.targets.index(body)
            return self.goal_poses[i] @ np.linalg.inv(self.start_poses[i])
        return np.eye(4)

    def oracle_info(self) -> dict:
        """Ground truth for the oracle: per moved box its start / goal pose [4,4] and half extents [3]."""
        return {"objects": [{"start_pose": S.copy(), "goal_pose": G.copy(), "half_extents": h.copy(), "body": b}
                            for S, G, h, b in zip(self.start_poses, self.goal_poses, self.half_extents_list,
                                                  self.targets)]}
