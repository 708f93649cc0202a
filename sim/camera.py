"""Pinhole camera for PyBullet's TinyRenderer, in the project's OpenCV conventions.

- ``intrinsics(cfg)``: K [3,3] from the vertical field of view, with TinyRenderer's
  measured pixel sampling offset folded into the principal point, so that
  ``traceany_ros.geometry.unproject`` of the rendered depth lands on the surface.
- ``look_at`` / ``view_matrix``: OpenCV cam_to_world [4,4] <-> PyBullet's OpenGL view matrix.
- ``linearize_depth``: OpenGL depth buffer -> metric z-depth (0 where nothing was hit).
- ``render``: RGB [H,W,3] uint8, depth [H,W] float32, segmentation (body [H,W], link [H,W]).

Pixel (row r, col c) has its centre at (u, v) = (c, r). TinyRenderer samples
pixel (r, c) at (u, v) = (c + SAMPLE_OFFSET[0], r + SAMPLE_OFFSET[1]) of the
naive grid whose principal point is ((W-1)/2, (H-1)/2); measured with a tilted
plane (``measure_sample_offset``; test ``tests/integration/test_sim_camera.py``).
"""
from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass

import numpy as np

# Measured (see measure_sample_offset): TinyRenderer's sample point of pixel (r, c), relative to (c, r),
# in the naive centre-at-integer grid.
SAMPLE_OFFSET = (-0.5, 0.5)

# pybullet's ER_SEGMENTATION_MASK_OBJECT_AND_LINKINDEX encoding
_OBJ_BITS = (1 << 24) - 1
_OPENCV_FROM_GL = np.diag([1.0, -1.0, -1.0, 1.0])


@dataclass(frozen=True)
class CameraConfig:
    """Image size in pixels, vertical field of view in degrees, clip planes in metres."""

    width: int = 256
    height: int = 192
    fov_deg: float = 55.0
    near: float = 0.02
    far: float = 8.0


def intrinsics(cfg: CameraConfig, sample_offset: tuple[float, float] = SAMPLE_OFFSET) -> np.ndarray:
    """K [3,3] float64 such that K @ [X/Z, Y/Z, 1] = (c, r) of the pixel that sees (X, Y, Z).

    The sample of pixel (r, c) lies at naive (c + du, r + dv); hence cx = (W-1)/2 - du, cy = (H-1)/2 - dv.
    """
    f = 0.5 * cfg.height / np.tan(np.deg2rad(cfg.fov_deg) / 2.0)
    du, dv = sample_offset
    return np.array([[f, 0.0, (cfg.width - 1) / 2.0 - du],
                     [0.0, f, (cfg.height - 1) / 2.0 - dv],
                     [0.0, 0.0, 1.0]])


def projection_matrix(client, cfg: CameraConfig) -> list[float]:
    """PyBullet (OpenGL) projection matrix for ``cfg``."""
    return client.computeProjectionMatrixFOV(fov=cfg.fov_deg, aspect=cfg.width / cfg.height,
                                             nearVal=cfg.near, farVal=cfg.far)


