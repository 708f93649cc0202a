"""``traceany generate``: simulated RGB-D episodes with ground-truth trajectories (see docs/data.md)."""
from __future__ import annotations

import json
import os
import sys


def register(sub) -> None:
    p = sub.add_parser("generate", help="generate simulated episodes (one .npz per seed)",
                       description="Render PyBullet tabletop clips and write episodes per docs/episode-format.md. "
                                   "Deterministic per seed, resumable (finished files are skipped).")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--n", type=int, required=True, help="number of episodes (seeds SEED .. SEED+N-1)")
    p.add_argument("--seed", type=int, default=0, help="first seed (train 0-9999, val 10000-10999, heldout 20000+)")
    p.add_argument("--frames", type=int, default=24, help="frames per clip (at 15 Hz)")
    p.add_argument("--size", default="256x192", help="image WxH")
    p.add_argument("--workers", type=int, default=1, help="processes (one per core)")
    p.add_argument("--families", nargs="+", default=["train"],
                   help="scene families or sets: push drop carry arm spin mixed | train heldout all (default train)")
    p.add_argument("--style", default="standard", choices=["standard", "wide", "shifted"],
                   help="what objects, textures and camera paths scenes draw from: standard, wide (the network's "
                        "training data) or shifted (held out: objects, textures and camera paths training never "
                        "sees; see sim/scene.py STYLES)")
    p.add_argument("--queries", type=int, default=384, help="query points per episode")
    p.add_argument("--shard", default=None, help="I/K: only seeds whose offset %% K == I (for many machines)")
    p.add_argument("--random-length", action="store_true", help="clip length uniform in [frames/2, frames]")
    p.add_argument("--no-gt-extras", action="store_true", help="omit the gt_labels/gt_link_poses training extras")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.set_defaults(func=run)


def parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise SystemExit(f"--size must look like 256x192 (WxH), got {text!r}")
    if w < 16 or h < 16:
        raise SystemExit(f"--size {text} is too small; use at least 16x16")
    return w, h


def run(args) -> int:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from traceany_ros.sim.generate import GenerateConfig, generate, parse_families
    from traceany_ros.sim.scene import SceneConfig

    w, h = parse_size(args.size)
    try:
        families = parse_families(args.families)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    seeds = list(range(args.seed, args.seed + args.n))
    if args.shard:
        i, k = (int(v) for v in args.shard.split("/"))
        seeds = [s for j, s in enumerate(seeds) if j % k == i]
    cfg = GenerateConfig(scene=SceneConfig(width=w, height=h, frames=args.frames, random_length=args.random_length,
                                           style=args.style),
                         num_queries=args.queries, families=families, gt_extras=not args.no_gt_extras)
    summary = generate(args.out, seeds, cfg, workers=args.workers, progress=not args.json)
    summary["families_requested"] = list(families)
    if args.json:
        print(json.dumps(summary))
    else:
        for k, v in summary.items():
            print(f"{k:>20}: {v}")
    return 0
