"""Ground-truth trajectories, visibility and dynamic flags from a rigid-link pose log (pure numpy).

The simulator records, at every frame, the pose of every rigid link in the scene
(``poses [L,T,4,4]`` world <- link) and a per-pixel link label (``labels [T,H,W]``,
index into the link table, -1 = nothing). A surface point seen at pixel (r, c) of
frame f is unprojected through the depth, held fixed in its link's frame, and moved
with that link::

    p_link = inv(poses[l, f]) @ p_world        tracks[:, t] = poses[l, t] @ p_link

Visibility at frame t: the point projects inside the image, the nearest pixel
shows the same link, and the rendered depth there (moved to the point's sub-pixel
position along the link's inverse-depth slope) is within ``depth_tol`` of the point's
camera-axis depth. Dynamic: the point moves more than 5 mm away from its
query-frame position at some frame.

Nothing here imports pybullet; training and tests use these functions on the ``gt_*`` extras
of an episode (``dense_tracks(ep.extras["gt_labels"], ..., ep.extras["gt_link_poses"])``).
"""
from __future__ import annotations

import numpy as np

from traceany_ros.episode import DYNAMIC_THRESHOLD_M
from traceany_ros.geometry import project, unproject_pixels

VIS_DEPTH_TOL_M = 0.01


def tracks_from_links(points_world: np.ndarray, frames: np.ndarray, links: np.ndarray,
                      poses: np.ndarray) -> np.ndarray:
    """Move points with their links.

    points_world [N,3] seen at frames [N] on links [N] (>= 0), poses [L,T,4,4] -> tracks [N,T,3] float64.
    """
    poses = np.asarray(poses, dtype=np.float64)
    frames = np.asarray(frames, dtype=np.int64)
    links = np.asarray(links, dtype=np.int64)
    P0 = poses[links, frames]                                   # [N,4,4] world <- link at the query frame
    p = np.asarray(points_world, dtype=np.float64) - P0[:, :3, 3]
    local = np.einsum("nji,nj->ni", P0[:, :3, :3], p)             # R^T (p - t)
    Pt = poses[links]                                           # [N,T,4,4]
    return np.einsum("ntij,nj->nti", Pt[..., :3, :3], local) + Pt[..., :3, 3]


def inverse_depth_gradients(depth: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inverse depth w = 1/z [H,W] (0 where invalid) and its slopes (dw/dcol, dw/drow) [H,W].

    Inverse depth is affine in the image over a plane, so w + slope * (sub-pixel offset) is exact
    on flat faces. Slopes use neighbours showing the same link with valid depth: central
    differences where both do, one-sided where one does, 0 otherwise (never across silhouettes).
    """
    d = np.asarray(depth, dtype=np.float64)
    valid = d > 0
    w = np.where(valid, 1.0 / np.where(valid, d, 1.0), 0.0)
    lab = np.where(valid, labels.astype(np.int64), -2)
    out = []
    for axis in (1, 0):
        diff = np.diff(w, axis=axis)
        same = (np.diff(lab, axis=axis) == 0) & (np.delete(lab, 0, axis=axis) >= 0)
        pad = [(0, 0), (0, 0)]
        pad[axis] = (0, 1)
        fwd, okf = np.pad(diff, pad), np.pad(same, pad)
        pad[axis] = (1, 0)
        bwd, okb = np.pad(diff, pad), np.pad(same, pad)
        out.append(np.where(okf & okb, 0.5 * (fwd + bwd), np.where(okf, fwd, np.where(okb, bwd, 0.0))))
    return w, out[0], out[1]


def visibility(tracks: np.ndarray, links: np.ndarray, labels: np.ndarray, depth: np.ndarray,
               K: np.ndarray, cam_to_world: np.ndarray, depth_tol: float = VIS_DEPTH_TOL_M) -> np.ndarray:
    """tracks [N,T,3], links [N], labels [T,H,W], depth [T,H,W], K [3,3], cam_to_world [T,4,4] -> visible [N,T].

    The rendered depth is compared at the point's sub-pixel position (nearest pixel plus its
    same-link inverse-depth slope), so surfaces seen at grazing angles are not marked occluded.
    """
    N, T, _ = tracks.shape
    _, H, W = labels.shape
    vis = np.zeros((N, T), dtype=bool)
    for t in range(T):
        rows, cols, z = project(tracks[:, t], K, cam_to_world[t])
        ok = np.isfinite(rows) & np.isfinite(cols) & (z > 0)
        ri = np.where(ok, np.round(np.nan_to_num(rows)), -1).astype(np.int64)
        ci = np.where(ok, np.round(np.nan_to_num(cols)), -1).astype(np.int64)
        ok &= (ri >= 0) & (ri < H) & (ci >= 0) & (ci < W)
        rs, cs = np.where(ok, ri, 0), np.where(ok, ci, 0)
        ok &= labels[t, rs, cs] == links
        w, gu, gv = inverse_depth_gradients(depth[t], labels[t])
        w_at = w[rs, cs] + gu[rs, cs] * np.nan_to_num(cols - cs) + gv[rs, cs] * np.nan_to_num(rows - rs)
        ok &= w_at > 0
        z_at = 1.0 / np.where(w_at > 0, w_at, 1.0)
        ok &= np.abs(z_at - z) < depth_tol
        vis[:, t] = ok
    return vis


def dynamic_flags(tracks: np.ndarray, query_frames: np.ndarray,
                  threshold: float = DYNAMIC_THRESHOLD_M) -> np.ndarray:
    """tracks [N,T,3], query_frames [N] -> dynamic [N]: moves more than ``threshold`` from the query position."""
    ref = tracks[np.arange(len(tracks)), query_frames]
    return np.linalg.norm(tracks - ref[:, None], axis=-1).max(axis=1) > threshold


def pixel_tracks(pixels: np.ndarray, labels: np.ndarray, depth: np.ndarray, K: np.ndarray,
                 cam_to_world: np.ndarray, poses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ground truth for pixels [N,3] (frame,row,col) with a valid label and depth.

    Returns (tracks [N,T,3] float64, links [N] int64). The query-frame position is exactly the
    unprojection of the pixel (the contract's rule).
    """
    pixels = np.asarray(pixels, dtype=np.int64)
    links = labels[pixels[:, 0], pixels[:, 1], pixels[:, 2]].astype(np.int64)
    if np.any(links < 0):
        raise ValueError("pixel_tracks: some pixels show no tracked link (label -1); sample only labelled pixels")
    pts = unproject_pixels(depth, K, cam_to_world, pixels)
    tracks = tracks_from_links(pts, pixels[:, 0], links, poses)
    tracks[np.arange(len(pixels)), pixels[:, 0]] = pts
    return tracks, links


