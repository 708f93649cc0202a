"""``traceany train-matcher``: train (or resume) the learned coarse matcher used by the flow trackers."""
from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("train-matcher", help="train or resume the coarse matcher on generated episodes",
                       description="Train the two-frame coarse matcher (traceany_ros.tracker.matcher) on consecutive frame "
                                   "pairs of episodes with the gt extras. Running the same command again resumes from "
                                   "OUT/last.pt. Ship OUT/matcher.pt as checkpoints/matcher.pt.")
    p.add_argument("--data", required=True, help="directory of training episodes (.npz, with gt extras)")
    p.add_argument("--val", dest="val_data", default=None,
                   help="directory of validation episodes (default: DATA/../val when DATA ends in 'train')")
    p.add_argument("--out", required=True, help="run directory: last.pt, matcher.pt, log.json, curves.png")
    p.add_argument("--steps", type=int, default=3000, help="total optimiser steps (resume continues to this)")
    p.add_argument("--batch-size", type=int, default=6, help="frame pairs per step")
    p.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (one-cycle schedule)")
    p.add_argument("--max-episodes", type=int, default=None, help="use only the first N training episodes")
    p.add_argument("--val-episodes", type=int, default=20)
    p.add_argument("--val-every", type=int, default=100)
    p.add_argument("--input-scale", type=int, default=1, choices=[1, 2, 4],
                   help="match frames shrunk by this factor (2: cells of 16 px, about 5x faster)")
    p.add_argument("--dim", type=int, default=96, help="feature width")
    p.add_argument("--layers", type=int, default=2, help="self + cross attention blocks")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args) -> int:
    from traceany_ros.tracker.matcher import MatcherConfig
    from traceany_ros.tracker.train_matcher import MatcherTrainConfig, train_matcher

    cfg = MatcherTrainConfig(data=args.data, out=args.out, val_data=args.val_data, steps=args.steps,
                             batch_size=args.batch_size, lr=args.lr, max_episodes=args.max_episodes,
                             val_episodes=args.val_episodes, val_every=args.val_every, seed=args.seed,
                             threads=args.threads, progress=not args.no_progress)
    v = train_matcher(cfg, MatcherConfig(dim=args.dim, layers=args.layers, input_scale=args.input_scale))
    print(f"done: step {v['step']}, val match accuracy {100 * v['acc_big']:.1f} % on matches over 16 input px "
          f"({100 * v['acc_all']:.1f} % on all); weights {args.out}/matcher.pt")
    return 0
