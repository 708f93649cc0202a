"""``traceany train``: train (or resume) the trajectory-field network on simulated episodes made on the fly."""
from __future__ import annotations


def register(sub) -> None:
    from traceany_ros.model.config import PRESETS

    p = sub.add_parser("train", help="train or resume the trajectory-field network",
                       description="Train the network on simulated windows: episodes are generated from seeds into "
                                   "a pool directory as training needs them (kept for later runs). Running the same "
                                   "command again resumes from OUT/last.pt. Multi-GPU: torchrun --nproc_per_node=G -m "
                                   "traceany_ros.cli train ... --device cuda")
    p.add_argument("--out", required=True, help="run directory: last.pt, best.pt, log.json, curves.png")
    p.add_argument("--preset", default="tiny", choices=sorted(PRESETS), help="tiny (CPU) or base (GPU)")
    p.add_argument("--steps", type=int, default=100_000, help="total optimiser steps (resume continues to this)")
    p.add_argument("--device", default="cpu", help="cpu | cuda")
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--pool", default="data/pool_wide", help="directory of generated episodes (made on demand)")
    p.add_argument("--style", default="wide", choices=["standard", "wide"], help="scene style of training episodes")
    p.add_argument("--seed-base", type=int, default=1_000_000, help="seed of the first training episode")
    p.add_argument("--min-frames", type=int, default=6, help="min frames per training window")
    p.add_argument("--max-frames", type=int, default=10, help="max frames per training window")
    p.add_argument("--query-frames", type=int, default=2, help="query frames per window (targets: every frame)")
    p.add_argument("--val-every", type=int, default=250)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--workers", type=int, default=1, help="background processes that generate episodes and windows")
    p.add_argument("--max-minutes", type=float, default=0.0,
                   help="stop cleanly after this many minutes (validation, checkpoint, log); the same command resumes")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    from traceany_ros.train.data import DataConfig
    from traceany_ros.train.loop import TrainConfig, train

    data = DataConfig(pool=args.pool, style=args.style, seed_base=args.seed_base, min_frames=args.min_frames,
                      max_frames=args.max_frames, query_frames=args.query_frames)
    cfg = TrainConfig(out=args.out, preset=args.preset, steps=args.steps, lr=args.lr, device=args.device,
                      threads=args.threads, workers=args.workers, val_every=args.val_every,
                      max_minutes=args.max_minutes, data=data)
    res = train(cfg, progress=not args.no_progress)
    if res["rank"] == 0:  # under torchrun, the first process speaks for the run
        print(f"done: step {res['step']}, best validation loss {res['best_val_total']:.4f}; "
              f"weights {args.out}/best.pt")
    return 0
