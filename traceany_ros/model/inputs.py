"""Preprocessing: a FrameWindow -> the network's input tensors (kept apart from the network).

The network works in a *normalised camera-0 frame*: axes of the first frame's
camera (OpenCV), origin at its centre, metres divided by ``scale`` (the
median valid depth of the window). Outputs are mapped back to metric world
coordinates with the same numbers, so the model stays metric.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from traceany_ros.episode import FrameWindow

RGB_MEAN, RGB_STD = 0.45, 0.25
_RGB_LUT = np.arange(256, dtype=np.float32) * np.float32(1 / (255.0 * RGB_STD)) - np.float32(RGB_MEAN / RGB_STD)


@dataclass
class WindowInputs:
    """Network inputs of one window.

    image: [T, C, Hp, Wp] float32 (C = 7 with depth: rgb, camera-0 points / scale, valid; C = 3 without),
        zero-padded to a multiple of the patch size; channels-last in memory (the network's strided
        convolutions run ~3x faster on CPU that way).
    s: [T] float32 spline parameter of each frame (0 first, 1 last).
    scale: metres per normalised unit; rot0 [3,3], trans0 [3]: camera 0 pose (world <- cam0).
    size: (H, W) before padding.
    prior: [T, Hp/s, Wp/s, K, 3] float32 flow-prior control-point offsets (normalised camera-0 frame,
        zero at the own frame's time), or None without a flow prior.
    prior_features: [T, 13, Hp/s, Wp/s] float32 the prior's channels per output cell (its curve at
        ``PRIOR_TIMES`` (4 x 3) and its confidence; zero on padding cells), channels-last, or None. The
        network sees them as if upsampled to every pixel of their cell (a cell cut by the image border
        counts whole).
    cells: the output grid's unprojected points [T, ceil(H/s), ceil(W/s), 3] (world) and their validity, as
        ``geometry.grid_points_world(window, s, s // 2)`` (s = out_stride) gives them, where making the prior
        needed them (local anchoring), else None.
    """

    image: torch.Tensor
    s: torch.Tensor
    scale: float
    rot0: np.ndarray
    trans0: np.ndarray
    size: tuple[int, int]
    prior: torch.Tensor | None = None
    prior_features: torch.Tensor | None = None
    cells: tuple[np.ndarray, np.ndarray] | None = None

    def model_args(self, device) -> tuple:
        """The network's arguments for this window as a batch of one on ``device``:
        (image [1,T,C,Hp,Wp], s [1,T], prior [1,T,Hp/s,Wp/s,K,3] or None, prior_features [1,T,13,Hp/s,Wp/s] or None)."""
        def batch(x):
            return None if x is None else x[None].to(device)

        return batch(self.image), batch(self.s), batch(self.prior), batch(self.prior_features)

    def world_to_norm(self, points: np.ndarray) -> np.ndarray:
        """World points [...,3] -> normalised camera-0 coordinates [...,3]."""
        return (np.asarray(points, np.float64) - self.trans0) @ self.rot0 / self.scale

    def norm_to_world_vectors(self, vectors: np.ndarray) -> np.ndarray:
        """Normalised camera-0 displacement vectors [...,3] -> world displacements in metres."""
        return np.asarray(vectors, np.float64) @ self.rot0.T * self.scale


def spline_parameters(times: np.ndarray) -> np.ndarray:
    """[T] seconds -> [T] spline parameters in [0, 1] (0 for a single frame)."""
    times = np.asarray(times, np.float64)
    span = times[-1] - times[0]
    return (times - times[0]) / span if span > 0 else np.zeros_like(times)


def flow_prior(field, rot0: np.ndarray, scale: float, cell_points: np.ndarray | None = None,
               cell_valid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A flow-baseline TrajectoryField (world) as offsets from each cell's own point.

    Without ``cell_points`` each curve is shifted as a whole to pass through the cell's point at its own
    frame's time ("constant" anchoring: the offsets are the curve minus its own-time point). With
    cell_points [T, h, w, 3] (world, the cells' unprojected points) and cell_valid [T, h, w], valid cells
    are "local"-anchored instead: only the control points whose basis is non-zero at the own time move,
    by the least change (in the least-squares sense) that puts the curve on the cell's point there, so the
    fit's miss at that time does not shift the rest of the curve.

    Returns offsets [T, h, w, K, 3] float32 (normalised camera-0 frame, zero at the own frame's time)
    and confidence [T, h, w] in [0, 1].
    """
    from traceany_ros.field import bspline_basis

    cp = np.asarray(field.control_points, np.float32)  # [T,h,w,K,3] world
    t_, h, w, k, _ = cp.shape
    b = bspline_basis(field.frame_parameters(), field.num_control_points).astype(np.float32)  # [T,K]
    # everything is linear in the points: rotate and scale into the camera-0 frame first (one matrix product
    # over all control points); the broadcasts over (curve, control point, axis) run in torch (numpy's inner
    # loops of 3 are ~5x slower here)
    rs = (rot0 / scale).astype(np.float32)
    off = torch.from_numpy((cp.reshape(-1, 3) @ rs).reshape(t_, h * w, k, 3))
    bt = torch.from_numpy(b)
    own = torch.einsum("tk,tnkd->tnd", bt, off)  # [T,h*w,3]
    off -= own[:, :, None, :]
    if cell_points is not None:
        # off' = off + (c - 1) (cell - own), c = b / |b|^2: b.off' = 0 since b.c = b.1 = 1
        coef = bt / (bt * bt).sum(1, keepdim=True) - 1.0  # [T,K]
        cell = torch.from_numpy(np.asarray(cell_points, np.float32).reshape(-1, 3) @ rs)
        miss = (cell.reshape(t_, h * w, 3) - own) * torch.from_numpy(np.asarray(cell_valid).reshape(t_, h * w, 1))
        off += coef[:, None, :, None] * miss[:, :, None, :]
    off = off.reshape(t_, h, w, k, 3).numpy()
    return off, field.confidence


def prior_flow_config(config):
    """The FlowConfig that makes a model config's prior: its tracker on the output grid (stride
    ``out_stride``, same K)."""
    from traceany_ros.tracker.flow import TRACKERS, FlowConfig

    return FlowConfig(**{**TRACKERS[config.flow_tracker], "method": config.flow_method, "stride": config.out_stride,
                         "num_control_points": config.num_control_points})


def compute_flow_field(window: FrameWindow, config):
    """The flow baseline's field on the model's output grid (:func:`prior_flow_config`)."""
    from traceany_ros.tracker.flow import flow_field

    return flow_field(window, prior_flow_config(config))


def prepare_window(window: FrameWindow, config=None, *, flow=None) -> WindowInputs:
    """FrameWindow (rgb [T,H,W,3] uint8, depth [T,H,W], K, cam_to_world [T,4,4], times [T]) -> WindowInputs.

    ``config`` is the model's ModelConfig (default: the tiny-pure preset). With ``config.flow_prior``
    the flow field is computed here unless given as ``flow`` (a TrajectoryField of this window on the
    ``compute_flow_field`` grid, e.g. from a training cache).
    """
    from traceany_ros.field import bspline_basis
    from traceany_ros.model.config import PRIOR_CHANNELS, PRIOR_TIMES, ModelConfig

    config = config or ModelConfig()
    patch_size = config.patch_size
    depth = np.asarray(window.depth, np.float32)
    T, H, W = depth.shape
    ph, pw = (-H) % patch_size, (-W) % patch_size
    c2w = np.asarray(window.cam_to_world, np.float64)
    valid = np.isfinite(depth) & (depth > 0)
    scale = float(np.median(depth[valid])) if valid.any() else 1.0
    scale = max(scale, 0.05)
    rot0, trans0 = c2w[0, :3, :3], c2w[0, :3, 3]

    def pixel_channels():
        """The image [T,Hp,Wp,C] (channels last) and, with local prior anchoring, the output cells' points."""
        rgb = np.asarray(window.rgb)
        K = np.asarray(window.intrinsics, np.float64)
        img = np.zeros((T, H + ph, W + pw, config.image_channels), np.float32)
        img[:, :H, :W, :3] = _RGB_LUT[rgb]  # normalised grey levels by table (= the float arithmetic per pixel)
        if config.use_depth:
            z = np.where(valid, depth, 0.0).astype(np.float32)
            u = ((np.arange(W, dtype=np.float32) - K[0, 2]) / K[0, 0]).astype(np.float32)
            v = ((np.arange(H, dtype=np.float32) - K[1, 2]) / K[1, 1]).astype(np.float32)
            # camera f -> camera 0: R0^T R_f p + R0^T (t_f - t0), divided by scale
            rel_r = (np.einsum("ji,tjk->tik", rot0, c2w[:, :3, :3]) / scale).astype(np.float32)  # [T,3,3]
            rel_t = ((c2w[:, :3, 3] - trans0) @ rot0 / scale).astype(np.float32)  # [T,3]
            pc = (u[None, None, :] * z, v[None, :, None] * z, z)  # each [T,H,W]
            for i in range(3):
                img[:, :H, :W, 3 + i] = (rel_r[:, i, 0, None, None] * pc[0] + rel_r[:, i, 1, None, None] * pc[1]
                                         + rel_r[:, i, 2, None, None] * pc[2] + rel_t[:, i, None, None]) * valid
            img[:, :H, :W, 6] = valid
        cells = None
        if config.flow_prior and config.prior_anchor == "local":
            from traceany_ros.geometry import grid_points_world

            cells = grid_points_world(window, config.out_stride, config.out_stride // 2)
        return img, cells

    prior = feats = None
    if config.flow_prior and flow is None:
        # the pixel channels beside the tracker: its single-threaded stretches leave a core idle
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=1) as pool:
            pixels = pool.submit(pixel_channels)
            field = compute_flow_field(window, config)
            img, cells = pixels.result()
    else:
        field = flow
        img, cells = pixel_channels()
    if config.flow_prior:
        st = config.out_stride
        if config.prior_anchor == "local":
            h, w = field.control_points.shape[1:3]
            off, fconf = flow_prior(field, rot0, scale, cells[0][:, :h, :w], cells[1][:, :h, :w])
        else:
            off, fconf = flow_prior(field, rot0, scale)
        t_, h, w = fconf.shape
        hp, wp = (H + ph) // st, (W + pw) // st
        prior = np.zeros((t_, hp, wp) + off.shape[3:], np.float32)
        prior[:, :h, :w] = off
        # the prior's curve at 4 times and its confidence, per cell: [T,hp,wp,13] (channels last)
        b4 = bspline_basis(np.asarray(PRIOR_TIMES), config.num_control_points).astype(np.float32)  # [4,K]
        feats = np.zeros((t_, hp, wp, PRIOR_CHANNELS), np.float32)
        feats[:, :h, :w, :12] = np.einsum("thwkd,jk->thwjd", off, b4).reshape(t_, h, w, 12)
        feats[:, :h, :w, 12] = fconf
    return WindowInputs(image=torch.from_numpy(img).permute(0, 3, 1, 2),
                        s=torch.from_numpy(spline_parameters(window.times).astype(np.float32)),
                        scale=scale, rot0=rot0, trans0=trans0, size=(H, W),
                        prior=None if prior is None else torch.from_numpy(prior),
                        prior_features=None if feats is None else torch.from_numpy(feats).permute(0, 3, 1, 2),
                        cells=cells)
