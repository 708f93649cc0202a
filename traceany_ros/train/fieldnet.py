"""Training of the trajectory-field network (:mod:`traceany_ros.model.fieldnet`) on simulated episodes.

Episodes are generated on the fly from seeds (``sim/generate.py``) and kept in a pool directory, so a
run sees a new scene every few windows and a resumed run re-reads what it made. Every window is
supervised densely: every output cell of its query frames with valid depth and a tracked link gets its
ground-truth track over all window frames (``sim/groundtruth.py``).

Window modes (the planners need the last two):
    clip      consecutive frames (temporal stride 1-3)
    forecast  a clip whose last 1-5 frames are hidden from the input and still supervised
    goal      a short clip plus one later frame (the goal image), the object motion in between large

    traceany train --out runs/tiny            # CPU, resumable: run the same command again to go on
    torchrun --nproc_per_node=G -m traceany_ros.cli train --device cuda --preset base --out runs/base
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from traceany_ros.field import bspline_basis
from traceany_ros.model.fieldnet import FieldNet, FieldNetConfig, WindowTensors, cell_grid


@dataclass(frozen=True)
class DataConfig:
    """How training windows are drawn."""

    pool: str = "data/pool"          # episodes generated so far (ep_<seed>.npz), reused by later runs
    seed_base: int = 1_000_000       # episode seed of sample n: seed_base + n // windows_per_episode
    windows_per_episode: int = 4
    families: tuple[str, ...] = ("push", "drop", "carry", "arm")
    min_frames: int = 6
    max_frames: int = 10
    max_stride: int = 3
    query_frames: int = 2            # query frames per window (targets: all frames)
    modes: tuple[float, float, float] = (0.6, 0.2, 0.2)  # clip, forecast, goal
    colour_jitter: float = 0.15


@dataclass(frozen=True)
class LossWeights:
    curve: float = 1.0
    iterates: float = 0.5
    motion: float = 0.2
    visibility: float = 0.05
    confidence: float = 0.05
    gamma: float = 0.8               # weight of earlier refinement passes (RAFT's sequence loss)
    confident_m: float = 0.02        # a curve is "confident" when its mean error is below this


@dataclass(frozen=True)
class TrainConfig:
    out: str
    preset: str = "tiny"
    steps: int = 100_000
    lr: float = 3e-4
    weight_decay: float = 1e-4
    warmup: int = 200
    grad_clip: float = 1.0
    device: str = "cpu"
    threads: int = 1
    workers: int = 1
    val_every: int = 250
    val_seeds: tuple[int, ...] = tuple(range(900_000, 900_012))
    log_every: int = 20
    max_minutes: float = 0.0
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossWeights = field(default_factory=LossWeights)


# ----------------------------------------------------------------------------- samples

def load_or_make_episode(seed: int, pool: str | os.PathLike, families) -> "Episode":
    from traceany_ros.episode import load_episode, save_episode
    from traceany_ros.sim.generate import GenerateConfig, episode_name, make_episode

    path = Path(pool) / episode_name(seed)
    if path.is_file():
        try:
            return load_episode(path)
        except (OSError, ValueError, KeyError):
            path.unlink(missing_ok=True)
    ep = make_episode(seed, GenerateConfig(families=tuple(families), num_queries=64))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")
    save_episode(tmp, ep)
    os.replace(tmp, path)
    return ep


def choose_window(T_ep: int, fps: float, rng: np.random.Generator, cfg: DataConfig):
    """-> (frames [T] episode indices, observed [T] bool, mode)."""
    mode = ("clip", "forecast", "goal")[int(rng.choice(3, p=np.asarray(cfg.modes) / sum(cfg.modes)))]
    if mode == "goal":
        n = int(rng.integers(2, 6))
        st = int(rng.integers(1, 3))
        goal_gap = int(rng.integers(max(4, T_ep // 3), T_ep - (n - 1) * st))
        start = int(rng.integers(0, T_ep - (n - 1) * st - goal_gap))
        clip = start + st * np.arange(n)
        frames = np.concatenate([clip, [clip[-1] + goal_gap]])
        return frames, np.ones(len(frames), bool), mode
    T = int(rng.integers(cfg.min_frames, cfg.max_frames + 1))
    strides = [s for s in range(1, cfg.max_stride + 1) if (T - 1) * s < T_ep] or [1]
    st = int(rng.choice(strides))
    T = min(T, (T_ep - 1) // st + 1)
    start = int(rng.integers(0, T_ep - (T - 1) * st))
    frames = start + st * np.arange(T)
    observed = np.ones(T, bool)
    if mode == "forecast":
        hide = int(rng.integers(1, min(5, T - 3) + 1))
        observed[T - hide:] = False
    return frames, observed, mode


def grid_truth(labels, depth, K, c2w, poses, query_frames, stride: int):
    """Dense ground truth of the cells of ``query_frames`` (window-local) over the window's frames.

    labels [T,H,W], depth [T,H,W], c2w [T,4,4], poses [L,T,4,4] (all window-local) ->
    tracks [I,h,w,T,3] float32 world, valid [I,h,w], visible [I,h,w,T], dynamic [I,h,w].
    """
    from traceany_ros.sim.groundtruth import dynamic_flags, pixel_tracks, visibility

    T, H, W = labels.shape
    h, w, off = cell_grid(H, W, stride)
    rows = np.minimum(off + stride * np.arange(h), H - 1)
    cols = np.minimum(off + stride * np.arange(w), W - 1)
    I = len(query_frames)
    f, r, c = np.meshgrid(np.asarray(query_frames), rows, cols, indexing="ij")
    pix = np.stack([f.ravel(), r.ravel(), c.ravel()], 1)
    ok = (labels[pix[:, 0], pix[:, 1], pix[:, 2]] >= 0) & (depth[pix[:, 0], pix[:, 1], pix[:, 2]] > 0)
    tracks = np.zeros((len(pix), T, 3), np.float32)
    vis = np.zeros((len(pix), T), bool)
    dyn = np.zeros(len(pix), bool)
    if ok.any():
        tr, ln = pixel_tracks(pix[ok], labels, depth, K, c2w, poses)
        tracks[ok] = tr
        vis[ok] = visibility(tr, ln, labels, depth, K, c2w)
        dyn[ok] = dynamic_flags(tr, pix[ok, 0])
    return (tracks.reshape(I, h, w, T, 3), ok.reshape(I, h, w), vis.reshape(I, h, w, T), dyn.reshape(I, h, w))


def make_sample(ep, rng: np.random.Generator, cfg: DataConfig, stride: int) -> dict:
    """One training window of an episode with its dense ground truth (numpy arrays)."""
    fps = float(ep.meta.get("fps", 15.0)) if isinstance(ep.meta, dict) else 15.0
    frames, observed, mode = choose_window(ep.num_frames, fps, rng, cfg)
    obs_idx = np.flatnonzero(observed)
    nq = min(cfg.query_frames, len(obs_idx))
    q = rng.choice(obs_idx, nq, replace=False)
    if rng.uniform() < 0.5 and obs_idx[-1] not in q:  # the newest observed frame, as the stream asks for it
        q[0] = obs_idx[-1]
    q = np.sort(q)
    labels = ep.extras["gt_labels"][frames]
    depth = ep.depth[frames]
    c2w = ep.cam_to_world[frames].astype(np.float64)
    poses = ep.extras["gt_link_poses"][:, frames].astype(np.float64)
    fine = grid_truth(labels, depth, ep.intrinsics, c2w, poses, q, stride)
    coarse = grid_truth(labels, depth, ep.intrinsics, c2w, poses, q, 2 * stride)
    rgb = ep.rgb[frames].astype(np.float32)
    if cfg.colour_jitter > 0:  # per-frame brightness/contrast, per-channel gain
        j = cfg.colour_jitter
        gain = rng.uniform(1 - j, 1 + j, (1, 1, 1, 3)) * rng.uniform(1 - j / 2, 1 + j / 2, (len(frames), 1, 1, 1))
        rgb = rgb * gain + rng.uniform(-20 * j, 20 * j)
    return {"rgb": np.clip(rgb, 0, 255).astype(np.uint8), "depth": depth.astype(np.float32),
            "K": ep.intrinsics.astype(np.float32), "c2w": c2w.astype(np.float32),
            "times": ep.timestamps[frames].astype(np.float64), "observed": observed, "query_frames": q,
            "gt": fine[0], "gt_valid": fine[1], "gt_vis": fine[2], "gt_dyn": fine[3],
            "gt_coarse": coarse[0], "gt_coarse_valid": coarse[1], "mode": mode}


class WindowStream(torch.utils.data.IterableDataset):
    """Samples ``start, start + step, ...`` (deterministic per index): episode seed_base + n // per_episode."""

    def __init__(self, cfg: DataConfig, stride: int, start: int = 0, step: int = 1):
        self.cfg, self.stride, self.start, self.step = cfg, stride, start, step

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        wid, nw = (info.id, info.num_workers) if info else (0, 1)
        n = self.start + wid * self.step
        cache: dict[int, object] = {}
        while True:
            seed = self.cfg.seed_base + n // self.cfg.windows_per_episode
            if seed not in cache:
                cache.clear()
                cache[seed] = load_or_make_episode(seed, self.cfg.pool, self.cfg.families)
            rng = np.random.default_rng([seed, n])
            yield n, make_sample(cache[seed], rng, self.cfg, self.stride)
            n += self.step * nw


