"""Rigid-part propagation of chained flow tracks: lost points move with their part.

Two-frame flow loses a point whenever it is occluded (the far side of a spinning box, an object
behind the arm), leaves the image or moves too fast; the plain ``flow`` baseline then holds the
point's last position. Most moving things in a robot's scene are rigid parts, so a lost point can
instead follow the rigid motion of the points of its part that are still tracked.

How (:func:`traceany_ros.tracker.flow.track_window` with ``FlowConfig(rigid=True)``), at every step of
the chain from frame t to its neighbour frame (forward and backward):

1. *One-step correspondences*: frame t's grid points and where flow + depth put them in the
   neighbour frame (forward-backward and depth-jump checked).
2. *Rigid parts* (:func:`rigid_parts`): points that moved more than ``step_move`` are joined to
   their 4-neighbours on the grid when the two are close in 3D (``max_gap``, or twice the grid's
   median neighbour spacing if larger) and move like one rigid body: their displacements differ
   by at most ``step_rel * |p_a - p_b| + slack`` (a rigid motion has
   ``|(R - I)(p_a - p_b)| = 2 sin(angle / 2) |p_a - p_b|``). Connected components (scipy) with at
   least ``min_part`` points are the parts.
3. *Motion of each part* (:class:`StepMotion`): weighted Kabsch (SVD, batched), refined once with
   Huber-like weights.
4. A lost point (occluded, out of view, failed checks) that was moving keeps moving with the part
   whose motion at the point best continues its own last step (within ``reach`` of the part and
   ``velocity_slack + velocity_rel * |v|`` of that step); a grid point whose very first step
   failed takes the part of the grid neighbours on its surface. A moving point no part explains
   coasts on its last step, damped by ``coast_decay`` per frame. Such samples get fit weight
   ``propagated_weight`` (tracked samples 1, held ones the flow's ``lost_weight``).

"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RigidConfig:
    """Options of rigid-part propagation (metres; see the module docstring for each one's role)."""

    max_gap: float = 0.03
    slack: float = 0.006
    min_part: int = 6
    step_move: float = 0.005
    step_rel: float = 0.6
    reach: float = 0.15
    velocity_slack: float = 0.03
    velocity_rel: float = 2.0
    coast_decay: float = 0.5
    propagated_weight: float = 0.5


def batched_kabsch(src: np.ndarray, dst: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted least-squares rigid motions, many at once.

    src, dst: [B, N, 3]; w: [B, N] non-negative (a batch row with zero total weight gets the identity).
    Returns R [B, 3, 3] (proper rotations), t [B, 3] with dst ~ src @ R.T + t.
    """
    w = np.asarray(w, np.float64)
    tot = w.sum(1, keepdims=True)
    safe = np.where(tot > 0, tot, 1.0)
    mu_s = (w[..., None] * src).sum(1) / safe
    mu_d = (w[..., None] * dst).sum(1) / safe
    a = src - mu_s[:, None]
    b = dst - mu_d[:, None]
    H = np.einsum("bn,bni,bnj->bij", w, a, b)
    U, _, Vt = np.linalg.svd(H)
    d = np.sign(np.linalg.det(np.einsum("bji,bkj->bik", Vt, U)))
    d = np.where(d == 0, 1.0, d)
    D = np.zeros_like(H)
    D[:, 0, 0] = 1.0
    D[:, 1, 1] = 1.0
    D[:, 2, 2] = d
    R = np.einsum("bji,bjk,blk->bil", Vt, D, U)
    empty = tot[:, 0] <= 0
    R[empty] = np.eye(3)
    t = mu_d - np.einsum("bij,bj->bi", R, mu_s)
    t[empty] = 0.0
    return R, t


def _grow_labels(labels: np.ndarray, p: np.ndarray, valid: np.ndarray, grid: tuple[int, int],
                 rounds: int = 2) -> np.ndarray:
    """Give unlabelled valid grid points the label of an 8-neighbour on the same surface (3D gap
    within twice the grid's median spacing); ``rounds`` grid cells deep. labels [n] -> [n]."""
    h, w = grid
    lab = labels.reshape(h, w).copy()
    pts = p.reshape(h, w, 3)
    val = valid.reshape(h, w)
    d = np.linalg.norm(pts[:, 1:] - pts[:, :-1], axis=-1)[val[:, 1:] & val[:, :-1]]
    limit = 2.0 * float(np.median(d)) if d.size else 0.0
    shifts = []
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            if dr == 0 and dc == 0:
                continue
            src = (slice(max(0, -dr), h - max(0, dr)), slice(max(0, -dc), w - max(0, dc)))
            dst = (slice(max(0, dr), h - max(0, -dr)), slice(max(0, dc), w - max(0, -dc)))
            diff = pts[src] - pts[dst]
            near = val[dst] & (np.einsum("ijc,ijc->ij", diff, diff) < limit ** 2)
            shifts.append((src, dst, near))
    for _ in range(rounds):
        new = lab.copy()
        for src, dst, near in shifts:
            cand = lab[src]
            take = (new[dst] < 0) & (cand >= 0) & near
            new[dst] = np.where(take, cand, new[dst])
        lab = new
    return lab.reshape(-1)


def rigid_parts(p_t: np.ndarray, p_n: np.ndarray, ok: np.ndarray, grid: tuple[int, int],
                config: RigidConfig = RigidConfig()) -> np.ndarray:
    """Rigid parts of one frame's grid from its one-step correspondences.

    p_t [n, 3] the grid's world points, p_n [n, 3] where they are one frame later, ok [n] whether that
    correspondence holds, grid (h, w) with n = h * w. Returns labels [n] int: -1 for points that did
    not move (or have no correspondence), else a part id.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    h, w = grid
    n = h * w
    disp = np.where(ok[:, None], p_n - p_t, 0.0)
    moving = ok & (np.linalg.norm(disp, axis=-1) > config.step_move)
    idx = np.arange(n).reshape(h, w)
    pairs = [(idx[:, :-1].ravel(), idx[:, 1:].ravel()), (idx[:-1, :].ravel(), idx[1:, :].ravel())]
    ia = np.concatenate([p[0] for p in pairs])
    ib = np.concatenate([p[1] for p in pairs])
    both_valid = ok[ia] & ok[ib]
    spacing = float(np.median(np.linalg.norm(p_t[ia[both_valid]] - p_t[ib[both_valid]], axis=-1))) if both_valid.any() else 0.0
    max_gap = max(config.max_gap, 2.0 * spacing)  # coarse grids / far surfaces: neighbours are further apart
    keep = moving[ia] & moving[ib]
    ia, ib = ia[keep], ib[keep]
    gap = np.linalg.norm(p_t[ia] - p_t[ib], axis=-1)
    diff = np.linalg.norm(disp[ia] - disp[ib], axis=-1)
    sel = (gap < max_gap) & (diff <= config.step_rel * gap + config.slack)
    ia, ib = ia[sel], ib[sel]
    graph = coo_matrix((np.ones(len(ia)), (ia, ib)), shape=(n, n))
    _, comp = connected_components(graph, directed=False)
    labels = np.full(n, -1, np.int64)
    ids, counts = np.unique(comp[moving], return_counts=True)
    big = ids[counts >= config.min_part]
    for k, c in enumerate(big):
        labels[moving & (comp == c)] = k
    return labels


def _member_median(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Median of each row's first ``counts`` values: values [P,N], counts [P] >= 1 -> [P]; the value
    ``np.median`` gives (the middle one, or the mean of the two middle ones), by one sort of all rows."""
    n = values.shape[1]
    v = np.sort(np.where(np.arange(n)[None] < counts[:, None], values, np.inf), axis=1)
    rows = np.arange(len(v))
    return (v[rows, (counts - 1) // 2] + v[rows, counts // 2]) / 2


class StepMotion:
    """Rigid parts of one frame and their one-step motions to the next frame (forward or backward).

    Built from the frame's grid points (world) and where flow + depth put them one frame later.
    ``apply(x, moving, velocity)`` moves lost world points with the part whose motion best continues
    their own last step (see there); the others stay.
    """

    def __init__(self, p_t: np.ndarray, p_n: np.ndarray, ok: np.ndarray, valid: np.ndarray, grid: tuple[int, int],
                 config: "RigidConfig"):
        self.config = config
        self.labels = rigid_parts(p_t, p_n, ok, grid, config)
        self.grid_labels = _grow_labels(self.labels, p_t, valid, grid)
        # every part's members in one padded batch [P, N_max] (zero weight on the padding)
        member = np.flatnonzero(self.labels >= 0)
        part = self.labels[member]
        counts = np.bincount(part)
        P, N = len(counts), int(counts.max()) if len(counts) else 0
        order = np.argsort(part, kind="stable")
        member, part = member[order], part[order]
        slot = np.arange(len(part)) - np.concatenate([[0], np.cumsum(counts)[:-1]])[part] if P else part
        src, dst, w = np.zeros((P, N, 3)), np.zeros((P, N, 3)), np.zeros((P, N))
        src[part, slot], dst[part, slot], w[part, slot] = p_t[member], p_n[member], 1.0
        R, t = batched_kabsch(src, dst, w)
        # one robust refit: down-weight members beyond twice the part's median residual (>= 3 mm)
        res = np.linalg.norm(np.einsum("pij,pnj->pni", R, src) + t[:, None] - dst, axis=-1)
        scale = np.maximum(0.003, _member_median(res, counts)) if P else np.zeros(0)
        self.R, self.t = batched_kabsch(src, dst, w * np.minimum(1.0, 2.0 * scale[:, None] / np.maximum(res, 1e-9)))
        self.centre = src.sum(1) / np.maximum(counts, 1)[:, None] if P else np.zeros((0, 3))
        self.radius = np.where(w > 0, np.linalg.norm(src - self.centre[:, None], axis=-1), 0.0).max(1) if P \
            else np.zeros(0)

    def apply_own(self, x: np.ndarray, select: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Grid points of this frame whose own step failed: move them with their grown part label.

        x [n,3] the grid's world points, select [n] bool. Returns (moved [n,3], found [n] bool).
        """
        out = x.copy()
        lab = np.where(select, self.grid_labels, -1)
        found = lab >= 0
        k = lab[found]
        out[found] = np.einsum("mij,mj->mi", self.R[k], x[found]) + self.t[k]
        return out, found

    def apply(self, x: np.ndarray, moving: np.ndarray, velocity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Move lost points with the part that explains them best.

        x [M,3] world points, moving [M] bool (only these are considered), velocity [M,3] each point's
        last one-step displacement. A part is a candidate for a point within ``reach`` of the part's
        bounding sphere; among candidates the part whose motion at the point is closest to the point's
        own last step wins, if that difference is within ``velocity_slack + velocity_rel * |v|``.
        Returns (moved x [M,3], found [M] bool: a part moved it).
        """
        out = x.copy()
        found = np.zeros(len(x), bool)
        idx, new = self.apply_sparse(x, np.flatnonzero(moving), velocity)
        out[idx] = new
        found[idx] = True
        return out, found

    def apply_sparse(self, x: np.ndarray, idx: np.ndarray, velocity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`apply` for the points ``x[idx]`` only: -> (indices a part moved [k], their new positions [k,3])."""
        if not len(self.R) or not len(idx):
            return idx[:0], np.zeros((0, 3))
        xm, vm = x[idx], velocity[idx]
        # candidate (point, part) pairs first: distance to each part's centre by one matrix product, with a
        # margin over rounding, then the exact test on those pairs only (most points are near few parts)
        c = self.centre
        near_sq = np.maximum((xm * xm).sum(1)[:, None] + (c * c).sum(1)[None] - 2.0 * (xm @ c.T), 0.0)  # [M,P]
        m_i, k_i = np.nonzero(np.sqrt(near_sq) - self.radius[None] <= self.config.reach + 1e-6)
        rel = xm[m_i] - c[k_i]
        keep = np.sqrt(np.einsum("nc,nc->n", rel, rel)) - self.radius[k_i] <= self.config.reach
        m_i, k_i = m_i[keep], k_i[keep]
        moved = np.einsum("nij,nj->ni", self.R[k_i], xm[m_i]) + self.t[k_i]  # [pairs,3]
        diff = moved - xm[m_i] - vm[m_i]
        mismatch = np.sqrt(np.einsum("nc,nc->n", diff, diff))
        # per point the part whose motion is nearest its last step (ties: the lower part index)
        order = np.lexsort((k_i, mismatch, m_i))
        first = order[np.r_[True, m_i[order][1:] != m_i[order][:-1]]] if len(order) else order
        speed = np.sqrt(np.einsum("mc,mc->m", vm[m_i[first]], vm[m_i[first]]))
        ok = mismatch[first] <= self.config.velocity_slack + self.config.velocity_rel * speed
        return idx[m_i[first[ok]]], moved[first[ok]]
