"""Training of the coarse matcher (:mod:`traceany_ros.tracker.matcher`) on the simulator's ground truth.

Supervision: for every 8x8 cell centre of frame a (a, b consecutive, both directions), the
surface point seen there is moved with its rigid link (the episode's ``gt_labels`` and
``gt_link_poses`` extras) into frame b; where it is in view and not occluded there, the cell it
lands in is the match (:func:`coarse_matches`). The loss is the negative log of the dual-softmax
match probability, weighted up for moving points and more for matches over 16 px (where DIS
fails). Augmentation: horizontal flips.

``traceany train-matcher --data DIR --out runs/NAME`` writes ``OUT/last.pt`` (resumable, with the
optimiser), ``OUT/matcher.pt`` (weights to ship), ``OUT/log.json`` and ``OUT/curves.png``; running
the same command again resumes.
"""
from __future__ import annotations

import json
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from traceany_ros.tracker.matcher import STRIDE, Matcher, MatcherConfig, prepare, save_matcher, shrink

BIG_MATCH_PX = 16.0


def coarse_matches(ep: dict, a: int, b: int, stride: int = STRIDE) -> np.ndarray:
    """Ground-truth matches of frame a's cell centres in frame b.

    ep: episode arrays with the gt extras (``gt_labels``, ``gt_link_poses``). Returns
    [H/stride * W/stride, 3] float32: (row, col) of the point in frame b and 1.0 if it moved
    (more than 1 mm) else 0.0; NaN rows where the cell shows nothing, has no depth, or its point
    is out of view or occluded in frame b. Cell (i, j) is pixel (stride*i + stride/2, stride*j + stride/2).
    """
    from traceany_ros.geometry import project, unproject_pixels
    from traceany_ros.sim.groundtruth import VIS_DEPTH_TOL_M, tracks_from_links

    depth = np.asarray(ep["depth"])
    H, W = depth.shape[1:]
    r, c = np.meshgrid(stride // 2 + stride * np.arange(H // stride), stride // 2 + stride * np.arange(W // stride),
                       indexing="ij")
    r, c = r.reshape(-1), c.reshape(-1)
    out = np.full((len(r), 3), np.nan, np.float32)
    lab = np.asarray(ep["gt_labels"][a])[r, c].astype(np.int64)
    ok = (lab >= 0) & (depth[a][r, c] > 0)
    if not ok.any():
        return out
    px = np.stack([np.full(ok.sum(), a), r[ok], c[ok]], 1)
    world = unproject_pixels(depth, ep["intrinsics"], ep["cam_to_world"], px)
    moved = tracks_from_links(world, np.zeros(len(world)), lab[ok], np.asarray(ep["gt_link_poses"])[:, [a, b]])
    rows, cols, z = project(moved[:, 1], ep["intrinsics"], ep["cam_to_world"][b])
    ri = np.rint(np.nan_to_num(rows, nan=-1)).astype(np.int64)
    ci = np.rint(np.nan_to_num(cols, nan=-1)).astype(np.int64)
    inside = (ri >= 0) & (ri < H) & (ci >= 0) & (ci < W) & (z > 0)
    zb = depth[b][np.clip(ri, 0, H - 1), np.clip(ci, 0, W - 1)]
    seen = inside & (np.abs(zb - z) < VIS_DEPTH_TOL_M + 0.02 * z)
    k = np.flatnonzero(ok)[seen]
    out[k, 0], out[k, 1] = rows[seen], cols[seen]
    out[k, 2] = np.linalg.norm(moved[seen, 1] - moved[seen, 0], axis=-1) > 1e-3
    return out


