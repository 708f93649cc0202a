"""The tracer: a lifecycle node that turns an RGB-D stream into trajectory fields.

Subscribes (SensorDataQoS; realsense-ros default topics)::

    /camera/camera/color/image_raw                     sensor_msgs/Image (rgb8, bgr8, ...)
    /camera/camera/aligned_depth_to_color/image_raw    sensor_msgs/Image (16UC1 mm or 32FC1 m)
    /camera/camera/color/camera_info                   sensor_msgs/CameraInfo
    /tf, /tf_static (pose_source tf, the default)      tf2_msgs/TFMessage: world_frame <- image frame_id
    <pose_topic> (pose_source topic)                   geometry_msgs/PoseStamped, world <- camera optical

Camera pose: with ``pose_source`` tf the pose of each frame is the transform
``world_frame <- <colour image frame_id>`` at the image's stamp, from a small
TF buffer (:mod:`traceany_ros.nodes.tf_buffer`; tf2_ros has no PyPI wheel).
When TF has no such chain at all, ``camera_position`` / ``camera_orientation``
are used (``tf_fallback_static``, WARN ``no_transform``) or the frame is
skipped; a stamp outside the known transforms skips the frame (WARN).

Publishes::

    ~/trajectory_field   traceany_ros/TrajectoryField   (decode with traceany_ros.nodes.field_from_msg)
    ~/trajectory_field_latest  traceany_ros/TrajectoryField  the newest frame's curves only (T = 1)
    ~/markers            visualization_msgs/MarkerArray  trajectories coloured by time, forecasts dashed
    ~/fused_points       sensor_msgs/PointCloud2         all frames' curves at the latest time
    /diagnostics         diagnostic_msgs/DiagnosticArray rate, latency, drops, backend, device, problems

Colour and depth are matched by stamp (:class:`~traceany_ros.nodes.sync.ApproxTimeSync`,
bounded slop and queues); the newest camera_info gives K. Frames go to a
:class:`~traceany_ros.stream.SlidingWindowPredictor`, which runs the backend
on its own thread; fields are published from that thread.

Lifecycle: configure builds the predictor (loads the model: a bad checkpoint
fails here, with an ERROR diagnostic, and the node stays up), activate
subscribes and starts the worker, deactivate stops both, cleanup releases
everything. With ``autostart`` (default) the node configures and activates
itself. Parameters are :class:`TracerConfig` and
:class:`~traceany_ros.stream.StreamConfig` fields, validated when set.
Those marked dynamic (publishing, markers, cloud) apply at once; the others are
read by configure, so the node rejects them while it is configured (deactivate
and clean up, set, configure again) and takes them while unconfigured.

A ``mono8`` colour stream is used as grey (R = G = B) with a WARN ``mono_colour``
in ``/diagnostics``: the flow works on grey, the learned matcher and the network
were trained on colour.
"""
from __future__ import annotations

import collections
import math
import threading
import time
from dataclasses import dataclass, field as dc_field

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PoseStamped
from rcl_interfaces.msg import SetParametersResult
from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from tf2_msgs.msg import TFMessage  # no PyPI wheel: `make install` generates it (scripts/ros/build_tf2_msgs.sh)
from visualization_msgs.msg import MarkerArray

from traceany_ros.config_utils import validate_fields
from traceany_ros.msg import TrajectoryField as TrajectoryFieldMsg
from traceany_ros.nodes import convert
from traceany_ros.nodes.params import config_from_node, declare_config, validate_updates
from traceany_ros.nodes.sync import ApproxTimeSync
from traceany_ros.nodes.tf_buffer import TfBuffer, TransformError, add_tf_message
from traceany_ros.stream import FrameRejected, SlidingWindowPredictor, StreamConfig

OK, WARN, ERROR, STALE = DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR, DiagnosticStatus.STALE
_LEVEL_NUM = {OK: 0, WARN: 1, ERROR: 2, STALE: 3}


