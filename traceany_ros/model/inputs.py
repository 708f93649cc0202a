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


@dataclass
class WindowInputs:
    """Network inputs of one window.

    image: [T, C, Hp, Wp] float32 (C = 7 with depth: rgb, camera-0 points / scale, valid; C = 3 without),
        zero-padded to a multiple of the patch size.
    s: [T] float32 spline parameter of each frame (0 first, 1 last).
    scale: metres per normalised unit; rot0 [3,3], trans0 [3]: camera 0 pose (world <- cam0).
    size: (H, W) before padding.
    """

    image: torch.Tensor
    s: torch.Tensor
    scale: float
    rot0: np.ndarray
    trans0: np.ndarray
    size: tuple[int, int]

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


def prepare_window(window: FrameWindow, use_depth: bool = True, patch_size: int = 16) -> WindowInputs:
    """FrameWindow (rgb [T,H,W,3] uint8, depth [T,H,W], K, cam_to_world [T,4,4], times [T]) -> WindowInputs."""
    rgb = np.asarray(window.rgb)
    depth = np.asarray(window.depth, np.float32)
    T, H, W = depth.shape
    K = np.asarray(window.intrinsics, np.float64)
    c2w = np.asarray(window.cam_to_world, np.float64)
    valid = np.isfinite(depth) & (depth > 0)
    scale = float(np.median(depth[valid])) if valid.any() else 1.0
    scale = max(scale, 0.05)
    rot0, trans0 = c2w[0, :3, :3], c2w[0, :3, 3]
    chans = [(rgb.astype(np.float32) / 255.0 - RGB_MEAN) / RGB_STD]  # [T,H,W,3]
    if use_depth:
        z = np.where(valid, depth, 0.0).astype(np.float32)
        rows, cols = np.mgrid[0:H, 0:W].astype(np.float32)
        pc = np.stack([(cols - K[0, 2]) / K[0, 0] * z, (rows - K[1, 2]) / K[1, 1] * z, z], -1)  # [T,H,W,3]
        # camera f -> camera 0: R0^T R_f p + R0^T (t_f - t0)
        rel_r = np.einsum("ji,tjk->tik", rot0, c2w[:, :3, :3]).astype(np.float32)  # [T,3,3]
        rel_t = ((c2w[:, :3, 3] - trans0) @ rot0).astype(np.float32)  # [T,3]
        p0 = np.einsum("tij,thwj->thwi", rel_r, pc) + rel_t[:, None, None, :]
        p0 = np.where(valid[..., None], p0 / scale, 0.0)
        chans += [p0.astype(np.float32), valid[..., None].astype(np.float32)]
    img = np.concatenate(chans, -1).transpose(0, 3, 1, 2)  # [T,C,H,W]
    ph, pw = (-H) % patch_size, (-W) % patch_size
    if ph or pw:
        img = np.pad(img, ((0, 0), (0, 0), (0, ph), (0, pw)))
    return WindowInputs(image=torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32)),
                        s=torch.from_numpy(spline_parameters(window.times).astype(np.float32)),
                        scale=scale, rot0=rot0, trans0=trans0, size=(H, W))
