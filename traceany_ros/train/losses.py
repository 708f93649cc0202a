"""Training losses of the trajectory-field network (docs/method.md), on dense ground truth.

Units are the normalised camera-0 frame (``traceany_ros.model.inputs``); the logged EPEs are metres.
Every geometric term is zero on the truth; static and moving cells count equally (``balanced_mean``), and
among the static ones those hidden at some frame of the window (a mover passes in front of them) count as
much as those always seen: they are few, and a still point must stay still behind an occluder.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from traceany_ros.field import bspline_basis
from traceany_ros.geometry import project_batch
from traceany_ros.model.inputs import WindowTensors


@dataclass(frozen=True)
class LossWeights:
    curve: float = 1.0
    iterates: float = 0.5
    proposals: float = 0.3           # each pass's candidate positions where the point is seen, pairs that moved
                                     # more than 1 cm and the others counted equally (trains the features)
    correspondence: float = 0.05     # cross-entropy of the correlations at the truth's cell (levels 0 and 1)
    selection: float = 0.1           # cross-entropy of each pass's update weights at the move nearest the truth
    motion: float = 0.2
    visibility: float = 0.05
    confidence: float = 0.05
    gamma: float = 0.8               # weight of earlier refinement passes (RAFT's sequence loss)
    confident_m: float = 0.02        # a curve is "confident" when its mean error is below this
    hidden_share: float = 0.5        # share of the still class's weight given to cells (pairs) a mover hides


def charbonnier(d: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    return torch.sqrt(d * d + eps * eps) - eps


def balanced_mean(err: torch.Tensor, valid: torch.Tensor, dynamic: torch.Tensor,
                  hidden: torch.Tensor | None = None, hidden_share: float = 0.5) -> torch.Tensor:
    """Mean of err over valid static cells plus mean over valid moving cells (each class counts once).

    With ``hidden`` (a mask like ``valid``: cells or pairs a mover hides), the static class is itself a
    weighted mean of its hidden part (``hidden_share``) and its seen part, where both exist."""
    out = err.sum() * 0.0
    still = valid & ~dynamic
    if hidden is not None and (still & hidden).any() and (still & ~hidden).any():
        out = out + hidden_share * err[still & hidden].mean() + (1 - hidden_share) * err[still & ~hidden].mean()
    elif still.any():
        out = out + err[still].mean()
    moving = valid & dynamic
    if moving.any():
        out = out + err[moving].mean()
    return out


def curve_positions(res: dict) -> torch.Tensor:
    """The fitted curves at every window frame's time: [B,I,h,w,T,3] normalised."""
    s = res["norm"].s  # [B,T]
    K = res["offsets"].shape[-2]
    b = bspline_basis(s.reshape(-1).double(), K).float().reshape(s.shape[0], s.shape[1], K)
    return res["points"][..., None, :] + torch.einsum("btk,bihwkd->bihwtd", b, res["offsets"])


