"""Preprocessing, in torch: a FrameWindow -> the network's input tensors and the normalised frame.

The network works in a *normalised camera-0 frame*: axes of the first frame's camera (OpenCV), origin at
its centre, metres divided by ``scale`` (the median valid depth of the observed frames), so the model
stays metric once its outputs are mapped back with the same numbers.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np
import torch

from traceany_ros.episode import FrameWindow


@dataclass
class WindowTensors:
    """A window as the network's input (batch B, frames T).

    rgb [B,T,3,H,W] uint8; depth [B,T,H,W] float32 metres (0 = invalid); K [B,3,3]; cam_to_world [B,T,4,4]
    (world <- camera, OpenCV); times [B,T] float64 seconds (strictly increasing); observed [B,T] bool
    (False: the frame's images are hidden, its time is still predicted).
    """

    rgb: torch.Tensor
    depth: torch.Tensor
    K: torch.Tensor
    cam_to_world: torch.Tensor
    times: torch.Tensor
    observed: torch.Tensor

    def to(self, device) -> "WindowTensors":
        return WindowTensors(*(getattr(self, f.name).to(device) for f in fields(self)))


def window_tensors(window, observed=None) -> WindowTensors:
    """A FrameWindow (numpy, one clip) -> WindowTensors with B = 1."""

    T = len(window.times)
    obs = np.ones(T, bool) if observed is None else np.asarray(observed, bool)
    return WindowTensors(
        rgb=torch.from_numpy(np.ascontiguousarray(np.asarray(window.rgb, np.uint8))).permute(0, 3, 1, 2)[None],
        depth=torch.from_numpy(np.nan_to_num(np.asarray(window.depth, np.float32)))[None],
        K=torch.from_numpy(np.asarray(window.intrinsics, np.float32))[None],
        cam_to_world=torch.from_numpy(np.asarray(window.cam_to_world, np.float32))[None],
        times=torch.from_numpy(np.asarray(window.times, np.float64))[None],
        observed=torch.from_numpy(obs)[None])


@dataclass
class Normalised:
    """The window in the normalised camera-0 frame: x_n = R0^T (x_w - t0) / scale.

    scale [B] metres per unit (median valid depth of the observed frames); rot0 [B,3,3], trans0 [B,3];
    cam_to_norm [B,T,4,4] (camera f -> normalised frame, translation in units); s [B,T] spline parameter;
    span [B] seconds between s = 0 and s = 1.
    """

    scale: torch.Tensor
    rot0: torch.Tensor
    trans0: torch.Tensor
    cam_to_norm: torch.Tensor
    s: torch.Tensor
    span: torch.Tensor

    def to_world(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised points [B,...,3] -> world metres."""
        B = x.shape[0]
        flat = x.reshape(B, -1, 3) * self.scale[:, None, None]
        return (flat @ self.rot0.transpose(1, 2) + self.trans0[:, None]).reshape(x.shape)

    def to_norm(self, x: torch.Tensor) -> torch.Tensor:
        """World points [B,...,3] -> normalised."""
        B = x.shape[0]
        flat = (x.reshape(B, -1, 3) - self.trans0[:, None]) @ self.rot0 / self.scale[:, None, None]
        return flat.reshape(x.shape)


def normalise(w: WindowTensors) -> Normalised:
    c2w = w.cam_to_world.double()
    rot0, trans0 = c2w[:, 0, :3, :3], c2w[:, 0, :3, 3]
    valid = (w.depth > 0) & w.observed[:, :, None, None]
    scale = []
    for b in range(w.depth.shape[0]):
        d = w.depth[b][valid[b]]
        scale.append(d.median() if d.numel() else torch.ones((), dtype=w.depth.dtype, device=w.depth.device))
    scale = torch.stack(scale).double().clamp_min(0.05)
    c2n = torch.zeros_like(c2w)
    c2n[:, :, :3, :3] = rot0.transpose(1, 2)[:, None] @ c2w[:, :, :3, :3]
    c2n[:, :, :3, 3] = ((c2w[:, :, :3, 3] - trans0[:, None]) @ rot0) / scale[:, None, None]
    c2n[:, :, 3, 3] = 1
    t = w.times.double()
    span = (t[:, -1] - t[:, 0]).clamp_min(1e-6)
    s = ((t - t[:, :1]) / span[:, None])
    return Normalised(scale=scale.float(), rot0=rot0.float(), trans0=trans0.float(), cam_to_norm=c2n.float(),
                      s=s.float(), span=span.float())


def hidden_frames(window, future_s: float):
    """The window with hidden frames appended up to ``future_s`` past its last frame (at its median frame
    interval; images zero, camera at its last pose) -> (window, observed [T'])."""


    times = np.asarray(window.times, np.float64)
    T = len(times)
    if future_s <= 0:
        return window, np.ones(T, bool)
    dt = float(np.median(np.diff(times))) if T > 1 else 1 / 15
    n = max(1, int(math.ceil(future_s / dt - 1e-6)))
    extra = times[-1] + dt * np.arange(1, n + 1)
    extra[-1] = times[-1] + future_s
    rgb, depth = np.asarray(window.rgb), np.asarray(window.depth, np.float32)
    c2w = np.asarray(window.cam_to_world)
    win = FrameWindow(rgb=np.concatenate([rgb, np.zeros((n,) + rgb.shape[1:], rgb.dtype)]),
                      depth=np.concatenate([depth, np.zeros((n,) + depth.shape[1:], np.float32)]),
                      intrinsics=window.intrinsics, cam_to_world=np.concatenate([c2w, np.repeat(c2w[-1:], n, 0)]),
                      times=np.concatenate([times, extra]))
    return win, np.arange(T + n) < T
