"""Score several checkpoints and baselines on the same episodes (model card / ablation numbers).

    python -m traceany_ros.train.compare --data /work/data/heldout --limit 40 \\
        --methods static flow --checkpoints checkpoints/tiny.pt runs/tiny-pure/best.pt --output cmp.json

``--picture EPISODE --picture-out PNG`` draws ground truth and every method's tracks of that
episode's moving queries side by side instead.

Uses the contract metrics (``traceany_ros.metrics``) through ``predict_episode``, exactly as
``traceany eval --method ...`` does, but with any checkpoint path.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

KEYS = ("epe", "epe_static", "epe_dynamic", "delta_1cm", "delta_2cm", "delta_5cm", "static_jitter")


def compare(data: str, methods=(), checkpoints=(), limit: int | None = None, window: int = 24, overlap: int = 8,
            device: str = "cpu") -> dict:
    from tqdm import tqdm

    from traceany_ros.backends import make_backend
    from traceany_ros.episode import list_episodes, load_episode
    from traceany_ros.metrics import aggregate, evaluate_predictions
    from traceany_ros.predict import predict_episode

    files = list_episodes(data)[:limit]
    backends = {m: make_backend(m) for m in methods}
    for ck in checkpoints:
        # PATH@TRACKER: the model with another prior tracker; PATH@TRACKER@METHOD (or PATH@@METHOD) also
        # with another optical flow for it
        path, _, rest = str(ck).partition("@")
        tracker, _, flow_method = rest.partition("@")
        backends[str(ck)] = make_backend("model", checkpoint=path, device=device, prior_tracker=tracker or None,
                                         prior_flow_method=flow_method or None)
    per = {k: [] for k in backends}
    seconds = {k: 0.0 for k in backends}
    for f in tqdm(files, desc="compare", unit="ep"):
        ep = load_episode(f)
        for name, b in backends.items():
            t0 = time.perf_counter()
            tracks, conf = predict_episode(ep, b, window=window, overlap=overlap)
            seconds[name] += time.perf_counter() - t0
            per[name].append(evaluate_predictions(ep, tracks, conf))
    out = {"data": str(data), "episodes": len(files), "results": {}}
    for name in backends:
        agg = aggregate(per[name])
        out["results"][name] = {**{k: agg[k] for k in KEYS if k in agg},
                                "seconds_per_episode": seconds[name] / max(len(files), 1)}
    return out


def format_markdown(result: dict) -> str:
    head = "| method | epe cm | epe_static cm | epe_dynamic cm | d1cm | d2cm | d5cm | static_jitter cm | s/episode |"
    lines = [head, "|" + "---|" * 9]
    for name, r in result["results"].items():
        cm = lambda k: f"{100 * r[k]:.2f}" if k in r else "-"  # noqa: E731
        fr = lambda k: f"{r[k]:.3f}" if k in r else "-"  # noqa: E731
        lines.append(f"| {name} | {cm('epe')} | {cm('epe_static')} | {cm('epe_dynamic')} | {fr('delta_1cm')} | "
                     f"{fr('delta_2cm')} | {fr('delta_5cm')} | {cm('static_jitter')} | {r['seconds_per_episode']:.2f} |")
    return "\n".join(lines)


def tracks_picture(episode_path: str, methods=(), checkpoints=(), out: str = "tracks.png", max_tracks: int = 80,
                   window: int = 24, overlap: int = 8, device: str = "cpu") -> str:
    """Ground truth and each method's tracks of the moving queries of one episode, side by side.

    Each panel shows the query frames' camera view (frame 0) with every track coloured by time
    (blue -> red), its mean error on moving points in the caption. Returns the PNG path.
    """
    import imageio.v3 as iio
    import numpy as np

    from traceany_ros.backends import make_backend
    from traceany_ros.episode import load_episode
    from traceany_ros.predict import predict_episode
    from traceany_ros.viz import draw_curves, label

    ep = load_episode(episode_path)
    dyn = np.flatnonzero(ep.dynamic)
    if not len(dyn):
        raise ValueError(f"{episode_path} has no moving queries to draw")
    sel = dyn[np.linspace(0, len(dyn) - 1, min(max_tracks, len(dyn))).astype(int)]
    panels = [label(draw_curves(ep.rgb[0], ep.tracks_world[sel], ep.intrinsics, ep.cam_to_world[0], scale=2),
                    "ground truth (moving queries)")]
    backends = {m: make_backend(m) for m in methods}
    for ck in checkpoints:
        backends[f"model {Path(ck).name}"] = make_backend("model", checkpoint=str(ck), device=device)
    for name, b in backends.items():
        tracks, _ = predict_episode(ep, b, window=window, overlap=overlap)
        err = float(np.linalg.norm(tracks[ep.dynamic] - ep.tracks_world[ep.dynamic], axis=-1).mean())
        panels.append(label(draw_curves(ep.rgb[0], tracks[sel], ep.intrinsics, ep.cam_to_world[0], scale=2),
                            f"{name}: moving-point error {100 * err:.1f} cm"))
    cols = 2
    while len(panels) % cols:
        panels.append(np.zeros_like(panels[0]))
    rows = [np.concatenate(panels[i:i + cols], 1) for i in range(0, len(panels), cols)]
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(out, np.concatenate(rows, 0))
    return str(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--methods", nargs="*", default=["static", "flow"])
    p.add_argument("--checkpoints", nargs="*", default=[],
                   help="model checkpoints to score; PATH@TRACKER scores PATH with its flow prior tracked by "
                        "the tracker preset TRACKER (e.g. checkpoints/tiny.pt@offline), "
                        "PATH@TRACKER@METHOD or PATH@@METHOD also with that optical flow (e.g. dis_fine)")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--window", type=int, default=24)
    p.add_argument("--overlap", type=int, default=8)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--output", help="write the JSON result here")
    p.add_argument("--picture", metavar="EPISODE", help="instead: draw the tracks of this episode's moving queries "
                   "for ground truth and every method into --picture-out")
    p.add_argument("--picture-out", default="tracks.png")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    if args.picture:
        print(tracks_picture(args.picture, args.methods, args.checkpoints, args.picture_out, window=args.window,
                             overlap=args.overlap, device=args.device))
        return 0
    res = compare(args.data, args.methods, args.checkpoints, args.limit, args.window, args.overlap, args.device)
    if args.output:
        Path(args.output).write_text(json.dumps(res, indent=2) + "\n")
    print(format_markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
