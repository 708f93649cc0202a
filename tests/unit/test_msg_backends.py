"""msg/TrajectoryField.msg and field_to_msg / field_from_msg agree on every field, for every backend."""
import numpy as np
import pytest

from traceany_ros.backends import BACKENDS, make_backend
from traceany_ros.msg import TrajectoryField as TrajectoryFieldMsg
from traceany_ros.nodes import convert as cv
from traceany_ros.sim.synthetic import make_synthetic_episode

# every field of the message and the TrajectoryField attribute (or meta key) it carries
MSG_FIELDS = {
    "header": "frame_id + meta['stamp']", "camera_frame_id": "meta['camera_frame_id']",
    "spline_type": "checked", "num_control_points": "K", "knots": "checked", "frame_stamps": "times",
    "time_start": "time_span[0]", "time_end": "time_span[1]", "num_frames": "T", "height": "h", "width": "w",
    "image_height": "image_size[0]", "image_width": "image_size[1]", "stride": "stride",
    "pixel_offset": "pixel_offset", "control_points": "control_points", "confidence": "confidence",
    "motion": "motion", "visibility": "visibility", "backend": "meta['backend']",
}


def test_message_definition_has_exactly_the_fields_field_from_msg_reads():
    assert set(TrajectoryFieldMsg.get_fields_and_field_types()) == set(MSG_FIELDS)
    types = TrajectoryFieldMsg.get_fields_and_field_types()
    assert types["confidence"] == "sequence<float>" and types["motion"] == "sequence<uint8>"
    assert types["visibility"] == "sequence<uint8>" and TrajectoryFieldMsg.PROBABILITY_MAX == 255


@pytest.fixture(scope="module")
def window():
    ep = make_synthetic_episode(num_frames=6, height=64, width=96, seed=5)
    return ep.inputs()


@pytest.mark.parametrize("name", sorted(BACKENDS))
def test_round_trip_of_each_backend(name, window):
    opts = {"stride": 8} if name in ("static", "flow", "flow-rigid") else {}
    backend = make_backend(name, **opts)
    field = backend.predict(window)
    label = cv.backend_label(backend)
    msg = cv.field_to_msg(field, frame_id="world", camera_frame_id="camera_color_optical_frame", backend=label)
    got = cv.field_from_msg(msg)
    t, h, w, k = field.control_points.shape[:4]
    assert (msg.num_frames, msg.height, msg.width, msg.num_control_points) == (t, h, w, k)
    np.testing.assert_array_equal(got.control_points, field.control_points.astype(np.float32))
    conf = got.confidence
    assert conf.shape == (t, h, w) and conf.min() >= 0.0 and conf.max() <= 1.0
    np.testing.assert_allclose(conf, cv.unit_confidence(field.confidence))
    np.testing.assert_allclose(got.times, field.times, atol=1e-9)
    assert got.time_span == pytest.approx(field.time_span)
    assert (got.stride, got.pixel_offset, got.image_size) == (field.stride, field.pixel_offset, field.image_size)
    assert got.frame_id == "world" and got.meta["camera_frame_id"] == "camera_color_optical_frame"
    assert got.meta["stamp"] == pytest.approx(field.times[-1])
    for attr in ("motion", "visibility"):
        a, b = getattr(field, attr), getattr(got, attr)
        assert (a is None) == (b is None), attr
        if a is not None:
            np.testing.assert_allclose(b, a, atol=0.5 / 255 + 1e-7)
    if name == "model":
        preset = backend.model.config.name
        assert got.meta["backend"].startswith(f"model:{preset}@") and len(got.meta["backend"].split(":")[-1]) == 12
    else:
        assert got.meta["backend"] == name
    # the latest-frame message (tracer's ~/trajectory_field_latest) is the same message with one source frame
    latest = cv.field_from_msg(cv.field_to_msg(field.select_frames([-1]), backend=label))
    assert latest.num_frames == 1 and latest.time_span == pytest.approx(field.time_span)
    np.testing.assert_allclose(latest.positions(field.times[-1])[0], got.positions(field.times[-1])[-1], atol=1e-6)