def look_at(eye, target, up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """OpenCV cam_to_world [4,4]: camera at ``eye`` looking at ``target``, image 'up' towards ``up``."""
    eye, target, up = (np.asarray(v, dtype=np.float64) for v in (eye, target, up))
    z = target - eye
    z /= np.linalg.norm(z)
    x = np.cross(z, up)
    if np.linalg.norm(x) < 1e-9:
        raise ValueError(f"look_at: viewing direction {z} is parallel to up {up}; choose another up vector")
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    T = np.eye(4)
    T[:3, 0], T[:3, 1], T[:3, 2], T[:3, 3] = x, y, z, eye
    return T


def view_matrix(cam_to_world: np.ndarray) -> list[float]:
    """PyBullet view matrix (column-major flat 16) for an OpenCV cam_to_world [4,4]."""
    gl_cam_to_world = np.asarray(cam_to_world, dtype=np.float64) @ _OPENCV_FROM_GL
    world_to_gl = np.linalg.inv(gl_cam_to_world)
    return world_to_gl.T.reshape(-1).tolist()


def linearize_depth(buf: np.ndarray, near: float, far: float) -> np.ndarray:
    """OpenGL depth buffer [H,W] in [0,1] -> z-depth in metres float32; 0 where the far plane was hit."""
    buf = np.asarray(buf, dtype=np.float64)
    z = far * near / (far - (far - near) * buf)
    z[buf >= 1.0 - 1e-7] = 0.0
    return z.astype(np.float32)


def decode_segmentation(seg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Segmentation buffer [H,W] -> (body uid [H,W], link index [H,W]) int32; body -1 = background.

    Base links have link index -1 (PyBullet's convention)."""
    seg = np.asarray(seg, dtype=np.int64)
    body = np.where(seg < 0, -1, seg & _OBJ_BITS)
    link = np.where(seg < 0, -1, (seg >> 24) - 1)
    return body.astype(np.int32), link.astype(np.int32)


@dataclass(frozen=True)
class Lighting:
    """TinyRenderer light: direction (towards the light), colour, ambient/diffuse/specular coefficients."""

    direction: tuple[float, float, float] = (0.4, -0.3, 1.0)
    color: tuple[float, float, float] = (1.0, 1.0, 1.0)
    ambient: float = 0.5
    diffuse: float = 0.5
    specular: float = 0.2
    shadow: bool = True


def render(client, cam_to_world: np.ndarray, cfg: CameraConfig, light: Lighting = Lighting()):
    """Render one frame with TinyRenderer.

    Returns rgb [H,W,3] uint8, depth [H,W] float32 (m, 0 = nothing hit), body [H,W] int32, link [H,W] int32.
    """
    import pybullet as pb

    _, _, rgba, dbuf, seg = client.getCameraImage(
        cfg.width, cfg.height, viewMatrix=view_matrix(cam_to_world), projectionMatrix=projection_matrix(client, cfg),
        renderer=pb.ER_TINY_RENDERER, flags=pb.ER_SEGMENTATION_MASK_OBJECT_AND_LINKINDEX,
        lightDirection=list(light.direction), lightColor=list(light.color), lightAmbientCoeff=light.ambient,
        lightDiffuseCoeff=light.diffuse, lightSpecularCoeff=light.specular, shadow=int(light.shadow))
    rgba = np.asarray(rgba, dtype=np.uint8).reshape(cfg.height, cfg.width, 4)
    depth = linearize_depth(np.asarray(dbuf, dtype=np.float32).reshape(cfg.height, cfg.width), cfg.near, cfg.far)
    body, link = decode_segmentation(np.asarray(seg).reshape(cfg.height, cfg.width))
    depth[body < 0] = 0.0
    return np.ascontiguousarray(rgba[..., :3]), depth, body, link


def measure_sample_offset(cfg: CameraConfig = CameraConfig(width=128, height=96)) -> tuple[float, float]:
    """Measure TinyRenderer's pixel sampling offset (du, dv) from renders of known tilted planes.

    One plane only constrains the offset along its image-space gradient, so two planes tilted
    in different directions are rendered (each filling the whole image) and the shift that puts
    every unprojected pixel on its plane is solved for in least squares.
    """
    import pybullet as pb
    from pybullet_utils import bullet_client

    K0 = intrinsics(cfg, sample_offset=(0.0, 0.0))
    f, cx, cy = K0[0, 0], K0[0, 2], K0[1, 2]
    rows, cols = np.mgrid[0:cfg.height, 0:cfg.width]
    A_all, b_all = [], []
    for normal in ([0.45, 0.05, 1.0], [-0.05, 0.45, 1.0]):
        normal = np.asarray(normal) / np.linalg.norm(normal)
        with quiet_stdout():
            client = bullet_client.BulletClient(connection_mode=pb.DIRECT)
        try:
            half = [3.0, 3.0, 0.01]
            vis = client.createVisualShape(pb.GEOM_BOX, halfExtents=half, rgbaColor=[0.7, 0.7, 0.7, 1])
            client.createMultiBody(0, -1, vis, basePosition=[0, 0, 0], baseOrientation=_quat_from_z(normal))
            cam = look_at(eye=[0.05, -0.1, 1.2], target=[0.0, 0.0, 0.0], up=[0, 1, 0])
            _, depth, body, _ = render(client, cam, cfg, Lighting(shadow=False))
        finally:
            client.disconnect()
        R, t = cam[:3, :3], cam[:3, 3]
        n_c = R.T @ normal                                   # plane n_c . X = d_c in the camera frame
        d_c = float(normal @ (half[2] * normal) - normal @ t)
        m = (body >= 0) & (depth > 0)
        z, r, c = depth[m].astype(np.float64), rows[m], cols[m]
        # n_c . z [(c + du - cx)/f, (r + dv - cy)/f, 1] = d_c  -> linear in (du, dv)
        A_all.append(np.stack([n_c[0] * z / f, n_c[1] * z / f], axis=1))
        b_all.append(d_c - z * (n_c[0] * (c - cx) / f + n_c[1] * (r - cy) / f + n_c[2]))
    sol, *_ = np.linalg.lstsq(np.concatenate(A_all), np.concatenate(b_all), rcond=None)
    return float(sol[0]), float(sol[1])


def _quat_from_z(normal: np.ndarray) -> list[float]:
    """Quaternion (x, y, z, w) rotating +z onto ``normal``."""
    from scipy.spatial.transform import Rotation

    z = np.array([0.0, 0.0, 1.0])
    axis = np.cross(z, normal)
    s = np.linalg.norm(axis)
    if s < 1e-12:
        return [0.0, 0.0, 0.0, 1.0]
    angle = np.arctan2(s, float(z @ normal))
    return Rotation.from_rotvec(axis / s * angle).as_quat().tolist()


@contextlib.contextmanager
def quiet_stdout():
    """Silence C-level stdout (pybullet prints ``argv[0]=`` on connect) so ``--json`` output stays clean."""
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)
