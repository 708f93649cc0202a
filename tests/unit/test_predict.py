"""predict_episode (lookup, sliding windows) and the `traceany predict` command."""
import numpy as np
import pytest

from traceany_ros.backends import make_backend
from traceany_ros.cli import main
from traceany_ros.episode import FrameWindow, load_prediction, save_episode
from traceany_ros.field import TrajectoryField, fit_trajectory
from traceany_ros.geometry import grid_points_world
from traceany_ros.predict import predict_episode, window_starts
from traceany_ros.sim.synthetic import make_synthetic_episode


class DriftBackend:
    """Every point moves with one world velocity; window number k gets it scaled by (1 + bias * k),
    so windows disagree with each other and the joins are what is under test."""

    name, device = "drift", "cpu"

    def __init__(self, velocity, bias=0.0, stride=4):
        self.velocity, self.bias, self.stride, self.calls = np.asarray(velocity, float), bias, stride, 0

    def predict(self, window):
        base, valid = grid_points_world(window, self.stride, self.stride // 2)  # [T,h,w,3]
        t = np.asarray(window.times)
        s = (t - t[0]) / (t[-1] - t[0])
        v = self.velocity * (1 + self.bias * self.calls)
        self.calls += 1
        pts = base[:, :, :, None, :] + (t[None, None, None, :, None] - t[:, None, None, None, None]) * v
        cp = fit_trajectory(s, pts, 10)
        return TrajectoryField(cp, valid.astype(np.float32), t, stride=self.stride, pixel_offset=self.stride // 2,
                               time_span=(t[0], t[-1]))


@pytest.fixture(scope="module")
def episode():
    return make_synthetic_episode(num_frames=30, height=48, width=64, seed=6, num_queries=64, card_velocity=(0.1, 0.0))


def test_window_starts_cover_the_clip():
    assert window_starts(10, 24, 8) == [0]
    st = window_starts(50, 24, 8)
    assert st[0] == 0 and st[-1] == 26 and all(b - a <= 16 for a, b in zip(st, st[1:]))
    with pytest.raises(ValueError, match="overlap"):
        window_starts(50, 8, 8)


def test_static_backend_is_exact_on_static_points(episode):
    tracks, conf = predict_episode(episode, make_backend("static"), window=12, overlap=4)
    err = np.linalg.norm(tracks - episode.tracks_world, axis=-1)
    assert err[~episode.dynamic].max() < 1e-5
    assert tracks.shape == (64, 30, 3) and conf.shape == (64, 30)


def test_sliding_windows_match_one_window_when_windows_agree(episode):
    v = (0.05, -0.02, 0.01)
    one, _ = predict_episode(episode, DriftBackend(v), window=30, overlap=8)
    slid, _ = predict_episode(episode, DriftBackend(v), window=10, overlap=4)
    np.testing.assert_allclose(slid, one, atol=1e-4)


def test_sliding_window_joins_are_continuous(episode):
    v = np.array([0.2, 0.0, 0.0])
    tracks, _ = predict_episode(episode, DriftBackend(v, bias=0.5), window=10, overlap=4)
    step = np.linalg.norm(np.diff(tracks, axis=1), axis=-1)  # [Q,T-1] metres per frame
    dt = np.diff(episode.timestamps).max()
    n_windows = len(window_starts(30, 10, 4))
    assert n_windows == 5
    # the fastest window moves at |v| (1 + 0.5 (n - 1)) per second; the cross-fade may add a little
    # (windows disagree by 50% in speed), a jump at a border would add a lot more
    fastest = np.linalg.norm(v) * (1 + 0.5 * (n_windows - 1)) * dt
    assert step.max() < 1.25 * fastest, (step.max(), fastest)
    # the speed ramps from window to window instead of jumping: step sizes change gradually
    assert np.abs(np.diff(step, axis=1)).max() < 0.5 * fastest
    # and every track still passes through its query's unprojection at its own frame
    q = episode.query_pixels
    own = tracks[np.arange(len(q)), q[:, 0]]
    np.testing.assert_allclose(own, episode.tracks_world[np.arange(len(q)), q[:, 0]], atol=1e-4)


def test_predict_command_writes_contract_output(tmp_path, episode, capsys):
    path = tmp_path / "ep.npz"
    save_episode(path, episode)
    out = tmp_path / "pred.npz"
    assert main(["predict", "--input", str(path), "--output", str(out), "--method", "static"]) == 0
    tracks, conf = load_prediction(out)
    assert tracks.shape == episode.tracks_world.shape and conf.shape == episode.visible.shape
    assert tracks.dtype == np.float32


@pytest.mark.parametrize("bad_key,change", [
    ("depth", lambda d: d.pop("depth")),
    ("query_pixels", lambda d: d.__setitem__("query_pixels", d["query_pixels"].astype(np.float32))),
    ("cam_to_world", lambda d: d.__setitem__("cam_to_world", d["cam_to_world"][:-1])),
    ("timestamps", lambda d: d.__setitem__("timestamps", d["timestamps"][::-1].copy())),
])
def test_predict_refuses_malformed_episode_naming_the_key(tmp_path, episode, capsys, bad_key, change):
    d = episode.to_arrays()
    change(d)
    path = tmp_path / "bad.npz"
    np.savez(path, **d)
    assert main(["predict", "--input", str(path), "--output", str(tmp_path / "p.npz"), "--method", "static"]) == 2
    err = capsys.readouterr().err
    assert bad_key in err and "malformed" in err
    assert not (tmp_path / "p.npz").exists()
