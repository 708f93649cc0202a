"""Message <-> numpy conversions of the node layer (no DDS, no running graph)."""
import numpy as np
import pytest

from traceany_ros.field import TrajectoryField
from traceany_ros.nodes import convert as cv
from sensor_msgs.msg import Image


def _field(seed=0, t=4, h=3, w=5, k=7):
    rng = np.random.default_rng(seed)
    times = 100.0 + np.arange(t) / 15.0
    return TrajectoryField(rng.normal(size=(t, h, w, k, 3)), rng.random((t, h, w)), times, stride=8,
                           pixel_offset=4, image_size=(24, 40), frame_id="world", meta={"backend": "flow"})


def test_field_round_trip_is_exact():
    f = _field()
    m = cv.field_to_msg(f, camera_frame_id="cam")
    g = cv.field_from_msg(m)
    np.testing.assert_array_equal(g.control_points, f.control_points)
    np.testing.assert_array_equal(g.confidence, f.confidence)
    np.testing.assert_allclose(g.times, f.times, atol=1e-9)
    assert (g.stride, g.pixel_offset, g.image_size, g.frame_id) == (8, 4, (24, 40), "world")
    assert g.meta["backend"] == "flow" and g.meta["camera_frame_id"] == "cam"
    assert len(m.knots) == 7 + 4 and m.spline_type == "clamped_bspline_deg3_triple_knots"
    np.testing.assert_allclose(g.positions(100.1), f.positions(100.1), atol=1e-6)


def test_motion_and_visibility_travel_as_uint8_and_are_empty_when_absent():
    f = _field()
    assert len(cv.field_to_msg(f).motion) == 0 and len(cv.field_to_msg(f).visibility) == 0
    g = cv.field_from_msg(cv.field_to_msg(f))
    assert g.motion is None and g.visibility is None
    rng = np.random.default_rng(3)
    f.motion = rng.random(f.confidence.shape).astype(np.float32)
    f.visibility = rng.random(f.confidence.shape + (f.num_frames,)).astype(np.float32)
    f.visibility[0, 0, 0, :2] = [1.0, 0.0]
    m = cv.field_to_msg(f)
    assert len(m.motion) == f.confidence.size and len(m.visibility) == f.confidence.size * f.num_frames
    g = cv.field_from_msg(m)
    assert g.motion.dtype == np.float32 and g.motion.shape == f.motion.shape
    np.testing.assert_allclose(g.motion, f.motion, atol=0.5 / 255 + 1e-7)
    np.testing.assert_allclose(g.visibility, f.visibility, atol=0.5 / 255 + 1e-7)
    assert g.visibility[0, 0, 0, 0] == 1.0 and g.visibility[0, 0, 0, 1] == 0.0
    m.motion = m.motion[:-1]
    with pytest.raises(cv.ConversionError, match="motion has"):
        cv.field_from_msg(m)


def test_confidence_is_sent_in_unit_range():
    # every backend's [0, 1] goes unchanged; NaN and values outside cannot reach a subscriber
    flow = np.array([0.0, 0.25, 1.0], np.float32)
    np.testing.assert_array_equal(cv.unit_confidence(flow), flow)
    np.testing.assert_array_equal(cv.unit_confidence(np.array([np.nan, -0.5, 3.0])), [0.0, 0.0, 1.0])
    f = _field()
    f.confidence = f.confidence * 50 + 1
    sent = np.frombuffer(memoryview(cv.field_to_msg(f).confidence), np.float32)
    assert sent.min() >= 0 and sent.max() <= 1 and sent.max() > 0.9


def test_backend_label_names_the_checkpoint(tmp_path):
    from types import SimpleNamespace as NS
    import hashlib

    assert cv.backend_label(NS(name="flow-rigid")) == "flow-rigid"
    ck = tmp_path / "best.pt"
    ck.write_bytes(b"weights")
    model = NS(name="model", model=NS(config=NS(name="tiny")), checkpoint={"path": str(ck)})
    assert cv.backend_label(model) == f"model:tiny@best.pt:{hashlib.sha256(b'weights').hexdigest()[:12]}"
    assert cv.backend_label(NS(name="model", model=NS(config=NS(name="base")), checkpoint=None)) == \
        "model:base@untrained"


