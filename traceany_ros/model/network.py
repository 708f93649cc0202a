"""The trajectory-field network (a small Fast3R / Trace Anything style model).

    image [B,T,C,H,W] --patch embed (per frame)--> tokens [B,T,h*w,D]
      + 2-D sin/cos position + time embedding (sin/cos of each frame's spline parameter)
      --encoder: per-frame self-attention--> --decoder: global attention over all T*h*w tokens-->
      --dense head: tokens pixel-shuffled to stride ``out_stride`` + a conv stem on the pixels-->
    offsets [B,T,H/s,W/s,K,3]  control points relative to each cell's own point (normalised camera-0 frame)
    confidence [B,T,H/s,W/s]   1 + exp(raw)
    motion [B,T,H/s,W/s]       probability that the cell's point moves (gates the offsets)
    time [B,T]                 predicted spline parameter of each frame (timestamp head)

The offsets are *anchored*: a constant is subtracted from each curve's control
points so that the curve passes exactly through the cell's own point at its
own frame's time (``offset(s_f) = 0``). A static scene is then all-zero
offsets, and the outputs stay metric once added to the unprojected points.
The offsets are multiplied by the motion probability, so points the network
calls static stay exactly put (trained with a cross-entropy on the
ground-truth ``dynamic`` flags).
"""
from __future__ import annotations

import functools
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from traceany_ros.field import TrajectoryField, bspline_basis
from traceany_ros.model.config import PRIOR_CHANNELS, ModelConfig

CONF_RAW_MIN, CONF_RAW_MAX = -10.0, 8.0


