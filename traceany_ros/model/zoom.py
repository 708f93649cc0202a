"""Finer cells by zooming the window: the network sees every image ``factor`` times larger.

The network's query cells are 2 x stride pixels (16 for ``tiny``), larger than a small object far from the
camera. Upsampled ``factor`` times, with the zoomed pixel u' sampling the image at u = u' / factor (colour
linearly, depth from the nearest pixel: no depth between two surfaces) and the intrinsics scaled to match
(f' = factor f, c' = factor c), the window shows the same world in ``factor``^2 as many cells, and the
field's cell centres land on the original image's pixels: zoomed cell i at factor x (offset + stride i)
-> original pixel offset / factor + (stride / factor) i. Cost grows with the pixels (factor^2) and more.

Zooming into the moving region only (:func:`moving_box`, :func:`crop_window`) gives the fine cells where
something moves at about the cost of one pass over the whole window: the first pass finds the cells the
network thinks move, the second sees a crop around them zoomed in.
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


def crop_window(window, box: tuple[int, int, int, int]) -> FrameWindow:
    """The window's pixels rows r0:r1, cols c0:c1 (``box`` = (r0, r1, c0, c1)) as a window of their own:
    the same world, the principal point moved to the crop's corner."""
    r0, r1, c0, c1 = (int(v) for v in box)
    H, W = np.asarray(window.depth).shape[1:]
    if not (0 <= r0 < r1 <= H and 0 <= c0 < c1 <= W):
        raise ValueError(f"crop box {box} is not inside the {H}x{W} image")
    K = np.asarray(window.intrinsics, np.float32).copy()
    K[0, 2] -= c0
    K[1, 2] -= r0
    return FrameWindow(rgb=np.ascontiguousarray(np.asarray(window.rgb)[:, r0:r1, c0:c1]),
                       depth=np.ascontiguousarray(np.asarray(window.depth)[:, r0:r1, c0:c1]), intrinsics=K,
                       cam_to_world=window.cam_to_world, times=window.times)


def moving_box(field: TrajectoryField, pad: int = 24, align: int = 16, threshold: float = 0.5):
    """Pixel box (r0, r1, c0, c1) around every cell whose motion probability exceeds ``threshold`` in any
    frame, grown by ``pad`` pixels and out to multiples of ``align``, inside the image; None when no cell
    moves (or the field has no motion estimate)."""
    if field.motion is None or field.image_size is None:
        return None
    moving = (field.motion > threshold).any(0)
    if not moving.any():
        return None
    ij = np.argwhere(moving) * field.stride + field.pixel_offset
    H, W = field.image_size
    r0, c0 = ((ij.min(0) - pad).clip(0) // align) * align
    r1, c1 = -(-(ij.max(0) + 1 + pad) // align) * align
    return int(r0), int(min(r1, H)), int(c0), int(min(c1, W))