def test_field_from_msg_rejects_inconsistent_sizes():
    m = cv.field_to_msg(_field())
    m.height = 4
    with pytest.raises(cv.ConversionError, match="control_points has"):
        cv.field_from_msg(m)
    m = cv.field_to_msg(_field())
    m.spline_type = "catmull_rom"
    with pytest.raises(cv.ConversionError, match="unsupported spline_type"):
        cv.field_from_msg(m)


@pytest.mark.parametrize("enc", ["rgb8", "bgr8", "rgba8", "bgra8"])
def test_colour_encodings_give_rgb(enc):
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 255, (5, 7, 3), dtype=np.uint8)
    ch = 4 if "a" in enc else 3
    px = rgb[..., ::-1] if enc.startswith("bgr") else rgb
    if ch == 4:
        px = np.concatenate([px, np.full((5, 7, 1), 9, np.uint8)], -1)
    # row padding of 3 bytes: step > width * channels
    data = np.concatenate([px.reshape(5, -1), np.zeros((5, 3), np.uint8)], 1)
    msg = Image(height=5, width=7, encoding=enc, step=7 * ch + 3, data=data.tobytes())
    np.testing.assert_array_equal(cv.image_to_rgb(msg), rgb)


def test_wrong_encoding_and_truncated_data_are_clear_errors():
    msg = cv.rgb_to_image(np.zeros((4, 6, 3), np.uint8))
    msg.encoding = "yuv422"
    with pytest.raises(cv.ConversionError, match="yuv422.*expected"):
        cv.image_to_rgb(msg)
    with pytest.raises(cv.ConversionError, match="depth image has encoding 'rgb8'"):
        cv.image_to_depth(cv.rgb_to_image(np.zeros((4, 6, 3), np.uint8)))
    msg = cv.rgb_to_image(np.zeros((4, 6, 3), np.uint8))
    msg.data = msg.data[:-5]
    with pytest.raises(cv.ConversionError, match="truncated"):
        cv.image_to_rgb(msg)


def test_depth_encodings_and_invalid_values():
    d = np.array([[0.5, 1.25, 0.0], [2.0, 3.5, 0.001]], np.float32)
    np.testing.assert_allclose(cv.image_to_depth(cv.depth_to_image(d, encoding="16UC1")), d, atol=5e-4)
    bad = d.copy()
    bad[0, 0], bad[1, 1], bad[0, 1] = np.nan, np.inf, -1
    out = cv.image_to_depth(cv.depth_to_image(bad, encoding="32FC1"))
    assert out[0, 0] == 0 and out[1, 1] == 0 and out[0, 1] == 0 and out[1, 0] == 2.0
    # big-endian 16UC1
    be = Image(height=1, width=2, encoding="16UC1", is_bigendian=1, step=4,
               data=np.array([1000, 2500], ">u2").tobytes())
    np.testing.assert_allclose(cv.image_to_depth(be), [[1.0, 2.5]])


def test_camera_info_and_pose_round_trip():
    K = np.array([[500.0, 0, 320], [0, 510, 240], [0, 0, 1]])
    got, size = cv.camera_info_to_intrinsics(cv.intrinsics_to_camera_info(K, 480, 640))
    np.testing.assert_allclose(got, K)
    assert size == (480, 640)
    with pytest.raises(cv.ConversionError, match="invalid K"):
        cv.camera_info_to_intrinsics(cv.intrinsics_to_camera_info(np.zeros((3, 3)), 480, 640))
    from transforms3d.euler import euler2mat

    T = np.eye(4)
    T[:3, :3] = euler2mat(0.3, -0.2, 1.1)
    T[:3, 3] = [0.1, -2, 3]
    np.testing.assert_allclose(cv.pose_to_matrix(cv.matrix_to_pose(T)), T, atol=1e-12)


