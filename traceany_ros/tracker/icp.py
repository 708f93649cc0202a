"""Rigid refinement of optical flow by registering depth segments (point-to-plane ICP).

Two-frame optical flow sees a rotating object only where its texture or outline moves: on a plain
box spinning 15 degrees per frame DIS finds about a third of the motion, and the part's fitted
motion inherits the error (held-out spins were tracked barely better than not at all). The depth
camera sees the rotated shape directly. So, for one frame pair (a -> b):

1. *Segments of frame a* (:func:`depth_segments`): the depth image cut into surfaces at depth
   gaps and at concave folds (where an object stands on the table, where two parts meet), so
   an object's convex faces stay together and its contact with the table does not; segments
   larger than ``max_share`` of the image (floor, walls, table), smaller than ``min_pixels``, or
   whose shape cannot pin down its own motion (:func:`constraint`: a plane, a cylinder, a sphere)
   are left to the flow.
2. *Initial motion*: robust weighted Kabsch of the segment's flow correspondences lifted to 3D
   (all segments of the pair in one batch); segments it leaves standing still are skipped.
3. *ICP*: point-to-plane ICP of the segment's points to frame b's points (normals from the depth
   grid), started from the initial motion: all segments (and second starts) of the pair in one NumPy
   batch, each moved point paired with frame b's point at the pixel it projects to
   (:func:`register_batched`, the default), or one Open3D ICP per segment with nearest
   neighbours in a crop around it (``IcpConfig(solver="open3d")``).
4. *Check*: both motions are scored by how well they predict frame b where the moved segment
   lands (depth residual along the ray and grey-level difference, truncated; points hidden behind
   something nearer or out of view count half). ICP's motion replaces the flow on the segment
   only if it scores better (by ``accept_gain``), paired enough points and stayed near the
   initial motion.

:func:`refine_flow` returns the flow with the accepted segments' pixels re-projected by their ICP
motion; the tracker then chains it as any other flow (``FlowConfig(icp=True)``), except that
pixels moved by an accepted ICP motion skip its forward-backward check (the reverse flow comes
from other segments or from DIS and need not agree to the pixel).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class IcpConfig:
    """Options of the segment ICP refinement (metres, grey levels 0-255, degrees).

    gap_abs, gap_px: 4-neighbours further apart in 3D than ``max(gap_abs, gap_px * z / f)``
        (``z / f`` is the pixel's footprint) belong to different segments.
    concave_deg: a concave fold whose normals differ by more than this cuts a segment.
    min_pixels, max_share: segments with fewer pixels, or more than this share of the image,
        keep their flow.
    max_points: ICP source points (evenly subsampled).
    max_corr: ICP correspondence distance; iterations: ICP iterations.
    crop: frame b's points within this of the segment's initially moved bounding box are ICP targets.
    depth_clip, depth_scale, grey_clip, grey_scale: score = min(|dz|, depth_clip) / depth_scale
        + min(|d grey|, grey_clip) / grey_scale per point, averaged.
    accept_gain: how much lower ICP's score must be than the flow's motion's; max_score: the most
        it may be at all.
    min_constraint: the least :func:`constraint` of a segment's shape (planes, cylinders and spheres
        are left to the flow).
    still_turn (degrees), still_shift: a segment whose flow motion turns and shifts it less is taken
        as standing still and not registered (``still_turn = 0`` registers every segment).
    constant_velocity: the tracker also starts ICP from the inverse of the segment's flow motion to
        its other neighbour frame (constant velocity through the frame).
    min_fitness: the least share of source points ICP must pair; max_turn (degrees), max_shift: the
        most ICP may change the initial motion (the shift at the segment's centre).
    solver: "batched" (point-to-plane ICP of every segment and start of a frame pair at once in NumPy,
        each moved point paired with frame b's point at the pixel it projects to: :func:`register_batched`)
        or "open3d" (one Open3D ICP per segment and start, nearest neighbours among frame b's points
        cropped around the segment: :func:`_register`).
    """

    gap_abs: float = 0.01
    gap_px: float = 4.0
    concave_deg: float = 20.0
    min_pixels: int = 40
    max_share: float = 0.3
    max_points: int = 300
    max_corr: float = 0.015
    iterations: int = 10
    crop: float = 0.08
    depth_clip: float = 0.02
    depth_scale: float = 0.01
    grey_clip: float = 40.0
    grey_scale: float = 10.0
    accept_gain: float = 0.0
    min_fitness: float = 0.6
    max_turn: float = 45.0
    max_shift: float = 0.05
    max_score: float = 2.5
    min_constraint: float = 3e-4
    still_turn: float = 0.3
    still_shift: float = 0.001
    constant_velocity: bool = True
    solver: str = "batched"

    def __post_init__(self):
        if self.min_pixels < 1 or self.max_points < 6 or self.iterations < 1:
            raise ValueError(f"min_pixels, iterations must be >= 1 and max_points >= 6, got {self.min_pixels}, "
                             f"{self.iterations}, {self.max_points}")
        if not 0.0 < self.max_share <= 1.0:
            raise ValueError(f"max_share is a share of the image in (0, 1], got {self.max_share}")
        if self.max_corr <= 0 or self.depth_scale <= 0 or self.grey_scale <= 0:
            raise ValueError("max_corr, depth_scale and grey_scale must be positive")
        if self.solver not in ("batched", "open3d"):
            raise ValueError(f"solver must be 'batched' or 'open3d', got {self.solver!r}")


def camera_points(depth: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Camera-frame points of every pixel: depth [H,W] (0 = invalid), K [3,3] -> [H,W,3] float64."""
    z = np.asarray(depth, np.float64)
    H, W = z.shape
    rows, cols = np.mgrid[0:H, 0:W]
    return np.stack([(cols - K[0, 2]) / K[0, 0] * z, (rows - K[1, 2]) / K[1, 1] * z, z], axis=-1)


def _cross(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Cross products over the last axis (np.cross's arithmetic, without its axis shuffling: ~5x faster
    on image-sized arrays). ``out`` [..., >= 3]: written into its first three channels."""
    out = np.empty(np.broadcast_shapes(a.shape, b.shape)) if out is None else out
    out[..., 0] = a[..., 1] * b[..., 2] - a[..., 2] * b[..., 1]
    out[..., 1] = a[..., 2] * b[..., 0] - a[..., 0] * b[..., 2]
    out[..., 2] = a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]
    return out


def _norm(v: np.ndarray) -> np.ndarray:
    """Euclidean length over the last axis (faster than np.linalg.norm for 3-vectors)."""
    return np.sqrt(np.einsum("...c,...c->...", v, v))


def surface_normals(X: np.ndarray, valid: np.ndarray, gap: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit normals from central differences of the point grid, facing the camera.

    X [H,W,3] camera points, valid [H,W], gap [H,W] the largest neighbour distance on one surface.
    Returns (normals [H,W,3], ok [H,W]); ok is False at the border, next to invalid depth and
    across depth gaps.
    """
    H, W = valid.shape
    n = np.zeros((H, W, 3))
    ok = np.zeros((H, W), bool)
    dx = X[1:-1, 2:] - X[1:-1, :-2]
    dy = X[2:, 1:-1] - X[:-2, 1:-1]
    c = _cross(dx, dy)
    norm = _norm(c)
    g = 2.0 * gap[1:-1, 1:-1]
    inner = (valid[1:-1, 2:] & valid[1:-1, :-2] & valid[2:, 1:-1] & valid[:-2, 1:-1] & valid[1:-1, 1:-1]
             & (_norm(dx) < g) & (_norm(dy) < g) & (norm > 0))
    c /= np.where(norm > 0, norm, 1.0)[..., None]
    flip = np.einsum("ijc,ijc->ij", c, X[1:-1, 1:-1]) > 0
    c *= np.where(flip, -1.0, 1.0)[..., None]
    n[1:-1, 1:-1] = c
    ok[1:-1, 1:-1] = inner
    return n, ok


_EDGES = (((slice(None), slice(0, -1)), (slice(None), slice(1, None))),   # horizontal neighbours
          ((slice(0, -1), slice(None)), (slice(1, None), slice(None))))   # vertical neighbours


def _geometry(depth: np.ndarray, K: np.ndarray, config: IcpConfig):
    """Camera points, validity, neighbour gap limit and normals of a depth image (shared by
    :func:`depth_segments` and :class:`IcpFrame`)."""
    z = np.asarray(depth, np.float64)
    valid = z > 0
    X = camera_points(z, K)
    gap = np.maximum(config.gap_abs, config.gap_px * z / K[0, 0])
    nrm, nok = surface_normals(X, valid, gap)
    return X, valid, gap, nrm, nok


def depth_segments(depth: np.ndarray, K: np.ndarray, config: IcpConfig = IcpConfig(), _geom=None) -> np.ndarray:
    """Segments of a depth image: connected surfaces cut at depth gaps and concave folds.

    depth [H,W] metres (0 = invalid), K [3,3]. Returns labels [H,W] int64: -1 for invalid depth and
    what is left of the boundary lines, else a segment id (0..S-1, in no particular order).
    """
    import cv2

    K = np.asarray(K, np.float64)
    X, valid, gap, nrm, nok = _geom if _geom is not None else _geometry(depth, K, config)
    cos_max = np.cos(np.radians(config.concave_deg))
    boundary = ~(valid & nok)
    near = []
    for sa, sb in _EDGES:
        d = X[sa] - X[sb]
        close = _norm(d) < np.minimum(gap[sa], gap[sb])
        near.append(close & valid[sa] & valid[sb])
        concave = (np.einsum("ijc,ijc->ij", nrm[sa] - nrm[sb], d) < 0) \
            & (np.einsum("ijc,ijc->ij", nrm[sa], nrm[sb]) < cos_max)
        cut = concave | ~close
        # both ends of a cut edge become boundary pixels: a fold or gap line two pixels thick, which
        # no 4-connected path crosses even where the line runs diagonally
        boundary[sa] |= cut
        boundary[sb] |= cut
    # every edge between two non-boundary pixels is kept, so the segments are the 4-connected
    # components of the non-boundary pixels
    _, comp = cv2.connectedComponents((~boundary).astype(np.uint8), connectivity=4, ltype=cv2.CV_32S)
    labels = np.where(boundary, -1, comp.astype(np.int64) - 1)
    # a boundary pixel joins a segment it touches without a depth gap (the rims of objects, both
    # sides of a fold): one step, from the segments as they were
    grown = labels.copy()
    for (sa, sb), close in zip(_EDGES, near):
        for dst, src in ((sa, sb), (sb, sa)):
            take = close & (grown[dst] < 0) & (labels[src] >= 0)
            grown[dst] = np.where(take, labels[src], grown[dst])
    return grown


class IcpFrame:
    """One frame prepared for segment ICP: world points, their normals, grey image, segments."""

    def __init__(self, depth: np.ndarray, gray: np.ndarray, K: np.ndarray, cam_to_world: np.ndarray,
                 config: IcpConfig = IcpConfig()):
        self.K = np.asarray(K, np.float64)
        self.c2w = np.asarray(cam_to_world, np.float64)
        self.depth = np.asarray(depth, np.float64)
        self.gray = np.asarray(gray, np.float64)
        geom = _geometry(self.depth, self.K, config)
        X, self.valid, _, n, self.normal_ok = geom
        R, t = self.c2w[:3, :3], self.c2w[:3, 3]
        self.world = X @ R.T + t
        self.normals = n @ R.T
        self.labels = depth_segments(self.depth, self.K, config, _geom=geom)
        # the segments worth registering: [(rows, cols)] of those of a useful size whose shape pins
        # down their motion (a plane, a cylinder or a sphere can slide along itself)
        H, W = self.depth.shape
        flat = self.labels.reshape(-1)
        sizes = np.bincount(flat[flat >= 0]) if (flat >= 0).any() else np.zeros(0, np.int64)
        order = np.argsort(flat, kind="stable")
        starts = np.concatenate([[0], np.cumsum(np.bincount(flat + 1))])  # label L: order[starts[L+1]:starts[L+2]]
        self.segments, picks = [], []
        for s in np.flatnonzero((sizes >= config.min_pixels) & (sizes <= config.max_share * H * W)):
            pix = order[starts[s + 1]:starts[s + 2]]
            r, c = pix // W, pix % W
            pick = np.linspace(0, len(r) - 1, min(len(r), config.max_points)).astype(np.int64)
            if constraint(self.world[r[pick], c[pick]], self.normals[r[pick], c[pick]]) >= config.min_constraint:
                self.segments.append((r, c))
                picks.append(pick)
        # every segment's even subsample (ICP source, initial fit, score) as padded [S, N] arrays
        S, N = len(self.segments), config.max_points
        self.sub_rows, self.sub_cols = np.zeros((S, N), np.int64), np.zeros((S, N), np.int64)
        self.sub_mask = np.zeros((S, N), bool)
        for k, ((r, c), pick) in enumerate(zip(self.segments, picks)):
            self.sub_rows[k, :len(pick)], self.sub_cols[k, :len(pick)] = r[pick], c[pick]
            self.sub_mask[k, :len(pick)] = True
        self.sub_world = self.world[self.sub_rows, self.sub_cols]                      # [S,N,3]
        self.sub_centres = ((self.sub_world * self.sub_mask[..., None]).sum(1)
                            / np.maximum(self.sub_mask.sum(1), 1)[:, None])             # [S,3]
        self.target_ok = self.valid & self.normal_ok  # where this frame can be an ICP target

    def project(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """World points [N,3] -> (cols [N], rows [N], z [N]) in this frame's camera."""
        R, t = self.c2w[:3, :3], self.c2w[:3, 3]
        pc = (p - t) @ R
        z = pc[:, 2]
        safe = np.where(z > 1e-6, z, 1e-6)
        return self.K[0, 0] * pc[:, 0] / safe + self.K[0, 2], self.K[1, 1] * pc[:, 1] / safe + self.K[1, 2], z


def _land(T: np.ndarray, pa: np.ndarray, fb: IcpFrame):
    """Point sets pa [J,N,3] moved by T [J,4,4] and where they land in frame b: (moved [J,N,3], camera depth
    z [J,N], inside [J,N] (in front of the camera and in the image at the nearest pixel), pix [J,N] that
    pixel's flat index, clipped into the image)."""
    moved = np.matmul(pa, T[:, :3, :3].transpose(0, 2, 1)) + T[:, None, :3, 3]
    u, v, z = (a.reshape(moved.shape[:2]) for a in fb.project(moved.reshape(-1, 3)))
    H, W = fb.depth.shape
    col, row = np.rint(u).astype(np.int64), np.rint(v).astype(np.int64)
    inside = (z > 1e-6) & (col >= 0) & (col < W) & (row >= 0) & (row < H)
    return moved, z, inside, np.clip(row, 0, H - 1) * W + np.clip(col, 0, W - 1)


def _score_many(T: np.ndarray, pa: np.ndarray, ga: np.ndarray, mask: np.ndarray, fb: IcpFrame,
                config: IcpConfig) -> np.ndarray:
    """How badly motions T [J,4,4] of point sets pa [J,N,3] (grey ga [J,N]; mask [J,N] the real points)
    predict frame fb: [J], lower is better. Each point costs its clipped depth and grey differences at the
    pixel it moves to, half the worst where it leaves the picture or something nearer covers it."""
    _, z, inside, pix = _land(T, pa, fb)
    zb = fb.depth.reshape(-1)[pix]
    dz = np.where(zb > 0, zb - z, config.depth_clip)
    hidden = dz < -config.depth_clip  # something nearer covers the moved point
    val = (np.minimum(np.abs(dz), config.depth_clip) / config.depth_scale
           + np.minimum(np.abs(fb.gray.reshape(-1)[pix] - ga), config.grey_clip) / config.grey_scale)
    worst = config.depth_clip / config.depth_scale + config.grey_clip / config.grey_scale
    cost = np.where(inside & ~hidden, val, 0.5 * worst)
    return (cost * mask).sum(1) / np.maximum(mask.sum(1), 1)


def constraint(p: np.ndarray, n: np.ndarray) -> float:
    """How well a surface pins down its own rigid motion under point-to-plane ICP: the smallest over
    the largest eigenvalue of the 6x6 information matrix sum J J^T, J = [(p - centre) x n / radius, n]
    (0 for a plane, a cylinder or a sphere, whose motion along themselves is free; up to 1)."""
    q = p - p.mean(0)
    radius = max(float(np.sqrt((q ** 2).sum(1).mean())), 1e-6)
    J = np.concatenate([_cross(q, n) / radius, n], axis=1)
    ev = np.linalg.eigvalsh(J.T @ J)
    return float(ev[0] / max(ev[-1], 1e-12))


def _motion_gap(Ta: np.ndarray, Tb: np.ndarray, centre: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """How far apart two rigid motions [...,4,4] are for a segment around ``centre`` [...,3]: the angle
    (degrees) of the rotation between them and the distance between where they move the centre."""
    rel = np.linalg.inv(Ta) @ Tb
    angle = np.degrees(np.arccos(np.clip((np.trace(rel[..., :3, :3], axis1=-2, axis2=-1) - 1.0) / 2.0, -1.0, 1.0)))
    moved_a = np.einsum("...ij,...j->...i", Ta[..., :3, :3], centre) + Ta[..., :3, 3]
    moved_b = np.einsum("...ij,...j->...i", Tb[..., :3, :3], centre) + Tb[..., :3, 3]
    return angle, _norm(moved_b - moved_a)


def _robust_kabsch(src: np.ndarray, dst: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Robust rigid fits dst ~ R src + t, many at once (two Huber-like reweightings).

    src, dst [S,N,3], w [S,N] (0 = no correspondence) -> T [S,4,4] (identity where fewer than 10
    correspondences)."""
    from traceany_ros.tracker.rigid import batched_kabsch

    weight = w.astype(np.float64)
    for _ in range(3):
        R, t = batched_kabsch(src, dst, weight)
        res = _norm(np.einsum("sij,snj->sni", R, src) + t[:, None] - dst)
        # median residual over each row's correspondences (the lower middle one; rows without any: 0)
        count = (w > 0).sum(1)
        ordered = np.sort(np.where(w > 0, res, np.inf), axis=1)
        med = np.where(count > 0, ordered[np.arange(len(w)), np.maximum(count - 1, 0) // 2], 0.0)
        scale = np.maximum(0.003, med)
        weight = w * np.minimum(1.0, 2.0 * scale[:, None] / np.maximum(res, 1e-9))
    T = np.repeat(np.eye(4)[None], len(src), axis=0)
    enough = (w > 0).sum(1) >= 10
    T[enough, :3, :3], T[enough, :3, 3] = R[enough], t[enough]
    return T


def flow_motions(flow: np.ndarray, fa: IcpFrame, fb: IcpFrame) -> np.ndarray:
    """The flow's rigid motion a -> b of each of frame a's segments: a robust Kabsch fit of each
    segment's subsample and where the flow and frame b's depth put it, all in one batch.

    Returns T [S,4,4] (world frame; identity for segments with fewer than 10 correspondences)."""
    H, W = fa.depth.shape
    rs, cs, m = fa.sub_rows, fa.sub_cols, fa.sub_mask
    cb = np.rint(cs + flow[rs, cs, 0]).astype(np.int64)
    rb = np.rint(rs + flow[rs, cs, 1]).astype(np.int64)
    inb = m & (cb >= 0) & (cb < W) & (rb >= 0) & (rb < H)
    rb, cb = np.clip(rb, 0, H - 1), np.clip(cb, 0, W - 1)
    inb &= fb.valid[rb, cb]
    return _robust_kabsch(fa.sub_world, fb.world[rb, cb], inb)


def refine_flow(flow: np.ndarray, fa: IcpFrame, fb: IcpFrame, config: IcpConfig = IcpConfig(),
                init: np.ndarray | None = None, extra_init: np.ndarray | None = None):
    """Replace the flow a -> b on rigid depth segments whose ICP motion explains frame b better.

    flow [H,W,2] (dx = column, dy = row), fa / fb the two frames; init [S,4,4] the flow's motions of
    fa's segments (:func:`flow_motions`, computed when not given); extra_init [S,4,4] a second start
    for ICP (the tracker passes the inverse of the segment's motion to the other neighbour frame:
    constant velocity through frame a), tried where it differs from the first.
    Returns (flow' [H,W,2] float32, accepted [H,W] bool: pixels whose flow now comes from a
    segment's ICP motion).
    """
    H, W = fa.depth.shape
    out = np.array(flow, np.float32, copy=True)
    accepted = np.zeros((H, W), bool)
    if not fa.segments:
        return out, accepted
    rs, cs, m = fa.sub_rows, fa.sub_cols, fa.sub_mask
    centres = fa.sub_centres
    T_all = flow_motions(flow, fa, fb) if init is None else init

    def still_of(T):
        turn, shift = _motion_gap(np.eye(4), T, centres)
        return (turn < config.still_turn) & (shift < config.still_shift)

    if config.still_turn > 0:
        still = still_of(T_all) & (still_of(extra_init) if extra_init is not None else True)
    else:
        still = np.zeros(len(T_all), bool)
    moving = np.flatnonzero(~still)
    if not len(moving):
        return out, accepted
    # ICP jobs: every moving segment from the flow's motion, and from the second start where that differs
    job_seg, job_start = list(moving), [T_all[k] for k in moving]
    if extra_init is not None:
        turn, shift = _motion_gap(T_all[moving], extra_init[moving], centres[moving])
        second = moving[(turn > 1.0) | (shift > 0.003)]
        job_seg += list(second)
        job_start += [extra_init[k] for k in second]
    job_seg, job_start = np.asarray(job_seg), np.stack(job_start)
    if config.solver == "batched":
        job_T, job_ok = register_batched(fa.sub_world[job_seg], m[job_seg], job_start, fb, config)
    else:
        import open3d as o3d

        reg = o3d.pipelines.registration
        criteria = reg.ICPConvergenceCriteria(max_iteration=config.iterations)
        found = [_register(fa.sub_world[k][m[k]], T0, fb, config, reg, criteria) for k, T0 in zip(job_seg, job_start)]
        job_ok = np.array([T is not None for T in found])
        job_T = np.stack([np.eye(4) if T is None else T for T in found])
    # every job's score where it stays near its start (the flow's or the constant-velocity one), and the
    # flow's own motion's, all in one batch; per segment the best job (the first of equal scores)
    gray_sub = fa.gray[rs, cs]
    turn, shift = _motion_gap(job_start, job_T, centres[job_seg])
    usable = np.flatnonzero(job_ok & (turn <= config.max_turn) & (shift <= config.max_shift))
    score = np.full(len(job_seg), np.inf)
    score[usable] = _score_many(job_T[usable], fa.sub_world[job_seg[usable]], gray_sub[job_seg[usable]],
                                m[job_seg[usable]], fb, config)
    flow_score = _score_many(T_all[moving], fa.sub_world[moving], gray_sub[moving], m[moving], fb, config)
    for k, k_score in zip(moving, flow_score):
        jobs = np.flatnonzero(job_seg == k)
        j = jobs[np.argmin(score[jobs])]
        best, best_score = job_T[j], score[j]
        if not best_score <= config.max_score or best_score > k_score - config.accept_gain:
            continue
        r, c = fa.segments[k]
        u, v, _ = fb.project(fa.world[r, c] @ best[:3, :3].T + best[:3, 3])
        out[r, c, 0] = u - c
        out[r, c, 1] = v - r
        accepted[r, c] = True
    return out, accepted


def register_batched(sub: np.ndarray, mask: np.ndarray, T0: np.ndarray, fb: IcpFrame, config: IcpConfig):
    """Point-to-plane ICP of many point sets onto frame b at once (projective association).

    sub [J,N,3] world points (``mask`` [J,N] the real ones), T0 [J,4,4] their starting motions. Each
    iteration moves every set, pairs each moved point with frame b's point at the pixel it projects to
    (a valid ICP target within ``max_corr``), and takes one Gauss-Newton step of the point-to-plane error
    of each set (6 x 6 normal equations about the set's centre, all sets in one batch), up to
    ``iterations`` times; a set whose step falls under 1e-5 rad and 10 um stops there. Returns
    (T [J,4,4], ok [J] bool: at least ``min_fitness`` of the set's points and 10 in all paired at the end).
    Projective pairing is what depth-camera ICP (KinectFusion) does; one batch over all segments of a
    frame pair replaces its ~12-30 Open3D calls.
    """
    from scipy.spatial.transform import Rotation

    T = np.array(T0, np.float64, copy=True)

    def pair(rows):  # moved points of sets ``rows``, their pairing mask, the paired target points and normals
        moved, _, inside, pix = _land(T[rows], sub[rows], fb)
        ok = mask[rows] & inside & fb.target_ok.reshape(-1)[pix]
        d = moved - fb.world.reshape(-1, 3)[pix]
        ok &= (d * d).sum(-1) < config.max_corr ** 2
        return moved, ok, d, fb.normals.reshape(-1, 3)[pix]

    active = np.arange(len(T))
    for _ in range(config.iterations):
        if not len(active):
            break
        moved, ok, d, n = pair(active)
        w = ok.astype(np.float64)
        centre = (moved * w[..., None]).sum(1) / np.maximum(w.sum(1), 1.0)[:, None]
        p = moved - centre[:, None]
        A = _cross(p, n, np.empty(p.shape[:2] + (6,)))  # [J,N,6]: d residual / d (turn, shift) = (p x n, n)
        A[..., 3:] = n
        Aw = A * w[..., None]
        lhs = np.matmul(Aw.transpose(0, 2, 1), A) + 1e-9 * np.eye(6)
        rhs = -np.matmul(Aw.transpose(0, 2, 1), (d * n).sum(-1)[..., None])[..., 0]
        step = np.linalg.solve(lhs, rhs[..., None])[..., 0]
        step[w.sum(1) < 6] = 0.0
        Rd = Rotation.from_rotvec(step[:, :3]).as_matrix()
        R, t = T[active, :3, :3], T[active, :3, 3]
        T[active, :3, :3] = np.matmul(Rd, R)
        T[active, :3, 3] = np.matmul(Rd, (t - centre)[..., None])[..., 0] + centre + step[:, 3:]
        active = active[np.abs(step).max(1) >= 1e-5]
    paired = pair(np.arange(len(T)))[1].sum(1)
    return T, (paired >= config.min_fitness * np.maximum(mask.sum(1), 1)) & (paired >= 10)


def _register(sub: np.ndarray, T0: np.ndarray, fb: IcpFrame, config: IcpConfig, reg, criteria):
    """Open3D point-to-plane ICP of world points sub [N,3] onto frame b from T0 [4,4]; targets are
    frame b's points around the moved points (an image window first, then a 3D box). Returns the
    motion [4,4], or None when there are too few targets or ICP paired too few points."""
    import open3d as o3d

    H, W = fb.depth.shape
    moved = sub @ T0[:3, :3].T + T0[:3, 3]
    lo, hi = moved.min(0) - config.crop, moved.max(0) + config.crop
    u, v, z = fb.project(moved)
    if not np.any(z > 1e-6):
        return None
    pad = config.crop * fb.K[0, 0] / max(float(z[z > 1e-6].min()), 1e-3)
    c0, c1 = int(max(0, np.floor(u.min() - pad))), int(min(W, np.ceil(u.max() + pad) + 1))
    r0, r1 = int(max(0, np.floor(v.min() - pad))), int(min(H, np.ceil(v.max() + pad) + 1))
    if c1 <= c0 or r1 <= r0:
        return None
    win_ok = fb.target_ok[r0:r1, c0:c1]
    pts = fb.world[r0:r1, c0:c1][win_ok]
    nrm = fb.normals[r0:r1, c0:c1][win_ok]
    near = np.all((pts >= lo) & (pts <= hi), axis=1)
    if near.sum() < config.min_pixels:
        return None
    source = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(sub))
    target = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(pts[near]))
    target.normals = o3d.utility.Vector3dVector(nrm[near])
    result = reg.registration_icp(source, target, config.max_corr, T0, reg.TransformationEstimationPointToPlane(),
                                  criteria)
    if result.fitness < config.min_fitness:
        return None
    return np.asarray(result.transformation)
