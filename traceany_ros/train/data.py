"""Training windows for the trajectory-field network, drawn from simulated episodes made on the fly.

Episodes are generated from seeds (``sim/generate.py``) and kept in a pool directory, so a run sees a new
scene every few windows and a resumed run re-reads what it made. Every window is supervised densely: each
output cell of its query frames with valid depth and a tracked link gets its ground-truth track over all
window frames (``sim/groundtruth.py``).

Window modes (the planners need the last two):
    clip      consecutive frames (temporal stride 1-3)
    forecast  a clip whose last 1-5 frames are hidden from the input and still supervised
    goal      a short clip plus one later frame (the goal image), the object motion in between large
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from traceany_ros.geometry import cell_grid
from traceany_ros.model.inputs import WindowTensors


@dataclass(frozen=True)
class DataConfig:
    """How training windows are drawn."""

    pool: str = "data/pool_wide"     # episodes generated so far (ep_<seed>.npz), reused by later runs
    seed_base: int = 1_000_000       # episode seed of sample n: seed_base + n // windows_per_episode
    windows_per_episode: int = 4
    families: tuple[str, ...] = ("push", "drop", "carry", "arm")
    style: str = "wide"              # scene style (sim.scene.STYLES); "shifted" is kept for held-out checks
    min_frames: int = 6
    max_frames: int = 10
    max_stride: int = 3
    query_frames: int = 2            # query frames per window (targets: all frames)
    modes: tuple[float, float, float] = (0.6, 0.2, 0.2)  # clip, forecast, goal
    moving_windows: float = 0.75     # share of windows drawn among those where some body moves > 2 cm
    colour_jitter: float = 0.15


def load_or_make_episode(seed: int, pool: str | os.PathLike, families, style: str = "wide"):
    """The episode of ``seed`` from the pool directory, generated and stored there first if missing."""
    from traceany_ros.episode import load_episode, save_episode
    from traceany_ros.sim.generate import GenerateConfig, episode_name, make_episode
    from traceany_ros.sim.scene import SceneConfig

    path = Path(pool) / episode_name(seed)
    if path.is_file():
        try:
            return load_episode(path)
        except (OSError, ValueError, KeyError):
            path.unlink(missing_ok=True)
    ep = make_episode(seed, GenerateConfig(scene=SceneConfig(style=style), families=tuple(families), num_queries=64))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")
    save_episode(tmp, ep)
    os.replace(tmp, path)
    return ep


def choose_window(T_ep: int, fps: float, rng: np.random.Generator, cfg: DataConfig):
    """-> (frames [T] episode indices, observed [T] bool, mode)."""
    mode = ("clip", "forecast", "goal")[int(rng.choice(3, p=np.asarray(cfg.modes) / sum(cfg.modes)))]
    if mode == "goal":
        n = int(rng.integers(2, 6))
        st = int(rng.integers(1, 3))
        goal_gap = int(rng.integers(max(4, T_ep // 3), T_ep - (n - 1) * st))
        start = int(rng.integers(0, T_ep - (n - 1) * st - goal_gap))
        clip = start + st * np.arange(n)
        frames = np.concatenate([clip, [clip[-1] + goal_gap]])
        return frames, np.ones(len(frames), bool), mode
    T = int(rng.integers(cfg.min_frames, cfg.max_frames + 1))
    strides = [s for s in range(1, cfg.max_stride + 1) if (T - 1) * s < T_ep] or [1]
    st = int(rng.choice(strides))
    T = min(T, (T_ep - 1) // st + 1)
    start = int(rng.integers(0, T_ep - (T - 1) * st))
    frames = start + st * np.arange(T)
    observed = np.ones(T, bool)
    if mode == "forecast":
        hide = int(rng.integers(1, min(5, T - 3) + 1))
        observed[T - hide:] = False
    return frames, observed, mode


def grid_truth(labels, depth, K, c2w, poses, query_frames, stride: int):
    """Dense ground truth of the cells of ``query_frames`` (window-local) over the window's frames.

    labels [T,H,W], depth [T,H,W], c2w [T,4,4], poses [L,T,4,4] (all window-local) ->
    tracks [I,h,w,T,3] float32 world, valid [I,h,w], visible [I,h,w,T], dynamic [I,h,w].
    """
    from traceany_ros.sim.groundtruth import dynamic_flags, pixel_tracks, visibility

    T, H, W = labels.shape
    h, w, off = cell_grid(H, W, stride)
    rows = np.minimum(off + stride * np.arange(h), H - 1)
    cols = np.minimum(off + stride * np.arange(w), W - 1)
    I = len(query_frames)
    f, r, c = np.meshgrid(np.asarray(query_frames), rows, cols, indexing="ij")
    pix = np.stack([f.ravel(), r.ravel(), c.ravel()], 1)
    ok = (labels[pix[:, 0], pix[:, 1], pix[:, 2]] >= 0) & (depth[pix[:, 0], pix[:, 1], pix[:, 2]] > 0)
    tracks = np.zeros((len(pix), T, 3), np.float32)
    vis = np.zeros((len(pix), T), bool)
    dyn = np.zeros(len(pix), bool)
    if ok.any():
        tr, ln = pixel_tracks(pix[ok], labels, depth, K, c2w, poses)
        tracks[ok] = tr
        vis[ok] = visibility(tr, ln, labels, depth, K, c2w)
        dyn[ok] = dynamic_flags(tr, pix[ok, 0])
    return (tracks.reshape(I, h, w, T, 3), ok.reshape(I, h, w), vis.reshape(I, h, w, T), dyn.reshape(I, h, w))


def window_moves(ep, frames) -> bool:
    """Whether some body of the episode moves more than 2 cm (its origin) over ``frames``."""
    t = ep.extras["gt_link_poses"][:, frames, :3, 3]
    return bool((np.linalg.norm(t - t[:, :1], axis=-1).max() > 0.02))


def make_sample(ep, rng: np.random.Generator, cfg: DataConfig, stride: int) -> dict:
    """One training window of an episode with its dense ground truth (numpy arrays)."""
    fps = float(ep.meta.get("fps", 15.0)) if isinstance(ep.meta, dict) else 15.0
    frames, observed, mode = choose_window(ep.num_frames, fps, rng, cfg)
    if rng.uniform() < cfg.moving_windows:  # a few more draws for a window in which something moves
        for _ in range(8):
            if window_moves(ep, frames):
                break
            frames, observed, mode = choose_window(ep.num_frames, fps, rng, cfg)
    obs_idx = np.flatnonzero(observed)
    nq = min(cfg.query_frames, len(obs_idx))
    q = rng.choice(obs_idx, nq, replace=False)
    if rng.uniform() < 0.5 and obs_idx[-1] not in q:  # the newest observed frame, as the stream asks for it
        q[0] = obs_idx[-1]
    q = np.sort(q)
    labels = ep.extras["gt_labels"][frames]
    depth = ep.depth[frames]
    c2w = ep.cam_to_world[frames].astype(np.float64)
    poses = ep.extras["gt_link_poses"][:, frames].astype(np.float64)
    fine = grid_truth(labels, depth, ep.intrinsics, c2w, poses, q, stride)
    coarse = grid_truth(labels, depth, ep.intrinsics, c2w, poses, q, 2 * stride)
    rgb = ep.rgb[frames].astype(np.float32)
    if cfg.colour_jitter > 0:  # per-frame brightness/contrast, per-channel gain
        j = cfg.colour_jitter
        gain = rng.uniform(1 - j, 1 + j, (1, 1, 1, 3)) * rng.uniform(1 - j / 2, 1 + j / 2, (len(frames), 1, 1, 1))
        rgb = rgb * gain + rng.uniform(-20 * j, 20 * j)
    return {"rgb": np.clip(rgb, 0, 255).astype(np.uint8), "depth": depth.astype(np.float32),
            "K": ep.intrinsics.astype(np.float32), "c2w": c2w.astype(np.float32),
            "times": ep.timestamps[frames].astype(np.float64), "observed": observed, "query_frames": q,
            "gt": fine[0], "gt_valid": fine[1], "gt_vis": fine[2], "gt_dyn": fine[3],
            "gt_coarse": coarse[0], "gt_coarse_valid": coarse[1], "gt_coarse_vis": coarse[2], "mode": mode}


class WindowStream(torch.utils.data.IterableDataset):
    """Samples ``start, start + step, ...`` (deterministic per index): episode seed_base + n // per_episode."""

    def __init__(self, cfg: DataConfig, stride: int, start: int = 0, step: int = 1):
        self.cfg, self.stride, self.start, self.step = cfg, stride, start, step

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        wid, nw = (info.id, info.num_workers) if info else (0, 1)
        n = self.start + wid * self.step
        cache: dict[int, object] = {}
        while True:
            seed = self.cfg.seed_base + n // self.cfg.windows_per_episode
            if seed not in cache:
                cache.clear()
                cache[seed] = load_or_make_episode(seed, self.cfg.pool, self.cfg.families, self.cfg.style)
            rng = np.random.default_rng([seed, n])
            yield n, make_sample(cache[seed], rng, self.cfg, self.stride)
            n += self.step * nw


def to_tensors(sample: dict, device) -> tuple[WindowTensors, dict]:
    def t(x):
        return torch.as_tensor(np.asarray(x))[None].to(device)

    w = WindowTensors(rgb=t(sample["rgb"]).permute(0, 1, 4, 2, 3), depth=t(sample["depth"]), K=t(sample["K"]),
                      cam_to_world=t(sample["c2w"]), times=t(sample["times"]), observed=t(sample["observed"]))
    gt = {k: t(sample[k]) for k in ("gt", "gt_valid", "gt_vis", "gt_dyn", "gt_coarse", "gt_coarse_valid",
                                    "gt_coarse_vis")}
    gt["query_frames"] = torch.as_tensor(sample["query_frames"], dtype=torch.long, device=device)
    return w, gt
