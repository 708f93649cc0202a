"""Tracer node under bad input and faults, in-process (one rclpy context, real DDS, no subprocesses).

Each fault gets a clear log line and a /diagnostics status, and the node keeps
running and recovers when good frames come back.
"""
import time

import numpy as np
import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.executors import SingleThreadedExecutor
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from visualization_msgs.msg import MarkerArray

from traceany_ros.msg import TrajectoryField as TrajectoryFieldMsg
from traceany_ros.nodes import convert
from traceany_ros.nodes.tracer import TracerNode
from traceany_ros.sim.synthetic import make_synthetic_episode

pytestmark = pytest.mark.ros

EP = make_synthetic_episode(num_frames=8, height=48, width=64, seed=1)
OKL, WARN, ERROR = DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR


class Harness:
    """A TracerNode plus a camera-like source node in one executor."""

    def __init__(self, ctx, **params):
        defaults = dict(window=3, step=1, backend="static", field_stride=4, diagnostics_period_s=0.1,
                        problem_hold_s=0.6, stale_timeout_s=3.0, autostart=False, cloud_min_confidence=0.5,
                        pose_source="static")
        defaults.update(params)
        self.tracer = TracerNode(context=ctx, parameter_overrides=[Parameter(k, value=v) for k, v in defaults.items()])
        self.src = rclpy.create_node("fake_camera", context=ctx)
        self.pub_c = self.src.create_publisher(Image, "/camera/camera/color/image_raw", qos_profile_sensor_data)
        self.pub_d = self.src.create_publisher(Image, "/camera/camera/aligned_depth_to_color/image_raw",
                                               qos_profile_sensor_data)
        self.pub_i = self.src.create_publisher(CameraInfo, "/camera/camera/color/camera_info", qos_profile_sensor_data)
        self.fields, self.diags = [], []
        self.field_sub = self.src.create_subscription(TrajectoryFieldMsg, "/traceany_tracer/trajectory_field",
                                                      lambda m: self.fields.append(convert.field_from_msg(m)), 10)
        self.src.create_subscription(DiagnosticArray, "/diagnostics", lambda m: self.diags.append(m.status[0]), 50)
        self.markers, self.clouds = [], []
        self.src.create_subscription(MarkerArray, "/traceany_tracer/markers", self.markers.append, 10)
        self.src.create_subscription(PointCloud2, "/traceany_tracer/fused_points", self.clouds.append, 10)
        self.ex = SingleThreadedExecutor(context=ctx)
        self.ex.add_node(self.tracer)
        self.ex.add_node(self.src)
        self.t = 100.0

    def start(self):
        assert self.tracer.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert self.tracer.trigger_activate() == TransitionCallbackReturn.SUCCESS
        self.spin(0.3)
        # discovery: frames sent or fields published before the endpoints match are lost
        end = time.monotonic() + 10.0
        while time.monotonic() < end and not self.matched():
            self.spin(0.05)
        assert self.matched(), "the fake camera and the tracer did not discover each other within 10 s"
        return self

    def matched(self) -> bool:
        return (min(p.get_subscription_count() for p in (self.pub_c, self.pub_d, self.pub_i)) >= 1
                and self.field_sub.get_publisher_count() >= 1)

    def spin(self, seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.ex.spin_once(timeout_sec=0.01)

    def send(self, i=0, rgb=None, depth=None, info=True, stamp=None, color_encoding=None, spin=0.05):
        if stamp is None:
            self.t += 0.1
            stamp = self.t
        h, w = EP.rgb.shape[1:3]
        if info:
            self.pub_i.publish(convert.intrinsics_to_camera_info(EP.intrinsics, h, w, stamp, "cam"))
            self.spin(0.01)
        cm = convert.rgb_to_image(EP.rgb[i % 8] if rgb is None else rgb, stamp, "cam")
        if color_encoding:
            cm.encoding = color_encoding
        self.pub_c.publish(cm)
        self.pub_d.publish(convert.depth_to_image(EP.depth[i % 8] if depth is None else depth, stamp, "cam"))
        self.spin(spin)
        self.settle()

    def settle(self, timeout=3.0):
        """Spin until the stream worker has taken up the last frame's window: the stream keeps only the
        newest waiting window, so on a loaded machine frames sent faster than it predicts are dropped."""
        end = time.monotonic() + timeout
        p = self.tracer.predictor
        while p is not None and not p.idle and time.monotonic() < end:
            self.ex.spin_once(timeout_sec=0.01)

    def good(self, n, spin=0.05):
        for i in range(n):
            self.send(i, spin=spin)

    def wait_fields(self, n, timeout=5.0):
        end = time.monotonic() + timeout
        while len(self.fields) < n and time.monotonic() < end:
            self.ex.spin_once(timeout_sec=0.02)
        return len(self.fields) >= n

    def status(self, settle=0.25):
        self.diags.clear()
        self.spin(settle)
        assert self.diags, "no /diagnostics received"
        return self.diags[-1]

    def close(self):
        if self.tracer.predictor is not None:
            self.tracer.predictor.stop()
        self.ex.shutdown()
        self.tracer.destroy_node()
        self.src.destroy_node()


@pytest.fixture
def harness(rclpy_context):
    made = []

    def make(**params):
        h = Harness(rclpy_context, **params)
        made.append(h)
        return h
    yield make
    for h in made:
        h.close()


def values(st):
    return {kv.key: kv.value for kv in st.values}


def recovers(h):
    n = len(h.fields)
    h.spin(0.7)  # older problems expire (problem_hold_s)
    h.good(4)
    assert h.wait_fields(n + 2), "no fields after good frames came back"
    st = h.status()
    assert st.level == OKL, st.message
    assert h.tracer.predictor is not None and h.tracer._state == "active"


def test_good_stream_gives_fields_and_ok_diagnostics(harness):
    h = harness().start()
    h.good(5)
    assert h.wait_fields(3)
    f = h.fields[-1]
    assert f.control_points.shape[1:3] == (12, 16) and f.frame_id == "world" and f.meta["backend"] == "static"
    st = h.status()
    v = values(st)
    assert st.level == OKL and v["backend"] == "static" and v["device"] == "cpu" and int(v["pushed"]) == 5
    # the static backend's cloud: every valid pixel of every window frame at the latest time
    assert h.clouds and h.clouds[-1].width == 3 * 12 * 16 and h.clouds[-1].header.frame_id == "world"
    pts = convert.point_cloud_to_array(h.clouds[-1])
    assert np.all(np.abs(pts[:, 2]) < 2.0)  # the synthetic scene lies within 1 m of the camera
    assert h.markers and h.markers[-1].markers[0].action == h.markers[-1].markers[0].DELETEALL


def test_wrong_encoding(harness, capfd):
    h = harness().start()
    h.good(2)
    for i in range(3):
        h.send(i, color_encoding="yuv422")
    st = h.status()
    assert st.level == ERROR and "yuv422" in st.message and "expected one of rgb8" in st.message
    assert "[encoding]" in capfd.readouterr().err
    recovers(h)


@pytest.mark.parametrize("encoding", ["mono8", "8UC1"])
def test_mono8_colour_is_used_as_grey_with_a_warning(harness, capfd, encoding):
    h = harness().start()
    grey = EP.rgb[:, :, :, 1]
    for i in range(4):
        img = convert.rgb_to_image(EP.rgb[i], h.t + 0.1, "cam")
        img.encoding, img.step, img.data = encoding, 64, grey[i].tobytes()
        h.t += 0.1
        h.pub_i.publish(convert.intrinsics_to_camera_info(EP.intrinsics, 48, 64, h.t, "cam"))
        h.spin(0.01)
        h.pub_c.publish(img)
        h.pub_d.publish(convert.depth_to_image(EP.depth[i], h.t, "cam"))
        h.spin(0.05)
        h.settle()
    assert h.wait_fields(2), "mono8 colour must still give fields (used as grey)"
    st = h.status()
    assert st.level == WARN and st.message.startswith("mono_colour:") and "used as grey" in st.message
    assert int(values(st)["mono_frames"]) == 4
    assert "[mono_colour]" in capfd.readouterr().err
    recovers(h)


def test_no_transform_falls_back_to_the_static_pose_or_skips(harness, capfd):
    h = harness(pose_source="tf", camera_position=[0.0, 0.0, 2.0]).start()
    # the first frames wait tf_wait_s for a transform and then go on together, so the stream's one-slot
    # queue may keep only the newest of their windows; the frames after them go on at once
    h.good(4)
    h.spin(0.7)
    h.good(3, spin=0.2)
    assert h.wait_fields(2), "tf_fallback_static: frames go on with camera_position / camera_orientation"
    st = h.status()
    assert st.level == WARN and "no transform world <- cam" in st.message and "is on no /tf" in st.message
    assert "camera_position" in st.message
    # the static backend's points moved by camera_position: z = depth + 2
    assert float(np.median(h.fields[-1].control_points[..., 2])) > 2.0
    assert "[no_transform]" in capfd.readouterr().err


def test_no_transform_without_the_fallback_skips_frames(harness):
    h = harness(pose_source="tf", tf_fallback_static=False, stale_timeout_s=30.0, problem_hold_s=30.0).start()
    h.good(4)
    assert not h.wait_fields(1, timeout=1.0), "without the fallback, frames without a transform are skipped"
    st = h.status()
    assert st.level == WARN and "frame skipped" in st.message and int(values(st)["no_transform"]) == 4


def test_configure_time_parameters_are_rejected_while_configured(harness):
    h = harness().start()
    res = h.tracer.set_parameters([Parameter("window", value=4)])[0]
    assert not res.successful and "read by configure" in res.reason and "active" in res.reason
    assert h.tracer.get_parameter("window").value == 3
    # a dynamic one applies at once
    assert h.tracer.set_parameters([Parameter("publish_stride", value=2)])[0].successful
    h.good(4)
    assert h.wait_fields(2) and h.fields[-1].stride == 8
    # unconfigured, a configure-time parameter is taken and used by the next configure
    h.tracer.trigger_deactivate()
    h.tracer.trigger_cleanup()
    assert h.tracer.set_parameters([Parameter("window", value=4)])[0].successful
    h.start()
    h.spin(1.0)  # the new publishers match the probe
    n = len(h.fields)
    h.good(6)
    assert h.wait_fields(n + 1) and h.fields[-1].num_frames == 4


def test_colour_depth_size_mismatch(harness, capfd):
    h = harness().start()
    h.send(0, depth=np.ones((24, 32), np.float32))
    st = h.status()
    assert st.level == ERROR and "align_depth" in st.message, st.message
    assert "depth is 32x24 but colour is 64x48" in capfd.readouterr().err
    recovers(h)


@pytest.mark.parametrize("bad", [0.0, np.nan])
def test_depth_all_zero_or_nan(harness, capfd, bad):
    h = harness().start()
    h.send(0, depth=np.full((48, 64), bad, np.float32))
    st = h.status()
    assert st.level == ERROR and "depth pixels are valid" in st.message
    assert "[frame_depth]" in capfd.readouterr().err
    recovers(h)


def test_missing_camera_info(harness, capfd):
    h = harness().start()
    for i in range(4):
        h.send(i, info=False)
    assert not h.fields
    st = h.status()
    assert st.level == WARN and "no camera_info" in st.message
    assert "[camera_info]" in capfd.readouterr().err
    recovers(h)


def test_out_of_order_and_duplicated_stamps(harness, capfd):
    h = harness().start()
    h.good(3)
    t = h.t
    h.send(0, stamp=t)          # duplicate
    h.send(1, stamp=t - 0.05)   # out of order
    st = h.status()
    assert st.level == WARN and "not newer" in st.message
    assert "[frame_out_of_order]" in capfd.readouterr().err
    assert int(values(st)["sync_late"]) == 4  # colour and depth of both frames
    recovers(h)


def test_burst_of_200_frames_stays_bounded(harness):
    h = harness(window=4, step=2).start()
    for i in range(200):
        h.send(i, spin=0.0)
    h.spin(1.0)
    p = h.tracer.predictor
    st = p.stats()
    assert st["buffered"] <= 4 and h.tracer._sync.pending <= 2 * 10
    assert st["pushed"] + int(values(h.status())["sync_unmatched"]) <= 200
    assert st["pushed"] >= 20  # DDS keeps some, the node took what it got
    assert len(h.fields) >= 1
    recovers(h)


def test_corrupt_checkpoint_at_configure(harness, tmp_path, capfd):
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"this is not a checkpoint")
    h = harness(backend="model", checkpoint=str(bad))
    assert h.tracer.trigger_configure() == TransitionCallbackReturn.FAILURE
    st = h.status()
    assert st.level == ERROR and "broken.pt" in st.message and "configure again" in st.message
    assert "[backend]" in capfd.readouterr().err
    # the node is still alive: fix the parameter and configure again
    h.tracer.set_parameters([Parameter("backend", value="static")])
    h.start()
    h.good(4)
    assert h.wait_fields(2)


