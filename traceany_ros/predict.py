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

from traceany_ros.episode import CONTRACT, Episode, FrameWindow, window_frames
from traceany_ros.field import TrajectoryField, evaluate, fit_trajectory
from traceany_ros.geometry import project, unproject_pixels

INPUT_KEYS = ("rgb", "depth", "intrinsics", "cam_to_world", "timestamps", "query_pixels")


class EpisodeInputError(ValueError):
    """An episode cannot be predicted on; the message names the bad key."""


def check_inputs(d: dict) -> list[str]:
    """Problems with the keys a predictor reads (dtype, shape, sizes, values); empty list = usable."""
    errs = []
    sizes: dict[str, tuple[int, str]] = {}
    for k in INPUT_KEYS:
        if k not in d:
            errs.append(f"missing key {k!r} (a predictor needs {list(INPUT_KEYS)})")
            continue
        dt, pattern = CONTRACT[k]
        a = d[k]
        if a.dtype != dt and not (k in ("intrinsics", "cam_to_world", "timestamps", "depth") and a.dtype.kind == "f"):
            errs.append(f"key {k!r}: dtype {a.dtype}, expected {dt}")
        if a.ndim != len(pattern):
            errs.append(f"key {k!r}: shape {a.shape}, expected {pattern}")
            continue
        for n, p in zip(a.shape, pattern):
            if isinstance(p, int) and n != p:
                errs.append(f"key {k!r}: shape {a.shape}, expected {pattern}")
                break
            if isinstance(p, str):
                if p in sizes and sizes[p][0] != n:
                    errs.append(f"key {k!r}: {p}={n} disagrees with key {sizes[p][1]!r} ({p}={sizes[p][0]})")
                    break
                sizes.setdefault(p, (n, k))
    if errs:
        return errs
    T, H, W = d["depth"].shape
    if T < 1:
        errs.append("key 'rgb': no frames")
    ts = d["timestamps"].astype(np.float64)
    if not np.all(np.isfinite(ts)) or (T > 1 and not np.all(np.diff(ts) > 0)):
        errs.append("key 'timestamps': must be finite and strictly increasing")
    if not np.all(np.isfinite(d["depth"])) or np.any(d["depth"] < 0):
        errs.append("key 'depth': must be finite and >= 0 (0 = invalid)")
    if not np.all(np.isfinite(d["cam_to_world"])) or not np.all(np.isfinite(d["intrinsics"])):
        errs.append("key 'cam_to_world' or 'intrinsics': contains NaN or inf")
    qp = d["query_pixels"].astype(np.int64)
    inside = (qp[:, 0] >= 0) & (qp[:, 0] < T) & (qp[:, 1] >= 0) & (qp[:, 1] < H) & (qp[:, 2] >= 0) & (qp[:, 2] < W)
    if not inside.all():
        errs.append(f"key 'query_pixels': {int((~inside).sum())} queries outside (frame<{T}, row<{H}, col<{W})")
    elif np.any(d["depth"][qp[:, 0], qp[:, 1], qp[:, 2]] <= 0):
        errs.append("key 'query_pixels': some queries have invalid depth (0) at their own frame")
    return errs


def load_inputs(path) -> Episode:
    """Read the predictor's keys of an episode file, refusing a malformed one (EpisodeInputError names the key).

    Ground-truth keys are not needed (a recording without ground truth works); absent ones are zero-filled.
    """
    import zipfile
    from pathlib import Path

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"episode file {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as z:
            d = {k: z[k] for k in z.files if k in INPUT_KEYS}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
        raise EpisodeInputError(f"{path} is not a readable .npz episode ({e})") from e
    errs = check_inputs(d)
    if errs:
        raise EpisodeInputError(f"{path} is malformed: " + "; ".join(errs))
    T = d["depth"].shape[0]
    Q = d["query_pixels"].shape[0]
    return Episode(rgb=d["rgb"], depth=d["depth"].astype(np.float32), intrinsics=d["intrinsics"].astype(np.float32),
                   cam_to_world=d["cam_to_world"].astype(np.float32), timestamps=d["timestamps"].astype(np.float64),
                   query_pixels=d["query_pixels"], tracks_world=np.zeros((Q, T, 3), np.float32),
                   visible=np.ones((Q, T), bool), dynamic=np.zeros(Q, bool), meta={})


