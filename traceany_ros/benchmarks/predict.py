"""Predict time of one 24-frame 256x192 window of a held-out simulator episode (model, flow, static);
target <= 1 s for the model on the 2-core CPU."""
from __future__ import annotations

import time

import numpy as np


def add_arguments(p) -> None:
    p.add_argument("--frames", type=int, default=24)
    p.add_argument("--size", default="256x192", help="image WxH")
    p.add_argument("--queries", type=int, default=1024)
    p.add_argument("--checkpoint", default=None, help="model checkpoint (default: shipped; untrained tiny if none)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--key-frames", type=int, default=None,
                   help="model: key frames of the window (default: the backend's, 8; 0: every frame)")
    p.add_argument("--methods", default="model,flow,static")
    p.add_argument("--episode", default=None,
                   help="time this episode (.npz, its own frames and size, windows of --frames) instead of the "
                        "default: held-out simulator episode seed 800000 (family spin or mixed), generated here")
    p.add_argument("--synthetic", action="store_true", help="time the synthetic card instead (textured planes)")


def run(args) -> dict:
    import torch

    from traceany_ros.backends import make_backend
    from traceany_ros.model import default_checkpoint
    from traceany_ros.predict import predict_episode
    from traceany_ros.sim.synthetic import make_synthetic_episode

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.episode:
        from traceany_ros.episode import load_episode

        ep = load_episode(args.episode)
        h, w = ep.image_size
    elif args.synthetic:
        w, h = (int(v) for v in args.size.lower().split("x"))
        ep = make_synthetic_episode(num_frames=args.frames, height=h, width=w, num_queries=args.queries, seed=0)
    else:
        from traceany_ros.sim.generate import GenerateConfig, make_episode
        from traceany_ros.sim.scene import HELDOUT_FAMILIES, SceneConfig

        w, h = (int(v) for v in args.size.lower().split("x"))
        ep = make_episode(800_000, GenerateConfig(scene=SceneConfig(width=w, height=h, frames=args.frames),
                                                  families=HELDOUT_FAMILIES, num_queries=args.queries))
        args.episode = "heldout seed 800000 (generated)"
    import platform

    res = {"frames": ep.num_frames, "window": args.frames, "size_wxh": f"{w}x{h}", "queries": ep.num_queries,
           "episode": args.episode or "synthetic", "machine": f"{platform.processor() or platform.machine()}, "
           f"{__import__('os').cpu_count()} cores", "torch_threads": torch.get_num_threads(), "device": args.device}
    for method in args.methods.split(","):
        opts = {}
        if method == "model":
            opts["device"] = args.device
            if args.key_frames is not None:
                opts["key_frames"] = args.key_frames
            try:
                opts["checkpoint"] = args.checkpoint or str(default_checkpoint())
            except FileNotFoundError:
                opts["preset"] = "tiny"
            res["model_weights"] = opts.get("checkpoint", "untrained tiny preset (no checkpoint found)")
        backend = make_backend(method, **opts)
        if method == "model":
            res["model_key_frames"] = backend.key_frames
        predict_episode(ep, backend, window=args.frames, overlap=min(8, args.frames - 1))  # warm-up
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            predict_episode(ep, backend, window=args.frames, overlap=min(8, args.frames - 1))
            times.append(time.perf_counter() - t0)
        res[f"{method}_s_median"] = round(float(np.median(times)), 3)
        res[f"{method}_s_min"] = round(float(np.min(times)), 3)
    if "model_s_median" in res:
        res["target_s"] = 1.0
        res["meets_target"] = bool(res["model_s_median"] <= 1.0)
    return res
