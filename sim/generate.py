"""Episode generation: one seed -> one episode file, deterministic, shardable, resumable.

``make_episode(seed, cfg)`` simulates a ``TabletopScene`` and turns its ``Clip`` into an
``Episode`` with sampled queries (``sim/groundtruth.py``). ``generate(out, seeds, cfg, workers)``
writes ``ep_<seed>.npz`` files, skipping those already there (each file is written to a
temporary name and renamed, so a present file is complete), and returns a summary.

The family of a seed is ``families[seed % len(families)]``, so a seed range covers the
families evenly and the same seed always gives the same scene and the same bytes.
"""
from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from traceany_ros.episode import Episode, save_episode
from traceany_ros.sim.groundtruth import sample_queries
from traceany_ros.sim.scene import FAMILIES, GENERATOR, HELDOUT_FAMILIES, TRAIN_FAMILIES, VERSION, SceneConfig, TabletopScene

FAMILY_SETS = {"train": TRAIN_FAMILIES, "heldout": HELDOUT_FAMILIES, "all": FAMILIES}


@dataclass(frozen=True)
class GenerateConfig:
    """What one episode holds: scene size/clock, queries, families, training extras."""

    scene: SceneConfig = field(default_factory=SceneConfig)
    num_queries: int = 384
    query_frames: int = 4
    dynamic_share: float = 0.5
    families: tuple[str, ...] = TRAIN_FAMILIES
    gt_extras: bool = True   # store gt_labels [T,H,W] int16 + gt_link_poses [L,T,4,4] for dense training targets


def parse_families(names) -> tuple[str, ...]:
    """Family names or set names ('train', 'heldout', 'all') -> tuple of families (order kept, no repeats)."""
    out: list[str] = []
    for n in names:
        for f in FAMILY_SETS.get(n, (n,)):
            if f not in FAMILIES:
                raise ValueError(f"unknown scene family {f!r}; choose from {FAMILIES} or {sorted(FAMILY_SETS)}")
            if f not in out:
                out.append(f)
    if not out:
        raise ValueError("no scene family given")
    return tuple(out)


def family_for_seed(seed: int, families: tuple[str, ...]) -> str:
    return families[int(seed) % len(families)]


def episode_name(seed: int) -> str:
    return f"ep_{int(seed):06d}.npz"


def make_episode(seed: int, cfg: GenerateConfig = GenerateConfig()) -> Episode:
    """Simulate the scene of ``seed`` and return its episode (contract keys + optional gt extras)."""
    family = family_for_seed(seed, cfg.families)
    with TabletopScene(seed, family, cfg.scene) as scene:
        clip = scene.simulate()
    rng = np.random.default_rng([int(seed), 1_000_003])
    qp, tracks, vis, dyn = sample_queries(rng, clip.labels, clip.depth, clip.K, clip.cam_to_world, clip.poses,
                                          num_queries=cfg.num_queries, num_query_frames=cfg.query_frames,
                                          dynamic_share=cfg.dynamic_share)
    meta = {"generator": GENERATOR, "version": VERSION, "seed": int(seed), "family": family,
            "fps": cfg.scene.fps, "physics_hz": cfg.scene.physics_hz, "scene": clip.description,
            "config": {"num_queries": cfg.num_queries, "query_frames": cfg.query_frames,
                       "dynamic_share": cfg.dynamic_share, "scene": asdict(cfg.scene)}}
    extras = {}
    if cfg.gt_extras:
        extras = {"gt_labels": clip.labels.astype(np.int16), "gt_link_poses": clip.poses.astype(np.float32)}
    return Episode(rgb=clip.rgb, depth=clip.depth, intrinsics=clip.K.astype(np.float32),
                   cam_to_world=clip.cam_to_world.astype(np.float32), timestamps=clip.timestamps.astype(np.float64),
                   query_pixels=qp, tracks_world=tracks.astype(np.float32), visible=vis, dynamic=dyn,
                   meta=meta, extras=extras)


def _work(job) -> dict:
    seed, out, cfg = job
    path = Path(out) / episode_name(seed)
    if path.exists():
        return {"seed": seed, "skipped": True, "bytes": path.stat().st_size}
    t0, c0 = time.perf_counter(), time.process_time()
    ep = make_episode(seed, cfg)
    save_episode(path, ep)
    return {"cpu_s": time.process_time() - c0, "seed": seed, "skipped": False, "frames": ep.num_frames, "queries": ep.num_queries,
            "dynamic": int(ep.dynamic.sum()), "family": ep.meta["family"], "bytes": path.stat().st_size,
            "seconds": time.perf_counter() - t0}


def _init_worker() -> None:
    os.environ["OMP_NUM_THREADS"] = "1"


def generate(out: str | os.PathLike, seeds, cfg: GenerateConfig = GenerateConfig(), workers: int = 1,
             progress: bool = True) -> dict:
    """Write one episode per seed into ``out`` (skipping finished ones); returns the summary dict."""
    from tqdm import tqdm

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    seeds = [int(s) for s in seeds]
    jobs = [(s, str(out), cfg) for s in seeds]
    t0 = time.perf_counter()
    results = []
    bar = tqdm(total=len(jobs), desc=f"generate -> {out}", unit="ep", disable=not progress)
    if workers <= 1:
        for j in jobs:
            results.append(_work(j))
            bar.update(1)
    else:
        import multiprocessing as mp

        with mp.get_context("fork").Pool(workers, initializer=_init_worker) as pool:
            for r in pool.imap_unordered(_work, jobs, chunksize=1):
                results.append(r)
                bar.update(1)
    bar.close()
    wall = time.perf_counter() - t0
    made = [r for r in results if not r["skipped"]]
    frames = sum(r["frames"] for r in made)
    queries = sum(r["queries"] for r in made)
    families: dict[str, int] = {}
    for r in made:
        families[r["family"]] = families.get(r["family"], 0) + 1
    return {
        "out": str(out), "episodes": len(results), "generated": len(made), "skipped": len(results) - len(made),
        "frames": frames, "wall_s": round(wall, 2), "frames_per_s": round(frames / wall, 2) if wall > 0 else 0.0,
        "dynamic_share": round(sum(r["dynamic"] for r in made) / queries, 4) if queries else None,
        "families": dict(sorted(families.items())),
        "disk_mb": round(sum(r["bytes"] for r in results) / 2**20, 2),
        "mb_per_episode": round(sum(r["bytes"] for r in results) / max(1, len(results)) / 2**20, 3),
        "workers": workers,
        # CPU time per frame is independent of other load on the machine; frames/s per free core = 1 / it
        "cpu_ms_per_frame": round(1e3 * sum(r["cpu_s"] for r in made) / frames, 1) if frames else None,
    }
