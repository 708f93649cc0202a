"""Pictures of plans for demos and reports (OpenCV drawing on the camera image).

    img = draw_plan(rgb, K, cam_to_world, plan)        # [H,W,3] uint8, waypoints projected and labelled
"""
from __future__ import annotations

import numpy as np

from traceany_ros.geometry import project

_COLOURS = {"pre-grasp": (255, 200, 0), "grasp": (255, 60, 60), "lift": (255, 140, 0), "carry": (200, 0, 200),
            "place": (0, 170, 255), "release": (0, 220, 120), "pre-block": (255, 200, 0), "block": (255, 60, 60)}


def draw_plan(rgb: np.ndarray, intrinsics: np.ndarray, cam_to_world: np.ndarray, plan, scale: int = 3,
              object_points: np.ndarray | None = None, forecast: np.ndarray | None = None) -> np.ndarray:
    """The plan's waypoints (and optionally object points [N,3] and a forecast path [M,3]) on the image.

    Args:
        rgb: [H,W,3] uint8 view; intrinsics [3,3]; cam_to_world [4,4] (OpenCV optical).
        plan: :class:`~traceany_ros.policies.plan.Plan`.
        scale: upsampling factor of the output (small sim images read better larger).
    Returns:
        [H*scale, W*scale, 3] uint8.
    """
    import cv2

    from traceany_ros.viz import upscale

    img = upscale(rgb, scale)

    def px(points):
        r, c, z = project(np.asarray(points, np.float64).reshape(-1, 3), intrinsics, cam_to_world)
        ok = z > 0
        return np.stack([c * scale + scale / 2, r * scale + scale / 2], -1), ok

    if object_points is not None and len(object_points):
        p, ok = px(object_points)
        for u, v in p[ok].astype(int)[:: max(1, int(ok.sum()) // 400)]:
            cv2.circle(img, (int(u), int(v)), 1, (255, 255, 0), -1)
    if forecast is not None and len(forecast) > 1:
        p, ok = px(forecast)
        cv2.polylines(img, [p[ok].astype(np.int32)], False, (255, 0, 255), 1, cv2.LINE_AA)
    if plan.waypoints:
        p, ok = px([w.position for w in plan.waypoints])
        cv2.polylines(img, [p[ok].astype(np.int32)], False, (40, 40, 40), 1, cv2.LINE_AA)
        for (u, v), good, w in zip(p, ok, plan.waypoints):
            if not good:
                continue
            col = _COLOURS.get(w.label, (0, 0, 0))
            cv2.circle(img, (int(u), int(v)), 4, col, -1, cv2.LINE_AA)
            cv2.putText(img, w.label, (int(u) + 5, int(v) - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.35, col, 1, cv2.LINE_AA)
    status = "plan ok" if plan.success else f"no plan: {plan.message[:60]}"
    cv2.putText(img, status, (6, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    return img
