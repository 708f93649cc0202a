"""Planner node: goal-conditioned plans on the live clip as a ROS 2 action (and service); thin adapter.

Subscribes (realsense-ros defaults, SensorDataQoS)::

    /camera/camera/color/image_raw                    sensor_msgs/Image
    /camera/camera/aligned_depth_to_color/image_raw   sensor_msgs/Image (16UC1 mm or 32FC1 m)
    /camera/camera/color/camera_info                  sensor_msgs/CameraInfo
    /camera/camera/pose                               geometry_msgs/PoseStamped (world <- optical), optional
    /traceany_tracer/trajectory_field                 traceany_ros/msg/TrajectoryField (the live field)

Offers the action ``~/plan_goal`` (``traceany_ros/action/PlanGoal``): the goal
image (and optionally its depth) and the kind of task come in; the live clip
(the last ``clip_frames`` synchronised camera frames, the last one "now") plus
the goal image is predicted by the configured backend (the same as the
tracer's: a parameter, the shipped network by default); the moved objects and
their motions come from the field's tracks (:mod:`traceany_ros.policies`);
feedback says the stage (``predicting``, ``planning``); the result is a
``traceany_ros/msg/GraspPlan`` (world-frame Panda grasp-target poses, e.g.
pre-grasp, grasp, lift, carry, place, release, and gripper openings).
``~/plan_pick_place`` (``traceany_ros/srv/PlanPickPlace``) answers the same
pick-and-place plan as a service call.

The live field is used as a guard: while it shows the scene moving (more than
``max_moving_fraction`` of its confident pixels dynamic), the plan's message
says so (a pick-and-place plan of a moving scene is stale by the time it runs).

All planning lives in ``traceany_ros.policies``; this file only converts.
"""
from __future__ import annotations

import collections
import sys
import threading
import time
from dataclasses import dataclass, field as dc_field

import numpy as np
import rclpy
from geometry_msgs.msg import PoseStamped
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from traceany_ros.action import PlanGoal
from traceany_ros.config_utils import validate_fields
from traceany_ros.msg import GraspPlan
from traceany_ros.msg import TrajectoryField as TrajectoryFieldMsg
from traceany_ros.nodes import convert
from traceany_ros.nodes.params import config_from_node, declare_config, validate_update
from traceany_ros.srv import PlanPickPlace
from traceany_ros.stream import BACKEND_NAMES


@dataclass(frozen=True)
class PlannerNodeConfig:
    """Parameters of the planner node."""

    camera_namespace: str = dc_field(default="/camera/camera", metadata={"help": "prefix of the camera topics"})
    pose_topic: str = dc_field(default="", metadata={
        "help": "PoseStamped of the camera optical frame in world_frame; empty = <camera_namespace>/pose"})
    field_topic: str = dc_field(default="/traceany_tracer/trajectory_field", metadata={"help": "the tracer's live field"})
    world_frame: str = dc_field(default="world", metadata={"help": "frame of the plan's poses"})
    camera_position: tuple = dc_field(default=(0.0, 0.0, 0.0), metadata={
        "help": "static camera optical frame position in world_frame, used until a pose arrives (x, y, z m)"})
    camera_orientation: tuple = dc_field(default=(0.0, 0.0, 0.0, 1.0), metadata={
        "help": "static camera optical frame orientation in world_frame (quaternion x, y, z, w)"})
    backend: str = dc_field(default="model", metadata={"choices": BACKEND_NAMES,
                                                       "help": "trajectory-field backend of the planner (the tracer's)"})
    checkpoint: str = dc_field(default="", metadata={"help": "model checkpoint (backend=model); empty = shipped"})
    device: str = dc_field(default="cpu", metadata={"choices": ("cpu", "cuda", "auto"),
                                                    "help": "torch device of the model backend"})
    clip_frames: int = dc_field(default=4, metadata={"range": (1, 32),
                                                     "help": "live frames before the goal image in the predicted clip"})
    sync_slop_s: float = dc_field(default=0.02, metadata={"range": (0.0, 1.0),
                                                          "help": "colour and depth stamps further apart do not pair"})
    grasp_motion: str = dc_field(default="field", metadata={
        "choices": ("field", "registration"),
        "help": "object motion from the field's tracks (refined by registration at most) or registration alone"})
    depth_scale: float = dc_field(default=0.001, metadata={"range": (1e-6, 1.0),
                                                           "help": "metres per unit of 16UC1 depth"})
    max_frame_age_s: float = dc_field(default=5.0, metadata={"range": (0.0, 3600.0),
                                                             "help": "refuse to plan on a camera frame older than this"})
    max_moving_fraction: float = dc_field(default=0.05, metadata={
        "range": (0.0, 1.0), "help": "live-field dynamic fraction above which the plan warns the scene moves"})

    def __post_init__(self):
        validate_fields(self)
        self.static_pose()  # raises on a malformed camera_position / camera_orientation

    def static_pose(self) -> np.ndarray:
        """[4, 4] world <- camera optical from camera_position / camera_orientation."""
        return convert.static_camera_pose(self.camera_position, self.camera_orientation)


