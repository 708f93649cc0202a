"""Pictures of trajectory fields: curves projected into images, coloured by time.

No ROS, no simulator: images (uint8 RGB), intrinsics [3,3], cam_to_world [4,4]
(world <- OpenCV optical camera) and a :class:`~traceany_ros.field.TrajectoryField`.
"""
from __future__ import annotations

import numpy as np

from traceany_ros.field import TrajectoryField
from traceany_ros.geometry import project


def time_colours(n: int, cmap: str = "turbo") -> np.ndarray:
    """[n, 3] uint8 RGB colours from early (blue) to late (red)."""
    from matplotlib import colormaps

    return (colormaps[cmap](np.linspace(0.0, 1.0, max(n, 1)))[:, :3] * 255).astype(np.uint8)


def upscale(rgb: np.ndarray, scale: int = 3) -> np.ndarray:
    """[H, W, 3] uint8 -> [H*scale, W*scale, 3], nearest neighbour (small sim images read better larger)."""
    import cv2

    return cv2.resize(np.ascontiguousarray(rgb, np.uint8), None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)


def draw_curves(rgb: np.ndarray, curves_world: np.ndarray, intrinsics: np.ndarray, cam_to_world: np.ndarray,
                scale: int = 3, thickness: int = 1, dot_index: int | None = None, dim: float = 0.6) -> np.ndarray:
    """Draw 3D curves into an image.

    Args:
        rgb: [H, W, 3] uint8 background.
        curves_world: [N, M, 3] world points of N curves sampled at M times (early -> late).
        scale: the picture is upsampled by this factor so thin lines stay readable.
        dot_index: sample index marked with a dot (e.g. the frame's own time).
        dim: background brightness factor, so the curves stand out.
    Returns:
        [H*scale, W*scale, 3] uint8 picture; segments coloured by time (blue -> red).
    """
    import cv2

    img = (dim * upscale(rgb, scale)).astype(np.uint8)
    rows, cols_, z = project(curves_world, intrinsics, cam_to_world)
    uv = np.stack([cols_, rows], -1)
    ok = (z > 1e-3) & np.isfinite(uv).all(-1)
    uv = np.round(np.nan_to_num(uv) * scale + (scale - 1) / 2.0).astype(np.int64)
    cols = time_colours(curves_world.shape[1] - 1)
    lim = 4 * max(img.shape)
    for n in range(curves_world.shape[0]):
        for m in range(curves_world.shape[1] - 1):
            if ok[n, m] and ok[n, m + 1] and np.abs(uv[n, m:m + 2]).max() < lim:
                cv2.line(img, tuple(map(int, uv[n, m])), tuple(map(int, uv[n, m + 1])),
                         tuple(int(c) for c in cols[m]), thickness, cv2.LINE_AA)
        if dot_index is not None and ok[n, dot_index]:
            cv2.circle(img, tuple(map(int, uv[n, dot_index])), thickness + 1, (255, 255, 255), -1, cv2.LINE_AA)
    return img


def field_curves(field: TrajectoryField, frame: int, samples: int = 16, max_curves: int = 300,
                 moving_only: bool = True, min_confidence: float = 0.0, mask: np.ndarray | None = None,
                 min_motion: float = 0.0, seed: int = 0):
    """Curves of one frame's field pixels over the field's time span.

    Args:
        moving_only: keep pixels of ``TrajectoryField.dynamic_mask`` only.
        mask: optional [H, W] bool of the field grid to keep (e.g. an object's pixels).
        min_motion: keep curves that get at least this far (m) from their start within the span.
    Returns (curves [N, samples, 3] world, index of the sample nearest the frame's own time);
    at most ``max_curves`` curves, chosen at random (seeded).
    """
    t = np.linspace(field.time_span[0], field.time_span[1], samples)
    pos = field.positions(t, frames=[frame])[0]  # [H, W, S, 3]
    keep = field.confidence[frame] >= min_confidence
    if moving_only:
        keep &= field.dynamic_mask()[frame]
    if mask is not None:
        keep &= np.asarray(mask, bool)
    if min_motion > 0:
        keep &= np.linalg.norm(pos - pos[:, :, :1], axis=-1).max(-1) >= min_motion
    idx = np.argwhere(keep & np.isfinite(pos).all((-1, -2)))
    if len(idx) > max_curves:
        idx = idx[np.random.default_rng(seed).choice(len(idx), max_curves, replace=False)]
    own = int(np.argmin(np.abs(t - field.times[frame])))
    return pos[idx[:, 0], idx[:, 1]], own


def label(img: np.ndarray, text: str) -> np.ndarray:
    """Write a caption in the top-left corner (white on a dark band)."""
    import cv2

    out = np.ascontiguousarray(img).copy()
    cv2.rectangle(out, (0, 0), (out.shape[1], 22), (0, 0, 0), -1)
    cv2.putText(out, text, (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return out