@dataclass(frozen=True)
class TracerConfig:
    """Node settings (parameters; StreamConfig's fields are parameters too)."""

    color_topic: str = dc_field(default="/camera/camera/color/image_raw", metadata={"help": "colour image topic"})
    depth_topic: str = dc_field(default="/camera/camera/aligned_depth_to_color/image_raw",
                                metadata={"help": "depth image topic, aligned to colour"})
    info_topic: str = dc_field(default="/camera/camera/color/camera_info", metadata={"help": "colour camera_info"})
    pose_source: str = dc_field(default="tf", metadata={
        "choices": ("tf", "topic", "static"),
        "help": "camera pose of each frame: tf (world_frame <- the image's frame_id at its stamp, from /tf and "
                "/tf_static), topic (pose_topic) or static (camera_position / camera_orientation)"})
    pose_topic: str = dc_field(default="", metadata={
        "help": "geometry_msgs/PoseStamped of the camera optical frame in world_frame (pose_source topic)"})
    tf_fallback_static: bool = dc_field(default=True, metadata={
        "help": "pose_source tf: when TF has no chain world_frame <- image frame at all, use camera_position / "
                "camera_orientation (WARN no_transform) instead of skipping the frame"})
    tf_tolerance_s: float = dc_field(default=0.05, metadata={
        "range": (0.0, 1.0), "help": "pose_source tf: a stamp this close past the known transforms uses the "
                                     "nearest one (beyond it the frame is skipped)"})
    tf_cache_s: float = dc_field(default=10.0, metadata={"range": (0.1, 600.0),
                                                         "help": "pose_source tf: seconds of /tf history kept"})
    tf_wait_s: float = dc_field(default=0.5, metadata={
        "range": (0.0, 10.0), "help": "pose_source tf: hold a frame newer than the newest /tf this long for its "
                                      "transform (frames keep their order), then skip it"})
    world_frame: str = dc_field(default="world", metadata={"help": "frame of the published control points"})
    camera_position: tuple = dc_field(default=(0.0, 0.0, 0.0), metadata={
        "help": "static camera optical frame position in world_frame (x, y, z metres)"})
    camera_orientation: tuple = dc_field(default=(0.0, 0.0, 0.0, 1.0), metadata={
        "help": "static camera optical frame orientation in world_frame (quaternion x, y, z, w)"})
    sync_slop_s: float = dc_field(default=0.02, metadata={"range": (0.0, 1.0),
                                                          "help": "max colour/depth stamp difference (s)"})
    sync_queue: int = dc_field(default=10, metadata={"range": (1, 100), "help": "messages kept per input for sync"})
    depth_scale: float = dc_field(default=0.001, metadata={"range": (1e-6, 1.0),
                                                           "help": "metres per unit of 16UC1 depth"})
    publish_stride: int = dc_field(default=1, metadata={"range": (1, 32), "dynamic": True,
                                                        "help": "publish every n-th field pixel (n x the backend's)"})
    publish_markers: bool = dc_field(default=True, metadata={"dynamic": True, "help": "publish ~/markers"})
    publish_cloud: bool = dc_field(default=True, metadata={"dynamic": True, "help": "publish ~/fused_points"})
    marker_curves: int = dc_field(default=200, metadata={"range": (0, 5000), "dynamic": True,
                                                         "help": "most curves drawn in ~/markers"})
    forecast_s: float = dc_field(default=0.5, metadata={"range": (0.0, 10.0), "dynamic": True,
                                                        "help": "forecast drawn after each curve (s)"})
    cloud_min_confidence: float = dc_field(default=0.5, metadata={"range": (0.0, 1.0), "dynamic": True,
                                                                  "help": "confidence threshold of ~/fused_points "
                                                                          "(confidence in [0, 1])"})
    publish_latest: bool = dc_field(default=True, metadata={
        "dynamic": True, "help": "publish ~/trajectory_field_latest (the newest frame's curves only)"})
    diagnostics_period_s: float = dc_field(default=1.0, metadata={"range": (0.05, 60.0),
                                                                  "help": "period of /diagnostics"})
    stale_timeout_s: float = dc_field(default=2.0, metadata={"range": (0.1, 600.0),
                                                             "help": "warn when no frame arrived for this long"})
    pose_max_age_s: float = dc_field(default=0.5, metadata={"range": (0.0, 60.0),
                                                            "help": "max |pose stamp - frame stamp| (pose_topic)"})
    problem_hold_s: float = dc_field(default=5.0, metadata={"range": (0.1, 3600.0), "dynamic": True,
                                                            "help": "a problem stays in /diagnostics this long"})
    autostart: bool = dc_field(default=True, metadata={"help": "configure and activate at start-up"})

    def __post_init__(self):
        validate_fields(self)
        self.static_pose()  # raises on a malformed camera_position / camera_orientation
        for name in ("color_topic", "depth_topic", "info_topic", "world_frame"):
            if not getattr(self, name):
                raise ValueError(f"{name} must not be empty")
        if self.pose_source == "topic" and not self.pose_topic:
            raise ValueError("pose_source topic needs pose_topic (a geometry_msgs/PoseStamped topic)")

    def static_pose(self) -> np.ndarray:
        """[4, 4] world <- camera optical from camera_position / camera_orientation."""
        return convert.static_camera_pose(self.camera_position, self.camera_orientation)


