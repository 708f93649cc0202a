"""Predict time of a 24-frame 256x192 episode on CPU (model, flow, static); target <= 2 s for the model."""
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
    p.add_argument("--methods", default="model,flow,static")
    p.add_argument("--episode", default=None,
                   help="time this episode (.npz, its own frames and size, windows of --frames) instead of the "
                        "synthetic clip: the tracker's later stages cost more on real motion than on that clip")
    p.add_argument("--prior-tracker", default=None,
                   help="model: track its flow prior with this flow.TRACKERS entry (as `traceany predict`)")
    p.add_argument("--prior-flow-method", default=None,
                   help="model: the prior's optical flow, a flow.METHODS name (as `traceany predict`)")


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
    else:
        w, h = (int(v) for v in args.size.lower().split("x"))
        ep = make_synthetic_episode(num_frames=args.frames, height=h, width=w, num_queries=args.queries, seed=0)
    res = {"frames": ep.num_frames, "window": args.frames, "size_wxh": f"{w}x{h}", "queries": ep.num_queries,
           "episode": args.episode or "synthetic", "torch_threads": torch.get_num_threads(), "device": args.device}
    for method in args.methods.split(","):
        opts = {}
        if method == "model":
            opts["device"] = args.device
            try:
                opts["checkpoint"] = args.checkpoint or str(default_checkpoint())
            except FileNotFoundError:
                opts["preset"] = "tiny"
            res["model_weights"] = opts.get("checkpoint", "untrained tiny preset (no checkpoint found)")
            if args.prior_tracker:
                opts["prior_tracker"] = res["prior_tracker"] = args.prior_tracker
            if args.prior_flow_method:
                opts["prior_flow_method"] = res["prior_flow_method"] = args.prior_flow_method
        backend = make_backend(method, **opts)
        if method == "model":
            res["model_bf16_trunk"] = bool(backend.model.trunk_bf16)
        predict_episode(ep, backend, window=args.frames, overlap=min(8, args.frames - 1))  # warm-up
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            predict_episode(ep, backend, window=args.frames, overlap=min(8, args.frames - 1))
            times.append(time.perf_counter() - t0)
        res[f"{method}_s_median"] = round(float(np.median(times)), 3)
        res[f"{method}_s_min"] = round(float(np.min(times)), 3)
    if "model_s_median" in res:
        res["target_s"] = 2.0
        res["meets_target"] = bool(res["model_s_median"] <= 2.0)
    return res
