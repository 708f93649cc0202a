"""Finer cells by zooming the window: the network sees every image ``factor`` times larger.

The network's query cells are 2 x stride pixels (16 for ``tiny``), larger than a small object far from the
camera. Upsampled ``factor`` times, with the zoomed pixel u' sampling the image at u = u' / factor (colour
linearly, depth from the nearest pixel: no depth between two surfaces) and the intrinsics scaled to match
(f' = factor f, c' = factor c), the window shows the same world in ``factor``^2 as many cells, and the
field's cell centres land on the original image's pixels: zoomed cell i at factor x (offset + stride i)
-> original pixel offset / factor + (stride / factor) i. Cost grows with the pixels (factor^2) and more.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from traceany_ros.episode import FrameWindow
from traceany_ros.field import TrajectoryField


def check_zoom(factor: int, stride: int) -> int:
    factor = int(factor)
    if factor < 1 or (stride // 2) % factor:
        raise ValueError(f"zoom must be 1 or divide the half cell ({stride // 2} pixels), got {factor}")
    return factor


def zoom_window(window, factor: int) -> FrameWindow:
    """The window ``factor`` times larger (see the module docstring); ``factor`` 1 returns it as it is."""
    if factor == 1:
        return window
    rgb = torch.from_numpy(np.asarray(window.rgb)).permute(0, 3, 1, 2).float()  # [T,3,H,W]
    depth = torch.from_numpy(np.asarray(window.depth, np.float32))
    T, _, H, W = rgb.shape
    # sample the image at u = u' / factor: a grid in align_corners=True coordinates of the original pixels
    ys = torch.arange(H * factor, dtype=torch.float32) / factor
    xs = torch.arange(W * factor, dtype=torch.float32) / factor
    gy, gx = torch.meshgrid(ys / max(H - 1, 1) * 2 - 1, xs / max(W - 1, 1) * 2 - 1, indexing="ij")
    grid = torch.stack([gx, gy], -1)[None].expand(T, -1, -1, -1)
    big = F.grid_sample(rgb, grid, mode="bilinear", padding_mode="border", align_corners=True)
    rows = torch.div(torch.arange(H * factor), factor, rounding_mode="floor")
    cols = torch.div(torch.arange(W * factor), factor, rounding_mode="floor")
    big_depth = depth[:, rows][:, :, cols]
    K = np.asarray(window.intrinsics, np.float64).copy()
    K[:2] *= factor
    return FrameWindow(rgb=big.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy(),
                       depth=big_depth.numpy(), intrinsics=K.astype(np.float32),
                       cam_to_world=window.cam_to_world, times=window.times)


def unzoom_field(field: TrajectoryField, factor: int, image_size: tuple[int, int]) -> TrajectoryField:
    """A field predicted on ``zoom_window(window, factor)`` as a field of the window's own pixels."""
    if factor == 1:
        return field
    return field._replace(stride=field.stride // factor, pixel_offset=field.pixel_offset // factor,
                          image_size=tuple(image_size), meta={**field.meta, "zoom": int(factor)})
