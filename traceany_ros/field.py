"""Trajectory fields: per-pixel 3D curves as clamped cubic B-splines.

The curve of every pixel is a clamped B-spline of degree 3 with ``K = 3m + 1``
control points and interior knots of multiplicity 3::

    knots = [0, 0, 0, 0, 1/m, 1/m, 1/m, ..., (m-1)/m x3, 1, 1, 1, 1]

so each of the ``m`` spans ``[j/m, (j+1)/m]`` is a cubic Bezier segment with
control points ``P[3j .. 3j+3]`` and the curve passes through every third
control point. Evaluation agrees with ``scipy.interpolate.BSpline`` (tested).

Outside ``[0, 1]`` the curve continues along its end tangent (linear
extrapolation); for ``K = 10`` that is ``x(1 + tau) = P9 + 9 tau (P9 - P8)``.
This is the forecast of the method (``docs/method.md``, section 2).

One implementation serves numpy and torch: numpy in -> numpy out, torch in ->
torch out (same dtype and device).
"""
from __future__ import annotations

from dataclasses import dataclass, field as dc_field
from typing import Any

import numpy as np

try:  # torch is a hard dependency of the package, but keep the maths importable without it
    import torch
except ImportError:  # pragma: no cover
    torch = None

SPLINE_TYPE = "clamped_bspline_deg3_triple_knots"
DEGREE = 3


def _is_torch(x: Any) -> bool:
    return torch is not None and isinstance(x, torch.Tensor)


def num_segments(num_control_points: int) -> int:
    """Number of Bezier segments m for K = 3m + 1 control points."""
    k = int(num_control_points)
    if k < 4 or (k - 1) % 3 != 0:
        raise ValueError(f"num_control_points must be 3m + 1 >= 4 (4, 7, 10, 13, ...), got {k}")
    return (k - 1) // 3


def knot_vector(num_control_points: int) -> np.ndarray:
    """Full knot vector, length K + 4: [0]*4, interior knots x3, [1]*4."""
    m = num_segments(num_control_points)
    interior = np.repeat(np.arange(1, m) / m, 3)
    return np.concatenate([np.zeros(4), interior, np.ones(4)])


def _bernstein(u, order: int, xp):
    """Cubic Bernstein polynomials (or their u-derivatives) at u, shape [M, 4]."""
    one = 1.0 - u
    if order == 0:
        cols = [one**3, 3 * u * one**2, 3 * u**2 * one, u**3]
    elif order == 1:
        cols = [-3 * one**2, 3 * one**2 - 6 * u * one, 6 * u * one - 3 * u**2, 3 * u**2]
    elif order == 2:
        cols = [6 * one, -12 * one + 6 * u, 6 * one - 12 * u, 6 * u]
    else:
        raise ValueError(f"derivative order must be 0, 1 or 2, got {order}")
    return xp.stack(cols, -1)


def _basis(t, num_control_points: int, order: int):
    m = num_segments(num_control_points)
    k = int(num_control_points)
    if _is_torch(t):
        tt = t.reshape(-1)
        if not tt.is_floating_point():
            tt = tt.to(torch.get_default_dtype())
        xp = torch
    else:
        tt = np.asarray(t, dtype=np.float64).reshape(-1)
        xp = np
    # Linear extrapolation outside [0, 1] along the end tangents.
    tc = tt.clamp(0.0, 1.0) if xp is torch else np.clip(tt, 0.0, 1.0)
    if xp is torch:
        seg = torch.clamp((tc * m).floor().long(), 0, m - 1)
        u = tc * m - seg.to(tc.dtype)
    else:
        seg = np.clip(np.floor(tc * m).astype(np.int64), 0, m - 1)
        u = tc * m - seg
    scale = float(m) ** order
    local = _bernstein(u, order, xp) * scale  # [M, 4]
    if order == 0:
        over = tt - tc  # zero inside [0, 1]
        local = local + over[:, None] * _bernstein(u, 1, xp) * m
    elif order == 2:
        outside = (tt != tc)
        local = local * (~outside)[:, None]
    cols = seg[:, None] * 3 + (torch.arange(4, device=tt.device) if xp is torch else np.arange(4))[None, :]
    if xp is torch:
        out = torch.zeros(tt.shape[0], k, dtype=tt.dtype, device=tt.device)
        out.scatter_(1, cols, local.to(tt.dtype))
    else:
        out = np.zeros((tt.shape[0], k), dtype=np.float64)
        np.put_along_axis(out, cols, local, axis=1)
    return out