def sub_window(window: FrameWindow, start: int, stop: int) -> FrameWindow:
    """Frames [start, stop) of a window."""
    return window_frames(window, slice(start, stop))


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

    times = np.asarray(ep.timestamps, np.float64)

    def curve_positions(k, cp):  # [n,K,3] -> [n,W,3] at window k's frames
        return evaluate(cp, params[k])

    def handoff(k_new, k_old, cp_old):
        """Curves (in window k_new's time span) continuing the curves cp_old of window k_old.

        For each query, the overlap frame whose lookup lands on the same surface (smallest 3D distance)
        is used; a query that is outside the image in every overlap frame keeps the old curve,
        extrapolated along its end tangent and refitted to the new span.
        """
        a_new, a_old = starts[k_new], starts[k_old]
        ov = np.arange(max(a_new, a_old), min(a_new, a_old) + W)  # absolute overlap frames
        mid = (ov[0] + ov[-1]) / 2
        pos_old = curve_positions(k_old, cp_old)
        n = pos_old.shape[0]
        span = fields[k_old].time_span
        s_in_old = (times[a_new:a_new + W] - span[0]) / max(span[1] - span[0], 1e-9)
        cp_best = fit_trajectory(params[k_new], evaluate(cp_old, s_in_old), fields[k_new].num_control_points)
        best = np.full(n, np.inf)
        cf_best = np.zeros(n)
        H, Wd = ep.image_size
        for g in ov:
            p = pos_old[:, g - a_old]
            r, c, z = project(p, K, c2w[g])
            inside = (z > 0) & (r > -0.5) & (r < H - 0.5) & (c > -0.5) & (c < Wd - 0.5)
            r, c = np.where(inside, r, 0.0), np.where(inside, c, 0.0)
            cp, cf, dist = lookup_curves(fields[k_new], np.full(n, g - a_new), r, c, p, owns[k_new])
            cost = np.where(inside, dist, np.inf) + 1e-4 * abs(g - mid)
            better = cost < best
            best = np.where(better, cost, best)
            cp_best = np.where(better[:, None, None], cp, cp_best)
            cf_best = np.where(better, cf, cf_best)
        return cp_best, cf_best, ov

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
            k_old, cp_old = k, cp
            k_new = k + direction
            while 0 <= k_new < len(starts):
                cp_new, cf_new, ov = handoff(k_new, k_old, cp_old)
                pos_old, pos_new = curve_positions(k_old, cp_old), curve_positions(k_new, cp_new)
                a_new, a_old = starts[k_new], starts[k_old]
                # cross-fade over the overlap: the new window's weight grows from 0 (old side, and never
                # before the query's own frame, which stays exact) to 1 (new side)
                own = q[sel, 0][:, None].astype(np.float64)
                if direction > 0:
                    lo = np.maximum(ov[0] - 1, own)
                    wgt = np.clip((ov[None] - lo) / (ov[-1] + 1 - lo), 0, 1)
                else:
                    hi = np.minimum(ov[-1] + 1, own)
                    wgt = np.clip((hi - ov[None]) / (hi - (ov[0] - 1)), 0, 1)
                blend = (1 - wgt)[..., None] * pos_old[:, ov - a_old] + wgt[..., None] * pos_new[:, ov - a_new]
                tracks[sel[:, None], ov[None]] = blend
                conf[sel[:, None], ov[None]] = (1 - wgt) * conf[sel[:, None], ov[None]] + wgt * cf_new[:, None]
                rest = np.setdiff1d(np.arange(a_new, a_new + W), ov)
                tracks[sel[:, None], rest[None]] = pos_new[:, rest - a_new]
                conf[sel[:, None], rest[None]] = cf_new[:, None]
                k_old, cp_old = k_new, cp_new
                k_new += direction
    return tracks.astype(np.float32), conf.astype(np.float32)