def plan_to_msg(plan, stamp: float, frame_id: str) -> GraspPlan:
    """:class:`traceany_ros.policies.plan.Plan` -> traceany_ros/msg/GraspPlan."""
    def pose(p, q):
        return convert.matrix_to_pose(convert.position_quaternion_to_matrix(p, q))

    msg = GraspPlan()
    msg.header = Header(stamp=convert.sec_to_stamp(stamp), frame_id=frame_id)
    msg.success = bool(plan.success)
    msg.message = str(plan.message)
    msg.method = str(plan.info.get("method", ""))
    msg.object_motion = convert.matrix_to_pose(np.asarray(plan.object_motion, np.float64))
    msg.fit_rmse = float(plan.fit_rmse) if np.isfinite(plan.fit_rmse) else 0.0
    msg.num_object_points = int(plan.num_object_points)
    if plan.grasp is not None:
        msg.grasp = pose(plan.grasp.position, plan.grasp.quaternion)
    msg.waypoints = [pose(w.position, w.quaternion) for w in plan.waypoints]
    msg.waypoint_labels = [w.label for w in plan.waypoints]
    msg.gripper = [float(w.gripper) for w in plan.waypoints]
    return msg


def plan_from_msg(msg: GraspPlan):
    """traceany_ros/msg/GraspPlan -> :class:`traceany_ros.policies.plan.Plan` (the inverse of :func:`plan_to_msg`)."""
    from traceany_ros.policies.plan import Plan, Waypoint

    wps = []
    for pose, label, gripper in zip(msg.waypoints, msg.waypoint_labels, msg.gripper):
        T = convert.pose_to_matrix(pose)  # checks the quaternion
        q = convert.matrix_to_pose(T).orientation
        wps.append(Waypoint(label=label, position=T[:3, 3], quaternion=[q.x, q.y, q.z, q.w], gripper=gripper))
    return Plan(success=bool(msg.success), message=msg.message, waypoints=wps,
                object_motion=convert.pose_to_matrix(msg.object_motion), fit_rmse=float(msg.fit_rmse),
                num_object_points=int(msg.num_object_points),
                grasp=next((w for w in wps if w.label == "grasp"), None),
                info={"method": msg.method} if msg.method else {})


class _StageBackend:
    """A backend that reports when its prediction is done (the planner's feedback: predicting -> planning)."""

    def __init__(self, backend, on_predicted):
        self.backend, self.on_predicted = backend, on_predicted
        self.name = getattr(backend, "name", type(backend).__name__)
        self.supports_forecast = bool(getattr(backend, "supports_forecast", False))

    def predict(self, window, **kwargs):
        fld = self.backend.predict(window, **kwargs)
        self.on_predicted()
        return fld


