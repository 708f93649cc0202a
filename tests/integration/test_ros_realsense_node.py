"""RealSense node in-process: a missing camera is reported and retried; a recording is published."""
import time

import numpy as np
import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image

from traceany_ros.nodes import convert
from traceany_ros.nodes.realsense import RealSenseNode
from traceany_ros.sim.synthetic import make_synthetic_episode
from traceany_ros.sources.realsense import write_recording

pytestmark = pytest.mark.ros


def _run(ctx, params, seconds, until=None):
    node = RealSenseNode(context=ctx, parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
    probe = rclpy.create_node("probe", context=ctx)
    diags, images = [], []
    probe.create_subscription(DiagnosticArray, "/diagnostics", lambda m: diags.append(m.status[0]), 10)
    probe.create_subscription(Image, "/camera/camera/color/image_raw", images.append, qos_profile_sensor_data)
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(node)
    ex.add_node(probe)
    end = time.monotonic() + seconds
    try:
        while time.monotonic() < end and not (until and until(node, diags, images)):
            ex.spin_once(timeout_sec=0.05)
    finally:
        node.shutdown()
        ex.shutdown()
        node.destroy_node()
        probe.destroy_node()
    return node, diags, images


def test_missing_camera_is_reported_and_retried(rclpy_context, capfd):
    # librealsense itself waits ~5 s for a device before it gives up
    alive = []
    node, diags, _ = _run(rclpy_context, {"reconnect_s": 0.3}, 12.0,
                          until=lambda n, d, i: n.reconnects >= 1 and d and d[-1].level == DiagnosticStatus.ERROR
                          and not alive.append(n._thread.is_alive()))
    assert node.reconnects >= 1 and alive and alive[-1], "the reader must stay alive and retry"
    assert diags[-1].level == DiagnosticStatus.ERROR and "connected" in diags[-1].message
    assert "[camera]" in capfd.readouterr().err


def test_recording_is_published_with_its_frames(rclpy_context, tmp_path):
    ep = make_synthetic_episode(num_frames=5, height=48, width=64, seed=4)
    rec = write_recording(tmp_path / "c.db3", ep.rgb, ep.depth, ep.intrinsics, 10.0 + ep.timestamps)
    node, diags, images = _run(rclpy_context, {"file": rec, "real_time": False, "stamp_source": "device"}, 10.0,
                               until=lambda n, d, i: n.done and len(i) >= 5)
    assert node.done and node.cam.published == 5
    assert len(images) == 5
    got = sorted(images, key=lambda m: convert.stamp_to_sec(m.header.stamp))
    np.testing.assert_allclose([convert.stamp_to_sec(m.header.stamp) for m in got], 10.0 + ep.timestamps, atol=1e-6)
    assert np.array_equal(convert.image_to_rgb(got[2]), ep.rgb[2])
