"""Robust weighted Kabsch/Umeyama: recovers known transforms under noise and outliers."""
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from traceany_ros.policies.kabsch import RobustFitConfig, robust_rigid_fit, rotation_angle_deg, weighted_kabsch


def _data(seed, n=300, noise=0.002, outlier_frac=0.0):
    rng = np.random.default_rng(seed)
    src = rng.uniform(-0.05, 0.05, (n, 3)) + [0.5, 0.0, 0.03]
    R = Rotation.random(random_state=seed).as_matrix()
    t = rng.uniform(-0.3, 0.3, 3)
    dst = src @ R.T + t + rng.normal(0, noise, src.shape)
    out = rng.choice(n, int(outlier_frac * n), replace=False)
    dst[out] += rng.uniform(-0.3, 0.3, (len(out), 3))
    return src, dst, R, t, out


def test_exact_data_is_recovered_exactly():
    src, dst, R, t, _ = _data(0, noise=0.0)
    fit = weighted_kabsch(src, dst)
    assert rotation_angle_deg(fit.R, R) < 1e-6
    assert np.allclose(fit.t, t, atol=1e-9)
    assert fit.rmse < 1e-9


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_robust_fit_survives_noise_and_30_percent_outliers(seed):
    src, dst, R, t, out = _data(seed, noise=0.002, outlier_frac=0.3)
    plain = weighted_kabsch(src, dst)
    fit = robust_rigid_fit(src, dst)
    assert rotation_angle_deg(fit.R, R) < 1.0
    truth = src @ R.T + t
    err = np.linalg.norm(fit.apply(src) - truth, axis=1).mean()
    assert err < 0.0015  # metres, on points 2 mm noisy
    # the plain fit is dragged by the outliers; the robust one is not
    assert np.linalg.norm(plain.apply(src) - truth, axis=1).mean() > 5 * err
    # outliers are flagged: at most a few outliers are called inliers (those that landed close by chance)
    assert fit.inliers[out].mean() < 0.1
    assert fit.inliers[np.setdiff1d(np.arange(len(src)), out)].mean() > 0.95
    assert fit.rmse < 0.006


def test_confidence_weights_suppress_bad_points():
    src, dst, R, t, out = _data(4, noise=0.0, outlier_frac=0.2)
    w = np.ones(len(src))
    w[out] = 1e-6
    fit = weighted_kabsch(src, dst, w)
    assert rotation_angle_deg(fit.R, R) < 0.01
    assert np.linalg.norm(fit.t - t) < 1e-4


def test_umeyama_scale():
    src, dst, R, t, _ = _data(5, noise=0.0)
    dst = 1.7 * (dst - t) + t
    fit = weighted_kabsch(src, dst, with_scale=True)
    assert abs(fit.scale - 1.7) < 1e-6
    assert np.allclose(fit.apply(src), dst, atol=1e-8)


def test_deterministic_and_clear_errors():
    src, dst, *_ = _data(6, outlier_frac=0.2)
    a = robust_rigid_fit(src, dst, config=RobustFitConfig(seed=3))
    b = robust_rigid_fit(src, dst, config=RobustFitConfig(seed=3))
    assert np.array_equal(a.R, b.R)
    with pytest.raises(ValueError, match="at least 3"):
        weighted_kabsch(src[:2], dst[:2])
    with pytest.raises(ValueError, match=r"\[N,3\]"):
        weighted_kabsch(src, dst[:, :2])
    with pytest.raises(ValueError, match="non-negative"):
        weighted_kabsch(src, dst, -np.ones(len(src)))


def _upright_motion(yaw_deg, t):
    a = np.deg2rad(yaw_deg)
    T = np.eye(4)
    T[:3, :3] = [[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]]
    T[:3, 3] = t
    return T


def test_verified_upright_fit_finds_the_agreeing_tracks_and_heeds_the_check():
    """Half the tracks wrong (a second consistent group among them): the pairs' vote finds the true
    motion; a check that contradicts it makes the fit take the other group instead."""
    from traceany_ros.policies.kabsch import upright_kabsch, verified_upright_fit

    rng = np.random.default_rng(0)
    src = rng.uniform(-0.025, 0.025, (12, 3)) + [0.5, 0.1, 0.04]
    true = _upright_motion(35, [0.05, 0.2, 0.0])
    other = _upright_motion(-10, [0.2, -0.1, 0.0])
    dst = src @ true[:3, :3].T + true[:3, 3] + rng.normal(0, 0.001, src.shape)
    dst[7:] = src[7:] @ other[:3, :3].T + other[:3, 3]               # 5 tracks agree on another motion
    off = lambda M, ref: float(np.abs(src @ M[:3, :3].T + M[:3, 3] - (src @ ref[:3, :3].T + ref[:3, 3])).max())  # noqa: E731
    assert off(upright_kabsch(src[:7], dst[:7]), true) < 0.004
    T, inl, rmse = verified_upright_fit(src, dst, threshold=0.01)
    assert inl[:7].all() and not inl[7:].any() and rmse < 0.003
    assert off(T, true) < 0.004 and np.allclose(T[2, :3], [0, 0, 1])
    near_true = lambda M: float(np.linalg.norm(M[:3, 3] - true[:3, 3]) < 0.05)   # noqa: E731
    T, inl, _ = verified_upright_fit(src, dst, threshold=0.01, penalty=near_true)
    assert inl[7:].all() and off(T, other) < 1e-6
    with pytest.raises(ValueError, match="at least 2 tracks"):
        verified_upright_fit(src[:1], dst[:1])
