"""The trajectory-field network: one forward pass of torch operations on an RGB-D window.

    window (rgb, depth, intrinsics, camera poses, times)            -- :func:`window_tensors`
      -> normalised camera-0 frame (metres / median depth)          -- :func:`normalise`
      -> per-frame CNN features at 1/stride                         -- :class:`FrameEncoder`
      -> cosine correlation of every query cell with every frame, pooled into a pyramid, and the global
         soft match of the cell in each frame (its expected 3D point there)
      -> per (query cell, frame) pair: the cell's 3D point as currently estimated at that frame's time,
         reprojected into the frame with its pose; depth and colour agreement there, the local
         correlation window around it on every level, and candidate moves (each level's soft-argmax
         lifted to 3D with the frame's depth there, the soft global match, the point of the frame's
         best-correlated cell)
      -> time attention per query cell + a spatial mix over neighbouring cells + attention across the
         cells of each (query frame, frame) pair; the estimate moves by a
         learned convex combination of {stay, the candidates} plus a small residual, ``iterations``
         times with the same weights (each pass looks the correlation up again around its estimate)
      -> convex upsampling to the output grid: per pair the 3D position at that frame's time and a
         visibility logit; per cell motion and confidence logits
      -> control points: a fixed least-squares B-spline fit of the positions, gated by the motion
         probability and anchored at the cell's own point (``docs/method.md``)

Every query cell starts at the *static hypothesis* (its own unprojected point at every time), so a
static scene under any camera motion is the zero update; the network only has to learn what moves.
Frames with ``observed = False`` (forecasting) give no image: their pairs carry only time, and the
curves are still supervised there. Queries come only from observed frames.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from traceany_ros.field import TrajectoryField, bspline_basis
from traceany_ros.model.config import ModelConfig
from traceany_ros.geometry import cell_grid, project_batch, unproject_cells
from traceany_ros.model.inputs import Normalised, WindowTensors, hidden_frames, normalise, window_tensors

RGB_MEAN, RGB_STD = 0.45, 0.25


class ResBlock(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1)
        self.norm = nn.GroupNorm(4, c)

    def forward(self, x):
        return x + self.conv2(F.gelu(self.norm(self.conv1(x))))


class FrameEncoder(nn.Module):
    """[N,5,H,W] (rgb, inverse depth, valid) -> correlation features [N,feat_dim,H/s,W/s] and context
    features [N,dim,H/s,W/s]. One strided convolution per halving, a residual block at 1/s."""

    def __init__(self, c: ModelConfig):
        super().__init__()
        layers, cin = [], 5
        for i, ch in enumerate(c.channels):
            layers += [nn.Conv2d(cin, ch, 3, stride=2, padding=1), nn.GELU()]
            if i == len(c.channels) - 1:
                layers.append(ResBlock(ch))
            cin = ch
        self.body = nn.Sequential(*layers)
        self.feat = nn.Conv2d(cin, c.feat_dim, 1)
        self.ctx = nn.Conv2d(cin, c.dim, 1)

    def forward(self, x):
        y = self.body(x)
        return self.feat(y), self.ctx(y)


class TimeBlock(nn.Module):
    """Pre-norm self-attention over the T pairs of each query, then an MLP (tokens [N,T,D])."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x, key_bias=None):
        N, T, D = x.shape
        q, k, v = self.qkv(self.norm1(x)).reshape(N, T, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=key_bias)
        x = x + self.proj(a.transpose(1, 2).reshape(N, T, D))
        return x + self.mlp(self.norm2(x))


