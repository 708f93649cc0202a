"""Shared publishing of camera nodes (simulator, RealSense): the realsense-ros topic layout.

Under ``camera_namespace`` (default ``/camera/camera``, as realsense-ros)::

    color/image_raw                    sensor_msgs/Image rgb8
    aligned_depth_to_color/image_raw   sensor_msgs/Image 16UC1 (mm) or 32FC1 (m)
    color/camera_info                  sensor_msgs/CameraInfo
    pose                               geometry_msgs/PoseStamped, world_frame <- camera optical (when known)

and one TF tree, as realsense-ros and robot_state_publisher publish it::

    world_frame -> base_frame (camera_link) -> frame_id (camera_color_optical_frame)

``base_frame <- frame_id`` is the fixed REP-103 optical rotation (x forward ->
z forward) and goes out once on ``/tf_static`` (transient local, every static
transform in one message, as tf2's static broadcaster keeps them).
``world_frame <- base_frame`` goes out on ``/tf_static`` too for a camera that
does not move, and on ``/tf`` with every frame's stamp for one that does; no
child frame is ever on both. An empty ``base_frame`` publishes
``world_frame <- frame_id`` directly. tf2_msgs has no PyPI wheel: ``make install``
generates it (scripts/ros/build_tf2_msgs.sh); a full ROS install has it.

:class:`CameraNode` is the part the camera nodes share (parameters from their
config dataclasses plus :class:`CameraTopicsConfig`, validated when set), and
:func:`run_camera_node` their entry point.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field as dc_field

import numpy as np
import rclpy
from geometry_msgs.msg import PoseStamped, TransformStamped
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from traceany_ros.config_utils import validate_fields
from traceany_ros.nodes import convert
from traceany_ros.nodes.params import config_from_node, declare_config, validate_updates
from traceany_ros.sources import Frame

try:  # tf2_msgs has no PyPI wheel; a full ROS install has it
    from tf2_msgs.msg import TFMessage
except ImportError:  # pragma: no cover - depends on the install
    TFMessage = None


@dataclass(frozen=True)
class CameraTopicsConfig:
    """Topic layout and frames of a camera node (parameters)."""

    camera_namespace: str = dc_field(default="/camera/camera", metadata={"help": "prefix of the camera topics"})
    frame_id: str = dc_field(default="camera_color_optical_frame", metadata={"help": "optical frame of the images"})
    world_frame: str = dc_field(default="world", metadata={"help": "parent frame of the camera pose"})
    base_frame: str = dc_field(default="camera_link", metadata={
        "help": "camera body frame between world_frame and frame_id (REP 103, x forward); empty = none"})
    depth_encoding: str = dc_field(default="16UC1", metadata={"choices": ("16UC1", "32FC1"),
                                                              "help": "depth image encoding"})
    publish_pose: bool = dc_field(default=True, metadata={"help": "publish the camera pose (PoseStamped, TF)"})
    reliable: bool = dc_field(default=False, metadata={
        "help": "publish images RELIABLE (default BEST_EFFORT, SensorDataQoS, as subscribers use)"})

    def __post_init__(self):
        validate_fields(self)
        if not self.camera_namespace.startswith("/"):
            raise ValueError(f"camera_namespace must be absolute (start with /), got {self.camera_namespace!r}")
        frames = [f for f in (self.world_frame, self.base_frame, self.frame_id) if f]
        if len(set(frames)) != len(frames) or not self.world_frame or not self.frame_id:
            raise ValueError(f"world_frame, base_frame and frame_id must be different non-empty names (base_frame "
                             f"may be empty), got {self.world_frame!r}, {self.base_frame!r}, {self.frame_id!r}")


# base (REP 103: x forward, y left, z up) <- optical (x right, y down, z forward)
BASE_FROM_OPTICAL = np.array([[0.0, 0.0, 1.0, 0.0], [-1.0, 0.0, 0.0, 0.0], [0.0, -1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]])


class CameraPublisher:
    """Publishes :class:`~traceany_ros.sources.Frame` objects on a node as a RealSense would.

    ``moving``: the camera moves during the clip (``world_frame <- base_frame`` on ``/tf`` at every
    frame); otherwise its pose is latched on ``/tf_static`` (again only if it changes).
    """

    def __init__(self, node, cfg: CameraTopicsConfig, moving: bool = False):
        self.node, self.cfg, self.moving = node, cfg, bool(moving)
        ns = cfg.camera_namespace.rstrip("/")
        qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE) if cfg.reliable else qos_profile_sensor_data
        self.color = node.create_publisher(Image, f"{ns}/color/image_raw", qos)
        self.depth = node.create_publisher(Image, f"{ns}/aligned_depth_to_color/image_raw", qos)
        self.info = node.create_publisher(CameraInfo, f"{ns}/color/camera_info", qos)
        self.pose = node.create_publisher(PoseStamped, f"{ns}/pose", 10) if cfg.publish_pose else None
        self.tf = self.tf_static = None
        if cfg.publish_pose and TFMessage is not None:
            latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                                 durability=DurabilityPolicy.TRANSIENT_LOCAL)
            self.tf_static = node.create_publisher(TFMessage, "/tf_static", latched)
            self.tf = node.create_publisher(TFMessage, "/tf", 10)
        self._static_sent = None   # world <- optical last latched on /tf_static (fixed camera)
        self._optical_sent = False  # base <- optical latched (moving camera)
        self.published = 0

    @property
    def color_topic(self) -> str:
        return self.color.topic_name

    def subscribers(self) -> int:
        """Subscriptions matched on the colour topic."""
        return self.color.get_subscription_count()

    def publish(self, frame: Frame, stamp: float) -> None:
        """Publish one frame with header stamp ``stamp`` (seconds, ROS time)."""
        cfg = self.cfg
        h, w = frame.rgb.shape[:2]
        # pose and camera_info first: a subscriber has them when the images arrive
        if frame.cam_to_world is not None and self.pose is not None:
            self.publish_pose(np.asarray(frame.cam_to_world, np.float64), stamp)
        self.info.publish(convert.intrinsics_to_camera_info(frame.intrinsics, h, w, stamp, cfg.frame_id))
        self.color.publish(convert.rgb_to_image(frame.rgb, stamp, cfg.frame_id))
        self.depth.publish(convert.depth_to_image(frame.depth, stamp, cfg.frame_id, encoding=cfg.depth_encoding))
        self.published += 1

    def transforms(self, cam_to_world: np.ndarray, stamp: float) -> tuple[list, list]:
        """(static, dynamic) TransformStamped lists of the camera tree for one frame's pose."""
        cfg = self.cfg
        hdr = Header(stamp=convert.sec_to_stamp(stamp), frame_id=cfg.world_frame)
        if cfg.base_frame:
            optical = TransformStamped(header=Header(stamp=hdr.stamp, frame_id=cfg.base_frame),
                                       child_frame_id=cfg.frame_id,
                                       transform=convert.matrix_to_transform(BASE_FROM_OPTICAL))
            body = TransformStamped(header=hdr, child_frame_id=cfg.base_frame, transform=convert.matrix_to_transform(
                cam_to_world @ np.linalg.inv(BASE_FROM_OPTICAL)))
            return ([optical], [body]) if self.moving else ([optical, body], [])
        body = TransformStamped(header=hdr, child_frame_id=cfg.frame_id,
                                transform=convert.matrix_to_transform(cam_to_world))
        return ([], [body]) if self.moving else ([body], [])

    def publish_pose(self, cam_to_world: np.ndarray, stamp: float) -> None:
        cfg = self.cfg
        header = Header(stamp=convert.sec_to_stamp(stamp), frame_id=cfg.world_frame)
        self.pose.publish(PoseStamped(header=header, pose=convert.matrix_to_pose(cam_to_world)))
        if self.tf_static is None:
            return
        static, dynamic = self.transforms(cam_to_world, stamp)
        if self.moving:
            if static and not self._optical_sent:
                self.tf_static.publish(TFMessage(transforms=static))
                self._optical_sent = True
            self.tf.publish(TFMessage(transforms=dynamic))
        elif self._static_sent is None or not np.allclose(self._static_sent, cam_to_world, atol=1e-6):
            self.tf_static.publish(TFMessage(transforms=static))
            self._static_sent = cam_to_world


