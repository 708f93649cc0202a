"""Episode generation throughput: frames/s with ground truth (render + physics + GT + compressed write)."""
from __future__ import annotations

import os
import tempfile


def add_arguments(p) -> None:
    p.add_argument("--n", type=int, default=8, help="episodes per run")
    p.add_argument("--seed", type=int, default=100_000, help="first seed (outside the data splits)")
    p.add_argument("--frames", type=int, default=24)
    p.add_argument("--size", default="256x192", help="image WxH")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes (default: all cores)")
    p.add_argument("--families", nargs="+", default=["all"])


def run(args) -> dict:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from traceany_ros.sim.generate import GenerateConfig, generate, parse_families
    from traceany_ros.sim.scene import SceneConfig

    w, h = (int(v) for v in args.size.lower().split("x"))
    cfg = GenerateConfig(scene=SceneConfig(width=w, height=h, frames=args.frames),
                         families=parse_families(args.families))
    seeds = range(args.seed, args.seed + args.n)
    with tempfile.TemporaryDirectory(prefix="traceany_bench_") as d:
        s = generate(d, seeds, cfg, workers=args.workers, progress=False)
    return {"size": f"{w}x{h}", "frames_per_episode": args.frames, "episodes": s["generated"],
            "workers": args.workers, "frames_per_s": s["frames_per_s"],
            "frames_per_s_per_worker": round(s["frames_per_s"] / max(1, args.workers), 2),
            "cpu_ms_per_frame": s["cpu_ms_per_frame"],
            # what the workers would reach on otherwise idle cores (wall numbers depend on other load)
            "frames_per_s_idle_cores": round(args.workers * 1e3 / s["cpu_ms_per_frame"], 2),
            "target_frames_per_s": 20.0, "meets_target": s["frames_per_s"] >= 20.0,
            "dynamic_share": s["dynamic_share"], "mb_per_episode": s["mb_per_episode"],
            "families": s["families"]}
