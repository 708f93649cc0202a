"""The B-spline core: agreement with scipy, numpy == torch, fitting, field ops."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from scipy.interpolate import BSpline

from traceany_ros.field import (
    TrajectoryField, bspline_basis, bspline_basis_derivative, evaluate, fit_trajectory,
    knot_vector, num_segments, otsu_threshold)

KS = [4, 7, 10, 13]


def scipy_curve(cp, k):
    return BSpline(knot_vector(k), cp, 3, extrapolate=False)


@pytest.mark.parametrize("k", KS)
def test_basis_matches_scipy(k):
    rng = np.random.default_rng(k)
    cp = rng.normal(size=(k, 3))
    t = np.concatenate([rng.uniform(0, 1, 200), [0.0, 1.0], np.arange(num_segments(k) + 1) / num_segments(k)])
    ours = bspline_basis(t, k) @ cp
    ref = scipy_curve(cp, k)(t)
    np.testing.assert_allclose(ours, ref, atol=1e-12)
    for order in (1, 2):
        d_ours = bspline_basis_derivative(t[:200], k, order) @ cp
        d_ref = scipy_curve(cp, k)(t[:200], nu=order)
        np.testing.assert_allclose(d_ours, d_ref, atol=1e-9 * 10 ** order)


@settings(max_examples=60, deadline=None)
@given(k=st.sampled_from(KS), t=st.lists(st.floats(-0.5, 1.5, allow_nan=False), min_size=1, max_size=40))
def test_basis_partition_of_unity_and_torch_parity(k, t):
    b = bspline_basis(np.array(t), k)
    assert b.shape == (len(t), k)
    np.testing.assert_allclose(b.sum(1), 1.0, atol=1e-12)
    inside = (np.array(t) >= 0) & (np.array(t) <= 1)
    assert np.all(b[inside] >= -1e-12)
    bt = bspline_basis(torch.tensor(t, dtype=torch.float64), k)
    assert isinstance(bt, torch.Tensor) and bt.dtype == torch.float64
    np.testing.assert_allclose(bt.numpy(), b, atol=1e-12)
    d = bspline_basis_derivative(np.array(t), k)
    np.testing.assert_allclose(d.sum(1), 0.0, atol=1e-9)
    np.testing.assert_allclose(bspline_basis_derivative(torch.tensor(t, dtype=torch.float64), k).numpy(), d, atol=1e-12)


def test_torch_basis_keeps_dtype_device_and_gradients():
    t = torch.linspace(0, 1, 9, dtype=torch.float32)
    b = bspline_basis(t, 10)
    assert b.dtype == torch.float32 and b.shape == (9, 10)
    cp = torch.randn(10, 3, requires_grad=True)
    (b @ cp).square().sum().backward()
    assert cp.grad is not None and torch.isfinite(cp.grad).all()


@pytest.mark.parametrize("k", KS)
def test_curve_passes_through_every_third_control_point(k):
    cp = np.random.default_rng(1).normal(size=(k, 3))
    m = num_segments(k)
    pts = bspline_basis(np.arange(m + 1) / m, k) @ cp
    np.testing.assert_allclose(pts, cp[::3], atol=1e-12)


def test_bad_control_point_counts_are_refused_with_a_reason():
    for k in (0, 3, 5, 8, 11):
        with pytest.raises(ValueError, match="3m \\+ 1"):
            bspline_basis([0.5], k)


def test_forecast_extrapolates_the_end_tangent():
    cp = np.random.default_rng(2).normal(size=(10, 3))
    for tau in (0.1, 0.5, 1.0):
        x = bspline_basis([1 + tau], 10) @ cp
        np.testing.assert_allclose(x[0], cp[9] + 9 * tau * (cp[9] - cp[8]), atol=1e-12)
    # before the start it continues backwards along the start tangent
    x = bspline_basis([-0.2], 10) @ cp
    np.testing.assert_allclose(x[0], cp[0] - 9 * 0.2 * (cp[1] - cp[0]), atol=1e-12)


@settings(max_examples=25, deadline=None)
@given(k=st.sampled_from(KS), seed=st.integers(0, 10_000))
def test_fit_recovers_curves_it_can_represent(k, seed):
    rng = np.random.default_rng(seed)
    cp = rng.normal(size=(5, k, 3))
    t = np.sort(rng.uniform(0, 1, 3 * k + 5))
    t[0], t[-1] = 0.0, 1.0
    pts = evaluate(cp, t)
    fit = fit_trajectory(t, pts, k, smoothness=0.0)
    np.testing.assert_allclose(evaluate(fit, t), pts, atol=1e-6)


def test_weighted_fit_ignores_outliers_with_zero_weight():
    t = np.linspace(0, 1, 24)
    line = np.stack([t, 2 * t, -t], -1)
    noisy = line.copy()
    noisy[5] += 10.0
    w = np.ones(24)
    w[5] = 0.0
    fit = fit_trajectory(t, noisy, 10, weights=w)
    np.testing.assert_allclose(evaluate(fit, t), line, atol=1e-4)
    unweighted = fit_trajectory(t, noisy, 10)
    assert np.abs(evaluate(unweighted, t) - line).max() > 0.5


def _moving_field():
    """4 frames, 6x8 pixels; left half static, right half moves +x at 0.5 m/s."""
    times = np.linspace(0.0, 1.5, 4)
    s = (times - times[0]) / (times[-1] - times[0])
    h, w, k = 6, 8, 10
    base = np.zeros((h, w, 3))
    base[..., 0], base[..., 1], base[..., 2] = np.arange(w)[None] * 0.1, np.arange(h)[:, None] * 0.1, 1.0
    moving = np.zeros((h, w), bool)
    moving[:, w // 2:] = True
    cps = np.zeros((4, h, w, k, 3))
    for f in range(4):
        pts = np.repeat(base[:, :, None], 4, 2).copy()
        pts[moving, :, 0] += 0.5 * (times[None, :] - times[f])
        cps[f] = fit_trajectory(s, pts, k)
    conf = np.ones((4, h, w))
    conf[:, 0, 0] = 0.01
    return TrajectoryField(cps, conf, times, stride=2, image_size=(12, 16)), base, moving


def test_field_positions_velocities_forecast():
    field, base, moving = _moving_field()
    p = field.positions(0.75)
    assert p.shape == (4, 6, 8, 3)
    np.testing.assert_allclose(p[2][~moving], base[~moving], atol=1e-6)
    v = field.velocities(0.3)
    np.testing.assert_allclose(v[..., 0][:, moving], 0.5, atol=1e-4)
    np.testing.assert_allclose(v[..., 0][:, ~moving], 0.0, atol=1e-4)
    fc = field.forecast(1.0)  # 1 s after the end
    np.testing.assert_allclose(fc[-1][moving][:, 0] - base[moving][:, 0], 0.5, atol=1e-4)
    fp = field.frame_points()
    np.testing.assert_allclose(fp[0], base, atol=1e-6)


def test_field_fuse_dynamic_mask_and_resampling():
    field, base, moving = _moving_field()
    pts, conf, idx = field.fuse(0.0, min_confidence=0.5)
    assert len(pts) == 4 * 6 * 8 - 4 and np.all(conf >= 0.5)
    assert not np.any((idx[:, 1] == 0) & (idx[:, 2] == 0))
    mask = field.dynamic_mask()
    assert mask.shape == (4, 6, 8)
    assert np.array_equal(mask, np.broadcast_to(moving, mask.shape))
    sub = field.subsample(2)
    assert sub.shape == (3, 4) and sub.stride == 4
    np.testing.assert_array_equal(sub.pixel_grid()[1], [0, 4, 8, 12])
    one = field.select_frames([1])
    assert one.num_frames == 1 and one.time_span == field.time_span


def test_static_field_has_no_dynamic_pixels():
    cps = np.zeros((2, 3, 3, 4, 3)) + np.random.default_rng(0).normal(scale=1e-4, size=(2, 3, 3, 4, 3))
    field = TrajectoryField(cps, np.ones((2, 3, 3)), [0.0, 0.1])
    assert not field.dynamic_mask().any()


def test_field_validates_shapes():
    with pytest.raises(ValueError, match="control_points"):
        TrajectoryField(np.zeros((2, 3, 3, 4)), np.ones((2, 3, 3)), [0, 1])
    with pytest.raises(ValueError, match="confidence"):
        TrajectoryField(np.zeros((2, 3, 3, 4, 3)), np.ones((2, 3)), [0, 1])
    with pytest.raises(ValueError, match="strictly increasing"):
        TrajectoryField(np.zeros((2, 3, 3, 4, 3)), np.ones((2, 3, 3)), [1, 1])


def test_otsu_splits_two_clusters():
    v = np.concatenate([np.random.default_rng(0).normal(0, 0.1, 500), np.random.default_rng(1).normal(5, 0.1, 50)])
    thr = otsu_threshold(v)
    assert v[:500].max() < thr < v[500:].min()
    # the threshold sits in the middle of the gap, not at its edge
    assert 2.0 < thr < 3.0


def test_weighted_fit_of_many_curves_matches_each_curve_alone():
    """Curves with weight 1 everywhere take a shared solution operator, the others their own normal
    equations: every curve's control points equal those of fitting it by itself."""
    rng = np.random.default_rng(0)
    t = np.linspace(0, 1, 12)
    pts = rng.normal(size=(40, 12, 3))
    for share_ones in (0.0, 0.5, 1.0):
        w = rng.uniform(0.0, 1.0, size=(40, 12))
        w[: int(share_ones * 40)] = 1.0
        fit = fit_trajectory(t, pts, 7, weights=w)
        for i in (0, 19, 20, 39):
            np.testing.assert_allclose(fit[i], fit_trajectory(t, pts[i], 7, weights=w[i]), atol=1e-10)
        # weight 1 everywhere is the unweighted fit
        np.testing.assert_allclose(fit_trajectory(t, pts, 7, weights=np.ones((40, 12))), fit_trajectory(t, pts, 7),
                                   atol=1e-10)


