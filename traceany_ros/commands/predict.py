"""``traceany predict``: trajectories of an episode's query pixels (episode-format.md, Predictions)."""
from __future__ import annotations

import sys


def register(sub) -> None:
    from traceany_ros.backends import BACKENDS

    p = sub.add_parser("predict", help="predict world tracks of an episode's queries and write PRED.npz")
    p.add_argument("--input", required=True, help="episode .npz (only rgb, depth, intrinsics, cam_to_world, "
                                                   "timestamps and query_pixels are read)")
    p.add_argument("--output", required=True, help="prediction .npz: tracks_world [Q,T,3], confidence [Q,T]")
    p.add_argument("--method", default="model", choices=sorted(BACKENDS))
    p.add_argument("--checkpoint", default=None, help="model checkpoint (default: the shipped checkpoints/tiny.pt)")
    p.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    p.add_argument("--window", type=int, default=None,
                   help="frames per window, longer clips slide (default: the backend's, 24)")
    p.add_argument("--overlap", type=int, default=None,
                   help="frames shared by consecutive windows (default: the backend's, 8)")
    p.add_argument("--key-frames", type=int, default=None,
                   help="model: a window longer than this is predicted on this many evenly spaced key frames, the "
                        "others take their curves from them (default: 8; 0: every frame goes through the network)")
    p.add_argument("--zoom", type=int, default=1,
                   help="model: the network sees the images this many times larger (cells of 8 / zoom pixels, for "
                        "small objects; more than zoom^2 the time)")
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
    if args.method == "model" and args.zoom != 1:
        opts["zoom"] = args.zoom
    if args.method == "model" and args.key_frames is not None:
        opts["key_frames"] = args.key_frames
    try:
        backend = make_backend(args.method, **opts)
    except (RuntimeError, FileNotFoundError, ValueError) as e:  # no CUDA, missing or corrupt checkpoint
        print(f"traceany predict: {e}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    window = args.window or getattr(backend, "default_window", 24)
    overlap = args.overlap if args.overlap is not None else getattr(backend, "default_overlap", 8)
    tracks, conf = predict_episode(ep, backend, window=window, overlap=overlap)
    dt = time.perf_counter() - t0
    save_prediction(args.output, tracks, conf)
    print(f"{args.method}: {tracks.shape[0]} queries x {tracks.shape[1]} frames in {dt:.2f} s -> {args.output}")
    return 0