def losses(net, w: WindowTensors, gt: dict, lw: LossWeights) -> dict:
    res = net(w, gt["query_frames"], return_all=True)
    norm = res["norm"]
    scale = norm.scale[:, None, None, None, None]
    gtn = norm.to_norm(gt["gt"].float())  # [B,I,h,w,T,3]
    valid, dyn = gt["gt_valid"] & res["valid"], gt["gt_dyn"]
    pred = curve_positions(res)
    err = torch.linalg.norm(pred - gtn, dim=-1)  # [B,I,h,w,T] units
    obs = w.observed[:, None, None, None, :]
    hid = (~gt["gt_vis"] & obs).any(-1)  # cells hidden at some observed frame [B,I,h,w]
    out = {}
    out["curve"] = balanced_mean(charbonnier(err).mean(-1), valid, dyn, hid, lw.hidden_share)
    # per-frame estimates before the fit (fine) and each pass on the query grid
    e_pos = torch.linalg.norm(res["positions"] - gtn, dim=-1).mean(-1)
    it_loss = balanced_mean(charbonnier(e_pos), valid, dyn, hid, lw.hidden_share)
    gtc = norm.to_norm(gt["gt_coarse"].float())
    vc = gt["gt_coarse_valid"]
    dync = torch.linalg.norm(gtc - res["coarse_points"][..., None, :], dim=-1).amax(-1) * norm.scale[:, None, None, None] > 0.005
    hidc = (~gt["gt_coarse_vis"] & obs).any(-1)
    n = len(res["iterates"])
    for k, it in enumerate(res["iterates"]):
        ek = torch.linalg.norm(it - gtc, dim=-1).mean(-1)
        it_loss = it_loss + lw.gamma ** (n - 1 - k) * balanced_mean(charbonnier(ek), vc, dync, hidc, lw.hidden_share)
    out["iterates"] = it_loss
    # the candidates themselves: each level's lifted soft-argmax and the global match must land on the point
    # where it is seen, whatever weight the update gives them, so the features learn to correlate
    seen = vc[..., None] & gt["gt_coarse_vis"] & w.observed[:, None, None, None, :]
    away = torch.linalg.norm(gtc - res["coarse_points"][..., None, :], dim=-1) * norm.scale[:, None, None, None, None] > 0.01
    prop = res["proposals"][0].sum() * 0.0
    for k, p in enumerate(res["proposals"]):
        ep = charbonnier(torch.linalg.norm(p - gtc[..., None, :], dim=-1)).mean(-1)  # [B,I,h,w,T]
        prop = prop + lw.gamma ** (n - 1 - k) * balanced_mean(ep, seen, away)
    out["proposals"] = prop
    # the update's weights: the move (stay or a candidate) that lands nearest the truth is the target, in
    # every observed frame (where the point is hidden, mostly staying: a still point behind a mover stays)
    sel = prop * 0.0
    prev = res["coarse_points"][..., None, :].expand_as(gtc)
    hidden_pair = vc[..., None] & ~gt["gt_coarse_vis"] & obs
    pick = (seen | hidden_pair) & (torch.arange(gtc.shape[-2], device=gtc.device) != gt["query_frames"][:, None]
                                   ).reshape(1, -1, 1, 1, gtc.shape[-2])
    for k, (p, wts) in enumerate(zip(res["proposals"], res["weights"])):
        options = torch.cat([prev[..., None, :], p], -2)  # [B,I,h,w,T,L+2,3]
        target = torch.linalg.norm(options - gtc[..., None, :], dim=-1).argmin(-1)
        ce = -torch.log(wts.clamp_min(1e-6)).gather(-1, target[..., None])[..., 0]
        sel = sel + lw.gamma ** (n - 1 - k) * balanced_mean(ce, pick, away, hidden_pair, lw.hidden_share)
        prev = res["iterates"][k]
    out["selection"] = sel
    out["correspondence"], acc = correspondence(res, w, gtc, seen, away, net_stride(net))
    ml = res["motion_logit"]
    pos = dyn.float()
    npos = pos[valid].sum().clamp_min(1.0)
    # still cells: the hidden ones get hidden_share of the negatives' half (where there are both kinds)
    nh, ns = (valid & ~dyn & hid).float().sum(), (valid & ~dyn & ~hid).float().sum()
    if nh > 0 and ns > 0:
        wneg = torch.where(hid, 0.5 * lw.hidden_share / nh, 0.5 * (1 - lw.hidden_share) / ns)
    else:
        wneg = torch.full_like(pos, 0.5) / (nh + ns).clamp_min(1.0)
    wts = torch.where(dyn, 0.5 / npos, wneg) * valid
    out["motion"] = (F.binary_cross_entropy_with_logits(ml, pos, reduction="none") * wts).sum()
    vl = res["visibility_logit"]
    vmask = valid[..., None].expand_as(vl)
    out["visibility"] = F.binary_cross_entropy_with_logits(vl[vmask], gt["gt_vis"][vmask].float()) if vmask.any() else vl.sum() * 0
    err_m = (err * scale).mean(-1).detach()
    conf_t = (err_m < lw.confident_m).float()
    cl = res["confidence_logit"]
    out["confidence"] = F.binary_cross_entropy_with_logits(cl[valid], conf_t[valid]) if valid.any() else cl.sum() * 0
    out["total"] = sum(getattr(lw, k) * v for k, v in out.items())
    with torch.no_grad():
        em = err * scale
        st = valid & ~dyn
        out["epe_static_m"] = em[st].mean() if st.any() else torch.tensor(float("nan"))
        dm = valid & dyn
        out["epe_dynamic_m"] = em[dm].mean() if dm.any() else torch.tensor(float("nan"))
        stat = torch.linalg.norm(gtn - res["points"][..., None, :], dim=-1) * scale
        out["static_dynamic_m"] = stat[dm].mean() if dm.any() else torch.tensor(float("nan"))
        out["match_acc_moving"] = acc
    return out


def net_stride(net) -> int:
    return (net.module if hasattr(net, "module") else net).config.stride


def correspondence(res: dict, w: WindowTensors, gtc: torch.Tensor, seen: torch.Tensor, away: torch.Tensor,
                   stride: int):
    """Cross-entropy of each query cell's correlation with a frame at the cell where the truth is seen
    there (bilinear soft target over the 4 nearest cells; levels 0 and 1, moving and still pairs counted
    equally; docs/method.md), and, without gradient, the share of moving pairs whose level-1 correlation
    peaks within one cell of the truth."""
    B, I, h, wd, T, _ = gtc.shape
    N = I * h * wd
    uv, _ = project_batch(gtc.reshape(B, N, T, 3).transpose(1, 2), w.K, res["norm"].cam_to_norm)
    c0 = (uv.transpose(1, 2) - (stride - 1) / 2) / stride  # level-0 cell coordinates [B,N,T,2]
    total, acc = gtc.sum() * 0.0, torch.tensor(float("nan"))
    for lvl, (corr, temp) in enumerate(res["correlation"]):
        hl, wl = corr.shape[-2:]
        logp = (corr.reshape(B, N, T, hl * wl) * temp).log_softmax(-1)
        cl = (c0 + 0.5) / 2 ** lvl - 0.5
        base = cl.floor()
        frac = cl - base
        ce, mass = torch.zeros_like(logp[..., 0]), torch.zeros_like(logp[..., 0])
        for dx in (0, 1):
            for dy in (0, 1):
                cx, cy = base[..., 0] + dx, base[..., 1] + dy
                wgt = (frac[..., 0] if dx else 1 - frac[..., 0]) * (frac[..., 1] if dy else 1 - frac[..., 1])
                inside = (cx >= 0) & (cx < wl) & (cy >= 0) & (cy < hl)
                idx = (cy.clamp(0, hl - 1) * wl + cx.clamp(0, wl - 1)).long()
                wgt = wgt * inside
                ce = ce - wgt * logp.gather(-1, idx[..., None])[..., 0]
                mass = mass + wgt
        ok = seen & (mass.reshape(B, I, h, wd, T) > 0.5)
        ce = (ce / mass.clamp_min(1e-6)).reshape(B, I, h, wd, T)
        total = total + balanced_mean(ce, ok, away)
        if lvl == 1:
            with torch.no_grad():
                peak = logp.argmax(-1)
                err = torch.stack([peak % wl, peak // wl], -1).float() - cl
                hit = (err.abs().amax(-1) <= 1.0).reshape(B, I, h, wd, T)
                m = ok & away
                acc = hit[m].float().mean() if m.any() else acc
    return total, acc
