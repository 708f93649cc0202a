"""Frame sources: episode playback and RealSense recordings made with software_device (no camera)."""
import numpy as np
import pytest

from traceany_ros.sim.synthetic import make_synthetic_episode
from traceany_ros.sources.episode import EpisodeSource
from traceany_ros.sources.realsense import RealSenseConfig, RealSenseSource, write_recording


@pytest.fixture(scope="module")
def ep():
    return make_synthetic_episode(num_frames=6, height=48, width=64, seed=2)


def test_episode_source_loops_with_increasing_stamps(ep):
    src = EpisodeSource(ep, loop=True)
    frames = [f for _, f in zip(range(14), src)]
    stamps = np.array([f.stamp for f in frames])
    assert np.all(np.diff(stamps) > 0)
    np.testing.assert_allclose(np.diff(stamps), 0.1, atol=1e-9)  # synthetic episodes are 10 fps
    assert np.array_equal(frames[7].rgb, ep.rgb[1]) and frames[13].index == 13
    assert len(list(EpisodeSource(ep))) == 6


def test_realsense_recording_plays_back_bit_exact(ep, tmp_path):
    path = write_recording(tmp_path / "clip.db3", ep.rgb, ep.depth, ep.intrinsics, 50.0 + ep.timestamps)
    with RealSenseSource(RealSenseConfig(file=path, real_time=False, timeout_s=2.0)) as src:
        frames = list(src)
        K = src.intrinsics
    assert [f.index for f in frames] == list(range(6))
    np.testing.assert_allclose([f.stamp for f in frames], 50.0 + ep.timestamps, atol=1e-6)
    np.testing.assert_allclose(K, ep.intrinsics, atol=1e-4)
    for f, i in zip(frames, range(6)):
        assert np.array_equal(f.rgb, ep.rgb[i])
        np.testing.assert_allclose(f.depth, ep.depth[i], atol=5e-4 + 1e-6)  # millimetre quantisation


def test_missing_recording_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        RealSenseConfig(file=str(tmp_path / "nope.db3"))
