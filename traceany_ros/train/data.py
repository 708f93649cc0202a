"""Training windows from episodes (read with the one reader, ``traceany_ros.episode.load_episode``).

A training sample is a window of ``T`` frames of one episode plus its
supervision. Every ground-truth point that is *visible* at a window frame
becomes a query at that frame (its pixel is the projection of its
ground-truth position), so one point seen in eight frames gives eight queries
that must predict the same curve (the correspondence loss).
"""
from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from traceany_ros.episode import Episode, FrameWindow, load_episode
from traceany_ros.geometry import project
from traceany_ros.model.inputs import WindowInputs, prepare_window, prior_flow_config
from traceany_ros.tracker.flow import TRACKERS, config_digest


class EpisodeCache:
    """Lazily loaded episodes with a small LRU cache (episodes are a few MB each)."""

    def __init__(self, paths, capacity: int = 64):
        self.paths = [Path(p) for p in paths]
        self.capacity = capacity
        self._cache: OrderedDict[int, Episode] = OrderedDict()

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> Episode:
        if i in self._cache:
            self._cache.move_to_end(i)
            return self._cache[i]
        ep = load_episode(self.paths[i])
        self._cache[i] = ep
        if len(self._cache) > self.capacity:
            self._cache.popitem(last=False)
        return ep


def matcher_digest(path=None) -> str:
    """First 8 hex digits of the SHA-1 of a matcher checkpoint (default: the shipped one)."""
    import hashlib

    from traceany_ros.tracker.matcher import default_matcher_path

    return hashlib.sha1(Path(path or default_matcher_path()).read_bytes()).hexdigest()[:8]


class FlowCache:
    """The flow baseline's field of every whole episode, computed once and kept on disk.

    Training windows of a model with a flow prior take their prior from the whole-clip field
    (:func:`window_flow_field`) instead of recomputing flow per window; at inference on a clip that
    is one window the two are the same thing.
    """

    def __init__(self, directory: str | Path | None, model_config):
        self.dir = Path(directory) if directory else None
        self.config = model_config
        self._mem: OrderedDict[str, object] = OrderedDict()
        # new matcher weights, new prior fields: the key carries the matcher's digest (read once here)
        learned = TRACKERS[model_config.flow_tracker].get("learned_matches")
        self._matcher_tag = f"_m{matcher_digest()}" if learned else ""
        # and every option the prior is tracked with (defaults of the rigid and ICP stages included), hashed
        self._options_tag = f"_o{config_digest(prior_flow_config(model_config))}"

    def _key(self, path: Path) -> str:
        c = self.config
        tracker = "" if c.flow_tracker == "plain" else f"_{c.flow_tracker}"
        tracker += self._options_tag + self._matcher_tag
        return f"{path.stem}_{c.flow_method}_s{c.out_stride}_K{c.num_control_points}{tracker}"

    def _file(self, path: Path) -> Path | None:
        return self.dir / f"{self._key(Path(path))}.npz" if self.dir else None

    def get(self, path: Path, ep: Episode):
        """TrajectoryField of the flow baseline over the whole episode (world frame)."""
        from traceany_ros.field import TrajectoryField
        from traceany_ros.model.inputs import compute_flow_field

        key = self._key(Path(path))
        if key in self._mem:
            return self._mem[key]
        f = self._file(path)
        field = None
        if f is not None and f.is_file():
            try:
                with np.load(f) as z:
                    field = TrajectoryField(z["control_points"], z["confidence"], z["times"], stride=int(z["stride"]),
                                            pixel_offset=int(z["pixel_offset"]),
                                            image_size=tuple(int(v) for v in z["image_size"]))
            except (OSError, ValueError, KeyError):
                field = None  # a broken cache file is recomputed
        if field is None:
            field = compute_flow_field(ep.inputs(), self.config)
            if f is not None:
                f.parent.mkdir(parents=True, exist_ok=True)
                tmp = f.with_name(f".{f.stem}.tmp{os.getpid()}.npz")  # training workers may race
                np.savez(tmp, control_points=field.control_points, confidence=field.confidence, times=field.times,
                         stride=field.stride, pixel_offset=field.pixel_offset, image_size=np.array(field.image_size))
                tmp.replace(f)
        self._mem[key] = field
        if len(self._mem) > 8:
            self._mem.popitem(last=False)
        return field

    def missing(self, paths) -> list[Path]:
        """Those of ``paths`` whose field is not on disk yet."""
        return [Path(q) for q in paths if self.dir is None or not self._file(q).is_file()]


def _fill_one(args) -> str:
    import torch

    torch.set_num_threads(1)
    directory, model_config, path = args
    FlowCache(directory, model_config).get(Path(path), load_episode(path))
    return str(path)


