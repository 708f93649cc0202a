"""Planner node: goal-conditioned pick-and-place as a ROS 2 service (thin adapter).

Subscribes (realsense-ros defaults, SensorDataQoS)::

    /camera/camera/color/image_raw                    sensor_msgs/Image
    /camera/camera/aligned_depth_to_color/image_raw   sensor_msgs/Image (16UC1 mm or 32FC1 m)
    /camera/camera/color/camera_info                  sensor_msgs/CameraInfo
    /camera/camera/pose                               geometry_msgs/PoseStamped (world <- optical), optional
    /traceany_tracer/trajectory_field                 traceany_ros/msg/TrajectoryField (the live field)

Offers ``~/plan_pick_place`` (``traceany_ros/srv/PlanPickPlace``): the goal
image (and optionally its depth) comes in; the latest camera view is "now";
:func:`traceany_ros.policies.grasp.plan_pick_place` predicts the field of
[now, goal] with the configured backend, fits the object's motion and returns
a ``traceany_ros/msg/GraspPlan`` (world-frame Panda grasp-target poses
pre-grasp, grasp, lift, carry, place, release, and gripper openings).

The live field is used as a guard: while it shows the scene moving (more than
``max_moving_fraction`` of its confident pixels dynamic), the plan's message
says so (a pick-and-place plan of a moving scene is stale by the time it runs).

All planning lives in ``traceany_ros.policies``; this file only converts.
"""
from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, field as dc_field

import numpy as np
import rclpy
from geometry_msgs.msg import PoseStamped
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

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
    backend: str = dc_field(default="flow", metadata={"choices": BACKEND_NAMES,
                                                      "help": "trajectory-field backend of the planner"})
    checkpoint: str = dc_field(default="", metadata={"help": "model checkpoint (backend=model); empty = shipped"})
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
                grasp=next((w for w in wps if w.label == "grasp"), None))


class PlannerNode(Node):
    """See the module docstring."""

    def __init__(self, node_name: str = "planner", **kwargs):
        super().__init__(node_name, **kwargs)
        declare_config(self, PlannerNodeConfig)
        self.add_on_set_parameters_callback(lambda ps: validate_update(self, PlannerNodeConfig, ps))
        self.cfg = cfg = config_from_node(self, PlannerNodeConfig)
        from traceany_ros.backends import make_backend

        from traceany_ros.policies.run import PLANNER_BACKEND_OPTIONS

        opts = {"checkpoint": cfg.checkpoint or None} if cfg.backend == "model" else \
            dict(PLANNER_BACKEND_OPTIONS.get(cfg.backend, {}))
        self.backend = make_backend(cfg.backend, **opts)
        self._lock = threading.Lock()
        self._rgb = self._depth = self._K = None
        self._rgb_stamp = self._depth_stamp = None
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
        self.srv = self.create_service(PlanPickPlace, "~/plan_pick_place", self._on_plan,
                                       callback_group=ReentrantCallbackGroup())
        self.get_logger().info(f"planner ready: backend {cfg.backend}, camera {ns}, service {self.srv.srv_name}")

    # ------------------------------------------------------------------ inputs
    def _on_rgb(self, msg: Image) -> None:
        try:
            rgb = convert.image_to_rgb(msg)
        except convert.ConversionError as e:
            self.get_logger().error(str(e), throttle_duration_sec=5.0)
            return
        with self._lock:
            self._rgb, self._rgb_stamp = rgb, convert.stamp_to_sec(msg.header.stamp)

    def _on_depth(self, msg: Image) -> None:
        try:
            depth = convert.image_to_depth(msg, self.cfg.depth_scale)
        except convert.ConversionError as e:
            self.get_logger().error(str(e), throttle_duration_sec=5.0)
            return
        with self._lock:
            self._depth, self._depth_stamp = depth, convert.stamp_to_sec(msg.header.stamp)

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

    # ------------------------------------------------------------------ service
    def _current_view(self):
        with self._lock:
            if self._rgb is None or self._depth is None or self._K is None:
                missing = [n for n, v in (("colour", self._rgb), ("depth", self._depth), ("camera_info", self._K))
                           if v is None]
                raise RuntimeError(f"no {', '.join(missing)} received yet on {self.cfg.camera_namespace}; "
                                   "is the camera running (and depth aligned to colour)?")
            if self._rgb.shape[:2] != self._depth.shape:
                raise RuntimeError(f"depth image is {self._depth.shape[1]}x{self._depth.shape[0]} but colour is "
                                   f"{self._rgb.shape[1]}x{self._rgb.shape[0]}: enable align_depth")
            age = self.get_clock().now().nanoseconds * 1e-9 - self._rgb_stamp
            if self.cfg.max_frame_age_s > 0 and age > self.cfg.max_frame_age_s:
                raise RuntimeError(f"latest camera frame is {age:.1f} s old (max_frame_age_s "
                                   f"{self.cfg.max_frame_age_s}); is the camera still publishing?")
            return (self._rgb.copy(), self._depth.copy(), self._K.copy(), self._cam_to_world.copy(),
                    self._rgb_stamp, self._field_moving)

    def _on_plan(self, request, response):
        from traceany_ros.episode import FrameWindow
        from traceany_ros.policies.grasp import plan_pick_place
        from traceany_ros.policies.plan import Plan

        t0 = time.perf_counter()
        stamp = self.get_clock().now().nanoseconds * 1e-9
        try:
            rgb, depth, K, c2w, t_rgb, moving = self._current_view()
            goal_rgb = convert.image_to_rgb(request.goal_rgb)
            goal_depth = None
            if request.goal_depth.height > 0 and request.goal_depth.width > 0:
                goal_depth = convert.image_to_depth(request.goal_depth, self.cfg.depth_scale)
            window = FrameWindow(rgb=rgb[None], depth=depth[None], intrinsics=K, cam_to_world=c2w[None].astype(np.float32),
                                 times=np.array([0.0]))
            plan = plan_pick_place(window, goal_rgb, goal_depth, self.backend)
            if plan.success and moving is not None and moving > self.cfg.max_moving_fraction:
                plan.message = (f"ok, but the live field shows {moving:.0%} of the scene moving: "
                                "the plan may be stale")
        except (RuntimeError, ValueError, convert.ConversionError) as e:
            plan = Plan.failure(str(e))
        response.plan = plan_to_msg(plan, stamp, self.cfg.world_frame)
        self.get_logger().info(f"plan_pick_place: success={plan.success} ({plan.message}) in "
                               f"{time.perf_counter() - t0:.2f} s")
        return response


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