class MatchData:
    """Frames and ground-truth matches of all consecutive pairs (both ways) of a set of episodes, in memory.

    rgb [E,T,H,W,3] uint8, depth [E,T,H,W] float16, matches [P,N,3] float16, pairs [P,3] (episode, a, b).
    With ``scale`` > 1 frames are stored shrunk (:func:`traceany_ros.tracker.matcher.shrink`) and matches are
    in the shrunk image's pixels. Episodes must share one frame count and size and carry the gt extras.
    """

    def __init__(self, files, progress: bool = True, scale: int = 1):
        from tqdm import tqdm

        rgb, depth, matches, pairs = [], [], [], []
        first = None
        for e, f in enumerate(tqdm(list(files), desc="ground-truth matches", disable=not progress,
                                   dynamic_ncols=True)):
            with np.load(f) as z:
                if "gt_labels" not in z or "gt_link_poses" not in z:
                    raise ValueError(f"{f} has no gt_labels / gt_link_poses: generate episodes with the gt extras "
                                     f"(`traceany generate` writes them)")
                ep = {k: z[k] for k in ("rgb", "depth", "intrinsics", "cam_to_world", "gt_labels", "gt_link_poses")}
            first = first if rgb else ep["rgb"].shape
            if ep["rgb"].shape != first:
                raise ValueError(f"{f}: frames {ep['rgb'].shape} differ from the first episode's {first}")
            small = [shrink(r, d, scale) for r, d in zip(ep["rgb"], ep["depth"])]
            rgb.append(np.stack([x[0] for x in small]))
            depth.append(np.stack([x[1] for x in small]).astype(np.float16))
            for t in range(len(ep["rgb"]) - 1):
                for a, b in ((t, t + 1), (t + 1, t)):
                    m = coarse_matches(ep, a, b, STRIDE * scale)
                    m[:, :2] = (m[:, :2] + 0.5) / scale - 0.5  # full-res pixels -> shrunk pixels
                    matches.append(m.astype(np.float16))
                    pairs.append((e, a, b))
        if not rgb:
            raise ValueError("no episodes to train the matcher on")
        self.rgb, self.depth = np.stack(rgb), np.stack(depth)
        self.matches, self.pairs = np.stack(matches), np.asarray(pairs)

    def batch(self, ids):
        e, a, b = self.pairs[ids].T
        return (prepare(self.rgb[e, a], self.depth[e, a].astype(np.float32)),
                prepare(self.rgb[e, b], self.depth[e, b].astype(np.float32)),
                torch.as_tensor(self.matches[ids].astype(np.float32)))


