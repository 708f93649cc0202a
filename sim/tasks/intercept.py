"""``intercept``: a box slides across the table; stop it before it crosses the far line.

The box is driven like a parcel on a conveyor: a force-limited velocity servo
(``drive_force`` N at most) keeps it at a constant velocity until something
stops it, so its motion is predictable from a short clip and a gripper in its
path can hold it. The robot sees ``clip_frames`` camera frames at
``clip_rate`` Hz (:meth:`InterceptTask.observe`), then, after the planner's
measured wall-clock planning time (``plan.planning_time_s``: the world moves
on while the planner thinks, so a slow planner arrives late) plus
``actuation_delay_s``, follows the plan (closed fingers lowered into
the box's path) and holds its last pose until the horizon.

Success: the box never crosses the exit line (its centre, across the far
side of the workspace) and is nearly at rest at the end. "Grasp success" is
reported as contact: the gripper touched the box.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from traceany_ros.sim.tasks.env import Observation, Task


@dataclass(frozen=True)
class InterceptTaskConfig:
    """Scene sampling and timing of the intercept task (metres, seconds, m/s, N)."""

    x_range: tuple[float, float] = (0.45, 0.62)
    start_y: float = 0.30
    exit_y: float = 0.25
    heading_deg: float = 15.0
    speed: tuple[float, float] = (0.10, 0.20)
    half_size: float = 0.02
    mass: float = 0.2
    drive_force: float = 2.0
    drive_gain: float = 20.0
    clip_frames: int = 8
    clip_rate: float = 10.0
    actuation_delay_s: float = 0.1
    extra_time_s: float = 1.5
    rest_speed: float = 0.05


class InterceptTask(Task):
    """See the module doc. Use::

        task = make_task("intercept", seed=0)
        frames = task.observe()                    # list of Observation, the last is "now"
        plan = plan_intercept(frame_window(frames), backend, task.ee_pose[0])   # policies.intercept
        task.execute(plan); task.success()
    """

    name = "intercept"
    kind = "intercept"

    config_class = InterceptTaskConfig

    def reset(self, seed: int) -> Observation:
        self._new_world(seed)
        c, r, env = self.config, self.rng, self.env
        side = 1.0 if r.uniform() < 0.5 else -1.0          # start on +y or -y, move across
        x0 = r.uniform(*c.x_range)
        heading = np.deg2rad(r.uniform(-c.heading_deg, c.heading_deg))
        speed = r.uniform(*c.speed)
        d = np.array([np.sin(heading), -side * np.cos(heading), 0.0])
        self.velocity = speed * d
        self.direction = d
        self.exit_y = -side * c.exit_y
        self.side = side
        start = np.array([x0, side * c.start_y, c.half_size])
        yaw = float(np.arctan2(d[1], d[0]))
        self.target = env.add_box([c.half_size] * 3, start, yaw, rgba=(0.9, 0.45, 0.1, 1), mass=c.mass,
                                  friction=0.3)
        env.client.resetBaseVelocity(self.target, self.velocity.tolist(), [0, 0, 0])
        self._mu = 0.3 * env.config.table_friction
        env.add_step_hook(self._drive)
        env.add_step_hook(self._watch)
        self.crossed = False
        self.touched = False
        self.frames: list[np.ndarray] = []
        # unblocked, the box reaches the exit line at:
        self.t_exit = abs(self.exit_y - start[1]) / abs(self.velocity[1])
        self.horizon = self.t_exit + c.extra_time_s
        self.observations: list[Observation] = []
        return self.render()

    # ------------------------------------------------------------------ physics
    def _drive(self) -> None:
        c, cl = self.config, self.env.client
        v = np.array(cl.getBaseVelocity(self.target)[0])
        # servo plus a friction feed-forward (Bullet multiplies the two bodies' friction coefficients)
        f = c.mass * c.drive_gain * (self.velocity - v) + self._mu * c.mass * 9.81 * self.direction
        f[2] = 0.0
        n = np.linalg.norm(f)
        if n > c.drive_force:
            f *= c.drive_force / n
        pos = cl.getBasePositionAndOrientation(self.target)[0]
        cl.applyExternalForce(self.target, -1, f.tolist(), list(pos), cl.WORLD_FRAME)

    def _watch(self) -> None:
        y = self.env.client.getBasePositionAndOrientation(self.target)[0][1]
        if (y - self.exit_y) * self.side < 0:
            self.crossed = True
        if not self.touched and self.env.client.getContactPoints(self.env.panda.id, self.target):
            self.touched = True

    # ------------------------------------------------------------------ sensing
    def observe(self) -> list[Observation]:
        """Let the box move and capture ``clip_frames`` frames at ``clip_rate`` Hz (first one now)."""
        c, env = self.config, self.env
        steps = int(round(1.0 / (c.clip_rate * env.config.time_step)))
        obs = [env.render()]
        self._centres = [(env.time, self._centre())]
        for _ in range(c.clip_frames - 1):
            for _ in range(steps):
                env.step()
            obs.append(env.render())
            self._centres.append((env.time, self._centre()))
        self.observations = obs
        return obs

    def _centre(self) -> np.ndarray:
        return np.array(self.env.client.getBasePositionAndOrientation(self.target)[0])

    def future_path(self, tau: float) -> np.ndarray:
        """Where the undisturbed box's centre is ``tau`` s after now (ground truth: straight on)."""
        return self._centre() + self.velocity * tau

    def centre_at(self, t: float) -> np.ndarray:
        """The box's true centre at simulation time ``t`` (s): recorded over the clip, its undisturbed
        path after now (ground truth: the oracle-field only)."""
        ts = np.array([c[0] for c in self._centres])
        if t <= ts[-1] + 1e-9:
            cs = np.stack([c[1] for c in self._centres])
            return np.array([np.interp(t, ts, cs[:, k]) for k in range(3)])
        return self.future_path(t - self.env.time)

    # ------------------------------------------------------------------ acting
    def execute(self, plan, record: bool = False) -> dict:
        """Let the world run for the plan's planning time plus the actuation delay, follow the plan,
        hold until the horizon; returns :meth:`metrics`."""
        env = self.env
        env.recording = record
        env.frames = [o.rgb for o in self.observations] if record else []
        env.wait(float(plan.planning_time_s) + self.config.actuation_delay_s)
        if plan.success:
            env.execute(plan)
        remaining = self.horizon - env.time
        if remaining > 0:
            env.wait(remaining)
        self.frames = list(env.frames)
        env.recording = False
        return self.metrics()

    def success(self) -> bool:
        v = np.linalg.norm(self.env.client.getBaseVelocity(self.target)[0])
        return bool(not self.crossed and v < self.config.rest_speed)

    def metrics(self) -> dict:
        ok = self.success()
        pos = np.array(self.env.client.getBasePositionAndOrientation(self.target)[0])
        # how far short of the exit line the box stopped (cm); negative = crossed
        margin = (pos[1] - self.exit_y) * self.side
        return {"success": ok, "grasp_success": bool(self.touched), "place_success": ok,
                "pos_error_cm": float("nan"), "rot_error_deg": float("nan"), "stop_margin_cm": 100 * float(margin)}

    def oracle_info(self) -> dict:
        """Ground truth for the oracle: box position [3] and velocity [3] now, sim time, half size."""
        cl = self.env.client
        return {"position": np.array(cl.getBasePositionAndOrientation(self.target)[0]),
                "velocity": self.velocity.copy(), "time": self.env.time, "half_size": self.config.half_size,
                "actuation_delay_s": self.config.actuation_delay_s}



