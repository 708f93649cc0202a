"""``traceany predict``: trajectories of an episode's query pixels (episode-format.md, Predictions)."""
from __future__ import annotations

import sys


def register(sub) -> None:
    from traceany_ros.backends import BACKENDS
    from traceany_ros.tracker.flow import METHODS, TRACKERS

    p = sub.add_parser("predict", help="predict world tracks of an episode's queries and write PRED.npz")
    p.add_argument("--input", required=True, help="episode .npz (only rgb, depth, intrinsics, cam_to_world, "
                                                   "timestamps and query_pixels are read)")
    p.add_argument("--output", required=True, help="prediction .npz: tracks_world [Q,T,3], confidence [Q,T]")
    p.add_argument("--method", default="model", choices=sorted(BACKENDS))
    p.add_argument("--checkpoint", default=None, help="model checkpoint (default: the shipped checkpoints/tiny.pt)")
    p.add_argument("--prior-tracker", default=None, choices=sorted(TRACKERS),
                   help="model only: track its flow prior with this tracker preset instead of the checkpoint's own "
                        "(the shipped one's: prior; prior-fast is faster and less accurate on moving points)")
    p.add_argument("--prior-flow-method", default=None, choices=METHODS,
                   help="model only: the prior's optical flow instead of the checkpoint's (the shipped one's: "
                        "dis_fine_novr, DIS at full resolution without variational refinement; dis_medium: half "
                        "resolution, faster, less accurate)")
    p.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    p.add_argument("--bf16", default="auto", choices=("auto", "on", "off"),
                   help="model on CPU: run the network's transformer trunk in bfloat16 (auto: where the CPU has "
                        "native bf16, AMX / AVX512-BF16)")
    p.add_argument("--window", type=int, default=24, help="frames per window (longer clips slide)")
    p.add_argument("--overlap", type=int, default=8, help="frames shared by consecutive windows")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    p.set_defaults(func=run)


def run(args) -> int:
    import time

    from traceany_ros.backends import make_backend
    from traceany_ros.episode import save_prediction
    from traceany_ros.predict import EpisodeInputError, load_inputs, predict_episode

    try:
        ep = load_inputs(args.input)
    except (EpisodeInputError, FileNotFoundError) as e:
        print(f"traceany predict: {e}", file=sys.stderr)
        return 2
    if args.threads > 0:
        import torch

        torch.set_num_threads(args.threads)
    opts = {"device": args.device}
    if args.method == "model" and args.checkpoint:
        opts["checkpoint"] = args.checkpoint
    if args.method == "model":
        opts["bf16"] = args.bf16
    if args.prior_tracker:
        if args.method != "model":
            print("traceany predict: --prior-tracker applies to --method model only", file=sys.stderr)
            return 2
        opts["prior_tracker"] = args.prior_tracker
    if args.prior_flow_method:
        if args.method != "model":
            print("traceany predict: --prior-flow-method applies to --method model only", file=sys.stderr)
            return 2
        opts["prior_flow_method"] = args.prior_flow_method
    try:
        backend = make_backend(args.method, **opts)
    except (RuntimeError, FileNotFoundError, ValueError) as e:  # no CUDA, missing or corrupt checkpoint
        print(f"traceany predict: {e}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    tracks, conf = predict_episode(ep, backend, window=args.window, overlap=args.overlap)
    dt = time.perf_counter() - t0
    save_prediction(args.output, tracks, conf)
    print(f"{args.method}: {tracks.shape[0]} queries x {tracks.shape[1]} frames in {dt:.2f} s -> {args.output}")
    return 0
