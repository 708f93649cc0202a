"""Confidence-weighted rigid (and similarity) fits with outlier rejection.

``weighted_kabsch``: closed-form weighted Kabsch/Umeyama; the rotation is
scipy's ``Rotation.align_vectors`` (Wahba's problem) on the centred points.
``robust_rigid_fit``: RANSAC on 3-point samples for the inlier set, then
iteratively reweighted least squares (Cauchy weights times the confidences),
so that wrong correspondences (flow failures, background pixels mistaken for
the object) do not drag the fit.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class RobustFitConfig:
    """Options of :func:`robust_rigid_fit`.

    inlier_threshold: residual (m) below which a correspondence counts as an inlier in RANSAC.
    ransac_iterations: 3-point hypotheses tried (0 = skip RANSAC, IRLS from all points).
    irls_iterations: reweighting rounds after RANSAC.
    cauchy_scale: scale (m) of the Cauchy weight 1 / (1 + (r / c)^2) in IRLS.
    seed: RNG seed of the sampling (results are deterministic).
    """

    inlier_threshold: float = 0.01
    ransac_iterations: int = 200
    irls_iterations: int = 10
    cauchy_scale: float = 0.005
    seed: int = 0


@dataclass
class RigidFit:
    """dst ~ scale * R @ src + t.

    R [3,3], t [3], scale, inliers [N] bool, weights [N] final IRLS weights,
    rmse: weighted RMS residual of the inliers (m).
    """

    R: np.ndarray
    t: np.ndarray
    scale: float = 1.0
    inliers: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    weights: np.ndarray = field(default_factory=lambda: np.zeros(0))
    rmse: float = float("nan")

    @property
    def T(self) -> np.ndarray:
        """[4,4] homogeneous transform (rotation scaled by ``scale``)."""
        out = np.eye(4)
        out[:3, :3] = self.scale * self.R
        out[:3, 3] = self.t
        return out

    def apply(self, points: np.ndarray) -> np.ndarray:
        """[N,3] -> [N,3]."""
        return self.scale * np.asarray(points) @ self.R.T + self.t


def _check(src, dst, weights):
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    if src.ndim != 2 or src.shape[1] != 3 or src.shape != dst.shape:
        raise ValueError(f"src and dst must both be [N,3], got {src.shape} and {dst.shape}")
    if src.shape[0] < 3:
        raise ValueError(f"a rigid fit needs at least 3 correspondences, got {src.shape[0]}")
    w = np.ones(src.shape[0]) if weights is None else np.asarray(weights, np.float64).reshape(-1)
    if w.shape[0] != src.shape[0]:
        raise ValueError(f"weights has {w.shape[0]} entries for {src.shape[0]} points")
    if np.any(w < 0) or not np.all(np.isfinite(w)):
        raise ValueError("weights must be finite and non-negative")
    return src, dst, w


def weighted_kabsch(src, dst, weights=None, with_scale: bool = False) -> RigidFit:
    """Weighted least-squares rigid (Kabsch) or similarity (Umeyama) transform src -> dst.

    Args:
        src, dst: [N,3] corresponding points.
        weights: [N] non-negative (e.g. field confidence); None = uniform.
        with_scale: also fit a uniform scale (Umeyama).
    Returns:
        :class:`RigidFit` minimising sum_i w_i |dst_i - (s R src_i + t)|^2.
    """
    from scipy.spatial.transform import Rotation

    src, dst, w = _check(src, dst, weights)
    if w.sum() <= 0:
        raise ValueError("all weights are zero: nothing to fit")
    wn = w / w.sum()
    mu_s, mu_d = wn @ src, wn @ dst
    a, b = src - mu_s, dst - mu_d
    if np.all(w * np.einsum("ij,ij->i", a, a) < 1e-18):
        R = np.eye(3)
    else:
        with np.errstate(all="ignore"):
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # degenerate (collinear) sets: any valid R
                rot, _ = Rotation.align_vectors(b, a, weights=w)
        R = rot.as_matrix()
    s = 1.0
    if with_scale:
        var = float(wn @ np.einsum("ij,ij->i", a, a))
        s = float(np.sum(wn * np.einsum("ij,ij->i", b, a @ R.T)) / var) if var > 0 else 1.0
    t = mu_d - s * R @ mu_s
    res = np.linalg.norm(dst - (s * src @ R.T + t), axis=1)
    return RigidFit(R=R, t=t, scale=s, inliers=np.ones(len(src), bool), weights=w,
                    rmse=float(np.sqrt(wn @ res**2)))


def robust_rigid_fit(src, dst, weights=None, config: RobustFitConfig = RobustFitConfig(),
                     with_scale: bool = False) -> RigidFit:
    """Rigid transform src -> dst that survives outliers (RANSAC, then IRLS).

    Args:
        src, dst: [N,3] corresponding points (N >= 3).
        weights: [N] confidences (multiply the robust weights).
    Returns:
        :class:`RigidFit`; ``inliers`` marks residual < ``config.inlier_threshold``,
        ``rmse`` is over the inliers.
    """
    src, dst, w = _check(src, dst, weights)
    n = src.shape[0]
    best = None
    if config.ransac_iterations > 0 and n > 3:
        rng = np.random.default_rng(config.seed)
        p = w / w.sum() if w.sum() > 0 else None
        best_score = -1.0
        for _ in range(config.ransac_iterations):
            idx = rng.choice(n, 3, replace=False, p=p if p is not None and np.count_nonzero(p) >= 3 else None)
            a = src[idx]
            # skip near-collinear samples: they leave the rotation undetermined
            if np.linalg.norm(np.cross(a[1] - a[0], a[2] - a[0])) < 1e-6:
                continue
            fit = weighted_kabsch(a, dst[idx], with_scale=with_scale)
            res = np.linalg.norm(dst - fit.apply(src), axis=1)
            inl = res < config.inlier_threshold
            score = float(w[inl].sum())
            if score > best_score:
                best_score, best = score, inl
    inliers = best if best is not None and best.sum() >= 3 else np.ones(n, bool)
    fit = weighted_kabsch(src[inliers], dst[inliers], w[inliers], with_scale=with_scale)
    robust_w = w * inliers
    for _ in range(config.irls_iterations):
        res = np.linalg.norm(dst - fit.apply(src), axis=1)
        robust_w = w / (1.0 + (res / config.cauchy_scale) ** 2)
        robust_w[res > 4 * config.inlier_threshold] = 0.0
        if np.count_nonzero(robust_w) < 3:
            break
        fit = weighted_kabsch(src, dst, robust_w, with_scale=with_scale)
    res = np.linalg.norm(dst - fit.apply(src), axis=1)
    inliers = res < config.inlier_threshold
    wi = w * inliers
    rmse = float(np.sqrt((wi @ res**2) / wi.sum())) if wi.sum() > 0 else float("nan")
    return RigidFit(R=fit.R, t=fit.t, scale=fit.scale, inliers=inliers, weights=robust_w, rmse=rmse)


def rotation_angle_deg(R_a: np.ndarray, R_b: np.ndarray) -> float:
    """Geodesic angle between two rotations, degrees."""
    from scipy.spatial.transform import Rotation

    return float(np.rad2deg((Rotation.from_matrix(R_a).inv() * Rotation.from_matrix(R_b)).magnitude()))
