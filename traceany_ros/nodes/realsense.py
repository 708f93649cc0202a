"""RealSense camera node on pyrealsense2: a live camera, or a recording played back.

Publishes the realsense-ros topics (:mod:`traceany_ros.nodes.camera`): colour,
depth aligned to colour, camera_info, and the (static) camera pose. Use it
where the official realsense-ros driver is not installed (pip setups, CI) or
to play recordings (``file:=clip.db3``; pyrealsense2 2.59 records rosbag2
``.db3``; older ``.bag`` recordings are untested).

A reader thread pulls frames from :class:`~traceany_ros.sources.realsense.RealSenseSource`
and publishes them. When a live camera stops delivering (unplugged, USB
reset) the node logs it, reports ERROR on ``/diagnostics`` and reopens the
camera every ``reconnect_s`` until it is back.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field as dc_field

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from traceany_ros.config_utils import validate_fields
from traceany_ros.nodes import convert
from traceany_ros.nodes.camera import CameraNode, CameraPublisher, run_camera_node
from traceany_ros.nodes.params import config_from_node
from traceany_ros.sources.realsense import RealSenseConfig, RealSenseSource


@dataclass(frozen=True)
class RealSenseNodeConfig:
    """Node settings besides the camera's (parameters)."""

    stamp_source: str = dc_field(default="now", metadata={
        "choices": ("now", "device"),
        "help": "header stamps: ROS clock at publication (now) or the device/recording timestamps (device)"})
    camera_position: tuple = dc_field(default=(0.0, 0.0, 0.0), metadata={
        "help": "camera optical frame position in world_frame (x, y, z)"})
    camera_orientation: tuple = dc_field(default=(0.0, 0.0, 0.0, 1.0), metadata={
        "help": "camera optical frame orientation in world_frame (quaternion x, y, z, w)"})
    reconnect_s: float = dc_field(default=2.0, metadata={"range": (0.1, 600.0), "dynamic": True,
                                                         "help": "retry period when the camera is gone"})
    exit_when_done: bool = dc_field(default=False, metadata={"help": "exit when a recording has played"})
    wait_for_subscribers: int = dc_field(default=0, metadata={
        "range": (0, 100), "help": "wait until this many subscribers see the colour topic before streaming"})
    start_timeout_s: float = dc_field(default=30.0, metadata={"range": (0.0, 3600.0),
                                                              "help": "give up waiting for subscribers after this"})

    def __post_init__(self):
        validate_fields(self)
        self.pose()  # raises on a malformed camera_position / camera_orientation

    def pose(self) -> np.ndarray:
        """[4, 4] world <- camera optical from camera_position / camera_orientation."""
        return convert.static_camera_pose(self.camera_position, self.camera_orientation)


class RealSenseNode(CameraNode):
    """Publishes RealSense frames (see the module docstring)."""

    def __init__(self, node_name: str = "realsense", **kwargs):
        super().__init__(node_name, (RealSenseConfig, RealSenseNodeConfig), **kwargs)
        self.rs_cfg = config_from_node(self, RealSenseConfig)
        self.cfg = config_from_node(self, RealSenseNodeConfig)
        self.cam = CameraPublisher(self, self.topics)
        self.diag = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.error = ""
        self.reconnects = 0
        self._stop = threading.Event()
        self._t0_device = None
        self._origin = None
        self._thread = threading.Thread(target=self._run, name="realsense-reader", daemon=True)
        self._thread.start()
        self.create_timer(1.0, self._publish_diagnostics)

    def apply_parameters(self, names: list[str]) -> None:
        """Run-time change of ``reconnect_s`` (the only dynamic parameter): the next retry waits that long."""
        self.cfg = config_from_node(self, RealSenseNodeConfig)

    def _stamp(self, device_t: float) -> float:
        if self.cfg.stamp_source == "device":
            return device_t
        return self.get_clock().now().nanoseconds * 1e-9

    def _run(self):
        pose = self.cfg.pose()
        what = f"recording {self.rs_cfg.file}" if self.rs_cfg.file else "camera"
        deadline = time.monotonic() + self.cfg.start_timeout_s
        while self.cam.subscribers() < self.cfg.wait_for_subscribers and time.monotonic() < deadline:
            if self._stop.wait(0.05):
                return
        while not self._stop.is_set():
            try:
                with RealSenseSource(self.rs_cfg) as src:
                    self.get_logger().info(f"streaming from {what}: {src.image_size[1]}x{src.image_size[0]} "
                                           f"@ {src.fps} Hz")
                    self.error = ""
                    for frame in src:
                        if self._stop.is_set():
                            return
                        frame.cam_to_world = pose
                        self.cam.publish(frame, self._stamp(frame.stamp))
                if self.rs_cfg.file and not self.rs_cfg.repeat:
                    self.get_logger().info(f"{what} played: {self.cam.published} frames")
                    self.done = True
                    return
            except (RuntimeError, TimeoutError) as e:
                self.error = str(e)
                self.reconnects += 1
                self.get_logger().error(f"[camera] {e}; retrying in {self.cfg.reconnect_s:.1f} s")
                self._stop.wait(self.cfg.reconnect_s)

    def _publish_diagnostics(self):
        st = DiagnosticStatus(name=f"{self.get_name()}: RealSense", hardware_id=self.rs_cfg.serial or
                              self.rs_cfg.file or "realsense")
        if self.error:
            st.level, st.message = DiagnosticStatus.ERROR, self.error
        elif self.done:
            st.level, st.message = DiagnosticStatus.OK, "recording finished"
        else:
            st.level, st.message = DiagnosticStatus.OK, "streaming"
        st.values = [KeyValue(key="frames_published", value=str(self.cam.published)),
                     KeyValue(key="reconnects", value=str(self.reconnects))]
        arr = DiagnosticArray(status=[st])
        arr.header.stamp = self.get_clock().now().to_msg()
        self.diag.publish(arr)

    def shutdown(self):
        self._stop.set()
        self._thread.join(timeout=5.0)


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``realsense_node [--ros-args -p file:=clip.db3 ...]``."""
    return run_camera_node(RealSenseNode, "realsense", argv)


if __name__ == "__main__":
    raise SystemExit(main())