def bspline_basis(t, num_control_points: int):
    """Basis matrix of the clamped cubic B-spline.

    Args:
        t: times, any shape (flattened to M values); spline parameter in [0, 1],
            values outside extrapolate linearly along the end tangent.
            numpy array / float / list, or a torch tensor.
        num_control_points: K = 3m + 1.
    Returns:
        [M, K] weights (rows sum to 1), so ``curve(t) = basis @ P`` for P [K, 3].
        numpy float64 for numpy input; torch (same dtype/device) for torch input.
    """
    return _basis(t, num_control_points, 0)


def bspline_basis_derivative(t, num_control_points: int, order: int = 1):
    """d^order/dt^order of :func:`bspline_basis`, [M, K] (rows sum to 0).

    Outside [0, 1] the first derivative is the end tangent's (constant) and the
    second derivative is 0, consistent with the linear extrapolation.
    """
    if order < 1:
        raise ValueError("order must be >= 1; use bspline_basis for order 0")
    return _basis(t, num_control_points, order)


def evaluate(control_points, t):
    """Evaluate curves at times.

    Args:
        control_points: [..., K, D] (numpy or torch).
        t: [M] spline parameters.
    Returns:
        [..., M, D].
    """
    k = control_points.shape[-2]
    if _is_torch(control_points):
        tt = t if _is_torch(t) else torch.as_tensor(np.asarray(t, np.float64))
        b = bspline_basis(tt.to(control_points.device, control_points.dtype), k)
        return torch.einsum("mk,...kd->...md", b, control_points)
    b = bspline_basis(t, k)
    return np.einsum("mk,...kd->...md", b, np.asarray(control_points)).astype(
        np.result_type(control_points, np.float32), copy=False)


_ROW_HASH = np.random.default_rng(0).integers(1, 2 ** 63, size=4096, dtype=np.uint64) | np.uint64(1)
_SHARED_ROWS_MIN = 16  # curves a weight row must have to be fitted by its shared operator


def _shared_weight_rows(w: np.ndarray, min_count: int):
    """Rows of w [N,M] (float64) that at least ``min_count`` rows share exactly: (first index of each [G],
    list of G index arrays of its rows), or None (no such row, or more than 4096 samples a row). Rows are
    grouped by a hash of their bits and every member checked equal to its group's first row (a collision
    splits nothing, it only sends its rows back to their own normal equations)."""
    n, m = w.shape
    if n < min_count or m > len(_ROW_HASH):
        return None
    key = (np.ascontiguousarray(w).view(np.uint64) * _ROW_HASH[:m]).sum(1)  # wraps modulo 2^64
    _, first, inv, counts = np.unique(key, return_index=True, return_inverse=True, return_counts=True)
    big = np.flatnonzero(counts >= min_count)
    if not len(big):
        return None
    order = np.argsort(inv, kind="stable")
    ends = np.cumsum(counts)
    groups, firsts = [], []
    for g in big:
        rows = order[ends[g] - counts[g]:ends[g]]
        rows = rows[(w[rows] == w[first[g]]).all(1)]  # (hash collisions, NaN: left out)
        if len(rows) >= min_count:
            groups.append(rows)
            firsts.append(first[g])
    return (np.asarray(firsts, np.int64), groups) if groups else None