def fill_flow_cache(paths, model_config, directory, workers: int, progress: bool = True) -> int:
    """Compute the missing whole-episode prior fields of ``paths`` on ``workers`` processes (before
    training, so that window workers do not each compute the same episode). Returns how many were made."""
    todo = FlowCache(directory, model_config).missing(paths)
    if not todo:
        return 0
    from concurrent.futures import ProcessPoolExecutor

    jobs = [(str(directory), model_config, str(q)) for q in todo]
    with ProcessPoolExecutor(max_workers=max(1, workers)) as pool:
        it = pool.map(_fill_one, jobs)
        if progress:
            from tqdm import tqdm

            it = tqdm(it, total=len(jobs), desc="flow prior of each episode", dynamic_ncols=True)
        for _ in it:
            pass
    return len(todo)


def window_flow_field(field, frames: np.ndarray):
    """Restrict a whole-clip field to frames [T']: their curves, re-fitted to the window's time span."""
    from traceany_ros.field import TrajectoryField, evaluate, fit_trajectory

    frames = np.asarray(frames)
    times = field.times[frames]
    pos = evaluate(field.control_points[frames], field.normalized_time(times))  # [T',h,w,T',3]
    span = (float(times[0]), float(times[-1]))
    s = (times - span[0]) / max(span[1] - span[0], 1e-9)
    cp = fit_trajectory(s, pos, field.num_control_points)
    return TrajectoryField(cp.astype(np.float32), field.confidence[frames], times, stride=field.stride,
                           pixel_offset=field.pixel_offset, image_size=field.image_size, time_span=span)


@dataclass
class WindowSample:
    """One training window.

    inputs: WindowInputs (image [T,C,Hp,Wp], s [T], scale, camera-0 pose).
    frame [N] int local frame of each query; rows, cols [N] float pixel; base [N,3] normalised own point;
    gt [N,T,3] normalised ground truth; gt_m [N,T,3] metres (world); dynamic [N] bool; qid [N] point id.
    """

    inputs: WindowInputs
    frame: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    base: np.ndarray
    gt: np.ndarray
    dynamic: np.ndarray
    qid: np.ndarray


def has_dense_gt(ep: Episode) -> bool:
    """True when the episode carries the simulator's per-pixel link labels and link poses."""
    return "gt_labels" in ep.extras and "gt_link_poses" in ep.extras


def dense_points(ep: Episode, frames: np.ndarray, rng: np.random.Generator, num_points: int):
    """Fresh ground-truth points of a window from the dense extras (``traceany_ros.sim.groundtruth``).

    Returns (query_pixels [Q,3] with LOCAL frames, tracks [Q,T',3], visible [Q,T'], dynamic [Q]); about
    half of the points move within the window.
    """
    from traceany_ros.sim.groundtruth import sample_queries

    poses = ep.extras["gt_link_poses"][:, frames]
    return sample_queries(rng, ep.extras["gt_labels"][frames], ep.depth[frames], ep.intrinsics,
                          ep.cam_to_world[frames], poses, num_queries=num_points, num_query_frames=len(frames))


def window_queries(ep: Episode, frames: np.ndarray, rng: np.random.Generator | None = None,
                   dense_points_per_window: int = 0):
    """Queries of a window: every (point, window frame) where the point is visible and in the image.

    Points are the episode's contract queries, or (when ``dense_points_per_window`` > 0 and the
    episode has the dense extras) fresh points sampled from the dense ground truth.
    Returns frame [N] (local), rows [N], cols [N] (float), qid [N], gt [N,T',3] (world metres), dynamic [N].
    """
    H, W = ep.image_size
    K = ep.intrinsics
    if dense_points_per_window > 0 and has_dense_gt(ep):
        qp, tracks, vis, dyn = dense_points(ep, frames, rng, dense_points_per_window)
        c2w = ep.cam_to_world[frames]
        local = np.arange(len(frames))
    else:
        qp, tracks, vis, dyn = ep.query_pixels, ep.tracks_world[:, frames], ep.visible[:, frames], None
        c2w = ep.cam_to_world[frames]
        local = np.full(ep.num_frames, -1)
        local[frames] = np.arange(len(frames))
        qp = np.stack([local[ep.query_pixels[:, 0]], ep.query_pixels[:, 1], ep.query_pixels[:, 2]], 1)
        # dynamic within the window (the contract flag is over the whole clip)
        own_ok = qp[:, 0] >= 0
        ref = np.where(own_ok[:, None], tracks[np.arange(len(qp)), np.maximum(qp[:, 0], 0)], tracks[:, 0])
        dyn = np.linalg.norm(tracks - ref[:, None], axis=-1).max(1) > 0.005
    out_f, out_r, out_c, out_q = [], [], [], []
    for lf in range(len(frames)):
        qs = np.nonzero(vis[:, lf])[0]
        if qs.size == 0:
            continue
        r, c, z = project(tracks[qs, lf], K, c2w[lf])
        own = qp[qs, 0] == lf
        r = np.where(own, qp[qs, 1], r)
        c = np.where(own, qp[qs, 2], c)
        ok = (z > 0) & (r > -0.5) & (r < H - 0.5) & (c > -0.5) & (c < W - 0.5)
        out_f.append(np.full(ok.sum(), lf))
        out_r.append(r[ok])
        out_c.append(c[ok])
        out_q.append(qs[ok])
    if not out_q:
        z = np.zeros(0)
        return (z.astype(np.int64), z, z, z.astype(np.int64), np.zeros((0, len(frames), 3)), z.astype(bool))
    qid = np.concatenate(out_q)
    return (np.concatenate(out_f), np.concatenate(out_r), np.concatenate(out_c), qid,
            np.asarray(tracks[qid], np.float64), np.asarray(dyn)[qid])