def test_point_cloud_and_markers():
    pts = np.random.default_rng(2).normal(size=(50, 3)).astype(np.float32)
    cloud = cv.make_point_cloud(pts, 1.0, "world", rgb=np.full((50, 3), 200, np.uint8), confidence=np.ones(50))
    assert cloud.width == 50 and cloud.point_step == 20
    np.testing.assert_array_equal(cv.point_cloud_to_array(cloud), pts)
    # a field with one moving pixel column and the rest static
    t = np.arange(4) / 10.0
    cp = np.zeros((4, 3, 5, 7, 3), np.float32)
    cp[:, :, 0, :, 0] = np.linspace(0, 1, 7)
    f = TrajectoryField(cp, np.ones((4, 3, 5)), t)
    ma = cv.field_markers(f, 0.3, max_curves=10)
    strips = [m for m in ma.markers if m.type == m.LINE_STRIP]
    dashes = [m for m in ma.markers if m.type == m.LINE_LIST]
    assert ma.markers[0].action == ma.markers[0].DELETEALL
    assert len(strips) == 3 and len(dashes) == 3  # the 3 moving curves only
    assert strips[0].points[0].x == pytest.approx(0.0) and strips[0].points[-1].x == pytest.approx(1.0)
    assert strips[0].colors[0].b > strips[0].colors[-1].b  # blue (old) -> red (new)
    assert dashes[0].points[0].x >= 1.0 - 1e-6  # the forecast starts at the end of the span


def test_static_camera_pose_checks_both_parameters():
    from scipy.spatial.transform import Rotation

    from traceany_ros.nodes.convert import static_camera_pose

    q = Rotation.from_euler("xyz", [-110, 3, 85], degrees=True)
    T = static_camera_pose([0.9, -0.1, 0.5], q.as_quat())
    np.testing.assert_allclose(T[:3, :3], q.as_matrix(), atol=1e-12)
    np.testing.assert_allclose(T[:3, 3], [0.9, -0.1, 0.5])
    for pos, quat, name in (([0, 0], [0, 0, 0, 1], "camera_position"), ([0, 0, np.nan], [0, 0, 0, 1], "camera_position"),
                            ([0, 0, 0], [0, 0, 0, 2], "camera_orientation"),
                            ([0, 0, 0], [np.nan, 0, 0, 1], "camera_orientation")):
        with pytest.raises(ValueError, match=name):
            static_camera_pose(pos, quat)


def test_grasp_plan_message_round_trip():
    from traceany_ros.nodes.planner import plan_from_msg, plan_to_msg
    from traceany_ros.policies.plan import Plan, Waypoint

    down = [1.0, 0.0, 0.0, 0.0]  # gripper pointing down (x, y, z, w)
    wps = [Waypoint("pre-grasp", [0.5, 0.1, 0.2], down, 0.08), Waypoint("grasp", [0.5, 0.1, 0.02], down, 0.0),
           Waypoint("place", [0.4, -0.2, 0.03], [0.0, 1.0, 0.0, 0.0], 0.08)]
    motion = np.eye(4)
    motion[:3, 3] = [-0.1, -0.3, 0.0]
    plan = Plan(success=True, message="ok", waypoints=wps, object_motion=motion, fit_rmse=0.002,
                num_object_points=40, grasp=wps[1])
    back = plan_from_msg(plan_to_msg(plan, stamp=3.5, frame_id="world"))
    assert back.success and back.message == "ok" and back.num_object_points == 40
    assert [w.label for w in back.waypoints] == ["pre-grasp", "grasp", "place"] and back.grasp.label == "grasp"
    for a, b in zip(wps, back.waypoints):
        np.testing.assert_allclose(b.position, a.position, atol=1e-9)
        assert abs(abs(np.dot(b.quaternion, a.quaternion)) - 1.0) < 1e-9  # same rotation (q ~ -q)
        assert b.gripper == pytest.approx(a.gripper)
    np.testing.assert_allclose(back.object_motion, motion, atol=1e-9)
    assert back.fit_rmse == pytest.approx(0.002)