class CameraNode(Node):
    """Base of the camera nodes: declares ``configs`` and :class:`CameraTopicsConfig` as parameters.

    Fields marked ``dynamic`` in their dataclass can be set at run time: an update
    is accepted only when every config dataclass accepts it, and is then applied
    (:meth:`apply_parameters`). Every other parameter is read-only (set at start-up;
    ROS rejects a later set). ``self.topics`` is the topic layout; a subclass reads
    its own configs with ``config_from_node``, makes its :class:`CameraPublisher`
    (``self.cam``), keeps a ``cfg`` with ``exit_when_done``, sets ``done`` when its
    clip has played, overrides :meth:`apply_parameters` to take its dynamic fields
    and :meth:`shutdown` to stop background work.
    """

    def __init__(self, node_name: str, configs: tuple, **kwargs):
        super().__init__(node_name, **kwargs)
        classes = (*configs, CameraTopicsConfig)
        for cls in classes:
            declare_config(self, cls, read_only=True)
        self.add_on_set_parameters_callback(lambda params: validate_updates(self, classes, params))
        self.add_post_set_parameters_callback(lambda params: self.apply_parameters([p.name for p in params]))
        self.topics = config_from_node(self, CameraTopicsConfig)
        self.done = False

    def apply_parameters(self, names: list[str]) -> None:
        """Take accepted run-time changes of dynamic parameters ``names`` (none by default)."""

    def shutdown(self) -> None:
        """Stop background work before the node is destroyed (nothing to stop by default)."""


def run_camera_node(make_node, name: str, argv: list[str] | None = None,
                    errors: tuple = (ValueError, RuntimeError)) -> int:
    """Entry point of a camera node: build it with ``make_node()`` and spin it.

    Returns 2 (with the reason on stderr) when building fails with one of
    ``errors`` (bad parameters, missing camera or file), else 0 after Ctrl-C,
    ROS shutdown, or the end of the clip when ``exit_when_done`` is set.
    """
    from rclpy.executors import ExternalShutdownException

    rclpy.init(args=argv if argv is not None else sys.argv)
    try:
        node = make_node()
    except errors as e:
        print(f"{name}: {e}", file=sys.stderr)
        rclpy.try_shutdown()
        return 2
    try:
        while rclpy.ok() and not (node.done and node.cfg.exit_when_done):
            rclpy.spin_once(node, timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0