def fit_trajectory(times, points, num_control_points: int = 10, weights=None,
                   smoothness: float = 1e-6):
    """Least-squares control points of curves through sampled points.

    Args:
        times: [M] spline parameters in [0, 1] (normalise seconds first, e.g.
            ``(t - t[0]) / (t[-1] - t[0])``).
        points: [..., M, D] samples (D = 3 for positions).
        num_control_points: K = 3m + 1.
        weights: optional [..., M] non-negative per-sample weights (0 = missing,
            e.g. an occluded frame).
        smoothness: weight of a second-difference penalty on the control
            points, which keeps the solution defined when samples are sparse.
            Tiny by default so that exact data is recovered exactly.
    Returns:
        [..., K, D] control points (float64 numpy, or torch for torch input).
    """
    is_t = _is_torch(points)
    pts = points.detach().cpu().numpy() if is_t else np.asarray(points, dtype=np.float64)
    tt = times.detach().cpu().numpy() if _is_torch(times) else np.asarray(times, np.float64)
    a = bspline_basis(tt, num_control_points)  # [M, K]
    k = a.shape[1]
    d2 = np.diff(np.eye(k), n=2, axis=0)  # [K-2, K]
    reg = smoothness * (d2.T @ d2) + 1e-12 * np.eye(k)
    batch_shape = pts.shape[:-2]
    m, dim = pts.shape[-2:]
    if a.shape[0] != m:
        raise ValueError(f"times has {a.shape[0]} samples but points has {m}")
    if weights is None:
        lhs = a.T @ a + reg
        rhs = np.einsum("mk,...md->...kd", a, pts)
        sol = np.linalg.solve(lhs, rhs.reshape(-1, k, dim).transpose(1, 0, 2).reshape(k, -1))
        out = sol.reshape(k, -1, dim).transpose(1, 0, 2).reshape(*batch_shape, k, dim)
    else:
        w = weights.detach().cpu().numpy() if _is_torch(weights) else np.asarray(weights, np.float64)
        w = np.broadcast_to(w, pts.shape[:-1]).reshape(-1, m)
        flat = pts.reshape(-1, m, dim)
        out = np.empty((len(flat), k, dim))
        # curves with the same weights share one solution operator (A^T W A + reg)^-1 A^T W: tracks come with a
        # few weight values (tracked, held, moved by a part), so most curves fall in a few hundred shared rows
        rest = slice(None)  # the curves left to their own normal equations (all: no copy)
        shared = _shared_weight_rows(w, _SHARED_ROWS_MIN)
        if shared is not None:
            first, groups = shared  # each shared row's first curve, [G] index arrays of its curves
            wu = w[first]
            lhs = (wu @ (a[:, :, None] * a[:, None, :]).reshape(m, k * k)).reshape(-1, k, k) + reg
            ops = np.linalg.solve(lhs, a.T[None] * wu[:, None, :])  # [G, K, M]
            for op, rows in zip(ops, groups):
                out[rows] = np.matmul(op, flat[rows])
            done = np.zeros(len(w), bool)
            done[np.concatenate(groups)] = True
            rest = np.flatnonzero(~done)
        wr, fr = w[rest], flat[rest]
        if len(wr):
            # as matrix products (BLAS): lhs = sum_m w_m a_m a_m^T, rhs = A^T (w * points)
            lhs = (wr @ (a[:, :, None] * a[:, None, :]).reshape(m, k * k)).reshape(-1, k, k) + reg
            out[rest] = np.linalg.solve(lhs, np.matmul(a.T, wr[..., None] * fr))
        out = out.reshape(*batch_shape, k, dim)
    if is_t:
        return torch.as_tensor(out, dtype=points.dtype, device=points.device)
    return out


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold of 1-D values (OpenCV's Otsu on a 8-bit quantisation)."""
    import cv2

    v = np.asarray(values, np.float64).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        raise ValueError("otsu_threshold needs at least one finite value")
    lo, hi = float(v.min()), float(v.max())
    if hi - lo < 1e-12:
        return hi
    q = np.round((v - lo) / (hi - lo) * (bins - 1)).astype(np.uint8)[None, :]
    thr, _ = cv2.threshold(q, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    # Every threshold inside the empty gap around Otsu's answer splits the data
    # the same way; OpenCV returns the gap's lower end, take its middle.
    below, above = q[q <= thr], q[q > thr]
    if below.size and above.size:
        thr = 0.5 * (float(below.max()) + float(above.min()))
    return lo + thr / (bins - 1) * (hi - lo)


@dataclass
class TrajectoryField:
    """A dense trajectory field of one clip.

    Attributes:
        control_points: [T, H, W, K, 3] float32, metres, in ``frame_id``.
            Curve of field pixel (i, j) of frame f.
        confidence: [T, H, W] float32, >= 0, higher is more certain.
        times: [T] float64 seconds of the frames.
        time_span: (start, end) seconds mapped to spline parameter 0 and 1;
            default (times[0], times[-1]).
        stride, pixel_offset: field pixel (i, j) looks at image pixel
            (pixel_offset + i * stride, pixel_offset + j * stride).
        image_size: (rows, cols) of the source images, or None.
        frame_id: coordinate frame of the control points.
        motion: optional [T, H, W] float32 in [0, 1], probability that the pixel's point moves in the
            clip (None where the backend does not estimate it).
        visibility: optional [T, H, W, T] float32 in [0, 1], probability that the pixel's point is seen
            (in view and not occluded) at each frame's time (None where not estimated).
    """

    control_points: np.ndarray
    confidence: np.ndarray
    times: np.ndarray
    stride: int = 1
    pixel_offset: int = 0
    image_size: tuple[int, int] | None = None
    frame_id: str = "world"
    time_span: tuple[float, float] | None = None
    meta: dict = dc_field(default_factory=dict)
    motion: np.ndarray | None = None
    visibility: np.ndarray | None = None

    def __post_init__(self):
        cp = np.asarray(self.control_points, dtype=np.float32)
        if cp.ndim != 5 or cp.shape[-1] != 3:
            raise ValueError(f"control_points must be [T, H, W, K, 3], got shape {cp.shape}")
        num_segments(cp.shape[3])
        conf = np.asarray(self.confidence, dtype=np.float32)
        if conf.shape != cp.shape[:3]:
            raise ValueError(f"confidence must be [T, H, W] = {cp.shape[:3]}, got {conf.shape}")
        times = np.asarray(self.times, dtype=np.float64).reshape(-1)
        if times.shape[0] != cp.shape[0]:
            raise ValueError(f"times has {times.shape[0]} entries but the field has {cp.shape[0]} frames")
        if times.shape[0] > 1 and not np.all(np.diff(times) > 0):
            raise ValueError("times must be strictly increasing")
        if int(self.stride) < 1:
            raise ValueError(f"stride must be >= 1, got {self.stride}")
        self.control_points, self.confidence, self.times = cp, conf, times
        if self.motion is not None:
            self.motion = np.asarray(self.motion, dtype=np.float32)
            if self.motion.shape != cp.shape[:3]:
                raise ValueError(f"motion must be [T, H, W] = {cp.shape[:3]}, got {self.motion.shape}")
        if self.visibility is not None:
            self.visibility = np.asarray(self.visibility, dtype=np.float32)
            if self.visibility.shape != cp.shape[:3] + (cp.shape[0],):
                raise ValueError(f"visibility must be [T, H, W, T] = {cp.shape[:3] + (cp.shape[0],)}, "
                                 f"got {self.visibility.shape}")
        self.stride, self.pixel_offset = int(self.stride), int(self.pixel_offset)
        if self.image_size is None:
            self.image_size = (cp.shape[1] * self.stride, cp.shape[2] * self.stride)
        self.image_size = (int(self.image_size[0]), int(self.image_size[1]))
        if self.time_span is None:
            self.time_span = (float(times[0]), float(times[-1]))
        self.time_span = (float(self.time_span[0]), float(self.time_span[1]))
        if self.time_span[1] < self.time_span[0]:
            raise ValueError(f"time_span must be (start, end) with end >= start, got {self.time_span}")

    # ------------------------------------------------------------------ shape
    @property
    def num_frames(self) -> int:
        return self.control_points.shape[0]

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W) of the field grid."""
        return self.control_points.shape[1], self.control_points.shape[2]

    @property
    def num_control_points(self) -> int:
        return self.control_points.shape[3]

    @property
    def duration(self) -> float:
        """Seconds between spline parameter 0 and 1."""
        return self.time_span[1] - self.time_span[0]

    def pixel_grid(self) -> tuple[np.ndarray, np.ndarray]:
        """Image (rows [H], cols [W]) that the field grid samples."""
        h, w = self.shape
        return (self.pixel_offset + self.stride * np.arange(h),
                self.pixel_offset + self.stride * np.arange(w))

    # ------------------------------------------------------------------ time
    def normalized_time(self, t) -> np.ndarray:
        """Seconds -> spline parameter s (0 at the first frame, 1 at the last)."""
        t = np.asarray(t, dtype=np.float64)
        if self.duration <= 0:
            return np.zeros_like(t)
        return (t - self.time_span[0]) / self.duration

    def frame_parameters(self) -> np.ndarray:
        """[T] spline parameter of every frame."""
        return self.normalized_time(self.times)

    # ------------------------------------------------------------------ evaluation
    def positions(self, t, frames=None) -> np.ndarray:
        """Where every pixel's point is at time(s) t (seconds).

        Args:
            t: scalar or [M] seconds; beyond the clip it extrapolates (forecast).
            frames: optional index/slice of source frames (default all).
        Returns:
            [T', H, W, 3] for scalar t, else [T', H, W, M, 3].
        """
        cp = self.control_points if frames is None else self.control_points[frames]
        scalar = np.ndim(t) == 0
        s = np.atleast_1d(self.normalized_time(t))
        out = evaluate(cp, s)
        return out[..., 0, :] if scalar else out

    def velocities(self, t, frames=None) -> np.ndarray:
        """d position / dt in m/s at time(s) t; shapes as :meth:`positions`."""
        cp = self.control_points if frames is None else self.control_points[frames]
        scalar = np.ndim(t) == 0
        s = np.atleast_1d(self.normalized_time(t))
        d = bspline_basis_derivative(s, self.num_control_points)
        out = np.einsum("mk,...kd->...md", d, cp) / max(self.duration, 1e-9)
        out = out.astype(np.float32)
        return out[..., 0, :] if scalar else out

    def forecast(self, horizon: float, frames=None) -> np.ndarray:
        """Positions ``horizon`` seconds after the end of the span (end-tangent extrapolation)."""
        return self.positions(self.time_span[1] + float(horizon), frames=frames)

    def frame_points(self) -> np.ndarray:
        """[T, H, W, 3]: each frame's pixels at that frame's own time."""
        s = self.frame_parameters()
        b = bspline_basis(s, self.num_control_points)  # [T, K]
        return np.einsum("tk,thwkd->thwd", b, self.control_points).astype(np.float32)

    def fuse(self, t, min_confidence: float = 0.0, frames=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Spatio-temporal fusion: every frame's curves evaluated at time t.

        Args:
            t: seconds.
            min_confidence: drop points whose confidence is below this.
            frames: optional subset of source frames.
        Returns:
            points [N, 3], confidence [N], source index [N, 3] = (frame, i, j).
        """
        pos = self.positions(float(t), frames=frames)  # [T', H, W, 3]
        conf = self.confidence if frames is None else self.confidence[frames]
        idx = np.stack(np.meshgrid(*[np.arange(n) for n in conf.shape], indexing="ij"), -1)
        if frames is not None:
            idx[..., 0] = np.arange(self.num_frames)[frames][:, None, None]
        keep = (conf >= min_confidence) & np.all(np.isfinite(pos), -1)
        return pos[keep].astype(np.float32), conf[keep], idx[keep]

    def motion_score(self) -> np.ndarray:
        """[T, H, W] log-variance of each curve's control points (metres^2, summed over xyz)."""
        var = self.control_points.astype(np.float64).var(axis=3).sum(-1)
        return np.log(var + 1e-10)

    def dynamic_mask(self, threshold: float | None = None, min_motion: float = 0.005) -> np.ndarray:
        """[T, H, W] bool: pixels whose curves move.

        Otsu's threshold on the log-variance of the control points (docs/method.md, section 3),
        unless ``threshold`` (in log-variance) is given. A field whose total
        spread is below ``min_motion`` metres (std) is all static: Otsu would
        otherwise split pure noise in two.
        """
        score = self.motion_score()
        if threshold is None:
            if float(np.exp(score.max())) ** 0.5 < min_motion:
                return np.zeros(score.shape, dtype=bool)
            threshold = otsu_threshold(score)
            threshold = max(threshold, float(np.log(min_motion ** 2)))
        return score > threshold

    # ------------------------------------------------------------------ resampling
    def _replace(self, **kw) -> "TrajectoryField":
        args = dict(control_points=self.control_points, confidence=self.confidence, times=self.times,
                    stride=self.stride, pixel_offset=self.pixel_offset, image_size=self.image_size,
                    frame_id=self.frame_id, time_span=self.time_span, meta=dict(self.meta),
                    motion=self.motion, visibility=self.visibility)
        args.update(kw)
        return TrajectoryField(**args)

    def subsample(self, stride: int) -> "TrajectoryField":
        """Keep every ``stride``-th field pixel in rows and columns."""
        stride = int(stride)
        if stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        return self._replace(control_points=self.control_points[:, ::stride, ::stride].copy(),
                             confidence=self.confidence[:, ::stride, ::stride].copy(),
                             stride=self.stride * stride,
                             motion=None if self.motion is None else self.motion[:, ::stride, ::stride].copy(),
                             visibility=None if self.visibility is None
                             else self.visibility[:, ::stride, ::stride].copy())

    def select_frames(self, frames) -> "TrajectoryField":
        """The curves of a subset of source frames (same time span)."""
        idx = np.arange(self.num_frames)[frames]
        return self._replace(control_points=self.control_points[idx].copy(),
                             confidence=self.confidence[idx].copy(), times=self.times[idx].copy(),
                             motion=None if self.motion is None else self.motion[idx].copy(),
                             visibility=None if self.visibility is None else self.visibility[idx][..., idx].copy())

    def copy(self) -> "TrajectoryField":
        return self._replace(control_points=self.control_points.copy(),
                             confidence=self.confidence.copy(), times=self.times.copy(),
                             motion=None if self.motion is None else self.motion.copy(),
                             visibility=None if self.visibility is None else self.visibility.copy())
