"""TF: camera nodes publish one consistent tree; the tracer takes each frame's pose from it.

Tree: world -> camera_link (fixed: /tf_static; moving: /tf at every frame's stamp) ->
camera_color_optical_frame (/tf_static, the REP-103 optical rotation). No child frame is
on both topics.
"""
import sys

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from conftest import spin_until

pytestmark = pytest.mark.ros


def _frame(pose):
    from traceany_ros.sources import Frame

    return Frame(rgb=np.zeros((8, 8, 3), np.uint8), depth=np.ones((8, 8), np.float32),
                 intrinsics=np.array([[10, 0, 4], [0, 10, 4], [0, 0, 1]], np.float32), cam_to_world=pose,
                 stamp=0.0, index=0)


def _listen(ctx, node):
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from tf2_msgs.msg import TFMessage

    listener = rclpy.create_node("tf_test_listener", context=ctx)
    static, dynamic = [], []
    latched = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
    listener.create_subscription(TFMessage, "/tf_static", static.append, latched)
    listener.create_subscription(TFMessage, "/tf", dynamic.append, 10)
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(node)
    ex.add_node(listener)
    return listener, ex, static, dynamic


def _buffer(static, dynamic):
    from traceany_ros.nodes.tf_buffer import TfBuffer, add_tf_message

    b = TfBuffer()
    for m in static:
        add_tf_message(b, m, True)
    for m in dynamic:
        add_tf_message(b, m, False)
    return b


def _pose(euler, t):
    T = np.eye(4)
    T[:3, :3] = Rotation.from_euler("xyz", euler, degrees=True).as_matrix()
    T[:3, 3] = t
    return T


def test_fixed_camera_latches_its_tree_on_tf_static_only(rclpy_context):
    import rclpy

    from traceany_ros.nodes.camera import CameraPublisher, CameraTopicsConfig

    node = rclpy.create_node("tf_test_camera", context=rclpy_context)
    cam = CameraPublisher(node, CameraTopicsConfig())
    pose = _pose([-120, 5, 80], [0.9, -0.1, 0.5])
    cam.publish(_frame(pose), 1.0)  # before anyone listens: /tf_static is latched
    listener, ex, static, dynamic = _listen(rclpy_context, node)
    try:
        assert spin_until(ex, lambda: static, timeout=10.0), "no latched /tf_static reached a late subscriber"
        children = {t.child_frame_id: t.header.frame_id for t in static[-1].transforms}
        assert children == {"camera_link": "world", "camera_color_optical_frame": "camera_link"}
        np.testing.assert_allclose(_buffer(static, []).lookup("world", "camera_color_optical_frame", 5.0), pose,
                                   atol=1e-6)
        cam.publish(_frame(pose), 1.1)
        spin_until(ex, lambda: dynamic, timeout=0.5)
        assert not dynamic, "a fixed camera sends nothing on /tf"
    finally:
        ex.shutdown()
        node.destroy_node()
        listener.destroy_node()


def test_moving_camera_sends_its_pose_on_tf_and_only_the_optical_rotation_on_tf_static(rclpy_context):
    import rclpy

    from traceany_ros.nodes.camera import CameraPublisher, CameraTopicsConfig

    node = rclpy.create_node("tf_test_camera", context=rclpy_context)
    cam = CameraPublisher(node, CameraTopicsConfig(), moving=True)
    listener, ex, static, dynamic = _listen(rclpy_context, node)
    poses = [_pose([-120 + 5 * k, 5, 80], [0.9 + 0.05 * k, -0.1, 0.5]) for k in range(3)]
    try:
        assert spin_until(ex, lambda: cam.tf.get_subscription_count() > 0, timeout=10.0)
        for k, p in enumerate(poses):
            cam.publish(_frame(p), 1.0 + 0.1 * k)
        assert spin_until(ex, lambda: len(dynamic) >= 3 and static, timeout=10.0), (len(dynamic), len(static))
        on_static = {t.child_frame_id for m in static for t in m.transforms}
        on_tf = {t.child_frame_id for m in dynamic for t in m.transforms}
        assert on_static == {"camera_color_optical_frame"} and on_tf == {"camera_link"}
        b = _buffer(static, dynamic)
        for k, p in enumerate(poses):
            np.testing.assert_allclose(b.lookup("world", "camera_color_optical_frame", 1.0 + 0.1 * k), p, atol=1e-6)
        # between two frames the pose is interpolated
        mid = b.lookup("world", "camera_color_optical_frame", 1.05)
        np.testing.assert_allclose(mid[:3, 3], (poses[0][:3, 3] + poses[1][:3, 3]) / 2, atol=1e-6)
    finally:
        ex.shutdown()
        node.destroy_node()
        listener.destroy_node()


