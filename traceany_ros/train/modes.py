"""The two prediction modes the planners rely on, scored on recorded episodes: goal pairs and forecasts.

**Goal pairs** (the goal-image planners): for each query frame f of an episode, the clip is the frames up
to f (``clip`` of them, f last) and the goal is the one later frame g where the most moving queries of f
have moved ``lo``..``hi`` metres (10-40 cm) from where they were at f. The backend predicts the clip plus
the goal frame as one window; each query of f is scored at g's time. ``epe_dynamic`` is over the moving
queries inside the displacement range, ``epe_static`` over the still queries of f.

**Forecasts** (the intercept planners): for each query frame f, a window of ``window`` observed frames
that contains f and ends at a frame a with frames after it; the backend predicts it with its forecast
``horizon_s`` past a when it has one (``supports_forecast``), else its field's curves go on along their end
tangent. Each query of f is scored at every later frame within ``horizon_s`` of a; ``*_end`` is the last
of them (about ``horizon_s`` ahead).

Both use the queries' own curves as ``predict_episode`` does (``lookup_curves``: the field curve at the
query pixel, through the query's own point), so every backend is scored the same way.
"""
from __future__ import annotations

import numpy as np

from traceany_ros.field import evaluate
from traceany_ros.geometry import unproject_pixels
from traceany_ros.predict import lookup_curves, window_frames

MODES = ("goal", "forecast")


def goal_cases(ep, clip: int = 4, lo: float = 0.10, hi: float = 0.40, min_gap: int = 4, min_moving: int = 3):
    """[(clip frames, goal frame, query indices of the clip's last frame)] of an episode (see the module doc)."""
    q = np.asarray(ep.query_pixels, np.int64)
    gt = np.asarray(ep.tracks_world, np.float64)
    dyn = np.asarray(ep.dynamic, bool)
    T = ep.num_frames
    cases = []
    for f in np.unique(q[:, 0]):
        idx = np.nonzero(q[:, 0] == f)[0]
        moving = idx[dyn[idx]]
        if len(moving) < min_moving or f + min_gap > T - 1:
            continue
        disp = np.linalg.norm(gt[moving] - gt[moving, f][:, None], axis=-1)  # [n,T]
        counts = ((disp >= lo) & (disp <= hi)).sum(0)
        counts[: f + min_gap] = 0
        g = int(np.argmax(counts))
        if counts[g] < min_moving:
            continue
        frames = list(range(max(0, f - clip + 1), f + 1))
        cases.append((frames, g, idx))
    return cases


def forecast_cases(ep, window: int = 8, horizon_s: float = 0.3):
    """[(window frames, future frames, query indices)] of an episode (see the module doc)."""
    q = np.asarray(ep.query_pixels, np.int64)
    t = np.asarray(ep.timestamps, np.float64)
    T = ep.num_frames
    cases: dict[tuple, tuple[list, list]] = {}  # one window per set of frames, for all its query frames
    for f in np.unique(q[:, 0]):
        # the latest end a >= f with a whole horizon of frames after it, the window reaching back to f
        ends = [a for a in range(f, min(f + window, T)) if t[-1] - t[a] >= horizon_s - 1e-6]
        if not ends:
            continue
        a = ends[-1]
        future = [g for g in range(a + 1, T) if t[g] - t[a] <= horizon_s + 1e-6]
        if not future:
            continue
        frames = tuple(range(max(0, a - window + 1), a + 1))
        cases.setdefault(frames, (future, []))[1].append(np.nonzero(q[:, 0] == f)[0])
    return [(list(fr), fut, np.concatenate(idx)) for fr, (fut, idx) in cases.items()]


def _query_curves(ep, field, frames, idx):
    """Control points [n,K,3] of queries idx (their frames are in ``frames``) in a window's field."""
    q = np.asarray(ep.query_pixels, np.int64)[idx]
    anchors = unproject_pixels(ep.depth, ep.intrinsics, ep.cam_to_world, q)
    local = np.searchsorted(np.asarray(frames), q[:, 0])
    cp, _, _ = lookup_curves(field, local, q[:, 1].astype(np.float64), q[:, 2].astype(np.float64), anchors)
    return cp


