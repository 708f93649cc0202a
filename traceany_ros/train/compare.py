"""Score the network and the baselines on the same episodes, side by side (model card numbers).

    python -m traceany_ros.train.compare --data /work/data/heldout_families --methods static flow-rigid \
        --checkpoints checkpoints/tiny.pt --output cmp.json

Results come per method over all episodes and split by camera: ``fixed`` (a still camera) and ``moving``
(orbits, hand shake, dollies, cranes; the episode's ``meta.scene.camera.mode``). Each backend predicts with
its own sliding windows (``default_window`` / ``default_overlap``: 24 / 8 frames; the network looks at 8 key
frames of each, ``ModelBackend.default_key_frames``) unless ``--window`` / ``--overlap`` are given.

``--mode goal`` / ``--mode forecast`` score the goal-pair and forecast modes instead (the clip plus one
frame where moving points moved 10-40 cm; 0.3 s past the last observed frame; :mod:`traceany_ros.train.modes`).

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


def camera_kind(ep) -> str:
    mode = (ep.meta.get("scene", {}).get("camera", {}) if isinstance(ep.meta, dict) else {}).get("mode", "fixed")
    return "fixed" if mode == "fixed" else "moving"


def _score_all(data: str, methods, checkpoints, limit, device, score, desc: str, key_frames: int | None = None,
               model_options: dict | None = None):
    """Every backend (``methods`` by name, each checkpoint as the network, on ``key_frames`` key frames when
    given, else the backend's; ``model_options``: more ModelBackend options such as ``zoom`` and
    ``selection``) on the same episodes: ``score(ep, backend)`` per episode -> (episode count,
    {name: {"all" | "fixed" | "moving": [scores]}}, {name: seconds per episode})."""
    from tqdm import tqdm

    from traceany_ros.backends import make_backend
    from traceany_ros.episode import list_episodes, load_episode

    files = list_episodes(data)[:limit]
    backends = {m: make_backend(m) for m in methods}
    for ck in checkpoints:
        opts = dict(model_options or {})
        if key_frames is not None:
            opts["key_frames"] = key_frames
        backends[str(ck)] = make_backend("model", checkpoint=str(ck), device=device, **opts)
    per = {k: {"all": [], "fixed": [], "moving": []} for k in backends}
    seconds = {k: 0.0 for k in backends}
    for f in tqdm(files, desc=desc, unit="ep"):
        ep = load_episode(f)
        cam = camera_kind(ep)
        for name, b in backends.items():
            t0 = time.perf_counter()
            r = score(ep, b)
            seconds[name] += time.perf_counter() - t0
            per[name]["all"].append(r)
            per[name][cam].append(r)
    return len(files), per, {k: v / max(len(files), 1) for k, v in seconds.items()}


def _result(data: str, n: int, per: dict, seconds: dict, summary, **head) -> dict:
    out = {"data": str(data), **head, "episodes": n, "results": {}, "by_camera": {"fixed": {}, "moving": {}}}
    for name in per:
        out["results"][name] = {**summary(per[name]["all"]), "seconds_per_episode": seconds[name]}
        for cam in ("fixed", "moving"):
            if per[name][cam]:
                out["by_camera"][cam][name] = {**summary(per[name][cam]), "episodes": len(per[name][cam]),
                                               "seconds_per_episode": float("nan")}
    return out


def compare(data: str, methods=(), checkpoints=(), limit: int | None = None, window: int | None = None,
            overlap: int | None = None, device: str = "cpu", key_frames: int | None = None,
            model_options: dict | None = None) -> dict:
    from traceany_ros.metrics import aggregate, evaluate_predictions
    from traceany_ros.predict import predict_episode

    def score(ep, b):
        w = window or getattr(b, "default_window", 24)
        o = overlap if overlap is not None else getattr(b, "default_overlap", 8)
        tracks, conf = predict_episode(ep, b, window=w, overlap=min(o, w - 1))
        return evaluate_predictions(ep, tracks, conf)

    def summary(rows):
        agg = aggregate(rows)
        return {k: agg[k] for k in KEYS if k in agg}

    n, per, seconds = _score_all(data, methods, checkpoints, limit, device, score, "compare", key_frames, model_options)
    return _result(data, n, per, seconds, summary)


def compare_mode(data: str, mode: str, methods=(), checkpoints=(), limit: int | None = None,
                 device: str = "cpu", model_options: dict | None = None) -> dict:
    """Every backend on the same episodes in a prediction mode (``modes.MODES``), pooled over all episodes
    and split by camera."""
    from traceany_ros.train.modes import score_episode, summarise

    n, per, seconds = _score_all(data, methods, checkpoints, limit, device,
                                 lambda ep, b: score_episode(ep, b, mode), f"compare {mode}",
                                 model_options=model_options)
    return _result(data, n, per, seconds, summarise, mode=mode)


def _tables(result: dict, title: str, table) -> str:
    out = [title, ""] + table(result["results"])
    for cam, rows in result.get("by_camera", {}).items():
        if rows:
            n = next(iter(rows.values()))["episodes"]
            out += ["", f"{cam.capitalize()} camera ({n} episodes):", ""] + table(rows)
    return "\n".join(out)


def format_mode_markdown(result: dict) -> str:
    end = result["mode"] == "forecast"
    head = ("| method | epe_dynamic cm | static hypothesis cm | ratio | epe_static cm |"
            + (" epe_dynamic at 0.3 s cm | static hypothesis at 0.3 s cm |" if end else "") + " moving / still queries |")

    def table(rows: dict) -> list[str]:
        lines = [head, "|" + "---|" * (head.count("|") - 1)]
        for name, r in rows.items():
            f = lambda k: "-" if r.get(k) is None else f"{r[k]:.2f}"  # noqa: E731
            lines.append(f"| {name} | {f('epe_dynamic')} | {f('static_hypothesis_dynamic')} | {f('dynamic_vs_static')} | "
                         f"{f('epe_static')} |" + (f" {f('epe_dynamic_end')} | {f('static_hypothesis_dynamic_end')} |"
                                                   if end else "") + f" {r['n_dynamic']} / {r['n_static']} |")
        return lines

    return _tables(result, f"Mode {result['mode']}, {result['episodes']} episodes of {result['data']}:", table)


def format_markdown(result: dict) -> str:
    head = "| method | epe cm | epe_static cm | epe_dynamic cm | d1cm | d2cm | d5cm | static_jitter cm | s/episode |"

    def table(rows: dict) -> list[str]:
        lines = [head, "|" + "---|" * 9]
        for name, r in rows.items():
            cm = lambda k: f"{100 * r[k]:.2f}" if k in r else "-"  # noqa: E731
            fr = lambda k: f"{r[k]:.3f}" if k in r else "-"  # noqa: E731
            lines.append(f"| {name} | {cm('epe')} | {cm('epe_static')} | {cm('epe_dynamic')} | {fr('delta_1cm')} | "
                         f"{fr('delta_2cm')} | {fr('delta_5cm')} | {cm('static_jitter')} | "
                         f"{r['seconds_per_episode']:.2f} |")
        return lines

    return _tables(result, f"All {result['episodes']} episodes of {result['data']}:", table)


def tracks_picture(episode_path: str, methods=(), checkpoints=(), out: str = "tracks.png", max_tracks: int = 80,
                   window: int | None = None, overlap: int | None = None, device: str = "cpu") -> str:
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
        w = window or getattr(b, "default_window", 24)
        o = overlap if overlap is not None else getattr(b, "default_overlap", 8)
        tracks, _ = predict_episode(ep, b, window=w, overlap=min(o, w - 1))
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
    p.add_argument("--methods", nargs="*", default=["static", "flow-rigid"])
    p.add_argument("--checkpoints", nargs="*", default=[],
                   help="network checkpoints to score (e.g. checkpoints/tiny.pt)")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--window", type=int, default=None, help="frames per window (default: each backend's)")
    p.add_argument("--overlap", type=int, default=None, help="frames shared by windows (default: each backend's)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--key-frames", type=int, default=None,
                   help="the network's key frames of a longer window (default: the backend's, 8; 0: every frame "
                        "through the network)")
    p.add_argument("--selection", default="blend", choices=("blend", "top"),
                   help="the network's refinement: the blend of its candidate moves (default) or the top-weighted one")
    p.add_argument("--zoom", type=int, default=1, help="the network sees the images this many times larger")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--output", help="write the JSON result here")
    p.add_argument("--mode", default="tracks", choices=("tracks", "goal", "forecast"),
                   help="tracks: the episode contract's metrics over sliding windows (default); goal: the clip plus "
                   "one frame where moving points moved 10-40 cm; forecast: 0.3 s past the last observed frame")
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
    opts = {"selection": args.selection, "zoom": args.zoom}
    if args.mode == "tracks":
        res = compare(args.data, args.methods, args.checkpoints, args.limit, args.window, args.overlap, args.device,
                      args.key_frames, opts)
    else:
        res = compare_mode(args.data, args.mode, args.methods, args.checkpoints, args.limit, args.device, opts)
    if args.output:
        Path(args.output).write_text(json.dumps(res, indent=2) + "\n")
    print(format_markdown(res) if args.mode == "tracks" else format_mode_markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
