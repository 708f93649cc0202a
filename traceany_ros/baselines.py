"""Reference baselines of the contract: ``static`` and ``oracle`` predictions for an ``Episode``.

    static  every query stays at its query-frame unprojection (depth + intrinsics + pose)
    oracle  the ground truth itself (the metrics' zero point)

Each returns (tracks_world [Q,T,3] float32, confidence [Q,T] float32 or None).
"""
from __future__ import annotations

import numpy as np


def static_prediction(ep):
    """[Q,T,3]: the query pixel's unprojection at its own frame, repeated over time (reads no ground truth)."""
    pts = ep.query_points_world()                                # [Q,3]
    T = ep.num_frames
    return np.repeat(pts[:, None], T, axis=1).astype(np.float32), np.ones((len(pts), T), np.float32)


def oracle_prediction(ep):
    """[Q,T,3]: the ground-truth tracks."""
    return np.asarray(ep.tracks_world, dtype=np.float32).copy(), np.ones(ep.visible.shape, np.float32)


BASELINES = {"static": static_prediction, "oracle": oracle_prediction}
