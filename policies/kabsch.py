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


def upright_kabsch(src, dst, weights=None) -> np.ndarray:
    """Weighted least-squares motion [4,4] src -> dst [N,3] that only turns about the vertical (N >= 2):
    a 2D Kabsch in xy and the weighted mean height change."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    w = np.ones(len(src)) if weights is None else np.asarray(weights, np.float64)
    w = w / max(w.sum(), 1e-12)
    cs, cd = w @ src, w @ dst
    a, b = (src - cs)[:, :2], (dst - cd)[:, :2]
    cross = float(w @ (a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]))
    dot = float(w @ (a * b).sum(1))
    yaw = np.arctan2(cross, dot)
    c, s = np.cos(yaw), np.sin(yaw)
    T = np.eye(4)
    T[:3, :3] = [[c, -s, 0], [s, c, 0], [0, 0, 1]]
    T[:3, 3] = cd - T[:3, :3] @ cs
    return T


def verified_upright_fit(src, dst, weights=None, threshold: float = 0.015, penalty=None,
                         max_pairs: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray, float]:
    """Upright rigid motion of tracks src -> dst [N,3] that many of them agree on and a second view does
    not contradict.

    Every pair of tracks (at most ``max_pairs``, sampled with ``seed``) proposes an upright motion; its
    inliers are the tracks it moves to within ``threshold`` m of their ends, and it scores their summed
    ``weights`` times ``1 - penalty(T)`` (``penalty``: a fraction in [0, 1] of how much the motion is
    contradicted, e.g. by a depth view that sees past where it puts the object; None: no check). The best
    hypothesis is refitted on its inliers (weighted).
    Returns (T [4,4], inliers [N] bool, rmse of the inliers m). Raises ValueError below 2 tracks.
    """
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    n = len(src)
    if n < 2 or src.shape != dst.shape:
        raise ValueError(f"an upright fit needs at least 2 tracks [N,3] in both, got {src.shape} and {dst.shape}")
    w = np.ones(n) if weights is None else np.asarray(weights, np.float64)
    pairs = np.array([(i, j) for i in range(n) for j in range(i + 1, n)])
    if len(pairs) > max_pairs:
        pairs = pairs[np.random.default_rng(seed).choice(len(pairs), max_pairs, replace=False)]
    best, best_score = None, -1.0
    for i, j in pairs:
        if np.linalg.norm((src[i] - src[j])[:2]) < 1e-3:
            continue
        T = upright_kabsch(src[[i, j]], dst[[i, j]])
        inl = np.linalg.norm(src @ T[:3, :3].T + T[:3, 3] - dst, axis=1) < threshold
        score = float(w[inl].sum())
        if score <= best_score:
            continue
        T = upright_kabsch(src[inl], dst[inl], w[inl])
        score *= 1.0 - (float(penalty(T)) if penalty is not None else 0.0)
        if score > best_score:
            best, best_score = (T, inl), score
    if best is None:
        T, inl = upright_kabsch(src, dst, w), np.ones(n, bool)
    else:
        T, inl = best
    res = np.linalg.norm(src @ T[:3, :3].T + T[:3, 3] - dst, axis=1)
    return T, inl, float(np.sqrt((res[inl] ** 2).mean()))