def sincos_1d(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Sin/cos features of positions x [...] -> [..., dim] (dim even)."""
    half = dim // 2
    freq = torch.exp(-math.log(1000.0) * torch.arange(half, device=x.device, dtype=torch.float32) / half)
    ang = x.float()[..., None] * freq * math.pi
    return torch.cat([ang.sin(), ang.cos()], -1)


def sincos_2d(h: int, w: int, dim: int, device) -> torch.Tensor:
    """[h*w, dim] 2-D sin/cos position embedding (half the channels per axis)."""
    ys, xs = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij")
    return torch.cat([sincos_1d(ys.reshape(-1).float(), dim // 2), sincos_1d(xs.reshape(-1).float(), dim // 2)], -1)


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 matrix products natively (Intel AMX or AVX512-BF16, Linux flags);
    elsewhere PyTorch emulates them on CPU, slower than float32."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = set(next((line for line in f if line.startswith("flags")), "").split())
    except OSError:
        return False
    return bool(flags & {"amx_bf16", "avx512_bf16"})


def anchor_offsets(offsets: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """Shift each curve so that it is zero at its own frame's time.

    offsets [B,T,h,w,K,3], s [B,T] -> [B,T,h,w,K,3] with ``evaluate(out[b,f], s[b,f]) == 0``.
    (B-spline basis rows sum to one, so subtracting a constant moves the curve by it.)
    """
    B, T = s.shape
    K = offsets.shape[-2]
    basis = bspline_basis(s.reshape(-1).to(offsets.dtype), K).reshape(B, T, K)
    at_own = torch.einsum("btk,bthwkd->bthwd", basis, offsets)
    return offsets - at_own[..., None, :]


def encoder_layer(layer: nn.TransformerEncoderLayer, x: torch.Tensor) -> torch.Tensor:
    """``layer(x)`` for this model's pre-norm, dropout-free encoder layers, with fused attention.

    x [B,L,D] -> [B,L,D]. The same weights and arithmetic as ``nn.TransformerEncoderLayer`` (norm_first,
    dropout 0), but the attention through ``F.scaled_dot_product_attention``, which never holds the L x L
    weights in memory: over a 24-frame window's 4608 tokens the network's forward takes half the time on
    CPU (0.26 -> 0.13 s with the bf16 trunk, 0.40 -> 0.18 s in float32, outputs within 2e-7 in float32)."""
    attn = layer.self_attn
    B, L, D = x.shape
    heads = attn.num_heads
    qkv = F.linear(layer.norm1(x), attn.in_proj_weight, attn.in_proj_bias)
    q, k, v = qkv.reshape(B, L, 3, heads, D // heads).permute(2, 0, 3, 1, 4)  # each [B, heads, L, D / heads]
    x = x + attn.out_proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(B, L, D))
    return x + layer.linear2(layer.activation(layer.linear1(layer.norm2(x))))


def conv_with_cells(conv: nn.Conv2d, x: torch.Tensor, cells: torch.Tensor, cell: int) -> torch.Tensor:
    """``conv`` over the channels of x followed by those of ``cells`` upsampled ``cell`` times (nearest),
    without upsampling them.

    x [N,Cx,H,W], cells [N,Cc,H/cell,W/cell]: per-cell channels (constant over each cell's cell x cell
    pixels); conv: a patchify convolution (kernel = stride, a multiple of ``cell``, no padding) with
    Cx + Cc input channels. Over a constant cell the kernel's cell x cell block acts as its sum, so the
    cells' part is a convolution on the cell grid with the block sums (kernel and stride / cell): the same
    result up to float rounding, and for the tiny model's 13 prior channels of 20 ~1/3 of the work.
    """
    k, stride = conv.kernel_size[0], conv.stride[0]
    if conv.kernel_size != (k, k) or conv.stride != (k, k) or k != stride or k % cell or conv.padding != (0, 0):
        raise ValueError(f"conv_with_cells needs a patchify convolution with a kernel divisible by {cell}, "
                         f"got kernel {conv.kernel_size}, stride {conv.stride}, padding {conv.padding}")
    cx, cc = x.shape[1], cells.shape[1]
    w = conv.weight  # [out, cx + cc, k, k]
    r = k // cell
    w_cells = w[:, cx:].reshape(w.shape[0], cc, r, cell, r, cell).sum((3, 5))  # [out, cc, r, r]
    return F.conv2d(x, w[:, :cx], conv.bias, stride) + F.conv2d(cells, w_cells, None, r)


class TraceModel(nn.Module):
    """Per-pixel trajectory fields from a window of RGB-D frames (see module docstring)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = c = config
        D, hc = c.dim, c.head_channels
        self.patch_embed = nn.Conv2d(c.in_channels, D, c.patch_size, c.patch_size)
        self.time_embed = nn.Sequential(nn.Linear(D, D), nn.GELU(), nn.Linear(D, D))

        def block():
            return nn.TransformerEncoderLayer(D, c.heads, int(D * c.mlp_ratio), dropout=0.0, activation="gelu",
                                              batch_first=True, norm_first=True)

        self.encoder = nn.ModuleList([block() for _ in range(c.encoder_layers)])
        self.decoder = nn.ModuleList([block() for _ in range(c.decoder_layers)])
        self.norm = nn.LayerNorm(D)
        r = c.patch_size // c.out_stride
        self.token_up = nn.Linear(D, hc * r * r)
        self.stem = nn.Sequential(nn.Conv2d(c.in_channels, hc, c.out_stride, c.out_stride), nn.GELU(),
                                  nn.Conv2d(hc, hc, 3, padding=1))
        self.fuse = nn.Sequential(nn.Conv2d(2 * hc, hc, 1), nn.GELU(), nn.Conv2d(hc, hc, 3, padding=1), nn.GELU())
        self.out = nn.Conv2d(hc, c.num_control_points * 3 + 2, 1)
        self.time_head = nn.Linear(D, 1)
        self.detach_gate = False  # set by the training loop (TrainConfig.detach_gate); not part of the weights
        # inference only, set by the model backend: run the transformer trunk under bfloat16 autocast on CPU
        # (patch embedding, heads, gate and anchoring stay float32); not part of the weights
        self.trunk_bf16 = False
        nn.init.zeros_(self.out.weight)  # start as the static predictor with confidence 1 + e^0
        nn.init.zeros_(self.out.bias)
        with torch.no_grad():  # motion gate starts mostly closed (static by default); half open over a flow prior
            self.out.bias[-1] = 0.0 if c.flow_prior else -2.0

    def forward(self, image: torch.Tensor, s: torch.Tensor, prior: torch.Tensor | None = None,
                prior_features: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """image [B,T,C,H,W] (C = ``config.image_channels``; H, W multiples of patch_size), s [B,T] spline
        parameters; with ``config.flow_prior`` (else None) prior [B,T,H/s,W/s,K,3] the flow prior's offsets and
        prior_features [B,T,13,H/s,W/s] its channels per output cell (s = out_stride; both from prepare_window) ->
        dict(offsets [B,T,H/s,W/s,K,3] anchored, confidence [B,T,H/s,W/s] >= 1, time [B,T],
        motion [B,T,H/s,W/s] in (0,1), motion_logit [B,T,H/s,W/s]).

        The input convolutions see the prior's channels as if upsampled to every pixel of their cell
        (:func:`conv_with_cells`)."""
        c = self.config
        B, T, C, H, W = image.shape
        if C != c.image_channels:
            raise ValueError(f"model expects {c.image_channels} image channels (use_depth={c.use_depth}), got {C}")
        if H % c.patch_size or W % c.patch_size:
            raise ValueError(f"image size {H}x{W} must be a multiple of the patch size {c.patch_size}; "
                             f"pad it (prepare_window does)")
        st = c.out_stride
        x = image.reshape(B * T, C, H, W)
        h, w = H // c.patch_size, W // c.patch_size
        if c.flow_prior:
            want = (B, T, PRIOR_CHANNELS, H // st, W // st)
            if prior_features is None or tuple(prior_features.shape) != want:
                raise ValueError(f"this model refines a flow prior: pass prior_features of shape {want} "
                                 f"(prepare_window computes them), got "
                                 f"{None if prior_features is None else tuple(prior_features.shape)}")
            cells = prior_features.reshape(B * T, PRIOR_CHANNELS, H // st, W // st).to(x.dtype)
            tok = conv_with_cells(self.patch_embed, x, cells, st)
            stem = conv_with_cells(self.stem[0], x, cells, st)
        else:
            tok = self.patch_embed(x)
            stem = self.stem[0](x)
        stem = self.stem[2](self.stem[1](stem))
        tok = tok.flatten(2).transpose(1, 2)  # [BT, hw, D]
        tok = tok + sincos_2d(h, w, c.dim, tok.device)[None].to(tok.dtype)
        temb = self.time_embed(sincos_1d(s.reshape(-1), c.dim).to(tok.dtype))  # [BT, D]
        tok = tok + temb[:, None, :]
        bf16 = self.trunk_bf16 and not self.training and tok.device.type == "cpu"
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            for blk in self.encoder:
                tok = encoder_layer(blk, tok)
            tok = tok.reshape(B, T * h * w, c.dim)
            for blk in self.decoder:
                tok = encoder_layer(blk, tok)
        tok = self.norm(tok.float() if bf16 else tok).reshape(B * T, h * w, c.dim)
        time = self.time_head(tok.mean(1)).reshape(B, T)
        r = c.patch_size // c.out_stride
        up = self.token_up(tok).transpose(1, 2).reshape(B * T, -1, h, w)
        up = F.pixel_shuffle(up, r)  # [BT, hc, H/s, W/s]
        feat = self.fuse(torch.cat([up, stem], 1))
        out = self.out(feat)  # [BT, 3K+1, H/s, W/s]
        hs, ws = out.shape[-2:]
        K = c.num_control_points
        motion_logit = out[:, 3 * K + 1].reshape(B, T, hs, ws)
        motion = torch.sigmoid(motion_logit)
        offsets = out[:, : 3 * K].reshape(B, T, K, 3, hs, ws).permute(0, 1, 4, 5, 2, 3)
        if c.flow_prior:
            if prior is None or prior.shape != offsets.shape:
                raise ValueError(f"this model refines a flow prior: pass prior of shape {tuple(offsets.shape)} "
                                 f"(prepare_window computes it), got {None if prior is None else tuple(prior.shape)}")
            offsets = offsets + prior.to(offsets.dtype)
        # with detach_gate (a training choice) only the motion loss trains the gate: the trajectory loss
        # must then fix a poor flow prior through the residual instead of shrinking it
        gate = motion.detach() if (self.detach_gate and self.training) else motion
        offsets = anchor_offsets(offsets * gate[..., None, None], s)
        conf = 1.0 + torch.exp(out[:, 3 * K].clamp(CONF_RAW_MIN, CONF_RAW_MAX)).reshape(B, T, hs, ws)
        return {"offsets": offsets, "confidence": conf, "time": time, "motion": motion, "motion_logit": motion_logit}

    @torch.no_grad()
    def predict_field(self, window, device: str | torch.device = "cpu") -> TrajectoryField:
        """Trajectory field of a FrameWindow in the world frame (stride ``out_stride``).

        Returns TrajectoryField with control_points [T, ceil(H/s), ceil(W/s), K, 3] (metres, world),
        confidence [T, ...] (0 where the cell's depth is invalid), time_span (times[0], times[-1]).
        """
        from traceany_ros.geometry import grid_points_world
        from traceany_ros.model.inputs import prepare_window

        c = self.config
        inp = prepare_window(window, c)
        was_training = self.training
        self.eval()
        out = self(*inp.model_args(device))
        self.train(was_training)
        stride, off = c.out_stride, c.out_stride // 2
        base, valid = inp.cells if inp.cells is not None else grid_points_world(window, stride, off)  # [T,h,w,3]
        h, w = base.shape[1:3]
        offsets = out["offsets"][0, :, :h, :w].double().cpu().numpy()  # [T,h,w,K,3]
        conf = out["confidence"][0, :, :h, :w].float().cpu().numpy()
        cp = base[:, :, :, None, :] + inp.norm_to_world_vectors(offsets)
        times = np.asarray(window.times, np.float64)
        return TrajectoryField(cp.astype(np.float32), (conf * valid).astype(np.float32), times, stride=stride,
                               pixel_offset=off, image_size=inp.size, time_span=(float(times[0]), float(times[-1])),
                               meta={"backend": "model", "preset": c.name})
