"""Spatio-temporal fusion: the scene at one instant from every frame of a clip.

Every frame's curves are evaluated at the reference time t
(:meth:`TrajectoryField.fuse`) and merged into one open3d point cloud,
filtered by confidence; a moving object's points from all frames line up at
its position at t instead of smearing along its path.

    cloud = fuse(field, t, rgb=window.rgb)      # open3d.geometry.PointCloud
    save_ply(cloud, "fused.ply"); render_png(cloud, "fused.png")
"""
from __future__ import annotations

from pathlib import Path

import numpy as np


def fuse(field, t: float, min_confidence: float | None = None, rgb: np.ndarray | None = None,
         frames=None, voxel: float | None = None):
    """Open3d point cloud of the scene at time ``t`` (seconds) from all (or ``frames``) source frames.

    Args:
        field: TrajectoryField (world frame).
        t: reference time, seconds (within or past the clip).
        min_confidence: drop points below this confidence; default: the median confidence of
            the confident (> 0) pixels times 0.5.
        rgb: optional [T,H,W,3] uint8 source images, to colour each point by the pixel it came from.
        voxel: optional voxel size (m) to downsample the merged cloud.
    Returns:
        ``open3d.geometry.PointCloud`` (points [N,3]; colours when ``rgb`` is given).
    """
    import open3d as o3d

    if min_confidence is None:
        c = field.confidence[field.confidence > 0]
        min_confidence = 0.5 * float(np.median(c)) if c.size else 0.0
    pts, conf, idx = field.fuse(float(t), min_confidence=min_confidence, frames=frames)
    cloud = o3d.geometry.PointCloud()
    cloud.points = o3d.utility.Vector3dVector(pts.astype(np.float64))
    if rgb is not None:
        rgb = np.asarray(rgb)
        rows, cols = field.pixel_grid()
        r = np.clip(rows[idx[:, 1]], 0, rgb.shape[1] - 1)
        c_ = np.clip(cols[idx[:, 2]], 0, rgb.shape[2] - 1)
        cloud.colors = o3d.utility.Vector3dVector(rgb[idx[:, 0], r, c_].astype(np.float64) / 255.0)
    if voxel:
        cloud = cloud.voxel_down_sample(float(voxel))
    return cloud


def save_ply(cloud, path: str | Path) -> Path:
    """Write the cloud as PLY (binary); returns the path."""
    import open3d as o3d

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not o3d.io.write_point_cloud(str(path), cloud):
        raise OSError(f"open3d could not write {path}; is the directory writable?")
    return path


def render_png(cloud, path: str | Path, title: str = "", elev: float = 35.0, azim: float = -160.0,
               max_points: int = 30000, extra: dict | None = None) -> Path:
    """Render the cloud to a PNG with matplotlib (no display needed).

    ``extra`` may map a label to [N,3] points drawn on top (e.g. a plan's waypoints).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = np.asarray(cloud.points)
    cols = np.asarray(cloud.colors) if cloud.has_colors() else None
    if len(pts) > max_points:
        sel = np.random.default_rng(0).choice(len(pts), max_points, replace=False)
        pts = pts[sel]
        cols = cols[sel] if cols is not None else None
    fig = plt.figure(figsize=(6, 5), dpi=110)
    ax = fig.add_subplot(111, projection="3d")
    if len(pts):
        ax.scatter(pts[:, 0], pts[:, 1], pts[:, 2], s=0.6, c=cols if cols is not None else pts[:, 2],
                   depthshade=False)
    for label, p in (extra or {}).items():
        p = np.asarray(p).reshape(-1, 3)
        ax.plot(p[:, 0], p[:, 1], p[:, 2], "o-", ms=3, label=label)
    if extra:
        ax.legend(loc="upper left", fontsize=7)
    ax.view_init(elev=elev, azim=azim)
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")
    ax.set_zlabel("z (m)")
    if len(pts):
        lo, hi = pts.min(0), pts.max(0)
        span = max(float((hi - lo).max()), 1e-3) / 2
        mid = (lo + hi) / 2
        ax.set_xlim(mid[0] - span, mid[0] + span)
        ax.set_ylim(mid[1] - span, mid[1] + span)
        ax.set_zlim(max(lo[2], mid[2] - span), max(lo[2], mid[2] - span) + span)
    ax.set_title(title or f"fused cloud: {len(np.asarray(cloud.points))} points", fontsize=9)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
