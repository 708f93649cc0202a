"""Camera geometry: the floor every other module stands on (numpy; the network's batched versions in torch).

One convention throughout: OpenCV camera frame (x right, y down, z forward), pixel (row r, column c)
with its centre at (u, v) = (c, r), poses ``cam_to_world`` [4,4] (world <- camera), metres.

    unproject(depth [H,W], K [3,3], cam_to_world [4,4])          -> world points [H,W,3]
    unproject_pixels(depth [T,H,W], K, cam_to_world [T,4,4], px)  -> world points [N,3] of (frame, row, col)
    project(points [...,3], K, cam_to_world [4,4])                -> (rows, cols, z)
    check_window(window)                                          -> (T, H, W), or ValueError naming the bad field
    grid_points_world(window, stride, offset)                     -> a strided pixel grid's world points [T,h,w,3]
    cell_grid(H, W, stride)                                       -> (h, w, offset) of a cell grid
    unproject_cells(depth [B,T,H,W], K [B,3,3], poses [B,T,4,4], s) -> torch points [B,T,h,w,3], valid
    project_batch(points [B,T,N,3], K [B,3,3], poses [B,T,4,4])   -> torch pixels (u, v) [B,T,N,2], depth z

A "window" is anything with the fields of :class:`traceany_ros.episode.FrameWindow` (rgb [T,H,W,3],
depth [T,H,W], intrinsics [3,3], cam_to_world [T,4,4], times [T]).
"""
from __future__ import annotations

import numpy as np


def unproject(depth: np.ndarray, K: np.ndarray, cam_to_world: np.ndarray) -> np.ndarray:
    """World points of every pixel: depth [H,W] (m), K [3,3], cam_to_world [4,4] -> [H,W,3] float64.

    Pixel (r, c) has its centre at (u, v) = (c, r); camera frame is OpenCV's.
    Invalid depth (0) gives the camera centre; mask with ``depth > 0``.
    """
    depth = np.asarray(depth, dtype=np.float64)
    H, W = depth.shape
    K = np.asarray(K, dtype=np.float64)
    rows, cols = np.mgrid[0:H, 0:W]
    x = (cols - K[0, 2]) / K[0, 0] * depth
    y = (rows - K[1, 2]) / K[1, 1] * depth
    pc = np.stack([x, y, depth], axis=-1)
    T = np.asarray(cam_to_world, dtype=np.float64)
    return pc @ T[:3, :3].T + T[:3, 3]


def unproject_pixels(depth: np.ndarray, K: np.ndarray, cam_to_world: np.ndarray,
                     pixels: np.ndarray) -> np.ndarray:
    """World points of selected pixels.

    depth [T,H,W], K [3,3], cam_to_world [T,4,4], pixels [N,3] (frame,row,col) -> [N,3] float64.
    """
    pixels = np.asarray(pixels, dtype=np.int64).reshape(-1, 3)
    f, r, c = pixels[:, 0], pixels[:, 1], pixels[:, 2]
    K = np.asarray(K, dtype=np.float64)
    z = np.asarray(depth, dtype=np.float64)[f, r, c]
    pc = np.stack([(c - K[0, 2]) / K[0, 0] * z, (r - K[1, 2]) / K[1, 1] * z, z], axis=-1)
    T = np.asarray(cam_to_world, dtype=np.float64)[f]
    return np.einsum("nij,nj->ni", T[:, :3, :3], pc) + T[:, :3, 3]


