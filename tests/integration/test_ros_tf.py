"""Camera nodes publish their pose on /tf_static (latched) and /tf when it moves, like realsense-ros."""
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from conftest import spin_until


@pytest.mark.ros
def test_camera_pose_goes_out_on_tf_static_then_tf(rclpy_context):
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from tf2_msgs.msg import TFMessage

    from traceany_ros.nodes.camera import CameraPublisher, CameraTopicsConfig
    from traceany_ros.nodes.convert import pose_to_matrix
    from traceany_ros.sources import Frame

    node = rclpy.create_node("tf_test_camera", context=rclpy_context)
    cam = CameraPublisher(node, CameraTopicsConfig())
    pose = np.eye(4)
    pose[:3, :3] = Rotation.from_euler("xyz", [-120, 5, 80], degrees=True).as_matrix()
    pose[:3, 3] = [0.9, -0.1, 0.5]
    frame = Frame(rgb=np.zeros((8, 8, 3), np.uint8), depth=np.ones((8, 8), np.float32),
                  intrinsics=np.array([[10, 0, 4], [0, 10, 4], [0, 0, 1]], np.float32), cam_to_world=pose,
                  stamp=0.0, index=0)
    cam.publish(frame, 1.0)  # before anyone listens: /tf_static is latched

    listener = rclpy.create_node("tf_test_listener", context=rclpy_context)
    static, dynamic = [], []
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    listener.create_subscription(TFMessage, "/tf_static", static.append, latched)
    listener.create_subscription(TFMessage, "/tf", dynamic.append, 10)
    ex = SingleThreadedExecutor(context=rclpy_context)
    ex.add_node(node)
    ex.add_node(listener)
    try:
        assert spin_until(ex, lambda: static, timeout=10.0), "no latched /tf_static reached a late subscriber"
        tf = static[0].transforms[0]
        assert tf.header.frame_id == "world" and tf.child_frame_id == "camera_color_optical_frame"
        t, q = tf.transform.translation, tf.transform.rotation
        from geometry_msgs.msg import Point, Pose

        got = pose_to_matrix(Pose(position=Point(x=t.x, y=t.y, z=t.z), orientation=q))
        np.testing.assert_allclose(got, pose, atol=1e-6)
        # a static camera sends nothing on /tf; a moved one does
        cam.publish(frame, 1.1)
        spin_until(ex, lambda: dynamic, timeout=0.5)
        assert not dynamic
        moved = pose.copy()
        moved[0, 3] += 0.05
        cam.publish(Frame(**{**frame.__dict__, "cam_to_world": moved}), 1.2)
        assert spin_until(ex, lambda: dynamic, timeout=10.0), "a moving camera must publish /tf"
        assert dynamic[-1].transforms[0].transform.translation.x == pytest.approx(0.95)
    finally:
        ex.shutdown()
        node.destroy_node()
        listener.destroy_node()