def match_loss(scores: torch.Tensor, matches: torch.Tensor, image_size: tuple[int, int]):
    """Dual-softmax NLL of the true cells -> (loss, accuracy within one cell on matches over 16 px, on all).

    scores [B,N,N], matches [B,N,3] as :func:`coarse_matches`.
    """
    H, W = image_size
    h, w = H // STRIDE, W // STRIDE
    valid = torch.isfinite(matches[..., 0])
    rows, cols = torch.nan_to_num(matches[..., 0]), torch.nan_to_num(matches[..., 1])
    moving = torch.nan_to_num(matches[..., 2])
    ty = torch.floor(rows / STRIDE).clamp(0, h - 1)
    tx = torch.floor(cols / STRIDE).clamp(0, w - 1)
    target = (ty * w + tx).long()
    cy = (torch.arange(h, device=scores.device) * STRIDE + STRIDE // 2).float()[:, None].expand(h, w).reshape(-1)
    cx = (torch.arange(w, device=scores.device) * STRIDE + STRIDE // 2).float()[None, :].expand(h, w).reshape(-1)
    big = valid & (torch.hypot(rows - cy, cols - cx) > BIG_MATCH_PX)
    weight = valid.float() * (1.0 + 9.0 * moving + 20.0 * big.float())
    logp = torch.log_softmax(scores, 2) + torch.log_softmax(scores, 1)
    nll = -logp.gather(2, target[..., None])[..., 0]
    loss = (nll * weight).sum() / weight.sum().clamp(min=1e-6)
    pred = scores.argmax(2)
    near = ((pred % w - target % w).abs() <= 1) & ((pred // w - target // w).abs() <= 1)
    acc_big = (near & big).sum().float() / big.sum().clamp(min=1)
    acc_all = (near & valid).sum().float() / valid.sum().clamp(min=1)
    return loss, acc_big, acc_all


@dataclass
class MatcherTrainConfig:
    data: str
    out: str
    val_data: str | None = None
    steps: int = 3000
    batch_size: int = 6
    lr: float = 1e-3
    max_episodes: int | None = None
    val_episodes: int = 20
    val_every: int = 100
    seed: int = 0
    threads: int | None = None
    progress: bool = True


def _plot(log: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    tr, va = log.get("train", []), log.get("val", [])
    if tr:
        loss = np.array([e["loss"] for e in tr])
        a1.plot([e["step"] for e in tr], loss, lw=0.4, alpha=0.4, label="train")
        if len(loss) > 100:
            a1.plot([e["step"] for e in tr][49:], np.convolve(loss, np.ones(50) / 50, "valid"), label="train (mean of 50)")
    if va:
        a1.plot([e["step"] for e in va], [e["loss"] for e in va], marker=".", label="val")
        a2.plot([e["step"] for e in va], [100 * e["acc_big"] for e in va], marker=".", label="val, matches > 16 input px")
        a2.plot([e["step"] for e in va], [100 * e["acc_all"] for e in va], marker=".", label="val, all")
    a1.set_xlabel("step")
    a1.set_ylabel("loss")
    a1.legend()
    a1.set_title("match loss")
    a2.set_xlabel("step")
    a2.set_ylabel("% within one cell (8 input px)")
    a2.legend(fontsize=8)
    a2.set_title("validation match accuracy")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def train_matcher(cfg: MatcherTrainConfig, model_config: MatcherConfig = MatcherConfig()) -> dict:
    """Train (or resume from OUT/last.pt) the matcher; returns the last validation record."""
    from tqdm import tqdm

    from traceany_ros.checkpoint_file import CheckpointError, read_checkpoint, write_json
    from traceany_ros.episode import list_episodes

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    files = list_episodes(cfg.data)[:cfg.max_episodes]
    if not files:
        raise FileNotFoundError(f"no episodes (*.npz) under {cfg.data}")
    val_dir = cfg.val_data
    if val_dir is None and Path(cfg.data).name == "train" and (Path(cfg.data).parent / "val").is_dir():
        val_dir = str(Path(cfg.data).parent / "val")
    val_files = list_episodes(val_dir)[:cfg.val_episodes] if val_dir else files[:1]
    train_set = MatchData(files, cfg.progress, model_config.input_scale)
    val_set = MatchData(val_files, cfg.progress, model_config.input_scale)
    size = train_set.rgb.shape[2:4]

    torch.manual_seed(cfg.seed)
    model = Matcher(model_config)
    opt = torch.optim.AdamW(model.parameters(), cfg.lr, weight_decay=1e-4)
    step, log = 0, {"train": [], "val": []}
    last = out / "last.pt"
    if last.is_file():
        ck = read_checkpoint(last)
        if ck.get("config") != asdict(model_config):
            raise CheckpointError(f"{last} was trained with matcher config {ck.get('config')}, not "
                                  f"{asdict(model_config)}; use another --out")
        model.load_state_dict(ck["state_dict"])
        opt.load_state_dict(ck["optimizer"])
        step = int(ck["train"]["step"])
        if (out / "log.json").is_file():
            log = json.loads((out / "log.json").read_text())
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, total_steps=max(cfg.steps, 1), pct_start=0.05)
    with warnings.catch_warnings():  # fast-forward the schedule on resume (no optimiser step in between)
        warnings.simplefilter("ignore", UserWarning)
        for _ in range(min(step, cfg.steps)):
            sched.step()
    rng = np.random.default_rng(cfg.seed + step)
    # pairs with a moving point are drawn 3x as often
    moving = np.nan_to_num(train_set.matches[..., 2].astype(np.float32)).sum(1) > 0
    p = np.where(moving, 3.0, 1.0)
    p /= p.sum()
    data_desc = {"episodes": len(files), "dir": str(cfg.data), "pairs": int(len(train_set.pairs))}
    t_start = time.time()
    hours0 = log.get("hours", 0.0)

    def validate() -> dict:
        model.eval()
        tot = {"loss": 0.0, "acc_big": 0.0, "acc_all": 0.0}
        ids = np.arange(len(val_set.pairs))[::max(1, len(val_set.pairs) // 64)]
        with torch.no_grad():
            for chunk in np.array_split(ids, max(1, len(ids) // 8)):
                a, b, m = val_set.batch(chunk)
                f0, f1, _ = model.features(a, b)
                loss, acc_big, acc_all = match_loss(model.scores(f0, f1), m, size)
                for k, v in zip(tot, (loss, acc_big, acc_all)):
                    tot[k] += float(v) * len(chunk) / len(ids)
        model.train()
        return tot

    def save() -> None:
        train = {"step": step, "hours": hours0 + (time.time() - t_start) / 3600, "val": log["val"][-1:]}
        save_matcher(last, model, data=data_desc, train=train, extra={"optimizer": opt.state_dict()})
        save_matcher(out / "matcher.pt", model, data=data_desc, train=train)
        log["hours"] = train["hours"]
        write_json(out / "log.json", log)
        _plot(log, out / "curves.png")

    bar = tqdm(total=cfg.steps, initial=step, desc="train matcher", dynamic_ncols=True, disable=not cfg.progress)
    model.train()
    while step < cfg.steps:
        ids = rng.choice(len(train_set.pairs), cfg.batch_size, p=p)
        a, b, m = train_set.batch(ids)
        if rng.random() < 0.5:  # horizontal flip of both frames and their matches
            a, b = a.flip(3), b.flip(3)
            hh, ww = size[0] // STRIDE, size[1] // STRIDE
            m = m.reshape(len(ids), hh, ww, 3).flip(2).reshape(len(ids), -1, 3).clone()
            m[..., 1] = size[1] - 1 - m[..., 1]
        f0, f1, _ = model.features(a, b)
        loss, acc_big, _ = match_loss(model.scores(f0, f1), m, size)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        step += 1
        log["train"].append({"step": step, "loss": float(loss.detach())})
        bar.update(1)
        bar.set_postfix(loss=f"{float(loss.detach()):.3f}")
        if step % cfg.val_every == 0 or step == cfg.steps:
            log["val"].append({"step": step, **validate()})
            bar.write(json.dumps(log["val"][-1]))
            save()
    bar.close()
    if not log["val"]:
        log["val"].append({"step": step, **validate()})
        save()
    return log["val"][-1]
