"""`traceany record` writes an MCAP rosbag2 of live topics; `traceany play` publishes it again."""
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent / "ros_scripts"))
from pub_field import make_field  # noqa: E402

pytestmark = pytest.mark.ros


def test_record_then_play_trajectory_fields(ros_procs, tmp_path):
    from rclpy.serialization import deserialize_message
    from rosbags.rosbag2 import Reader

    from traceany_ros.msg import TrajectoryField as TrajectoryFieldMsg
    from traceany_ros.nodes.convert import field_from_msg

    bag = tmp_path / "bag"
    ros_procs.script("publisher", "pub_field.py", ["--topic", "/rec_field", "--seed", "3", "--period", "0.1"])
    rec = ros_procs.python("record", ["-m", "traceany_ros.cli", "record", str(bag), "--topics", "/rec_field",
                                      "/not_published", "--max-messages", "5", "--discovery-timeout", "30"])
    assert ros_procs.wait(rec, timeout=60) == 0, ros_procs.dump()
    assert (bag / "metadata.yaml").exists() and list(bag.glob("*.mcap"))
    want = make_field(3)
    with Reader(bag) as reader:
        conns = [c for c in reader.connections if c.topic == "/rec_field"]
        assert [c.msgtype for c in conns] == ["traceany_ros/msg/TrajectoryField"]
        raw = [data for _, _, data in reader.messages(connections=conns)]
    assert len(raw) == 5
    got = field_from_msg(deserialize_message(bytes(raw[0]), TrajectoryFieldMsg))
    np.testing.assert_array_equal(got.control_points, want.control_points)
    # the recorded definition lets a typestore decode it without our Python package
    from traceany_ros.commands.record import typestore

    decoded = typestore().deserialize_cdr(bytes(raw[0]), "traceany_ros/msg/TrajectoryField")
    assert decoded.num_control_points == 10 and decoded.spline_type == "clamped_bspline_deg3_triple_knots"

    # play it back into a fresh subscriber process
    out = tmp_path / "got.npz"
    cap = ros_procs.script("subscriber", "capture_fields.py", ["--topic", "/rec_field", "--out", str(out),
                                                               "--count", "2", "--timeout", "40"])
    ros_procs.python("player", ["-m", "traceany_ros.cli", "play", str(bag), "--loop", "--start-delay", "0.5"])
    assert ros_procs.wait(cap, timeout=60) == 0, ros_procs.dump()
    back = np.load(out)
    np.testing.assert_array_equal(back["0/control_points"], want.control_points)


def test_record_keeps_the_camera_tf_tree_and_play_latches_tf_static(ros_procs, tmp_path, rclpy_context):
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.qos import DurabilityPolicy, QoSProfile
    from tf2_msgs.msg import TFMessage

    from conftest import spin_until

    bag = tmp_path / "bag"
    cam = ros_procs.python("camera", ["-m", "traceany_ros.nodes.sim_camera", "--ros-args", "-p", "source:=synthetic",
                                      "-p", "frames:=4", "-p", "width:=64", "-p", "height:=48"])
    # the default topics: the camera's fixed pose went out on /tf_static before the recorder started
    rec = ros_procs.python("record", ["-m", "traceany_ros.cli", "record", str(bag), "--duration", "4",
                                      "--discovery-timeout", "30", "--settle", "2"])
    assert ros_procs.wait(rec, timeout=90) == 0, ros_procs.dump()
    cam.terminate()
    assert ros_procs.wait(cam, timeout=20) is not None
    from rosbags.rosbag2 import Reader

    with Reader(bag) as reader:
        counts = {c.topic: c.msgcount for c in reader.connections}
    assert counts.get("/tf_static", 0) >= 1 and counts.get("/camera/camera/color/image_raw", 0) >= 1, counts

    # played back, /tf_static is latched (transient local, as tf2 listeners subscribe: a volatile publisher
    # would never reach them); the listener comes after the first message went out
    ros_procs.python("player", ["-m", "traceany_ros.cli", "play", str(bag), "--loop"])
    node = Node("late_tf_listener", context=rclpy_context)
    ex = SingleThreadedExecutor(context=rclpy_context)
    ex.add_node(node)
    got = []
    spin_until(ex, lambda: False, timeout=3.0)
    node.create_subscription(TFMessage, "/tf_static", got.append,
                             QoSProfile(depth=10, durability=DurabilityPolicy.TRANSIENT_LOCAL))
    assert spin_until(ex, lambda: bool(got), timeout=30), ros_procs.dump()
    children = {t.child_frame_id for m in got for t in m.transforms}
    assert {"camera_link", "camera_color_optical_frame"} <= children, children
    node.destroy_node()