def score_episode(ep, backend, mode: str, **options) -> dict:
    """Per-query errors (metres) of one episode in ``mode``: arrays ``dynamic``, ``static`` and the static
    hypothesis's ``base_dynamic`` (the queries' displacement), plus ``*_end`` for forecasts."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {list(MODES)}")
    inputs = ep.inputs()
    gt = np.asarray(ep.tracks_world, np.float64)
    q = np.asarray(ep.query_pixels, np.int64)
    dyn = np.asarray(ep.dynamic, bool)
    out = {k: [] for k in ("dynamic", "static", "base_dynamic", "dynamic_end", "base_dynamic_end")}
    if mode == "goal":
        lo, hi = options.get("lo", 0.10), options.get("hi", 0.40)
        for frames, g, idx in goal_cases(ep, options.get("clip", 4), lo, hi):
            field = backend.predict(window_frames(inputs, frames + [g]))
            cp = _query_curves(ep, field, frames, idx)
            pred = evaluate(cp, field.normalized_time(np.asarray([ep.timestamps[g]])))[:, 0]
            err = np.linalg.norm(pred - gt[idx, g], axis=-1)
            disp = np.linalg.norm(gt[idx, g] - gt[idx, q[idx, 0]], axis=-1)
            inrange = dyn[idx] & (disp >= lo) & (disp <= hi)
            out["dynamic"].append(err[inrange])
            out["base_dynamic"].append(disp[inrange])
            out["static"].append(err[~dyn[idx]])
    else:
        horizon = options.get("horizon_s", 0.3)
        for frames, future, idx in forecast_cases(ep, options.get("window", 8), horizon):
            win = window_frames(inputs, frames)
            field = (backend.predict(win, future_s=horizon) if getattr(backend, "supports_forecast", False)
                     else backend.predict(win))
            cp = _query_curves(ep, field, frames, idx)
            pred = evaluate(cp, field.normalized_time(np.asarray(ep.timestamps)[future]))  # [n,F,3]
            err = np.linalg.norm(pred - gt[idx][:, future], axis=-1)
            disp = np.linalg.norm(gt[idx][:, future] - gt[idx, q[idx, 0]][:, None], axis=-1)
            d = dyn[idx]
            out["dynamic"].append(err[d].reshape(-1))
            out["base_dynamic"].append(disp[d].reshape(-1))
            out["static"].append(err[~d].reshape(-1))
            out["dynamic_end"].append(err[d, -1])
            out["base_dynamic_end"].append(disp[d, -1])
    return {k: np.concatenate(v) if v else np.zeros(0) for k, v in out.items()}


def summarise(rows: list[dict]) -> dict:
    """Pool per-episode errors -> mean errors in cm, the ratio to the static hypothesis and counts."""
    pool = {k: np.concatenate([r[k] for r in rows]) for k in rows[0]} if rows else {}

    def cm(k):
        v = pool.get(k, np.zeros(0))
        return float(100 * v.mean()) if v.size else None

    out = {"epe_dynamic": cm("dynamic"), "epe_static": cm("static"), "static_hypothesis_dynamic": cm("base_dynamic"),
           "n_dynamic": int(pool.get("dynamic", np.zeros(0)).size), "n_static": int(pool.get("static", np.zeros(0)).size)}
    if out["epe_dynamic"] is not None and out["static_hypothesis_dynamic"]:
        out["dynamic_vs_static"] = out["epe_dynamic"] / out["static_hypothesis_dynamic"]
    if pool.get("dynamic_end", np.zeros(0)).size:
        out["epe_dynamic_end"] = cm("dynamic_end")
        out["static_hypothesis_dynamic_end"] = cm("base_dynamic_end")
    return out
