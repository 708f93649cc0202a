"""The flow baseline on a synthetic translating, textured scene."""
import numpy as np
import pytest

from traceany_ros.backends import make_backend
from traceany_ros.flow import FlowConfig, track_window
from traceany_ros.predict import predict_episode
from traceany_ros.train.synthetic import make_synthetic_episode


@pytest.fixture(scope="module")
def episode():
    return make_synthetic_episode(num_frames=12, height=96, width=128, seed=2, card_velocity=(0.2, 0.05),
                                  card_spin=0.0)


def _errors(ep, tracks):
    err = np.linalg.norm(tracks - ep.tracks_world, axis=-1)
    return err[ep.dynamic].mean(), err[~ep.dynamic].mean()


def test_flow_beats_static_on_moving_points(episode):
    static_dyn, static_sta = _errors(episode, predict_episode(episode, make_backend("static"))[0])
    flow_dyn, flow_sta = _errors(episode, predict_episode(episode, make_backend("flow"))[0])
    assert static_sta < 1e-6  # the static baseline is exact on static points
    assert flow_dyn < 0.5 * static_dyn, (flow_dyn, static_dyn)
    assert flow_sta < 0.02, flow_sta  # and flow keeps static points within 2 cm


def test_flow_field_contract(episode):
    field = make_backend("flow", stride=8).predict(episode.inputs())
    assert field.control_points.shape == (12, 12, 16, 10, 3)
    assert field.time_span == (episode.timestamps[0], episode.timestamps[-1])
    assert field.stride == 8 and field.pixel_offset == 4
    assert np.all((field.confidence >= 0) & (field.confidence <= 1))


def test_tracks_start_at_own_unprojection(episode):
    points, weights, alive, valid = track_window(episode.inputs(), FlowConfig(stride=16))
    T = points.shape[0]
    own = points[np.arange(T), :, :, np.arange(T)]  # [T,h,w,3]
    r = 8 + 16 * np.arange(points.shape[1])
    c = 8 + 16 * np.arange(points.shape[2])
    from traceany_ros.episode import unproject
    expect = np.stack([unproject(episode.depth[f], episode.intrinsics, episode.cam_to_world[f])[np.ix_(r, c)]
                       for f in range(T)])
    np.testing.assert_allclose(own, expect, atol=1e-5)
    assert np.all(weights[np.arange(T), :, :, np.arange(T)] == 1.0)


def test_bad_flow_method_is_refused():
    with pytest.raises(ValueError, match="flow method"):
        FlowConfig(method="lucas")
