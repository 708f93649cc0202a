"""A tiny analytic RGB-D episode generator (numpy only) for tests and smoke runs.

A camera looks straight down at a textured ground plane (z = 0) over which a
textured square card (top face at height ``card_height``) translates and
rotates about z. Everything is ray-cast in closed form, so depth, ground-truth
tracks and visibility are exact. It writes a contract-complete
:class:`~traceany_ros.episode.Episode`; the simulator (``traceany generate``)
makes the real training data.
"""
from __future__ import annotations

import numpy as np

from traceany_ros.episode import Episode


def _texture(rng: np.random.Generator, size: int = 128, blur: float = 1.5) -> np.ndarray:
    import cv2

    tex = rng.uniform(0, 255, size=(size, size, 3)).astype(np.float32)
    tex = cv2.GaussianBlur(np.tile(tex, (3, 3, 1)), (0, 0), blur)[size:2 * size, size:2 * size]  # periodic blur
    tex = (tex - tex.min()) / (tex.max() - tex.min() + 1e-6) * 255.0
    return tex


def _sample_wrap(tex: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Bilinear wrap-around lookup: tex [S,S,3], u, v any shape (texels) -> [...,3]."""
    s = tex.shape[0]
    u0, v0 = np.floor(u).astype(np.int64), np.floor(v).astype(np.int64)
    au, av = (u - u0)[..., None], (v - v0)[..., None]
    u0, v0 = u0 % s, v0 % s
    u1, v1 = (u0 + 1) % s, (v0 + 1) % s
    return ((tex[v0, u0] * (1 - au) + tex[v0, u1] * au) * (1 - av)
            + (tex[v1, u0] * (1 - au) + tex[v1, u1] * au) * av)


def _rot_z(theta):
    c, s = np.cos(theta), np.sin(theta)
    return np.array([[c, -s], [s, c]])


def make_synthetic_episode(num_frames: int = 12, height: int = 96, width: int = 128, seed: int = 0,
                           num_queries: int = 256, fps: float = 10.0, card_velocity=(0.25, 0.1),
                           card_spin: float = 0.5, card_half_size: float = 0.12, card_height: float = 0.1,
                           camera_height: float = 1.0, camera_velocity=(0.0, 0.0),
                           texel_per_m: float = 60.0) -> Episode:
    """Render one synthetic episode.

    Args:
        card_velocity: (vx, vy) m/s of the card centre; card_spin: rad/s about z.
        camera_velocity: (vx, vy) m/s of the downward-looking camera.
    Returns:
        Episode with rgb [T,H,W,3], depth [T,H,W], queries [Q,3] (about half on the card), exact tracks.
    """
    rng = np.random.default_rng(seed)
    T, H, W = int(num_frames), int(height), int(width)
    times = np.arange(T, dtype=np.float64) / fps
    f = 0.9 * W
    K = np.array([[f, 0, (W - 1) / 2], [0, f, (H - 1) / 2], [0, 0, 1]], np.float64)
    R = np.array([[1, 0, 0], [0, -1, 0], [0, 0, -1]], np.float64)  # world <- camera, looking down
    cam_xy = rng.uniform(-0.1, 0.1, 2)[None] + times[:, None] * np.asarray(camera_velocity)[None]
    c2w = np.tile(np.eye(4), (T, 1, 1))
    c2w[:, :3, :3] = R
    c2w[:, :2, 3] = cam_xy
    c2w[:, 2, 3] = camera_height
    centre = cam_xy[0] + rng.uniform(-0.08, 0.08, 2) + times[:, None] * np.asarray(card_velocity)[None]  # [T,2]
    angle = rng.uniform(0, np.pi) + card_spin * times
    tex_g, tex_o = _texture(rng), _texture(rng, blur=1.0)
    tex_o = 0.5 * tex_o + 100.0

    rows, cols = np.mgrid[0:H, 0:W].astype(np.float64)
    d_cam = np.stack([(cols - K[0, 2]) / K[0, 0], (rows - K[1, 2]) / K[1, 1], np.ones_like(rows)], -1)
    d_world = d_cam @ R.T  # [H,W,3]

    def card_hit(t, o, d):
        lam = (card_height - o[2]) / d[..., 2]
        p = o[:2] + lam[..., None] * d[..., :2]
        local = (p - centre[t]) @ _rot_z(angle[t])  # R^T (p - c) for row vectors
        inside = (np.abs(local) < card_half_size).all(-1) & (lam > 0)
        return inside, lam, local

    rgb = np.zeros((T, H, W, 3), np.uint8)
    depth = np.zeros((T, H, W), np.float32)
    on_card = np.zeros((T, H, W), bool)
    ground_xy = np.zeros((T, H, W, 2))
    card_local = np.zeros((T, H, W, 2))
    for t in range(T):
        o = c2w[t, :3, 3]
        inside, lam_c, local = card_hit(t, o, d_world)
        lam_g = -o[2] / d_world[..., 2]
        pg = o[:2] + lam_g[..., None] * d_world[..., :2]
        col = np.where(inside[..., None], _sample_wrap(tex_o, local[..., 0] * texel_per_m, local[..., 1] * texel_per_m),
                       _sample_wrap(tex_g, pg[..., 0] * texel_per_m, pg[..., 1] * texel_per_m))
        rgb[t] = np.clip(col, 0, 255).astype(np.uint8)
        depth[t] = np.where(inside, lam_c, lam_g).astype(np.float32)  # d_cam z = 1 -> lambda is z-depth
        on_card[t], ground_xy[t], card_local[t] = inside, pg, local

    # queries: about half on the card
    qf = rng.integers(0, T, num_queries)
    qr, qc = np.zeros(num_queries, np.int64), np.zeros(num_queries, np.int64)
    for i in range(num_queries):
        mask = on_card[qf[i]] if (i % 2 == 0 and on_card[qf[i]].any()) else ~on_card[qf[i]]
        rr, cc = np.nonzero(mask)
        j = rng.integers(len(rr))
        qr[i], qc[i] = rr[j], cc[j]
    is_card = on_card[qf, qr, qc]
    tracks = np.zeros((num_queries, T, 3))
    # card points: local coords fixed
    loc = card_local[qf, qr, qc]  # [Q,2]
    for t in range(T):
        tracks[:, t, :2] = np.where(is_card[:, None], centre[t] + loc @ _rot_z(angle[t]).T, ground_xy[qf, qr, qc])
        tracks[:, t, 2] = np.where(is_card, card_height, 0.0)
    # exact own-frame positions: unprojection of the pixel
    own = c2w[qf, :3, 3] + depth[qf, qr, qc, None].astype(np.float64) * d_world[qr, qc]
    tracks[np.arange(num_queries), qf] = own
    # visibility: projects into the image and is the surface the ray hits there
    visible = np.zeros((num_queries, T), bool)
    for t in range(T):
        pc = (tracks[:, t] - c2w[t, :3, 3]) @ R
        u = K[0, 0] * pc[:, 0] / pc[:, 2] + K[0, 2]
        v = K[1, 1] * pc[:, 1] / pc[:, 2] + K[1, 2]
        inimg = (u >= -0.5) & (u < W - 0.5) & (v >= -0.5) & (v < H - 0.5)
        dray = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], -1) @ R.T
        covered, _, _ = card_hit(t, c2w[t, :3, 3], dray)
        visible[:, t] = inimg & np.where(is_card, True, ~covered)
    visible[np.arange(num_queries), qf] = True
    motion = np.linalg.norm(tracks - tracks[np.arange(num_queries), qf][:, None], axis=-1).max(1)
    meta = {"generator": "traceany_ros.sim.synthetic", "version": 1, "seed": int(seed),
            "scene": {"family": "synthetic_card", "card_velocity": list(map(float, card_velocity)),
                      "card_spin": float(card_spin), "camera_velocity": list(map(float, camera_velocity))}}
    return Episode(rgb=rgb, depth=depth, intrinsics=K.astype(np.float32), cam_to_world=c2w.astype(np.float32),
                   timestamps=times, query_pixels=np.stack([qf, qr, qc], 1).astype(np.int32),
                   tracks_world=tracks.astype(np.float32), visible=visible, dynamic=motion > 0.005, meta=meta)