def sample_queries(rng: np.random.Generator, labels: np.ndarray, depth: np.ndarray, K: np.ndarray,
                   cam_to_world: np.ndarray, poses: np.ndarray, num_queries: int = 384,
                   num_query_frames: int = 4, dynamic_share: float = 0.5):
    """Sample query pixels from several frames, with about ``dynamic_share`` of them on moving points.

    Returns (query_pixels [Q,3] int32, tracks [Q,T,3] float64, visible [Q,T] bool, dynamic [Q] bool);
    every query is visible at its own frame with valid depth. Q may fall short of ``num_queries``
    only when the clip has fewer valid pixels.
    """
    T, H, W = labels.shape
    n_frames = min(num_query_frames, T)
    others = rng.choice(np.arange(1, T), size=n_frames - 1, replace=False) if T > 1 and n_frames > 1 else []
    frames = np.sort(np.concatenate([[0], np.asarray(others, dtype=np.int64)])).astype(np.int64)
    # candidate pool: random labelled pixels with valid depth in the chosen frames; half of it from
    # links that move at all (else small moving objects would be rare among the queries)
    P = np.asarray(poses)
    moving_link = np.abs(P - P[:, :1]).reshape(len(P), -1).max(axis=1) > 1e-4
    cands = []
    per_frame = max(1, (6 * num_queries) // len(frames))
    for f in frames:
        ok = (labels[f] >= 0) & (depth[f] > 0)
        mov = ok & moving_link[np.maximum(labels[f], 0)]
        for mask, n in ((ok, per_frame // 2), (mov, per_frame - per_frame // 2)):
            rr, cc = np.nonzero(mask)
            if len(rr) == 0:
                continue
            pick = np.sort(rng.choice(len(rr), size=min(n, len(rr)), replace=False))
            cands.append(np.stack([np.full(len(pick), f), rr[pick], cc[pick]], axis=1))
    if not cands:
        raise ValueError("sample_queries: no frame shows any labelled pixel with valid depth; the camera sees nothing")
    cand = np.unique(np.concatenate(cands), axis=0)
    tracks, links = pixel_tracks(cand, labels, depth, K, cam_to_world, poses)
    vis = visibility(tracks, links, labels, depth, K, cam_to_world)
    own = vis[np.arange(len(cand)), cand[:, 0]]
    cand, tracks, links, vis = cand[own], tracks[own], links[own], vis[own]
    dyn = dynamic_flags(tracks, cand[:, 0])
    idx_dyn, idx_sta = np.flatnonzero(dyn), np.flatnonzero(~dyn)
    n_dyn = min(len(idx_dyn), int(round(num_queries * dynamic_share)))
    n_sta = min(len(idx_sta), num_queries - n_dyn)
    n_dyn = min(len(idx_dyn), num_queries - n_sta)
    chosen = np.sort(np.concatenate([rng.choice(idx_dyn, n_dyn, replace=False),
                                     rng.choice(idx_sta, n_sta, replace=False)]).astype(np.int64))
    return (cand[chosen].astype(np.int32), tracks[chosen], vis[chosen], dyn[chosen])


def dense_tracks(labels: np.ndarray, depth: np.ndarray, K: np.ndarray, cam_to_world: np.ndarray,
                 poses: np.ndarray, stride: int = 8, offset: int | None = None):
    """Dense ground truth on a pixel grid (every ``stride``-th pixel from ``offset``, default stride // 2).

    Returns (tracks [T,h,w,T,3] float32, valid [T,h,w] bool, visible [T,h,w,T] bool); invalid pixels
    (no label or no depth) get zeros and valid False.
    """
    T, H, W = labels.shape
    o = stride // 2 if offset is None else offset
    rows, cols = np.arange(o, H, stride), np.arange(o, W, stride)
    h, w = len(rows), len(cols)
    f, r, c = np.meshgrid(np.arange(T), rows, cols, indexing="ij")
    pix = np.stack([f.ravel(), r.ravel(), c.ravel()], axis=1)
    valid = (labels[pix[:, 0], pix[:, 1], pix[:, 2]] >= 0) & (depth[pix[:, 0], pix[:, 1], pix[:, 2]] > 0)
    out = np.zeros((len(pix), T, 3), dtype=np.float32)
    vis = np.zeros((len(pix), T), dtype=bool)
    if valid.any():
        tr, ln = pixel_tracks(pix[valid], labels, depth, K, cam_to_world, poses)
        out[valid] = tr
        vis[valid] = visibility(tr, ln, labels, depth, K, cam_to_world)
    return out.reshape(T, h, w, T, 3), valid.reshape(T, h, w), vis.reshape(T, h, w, T)
