"""Object pixels from the trajectory field itself (no ground-truth masks).

A pixel belongs to a moving object when its curve moves: its displacement
between two times exceeds ``min_displacement`` (or the field's Otsu dynamic
mask says so) and it is confident. Moving pixels are grouped DBSCAN-style:
connected components of the ``eps``-neighbourhood graph (scipy cKDTree) on
features ``[start xyz, displacement_weight * displacement xyz]``, so two
objects that move differently, or are far apart, fall in different groups;
groups smaller than ``min_points`` are noise. The largest group (by summed
confidence) is "the object".
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from traceany_ros.field import TrajectoryField


@dataclass(frozen=True)
class SegmentConfig:
    """Options of :func:`moving_segments`.

    min_displacement: metres a curve must move between the two times to count as moving.
    use_otsu: also require the field's (Otsu) dynamic mask.
    min_confidence: drop pixels below this confidence (relative: fraction of the frame's max).
    eps: neighbourhood radius in feature space (m).
    displacement_weight: weight of the displacement in the features.
    min_points: smallest group kept.
    max_height: ignore points higher than this above the table (e.g. the robot), m; None = keep all.
    min_height: ignore points lower than this above the table (the table itself, where moving
        shadows fool optical flow), m; None = keep all.
    """

    min_displacement: float = 0.02
    use_otsu: bool = False
    min_confidence: float = 0.05
    eps: float = 0.015
    displacement_weight: float = 0.5
    min_points: int = 3
    max_height: float | None = 0.25
    min_height: float | None = 0.005


@dataclass
class Segment:
    """One moving group of field pixels of source frame ``frame``.

    pixels [N,2] field grid (i, j); start [N,3] / end [N,3] world positions at the two times;
    confidence [N]; label of the group.
    """

    frame: int
    pixels: np.ndarray
    start: np.ndarray
    end: np.ndarray
    confidence: np.ndarray

    def __len__(self) -> int:
        return int(self.pixels.shape[0])

    def image_mask(self, field: TrajectoryField) -> np.ndarray:
        """[rows, cols] bool image mask (nearest field pixel) at the source image size."""
        h, w = field.image_size
        mask = np.zeros((h, w), bool)
        rows, cols = field.pixel_grid()
        s = field.stride
        for i, j in self.pixels:
            r, c = rows[i], cols[j]
            mask[max(0, r - s // 2): r + (s + 1) // 2, max(0, c - s // 2): c + (s + 1) // 2] = True
        return mask


def _components(features: np.ndarray, eps: float) -> np.ndarray:
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    n = features.shape[0]
    pairs = cKDTree(features).query_pairs(eps, output_type="ndarray")
    g = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    return connected_components(g, directed=False)[1]


def cell_spacing(points: np.ndarray) -> float:
    """Median distance (m) between side-by-side cells of a field's points [h,w,3] (finite ones): how far apart
    one field cell's neighbours lie on the surfaces it sees. 0 when it cannot be told."""
    p = np.asarray(points, np.float64)
    if p.ndim != 3 or min(p.shape[:2]) < 2:
        return 0.0
    d = np.concatenate([np.linalg.norm(p[:, 1:] - p[:, :-1], axis=-1).ravel(),
                        np.linalg.norm(p[1:] - p[:-1], axis=-1).ravel()])
    d = d[np.isfinite(d)]
    return float(np.median(d)) if len(d) else 0.0


def join_radius(eps: float, spacing: float) -> float:
    """Neighbourhood (m) in which a field's moving cells join one group: ``eps``, widened to 1.5 cells where
    the field's cells lie ``spacing`` apart (:func:`cell_spacing`; diagonal neighbours on one object lie
    sqrt(2) cells apart)."""
    return max(float(eps), 1.5 * float(spacing))


def moving_segments(field: TrajectoryField, t_start: float | None = None, t_end: float | None = None,
                    frame: int = 0, config: SegmentConfig = SegmentConfig(), table_z: float = 0.0) -> list[Segment]:
    """Groups of moving pixels of source frame ``frame``, largest (summed confidence) first.

    Args:
        field: a world-frame trajectory field.
        t_start, t_end: seconds; default the span's start and end.
        frame: which source frame's pixels to segment.
    Returns:
        list of :class:`Segment` (possibly empty).

    The neighbourhood is ``config.eps``, widened where the field's cells lie further apart (:func:`join_radius`).
    """
    t0 = field.time_span[0] if t_start is None else t_start
    t1 = field.time_span[1] if t_end is None else t_end
    pos = field.positions(np.array([t0, t1]), frames=[frame])[0]  # [h, w, 2, 3]
    start, end = pos[..., 0, :].astype(np.float64), pos[..., 1, :].astype(np.float64)
    conf = field.confidence[frame].astype(np.float64)
    disp = np.linalg.norm(end - start, axis=-1)
    cmax = float(conf.max()) if conf.size else 0.0
    moving = (disp > config.min_displacement) & (conf > config.min_confidence * max(cmax, 1e-12))
    moving &= np.all(np.isfinite(start), -1) & np.all(np.isfinite(end), -1)
    if config.use_otsu:
        moving &= field.dynamic_mask()[frame]
    if config.max_height is not None:
        moving &= start[..., 2] < table_z + config.max_height
    if config.min_height is not None:
        moving &= start[..., 2] > table_z + config.min_height
    ij = np.argwhere(moving)
    if len(ij) < config.min_points:
        return []
    s, e, c = start[moving], end[moving], conf[moving]
    feats = np.concatenate([s, config.displacement_weight * (e - s)], axis=1)
    labels = _components(feats, join_radius(config.eps, cell_spacing(start)))
    out = []
    for lab in np.unique(labels):
        m = labels == lab
        if m.sum() >= config.min_points:
            out.append(Segment(frame=frame, pixels=ij[m], start=s[m], end=e[m], confidence=c[m]))
    out.sort(key=lambda g: -float(g.confidence.sum()))
    return out


def free_space(points: np.ndarray, depth: np.ndarray, K: np.ndarray, cam_to_world: np.ndarray,
               tol: float = 0.01) -> np.ndarray:
    """Which points [...,3] (world) a view says are NOT there: the view sees past them.

    A point is in free space when it projects inside the image and the observed
    depth there is larger than the point's depth by more than ``tol`` (or there
    is no surface at all). Points outside the image or behind the camera: False.
    Returns bool [...].
    """
    from traceany_ros.geometry import project

    h, w = depth.shape
    rows, cols, z = project(points, K, cam_to_world)
    ok = np.isfinite(rows) & np.isfinite(cols) & (z > 0)
    r = np.clip(np.rint(np.where(ok, rows, 0)).astype(np.int64), 0, h - 1)
    c = np.clip(np.rint(np.where(ok, cols, 0)).astype(np.int64), 0, w - 1)
    inside = ok & (rows >= -0.5) & (rows <= h - 0.5) & (cols >= -0.5) & (cols <= w - 0.5)
    d = np.asarray(depth, np.float64)[r, c]
    return inside & ((d <= 0) | (d > z + tol))


def largest_cluster(points: np.ndarray, weights: np.ndarray | None = None, eps: float = 0.015,
                    min_points: int = 5) -> np.ndarray:
    """Boolean mask [N] of the largest (summed weight) eps-connected group of points [N,D]; all False if none."""
    n = points.shape[0]
    if n < min_points:
        return np.zeros(n, bool)
    w = np.ones(n) if weights is None else np.asarray(weights, np.float64)
    labels = _components(np.asarray(points, np.float64), eps)
    best, best_w = None, -1.0
    for lab in np.unique(labels):
        m = labels == lab
        if m.sum() >= min_points and w[m].sum() > best_w:
            best, best_w = m, float(w[m].sum())
    return best if best is not None else np.zeros(n, bool)