def project(points_world: np.ndarray, K: np.ndarray, cam_to_world: np.ndarray):
    """Project world points [...,3] through K [3,3] and one pose [4,4].

    Returns (rows [...], cols [...], z [...]) as float64; z is the camera-axis depth.
    """
    T = np.asarray(cam_to_world, dtype=np.float64)
    R, t = T[:3, :3], T[:3, 3]
    pc = (np.asarray(points_world, dtype=np.float64) - t) @ R  # R^T (p - t)
    K = np.asarray(K, dtype=np.float64)
    z = pc[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        cols = K[0, 0] * pc[..., 0] / z + K[0, 2]
        rows = K[1, 1] * pc[..., 1] / z + K[1, 2]
    return rows, cols, z


def check_window(window) -> tuple[int, int, int]:
    """Validate a window's shapes; returns (T, H, W). Raises ValueError naming the bad field."""
    rgb, depth = np.asarray(window.rgb), np.asarray(window.depth)
    if rgb.ndim != 4 or rgb.shape[-1] != 3:
        raise ValueError(f"FrameWindow.rgb must be [T,H,W,3] uint8, got shape {rgb.shape}")
    t, h, w = rgb.shape[:3]
    if depth.shape != (t, h, w):
        raise ValueError(f"FrameWindow.depth must be [T,H,W] = {(t, h, w)} like rgb, got {depth.shape}")
    if np.asarray(window.intrinsics).shape != (3, 3):
        raise ValueError(f"FrameWindow.intrinsics must be [3,3], got {np.asarray(window.intrinsics).shape}")
    if np.asarray(window.cam_to_world).shape != (t, 4, 4):
        raise ValueError(f"FrameWindow.cam_to_world must be [T,4,4] = {(t, 4, 4)}, "
                         f"got {np.asarray(window.cam_to_world).shape}")
    times = np.asarray(window.times, np.float64).reshape(-1)
    if times.shape[0] != t:
        raise ValueError(f"FrameWindow.times must have T={t} entries, got {times.shape[0]}")
    if t > 1 and not np.all(np.diff(times) > 0):
        raise ValueError("FrameWindow.times must be strictly increasing")
    return t, h, w


def grid_points_world(window, stride: int = 1, offset: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """World points of a pixel grid of every frame.

    Returns:
        points [T, h, w, 3] float64 (pixel rows ``offset + stride * i``), and
        valid [T, h, w] bool (depth > 0 and finite). Invalid pixels are filled
        with the unprojection at the frame's median valid depth, so they stay
        finite (give them zero confidence).
    """
    t, h, w = check_window(window)
    out, valid = [], []
    for f in range(t):
        d = np.asarray(window.depth[f], np.float64)[offset::stride, offset::stride]
        ok = np.isfinite(d) & (d > 0)
        fill = float(np.median(d[ok])) if ok.any() else 1.0
        d = np.where(ok, d, fill)
        # unproject a strided depth map: scale the intrinsics to the grid
        k = np.asarray(window.intrinsics, np.float64).copy()
        k[0, 0] /= stride
        k[1, 1] /= stride
        k[0, 2] = (k[0, 2] - offset) / stride
        k[1, 2] = (k[1, 2] - offset) / stride
        out.append(unproject(d, k, window.cam_to_world[f]))
        valid.append(ok)
    return np.stack(out), np.stack(valid)


def cell_grid(H: int, W: int, stride: int) -> tuple[int, int, int]:
    """(h, w, offset): the output grid of an H x W image; cell (a, b) looks at pixel
    (offset + stride a, offset + stride b)."""
    return -(-H // stride), -(-W // stride), stride // 2


def unproject_cells(depth, K, cam_to_norm, stride: int):
    """depth [B,T,H,W], K [B,3,3], cam_to_norm [B,T,4,4] -> points [B,T,h,w,3] (normalised frame, depth
    divided by the caller's scale beforehand) and valid [B,T,h,w] at the cells' pixels (torch tensors)."""
    import torch

    B, T, H, W = depth.shape
    h, w, off = cell_grid(H, W, stride)
    rows = (off + stride * torch.arange(h, device=depth.device)).clamp(max=H - 1)
    cols = (off + stride * torch.arange(w, device=depth.device)).clamp(max=W - 1)
    z = depth[:, :, rows][:, :, :, cols]  # [B,T,h,w]
    valid = z > 0
    fx, fy, cx, cy = (K[:, 0, 0], K[:, 1, 1], K[:, 0, 2], K[:, 1, 2])
    x = (cols.float()[None, :] - cx[:, None]) / fx[:, None]  # [B,w]
    y = (rows.float()[None, :] - cy[:, None]) / fy[:, None]  # [B,h]
    zc = torch.where(valid, z, torch.ones_like(z))
    pc = torch.stack([x[:, None, None, :] * zc, y[:, None, :, None] * zc, zc], -1)  # [B,T,h,w,3]
    R, t = cam_to_norm[:, :, :3, :3], cam_to_norm[:, :, :3, 3]
    pn = torch.einsum("btij,bthwj->bthwi", R, pc) + t[:, :, None, None]
    return pn, valid


def project_batch(points, K, cam_to_norm):
    """Points [B,T,N,3] (in the frame the poses cam_to_norm [B,T,4,4] map each camera into), seen from each
    frame's camera -> pixel (u = col, v = row) [B,T,N,2] and
    camera depth z [B,T,N] (units); torch tensors, batched over windows and frames."""
    import torch

    R, t = cam_to_norm[:, :, :3, :3], cam_to_norm[:, :, :3, 3]
    pc = torch.einsum("btji,btnj->btni", R, points - t[:, :, None])  # R^T (x - t)
    z = pc[..., 2]
    zs = torch.where(z.abs() < 1e-4, torch.full_like(z, 1e-4), z)
    u = K[:, None, None, 0, 0] * pc[..., 0] / zs + K[:, None, None, 0, 2]
    v = K[:, None, None, 1, 1] * pc[..., 1] / zs + K[:, None, None, 1, 2]
    return torch.stack([u, v], -1), z
