"""Long windows on key frames: the network looks at a few evenly spaced frames, every other frame takes
its curves from them.

The pairs of a forward grow with the square of its frames (every query frame's cells against every frame),
and the network is trained on windows of 6-10 frames. A window longer than ``key_frames`` is therefore
predicted on that many key frames (the first and the last always among them, the time span the
window's own), and each other frame's cells get curves from the two key frames around it: a cell takes
the curve of the key-frame cell that is nearest to its own point at its frame's time (3D, world),
translated to pass through its own point there. A cell with no key-frame curve within ``reach`` metres
plus its own size (a surface neither key frame saw) keeps a still curve at zero confidence.
"""
from __future__ import annotations

import numpy as np
import torch
from scipy.spatial import cKDTree

from traceany_ros.episode import window_frames
from traceany_ros.field import TrajectoryField, bspline_basis
from traceany_ros.geometry import grid_points_world


def check_key_frames(key_frames: int | None) -> int | None:
    """``key_frames`` as a count of at least 2, or None (given as None or 0) for every frame."""
    if not key_frames:
        return None
    if key_frames < 2:
        raise ValueError(f"key_frames must be None / 0 (every frame) or at least 2, got {key_frames}")
    return int(key_frames)


def pick_key_frames(num_frames: int, key_frames: int | None) -> np.ndarray | None:
    """Indices of ``key_frames`` evenly spaced frames of ``num_frames`` (first and last included), or None
    when the window is not longer than that (or ``key_frames`` is None / 0)."""
    key_frames = check_key_frames(key_frames)
    if key_frames is None or num_frames <= key_frames:
        return None
    return np.unique(np.round(np.linspace(0, num_frames - 1, key_frames)).astype(np.int64))


def _interp_columns(keys: np.ndarray, times: np.ndarray) -> np.ndarray:
    """[len(keys), T] weights that interpolate per-key-frame values linearly in time to every frame."""
    kt = times[keys]
    W = np.zeros((len(keys), len(times)))
    for j, t in enumerate(times):
        b = int(np.clip(np.searchsorted(kt, t), 1, len(kt) - 1))
        a = b - 1
        u = float(np.clip((t - kt[a]) / max(kt[b] - kt[a], 1e-12), 0.0, 1.0))
        W[a, j] += 1 - u
        W[b, j] += u
    return W


def fill_frames(field: TrajectoryField, window, keys: np.ndarray, reach: float = 0.03) -> TrajectoryField:
    """The key frames' field (frames ``keys`` of ``window``, its time span the window's) -> the field of
    every frame of the window (see the module docstring). Visibility at the frames between key frames is
    interpolated linearly in time."""
    times = np.asarray(window.times, np.float64)
    T = len(times)
    Tk, h, w, K, _ = field.control_points.shape
    if Tk != len(keys):
        raise ValueError(f"the key field has {Tk} frames, keys name {len(keys)}")
    keys = np.asarray(keys, np.int64)
    rest = np.setdiff1d(np.arange(T), keys)  # the frames to fill
    own, valid = grid_points_world(window_frames(window, rest), field.stride, field.pixel_offset)
    n = h * w
    own = torch.from_numpy(own[:, :h, :w].reshape(len(rest), n, 3)).float()
    valid = torch.from_numpy(valid[:, :h, :w].reshape(len(rest), n))
    cp_k = torch.from_numpy(field.control_points).reshape(Tk, n, K, 3)
    basis = bspline_basis(torch.from_numpy(field.normalized_time(times[rest])), K).float()  # [R,K]
    # a cell's own point is up to half a cell from the nearest key-frame point on the same surface
    z = np.asarray(window.depth, np.float32)[rest][:, field.pixel_offset::field.stride,
                                                  field.pixel_offset::field.stride][:, :h, :w]
    cell = z.reshape(len(rest), n) * (field.stride / float(window.intrinsics[0][0]))
    bound = reach + float(cell.max(initial=0.0)) + 1e-6  # no nearer key cell -> not near either way
    after = np.searchsorted(keys, rest)  # the key frames around each filled frame: after - 1, after
    best_d = np.full((len(rest), n), np.inf)
    best_k = np.zeros((len(rest), n), np.int64)
    best_c = np.zeros((len(rest), n), np.int64)
    seen = field.confidence.reshape(Tk, n) > 0
    for side in (after - 1, after):
        at = torch.einsum("rk,rnkd->rnd", basis, cp_k[torch.from_numpy(side)]).numpy()  # at the frame's time
        for r, k in enumerate(side):
            idx = np.flatnonzero(seen[k])
            if not idx.size:
                continue
            d, c = cKDTree(at[r, idx]).query(own[r].numpy(), distance_upper_bound=bound)
            better = d < best_d[r]
            best_d[r][better], best_c[r][better], best_k[r][better] = d[better], idx[c[better]], k
    src = cp_k[torch.from_numpy(best_k), torch.from_numpy(best_c)]  # [R,n,K,3]
    near = torch.from_numpy(best_d <= reach + cell) & valid
    shift = own - torch.einsum("rk,rnkd->rnd", basis, src)
    curve = torch.where(near[..., None, None], src + shift[:, :, None], own[:, :, None].expand(-1, -1, K, 3))
    near = near.numpy()

    def gather(a, empty):  # per-cell values [Tk,h,w,...] of the chosen key cells, ``empty`` where none
        a = a.reshape(Tk, n, *a.shape[3:])[best_k, best_c]
        return np.where(near.reshape(near.shape + (1,) * (a.ndim - 2)), a, empty)

    full = np.zeros(T, np.int64)
    full[keys], full[rest] = np.arange(Tk), Tk + np.arange(len(rest))

    def stack(key_part, filled):  # key frames' and filled frames' [.., h, w, ...] -> every frame in order
        return np.concatenate([key_part, filled.reshape((len(rest), h, w) + filled.shape[2:])])[full]

    cp = stack(field.control_points, curve.numpy())
    conf = stack(field.confidence, gather(field.confidence, 0.0))
    motion = None if field.motion is None else stack(field.motion, gather(field.motion, 0.0))
    vis = None
    if field.visibility is not None:
        vis = stack(field.visibility, gather(field.visibility, 1.0)) @ _interp_columns(keys, times)
        vis[rest, ..., rest] = np.where(valid.numpy().reshape(len(rest), h, w), 1.0, vis[rest, ..., rest])
    return field._replace(control_points=cp.astype(np.float32), confidence=conf, times=times, motion=motion,
                          visibility=None if vis is None else vis.astype(np.float32),
                          meta={**field.meta, "key_frames": [int(k) for k in keys]})
