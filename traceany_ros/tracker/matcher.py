"""Learned coarse correspondences between two RGB-D frames (a tiny LoFTR-style matcher).

OpenCV's DIS flow is coarse-to-fine: a thin, plain robot link that moves 20-60 px between frames
vanishes at the coarse scales and DIS reports almost no motion there. The matcher finds such
matches globally at 1/8 resolution and hands them to DIS as its initial flow, which refines them
to sub-pixel (:func:`traceany_ros.tracker.flow.learned_flow`).

Network (``Matcher``), shapes for one pair of H x W frames (H, W divisible by 8):

    prepare(rgb, depth)          [B,4,H,W]      RGB in [-0.5, 0.5] + normalised log depth
    CNN (3 stride-2 stages)      [B,dim,H/8,W/8]
    + 2D sine position code, then ``layers`` x (self-attention in each frame, cross-attention
      to the other frame, shared weights)                          -> tokens [B,N,dim], N = HW/64
    scores S[i, j] = <f0_i, f1_j> * temperature  (unit-norm features)   [B,N,N]
    match probability: dual softmax P = softmax_j(S) * softmax_i(S)

The network is symmetric in its two frames (the same layers process both), so S(1->0) is S(0->1)
transposed: :func:`match_pair` runs once per pair and returns both directions.

Trained on the simulator's dense ground truth (``traceany train-matcher``,
:mod:`traceany_ros.tracker.train_matcher`); the shipped weights are ``checkpoints/matcher.pt``.
Checkpoints use the project's one format (:mod:`traceany_ros.checkpoint_file`) with
``kind = "matcher"``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from traceany_ros.checkpoint_file import CheckpointError, read_checkpoint, resolve_device, save_checkpoint, shipped_file

STRIDE = 8
DEFAULT_NAME = "matcher.pt"
KIND = "matcher"
LOG_DEPTH_RANGE = (0.2, 4.0)  # metres mapped to [-0.5, 0.5]; invalid depth reads as far


@dataclass(frozen=True)
class MatcherConfig:
    """dim: feature width; layers: self+cross attention blocks; heads: attention heads;
    input_scale: frames are shrunk by this factor before matching (2: a 256x192 pair is matched at
    128x96, cells of 16 px, about 5x faster; DIS refines the start either way)."""

    dim: int = 96
    layers: int = 2
    heads: int = 4
    input_scale: int = 1

    def __post_init__(self):
        if self.input_scale not in (1, 2, 4):
            raise ValueError(f"input_scale must be 1, 2 or 4, got {self.input_scale}")
        if self.dim % 4 or self.dim % self.heads:
            raise ValueError(f"dim must be divisible by 4 and by heads, got dim={self.dim} heads={self.heads}")


def prepare(rgb, depth) -> torch.Tensor:
    """rgb [B,H,W,3] uint8, depth [B,H,W] metres (0 = invalid) -> network input [B,4,H,W] float32."""
    x = torch.as_tensor(np.asarray(rgb)).float().permute(0, 3, 1, 2) / 255.0 - 0.5
    d = torch.as_tensor(np.asarray(depth, dtype=np.float32))
    lo, hi = math.log(LOG_DEPTH_RANGE[0]), math.log(LOG_DEPTH_RANGE[1])
    ld = torch.where(d > 0, torch.log(d.clamp(min=1e-3)), torch.full_like(d, hi))
    return torch.cat([x, ((ld - lo) / (hi - lo) - 0.5)[:, None]], 1)


class _Residual(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.a = nn.Conv2d(c, c, 3, padding=1)
        self.b = nn.Conv2d(c, c, 3, padding=1)
        self.norm = nn.GroupNorm(8, c)

    def forward(self, x):
        return F.relu(x + self.norm(self.b(F.relu(self.a(x)))))


class Matcher(nn.Module):
    """Symmetric two-frame matcher; see the module docstring for shapes."""

    def __init__(self, config: MatcherConfig = MatcherConfig()):
        super().__init__()
        self.config = config
        d = config.dim
        self.cnn = nn.Sequential(nn.Conv2d(4, 32, 5, 2, 2), nn.ReLU(), _Residual(32),
                                 nn.Conv2d(32, 64, 3, 2, 1), nn.ReLU(), _Residual(64),
                                 nn.Conv2d(64, d, 3, 2, 1), nn.ReLU(), _Residual(d), _Residual(d))
        self.attn = nn.ModuleList([nn.TransformerEncoderLayer(d, config.heads, 2 * d, 0.0, batch_first=True,
                                                              norm_first=True) for _ in range(config.layers)])
        self.cross = nn.ModuleList([nn.MultiheadAttention(d, config.heads, batch_first=True)
                                    for _ in range(config.layers)])
        self.cross_norm = nn.ModuleList([nn.LayerNorm(d) for _ in range(config.layers)])
        self.out = nn.Linear(d, d)
        self.temperature = nn.Parameter(torch.tensor(10.0))

    def _position(self, h: int, w: int, device) -> torch.Tensor:
        q = self.config.dim // 4
        freq = torch.exp(torch.arange(q, device=device) * (-math.log(100.0) / q))
        y, x = torch.meshgrid(torch.arange(h, device=device).float(), torch.arange(w, device=device).float(),
                              indexing="ij")
        pe = torch.cat([torch.sin(x[..., None] * freq), torch.cos(x[..., None] * freq),
                        torch.sin(y[..., None] * freq), torch.cos(y[..., None] * freq)], -1)
        return pe.reshape(h * w, self.config.dim)

    def encode(self, x: torch.Tensor):
        """Frames [B,4,H,W] -> tokens [B,N,dim] (CNN + position code) and the token grid (H/8, W/8)."""
        if x.ndim != 4 or x.shape[1] != 4:
            raise ValueError(f"matcher input must be [B,4,H,W], got {tuple(x.shape)}")
        if x.shape[2] % STRIDE or x.shape[3] % STRIDE:
            raise ValueError(f"matcher image size must be divisible by {STRIDE}, got {tuple(x.shape[2:])}")
        if not self.training:  # inference: channels-last convolutions are ~1.5x faster on CPU (same result)
            x = x.contiguous(memory_format=torch.channels_last)
        f = self.cnn(x)
        h, w = f.shape[2:]
        return f.flatten(2).transpose(1, 2) + self._position(h, w, f.device), (h, w)

    def attend(self, t0: torch.Tensor, t1: torch.Tensor):
        """Tokens of paired frames [B,N,dim] each -> unit match features f0, f1 [B,N,dim]."""
        n = t0.shape[0]
        f = torch.cat([t0, t1], 0)
        for self_attn, cross, norm in zip(self.attn, self.cross, self.cross_norm):
            f = self_attn(f)
            f0, f1 = f[:n], f[n:]
            n0, n1 = norm(f0), norm(f1)
            f = torch.cat([f0 + cross(n0, n1, n1, need_weights=False)[0],
                           f1 + cross(n1, n0, n0, need_weights=False)[0]], 0)
        f = F.normalize(self.out(f), dim=-1)
        return f[:n], f[n:]

    def features(self, a: torch.Tensor, b: torch.Tensor):
        """a, b [B,4,H,W] -> unit features f0, f1 [B,N,dim] and the token grid (H/8, W/8)."""
        if a.shape != b.shape:
            raise ValueError(f"matcher inputs must be two [B,4,H,W] tensors of one shape, got {tuple(a.shape)} "
                             f"and {tuple(b.shape)}")
        tokens, grid = self.encode(torch.cat([a, b], 0))
        f0, f1 = self.attend(tokens[:a.shape[0]], tokens[a.shape[0]:])
        return f0, f1, grid

    def scores(self, f0: torch.Tensor, f1: torch.Tensor) -> torch.Tensor:
        """Match scores [B,N0,N1]."""
        return torch.einsum("bnd,bmd->bnm", f0, f1) * self.temperature


def shrink(rgb: np.ndarray, depth: np.ndarray, scale: int):
    """One frame at 1/scale size (rounded down): rgb area-averaged, depth nearest (no mixed depths at edges)."""
    import cv2

    if scale == 1:
        return np.asarray(rgb), np.asarray(depth, np.float32)
    h, w = np.shape(depth)
    size = (w // scale, h // scale)
    return (cv2.resize(np.ascontiguousarray(rgb), size, interpolation=cv2.INTER_AREA),
            np.asarray(depth, np.float32)[scale // 2::scale, scale // 2::scale][:size[1], :size[0]])


def _padded_size(size: tuple[int, int], scale: int) -> tuple[int, int]:
    """Full-resolution size padded up to a multiple of STRIDE * scale."""
    m = STRIDE * scale
    return (-(-size[0] // m) * m, -(-size[1] // m) * m)


def _pad(rgb: np.ndarray, depth: np.ndarray, padded: tuple[int, int], scale: int):
    """Pad a shrunk frame at the bottom/right to the shrunk padded size (edge colours, invalid depth)."""
    h, w = padded[0] // scale, padded[1] // scale
    dh, dw = h - depth.shape[0], w - depth.shape[1]
    if dh == 0 and dw == 0:
        return rgb, depth
    return (np.pad(rgb, ((0, dh), (0, dw), (0, 0)), mode="edge"),
            np.pad(depth, ((0, dh), (0, dw)), mode="constant"))


def _flow_from_scores(scores: torch.Tensor, grid: tuple[int, int], size: tuple[int, int], scale: int = 1):
    """Scores [B,N0,N1] of B frame pairs -> full-res flows [B,H,W,2] (dx, dy px) and confidences [B,H,W]
    (dual softmax max), float32.

    The matched cell is the best one; its position is refined to sub-cell by the softmax-weighted
    mean over the 3x3 cells around it. (All pairs at once: per pair the same arithmetic.)
    """
    import cv2

    h, w = grid
    B = scores.shape[0]
    row = torch.softmax(scores, 2)
    conf, best = (row * torch.softmax(scores, 1)).max(2)  # [B,N0]
    by, bx = best // w, best % w
    prob = row.reshape(B, -1, h, w)
    bi = torch.arange(B, device=scores.device)[:, None]
    idx = torch.arange(h * w, device=scores.device)[None]
    sx = torch.zeros(B, h * w, device=scores.device)
    sy = torch.zeros_like(sx)
    sp = torch.zeros_like(sx)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            yy, xx = (by + dy).clamp(0, h - 1), (bx + dx).clamp(0, w - 1)
            p = prob[bi, idx, yy, xx]
            sx += p * xx
            sy += p * yy
            sp += p
    gy, gx = torch.meshgrid(torch.arange(h, device=scores.device).float(),
                            torch.arange(w, device=scores.device).float(), indexing="ij")
    fx = ((sx / sp).reshape(B, h, w) - gx) * STRIDE * scale
    fy = ((sy / sp).reshape(B, h, w) - gy) * STRIDE * scale
    H, W = size
    # cell centres sit at STRIDE * i + STRIDE/2 - 0.5 in pixel coordinates: resize's half-pixel alignment
    # (one channel at a time: OpenCV's multi-channel resize rounds differently in the last bit)
    grids = torch.stack([fx, fy, conf.reshape(B, h, w)], 1).cpu().numpy().astype(np.float32)  # [B,3,h,w]
    flows = np.empty((B, H, W, 2), np.float32)
    confs = np.empty((B, H, W), np.float32)
    for b in range(B):
        flows[b, ..., 0] = cv2.resize(grids[b, 0], (W, H), interpolation=cv2.INTER_LINEAR)
        flows[b, ..., 1] = cv2.resize(grids[b, 1], (W, H), interpolation=cv2.INTER_LINEAR)
        cv2.resize(grids[b, 2], (W, H), dst=confs[b], interpolation=cv2.INTER_LINEAR)
    return flows, confs


def match_pair(model: Matcher, rgb0, depth0, rgb1, depth1):
    """Coarse flows both ways between two frames (rgb [H,W,3] uint8, depth [H,W] m).

    Returns flow01, flow10 [H,W,2] float32 (dx = col, dy = row, px) and their confidences
    conf01, conf10 [H,W] float32 in [0, 1].
    """
    if np.shape(rgb0) != np.shape(rgb1) or np.shape(depth0) != np.shape(depth1) or \
            np.shape(rgb0)[:2] != np.shape(depth0):
        raise ValueError(f"match_pair needs two RGB-D frames of one size, got rgb {np.shape(rgb0)}, "
                         f"{np.shape(rgb1)} and depth {np.shape(depth0)}, {np.shape(depth1)}")
    out = _match_clip(model, np.stack([rgb0, rgb1]), np.stack([depth0, depth1]))
    (flow01, conf01), (flow10, conf10) = out[0, 1], out[1, 0]
    return flow01, flow10, conf01, conf10


def match_window(model: Matcher, rgb, depth, batch: int = 8) -> dict:
    """Coarse flows both ways between consecutive frames of a clip (rgb [T,H,W,3] uint8, depth [T,H,W] m).

    Each frame goes through the CNN once and the pairs' attention runs in batches, so this is
    cheaper than :func:`match_pair` per pair. Returns {(t, t+1): flow, (t+1, t): flow} of [H,W,2] float32.
    """
    return {key: flow for key, (flow, _) in _match_clip(model, rgb, depth, batch).items()}


@torch.no_grad()
def _match_clip(model: Matcher, rgb, depth, batch: int = 8) -> dict:
    """{(t, t+1) and (t+1, t): (flow [H,W,2], confidence [H,W])} for consecutive frames of a clip."""
    rgb, depth = np.asarray(rgb), np.asarray(depth)
    T = len(rgb)
    if rgb.shape[:3] != depth.shape or rgb.ndim != 4:
        raise ValueError(f"match_window needs rgb [T,H,W,3] and depth [T,H,W] of one size, got {rgb.shape} "
                         f"and {depth.shape}")
    k = model.config.input_scale
    H, W = depth.shape[1:]
    if T < 2:
        return {}
    padded = _padded_size((H, W), k)
    dev = next(model.parameters()).device
    small = [_pad(*shrink(r, d, k), padded, k) for r, d in zip(rgb, depth)]
    tokens, grid = model.encode(prepare(np.stack([x[0] for x in small]), np.stack([x[1] for x in small])).to(dev))
    out = {}
    for start in range(0, T - 1, batch):
        idx = torch.arange(start, min(start + batch, T - 1), device=dev)
        f0, f1 = model.attend(tokens[idx], tokens[idx + 1])
        s = model.scores(f0, f1)  # [b,N,N]; the reverse direction's scores are its transpose
        flows, confs = _flow_from_scores(torch.cat([s, s.transpose(1, 2)]), grid, padded, k)
        for j, t in enumerate(idx.tolist()):
            for key, i in (((t, t + 1), j), ((t + 1, t), len(idx) + j)):
                out[key] = (flows[i, :H, :W], confs[i, :H, :W])
    return out


# ----------------------------------------------------------------------------- checkpoints

def default_matcher_path() -> Path:
    """The shipped matcher weights: ``checkpoints/matcher.pt`` in the repository (or installed package)."""
    return shipped_file(DEFAULT_NAME, "train one with `traceany train-matcher --data DIR --out runs/NAME` and pass "
                                      "its path")


def save_matcher(path, model: Matcher, *, data: dict | None = None, train: dict | None = None,
                 extra: dict | None = None) -> Path:
    """Write a matcher checkpoint atomically in the project's checkpoint format (``kind = "matcher"``)."""
    return save_checkpoint(path, model, data=data, train=train, extra={"kind": KIND, **(extra or {})})


