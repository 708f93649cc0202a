"""TrajectoryField messages round-trip between two OS processes over real DDS (Fast DDS)."""
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent / "ros_scripts"))
from pub_field import make_field  # noqa: E402

pytestmark = pytest.mark.ros


def test_field_round_trip_between_two_processes(ros_procs, tmp_path):
    out = tmp_path / "got.npz"
    ros_procs.script("publisher", "pub_field.py", ["--topic", "/rt_field", "--seed", "7"])
    sub = ros_procs.script("subscriber", "capture_fields.py",
                           ["--topic", "/rt_field", "--out", str(out), "--count", "1", "--timeout", "40"])
    rc = ros_procs.wait(sub, timeout=60)
    assert rc == 0, ros_procs.dump()
    got = np.load(out)
    want = make_field(7)
    assert int(got["count"]) == 1
    np.testing.assert_array_equal(got["0/control_points"], want.control_points)
    np.testing.assert_array_equal(got["0/confidence"], want.confidence)
    # stamps travel as (sec, nanosec): exact to the nanosecond
    np.testing.assert_allclose(got["0/times"], want.times, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(got["0/time_span"], np.array(want.time_span))
    np.testing.assert_array_equal(got["0/grid"], [want.stride, want.pixel_offset, *want.image_size])
    assert str(got["0/frame_id"]) == "odom"
    assert str(got["0/backend"]) == "test:seed7"
    assert str(got["0/camera_frame_id"]) == "camera_color_optical_frame"