class SpaceBlock(nn.Module):
    """Mixes neighbouring query cells: depthwise 3x3 then pointwise, residual. Maps channels-last tokens
    [M,h,w,D] (the layout the attention across cells reads, and a depthwise convolution in channels-last
    memory runs several times faster on the CPU); the norm is GroupNorm(1, D)."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.GroupNorm(1, dim)
        self.dw = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.pw = nn.Conv2d(dim, dim, 1)

    def forward(self, x):
        var, mean = torch.var_mean(x, dim=(1, 2, 3), keepdim=True, correction=0)
        h = (x - mean) * torch.rsqrt(var + self.norm.eps) * self.norm.weight + self.norm.bias
        h = F.conv2d(h.permute(0, 3, 1, 2), self.dw.weight, self.dw.bias, padding=1, groups=h.shape[-1])
        return x + F.linear(F.gelu(h).permute(0, 2, 3, 1), self.pw.weight.flatten(1), self.pw.bias)


class CellBlock(nn.Module):
    """Attention across the query cells of one (query frame, frame) pair, keyed by each cell's place in the
    image and its current 3D estimate: cells that see the same body share their moves, so a match found on
    a textured edge reaches the plain inside (tokens [M,S,D], position features [M,S,P]). The output
    projection starts at zero, so a network grown by this block computes what it did before."""

    NUM_POS = 16 + 27  # sin/cos of the cell's row and column (4 frequencies), its estimate (3 + sin/cos x 4)

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm = nn.LayerNorm(dim)
        self.pos = nn.Linear(self.NUM_POS, dim)
        self.qk = nn.Linear(dim, 2 * dim)
        self.v = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x, pos):
        M, S, D = x.shape
        h = self.norm(x)
        q, k = self.qk(h + self.pos(pos)).reshape(M, S, 2, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        v = self.v(h).reshape(M, S, self.heads, D // self.heads).transpose(1, 2)
        a = F.scaled_dot_product_attention(q, k, v)
        return x + self.proj(a.transpose(1, 2).reshape(M, S, D))


def fit_matrix(s: torch.Tensor, K: int, ridge: float) -> torch.Tensor:
    """[B,T] spline parameters -> [B,K,T]: control points = M @ positions (least squares with a small
    second-difference penalty, see docs/method.md)."""
    B, T = s.shape
    A = bspline_basis(s.reshape(-1).double(), K).reshape(B, T, K)
    D2 = torch.zeros(K - 2, K, dtype=torch.float64, device=s.device)
    idx = torch.arange(K - 2, device=s.device)
    D2[idx, idx], D2[idx, idx + 1], D2[idx, idx + 2] = 1.0, -2.0, 1.0
    lhs = A.transpose(1, 2) @ A + ridge * (D2.T @ D2)[None]
    return torch.linalg.solve(lhs, A.transpose(1, 2)).float()


def sincos(x: torch.Tensor, n: int, base: float = 1.0) -> torch.Tensor:
    freq = base * (2.0 ** torch.arange(n, device=x.device, dtype=torch.float32)) * math.pi
    ang = x[..., None] * freq
    return torch.cat([ang.sin(), ang.cos()], -1)


# ----------------------------------------------------------------------------- the network

SELECTIONS = ("blend", "top")  # how a refinement pass moves by its candidate moves (TraceModel.forward)


def check_selection(selection: str) -> str:
    if selection not in SELECTIONS:
        raise ValueError(f"selection must be one of {SELECTIONS}, got {selection!r}")
    return selection


class TraceModel(nn.Module):
    """Trajectory fields of every observed frame's cells (see the module docstring).

    Pairs are formed on the *query grid* (cells of 2 x stride pixels); the per-frame positions, motion,
    visibility and confidence are then upsampled to the output grid (stride) by learned convex
    combinations of the 3 x 3 neighbouring query cells (RAFT's upsampling), and the curves are fitted
    there, anchored at each output cell's own point.
    """

    NUM_GEOM = 7      # valid-in-view, depth residual (abs, rel), colour difference (3), estimate's depth
    NUM_GLOBAL = 4    # soft match offset from the estimate (3), its peak probability
    NUM_TIME = 4 + 12  # s_j, s_j - s_i, seconds apart, observed; sin/cos of s_j - s_i
    NUM_ARGMAX = 4     # the global argmax's move from the estimate (3) and its cosine similarity

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = c = config
        self.encoder = FrameEncoder(c)
        n_corr = c.levels * (2 * c.radius + 1) ** 2
        n_cand = 4 * c.levels  # per level: the soft-argmax move lifted to 3D (3) and its peak probability
        n_in = self.NUM_GEOM + n_corr + n_cand + self.NUM_GLOBAL + 3 + self.NUM_TIME
        self.pair_in = nn.Sequential(nn.Linear(n_in + self.NUM_ARGMAX * c.global_argmax, c.dim),
                                     nn.GELU(), nn.Linear(c.dim, c.dim))
        self.time_blocks = nn.ModuleList([TimeBlock(c.dim, c.heads) for _ in range(c.layers)])
        self.space_blocks = nn.ModuleList([SpaceBlock(c.dim) for _ in range(c.layers)])
        self.cell_blocks = nn.ModuleList([CellBlock(c.dim, c.heads) for _ in range(c.layers)]) if c.cell_attention else None
        self.norm = nn.LayerNorm(c.dim)
        # per pass: weights of the candidate moves (stay, each level's lifted soft-argmax, the global match),
        # a small residual move (3), the visibility logit, then the weight of the global argmax (if any)
        self.pair_head = nn.Linear(c.dim, c.levels + 2 + 3 + 1 + c.global_argmax)
        self.corr_temp = nn.Parameter(torch.full((c.levels,), math.log(20.0)))  # over cosine similarities
        self.cell_head = nn.Linear(c.dim, 2)   # motion logit, confidence logit
        self.up_mask = nn.Sequential(nn.Conv2d(c.dim, c.dim, 3, padding=1), nn.GELU(), nn.Conv2d(c.dim, 9, 1))
        self.match_temp = nn.Parameter(torch.tensor(math.log(20.0)))
        nn.init.zeros_(self.pair_head.weight)
        nn.init.zeros_(self.pair_head.bias)
        with torch.no_grad():
            self.pair_head.bias[0] = 4.0  # start by staying: the static hypothesis
        nn.init.zeros_(self.cell_head.weight)
        with torch.no_grad():
            self.cell_head.bias[0] = -2.0

    def _encode(self, w: WindowTensors, norm: Normalised):
        c = self.config
        B, T, _, H, W = w.rgb.shape
        q = 2 * c.stride
        Hp, Wp = -(-H // q) * q, -(-W // q) * q
        rgb = (w.rgb.float() / 255.0 - RGB_MEAN) / RGB_STD
        valid = (w.depth > 0).float()
        inv = torch.where(w.depth > 0, norm.scale[:, None, None, None] / w.depth.clamp_min(1e-3), 0.0)
        x = torch.cat([rgb, inv[:, :, None], valid[:, :, None]], 2) * w.observed[:, :, None, None, None].float()
        x = F.pad(x.reshape(B * T, 5, H, W), (0, Wp - W, 0, Hp - H))
        feat, ctx = self.encoder(x)
        return feat.reshape(B, T, *feat.shape[1:]), ctx.reshape(B, T, *ctx.shape[1:])

    def forward(self, w: WindowTensors, query_frames: torch.Tensor | None = None, return_all: bool = False,
                selection: str = "blend"):
        """w: WindowTensors (B, T); query_frames [I] long (default: every observed frame of sample 0; in a
        batch they must be observed in every sample) -> dict of (h, w: the output grid, ``cell_grid``)

            offsets [B,I,h,w,K,3]     control points minus the cell's own point (normalised frame)
            points [B,I,h,w,3], valid [B,I,h,w]   the cells' own points (normalised) and depth validity
            positions [B,I,h,w,T,3]   the per-frame estimates the curves are fitted to
            visibility_logit [B,I,h,w,T], motion_logit [B,I,h,w], confidence_logit [B,I,h,w]
            norm (Normalised), query_frames [I]; with return_all: iterates, a list of coarse positions
            [B,I,h/2,w/2,T,3], proposals, the candidate positions of each pass (each level's lifted
            soft-argmax, the global match) [B,I,h/2,w/2,T,levels+1,3], weights, the update's weights of {stay,
            the candidates} in each pass [B,I,h/2,w/2,T,levels+2], coarse_points [B,I,h/2,w/2,3] and
            correlation, [(level-0 and level-1 correlations [B,N,T,h_l,w_l], softmax temperature)]

        ``selection``: how each pass moves an estimate by its weights over the candidate moves: "blend" (their
        convex combination, as trained) or "top" (the top-weighted move alone: the mode of the choice, for
        far-apart frames such as a goal image, where a blend of staying and a far match is right for neither).
        """
        check_selection(selection)
        c = self.config
        B, T, _, H, W = w.rgb.shape
        norm = normalise(w)
        if query_frames is None:
            query_frames = torch.nonzero(w.observed[0]).reshape(-1)
        qf = query_frames.to(w.rgb.device)
        I = qf.numel()
        qs = 2 * c.stride
        h, wd, off = cell_grid(H, W, qs)  # the query grid
        hw = h * wd
        N = I * hw
        depth_u = w.depth / norm.scale[:, None, None, None]  # units
        pts, valid = unproject_cells(depth_u, w.K, norm.cam_to_norm, qs)  # [B,T,h,w,3]
        pts_f, valid_f = unproject_cells(depth_u, w.K, norm.cam_to_norm, c.stride)  # the output grid's points
        valid = valid & w.observed[:, :, None, None]
        feat, ctx = self._encode(w, norm)  # [B,T,C,2h,2w] at 1/stride
        feat = F.normalize(feat, dim=2)  # correlations are cosine similarities (sharp softmaxes from the start)
        fq = F.normalize(F.avg_pool2d(feat[:, qf].flatten(0, 1), 2), dim=1).reshape(B, I, c.feat_dim, hw)
        # correlation of the query cells with every frame on each pyramid level (level 0 = 1/stride):
        # correlating with average-pooled features equals average-pooling the correlation (RAFT's
        # pyramid) at a fraction of the work. Level l: [B*N*T, 1, h_l, w_l], pairs in (b, n, t) order
        pyramid, pooled = [], feat.flatten(0, 1)
        for lvl in range(c.levels):
            if lvl:
                pooled = F.avg_pool2d(pooled, 2, ceil_mode=True)
            hl, wl = pooled.shape[-2:]
            cl = torch.einsum("bicp,btcq->biptq", fq, pooled.reshape(B, T, c.feat_dim, hl * wl))
            pyramid.append(cl.reshape(B * N * T, 1, hl, wl))
        # global soft match on level 1 (the query grid): expected 3D point of the cell in each frame
        logits = pyramid[1].reshape(B, N, T, hw) * self.match_temp.exp()
        tval = valid.reshape(B, 1, T, hw)
        prob = logits.masked_fill(~tval, -1e4).softmax(-1)
        match = torch.einsum("bntq,btqd->bntd", prob, pts.reshape(B, T, hw, 3))  # [B,N,T,3]
        own = pts[:, qf].reshape(B, N, 1, 3)
        glob = torch.cat([match - own, prob.amax(-1, keepdim=True)], -1)  # [B,N,T,4]
        if c.global_argmax:  # the 3D point of the frame's best-correlated level-0 cell (a hard global match)
            amatch, apeak = self._global_argmax(pyramid[0], pts_f, valid_f, B, N, T)
        # time features per pair
        s = norm.s
        ds = s[:, None, :] - s[:, qf][:, :, None]  # [B,I,T]
        dt = ds * norm.span[:, None, None]
        obs = w.observed.float()[:, None, :].expand(B, I, T)
        tfeat = torch.cat([torch.stack([s[:, None, :].expand(B, I, T), ds, dt.clamp(-3, 3), obs], -1),
                           sincos(ds, 6)], -1)  # [B,I,T,16]
        tfeat = tfeat[:, :, None].expand(B, I, hw, T, self.NUM_TIME).reshape(B, N, T, self.NUM_TIME)
        not_own = (torch.arange(T, device=s.device)[None, :] != qf[:, None]).float()  # [I,T]
        not_own = not_own[None, :, None, :, None].expand(B, I, hw, T, 1).reshape(B, N, T, 1)
        obs_pair = w.observed[:, None, :, None].expand(B, N, T, 1).float()
        rows = (off + qs * torch.arange(h, device=s.device)).clamp(max=H - 1)
        cols = (off + qs * torch.arange(wd, device=s.device)).clamp(max=W - 1)
        rgbf = w.rgb.float() / 255.0
        qcol = rgbf[:, qf][:, :, :, rows][:, :, :, :, cols].permute(0, 1, 3, 4, 2).reshape(B, N, 1, 3)
        ctxc = F.avg_pool2d(ctx[:, qf].flatten(0, 1), 2)  # [B*I, D, h, w]
        ctxq = ctxc.reshape(B, I, c.dim, hw).transpose(2, 3).reshape(B * N, 1, c.dim)

        x = own.expand(B, N, T, 3)  # the static hypothesis
        if self.cell_blocks is not None:  # the cells' places in the image, for the attention across cells
            gy, gx = torch.meshgrid(torch.arange(h, device=s.device) / h, torch.arange(wd, device=s.device) / wd,
                                    indexing="ij")
            cellpos = torch.cat([sincos(gy.reshape(-1), 4, 0.5), sincos(gx.reshape(-1), 4, 0.5)], -1)  # [hw,16]
            cellpos = cellpos[None, None, :, None].expand(B, I, hw, T, 16)
        state, iterates, proposals, weights = None, [], [], []
        L = c.levels
        for _ in range(c.iterations):
            geom, local, cand, peak = self._lookup(x, w, depth_u, norm, rgbf, qcol, pyramid, N)
            gmove = match - x
            feats = [geom, local, cand.flatten(-2), peak, gmove, glob[..., 3:], x - own]
            inp = [torch.cat(feats, -1) * obs_pair, tfeat]
            if c.global_argmax:
                inp.append(torch.cat([amatch - x, apeak], -1) * obs_pair)
            inp = torch.cat(inp, -1)
            tok = self.pair_in(inp).reshape(B * N, T, c.dim) + ctxq
            tok = tok if state is None else tok + state
            if self.cell_blocks is not None:
                xp = x.reshape(B, I, hw, T, 3)
                pos = torch.cat([cellpos, xp, sincos(xp, 4, 0.5).flatten(-2)], -1)  # [B,I,hw,T,NUM_POS]
                pos = pos.permute(0, 1, 3, 2, 4).reshape(B * I * T, hw, -1)
            for tb, sb, cb in zip(self.time_blocks, self.space_blocks, self.cell_blocks or [None] * c.layers):
                tok = tb(tok)  # [B*N,T,D] -> the cells of each (query frame, frame) pair, channels last
                m = sb(tok.reshape(B, I, h, wd, T, c.dim).permute(0, 1, 4, 2, 3, 5).reshape(B * I * T, h, wd, c.dim))
                if cb is not None:
                    m = cb(m.reshape(B * I * T, hw, c.dim), pos)
                tok = m.reshape(B, I, T, hw, c.dim).transpose(2, 3).reshape(B * N, T, c.dim)
            state = tok
            out = self.pair_head(self.norm(tok)).reshape(B, N, T, -1)
            # candidate moves [B,N,T,L+2(+1),3]: stay, each level's lifted soft-argmax, the soft global match
            # (and the hard one); the hidden frames (no image) can only stay or take the residual
            moves = [torch.zeros_like(gmove)[..., None, :], cand, gmove[..., None, :]]
            logit = out[..., : L + 2]
            if c.global_argmax:
                moves.append((amatch - x)[..., None, :])
                logit = torch.cat([logit, out[..., L + 6:]], -1)
            moves = torch.cat(moves, -2)
            n_opt = moves.shape[-2]
            wts = logit.softmax(-1) * obs_pair + F.one_hot(torch.zeros((), dtype=torch.long), n_opt) * (1 - obs_pair)
            pick = wts if selection == "blend" else F.one_hot(wts.argmax(-1), n_opt).to(wts.dtype)
            step = (pick[..., None] * moves).sum(-2) + 0.1 * out[..., L + 2: L + 5]
            if return_all:
                proposals.append(x[..., None, :] + moves[..., 1:, :])
                weights.append(wts)
            x = x + step * not_own
            iterates.append(x)
        vis_logit = out[..., L + 5]
        cell = self.cell_head(self.norm(tok).mean(1)).reshape(B, N, 2)
        # convex upsampling of everything per query cell to the output grid
        coarse = torch.cat([(x - own).reshape(B, N, 3 * T), vis_logit, cell], -1)  # [B,N,4T+2]
        coarse = coarse.reshape(B * I, h, wd, -1).permute(0, 3, 1, 2)
        mask = self.up_mask(ctx[:, qf].flatten(0, 1))  # [B*I, 9, 2h, 2w]
        fine = convex_upsample(coarse, mask)  # [B*I, 4T+2, 2h, 2w]
        hf, wf, _ = cell_grid(H, W, c.stride)
        fine = fine[:, :, :hf, :wf].permute(0, 2, 3, 1).reshape(B, I, hf, wf, -1)
        dx = fine[..., : 3 * T].reshape(B, I, hf, wf, T, 3) * not_own.reshape(B, I, hw, T, 1)[:, :, :1, None]
        own_f = pts_f[:, qf]
        res = {"positions": own_f[..., None, :] + dx, "points": own_f, "valid": valid_f[:, qf],
               "visibility_logit": fine[..., 3 * T: 4 * T], "motion_logit": fine[..., 4 * T],
               "confidence_logit": fine[..., 4 * T + 1], "norm": norm, "query_frames": qf}
        res["offsets"] = self.curves(dx, res["motion_logit"], norm.s, qf)
        if return_all:
            res["iterates"] = [it.reshape(B, I, h, wd, T, 3) for it in iterates]
            res["proposals"] = [p.reshape(B, I, h, wd, T, p.shape[-2], 3) for p in proposals]
            res["weights"] = [m.reshape(B, I, h, wd, T, m.shape[-1]) for m in weights]
            res["coarse_points"] = own.reshape(B, I, h, wd, 3)
            # the first two correlation levels [B,N,T,h_l,w_l] with the temperatures their softmaxes use
            res["correlation"] = [(pyramid[lvl].reshape(B, N, T, *pyramid[lvl].shape[-2:]), temp.exp())
                                  for lvl, temp in ((0, self.corr_temp[0]), (1, self.match_temp))]
        return res

    GROWABLE = ("cell_blocks.",)  # blocks whose zero-initialised output leaves the network's function unchanged
    # tensors that grow with the global argmax candidate: (dimension, old size is the leading slice)
    WIDENED = {"pair_in.0.weight": 1, "pair_head.weight": 0, "pair_head.bias": 0}

    def grow_from(self, state_dict: dict) -> list[str]:
        """Load weights of this network or of one without some GROWABLE blocks or without the global argmax
        candidate (the new parts start where they leave the function unchanged: zero inputs' weights, the
        new option's logit at -8) -> the names of what was added; any other mismatch raises."""
        own = self.state_dict()
        sd, added = dict(state_dict), set()
        for key, dim in self.WIDENED.items():
            if key in sd and key in own and sd[key].shape != own[key].shape:
                old, new = sd[key], own[key].clone()
                if old.ndim != new.ndim or old.shape[dim] > new.shape[dim] or any(
                        a != b for d, (a, b) in enumerate(zip(old.shape, new.shape)) if d != dim):
                    raise RuntimeError(f"weights do not match the network: {key} {tuple(old.shape)} vs "
                                       f"{tuple(new.shape)}")
                n = old.shape[dim]
                new.narrow(dim, n, new.shape[dim] - n).fill_(-8.0 if key == "pair_head.bias" else 0.0)
                new.narrow(dim, 0, n).copy_(old)
                sd[key] = new
                added.add("global_argmax")
        missing, unexpected = self.load_state_dict(sd, strict=False)
        bad = [k for k in missing if not k.startswith(self.GROWABLE)]
        if bad or unexpected:
            raise RuntimeError(f"weights do not match the network: missing {bad[:5]}, unexpected {unexpected[:5]}")
        return sorted(added | {k.split(".")[0] for k in missing})

    def curves(self, dx: torch.Tensor, motion_logit: torch.Tensor, s: torch.Tensor, qf: torch.Tensor) -> torch.Tensor:
        """Per-frame offsets dx [B,I,h,w,T,3], motion logits [B,I,h,w], s [B,T], query frames [I] ->
        gated control-point offsets [B,I,h,w,K,3], zero at each cell's own frame time."""
        c = self.config
        B, I = dx.shape[:2]
        M = fit_matrix(s, c.num_control_points, c.fit_ridge)  # [B,K,T]
        cp = torch.einsum("bkt,bihwtd->bihwkd", M, dx)
        gate = torch.sigmoid(motion_logit)
        if c.hard_gate and not self.training:
            gate = (gate > 0.5).to(cp.dtype)
        cp = cp * gate[..., None, None]
        basis = bspline_basis(s[:, qf].reshape(-1).double(), c.num_control_points).float().reshape(B, I, -1)
        at_own = torch.einsum("bik,bihwkd->bihwd", basis, cp)
        return cp - at_own[..., None, :]

    def _lookup(self, x, w, depth_u, norm, rgbf, qcol, pyramid, N):
        """Pair features at the current estimates x [B,N,T,3]: geometry [B,N,T,NUM_GEOM], the local correlation
        on every level [B,N,T,levels * (2r+1)^2], and per level the soft-argmax of that correlation lifted to 3D
        with the frame's depth there, as a move from x [B,N,T,levels,3], with its peak probability
        [B,N,T,levels]."""
        c = self.config
        B, T, H, W = depth_u.shape
        uv, z = project_batch(x.transpose(1, 2), w.K, norm.cam_to_norm)  # [B,T,N,2], [B,T,N]
        inview = (z > 1e-3) & (uv[..., 0] > -0.5) & (uv[..., 0] < W - 0.5) & (uv[..., 1] > -0.5) & (uv[..., 1] < H - 0.5)
        d = self._sample_depth(depth_u, uv)
        col = F.grid_sample(rgbf.reshape(B * T, 3, H, W), self._grid(uv, H, W), mode="bilinear", align_corners=False)
        col = col.reshape(B, T, 3, -1).permute(0, 3, 1, 2)  # [B,N,T,3]
        ok = inview & (d > 0)
        res = torch.where(ok, d - z, torch.zeros_like(z))
        okf = ok.float()
        geom = torch.stack([okf, res.clamp(-1, 1) * 10, (res / z.clamp_min(1e-2)).clamp(-1, 1) * 10,
                            z.clamp(0, 10) * 0.1], -1).transpose(1, 2)  # [B,N,T,4]
        geom = torch.cat([geom, (col - qcol) * okf.transpose(1, 2)[..., None]], -1)
        # local correlation around the estimates, in level-0 cell coordinates
        cu = (uv[..., 0] - (c.stride - 1) / 2) / c.stride
        cv = (uv[..., 1] - (c.stride - 1) / 2) / c.stride
        r = c.radius
        dd = torch.arange(-r, r + 1, device=x.device, dtype=x.dtype)
        oy, ox = torch.meshgrid(dd, dd, indexing="ij")
        offs = torch.stack([ox.reshape(-1), oy.reshape(-1)], -1)  # [(2r+1)^2, 2]
        cen = torch.stack([cu, cv], -1).transpose(1, 2).reshape(B * N * T, 1, 2)
        out, targets, peaks = [], [], []
        for lvl, corr in enumerate(pyramid):
            hl, wl = corr.shape[-2:]
            # grid_sample coordinates: centre and window offsets normalised apart, one add per level
            size = torch.tensor([wl, hl], device=x.device, dtype=x.dtype)
            g = ((cen + 0.5) / 2 ** lvl) * (2 / size) - 1 + offs[None] * (2 / size)
            v = F.grid_sample(corr, g[:, None], mode="bilinear", padding_mode="zeros", align_corners=False)
            v = v.reshape(B, N, T, -1)
            out.append(v)
            prob = (v * self.corr_temp[lvl].exp()).softmax(-1)
            move = prob @ offs * (c.stride * 2 ** lvl)  # [B,N,T,2] pixels
            targets.append(uv.transpose(1, 2) + move)
            peaks.append(prob.amax(-1))
        # lift every level's target pixel with the depth there (the estimate's own depth where there is none)
        tuv = torch.stack(targets, -2).transpose(1, 2).reshape(B, T, N * c.levels, 2)  # [B,T,N*L,2]
        td = self._sample_depth(depth_u, tuv)
        tz = torch.where(td > 0, td, z.repeat_interleave(c.levels, -1))
        fx, fy = w.K[:, 0, 0, None, None], w.K[:, 1, 1, None, None]
        cx, cy = w.K[:, 0, 2, None, None], w.K[:, 1, 2, None, None]
        pc = torch.stack([(tuv[..., 0] - cx) / fx * tz, (tuv[..., 1] - cy) / fy * tz, tz], -1)  # camera, [B,T,M,3]
        R, t = norm.cam_to_norm[:, :, :3, :3], norm.cam_to_norm[:, :, :3, 3]
        pn = torch.einsum("btij,btmj->btmi", R, pc) + t[:, :, None]
        cand = pn.reshape(B, T, N, c.levels, 3).transpose(1, 2) - x[..., None, :]  # [B,N,T,L,3]
        cand = cand * okf.transpose(1, 2)[..., None, None]
        return geom, torch.cat(out, -1), cand, torch.stack(peaks, -1)

    @staticmethod
    def _global_argmax(corr0, pts0, valid0, B, N, T):
        """Level-0 correlations [B*N*T,1,h0,w0] and the frames' level-0 cell points [B,T,hf,wf,3] with their
        depth validity -> the 3D point (normalised) of each pair's best-correlated cell with depth in the
        frame [B,N,T,3] and that cosine similarity [B,N,T,1]."""
        h0, w0 = corr0.shape[-2:]
        hf, wf = valid0.shape[-2:]
        ok = torch.zeros(B, T, h0, w0, dtype=torch.bool, device=corr0.device)
        ok[:, :, :hf, :wf] = valid0[:, :, :h0, :w0]
        pad = torch.zeros(B, T, h0, w0, 3, dtype=pts0.dtype, device=pts0.device)
        pad[:, :, :hf, :wf] = pts0[:, :, :h0, :w0]
        score = corr0.reshape(B, N, T, h0 * w0).masked_fill(~ok.reshape(B, 1, T, -1), -2.0)
        peak, idx = score.max(-1)  # [B,N,T]
        flat = idx + (torch.arange(B * T, device=idx.device).reshape(B, 1, T) * (h0 * w0))
        return pad.reshape(-1, 3)[flat], peak[..., None].clamp(min=-1.0)

    @staticmethod
    def _grid(uv: torch.Tensor, H: int, W: int) -> torch.Tensor:
        B, T = uv.shape[:2]
        return torch.stack([(uv[..., 0] + 0.5) / W * 2 - 1, (uv[..., 1] + 0.5) / H * 2 - 1], -1).reshape(B * T, -1, 1, 2)

    def _sample_depth(self, depth_u: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
        """Nearest depth (units, 0 = none) of each frame at pixels uv [B,T,M,2] -> [B,T,M]."""
        B, T, H, W = depth_u.shape
        d = F.grid_sample(depth_u.reshape(B * T, 1, H, W), self._grid(uv, H, W), mode="nearest", align_corners=False)
        return d.reshape(B, T, -1)


def convex_upsample(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """x [N,C,h,w] on the query grid, mask [N,9,2h,2w] logits -> [N,C,2h,2w]: each output cell a convex
    combination of the 3 x 3 query cells around its parent (weights: softmax of its 9 logits; the border
    cells repeat outward)."""
    N, C, h, w = x.shape
    m = mask.reshape(N, 9, h, 2, w, 2).permute(0, 1, 2, 4, 3, 5).softmax(1)  # [N,9,h,w,2,2]
    nb = F.unfold(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3).reshape(N, C, 9, h, w)
    out = torch.einsum("nkhwij,nckhw->nchiwj", m, nb)
    return out.reshape(N, C, 2 * h, 2 * w)


@torch.no_grad()
def predict_field(net: TraceModel, window, device="cpu", future_s: float = 0.0, meta: dict | None = None,
                  key_frames: int | None = None, selection: str = "blend"):
    """The trajectory field of a FrameWindow in the world frame, in one forward pass.

    With ``future_s`` > 0 the curves also cover ``future_s`` seconds past the last frame (the network's
    forecast: ``time_span`` ends there). A window longer than ``key_frames`` is predicted on that many key
    frames and the other frames take their curves from them (:mod:`traceany_ros.model.keyframes`).
    ``selection``: "blend" or "top" (:meth:`TraceModel.forward`).
    Returns a TrajectoryField: control_points [T,h,w,K,3] (metres, world; stride ``config.stride``),
    confidence [T,h,w] in [0, 1] (the probability that the curve is within 2 cm of the truth on average;
    0 where the cell has no depth), motion [T,h,w], visibility [T,h,w,T].
    """
    from traceany_ros.episode import window_frames
    from traceany_ros.model.keyframes import fill_frames, pick_key_frames

    keys = pick_key_frames(len(window.times), key_frames)
    if keys is not None:
        field = predict_field(net, window_frames(window, keys), device, future_s, meta, selection=selection)
        return fill_frames(field, window, keys)
    c = net.config
    T = len(window.times)
    win, observed = hidden_frames(window, future_s)
    was = net.training
    net.eval()
    out = net(window_tensors(win, observed).to(device), selection=selection)
    net.train(was)
    norm = out["norm"]
    cp = norm.to_world(out["points"][..., None, :] + out["offsets"])[0].double().cpu().numpy()
    valid = out["valid"][0].cpu().numpy()
    conf = torch.sigmoid(out["confidence_logit"][0]).cpu().numpy() * valid
    motion = torch.sigmoid(out["motion_logit"][0]).cpu().numpy()
    vis = torch.sigmoid(out["visibility_logit"][0, ..., :T]).cpu().numpy()
    times = np.asarray(win.times, np.float64)
    H, W = np.asarray(window.depth).shape[1:]
    return TrajectoryField(cp.astype(np.float32), conf.astype(np.float32), times[:T], stride=c.stride,
                           pixel_offset=c.stride // 2, image_size=(H, W), time_span=(float(times[0]), float(times[-1])),
                           meta={"backend": "model", "preset": c.name, **(meta or {})}, motion=motion, visibility=vis)