def choose_frames(num_frames: int, window: int, rng: np.random.Generator, max_stride: int = 2,
                  min_window: int | None = None) -> np.ndarray:
    """Random window of ``min_window``..``window`` frames with a random temporal stride (1..max_stride) that fits."""
    window = min(window, num_frames)
    if min_window is not None and min_window < window:
        window = int(rng.integers(max(min_window, 2), window + 1))
    strides = [s for s in range(1, max_stride + 1) if (window - 1) * s < num_frames]
    s = int(rng.choice(strides))
    start = int(rng.integers(0, num_frames - (window - 1) * s))
    return start + s * np.arange(window)


def make_sample(ep: Episode, frames: np.ndarray, rng: np.random.Generator, max_queries: int = 1024,
                model_config=None, dense_points_per_window: int = 0, flow=None) -> WindowSample:
    """Build a WindowSample of ``frames`` of ``ep`` with at most ``max_queries`` queries (half dynamic if possible).

    ``dense_points_per_window`` > 0 draws fresh points from the dense ground truth when the episode has it.
    ``flow``: the flow-prior field of these frames (default: computed from them when the model needs it).
    """
    win = FrameWindow(rgb=ep.rgb[frames], depth=ep.depth[frames], intrinsics=ep.intrinsics,
                      cam_to_world=ep.cam_to_world[frames], times=ep.timestamps[frames])
    inp = prepare_window(win, model_config, flow=flow)
    f, r, c, qid, gt, dyn = window_queries(ep, frames, rng, dense_points_per_window)
    di, si = np.nonzero(dyn)[0], np.nonzero(~dyn)[0]
    nd = min(len(di), max_queries // 2)
    ns = min(len(si), max_queries - nd)
    nd = min(len(di), max_queries - ns)
    pick = np.concatenate([rng.choice(di, nd, replace=False) if nd else di[:0],
                           rng.choice(si, ns, replace=False) if ns else si[:0]])
    f, r, c, qid, gt, dyn = f[pick], r[pick], c[pick], qid[pick], gt[pick], dyn[pick]
    own = gt[np.arange(len(pick)), f] if len(pick) else np.zeros((0, 3))
    return WindowSample(inputs=inp, frame=f, rows=r, cols=c, base=inp.world_to_norm(own),
                        gt=inp.world_to_norm(gt), dynamic=dyn, qid=qid)


class WindowDataset:
    """Random training windows from a set of episodes (deterministic per (seed, index))."""

    def __init__(self, paths, window: int = 8, max_queries: int = 1024, max_stride: int = 2, model_config=None,
                 seed: int = 0, cache: int = 64, dense_points_per_window: int = 0, min_window: int | None = None,
                 flow_cache_dir: str | Path | None = None):
        self.episodes = EpisodeCache(paths, cache)
        self.flow_cache = FlowCache(flow_cache_dir, model_config) if (model_config is not None and
                                                                      model_config.flow_prior) else None
        self.dense_points_per_window = dense_points_per_window
        self.min_window = min_window
        self.window, self.max_queries, self.max_stride = window, max_queries, max_stride
        self.model_config, self.seed = model_config, seed

    def sample(self, index: int) -> WindowSample:
        rng = np.random.default_rng([self.seed, index])
        i = int(rng.integers(len(self.episodes)))
        ep = self.episodes[i]
        frames = choose_frames(ep.num_frames, self.window, rng, self.max_stride, self.min_window)
        flow = None
        if self.flow_cache is not None:
            flow = window_flow_field(self.flow_cache.get(self.episodes.paths[i], ep), frames)
        return make_sample(ep, frames, rng, self.max_queries, self.model_config, self.dense_points_per_window, flow)