def test_tracer_takes_a_moving_camera_pose_from_tf_across_processes(ros_procs, tmp_path):
    """sim_camera and tracer processes (``traceany up sim``): the static backend's curves sit at each
    frame's own unprojection, which lands where it should only with the right pose of that frame."""
    from traceany_ros.episode import FrameWindow
    from traceany_ros.geometry import grid_points_world
    from traceany_ros.episode import save_episode
    from traceany_ros.sim.synthetic import make_synthetic_episode

    rate, origin, stride = 10.0, 2000.0, 4
    ep = make_synthetic_episode(num_frames=12, height=48, width=64, seed=3, camera_velocity=(0.3, -0.2))
    ep.cam_to_world[:, :3, :3] = ep.cam_to_world[:, :3, :3] @ np.stack(  # and it turns about its axis
        [Rotation.from_euler("z", 3 * k, degrees=True).as_matrix() for k in range(12)])
    moved = np.linalg.norm(ep.cam_to_world[-1, :3, 3] - ep.cam_to_world[0, :3, 3])
    assert moved > 0.3
    path = tmp_path / "moving.npz"
    save_episode(path, ep)
    out = tmp_path / "fields.npz"
    cap = ros_procs.script("subscriber", "capture_fields.py",
                           ["--topic", "/traceany_tracer/trajectory_field", "--out", str(out), "--count", "4",
                            "--timeout", "60"])
    ros_procs.start("graph", [sys.executable, "-m", "traceany_ros.cli", "up", "sim", "source:=episode",
                              f"episode:={path}", f"rate_hz:={rate}", f"time_origin:={origin}", "backend:=static",
                              "window:=4", "step:=2", f"field_stride:={stride}", "wait_for_subscribers:=1"])
    assert ros_procs.wait(cap, timeout=90) == 0, ros_procs.dump()
    log = ros_procs.log("graph")
    assert "pose from TF" in log and "camera moving (/tf)" in log, log[-3000:]
    assert "no_transform" not in log, log[-3000:]
    got = np.load(out)
    checked = 0
    for n in range(int(got["count"])):
        times = got[f"{n}/times"]
        idx = np.round((times - origin) * rate).astype(int) % ep.num_frames
        win = FrameWindow(ep.rgb[idx], ep.depth[idx], ep.intrinsics, ep.cam_to_world[idx], times)
        want, valid = grid_points_world(win, stride, 0)
        cp = got[f"{n}/control_points"][..., 0, :]
        err = np.linalg.norm(cp - want, axis=-1)[valid]
        assert err.max() < 1e-3, f"field {n}: points up to {err.max():.3f} m from the TF pose's unprojection"
        # the same frames seen from the first frame's pose would be far off: the pose really changed
        still = FrameWindow(ep.rgb[idx], ep.depth[idx], ep.intrinsics, np.repeat(ep.cam_to_world[idx[:1]], 4, 0),
                            times)
        wrong = np.linalg.norm(cp - grid_points_world(still, stride, 0)[0], axis=-1)[valid]
        if idx[-1] != idx[0]:
            assert wrong.mean() > 0.02
        checked += 1
    assert checked >= 4
