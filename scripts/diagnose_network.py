"""Where the network's error on moving points comes from, on the training run's validation windows.

    python scripts/diagnose_network.py checkpoints/train/tiny/last.pt

For the query cells whose truth moves more than 1 cm, at the frames where it is seen: the median
error (cm) of the static hypothesis, of each pass's candidate moves (each correlation level's
lifted soft-argmax, the global match) and of each pass's estimate; the weight each pass gives
to staying and to each candidate; how often a candidate beats staying; and the motion gate on
moving and still cells (research tool; the numbers are in the training notes).
"""
from __future__ import annotations

import argparse

import numpy as np
import torch


def main() -> None:
    from traceany_ros.model.checkpoint import load_checkpoint
    from traceany_ros.train.data import load_or_make_episode, make_sample, to_tensors
    from traceany_ros.train.loop import TrainConfig, validation_data

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--windows", type=int, default=12, help="validation windows (seeds 900000 on)")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    net, _ = load_checkpoint(a.checkpoint)
    cfg = TrainConfig(out="")
    dcfg = validation_data(cfg)
    rows = {"stay": [], "iterate": [], "picked": [], "cand": [], "weights": [], "beats": [], "gate_moving": [], "gate_still": []}
    names = [f"level {i}" for i in range(net.config.levels)] + ["global"] + (["argmax"] if net.config.global_argmax else [])
    for seed in cfg.val_seeds[: a.windows]:
        ep = load_or_make_episode(seed, dcfg.pool, dcfg.families, dcfg.style)
        w, gt = to_tensors(make_sample(ep, np.random.default_rng([seed, 7]), dcfg, net.config.stride), "cpu")
        net.train()
        with torch.no_grad():
            res = net(w, gt["query_frames"], return_all=True)
        norm = res["norm"]
        sc = float(norm.scale[0]) * 100  # cm per unit
        gtc = norm.to_norm(gt["gt_coarse"].float())
        own = res["coarse_points"][..., None, :]
        away = torch.linalg.norm(gtc - own, dim=-1) * sc > 1.0
        m = gt["gt_coarse_valid"][..., None] & gt["gt_coarse_vis"] & w.observed[:, None, None, None, :] & away
        if not m.any():
            continue
        stay = torch.linalg.norm(gtc - own, dim=-1)[m] * sc
        rows["stay"].append(stay)
        rows["iterate"].append(torch.stack([torch.linalg.norm(it - gtc, dim=-1)[m] * sc for it in res["iterates"]], -1))
        c = torch.stack([torch.linalg.norm(p - gtc[..., None, :], dim=-1)[m] * sc for p in res["proposals"]], 1)
        rows["cand"].append(c)  # [M, passes, L+1]
        rows["beats"].append(c[:, 0] < stay[:, None])
        rows["weights"].append(torch.stack([wt[m] for wt in res["weights"]], 1))  # [M, passes, L+2]
        # the option each pass's weights rank first, taken alone (stay = the previous estimate)
        prev, picked = own.expand_as(gtc), []
        for p, wt, it in zip(res["proposals"], res["weights"], res["iterates"]):
            options = torch.cat([prev[..., None, :], p], -2)
            best = options.gather(-2, wt.argmax(-1)[..., None, None].expand(*wt.shape[:-1], 1, 3))[..., 0, :]
            picked.append(torch.linalg.norm(best - gtc, dim=-1)[m] * sc)
            prev = it
        rows["picked"].append(torch.stack(picked, -1))
        gate = torch.sigmoid(res["motion_logit"])
        v = gt["gt_valid"]
        rows["gate_moving"].append(gate[v & gt["gt_dyn"]])
        rows["gate_still"].append(gate[v & ~gt["gt_dyn"]])
    cat = {k: torch.cat(v) for k, v in rows.items() if v}
    print(f"moving pairs: {len(cat['stay'])}; median error (cm) of staying: {cat['stay'].median():.2f} "
          f"(mean {cat['stay'].mean():.2f})")
    for p in range(cat["cand"].shape[1]):
        cands = ", ".join(f"{n} {cat['cand'][:, p, j].median():.2f}" for j, n in enumerate(names))
        wts = ", ".join(f"{n} {cat['weights'][:, p, j].mean():.2f}" for j, n in enumerate(["stay"] + names))
        print(f"pass {p}: candidates {cands}; estimate {cat['iterate'][:, p].median():.2f} (mean "
              f"{cat['iterate'][:, p].mean():.2f}); the top-weighted option alone {cat['picked'][:, p].median():.2f} "
              f"(mean {cat['picked'][:, p].mean():.2f}); mean weights {wts}")
    print("share of moving pairs where the first pass's candidate beats staying: "
          + ", ".join(f"{n} {cat['beats'][:, j].float().mean():.2f}" for j, n in enumerate(names)))
    print(f"motion gate: moving cells {cat['gate_moving'].mean():.2f} (share > 0.5: "
          f"{(cat['gate_moving'] > 0.5).float().mean():.2f}), still cells {cat['gate_still'].mean():.2f}")


if __name__ == "__main__":
    main()
