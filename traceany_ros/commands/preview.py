"""``traceany preview``: a PNG grid of an episode's frames with its tracks drawn, and a GIF."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np


def register(sub) -> None:
    p = sub.add_parser("preview", help="draw an episode's tracks on its frames (PNG grid + GIF)",
                       description="Tracks are the ground truth (or --pred FILE) projected into each frame, coloured "
                                   "by time (viridis: early = purple, late = yellow); filled dots are visible, "
                                   "rings occluded.")
    p.add_argument("episode", help="episode .npz")
    p.add_argument("--out", required=True, help="output directory (writes <name>.png and <name>.gif)")
    p.add_argument("--pred", help="prediction .npz to draw instead of the ground truth")
    p.add_argument("--tracks", type=int, default=80, help="number of queries to draw (half dynamic when possible)")
    p.add_argument("--panels", type=int, default=8, help="frames in the PNG grid")
    p.add_argument("--scale", type=int, default=2, help="upscale factor for drawing")
    p.set_defaults(func=run)


def draw_tracks(ep, tracks: np.ndarray, frame: int, sel: np.ndarray, scale: int = 2, trail: int | None = None):
    """RGB [H*scale, W*scale, 3] of ``frame`` with the trails of queries ``sel`` up to that frame."""
    import cv2
    from matplotlib import colormaps

    from traceany_ros.geometry import project

    cmap = colormaps["viridis"]
    T = ep.num_frames
    img = cv2.resize(ep.rgb[frame], None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    img = np.ascontiguousarray(img)
    first = 0 if trail is None else max(0, frame - trail)
    for q in sel:
        rows, cols, z = project(tracks[q, : frame + 1], ep.intrinsics, ep.cam_to_world[frame])
        pts = [(int(round((c + 0.5) * scale - 0.5)), int(round((r + 0.5) * scale - 0.5)))
               for r, c in zip(rows, cols)]
        for t in range(max(first, 1), frame + 1):
            if z[t] > 0 and z[t - 1] > 0:
                col = tuple(int(255 * v) for v in cmap(t / max(1, T - 1))[:3])
                cv2.line(img, pts[t - 1], pts[t], col, 1, cv2.LINE_AA)
        if z[frame] > 0:
            col = tuple(int(255 * v) for v in cmap(frame / max(1, T - 1))[:3])
            cv2.circle(img, pts[frame], 2 * scale // 2 + 1, col, -1 if ep.visible[q, frame] else 1, cv2.LINE_AA)
    return img


def pick_queries(ep, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    dyn, sta = np.flatnonzero(ep.dynamic), np.flatnonzero(~ep.dynamic)
    nd = min(len(dyn), n // 2)
    ns = min(len(sta), n - nd)
    return np.sort(np.concatenate([rng.choice(dyn, nd, replace=False), rng.choice(sta, ns, replace=False)]))


def run(args) -> int:
    import imageio.v3 as iio

    from traceany_ros.episode import load_episode, load_prediction

    try:
        ep = load_episode(args.episode)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    tracks = ep.tracks_world if not args.pred else load_prediction(args.pred)[0]
    if tracks.shape != ep.tracks_world.shape:
        print(f"error: prediction tracks {tracks.shape} do not match the episode {ep.tracks_world.shape}",
              file=sys.stderr)
        return 2
    sel = pick_queries(ep, args.tracks)
    T = ep.num_frames
    frames = [draw_tracks(ep, tracks, t, sel, args.scale) for t in range(T)]
    idx = np.unique(np.linspace(0, T - 1, min(args.panels, T)).round().astype(int))
    cols = 4 if len(idx) > 4 else len(idx)
    rows = -(-len(idx) // cols)
    h, w, _ = frames[0].shape
    grid = np.full((rows * h, cols * w, 3), 255, np.uint8)
    for i, t in enumerate(idx):
        grid[(i // cols) * h:(i // cols + 1) * h, (i % cols) * w:(i % cols + 1) * w] = frames[t]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = Path(args.episode).stem
    iio.imwrite(out / f"{stem}.png", grid)
    fps = float(1.0 / np.median(np.diff(ep.timestamps))) if T > 1 else 15.0
    iio.imwrite(out / f"{stem}.gif", np.stack(frames), duration=1000.0 / fps, loop=0)
    print(f"wrote {out / (stem + '.png')} ({len(idx)} frames) and {out / (stem + '.gif')} ({T} frames, "
          f"{len(sel)} tracks, {int(ep.dynamic[sel].sum())} dynamic)")
    return 0
