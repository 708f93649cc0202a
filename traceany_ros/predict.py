"""Query tracks from trajectory fields: one window, or sliding windows joined in the world frame.

``predict_episode(ep, backend)`` returns, for every query ``(frame, row, col)``
of an episode, its predicted world position at every frame time and a
confidence. The query's curve is the field curve of its own frame at its
pixel: among the (up to) four field cells around the pixel, the one whose own
point is nearest in 3D to the query's unprojection (so a cell on the other
side of a depth edge is not used), translated so that the curve passes exactly
through the query's unprojection at its own time.

Clips longer than ``window`` frames are cut into windows that overlap by
``overlap`` frames. Each query starts in the window where its frame is most
central; at every window border it is handed over inside the overlap: its
position at an overlap frame is projected into that frame, the next window's
curve there is looked up and translated to pass through the same point, and
the two curves are cross-faded over the overlap, so tracks are continuous.
"""
from __future__ import annotations

import numpy as np

from traceany_ros.episode import Episode, FrameWindow, project, unproject_pixels
from traceany_ros.field import TrajectoryField, evaluate


def sub_window(window: FrameWindow, start: int, stop: int) -> FrameWindow:
    """Frames [start, stop) of a window."""
    return FrameWindow(rgb=window.rgb[start:stop], depth=window.depth[start:stop], intrinsics=window.intrinsics,
                       cam_to_world=window.cam_to_world[start:stop], times=window.times[start:stop])


def window_starts(num_frames: int, window: int, overlap: int) -> list[int]:
    """Start frames of sliding windows covering ``num_frames`` (last one ends at the last frame)."""
    if window < 2:
        raise ValueError(f"window must be >= 2 frames, got {window}")
    if not 0 < overlap < window:
        raise ValueError(f"overlap must be in [1, window-1] = [1, {window - 1}], got {overlap}")
    if num_frames <= window:
        return [0]
    starts = list(range(0, num_frames - window, window - overlap))
    starts.append(num_frames - window)
    return starts


def lookup_curves(field: TrajectoryField, frames: np.ndarray, rows: np.ndarray, cols: np.ndarray,
                  anchors: np.ndarray, own_points: np.ndarray | None = None):
    """Curves of arbitrary (sub)pixels, translated through given anchor points.

    Args:
        field: TrajectoryField (any stride).
        frames [N] int source frames (field frame index); rows, cols [N] float image pixels.
        anchors [N,3] the world point each curve must pass through at its frame's time.
        own_points: optional cached ``field.frame_points()`` [T,h,w,3].
    Returns:
        control_points [N,K,3] float64, confidence [N], distance [N] (metres between the chosen cell's
        own point and the anchor: large means the pixel sees another surface than the anchor).
    """
    own = field.frame_points() if own_points is None else own_points
    h, w = field.shape
    fi = (np.asarray(rows, np.float64) - field.pixel_offset) / field.stride
    fj = (np.asarray(cols, np.float64) - field.pixel_offset) / field.stride
    i0 = np.clip(np.floor(fi).astype(np.int64), 0, h - 1)
    j0 = np.clip(np.floor(fj).astype(np.int64), 0, w - 1)
    frames = np.asarray(frames, np.int64)
    anchors = np.asarray(anchors, np.float64)
    best_cost = np.full(len(frames), np.inf)
    bi, bj = i0.copy(), j0.copy()
    for di in (0, 1):
        for dj in (0, 1):
            ii, jj = np.clip(i0 + di, 0, h - 1), np.clip(j0 + dj, 0, w - 1)
            dist3 = np.linalg.norm(own[frames, ii, jj] - anchors, axis=-1)
            pix = np.hypot(ii - fi, jj - fj)  # tie-break: nearer cell in the image
            bad = field.confidence[frames, ii, jj] <= 0
            cost = dist3 + 1e-4 * pix + 1e3 * bad
            better = cost < best_cost
            best_cost = np.where(better, cost, best_cost)
            bi, bj = np.where(better, ii, bi), np.where(better, jj, bj)
    cp = field.control_points[frames, bi, bj].astype(np.float64)
    shift = anchors - own[frames, bi, bj]
    return cp + shift[:, None, :], field.confidence[frames, bi, bj].astype(np.float64), \
        np.linalg.norm(shift, axis=-1)


