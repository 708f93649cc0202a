"""Where a predictor's error on moving points comes from (research tool, needs the gt extras).

    python scripts/diagnose_motion.py --data /work/data/heldout --limit 40 --method flow-rigid
    python scripts/diagnose_motion.py --data /work/data/heldout --limit 40 --method flow-rigid --oracle-flow 4

Prints epe_dynamic split by what the query lies on (the Panda, or the scripted motion of its
object: spin, spin-air, drop, carry, push, other) next to the static baseline's, and the pooled
total. ``--oracle-flow PX`` replaces the 2D optical flow of the flow trackers by the ground-truth
flow (from the episode's ``gt_labels`` and ``gt_link_poses``) wherever that moves more than PX
pixels (0: everywhere), keeping OpenCV DIS on grey elsewhere (RGB-D flow off): how good the tracker would be with better
correspondences. Episodes must be generated with the gt extras (``traceany generate`` writes them).
"""
from __future__ import annotations

import argparse
import json

import numpy as np


def gt_flow(ep: dict, t: int, u: int) -> np.ndarray:
    """Ground-truth optical flow from frame t to frame u: [H,W,2] float32 (0 where no link / no depth)."""
    from traceany_ros.geometry import project, unproject
    from traceany_ros.sim.groundtruth import tracks_from_links

    lab = ep["gt_labels"][t].astype(np.int64)
    z = ep["depth"][t]
    ok = (lab >= 0) & (z > 0)
    seen = unproject(z, ep["intrinsics"], ep["cam_to_world"][t])[ok]
    moved = tracks_from_links(seen, np.zeros(len(seen)), lab[ok], ep["gt_link_poses"][:, [t, u]])[:, 1]
    rows, cols, _ = project(moved, ep["intrinsics"], ep["cam_to_world"][u])
    r, c = np.nonzero(ok)
    flow = np.zeros(z.shape + (2,), np.float32)
    flow[r, c, 0], flow[r, c, 1] = cols - c, rows - r
    return flow


def query_kinds(ep: dict, meta: dict) -> list[str]:
    """What each dynamic query lies on: 'panda' or its object's scripted motion."""
    links = meta["scene"]["links"]
    motion = {m["target"]: m["type"] + ("-air" if m.get("lift", 0) > 0 else "")
              for m in meta["scene"]["motions"] if "target" in m}
    qp = ep["query_pixels"]
    lab = ep["gt_labels"][qp[:, 0], qp[:, 1], qp[:, 2]][ep["dynamic"]]
    return ["panda" if links[i].startswith("panda") else motion.get(links[i].split("/")[0], "other") for i in lab]


def main(argv=None) -> None:
    import traceany_ros.tracker.flow as flow_module
    from traceany_ros.backends import make_backend
    from traceany_ros.episode import list_episodes, load_episode
    from traceany_ros.predict import predict_episode

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True)
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--method", default="flow-rigid", help="backend name (model: the shipped checkpoint)")
    p.add_argument("--oracle-flow", type=float, default=None, metavar="PX")
    args = p.parse_args(argv)

    real_flow, real_gray = flow_module.dense_flow, flow_module._gray
    # the oracle replaces the grey flow, so flow backends run on grey flow only there
    oracle_opts = {"depth_flow": False} if args.oracle_flow is not None and args.method.startswith("flow") else {}
    backend = make_backend(args.method, **oracle_opts)
    sums: dict[str, list[float]] = {}
    for path in list_episodes(args.data)[:args.limit]:
        raw = dict(np.load(path))
        if "gt_labels" not in raw:
            raise SystemExit(f"{path} has no gt_labels / gt_link_poses: generate episodes with the gt extras")
        meta = json.loads(str(raw["meta"]))
        if args.oracle_flow is not None:
            frames = {raw["rgb"][i].tobytes(): i for i in range(len(raw["rgb"]))}
            grey = [real_gray(x) for x in raw["rgb"]]
            flow_module._gray = lambda rgb, frames=frames: np.array([frames[np.ascontiguousarray(rgb).tobytes()]])

            def oracle(a, b, method, raw=raw, grey=grey):
                i, j = int(a[0]), int(b[0])
                g = gt_flow(raw, i, j)
                big = np.linalg.norm(g, axis=-1) > args.oracle_flow
                return np.where(big[..., None], g, real_flow(grey[i], grey[j], method))
            flow_module.dense_flow = oracle
        ep = load_episode(path)
        tracks, _ = predict_episode(ep, backend)
        err = np.linalg.norm(tracks - ep.tracks_world, axis=-1)[ep.dynamic].mean(1)
        qf = ep.query_pixels[:, 0]
        still = ep.tracks_world[np.arange(len(qf)), qf][:, None]
        serr = np.linalg.norm(still - ep.tracks_world, axis=-1)[ep.dynamic].mean(1)
        for kind, e, s in zip(query_kinds(raw, meta), err, serr):
            acc = sums.setdefault(kind, [0, 0.0, 0.0])
            acc[0] += 1
            acc[1] += float(e)
            acc[2] += float(s)
    n = sum(a[0] for a in sums.values())
    print(f"{'on':10s} {'queries':>8s} {'epe_dyn cm':>10s} {'static cm':>10s} {'share of error':>15s}")
    for kind, (k, e, s) in sorted(sums.items(), key=lambda kv: -kv[1][1]):
        print(f"{kind:10s} {k:8d} {100 * e / k:10.2f} {100 * s / k:10.2f} {e / max(sum(a[1] for a in sums.values()), 1e-12):15.2f}")
    print(f"{'all':10s} {n:8d} {100 * sum(a[1] for a in sums.values()) / n:10.2f} "
          f"{100 * sum(a[2] for a in sums.values()) / n:10.2f}")


if __name__ == "__main__":
    main()