class PlannerNode(Node):
    """See the module docstring."""

    def __init__(self, node_name: str = "planner", **kwargs):
        super().__init__(node_name, **kwargs)
        declare_config(self, PlannerNodeConfig)
        self.add_on_set_parameters_callback(lambda ps: validate_update(self, PlannerNodeConfig, ps))
        self.cfg = cfg = config_from_node(self, PlannerNodeConfig)
        from traceany_ros.backends import make_backend
        from traceany_ros.nodes.sync import ApproxTimeSync
        from traceany_ros.policies.run import PLANNER_BACKEND_OPTIONS

        opts = dict(PLANNER_BACKEND_OPTIONS.get(cfg.backend, {}))
        if cfg.backend == "model":  # goal images: the network at zoom 2 with top selection, as eval-policy plans
            opts.update(checkpoint=cfg.checkpoint or None, device=cfg.device)
        self.backend = make_backend(cfg.backend, **opts)
        self._lock = threading.Lock()
        self._plan_lock = threading.Lock()   # one plan at a time: the backend is not re-entrant
        self._sync = ApproxTimeSync(2, slop=cfg.sync_slop_s, queue_size=10)
        self._clip = collections.deque(maxlen=cfg.clip_frames)   # (stamp, rgb, depth, cam_to_world)
        self._K = None
        self._field_moving = None
        self._cam_to_world = self.cfg.static_pose()
        ns = cfg.camera_namespace.rstrip("/")
        sensors = MutuallyExclusiveCallbackGroup()
        self.create_subscription(Image, f"{ns}/color/image_raw", self._on_rgb, qos_profile_sensor_data,
                                 callback_group=sensors)
        self.create_subscription(Image, f"{ns}/aligned_depth_to_color/image_raw", self._on_depth,
                                 qos_profile_sensor_data, callback_group=sensors)
        self.create_subscription(CameraInfo, f"{ns}/color/camera_info", self._on_info, qos_profile_sensor_data,
                                 callback_group=sensors)
        self.create_subscription(PoseStamped, cfg.pose_topic or f"{ns}/pose", self._on_pose, 10,
                                 callback_group=sensors)
        self.create_subscription(TrajectoryFieldMsg, cfg.field_topic, self._on_field, 2, callback_group=sensors)
        planning = ReentrantCallbackGroup()
        self.srv = self.create_service(PlanPickPlace, "~/plan_pick_place", self._on_plan, callback_group=planning)
        self.action = ActionServer(self, PlanGoal, "~/plan_goal", execute_callback=self._execute_goal,
                                   goal_callback=self._on_goal, cancel_callback=lambda _: CancelResponse.REJECT,
                                   callback_group=planning)
        self.get_logger().info(f"planner ready: backend {cfg.backend}, camera {ns}, clip {cfg.clip_frames} frames, "
                               f"action {self.get_fully_qualified_name()}/plan_goal, service {self.srv.srv_name}")

    # ------------------------------------------------------------------ inputs
    def _on_rgb(self, msg: Image) -> None:
        try:
            rgb = convert.image_to_rgb(msg)
        except convert.ConversionError as e:
            self.get_logger().error(str(e), throttle_duration_sec=5.0)
            return
        self._add(0, convert.stamp_to_sec(msg.header.stamp), rgb)

    def _on_depth(self, msg: Image) -> None:
        try:
            depth = convert.image_to_depth(msg, self.cfg.depth_scale)
        except convert.ConversionError as e:
            self.get_logger().error(str(e), throttle_duration_sec=5.0)
            return
        self._add(1, convert.stamp_to_sec(msg.header.stamp), depth)

    def _add(self, index: int, stamp: float, image: np.ndarray) -> None:
        with self._lock:
            pair = self._sync.add(index, stamp, (stamp, image))
            if pair is not None:
                (t_rgb, rgb), (_, depth) = pair
                self._clip.append((t_rgb, rgb, depth, self._cam_to_world.copy()))

    def _on_info(self, msg: CameraInfo) -> None:
        try:
            K, _ = convert.camera_info_to_intrinsics(msg)
        except convert.ConversionError as e:
            self.get_logger().error(str(e), throttle_duration_sec=5.0)
            return
        with self._lock:
            self._K = K

    def _on_pose(self, msg: PoseStamped) -> None:
        if msg.header.frame_id and msg.header.frame_id != self.cfg.world_frame:
            self.get_logger().error(f"camera pose is in {msg.header.frame_id!r} but world_frame is "
                                    f"{self.cfg.world_frame!r}; set world_frame to match", throttle_duration_sec=5.0)
            return
        with self._lock:
            self._cam_to_world = convert.pose_to_matrix(msg.pose)

    def _on_field(self, msg: TrajectoryFieldMsg) -> None:
        try:
            fld = convert.field_from_msg(msg)
        except convert.ConversionError as e:
            self.get_logger().error(str(e), throttle_duration_sec=5.0)
            return
        conf = fld.confidence[-1] > 0
        moving = fld.dynamic_mask()[-1] & conf
        with self._lock:
            self._field_moving = float(moving.sum() / max(1, conf.sum()))

    # ------------------------------------------------------------------ planning
    def _current_clip(self):
        """The live clip (FrameWindow of the last ``clip_frames`` synchronised frames) and the live field's
        moving fraction; raises RuntimeError saying what is missing."""
        from traceany_ros.episode import FrameWindow

        with self._lock:
            if not self._clip or self._K is None:
                missing = [n for n, v in (("synchronised colour + depth", self._clip or None),
                                          ("camera_info", self._K)) if v is None]
                raise RuntimeError(f"no {', '.join(missing)} received yet on {self.cfg.camera_namespace}; "
                                   "is the camera running (and depth aligned to colour)?")
            frames, K, moving = list(self._clip), self._K.copy(), self._field_moving
        if frames[-1][1].shape[:2] != frames[-1][2].shape:
            raise RuntimeError(f"depth image is {frames[-1][2].shape[1]}x{frames[-1][2].shape[0]} but colour is "
                               f"{frames[-1][1].shape[1]}x{frames[-1][1].shape[0]}: enable align_depth")
        age = self.get_clock().now().nanoseconds * 1e-9 - frames[-1][0]
        if self.cfg.max_frame_age_s > 0 and age > self.cfg.max_frame_age_s:
            raise RuntimeError(f"latest camera frame is {age:.1f} s old (max_frame_age_s "
                               f"{self.cfg.max_frame_age_s}); is the camera still publishing?")
        times = np.array([f[0] for f in frames], np.float64)
        times = times - times[-1]
        for i in range(1, len(times)):  # equal stamps (a still camera re-sending a frame): keep them ordered
            times[i] = max(times[i], times[i - 1] + 1e-3)
        window = FrameWindow(rgb=np.stack([f[1] for f in frames]), depth=np.stack([f[2] for f in frames]),
                             intrinsics=K.astype(np.float32),
                             cam_to_world=np.stack([f[3] for f in frames]).astype(np.float32), times=times)
        return window, moving

    def _plan(self, goal_rgb_msg, goal_depth_msg, task: str, feedback=None):
        """Plan for a goal image (messages in, :class:`traceany_ros.policies.plan.Plan` out; never raises)."""
        from traceany_ros.policies.goal import plan_goal
        from traceany_ros.policies.plan import Plan

        t0 = time.perf_counter()
        try:
            window, moving = self._current_clip()
            goal_rgb = convert.image_to_rgb(goal_rgb_msg)
            goal_depth = None
            if goal_depth_msg.height > 0 and goal_depth_msg.width > 0:
                goal_depth = convert.image_to_depth(goal_depth_msg, self.cfg.depth_scale)
            report = feedback or (lambda stage, n: None)
            n = int(window.rgb.shape[0])
            backend = _StageBackend(self.backend, lambda: report("planning", n))
            report("predicting", n)
            with self._plan_lock:
                plan = plan_goal(task or "pick-place", window, goal_rgb, goal_depth, backend,
                                 motion_source=self.cfg.grasp_motion)
            if plan.success and moving is not None and moving > self.cfg.max_moving_fraction:
                plan.message = (f"ok, but the live field shows {moving:.0%} of the scene moving: "
                                "the plan may be stale")
        except (RuntimeError, ValueError, convert.ConversionError) as e:
            plan = Plan.failure(str(e))
        plan.planning_time_s = time.perf_counter() - t0
        return plan

    def _on_plan(self, request, response):
        stamp = self.get_clock().now().nanoseconds * 1e-9
        plan = self._plan(request.goal_rgb, request.goal_depth, "pick-place")
        response.plan = plan_to_msg(plan, stamp, self.cfg.world_frame)
        self.get_logger().info(f"plan_pick_place: success={plan.success} ({plan.message}) in "
                               f"{plan.planning_time_s:.2f} s")
        return response

    def _on_goal(self, goal) -> GoalResponse:
        from traceany_ros.policies.goal import GOAL_TASKS

        if goal.task and goal.task not in GOAL_TASKS:
            self.get_logger().error(f"plan_goal: unknown task {goal.task!r}; choose one of {list(GOAL_TASKS)}")
            return GoalResponse.REJECT
        if goal.goal_rgb.height == 0 or goal.goal_rgb.width == 0:
            self.get_logger().error("plan_goal: the goal image is empty; send the goal view's colour image")
            return GoalResponse.REJECT
        return GoalResponse.ACCEPT

    def _execute_goal(self, handle):
        t0 = time.perf_counter()
        stamp = self.get_clock().now().nanoseconds * 1e-9

        def feedback(stage: str, n: int) -> None:
            handle.publish_feedback(PlanGoal.Feedback(stage=stage, elapsed_s=float(time.perf_counter() - t0),
                                                      clip_frames=n))

        req = handle.request
        plan = self._plan(req.goal_rgb, req.goal_depth, req.task, feedback)
        handle.succeed()
        self.get_logger().info(f"plan_goal ({req.task or 'pick-place'}): success={plan.success} ({plan.message}) "
                               f"in {plan.planning_time_s:.2f} s, method {plan.info.get('method', '')}")
        return PlanGoal.Result(plan=plan_to_msg(plan, stamp, self.cfg.world_frame))


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``planner_node [--ros-args -p name:=value ...]``."""
    from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor

    rclpy.init(args=argv if argv is not None else sys.argv)
    node = None
    try:
        node = PlannerNode()
        executor = MultiThreadedExecutor(num_threads=2)
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
