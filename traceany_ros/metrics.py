"""Metrics of the episode contract (``docs/episode-format.md``; ``docs/method.md``, section 7), per episode
and aggregated.

All errors are Euclidean distances in metres between predicted and ground-truth world
positions over every query q and frame t:

    epe              mean error over all (q, t)
    epe_static       ... over queries with dynamic == False
    epe_dynamic      ... over queries with dynamic == True
    epe_visible      ... over (q, t) with visible == True
    epe_occluded     ... over (q, t) with visible == False
    delta_1cm/2cm/5cm  fraction of (q, t) with error below 1 / 2 / 5 cm
    static_jitter    mean distance of static queries' predictions from their own mean over time

A metric over an empty split is None. ``n_*`` count the (q, t) pairs of each split, and
``aggregate`` weights each metric by them (so it equals pooling all episodes' pairs).
"""
from __future__ import annotations

import numpy as np

METRICS = ("epe", "epe_static", "epe_dynamic", "epe_visible", "epe_occluded",
           "delta_1cm", "delta_2cm", "delta_5cm", "static_jitter")
# which count weights each metric in ``aggregate``
_WEIGHT = {"epe": "n_pairs", "epe_static": "n_static", "epe_dynamic": "n_dynamic", "epe_visible": "n_visible",
           "epe_occluded": "n_occluded", "delta_1cm": "n_pairs", "delta_2cm": "n_pairs", "delta_5cm": "n_pairs",
           "static_jitter": "n_static"}
COUNTS = ("n_queries", "n_pairs", "n_static", "n_dynamic", "n_visible", "n_occluded")


def _mean(x: np.ndarray):
    return float(x.mean()) if x.size else None


def evaluate_predictions(ep, tracks_world: np.ndarray, confidence: np.ndarray | None = None) -> dict:
    """Every contract metric for one episode.

    ep: ``Episode`` (uses tracks_world [Q,T,3], visible [Q,T], dynamic [Q]);
    tracks_world: predicted [Q,T,3]; confidence: optional [Q,T] (adds ``epe_conf_weighted``).
    """
    gt = np.asarray(ep.tracks_world, dtype=np.float64)
    pred = np.asarray(tracks_world, dtype=np.float64)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction tracks_world has shape {pred.shape} but the episode needs {gt.shape} [Q,T,3]; "
                         "predict the episode's own query_pixels at every frame")
    if not np.all(np.isfinite(pred)):
        raise ValueError(f"prediction tracks_world has {int((~np.isfinite(pred)).sum())} NaN/inf values; "
                         "predict a finite position for every query and frame")
    err = np.linalg.norm(pred - gt, axis=-1)                      # [Q,T]
    vis = np.asarray(ep.visible, dtype=bool)
    dyn = np.asarray(ep.dynamic, dtype=bool)
    static_pred = pred[~dyn]                                      # [Qs,T,3]
    jitter = np.linalg.norm(static_pred - static_pred.mean(axis=1, keepdims=True), axis=-1)
    out = {
        "epe": _mean(err),
        "epe_static": _mean(err[~dyn]),
        "epe_dynamic": _mean(err[dyn]),
        "epe_visible": _mean(err[vis]),
        "epe_occluded": _mean(err[~vis]),
        "delta_1cm": _mean(err < 0.01),
        "delta_2cm": _mean(err < 0.02),
        "delta_5cm": _mean(err < 0.05),
        "static_jitter": _mean(jitter),
        "n_queries": int(gt.shape[0]),
        "n_pairs": int(err.size),
        "n_static": int(err[~dyn].size),
        "n_dynamic": int(err[dyn].size),
        "n_visible": int(vis.sum()),
        "n_occluded": int((~vis).sum()),
    }
    if confidence is not None:
        conf = np.asarray(confidence, dtype=np.float64)
        if conf.shape != err.shape:
            raise ValueError(f"confidence has shape {conf.shape}, expected {err.shape} [Q,T]")
        w = np.clip(conf, 0, None)
        out["epe_conf_weighted"] = float((w * err).sum() / w.sum()) if w.sum() > 0 else None
    return out


def aggregate(results: list[dict]) -> dict:
    """Pool per-episode results: each metric weighted by its split's (q, t) count; counts summed."""
    out: dict = {"episodes": len(results)}
    for m in METRICS:
        wkey = _WEIGHT[m]
        num = den = 0.0
        for r in results:
            if r.get(m) is not None and r.get(wkey, 0) > 0:
                num += r[m] * r[wkey]
                den += r[wkey]
        out[m] = num / den if den > 0 else None
    for c in COUNTS:
        out[c] = int(sum(r.get(c, 0) for r in results))
    vals = [r["epe_conf_weighted"] for r in results if r.get("epe_conf_weighted") is not None]
    if vals:
        out["epe_conf_weighted"] = float(np.mean(vals))
    return out


def format_table(rows: dict[str, dict]) -> str:
    """Readable table: one row per method, metrics in cm (epe, jitter) and % (delta)."""
    cols = ["epe", "epe_static", "epe_dynamic", "epe_visible", "epe_occluded", "static_jitter",
            "delta_1cm", "delta_2cm", "delta_5cm"]
    head = ["method", "episodes"] + [c.replace("epe_", "") if c != "epe" else "epe" for c in cols]
    lines = ["  ".join(f"{h:>12}" for h in head),
             "  ".join(f"{'':>12}" for _ in range(2)) + "  " + "  ".join(
                 f"{'[cm]' if not c.startswith('delta') else '[%]':>12}" for c in cols)]
    for name, r in rows.items():
        cells = [f"{name:>12}", f"{r.get('episodes', 1):>12}"]
        for c in cols:
            v = r.get(c)
            cells.append(f"{'-':>12}" if v is None else f"{v * 100:>12.3f}")
        lines.append("  ".join(cells))
    return "\n".join(lines)