def _configure_only() -> frozenset:
    import dataclasses

    return frozenset(f.name for cls in (TracerConfig, StreamConfig) for f in dataclasses.fields(cls)
                     if not f.metadata.get("dynamic", False))


_CONFIGURE_ONLY = _configure_only()  # parameters read by configure (rejected while configured)


class TracerNode(LifecycleNode):
    """Lifecycle node: RGB-D in, trajectory fields out (see the module docstring)."""

    def __init__(self, node_name: str = "traceany_tracer", **kwargs):
        super().__init__(node_name, **kwargs)
        declare_config(self, TracerConfig)
        declare_config(self, StreamConfig)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._lock = threading.Lock()
        self._problems: dict[str, tuple[int, str, float]] = {}
        self._last_log: dict[str, float] = {}
        self._reset_state()
        self._publishers_made = False
        self._state = "unconfigured"

    # ------------------------------------------------------------------ state
    def _reset_state(self):
        self.cfg: TracerConfig | None = None
        self.stream_cfg: StreamConfig | None = None
        self.predictor: SlidingWindowPredictor | None = None
        self._sync: ApproxTimeSync | None = None
        self._subs = []
        self._timer = None
        self._K = None
        self._info_size = None
        self._poses: collections.deque = collections.deque(maxlen=200)
        self._tf: TfBuffer | None = None
        self._tf_pending: collections.deque = collections.deque()  # (wall deadline, colour, depth) awaiting /tf
        self._tf_unjoined: tuple | None = None  # TF frames known when a chain was still missing after tf_wait_s
        self._backend_label = ""
        self._last_frame_wall: float | None = None
        self._activated_wall: float | None = None
        self._field_latency_ms: collections.deque = collections.deque(maxlen=200)
        self._published = 0
        self._camera_frame = ""
        self._counts = collections.Counter()

    def _on_set_parameters(self, params):
        res = validate_updates(self, (TracerConfig, StreamConfig), params)
        if res.successful and self._state != "unconfigured":
            fixed = sorted(p.name for p in params if p.name in _CONFIGURE_ONLY)
            if fixed:
                res = SetParametersResult(successful=False, reason=(
                    f"{', '.join(fixed)} {'is' if len(fixed) == 1 else 'are'} read by configure and the tracer is "
                    f"{self._state}: deactivate and clean it up (lifecycle transitions), set, configure again; "
                    f"or restart the node with the new value"))
        if not res.successful:
            self.get_logger().error(f"rejected parameter update: {res.reason}")
        return res

    def problem(self, key: str, level: int, text: str, throttle_s: float = 5.0) -> None:
        """Record a problem for /diagnostics and log it (at most once per ``throttle_s`` per key)."""
        now = time.monotonic()
        with self._lock:
            self._problems[key] = (level, text, now)
            self._counts[f"problem_{key}"] += 1
            last = self._last_log.get(key, -math.inf)
            if now - last < throttle_s:
                return
            self._last_log[key] = now
        log = self.get_logger()
        # rclpy pins one severity per call site, hence three calls
        if level == ERROR:
            log.error(f"[{key}] {text}")
        elif level == WARN:
            log.warning(f"[{key}] {text}")
        else:
            log.info(f"[{key}] {text}")

    # ------------------------------------------------------------------ lifecycle
    def on_configure(self, state) -> TransitionCallbackReturn:
        try:
            cfg = config_from_node(self, TracerConfig)
            scfg = config_from_node(self, StreamConfig)
        except (ValueError, TypeError) as e:
            self.problem("config", ERROR, f"invalid parameters: {e}")
            self.publish_diagnostics()
            return TransitionCallbackReturn.FAILURE
        try:
            predictor = SlidingWindowPredictor(scfg, on_field=self._on_field, on_error=self._on_stream_error,
                                               frame_id=cfg.world_frame)
        except Exception as e:  # noqa: BLE001 - any backend/checkpoint failure must leave the node running
            what = f" (checkpoint {scfg.checkpoint!r})" if scfg.backend == "model" else ""
            self.problem("backend", ERROR, f"cannot build backend {scfg.backend!r}{what}: {type(e).__name__}: {e}. "
                                           f"Fix the 'checkpoint'/'backend' parameter and configure again.")
            self.publish_diagnostics()
            return TransitionCallbackReturn.FAILURE
        with self._lock:
            self._problems.pop("backend", None)
            self._problems.pop("config", None)
        self.cfg, self.stream_cfg, self.predictor = cfg, scfg, predictor
        try:
            self._backend_label = convert.backend_label(predictor.backend)
        except OSError as e:  # the checkpoint file went away after loading: name it without its hash
            self._backend_label = f"{scfg.backend}:{scfg.checkpoint or scfg.preset}"
            self.problem("backend", WARN, f"cannot hash the checkpoint for the backend name: {e}")
        if cfg.pose_source == "tf":
            self._tf = TfBuffer(cache_s=cfg.tf_cache_s, tolerance_s=cfg.tf_tolerance_s)
        self._sync = ApproxTimeSync(2, cfg.sync_slop_s, cfg.sync_queue, restart_after=scfg.max_gap_s)
        reliable = QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)
        self._field_pub = self.create_lifecycle_publisher(TrajectoryFieldMsg, "~/trajectory_field", reliable)
        self._latest_pub = self.create_lifecycle_publisher(TrajectoryFieldMsg, "~/trajectory_field_latest", reliable)
        self._marker_pub = self.create_lifecycle_publisher(MarkerArray, "~/markers", reliable)
        self._cloud_pub = self.create_lifecycle_publisher(PointCloud2, "~/fused_points", reliable)
        self._publishers_made = True
        self._timer = self.create_timer(cfg.diagnostics_period_s, self._tick)
        self._state = "inactive"
        self.get_logger().info(f"configured: backend={self._backend_label} device={predictor.stats()['device']} "
                               f"window={scfg.window} step={scfg.step} field_stride={scfg.field_stride}")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state) -> TransitionCallbackReturn:
        cfg = self.cfg
        self._subs = [
            self.create_subscription(Image, cfg.color_topic, lambda m: self._on_image(0, m), qos_profile_sensor_data),
            self.create_subscription(Image, cfg.depth_topic, lambda m: self._on_image(1, m), qos_profile_sensor_data),
            self.create_subscription(CameraInfo, cfg.info_topic, self._on_info, qos_profile_sensor_data),
        ]
        if cfg.pose_source == "topic":
            self._subs.append(self.create_subscription(PoseStamped, cfg.pose_topic, self._on_pose, 10))
        elif cfg.pose_source == "tf":
            static_qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE,
                                    durability=DurabilityPolicy.TRANSIENT_LOCAL)
            self._subs += [self.create_subscription(TFMessage, "/tf", lambda m: self._on_tf(m, False), 100),
                           self.create_subscription(TFMessage, "/tf_static", lambda m: self._on_tf(m, True),
                                                    static_qos)]
        self.predictor.start()
        self._activated_wall = time.monotonic()
        self._state = "active"
        pose = {"topic": f"pose {cfg.pose_topic}", "static": "static camera pose",
                "tf": f"pose from TF ({cfg.world_frame} <- image frame)"}[cfg.pose_source]
        self.get_logger().info(f"active: colour {cfg.color_topic}, depth {cfg.depth_topic}, info {cfg.info_topic}, "
                               f"{pose}")
        return super().on_activate(state)

    def on_deactivate(self, state) -> TransitionCallbackReturn:
        for s in self._subs:
            self.destroy_subscription(s)
        self._subs = []
        if self.predictor is not None:
            self.predictor.stop()
        if self._sync is not None:
            self._sync.clear()
        self._tf_pending.clear()
        self._state = "inactive"
        return super().on_deactivate(state)

    def on_cleanup(self, state) -> TransitionCallbackReturn:
        self._release()
        self._state = "unconfigured"
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state) -> TransitionCallbackReturn:
        self._release()
        self._state = "finalized"
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def _release(self):
        for s in self._subs:
            self.destroy_subscription(s)
        if self.predictor is not None:
            self.predictor.stop()
        if self._timer is not None:
            self.destroy_timer(self._timer)
        if self._publishers_made:
            for p in (self._field_pub, self._latest_pub, self._marker_pub, self._cloud_pub):
                self.destroy_lifecycle_publisher(p)
            self._publishers_made = False
        problems = self._problems
        self._reset_state()
        self._problems = problems

    # ------------------------------------------------------------------ input
    def _on_info(self, msg: CameraInfo):
        try:
            K, size = convert.camera_info_to_intrinsics(msg)
        except convert.ConversionError as e:
            self.problem("camera_info", ERROR, str(e))
            return
        self._K, self._info_size = K, size
        with self._lock:
            self._problems.pop("camera_info", None)

    def _on_pose(self, msg: PoseStamped):
        try:
            T = convert.pose_to_matrix(msg.pose)
        except convert.ConversionError as e:
            self.problem("pose", WARN, str(e))
            return
        if msg.header.frame_id and msg.header.frame_id != self.cfg.world_frame:
            self.problem("pose_frame", WARN, f"pose on {self.cfg.pose_topic} is in {msg.header.frame_id!r} but "
                                             f"world_frame is {self.cfg.world_frame!r}; set world_frame to match")
        self._poses.append((convert.stamp_to_sec(msg.header.stamp), T))

    def _on_tf(self, msg, static: bool):
        tf = self._tf
        if tf is None:
            return
        try:
            add_tf_message(tf, msg, static)
        except ValueError as e:
            self.problem("tf", WARN, f"bad transform on {'/tf_static' if static else '/tf'}: {e}")
        if tf.conflicts:
            self.problem("tf_conflict", WARN, f"frame(s) {sorted(tf.conflicts)} arrive on both /tf and /tf_static; "
                                              f"publish a moving frame on /tf only and a fixed one on /tf_static only")
        self._flush_pending()

    def _flush_pending(self):
        """Retry the frames held for their transform, oldest first; skip those past tf_wait_s."""
        while self._tf_pending:
            deadline, color, depth = self._tf_pending[0]
            expired = time.monotonic() > deadline
            if self._handle_pair(color, depth, queued=True, can_wait=not expired) == "wait":
                return
            self._tf_pending.popleft()

    def _pose_from_tf(self, frame_id: str, stamp: float, can_wait: bool = False):
        cfg = self.cfg
        if not frame_id:
            self.problem("no_transform", ERROR, f"colour image on {cfg.color_topic} has an empty header.frame_id: "
                                                f"the camera pose cannot be looked up; set the driver's frame id")
            return None
        try:
            T = self._tf.lookup(cfg.world_frame, frame_id, stamp)
        except TransformError as e:
            if can_wait and cfg.tf_wait_s > 0:
                if e.future:
                    return "wait"      # the frame's /tf is on its way
                frames = tuple(self._tf.frames())
                if e.kind != "extrapolation" and frames != self._tf_unjoined:
                    return "wait"      # e.g. /tf_static came first, the moving camera's /tf comes next
            elif e.kind != "extrapolation":
                self._tf_unjoined = tuple(self._tf.frames())  # no chain after waiting: the next frames need not wait
            self._counts["no_transform"] += 1
            if e.kind != "extrapolation" and cfg.tf_fallback_static:
                self.problem("no_transform", WARN, f"{e}; using camera_position / camera_orientation "
                                                   f"(tf_fallback_static)")
                return cfg.static_pose()
            self.problem("no_transform", WARN, f"{e}; frame skipped")
            return None
        with self._lock:
            self._problems.pop("no_transform", None)
        return T

    def _pose_at(self, stamp: float, frame_id: str = "", can_wait: bool = False):
        """[4, 4] world <- optical of a frame, None (skip it) or "wait" (its /tf has not arrived yet)."""
        if self.cfg.pose_source == "static":
            return self.cfg.static_pose()
        if self.cfg.pose_source == "tf":
            return self._pose_from_tf(frame_id, stamp, can_wait)
        if not self._poses:
            self.problem("pose", WARN, f"no camera pose received on {self.cfg.pose_topic} yet; frames are skipped")
            return None
        t, T = min(self._poses, key=lambda p: abs(p[0] - stamp))
        if abs(t - stamp) > self.cfg.pose_max_age_s:
            self.problem("pose", WARN, f"nearest camera pose is {abs(t - stamp):.3f} s from the frame "
                                       f"(> pose_max_age_s={self.cfg.pose_max_age_s}); frame skipped")
            return None
        return T

    def _on_image(self, index: int, msg: Image):
        if self._sync is None or self.predictor is None:
            return
        self._counts["images"] += 1
        sync = self._sync
        late, restarts = sync.late, sync.restarts
        stamp = convert.stamp_to_sec(msg.header.stamp)
        pair = sync.add(index, stamp, msg)
        if sync.late > late:
            self.problem("frame_out_of_order", WARN, f"{msg.header.frame_id or 'image'} stamp {stamp:.6f} s is not "
                                                     f"newer than the last synchronised frame; dropped")
        if sync.restarts > restarts:
            self.problem("time_jump", WARN, f"stamps jumped back to {stamp:.3f} s: source restarted, "
                                            f"synchroniser reset")
        if pair is None:
            return
        self._handle_pair(*pair)

    def _handle_pair(self, color: Image, depth: Image, queued: bool = False, can_wait: bool = True):
        """Decode and push one synchronised pair; returns "wait" when it is held for its transform."""
        if not queued and self._tf_pending:  # behind frames that wait for /tf: keep the order
            self._tf_pending.append((time.monotonic() + self.cfg.tf_wait_s, color, depth))
            while len(self._tf_pending) > 2 * self.cfg.sync_queue:
                self._tf_pending.popleft()
                self.problem("no_transform", WARN, f"more than {2 * self.cfg.sync_queue} frames wait for /tf; "
                                                   f"the oldest is skipped")
            self._flush_pending()
            return None
        stamp = convert.stamp_to_sec(color.header.stamp)
        self._last_frame_wall = time.monotonic()
        with self._lock:
            self._problems.pop("stale", None)
        if self._K is None:
            self.problem("camera_info", WARN, f"no camera_info on {self.cfg.info_topic} yet; frames are skipped "
                                              f"until it arrives")
            return
        try:
            rgb = convert.image_to_rgb(color)
        except convert.ConversionError as e:
            self.problem("encoding", ERROR, f"{self.cfg.color_topic}: {e}")
            return
        if color.encoding.lower() in ("mono8", "8uc1"):
            self._counts["mono_frames"] += 1
            self.problem("mono_colour", WARN, f"{self.cfg.color_topic} is {color.encoding}: used as grey (R = G = B); "
                                              f"the learned matcher and the network were trained on colour, so "
                                              f"fields are less accurate. Stream colour (realsense-ros: "
                                              f"rgb_camera.color_format:=RGB8)")
        try:
            d = convert.image_to_depth(depth, self.cfg.depth_scale)
        except convert.ConversionError as e:
            self.problem("encoding", ERROR, f"{self.cfg.depth_topic}: {e}")
            return
        if self._info_size != rgb.shape[:2]:
            self.problem("camera_info", ERROR, f"camera_info is {self._info_size[1]}x{self._info_size[0]} but colour "
                                               f"is {rgb.shape[1]}x{rgb.shape[0]}: info_topic must belong to "
                                               f"color_topic")
            return
        T = self._pose_at(stamp, color.header.frame_id, can_wait)
        if isinstance(T, str):
            if not queued:
                self._tf_pending.append((time.monotonic() + self.cfg.tf_wait_s, color, depth))
            return "wait"
        if T is None:
            return
        self._camera_frame = color.header.frame_id
        try:
            self.predictor.push(rgb, d, self._K, T, stamp)
        except FrameRejected as e:
            level = WARN if e.reason in ("duplicate", "out_of_order") else ERROR
            self.problem(f"frame_{e.reason}", level, str(e))
            return

    # ------------------------------------------------------------------ output
    def _param(self, name):
        return self.get_parameter(name).value

    def _on_field(self, field, info):
        """Worker thread: publish the joined field, markers and cloud."""
        if self._state != "active":
            return
        stamp = float(info["stamp"])
        pub_field = field
        stride = int(self._param("publish_stride"))
        if stride > 1:
            pub_field = field.subsample(stride)
        backend = self._backend_label or str(field.meta.get("backend", self.stream_cfg.backend))
        msg = convert.field_to_msg(pub_field, stamp=stamp, frame_id=self.cfg.world_frame,
                                   camera_frame_id=self._camera_frame, backend=backend)
        self._field_pub.publish(msg)
        if self._param("publish_latest"):
            self._latest_pub.publish(convert.field_to_msg(pub_field.select_frames([-1]), stamp=stamp,
                                                          frame_id=self.cfg.world_frame,
                                                          camera_frame_id=self._camera_frame, backend=backend))
        now_ros = self.get_clock().now().nanoseconds * 1e-9
        with self._lock:
            self._published += 1
            self._field_latency_ms.append((now_ros - stamp) * 1e3)
        if self._param("publish_markers") and self._marker_pub.get_subscription_count() > 0:
            self._marker_pub.publish(convert.field_markers(
                field, stamp, max_curves=int(self._param("marker_curves")),
                forecast_s=float(self._param("forecast_s"))))
        if self._param("publish_cloud") and self._cloud_pub.get_subscription_count() > 0:
            unit = field._replace(confidence=convert.unit_confidence(field.confidence))
            pts, conf, _ = unit.fuse(stamp, float(self._param("cloud_min_confidence")))
            self._cloud_pub.publish(convert.make_point_cloud(pts, stamp, self.cfg.world_frame, confidence=conf))

    def _on_stream_error(self, exc: Exception):
        self.problem("backend_runtime", ERROR, f"backend failed on a window: {type(exc).__name__}: {exc}")

    def _tick(self):
        self._flush_pending()
        if self._state == "active":
            ref = self._last_frame_wall or self._activated_wall
            if ref is not None and time.monotonic() - ref > self.cfg.stale_timeout_s:
                self.problem("stale", WARN, f"no synchronised colour+depth frame for {time.monotonic() - ref:.1f} s "
                                            f"on {self.cfg.color_topic} and {self.cfg.depth_topic}: is the camera "
                                            f"running?", throttle_s=30.0)
        self.publish_diagnostics()

    def diagnostic_status(self) -> DiagnosticStatus:
        """The node's current DiagnosticStatus (also published on /diagnostics)."""
        now = time.monotonic()
        hold = float(self._param("problem_hold_s"))
        with self._lock:
            recent = {k: v for k, v in self._problems.items() if now - v[2] <= hold or k in ("backend", "config",
                                                                                               "stale")}
            lat = np.array(self._field_latency_ms)
            published = self._published
            counts = dict(self._counts)
        st = DiagnosticStatus(name=f"{self.get_name()}: trajectory fields", hardware_id=self._camera_frame or "camera")
        level = OK
        msg = f"{self._state}"
        if recent:
            key, (lvl, text, _) = max(recent.items(), key=lambda kv: (_LEVEL_NUM[kv[1][0]], kv[1][2]))
            level, msg = lvl, f"{key}: {text}"
        st.level, st.message = level, msg
        values = {"state": self._state, "fields_published": published}
        if self.cfg is not None:
            values["pose_source"] = self.cfg.pose_source
        if self._backend_label:
            values["backend_label"] = self._backend_label
        if self._tf is not None:
            values["tf_frames"] = " ".join(self._tf.frames())
        if self.predictor is not None:
            s = self.predictor.stats()
            values.update({k: s[k] for k in ("fields_hz", "kept_hz", "latency_p50_ms", "latency_p95_ms",
                                             "compute_p50_ms", "pushed",
                                             "dropped", "rejected", "restarts", "errors", "backend", "device")})
        if self.stream_cfg is not None:
            values.update(depth_flow=self.stream_cfg.depth_flow, learned_matches=self.stream_cfg.learned_matches,
                          icp=self.stream_cfg.icp, stitch=self.stream_cfg.stitch)
        if lat.size:
            values["stamp_to_publish_p50_ms"] = float(np.percentile(lat, 50))
            values["stamp_to_publish_p95_ms"] = float(np.percentile(lat, 95))
        if self._sync is not None:
            values["sync_unmatched"] = self._sync.unmatched
            values["sync_late"] = self._sync.late
        for k, v in counts.items():
            values[k] = v
        for key, (lvl, text, _) in sorted(recent.items()):
            values[f"problem.{key}"] = text
        st.values = [KeyValue(key=k, value=f"{v:.3f}" if isinstance(v, float) else str(v)) for k, v in values.items()]
        return st

    def publish_diagnostics(self):
        arr = DiagnosticArray()
        arr.header.stamp = self.get_clock().now().to_msg()
        arr.status = [self.diagnostic_status()]
        self._diag_pub.publish(arr)


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``tracer_node [--ros-args -p name:=value ...]``."""
    import sys

    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

    rclpy.init(args=argv if argv is not None else sys.argv)
    node = TracerNode()
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        if node.get_parameter("autostart").value:
            if node.trigger_configure() == TransitionCallbackReturn.SUCCESS:
                node.trigger_activate()
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        try:
            node._release()
        finally:
            node.destroy_node()
            rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
