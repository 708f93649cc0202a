"""B-spline field evaluation throughput (numpy and torch)."""
from __future__ import annotations

import time

import numpy as np


def add_arguments(p) -> None:
    p.add_argument("--frames", type=int, default=24)
    p.add_argument("--size", default="64x48", help="field WxH")
    p.add_argument("--K", type=int, default=10)
    p.add_argument("--repeat", type=int, default=5)


def run(args) -> dict:
    import torch

    from traceany_ros.field import TrajectoryField, evaluate

    w, h = (int(v) for v in args.size.lower().split("x"))
    rng = np.random.default_rng(0)
    cp = rng.normal(size=(args.frames, h, w, args.K, 3)).astype(np.float32)
    f = TrajectoryField(cp, np.ones(cp.shape[:3], np.float32), np.arange(args.frames) / 15.0)
    s = np.linspace(0, 1, args.frames)

    def timeit(fn):
        fn()
        t0 = time.perf_counter()
        for _ in range(args.repeat):
            fn()
        return (time.perf_counter() - t0) / args.repeat * 1e3

    cpt = torch.from_numpy(cp)
    return {
        "curves": int(np.prod(cp.shape[:3])),
        "eval_all_frames_numpy_ms": round(timeit(lambda: evaluate(cp, s)), 3),
        "eval_all_frames_torch_ms": round(timeit(lambda: evaluate(cpt, torch.from_numpy(s))), 3),
        "fuse_ms": round(timeit(lambda: f.fuse(f.times[-1], 1.0)), 3),
        "dynamic_mask_ms": round(timeit(f.dynamic_mask), 3),
    }