def test_invalid_parameter_is_rejected_on_set(harness):
    h = harness()
    res = h.tracer.set_parameters([Parameter("step", value=10)])[0]  # step > window
    assert not res.successful and "must be <= window" in res.reason
    res = h.tracer.set_parameters([Parameter("backend", value="magic")])[0]
    assert not res.successful and "backend must be one of" in res.reason
    res = h.tracer.set_parameters([Parameter("window", value=1000)])[0]  # outside the descriptor range
    assert not res.successful
    assert h.tracer.get_parameter("window").value == 3
    d = h.tracer.describe_parameter("window")
    assert (d.integer_range[0].from_value, d.integer_range[0].to_value) == (2, 64) and "frames per backend" in \
        d.description
    assert "flow" in h.tracer.describe_parameter("backend").additional_constraints


def test_source_dies_and_comes_back(harness, capfd):
    h = harness(max_gap_s=0.5, stale_timeout_s=0.6).start()
    h.good(4)
    assert h.wait_fields(2)
    h.spin(1.0)  # camera silent longer than stale_timeout_s
    st = h.status()
    assert st.level == WARN and "is the camera running" in st.message
    assert "[stale]" in capfd.readouterr().err
    h.t += 5.0  # it comes back later: the window restarts instead of joining across the gap
    recovers(h)
    assert h.tracer.predictor.stats()["restarts"] == 1