@dataclass(frozen=True)
class CurvedInterceptTaskConfig(InterceptTaskConfig):
    """``intercept-curved``: the box's heading turns at a constant rate per distance while it crosses, so that it
    arrives at the exit line ``turn_deg`` off the straight crossing on the other side from where it
    started (an arc that bulges towards the middle of the workspace)."""

    x_range: tuple[float, float] = (0.42, 0.64)
    turn_deg: tuple[float, float] = (45.0, 60.0)
    speed: tuple[float, float] = (0.12, 0.18)
    extra_time_s: float = 2.0


class CurvedInterceptTask(InterceptTask):
    """A box slides across the table on a curve (its driven heading turns at a constant rate);
    stop it before it crosses the far line. A constant-velocity forecast from the clip drifts
    off the curve: at a second ahead it is several box widths wide of it."""

    name = "intercept-curved"

    config_class = CurvedInterceptTaskConfig

    def reset(self, seed: int) -> Observation:
        self._new_world(seed)
        c, r, env = self.config, self.rng, self.env
        side = 1.0 if r.uniform() < 0.5 else -1.0
        x0 = r.uniform(*c.x_range)
        bulge = 1.0 if x0 < np.mean(c.x_range) else -1.0      # the arc bulges towards the workspace middle
        half_turn = np.deg2rad(r.uniform(*c.turn_deg))
        speed = r.uniform(*c.speed)
        # straight across is heading (0, -side); start turned by half_turn towards +bulge x
        base = np.arctan2(-side, 0.0)
        self.heading0 = float(base + side * bulge * half_turn)
        chord = abs(-side * c.exit_y - side * c.start_y)
        radius = chord / (2 * np.sin(half_turn))
        self.turn_rate = float(-np.sign(np.sin(self.heading0 - base)) * speed / radius)  # turns back across
        self.speed_value = speed
        self.exit_y = -side * c.exit_y
        self.side = side
        start = np.array([x0, side * c.start_y, c.half_size])
        d = np.array([np.cos(self.heading0), np.sin(self.heading0), 0.0])
        self.velocity = speed * d
        self.direction = d
        self.target = env.add_box([c.half_size] * 3, start, float(self.heading0), rgba=(0.9, 0.45, 0.1, 1),
                                  mass=c.mass, friction=0.3)
        env.client.resetBaseVelocity(self.target, self.velocity.tolist(), [0, 0, 0])
        self._mu = 0.3 * env.config.table_friction
        self._heading = self.heading0
        self._last_xy = start[:2].copy()
        env.add_step_hook(self._steer)
        env.add_step_hook(self._drive)
        env.add_step_hook(self._watch)
        self.crossed = False
        self.touched = False
        self.frames = []
        self.t_exit = 2 * half_turn * radius / speed
        self.horizon = self.t_exit + c.extra_time_s
        self.observations = []
        self.start_position = start
        return self.render()

    def _steer(self) -> None:
        # the heading turns with the distance the box travels (a fixed curvature, like a steered cart):
        # a box held still by the gripper keeps pushing the same way
        xy = np.array(self.env.client.getBasePositionAndOrientation(self.target)[0][:2])
        self._heading += self.turn_rate / self.speed_value * float(np.linalg.norm(xy - self._last_xy))
        self._last_xy = xy
        self.direction = np.array([np.cos(self._heading), np.sin(self._heading), 0.0])
        self.velocity = self.speed_value * self.direction

    def future_path(self, tau: float) -> np.ndarray:
        """Where the undisturbed box's centre is ``tau`` s after now (the driven arc; ground truth)."""
        p = np.array(self.env.client.getBasePositionAndOrientation(self.target)[0])
        h0, w, v = self._heading, self.turn_rate, self.speed_value
        h1 = h0 + w * tau
        return p + (v / w) * np.array([np.sin(h1) - np.sin(h0), np.cos(h0) - np.cos(h1), 0.0])

    def oracle_info(self) -> dict:
        info = super().oracle_info()
        info["track"] = self.future_path
        return info