def predict_episode(ep: Episode, backend, window: int = 24, overlap: int = 8):
    """Predict every query's world track.

    Args:
        ep: Episode (only rgb, depth, intrinsics, cam_to_world, timestamps and query_pixels are read).
        backend: anything with ``predict(FrameWindow) -> TrajectoryField`` (``make_backend``).
        window, overlap: sliding-window length and overlap in frames.
    Returns:
        tracks_world [Q,T,3] float32, confidence [Q,T] float32.
    """
    inputs = ep.inputs()
    T = ep.num_frames
    q = np.asarray(ep.query_pixels, np.int64)
    Q = len(q)
    anchors = unproject_pixels(ep.depth, ep.intrinsics, ep.cam_to_world, q)  # [Q,3]
    starts = window_starts(T, window, overlap)
    W = min(window, T)
    fields = [backend.predict(sub_window(inputs, a, a + W)) for a in starts]
    owns = [f.frame_points() for f in fields]
    params = [f.frame_parameters() for f in fields]
    K = np.asarray(ep.intrinsics, np.float64)
    c2w = np.asarray(ep.cam_to_world, np.float64)

    centres = np.array([a + (W - 1) / 2 for a in starts])
    home = np.argmin(np.abs(q[:, 0:1] - centres[None]) + 1e3 * ((q[:, 0:1] < np.array(starts)[None]) |
                                                                  (q[:, 0:1] >= np.array(starts)[None] + W)), axis=1)
    tracks = np.zeros((Q, T, 3))
    conf = np.zeros((Q, T))

    def curve_positions(k, cp):  # [n,K,3] -> [n,W,3] at window k's frames
        return evaluate(cp, params[k])

    def handoff(k_new, k_old, pos_old):
        """Curves of window k_new continuing pos_old ([n,W,3] on window k_old's frames)."""
        a_new, a_old = starts[k_new], starts[k_old]
        ov = np.arange(max(a_new, a_old), min(a_new, a_old) + W)  # absolute overlap frames
        mid = (ov[0] + ov[-1]) / 2
        n = pos_old.shape[0]
        best = np.full(n, np.inf)
        cp_best = np.repeat(pos_old[:, ov[len(ov) // 2] - a_old][:, None, :], fields[k_new].num_control_points, 1)
        cf_best = np.zeros(n)
        for g in ov:
            p = pos_old[:, g - a_old]
            r, c, z = project(p, K, c2w[g])
            H, Wd = ep.image_size
            inside = (z > 0) & (r > -0.5) & (r < H - 0.5) & (c > -0.5) & (c < Wd - 0.5)
            r, c = np.where(inside, r, 0.0), np.where(inside, c, 0.0)
            cp, cf, dist = lookup_curves(fields[k_new], np.full(n, g - a_new), r, c, p, owns[k_new])
            cost = np.where(inside, dist, np.inf) + 1e-4 * abs(g - mid)
            better = cost < best
            best = np.where(better, cost, best)
            cp_best = np.where(better[:, None, None], cp, cp_best)
            cf_best = np.where(better, cf, cf_best)
        return curve_positions(k_new, cp_best), cf_best, ov

    for k in range(len(starts)):
        sel = np.nonzero(home == k)[0]
        if sel.size == 0:
            continue
        a = starts[k]
        cp, cf, _ = lookup_curves(fields[k], q[sel, 0] - a, q[sel, 1].astype(float), q[sel, 2].astype(float),
                                  anchors[sel], owns[k])
        pos = curve_positions(k, cp)
        tracks[sel, a:a + W] = pos
        conf[sel, a:a + W] = cf[:, None]
        for direction in (+1, -1):
            k_old, pos_old = k, pos
            k_new = k + direction
            while 0 <= k_new < len(starts):
                pos_new, cf_new, ov = handoff(k_new, k_old, pos_old)
                a_new, a_old = starts[k_new], starts[k_old]
                # cross-fade over the overlap: weight of the new window grows away from the old one
                ramp = (np.arange(1, len(ov) + 1) / (len(ov) + 1))
                wgt = ramp if direction > 0 else ramp[::-1]
                blend = (1 - wgt)[None, :, None] * pos_old[:, ov - a_old] + wgt[None, :, None] * pos_new[:, ov - a_new]
                tracks[sel[:, None], ov[None]] = blend
                conf[sel[:, None], ov[None]] = (1 - wgt)[None] * conf[sel[:, None], ov[None]] + wgt[None] * cf_new[:, None]
                rest = np.setdiff1d(np.arange(a_new, a_new + W), ov)
                tracks[sel[:, None], rest[None]] = pos_new[:, rest - a_new]
                conf[sel[:, None], rest[None]] = cf_new[:, None]
                k_old, pos_old = k_new, pos_new
                k_new += direction
    return tracks.astype(np.float32), conf.astype(np.float32)
