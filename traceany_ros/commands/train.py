"""``traceany train``: train (or resume) the trajectory-field network on episodes."""
from __future__ import annotations


def register(sub) -> None:
    from traceany_ros.model.config import PRIOR_ANCHORS
    from traceany_ros.tracker.flow import METHODS, TRACKERS

    p = sub.add_parser("train", help="train or resume the trajectory-field network on generated episodes",
                       description="Train the network on episodes (DIR/*.npz, recursive). Running the same command "
                                   "again resumes from OUT/last.pt. Multi-GPU: torchrun --nproc_per_node=G -m "
                                   "traceany_ros.cli train ... --device cuda")
    p.add_argument("--data", required=True, help="directory of training episodes (.npz)")
    p.add_argument("--val", dest="val_data", default=None,
                   help="directory of validation episodes (default: DATA/../val when DATA ends in 'train')")
    p.add_argument("--preset", default="tiny", choices=["tiny", "tiny-pure", "base"])
    p.add_argument("--out", required=True, help="run directory (runs/NAME): checkpoints, log.json, curves.png")
    p.add_argument("--steps", type=int, default=2000, help="total optimiser steps (resume continues to this)")
    p.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    p.add_argument("--batch-size", type=int, default=1, help="windows per process per step")
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--window", type=int, default=12, help="max frames per training window")
    p.add_argument("--min-window", type=int, default=6, help="min frames per training window")
    p.add_argument("--max-stride", type=int, default=3, help="max temporal stride of a training window")
    p.add_argument("--dense-points", type=int, default=256,
                   help="fresh ground-truth points per window from the dense extras (0: contract queries only)")
    p.add_argument("--max-queries", type=int, default=1024)
    p.add_argument("--val-every", type=int, default=200)
    p.add_argument("--val-episodes", type=int, default=8)
    p.add_argument("--K", dest="num_control_points", type=int, default=None, help="control points (ablation)")
    p.add_argument("--no-depth", action="store_true", help="RGB-only network input (ablation)")
    p.add_argument("--flow-tracker", choices=sorted(TRACKERS), default=None,
                   help="tracker preset of the flow prior (default: the preset's, prior-train: DIS from the learned "
                        "matcher with rigid parts; prior: the shipped checkpoint's; plain: the flow baseline)")
    p.add_argument("--flow-method", choices=METHODS, default=None,
                   help="OpenCV flow of the prior's tracker (default: the preset's; dis_fine: DIS at full resolution)")
    p.add_argument("--prior-anchor", choices=PRIOR_ANCHORS, default=None,
                   help="how the prior's curves are put through each cell's point (default: the preset's, local)")
    p.add_argument("--detach-gate", action="store_true",
                   help="train the motion gate only with the motion loss (the residual must fix poor flow priors)")
    p.add_argument("--motion-weight", type=float, default=None, help="weight of the motion-gate loss")
    p.add_argument("--motion-pos-weight", type=float, default=None,
                   help="weight of moving points in the motion-gate loss (> 1: missing motion costs more)")
    p.add_argument("--init", default=None,
                   help="start from a checkpoint's weights (and step count) when OUT has no last.pt, "
                        "e.g. the shipped checkpoints/tiny.pt")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (keep 1 on a shared machine)")
    p.add_argument("--workers", type=int, default=0,
                   help="background processes that prepare training windows (flow prior, inputs, ground truth) "
                        "while the network trains; the windows are the same as with 0")
    p.add_argument("--max-minutes", type=float, default=0.0,
                   help="stop cleanly after this many minutes (validation, checkpoint, log); the same command "
                        "resumes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    from traceany_ros.train.losses import LossConfig
    from traceany_ros.train.loop import TrainConfig, train

    cfg = TrainConfig(data=args.data, val_data=args.val_data, out=args.out, preset=args.preset, steps=args.steps,
                      device=args.device, batch_size=args.batch_size, lr=args.lr, window=args.window,
                      min_window=args.min_window, max_stride=args.max_stride, dense_points=args.dense_points,
                      max_queries=args.max_queries, val_every=args.val_every, val_episodes=args.val_episodes,
                      num_control_points=args.num_control_points, use_depth=not args.no_depth,
                      flow_tracker=args.flow_tracker, flow_method=args.flow_method, prior_anchor=args.prior_anchor,
                      threads=args.threads, workers=args.workers, max_minutes=args.max_minutes, seed=args.seed,
                      detach_gate=args.detach_gate, init=args.init,
                      loss=LossConfig(**{k: v for k, v in (("motion", args.motion_weight),
                                                          ("motion_pos_weight", args.motion_pos_weight))
                                         if v is not None}))
    log = train(cfg, progress=not args.no_progress)
    if log.get("val"):
        v = log["val"][-1]
        print(f"done: step {v['step']}, val epe {100 * v['epe']:.2f} cm (static {100 * v['epe_static']:.2f}, "
              f"dynamic {100 * v['epe_dynamic']:.2f}); best checkpoint {args.out}/best.pt")
    return 0
