"""Simulated robot node: a seeded goal task (PyBullet, a Panda, objects, a camera) on the ROS 2 graph.

The node owns one task of :mod:`traceany_ros.sim.tasks` (``task``, ``seed``) and is its camera
driver: it steps the physics in (``realtime`` times) real time and publishes the camera on the
realsense-ros topics with TF, as :mod:`traceany_ros.nodes.camera` lays them out. With ``plan`` it
then drives the robot the way a user's own node would:

1. it streams the still scene for ``warmup_s`` (the planner's live clip fills up);
2. it sends the task's goal image to the planner's ``PlanGoal`` action (``action``; feedback
   ``predicting`` / ``planning`` is logged);
3. it executes the returned GraspPlan with the simulated Panda while it goes on streaming, so the
   tracer sees the object being carried;
4. it publishes the outcome on ``~/result`` (std_msgs/String, JSON, latched): plan found, where the
   plan came from, the task's success check and its errors.

After that it keeps streaming the final scene (``exit_when_done`` ends the process instead).
``ros2 launch traceany_ros sim.launch.py task:=pick-place-goal planner:=true`` starts it with the
tracer and the planner.
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field as dc_field

from rclpy.action import ActionClient
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import String

from traceany_ros.action import PlanGoal
from traceany_ros.config_utils import validate_fields
from traceany_ros.nodes import convert
from traceany_ros.nodes.camera import CameraNode, CameraPublisher, run_camera_node
from traceany_ros.nodes.params import config_from_node
from traceany_ros.sim.tasks import TASK_NAMES
from traceany_ros.sources import Frame

GOAL_TASK_NAMES = tuple(name for name in TASK_NAMES if name.endswith("-goal"))  # the tasks with a goal image


@dataclass(frozen=True)
class TaskSimConfig:
    """The simulated task and what the node does with it (parameters)."""

    task: str = dc_field(default="pick-place-goal", metadata={
        "choices": GOAL_TASK_NAMES, "help": "goal task of traceany eval-policy (a goal image, a Panda)"})
    seed: int = dc_field(default=0, metadata={"range": (0, 2**31 - 1), "help": "task seed"})
    rate_hz: float = dc_field(default=15.0, metadata={"range": (1.0, 240.0),
                                                      "help": "camera rate in Hz of simulated time"})
    realtime: float = dc_field(default=1.0, metadata={
        "range": (0.0, 100.0), "help": "pace the simulation at this multiple of real time (0 = as fast as it goes)"})
    warmup_s: float = dc_field(default=1.0, metadata={
        "range": (0.0, 600.0), "help": "seconds of the still scene streamed before the goal goes to the planner"})
    plan: bool = dc_field(default=True, metadata={
        "help": "send the goal image to the planner's action and execute the plan (false: stream only)"})
    action: str = dc_field(default="/planner/plan_goal", metadata={"help": "the planner's PlanGoal action"})
    wait_for_subscribers: int = dc_field(default=1, metadata={
        "range": (0, 100), "help": "start the clock once this many subscribers see the colour topic"})
    start_timeout_s: float = dc_field(default=60.0, metadata={
        "range": (0.0, 3600.0), "help": "give up waiting for subscribers (and for the action server) after this"})
    plan_timeout_s: float = dc_field(default=120.0, metadata={"range": (1.0, 3600.0),
                                                              "help": "give up on the planner's answer after this"})
    exit_when_done: bool = dc_field(default=False, metadata={"help": "exit once the outcome is published"})

    def __post_init__(self):
        validate_fields(self)


class TaskSimNode(CameraNode):
    """A goal task's camera and robot (see the module docstring)."""

    def __init__(self, node_name: str = "task_sim", **kwargs):
        super().__init__(node_name, (TaskSimConfig,), **kwargs)
        self.cfg = cfg = config_from_node(self, TaskSimConfig)
        try:
            from traceany_ros.sim.tasks import make_task
            from traceany_ros.sim.tasks.env import RealtimePacer
        except ImportError as e:
            raise RuntimeError(f"task_sim needs traceany_ros.sim (PyBullet): {e}") from e
        t0 = time.monotonic()
        self.task = make_task(cfg.task, seed=cfg.seed)
        self.env = self.task.env
        self.cam = CameraPublisher(self, self.topics, moving=False)
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.result_pub = self.create_publisher(String, "~/result", latched)
        self.client = ActionClient(self, PlanGoal, cfg.action) if cfg.plan else None
        self.outcome: dict | None = None
        self._every = max(1, int(round(1.0 / (cfg.rate_hz * self.env.config.time_step))))
        self._pace = RealtimePacer(cfg.realtime)
        self._stop = threading.Event()
        self.env.add_step_hook(self._on_step)
        obs = self.task.render()
        self.get_logger().info(f"{cfg.task} seed {cfg.seed}: {obs.rgb.shape[1]}x{obs.rgb.shape[0]} camera at "
                               f"{cfg.rate_hz:.0f} Hz on {self.cam.color_topic} (ready in "
                               f"{time.monotonic() - t0:.1f} s); "
                               + (f"plans through {cfg.action}" if cfg.plan else "streaming only"))
        self._thread = threading.Thread(target=self._run, name="task_sim", daemon=True)
        self._thread.start()

    # ----------------------------------------------------------------- camera
    def _on_step(self) -> None:
        """Physics step hook: publish every camera period, pace to real time."""
        env = self.env
        if env.steps % self._every:
            return
        obs = env.render(with_seg=False)
        stamp = self.get_clock().now().nanoseconds * 1e-9
        self.cam.publish(Frame(rgb=obs.rgb, depth=obs.depth, intrinsics=obs.intrinsics,
                               cam_to_world=obs.cam_to_world, stamp=obs.time, index=self.cam.published), stamp)
        self._pace(env.time)
        if self._stop.is_set():
            raise _Stopped

    # ----------------------------------------------------------------- the run
    def _run(self) -> None:
        try:
            self._wait_for_subscribers()
            self.env.wait(self.cfg.warmup_s)
            if self.cfg.plan:
                self._plan_and_execute()
            else:
                self.done = True
            while not self._stop.is_set():  # the final scene goes on streaming, as a camera would
                self.env.wait(1.0 / self.cfg.rate_hz)
        except _Stopped:
            pass

    def _wait_for_subscribers(self) -> None:
        want, t0 = self.cfg.wait_for_subscribers, time.monotonic()
        while want and self.cam.subscribers() < want and not self._stop.is_set():
            if time.monotonic() - t0 > self.cfg.start_timeout_s:
                self.get_logger().warning(f"only {self.cam.subscribers()} of {want} subscribers after "
                                          f"{self.cfg.start_timeout_s:.0f} s; starting anyway")
                return
            time.sleep(0.05)

    def _plan_and_execute(self) -> None:
        from traceany_ros.nodes.planner import plan_from_msg
        from traceany_ros.policies.plan import Plan

        cfg = self.cfg
        t0 = time.monotonic()
        try:
            msg = self._request_plan()
            plan = plan_from_msg(msg)
        except RuntimeError as e:
            self.get_logger().error(str(e))
            plan = Plan.failure(str(e))
        plan.planning_time_s = time.monotonic() - t0
        if plan.success:
            self.get_logger().info(f"plan: {len(plan.waypoints)} waypoints ({plan.info.get('method', '')}), "
                                   f"{plan.planning_time_s:.1f} s; executing with the Panda while streaming")
        else:
            self.get_logger().warning(f"no plan: {plan.message}; the robot stays still")
        metrics = self.task.execute(plan)
        self.outcome = {"task": cfg.task, "seed": cfg.seed, "plan_found": bool(plan.success),
                        "plan_message": plan.message, "plan_method": plan.info.get("method", ""),
                        "planning_time_s": round(float(plan.planning_time_s), 3),
                        **{k: _plain(v) for k, v in metrics.items() if _plain(v) is not None}}
        self.result_pub.publish(String(data=json.dumps(self.outcome)))
        log = self.get_logger().info if self.outcome.get("success") else self.get_logger().warning
        log(f"{'SUCCESS' if self.outcome.get('success') else 'FAILED'}: {json.dumps(self.outcome)}")
        self.done = True

    def _request_plan(self):
        """Send the goal image; wait (while the scene streams) for the GraspPlan message."""
        cfg, goal = self.cfg, self.task.goal_observation
        if not self._while_streaming(self.client.server_is_ready, cfg.start_timeout_s):
            raise RuntimeError(f"no PlanGoal action server on {cfg.action} after {cfg.start_timeout_s:.0f} s: "
                               f"start the planner node (planner:=true)")
        frame = self.topics.frame_id
        request = PlanGoal.Goal(goal_rgb=convert.rgb_to_image(goal.rgb, 0.0, frame),
                                goal_depth=convert.depth_to_image(goal.depth, 0.0, frame), task=self.task.kind)
        self.get_logger().info(f"sending the goal image to {cfg.action} (task {self.task.kind})")
        sent = self.client.send_goal_async(request, feedback_callback=self._on_feedback)
        if not self._while_streaming(sent.done, cfg.plan_timeout_s) or not sent.result().accepted:
            raise RuntimeError(f"{cfg.action} did not accept the goal")
        result = sent.result().get_result_async()
        if not self._while_streaming(result.done, cfg.plan_timeout_s):
            raise RuntimeError(f"{cfg.action} gave no result within {cfg.plan_timeout_s:.0f} s")
        return result.result().result.plan

    def _on_feedback(self, fb) -> None:
        f = fb.feedback
        self.get_logger().info(f"planner: {f.stage} ({f.clip_frames} live frames, {f.elapsed_s:.1f} s)")

    def _while_streaming(self, ready, timeout: float) -> bool:
        """Step the still scene (camera going on) until ``ready()`` or ``timeout`` wall seconds."""
        t0 = time.monotonic()
        while not ready():
            if time.monotonic() - t0 > timeout:
                return False
            self.env.wait(1.0 / self.cfg.rate_hz)
        return True

    def shutdown(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)


def _plain(v):
    """A metric as a JSON value (numpy scalars included); None for anything else."""
    v = v.item() if hasattr(v, "item") and getattr(v, "ndim", 1) == 0 else v
    return v if isinstance(v, (bool, int, float, str)) else None


class _Stopped(Exception):
    """Raised inside a physics step when the node shuts down."""


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``task_sim_node [--ros-args -p name:=value ...]``."""
    return run_camera_node(TaskSimNode, "task_sim", argv, errors=(ValueError, RuntimeError, OSError))


if __name__ == "__main__":
    raise SystemExit(main())
