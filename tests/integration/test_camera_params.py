"""Camera nodes apply the run-time parameter changes they accept and reject the others as read-only."""
import pytest
from rclpy.parameter import Parameter

pytestmark = pytest.mark.ros


def test_sim_camera_applies_loop_and_rejects_read_only_parameters(rclpy_context):
    from traceany_ros.nodes.sim_camera import SimCameraNode

    node = SimCameraNode(context=rclpy_context, parameter_overrides=[
        Parameter("source", value="synthetic"), Parameter("width", value=32), Parameter("height", value=24),
        Parameter("frames", value=4)])
    try:
        assert node.source.loop is True
        res = node.set_parameters([Parameter("loop", value=False)])[0]
        assert res.successful, res.reason
        assert node.cfg.loop is False and node.source.loop is False, "an accepted change must be applied"
        for name, value in (("width", 64), ("rate_hz", 5.0), ("frame_id", "other"), ("world_frame", "map")):
            res = node.set_parameters([Parameter(name, value=value)])[0]
            assert not res.successful and "read-only" in res.reason, (name, res.reason)
        assert node.get_parameter("width").value == 32 and node.topics.frame_id == "camera_color_optical_frame"
        d = node.describe_parameter("width")
        assert d.read_only and "[read-only: set at start-up]" in d.description
        assert not node.describe_parameter("loop").read_only
    finally:
        node.shutdown()
        node.destroy_node()


def test_realsense_node_applies_reconnect_s_and_rejects_the_rest(rclpy_context):
    from traceany_ros.nodes.realsense import RealSenseNode

    node = RealSenseNode(context=rclpy_context, parameter_overrides=[Parameter("reconnect_s", value=0.5)])
    try:
        res = node.set_parameters([Parameter("reconnect_s", value=3.0)])[0]
        assert res.successful and node.cfg.reconnect_s == 3.0
        res = node.set_parameters([Parameter("reconnect_s", value=0.0)])[0]  # outside its range
        assert not res.successful and node.cfg.reconnect_s == 3.0
        for name, value in (("fps", 15), ("serial", "123"), ("camera_position", [1.0, 0.0, 0.0])):
            res = node.set_parameters([Parameter(name, value=value)])[0]
            assert not res.successful and "read-only" in res.reason, (name, res.reason)
    finally:
        node.shutdown()
        node.destroy_node()