def load_matcher(path=None, device: str = "cpu") -> tuple[Matcher, dict]:
    """Matcher of a checkpoint (default: the shipped one) in eval mode -> (model, checkpoint dict without weights).

    Raises CheckpointError naming what is wrong for a corrupt, foreign or mismatched file.
    """
    path = Path(path) if path else default_matcher_path()
    ck = read_checkpoint(path)
    if ck.get("kind") != KIND:
        raise CheckpointError(f"{path} is a traceany checkpoint but not a matcher (kind={ck.get('kind')!r}); "
                              f"pass a file written by `traceany train-matcher`")
    try:
        model = Matcher(MatcherConfig(**ck["config"]))
        model.load_state_dict(ck["state_dict"], strict=True)
    except (TypeError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path}: matcher weights do not match its config ({str(e).splitlines()[0][:300]}); "
                              f"the checkpoint is corrupt or from another version") from e
    meta = {k: v for k, v in ck.items() if k not in ("state_dict", "optimizer")}
    meta["path"] = str(path)
    return model.to(resolve_device(device)).eval(), meta


@lru_cache(maxsize=4)
def cached_matcher(path: str = "") -> Matcher:
    """The matcher of ``path`` ("" = shipped) loaded once per process (CPU, eval mode)."""
    return load_matcher(path or None)[0]
