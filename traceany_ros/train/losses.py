"""Training losses of the trajectory field (docs/method.md, section 5), on sparse ground-truth queries.

All functions take torch tensors; N queries, T frames, K control points:

    pred [N,T,3]   predicted positions of each query at every frame time
    gt   [N,T,3]   ground truth (same units: the normalised camera-0 frame)
    conf [N]       confidence >= 1 (1 + exp(raw))
    cp   [N,K,3]   the queries' control points

Every geometric loss is exactly zero on ground truth (with confidence 1) and positive off it;
the motion-gate cross-entropy tends to zero as its logits saturate to the right side.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class LossConfig:
    """Loss weights and pair-selection thresholds (metres, before normalisation).

    alpha: weight of the -log(confidence) term of the trajectory loss (paper: 0.2).
    motion_pos_weight: weight of the moving class in the motion-gate cross-entropy.
    rigid_max_dist / rigid_tol: two dynamic points form a rigid pair when their mean distance is below
        ``rigid_max_dist`` and its standard deviation over the window below ``rigid_tol``.
    num_pairs: pairs sampled per window for the rigidity and correspondence losses.
    """

    trajectory: float = 1.0
    alpha: float = 0.2
    static: float = 0.5
    rigidity: float = 0.5
    correspondence: float = 0.5
    timestamp: float = 0.05
    motion: float = 0.5
    motion_pos_weight: float = 1.0
    rigid_max_dist: float = 0.15
    rigid_tol: float = 0.002
    num_pairs: int = 1024


def trajectory_loss(pred: torch.Tensor, gt: torch.Tensor, conf: torch.Tensor, alpha: float = 0.2,
                    weight: torch.Tensor | None = None) -> torch.Tensor:
    """All-pairs trajectory loss: mean over (query, frame) of ``c * |pred - gt| - alpha * log c``.

    pred, gt [N,T,3]; conf [N] (or [N,T]) >= 1; weight optional [N,T] (e.g. 0 where gt is undefined).
    """
    err = torch.linalg.norm(pred - gt, dim=-1)  # [N,T]
    c = conf if conf.dim() == 2 else conf[:, None].expand_as(err)
    term = c * err - alpha * torch.log(c)
    if weight is None:
        return term.mean()
    return (term * weight).sum() / weight.sum().clamp_min(1e-9)


def static_loss(cp: torch.Tensor, is_static: torch.Tensor) -> torch.Tensor:
    """Control points of static points should not vary: mean |P_k - mean_k P| over static queries.

    cp [N,K,3], is_static [N] bool.
    """
    if not bool(is_static.any()):
        return cp.sum() * 0.0
    p = cp[is_static]
    return torch.linalg.norm(p - p.mean(1, keepdim=True), dim=-1).mean()


def pair_distance_loss(pred: torch.Tensor, gt: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
    """Mean over pairs (a, b) and frames of | |pred_a - pred_b| - |gt_a - gt_b| |.

    pred, gt [N,T,3]; pairs [P,2] long. Used by the rigidity loss (pairs on one rigid part keep
    their distance) and the correspondence loss (pixels of different frames on the same point
    must predict the same curve: their gt distance is ~0).
    """
    if pairs.numel() == 0:
        return pred.sum() * 0.0
    a, b = pairs[:, 0], pairs[:, 1]
    dp = torch.linalg.norm(pred[a] - pred[b] + 1e-12, dim=-1)
    dg = torch.linalg.norm(gt[a] - gt[b], dim=-1)
    return (dp - dg).abs().mean()


def rigidity_loss(pred, gt, pairs):
    """Distances between points of one rigid part are preserved (see :func:`pair_distance_loss`)."""
    return pair_distance_loss(pred, gt, pairs)


def correspondence_loss(pred, gt, pairs):
    """Queries of different frames on the same surface point predict the same curve."""
    return pair_distance_loss(pred, gt, pairs)


def timestamp_loss(pred_time: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """L1 between the predicted and true spline parameter of each frame ([B,T] or [T])."""
    return (pred_time - s).abs().mean()


def motion_loss(logit: torch.Tensor, dynamic: torch.Tensor, pos_weight: float = 1.0) -> torch.Tensor:
    """Binary cross-entropy of the motion gate against the ground-truth dynamic flags (logit [N], dynamic [N]).

    ``pos_weight`` > 1 makes a missed moving point cost more than a static point called moving (a
    closed gate freezes a moving point; an open one only lets the prior's noise through).
    Not exactly zero on ground truth (a finite logit); it tends to zero as the logits saturate.
    """
    if logit.numel() == 0:
        return logit.sum() * 0.0
    pw = None if pos_weight == 1.0 else torch.tensor(pos_weight, dtype=logit.dtype, device=logit.device)
    return torch.nn.functional.binary_cross_entropy_with_logits(logit, dynamic.to(logit.dtype), pos_weight=pw)


def rigid_pairs(gt: np.ndarray, dynamic: np.ndarray, qid: np.ndarray, rng: np.random.Generator,
                num_pairs: int, max_dist: float, tol: float) -> np.ndarray:
    """Random pairs of dynamic queries (different points) whose gt distance stays constant.

    gt [N,T,3] metres, dynamic [N] bool, qid [N] point ids -> pairs [P,2] int64.
    """
    idx = np.nonzero(dynamic)[0]
    if idx.size < 2:
        return np.zeros((0, 2), np.int64)
    a = rng.choice(idx, 4 * num_pairs)
    b = rng.choice(idx, 4 * num_pairs)
    d = np.linalg.norm(gt[a] - gt[b], axis=-1)  # [P,T]
    keep = (qid[a] != qid[b]) & (d.mean(1) < max_dist) & (d.std(1) < tol)
    return np.stack([a[keep], b[keep]], 1)[:num_pairs].astype(np.int64)


def correspondence_pairs(qid: np.ndarray, frame: np.ndarray, rng: np.random.Generator, num_pairs: int) -> np.ndarray:
    """Pairs of queries with the same point id seen from different frames -> [P,2] int64."""
    order = np.argsort(qid, kind="stable")
    sq = qid[order]
    starts = np.r_[0, np.nonzero(np.diff(sq))[0] + 1]
    counts = np.diff(np.r_[starts, len(sq)])
    groups = starts[counts > 1]
    if groups.size == 0:
        return np.zeros((0, 2), np.int64)
    g = rng.choice(groups.size, num_pairs)
    st, cnt = starts[counts > 1][g], counts[counts > 1][g]
    i = st + (rng.random(num_pairs) * cnt).astype(np.int64)
    j = st + (rng.random(num_pairs) * cnt).astype(np.int64)
    a, b = order[i], order[j]
    keep = frame[a] != frame[b]
    return np.stack([a[keep], b[keep]], 1).astype(np.int64)