def test_curves_sharing_weight_rows_fit_as_each_curve_alone():
    """Tracks come with a few weight values, so many curves share a weight row: those rows (16 curves or more)
    take one solution operator each, the rest their own normal equations; every curve's control points are
    those of fitting it by itself, and rows are grouped only where they are equal."""
    from traceany_ros.field import _shared_weight_rows

    rng = np.random.default_rng(1)
    t = np.linspace(0, 1, 24)
    patterns = rng.choice([0.05, 0.5, 1.0], size=(3, 24))
    w = np.concatenate([np.repeat(patterns, [20, 16, 5], axis=0), rng.uniform(0, 1, size=(9, 24))])  # 50 curves
    order = rng.permutation(len(w))
    w = w[order]
    pts = rng.normal(size=(50, 24, 3))
    first, groups = _shared_weight_rows(w, 16)
    assert sorted(len(g) for g in groups) == [16, 20]
    for f, g in zip(first, groups):
        assert (w[g] == w[f]).all()
    fit = fit_trajectory(t, pts, 10, weights=w)
    for i in range(50):
        np.testing.assert_allclose(fit[i], fit_trajectory(t, pts[i], 10, weights=w[i]), atol=1e-10)
    assert _shared_weight_rows(rng.uniform(0, 1, size=(40, 24)), 16) is None
