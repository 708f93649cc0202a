"""The tracer's TF buffer (pure Python): chains, interpolation, static edges, errors."""
from types import SimpleNamespace as NS

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from traceany_ros.nodes.tf_buffer import TfBuffer, TransformError, add_tf_message, transform_to_matrix


def pose(rotvec, t):
    T = np.eye(4)
    T[:3, :3] = Rotation.from_rotvec(rotvec).as_matrix()
    T[:3, 3] = t
    return T


OPTICAL = pose([0, 0, 0], [0, 0, 0])
OPTICAL[:3, :3] = [[0, 0, 1], [-1, 0, 0], [0, -1, 0]]  # camera_link <- optical (REP 103)


def test_chain_through_static_and_moving_edges_interpolates_at_the_stamp():
    b = TfBuffer()
    b.set_transform("camera_link", "camera_color_optical_frame", 0.0, OPTICAL, static=True)
    b.set_transform("world", "camera_link", 10.0, pose([0, 0, 0.0], [0, 0, 1]))
    b.set_transform("world", "camera_link", 11.0, pose([0, 0, 1.0], [1, 0, 1]))
    got = b.lookup("world", "camera_color_optical_frame", 10.25)
    want = pose([0, 0, 0.25], [0.25, 0, 1]) @ OPTICAL        # slerp of a rotation about one axis: a quarter angle
    np.testing.assert_allclose(got, want, atol=1e-9)
    # exact samples, and the inverse direction
    np.testing.assert_allclose(b.lookup("world", "camera_color_optical_frame", 11.0),
                               pose([0, 0, 1.0], [1, 0, 1]) @ OPTICAL, atol=1e-9)
    np.testing.assert_allclose(b.lookup("camera_color_optical_frame", "world", 10.25), np.linalg.inv(want), atol=1e-9)
    # static edges hold at any time; None = newest common time
    np.testing.assert_allclose(b.lookup("camera_link", "camera_color_optical_frame", 1e9), OPTICAL)
    np.testing.assert_allclose(b.lookup("world", "camera_color_optical_frame", None),
                               pose([0, 0, 1.0], [1, 0, 1]) @ OPTICAL, atol=1e-9)


def test_lookup_between_siblings_goes_through_their_common_parent():
    b = TfBuffer()
    b.set_transform("base", "arm", 0.0, pose([0.3, 0, 0], [0.5, 0, 0]), static=True)
    b.set_transform("base", "cam", 0.0, pose([0, 0.2, 0], [0, 1, 0]), static=True)
    got = b.lookup("arm", "cam", 0.0)
    want = np.linalg.inv(pose([0.3, 0, 0], [0.5, 0, 0])) @ pose([0, 0.2, 0], [0, 1, 0])
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_errors_say_what_is_missing():
    b = TfBuffer()
    b.set_transform("world", "camera_link", 5.0, np.eye(4))
    b.set_transform("world", "camera_link", 6.0, np.eye(4))
    b.set_transform("map", "robot", 0.0, np.eye(4), static=True)
    with pytest.raises(TransformError, match="'camera_color_optical_frame' is on no") as e:
        b.lookup("world", "camera_color_optical_frame", 5.5)
    assert e.value.kind == "unknown_frame" and "camera_link" in str(e.value)
    with pytest.raises(TransformError, match="different trees") as e:
        b.lookup("world", "robot", 5.5)
    assert e.value.kind == "not_connected"
    with pytest.raises(TransformError, match="after the newest") as e:
        b.lookup("world", "camera_link", 6.5)
    assert e.value.kind == "extrapolation" and e.value.future
    with pytest.raises(TransformError, match="before the oldest") as e:
        b.lookup("world", "camera_link", 4.0)
    assert not e.value.future


def test_tolerance_uses_the_end_sample_and_history_is_bounded():
    b = TfBuffer(cache_s=1.0, max_history=50, tolerance_s=0.05)
    for k in range(200):
        b.set_transform("world", "cam", 0.1 * k, pose([0, 0, 0], [0.1 * k, 0, 0]))
    np.testing.assert_allclose(b.lookup("world", "cam", 19.9 + 0.04)[0, 3], 19.9, atol=1e-9)
    with pytest.raises(TransformError):
        b.lookup("world", "cam", 19.9 + 0.06)
    with pytest.raises(TransformError, match="before the oldest"):  # older than cache_s: dropped
        b.lookup("world", "cam", 18.0)
    assert b.lookup("world", "cam", 18.95)[0, 3] == pytest.approx(18.95)
    assert len(b._edges["cam"].times) <= 50


def test_out_of_order_arrival_and_conflicts_are_recorded():
    b = TfBuffer()
    b.set_transform("world", "cam", 2.0, pose([0, 0, 0], [2, 0, 0]))
    b.set_transform("world", "cam", 1.0, pose([0, 0, 0], [1, 0, 0]))
    assert b.lookup("world", "cam", 1.5)[0, 3] == pytest.approx(1.5)
    b.set_transform("world", "cam", 0.0, np.eye(4), static=True)
    assert b.conflicts == {"cam"}
    with pytest.raises(ValueError, match="two different frame names"):
        b.set_transform("cam", "cam", 0.0, np.eye(4))


def test_tf_message_fields_are_read_like_tf2_msgs():
    q = Rotation.from_euler("xyz", [10, 20, 30], degrees=True).as_quat()  # x, y, z, w
    t = NS(header=NS(frame_id="world", stamp=NS(sec=3, nanosec=500_000_000)), child_frame_id="cam",
           transform=NS(translation=NS(x=1.0, y=2.0, z=3.0), rotation=NS(x=q[0], y=q[1], z=q[2], w=q[3])))
    b = TfBuffer()
    assert add_tf_message(b, NS(transforms=[t]), static=False) == 1
    got = b.lookup("world", "cam", 3.5)
    np.testing.assert_allclose(got[:3, :3], Rotation.from_quat(q).as_matrix(), atol=1e-12)
    np.testing.assert_allclose(got[:3, 3], [1, 2, 3])
    bad = NS(translation=NS(x=0, y=0, z=0), rotation=NS(x=0, y=0, z=0, w=0))
    with pytest.raises(ValueError, match="not a rotation"):
        transform_to_matrix(bad)
