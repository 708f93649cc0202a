"""Frame sources without ROS: an episode file and RealSense (live camera or recording).

Every source yields :class:`Frame` objects (rgb [H,W,3] uint8, depth [H,W]
float32 metres with 0 = invalid, intrinsics [3,3], cam_to_world [4,4] or None,
``stamp`` in seconds of the source's own clock, running ``index``). The ROS
camera nodes only turn them into messages.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Frame:
    """One aligned RGB-D frame.

    rgb [H, W, 3] uint8; depth [H, W] float32 metres (0 = invalid, aligned to rgb);
    intrinsics [3, 3]; cam_to_world [4, 4] world <- camera (OpenCV optical) or None
    when the source does not know it; stamp: seconds (source clock); index: frame number.
    """

    rgb: np.ndarray
    depth: np.ndarray
    intrinsics: np.ndarray
    cam_to_world: np.ndarray | None
    stamp: float
    index: int


__all__ = ["Frame"]