def to_tensors(sample: dict, device) -> tuple[WindowTensors, dict]:
    def t(x):
        return torch.as_tensor(np.asarray(x))[None].to(device)

    w = WindowTensors(rgb=t(sample["rgb"]).permute(0, 1, 4, 2, 3), depth=t(sample["depth"]), K=t(sample["K"]),
                      cam_to_world=t(sample["c2w"]), times=t(sample["times"]), observed=t(sample["observed"]))
    gt = {k: t(sample[k]) for k in ("gt", "gt_valid", "gt_vis", "gt_dyn", "gt_coarse", "gt_coarse_valid")}
    gt["query_frames"] = torch.as_tensor(sample["query_frames"], dtype=torch.long, device=device)
    return w, gt


# ----------------------------------------------------------------------------- losses

def charbonnier(d: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    return torch.sqrt(d * d + eps * eps) - eps


def balanced_mean(err: torch.Tensor, valid: torch.Tensor, dynamic: torch.Tensor) -> torch.Tensor:
    """Mean of err over valid static cells plus mean over valid moving cells (each class counts once)."""
    out = err.sum() * 0.0
    for m in (valid & ~dynamic, valid & dynamic):
        if m.any():
            out = out + err[m].mean()
    return out


def curve_positions(res: dict) -> torch.Tensor:
    """The fitted curves at every window frame's time: [B,I,h,w,T,3] normalised."""
    s = res["norm"].s  # [B,T]
    K = res["offsets"].shape[-2]
    b = bspline_basis(s.reshape(-1).double(), K).float().reshape(s.shape[0], s.shape[1], K)
    return res["points"][..., None, :] + torch.einsum("btk,bihwkd->bihwtd", b, res["offsets"])


def losses(net, w: WindowTensors, gt: dict, lw: LossWeights) -> dict:
    res = net(w, gt["query_frames"], return_all=True)
    norm = res["norm"]
    scale = norm.scale[:, None, None, None, None]
    gtn = norm.to_norm(gt["gt"].float())  # [B,I,h,w,T,3]
    valid, dyn = gt["gt_valid"] & res["valid"], gt["gt_dyn"]
    pred = curve_positions(res)
    err = torch.linalg.norm(pred - gtn, dim=-1)  # [B,I,h,w,T] units
    out = {}
    out["curve"] = balanced_mean(charbonnier(err).mean(-1), valid, dyn)
    # per-frame estimates before the fit (fine) and each pass on the query grid
    e_pos = torch.linalg.norm(res["positions"] - gtn, dim=-1).mean(-1)
    it_loss = balanced_mean(charbonnier(e_pos), valid, dyn)
    gtc = norm.to_norm(gt["gt_coarse"].float())
    vc = gt["gt_coarse_valid"]
    dync = torch.linalg.norm(gtc - res["coarse_points"][..., None, :], dim=-1).amax(-1) * norm.scale[:, None, None, None] > 0.005
    n = len(res["iterates"])
    for k, it in enumerate(res["iterates"]):
        ek = torch.linalg.norm(it - gtc, dim=-1).mean(-1)
        it_loss = it_loss + lw.gamma ** (n - 1 - k) * balanced_mean(charbonnier(ek), vc, dync)
    out["iterates"] = it_loss
    ml = res["motion_logit"]
    pos = dyn.float()
    npos = pos[valid].sum().clamp_min(1.0)
    nneg = (1 - pos)[valid].sum().clamp_min(1.0)
    wts = torch.where(dyn, 0.5 / npos, 0.5 / nneg) * valid
    out["motion"] = (F.binary_cross_entropy_with_logits(ml, pos, reduction="none") * wts).sum()
    vl = res["visibility_logit"]
    vmask = valid[..., None].expand_as(vl)
    out["visibility"] = F.binary_cross_entropy_with_logits(vl[vmask], gt["gt_vis"][vmask].float()) if vmask.any() else vl.sum() * 0
    err_m = (err * scale).mean(-1).detach()
    conf_t = (err_m < lw.confident_m).float()
    cl = res["confidence_logit"]
    out["confidence"] = F.binary_cross_entropy_with_logits(cl[valid], conf_t[valid]) if valid.any() else cl.sum() * 0
    out["total"] = sum(getattr(lw, k) * v for k, v in out.items())
    with torch.no_grad():
        em = err * scale
        st = valid & ~dyn
        out["epe_static_m"] = em[st].mean() if st.any() else torch.tensor(float("nan"))
        dm = valid & dyn
        out["epe_dynamic_m"] = em[dm].mean() if dm.any() else torch.tensor(float("nan"))
        stat = torch.linalg.norm(gtn - res["points"][..., None, :], dim=-1) * scale
        out["static_dynamic_m"] = stat[dm].mean() if dm.any() else torch.tensor(float("nan"))
    return out


# ----------------------------------------------------------------------------- loop

def _plot(log: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tr = [r for r in log if r["kind"] == "train"]
    va = [r for r in log if r["kind"] == "val"]
    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    if tr:
        ax[0].plot([r["step"] for r in tr], [r["total"] for r in tr], lw=0.8)
        ax[0].set_yscale("log")
        ax[0].set_title("training loss")
        ax[0].set_xlabel("step")
    for key, lab in (("epe_dynamic_cm", "moving (network)"), ("static_dynamic_cm", "moving (static baseline)"),
                     ("epe_static_cm", "static points")):
        if va:
            ax[1].plot([r["step"] for r in va], [r[key] for r in va], marker="o", ms=3, label=lab)
    ax[1].set_title("validation EPE (cm)")
    ax[1].set_xlabel("step")
    ax[1].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


@torch.no_grad()
def validate(net: FieldNet, cfg: TrainConfig, device) -> dict:
    """Mean EPE on fixed validation windows (8 consecutive frames of each val seed, 4 query frames)."""
    net.eval()
    dcfg = replace(cfg.data, pool=cfg.data.pool + "_val", modes=(1.0, 0.0, 0.0), colour_jitter=0.0,
                   min_frames=8, max_frames=8, max_stride=1)
    rows = []
    for seed in cfg.val_seeds:
        ep = load_or_make_episode(seed, dcfg.pool, dcfg.families)
        sample = make_sample(ep, np.random.default_rng([seed, 7]), dcfg, net.config.stride)
        w, gt = to_tensors(sample, device)
        net.train()  # the soft gate, as trained; the hard gate is checked by the evaluation command
        out = losses(net, w, gt, cfg.loss)
        net.eval()
        rows.append({k: float(v) for k, v in out.items()})
    net.train()

    def mean(k):
        v = [r[k] for r in rows if np.isfinite(r[k])]
        return float(np.mean(v)) if v else float("nan")

    return {"total": mean("total"), "epe_static_cm": 100 * mean("epe_static_m"),
            "epe_dynamic_cm": 100 * mean("epe_dynamic_m"), "static_dynamic_cm": 100 * mean("static_dynamic_m")}


def train(cfg: TrainConfig, progress: bool = True) -> dict:
    from tqdm import tqdm

    from traceany_ros.checkpoint_file import git_commit

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    ddp = int(os.environ.get("WORLD_SIZE", "1")) > 1
    rank, world = 0, 1
    if ddp:
        import torch.distributed as dist

        dist.init_process_group("nccl" if cfg.device.startswith("cuda") else "gloo")
        rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if cfg.device.startswith("cuda") and ddp
                          else cfg.device)
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(0)
    net = FieldNet(FieldNetConfig.preset(cfg.preset)).to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    step, log, best, hours = 0, [], float("inf"), 0.0
    last = out / "last.pt"
    if last.is_file():
        ck = torch.load(last, map_location="cpu", weights_only=True)
        net.load_state_dict(ck["state_dict"])
        opt.load_state_dict(ck["optimizer"])
        step, best, hours = ck["step"], ck.get("best", best), ck.get("hours", 0.0)
        if (out / "log.json").is_file():
            log = json.loads((out / "log.json").read_text())["log"]
    model = net
    if ddp:
        model = torch.nn.parallel.DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
    stream = WindowStream(cfg.data, net.config.stride, start=step * world + rank, step=world)
    loader = torch.utils.data.DataLoader(stream, batch_size=None, num_workers=cfg.workers,
                                         persistent_workers=cfg.workers > 0,
                                         prefetch_factor=2 if cfg.workers > 0 else None)
    t_start = time.time()
    bar = tqdm(total=cfg.steps, initial=step, desc="train", disable=not progress or rank != 0, dynamic_ncols=True)
    acc: dict[str, list] = {}

    def save(kind_best: bool = False):
        nonlocal hours
        if rank != 0:
            return
        from traceany_ros.checkpoint_file import save_checkpoint

        h = hours + (time.time() - t_start) / 3600
        state = {"step": step, "best": best, "hours": h}
        save_checkpoint(last, net, train={**state, "config": asdict(cfg)},
                        extra={"optimizer": opt.state_dict(), **state})
        if kind_best:
            save_checkpoint(out / "best.pt", net, train={**state, "config": asdict(cfg), "val": log[-1]},
                            data={"generator": "traceany_ros.sim", "families": list(cfg.data.families),
                                  "seeds_from": cfg.data.seed_base, "episodes_seen":
                                  step * world // cfg.data.windows_per_episode})
        (out / "log.json").write_text(json.dumps({"config": asdict(cfg), "git_commit": git_commit(), "log": log},
                                                 indent=1))
        _plot(log, out / "curves.png")

    for n, sample in loader:
        if step >= cfg.steps:
            break
        lr = cfg.lr * min(1.0, (step + 1) / cfg.warmup)
        for g in opt.param_groups:
            g["lr"] = lr
        w, gt = to_tensors(sample, device)
        terms = losses(model, w, gt, cfg.loss)  # calls the DDP wrapper's forward under torchrun
        opt.zero_grad(set_to_none=True)
        terms["total"].backward()
        gn = torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
        opt.step()
        step += 1
        bar.update(1)
        for k, v in terms.items():
            acc.setdefault(k, []).append(float(v.detach()))
        acc.setdefault("grad_norm", []).append(float(gn))
        if step % cfg.log_every == 0 and rank == 0:
            row = {"kind": "train", "step": step, "lr": lr, "time_h": round(hours + (time.time() - t_start) / 3600, 4)}
            row.update({k: float(np.nanmean(v)) for k, v in acc.items()})
            log.append(row)
            acc = {}
            bar.set_postfix(loss=f"{row['total']:.4f}", dyn=f"{100 * row['epe_dynamic_m']:.1f}cm",
                            sta=f"{100 * row['epe_static_m']:.2f}cm")
        stop = cfg.max_minutes > 0 and (time.time() - t_start) / 60 > cfg.max_minutes
        if (step % cfg.val_every == 0 or stop or step >= cfg.steps) and rank == 0:
            v = validate(net, cfg, device)
            log.append({"kind": "val", "step": step, **v})
            is_best = v["total"] < best
            best = min(best, v["total"])
            save(is_best)
        if stop:
            break
    bar.close()
    if rank == 0:
        save()
    return {"step": step, "best_val_total": best, "out": str(out)}
