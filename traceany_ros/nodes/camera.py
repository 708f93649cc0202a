"""Shared publishing of camera nodes (simulator, RealSense): the realsense-ros topic layout.

Under ``camera_namespace`` (default ``/camera/camera``, as realsense-ros)::

    color/image_raw                    sensor_msgs/Image rgb8
    aligned_depth_to_color/image_raw   sensor_msgs/Image 16UC1 (mm) or 32FC1 (m)
    color/camera_info                  sensor_msgs/CameraInfo
    pose                               geometry_msgs/PoseStamped, world_frame <- camera optical (when known)

and, when ``tf2_msgs`` is importable (a full ROS install), ``/tf_static``
(transient local; the camera pose when it is fixed) and ``/tf`` (when it
moves). Without tf2_msgs the pose topic carries the same information (the
tracer's ``pose_topic``).
"""
from __future__ import annotations

from dataclasses import dataclass, field as dc_field

import numpy as np
from geometry_msgs.msg import PoseStamped, TransformStamped
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from traceany_ros.config_utils import validate_fields
from traceany_ros.nodes import convert
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
    depth_encoding: str = dc_field(default="16UC1", metadata={"choices": ("16UC1", "32FC1"),
                                                              "help": "depth image encoding"})
    publish_pose: bool = dc_field(default=True, metadata={"help": "publish the camera pose (PoseStamped, TF)"})
    reliable: bool = dc_field(default=False, metadata={
        "help": "publish images RELIABLE (default BEST_EFFORT, SensorDataQoS, as subscribers use)"})

    def __post_init__(self):
        validate_fields(self)
        if not self.camera_namespace.startswith("/"):
            raise ValueError(f"camera_namespace must be absolute (start with /), got {self.camera_namespace!r}")


class CameraPublisher:
    """Publishes :class:`~traceany_ros.sources.Frame` objects on a node as a RealSense would."""

    def __init__(self, node, cfg: CameraTopicsConfig):
        self.node, self.cfg = node, cfg
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
        self._static_sent = None
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

    def publish_pose(self, cam_to_world: np.ndarray, stamp: float) -> None:
        cfg = self.cfg
        header = Header(stamp=convert.sec_to_stamp(stamp), frame_id=cfg.world_frame)
        self.pose.publish(PoseStamped(header=header, pose=convert.matrix_to_pose(cam_to_world)))
        if self.tf_static is None:
            return
        tf = TransformStamped(header=header, child_frame_id=cfg.frame_id,
                              transform=convert.matrix_to_transform(cam_to_world))
        if self._static_sent is None:
            self.tf_static.publish(TFMessage(transforms=[tf]))
            self._static_sent = cam_to_world
        elif not np.allclose(self._static_sent, cam_to_world, atol=1e-6):
            self.tf.publish(TFMessage(transforms=[tf]))
