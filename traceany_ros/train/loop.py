"""Training loop: CPU or GPU, single process or ``torchrun`` DDP, resumable.

    traceany train --data /work/data/train --preset tiny --out runs/tiny
    torchrun --nproc_per_node=G -m traceany_ros.cli train --data ... --device cuda --out runs/base

``OUT/last.pt`` (weights + optimizer + step) is written every ``val_every``
steps and at the end; running the same command again resumes from it.
``OUT/best.pt`` holds the weights with the lowest validation EPE (no
optimizer: the file to ship), ``OUT/log.json`` the history and
``OUT/curves.png`` the loss/EPE plot.
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

from traceany_ros.checkpoint_file import read_checkpoint, resolve_device, save_checkpoint, write_json
from traceany_ros.episode import list_episodes
from traceany_ros.field import evaluate
from traceany_ros.model import ModelConfig, TraceModel
from traceany_ros.model.config import PRIOR_FIELDS
from traceany_ros.train.data import WindowDataset, WindowSample, fill_flow_cache
from traceany_ros.train.losses import (LossConfig, correspondence_loss, correspondence_pairs, rigid_pairs,
                                       motion_loss, rigidity_loss, static_loss, timestamp_loss, trajectory_loss)


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs (stored in its checkpoints and log)."""

    data: str
    out: str
    val_data: str | None = None
    preset: str = "tiny"
    num_control_points: int | None = None  # override the preset's K (ablation)
    use_depth: bool = True                 # False: RGB-only input (ablation)
    flow_tracker: str | None = None        # flow.TRACKERS name of the flow prior's tracker (None: the preset's)
    flow_method: str | None = None         # flow.METHODS name of the prior's optical flow (None: the preset's)
    prior_anchor: str | None = None        # "constant" | "local" (None: the preset's)
    steps: int = 2000
    batch_size: int = 1                    # windows per process per step
    lr: float = 5e-4
    weight_decay: float = 0.05
    warmup: int = 100
    grad_clip: float = 1.0
    window: int = 12                      # frames per training window: random in [min_window, window]
    min_window: int = 6
    max_queries: int = 1024
    max_stride: int = 3
    dense_points: int = 256               # fresh points per window from the dense gt extras (0: contract queries)
    flow_cache: str | None = None         # where whole-clip flow fields are kept (default OUT/flow_cache)
    detach_gate: bool = False             # train the motion gate with the motion loss only
    init: str | None = None               # start from these weights when OUT has no last.pt (e.g. checkpoints/tiny.pt)
    val_every: int = 200
    val_episodes: int = 8
    val_window: int = 24
    log_every: int = 10
    seed: int = 0
    device: str = "cpu"
    threads: int = 1
    workers: int = 0                      # background processes preparing windows (prior, inputs, ground truth)
    max_minutes: float = 0.0              # > 0: stop cleanly (validation + checkpoint) after this long; rerun resumes
    loss: LossConfig = field(default_factory=LossConfig)

    def model_config(self) -> ModelConfig:
        over = {"use_depth": self.use_depth}
        if self.num_control_points:
            over["num_control_points"] = self.num_control_points
        for name in PRIOR_FIELDS:
            if getattr(self, name):
                over[name] = getattr(self, name)
        return ModelConfig.preset(self.preset, **over)


# ----------------------------------------------------------------------------- one step

def query_curves(out: dict, sample: WindowSample, stride: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Bilinearly sample the dense outputs at the queries' pixels.

    out: model outputs of ONE window (offsets [T,h,w,K,3], confidence [T,h,w], motion_logit [T,h,w]).
    Returns control-point offsets [N,K,3], confidence [N] and motion logit [N].
    """
    offsets, conf, ml = out["offsets"], out["confidence"], out["motion_logit"]
    T, h, w = conf.shape
    dev = offsets.device
    y = torch.as_tensor((sample.rows - (stride - 1) / 2) / stride, dtype=torch.float32, device=dev).clamp(0, h - 1)
    x = torch.as_tensor((sample.cols - (stride - 1) / 2) / stride, dtype=torch.float32, device=dev).clamp(0, w - 1)
    f = torch.as_tensor(sample.frame, dtype=torch.long, device=dev)
    y0 = y.floor().long().clamp(max=max(h - 2, 0))
    x0 = x.floor().long().clamp(max=max(w - 2, 0))
    y1, x1 = (y0 + 1).clamp(max=h - 1), (x0 + 1).clamp(max=w - 1)
    ay, ax = (y - y0), (x - x0)
    cp = cf = mo = 0.0
    for yy, xx, wgt in ((y0, x0, (1 - ay) * (1 - ax)), (y0, x1, (1 - ay) * ax), (y1, x0, ay * (1 - ax)),
                        (y1, x1, ay * ax)):
        cp = cp + wgt[:, None, None] * offsets[f, yy, xx]
        cf = cf + wgt * conf[f, yy, xx]
        mo = mo + wgt * ml[f, yy, xx]
    return cp, cf, mo


def window_losses(model, sample: WindowSample, cfg: LossConfig, rng: np.random.Generator,
                  device: torch.device) -> dict[str, torch.Tensor]:
    """Forward one window and return the loss terms, ``total`` and ``epe_m`` (metres, for logging)."""
    net = model.module if hasattr(model, "module") else model
    inp = sample.inputs
    out = model(*inp.model_args(device))
    one = {"offsets": out["offsets"][0], "confidence": out["confidence"][0], "motion_logit": out["motion_logit"][0]}
    cp, conf, motion_logit = query_curves(one, sample, net.config.out_stride)
    s = inp.s.to(device)
    base = torch.as_tensor(sample.base, dtype=torch.float32, device=device)
    gt = torch.as_tensor(sample.gt, dtype=torch.float32, device=device)
    pred = base[:, None, :] + evaluate(cp, s)  # [N,T,3]
    dyn = torch.as_tensor(sample.dynamic, device=device)
    scale = inp.scale
    gt_m = sample.gt * scale
    rp = rigid_pairs(gt_m, sample.dynamic, sample.qid, rng, cfg.num_pairs, cfg.rigid_max_dist, cfg.rigid_tol)
    cpairs = correspondence_pairs(sample.qid, sample.frame, rng, cfg.num_pairs)
    terms = {
        "trajectory": trajectory_loss(pred, gt, conf, cfg.alpha),
        "static": static_loss(cp, ~dyn),
        "rigidity": rigidity_loss(pred, gt, torch.as_tensor(rp, device=device)),
        "correspondence": correspondence_loss(pred, gt, torch.as_tensor(cpairs, device=device)),
        "timestamp": timestamp_loss(out["time"][0], s),
        "motion": motion_loss(motion_logit, dyn, cfg.motion_pos_weight),
    }
    total = sum(getattr(cfg, k) * v for k, v in terms.items())
    with torch.no_grad():
        err = torch.linalg.norm(pred - gt, dim=-1) * scale
        terms["epe_m"] = err.mean()
        terms["epe_dynamic_m"] = err[dyn].mean() if bool(dyn.any()) else err.new_tensor(float("nan"))
    terms["total"] = total
    return terms


# ----------------------------------------------------------------------------- validation

class _NetBackend:
    """Wrap a model being trained as a backend for predict_episode."""

    name = "model"

    def __init__(self, model, device):
        self.model, self.device = model, device

    def predict(self, window):
        return self.model.predict_field(window, device=self.device)


def track_errors(ep, tracks: np.ndarray) -> dict:
    """Mean end-point errors (metres) of predicted tracks [Q,T,3] against an episode's ground truth."""
    err = np.linalg.norm(tracks.astype(np.float64) - ep.tracks_world, axis=-1)
    dyn = ep.dynamic
    return {"epe": float(err.mean()), "epe_static": float(err[~dyn].mean()) if (~dyn).any() else float("nan"),
            "epe_dynamic": float(err[dyn].mean()) if dyn.any() else float("nan"), "n": int(err.size),
            "n_dynamic": int(err[dyn].size)}


def validate(backend, episodes, window: int = 24, overlap: int = 8) -> dict:
    """Errors pooled over episodes (each (query, frame) counts once)."""
    from traceany_ros.predict import predict_episode

    sums = {"epe": 0.0, "epe_static": 0.0, "epe_dynamic": 0.0}
    n = {"epe": 0, "epe_static": 0, "epe_dynamic": 0}
    for ep in episodes:
        tracks, _ = predict_episode(ep, backend, window=window, overlap=overlap)
        err = np.linalg.norm(tracks.astype(np.float64) - ep.tracks_world, axis=-1)
        for k, m in (("epe", np.ones_like(ep.dynamic)), ("epe_static", ~ep.dynamic), ("epe_dynamic", ep.dynamic)):
            sums[k] += float(err[m].sum())
            n[k] += int(err[m].size)
    return {k: sums[k] / n[k] if n[k] else float("nan") for k in sums}


# ----------------------------------------------------------------------------- plotting / logging

def plot_log(log: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    tr = log.get("train", [])
    if tr:
        st = np.array([e["step"] for e in tr])
        loss = np.array([e["total"] for e in tr])
        a1.plot(st, loss, lw=0.5, alpha=0.4, label="total")
        if len(loss) > 10:
            k = min(25, len(loss) // 4)
            a1.plot(st[k - 1:], np.convolve(loss, np.ones(k) / k, "valid"), label=f"total (mean of {k})")
        a1.set_xlabel("step")
        a1.set_ylabel("loss")
        a1.legend()
        a1.set_title("training loss")
    va = log.get("val", [])
    if va:
        st = [e["step"] for e in va]
        for key, style in (("epe", "-"), ("epe_dynamic", "--"), ("epe_static", ":")):
            a2.plot(st, [100 * e[key] for e in va], style, marker=".", label=f"model {key}")
        ref = log.get("static_baseline") or {}
        for key, style in (("epe", "-"), ("epe_dynamic", "--")):
            if key in ref:
                a2.axhline(100 * ref[key], color="gray", ls=style, lw=0.8, label=f"static {key}")
        a2.set_xlabel("step")
        a2.set_ylabel("cm")
        a2.set_title("validation EPE")
        a2.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def data_description(cfg: TrainConfig, train_files, val_files) -> dict:
    return {"train_dir": str(cfg.data), "train_episodes": len(train_files),
            "val_dir": str(cfg.val_data) if cfg.val_data else None, "val_episodes": len(val_files),
            "window": cfg.window, "min_window": cfg.min_window, "max_stride": cfg.max_stride, "max_queries": cfg.max_queries,
            "dense_points_per_window": cfg.dense_points}


def config_to_dict(cfg: TrainConfig) -> dict:
    return asdict(cfg)


def config_from_dict(d: dict) -> TrainConfig:
    d = dict(d)
    d["loss"] = LossConfig(**d.get("loss", {}))
    return TrainConfig(**d)


# ----------------------------------------------------------------------------- main loop


class _StepWindows(torch.utils.data.Dataset):
    """The windows of optimiser steps ``first, first+1, ...`` of this process, one list of
    ``(index, WindowSample)`` per step (``index`` also seeds the step's loss sampling).

    Window ``index`` is the same whichever process makes it (``WindowDataset.sample`` is deterministic
    per index), so training with ``workers`` > 0 sees exactly the windows of ``workers`` = 0.
    """

    def __init__(self, data: WindowDataset, first: int, count: int, world: int, rank: int, batch_size: int):
        self.data, self.first, self.count = data, first, count
        self.world, self.rank, self.batch_size = world, rank, batch_size

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, k: int) -> list[tuple[int, WindowSample]]:
        step = self.first + k
        first_index = (step * self.world + self.rank) * self.batch_size
        return [(i, self.data.sample(i)) for i in range(first_index, first_index + self.batch_size)]


def _one_thread_worker(_worker_id: int) -> None:
    torch.set_num_threads(1)


def _step_batches(data: WindowDataset, first: int, last: int, world: int, rank: int, batch_size: int, workers: int):
    """Iterator over the window lists of steps [first, last): made here, or ahead by ``workers`` processes."""
    windows = _StepWindows(data, first, max(last - first, 0), world, rank, batch_size)
    if workers <= 0:
        return (windows[k] for k in range(len(windows)))
    return iter(torch.utils.data.DataLoader(windows, batch_size=None, shuffle=False, num_workers=workers,
                                            prefetch_factor=2, worker_init_fn=_one_thread_worker))


def _out_of_time(cfg: TrainConfig, started: float, world: int, device) -> bool:
    """Has this invocation used its ``max_minutes``? (All processes agree: rank 0's clock decides.)"""
    if cfg.max_minutes <= 0:
        return False
    over = time.time() - started >= 60.0 * cfg.max_minutes
    if world > 1:
        import torch.distributed as dist

        flag = torch.tensor([float(over)], device=device)
        dist.broadcast(flag, src=0)
        over = bool(flag.item())
    return over


def train(cfg: TrainConfig, progress: bool = True) -> dict:
    """Run (or resume) a training run; returns the final log dict (rank 0)."""
    import torch.distributed as dist

    started = time.time()  # --max-minutes counts this invocation's wall time, setup included
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(cfg.device)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    if device.type == "cpu" and cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    is_main = rank == 0
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)

    mcfg = cfg.model_config()
    train_files = list_episodes(cfg.data)
    val_dir = cfg.val_data
    if val_dir is None and (Path(cfg.data).parent / "val").is_dir() and Path(cfg.data).name == "train":
        val_dir = str(Path(cfg.data).parent / "val")
        cfg = replace(cfg, val_data=val_dir)
    val_files = list_episodes(val_dir)[: cfg.val_episodes] if val_dir else []
    data_desc = data_description(cfg, train_files, val_files)

    model = TraceModel(mcfg).to(device)
    model.detach_gate = cfg.detach_gate
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    step, seconds = 0, 0.0
    log = {"config": config_to_dict(cfg), "model": asdict(mcfg), "data": data_desc, "train": [], "val": [],
           "best_val_epe": None}
    last = out / "last.pt"
    if last.is_file():
        ck = read_checkpoint(last, map_location=device)
        if asdict(ModelConfig.from_dict(ck["config"])) != asdict(mcfg):
            raise ValueError(f"{last} holds a model {ck['config']} but this run asks for {asdict(mcfg)}; "
                             f"use another --out or the same options")
        model.load_state_dict(ck["state_dict"])
        opt.load_state_dict(ck["optimizer"])
        step, seconds = int(ck["train"]["step"]), float(ck["train"].get("seconds", 0.0))
        if (out / "log.json").is_file():
            log = json.loads((out / "log.json").read_text())
            log["train"] = [e for e in log["train"] if e["step"] <= step]
            log.pop("stopped", None)  # an earlier --max-minutes stop; this run goes on
            log["val"] = [e for e in log["val"] if e["step"] <= step]
        if log.get("config") != config_to_dict(cfg):
            log.setdefault("resumes", []).append({"step": step, "config": config_to_dict(cfg)})
            log["config"] = config_to_dict(cfg)
        if is_main:
            print(f"resuming {out} from step {step} ({seconds / 3600:.2f} h so far)", flush=True)
    elif cfg.init:
        ck = read_checkpoint(cfg.init, map_location=device)
        # the weights must fit; how the flow prior is made may change (fine-tuning onto a new prior)
        same = {**asdict(ModelConfig.from_dict(ck["config"])),
                **{k: getattr(mcfg, k) for k in PRIOR_FIELDS}}
        if same != asdict(mcfg):
            raise ValueError(f"--init {cfg.init} holds a model {ck['config']} but this run asks for {asdict(mcfg)}")
        model.load_state_dict(ck["state_dict"])
        step, seconds = int(ck.get("train", {}).get("step", 0)), float(ck.get("train", {}).get("seconds", 0.0))
        log["init"] = {"from": str(cfg.init), "step": step}
        if is_main:
            print(f"starting {out} from the weights of {cfg.init} (step {step}; fresh optimizer)", flush=True)
    net = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        model = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)

    data = WindowDataset(train_files, window=cfg.window, max_queries=cfg.max_queries, max_stride=cfg.max_stride,
                         model_config=mcfg, seed=cfg.seed, flow_cache_dir=cfg.flow_cache or out / "flow_cache",
                         dense_points_per_window=cfg.dense_points, min_window=cfg.min_window)
    if cfg.workers > 0 and data.flow_cache is not None and step < cfg.steps:
        # every episode's prior once, on the workers, before they start cutting windows
        if is_main:
            fill_flow_cache(train_files, mcfg, data.flow_cache.dir, cfg.workers, progress=progress)
        if world > 1:
            dist.barrier()
    val_eps = None
    backend = _NetBackend(net, device)

    def run_validation():
        nonlocal val_eps
        if not val_files:
            return None
        if val_eps is None:
            from traceany_ros.episode import load_episode

            val_eps = [load_episode(p) for p in val_files]
            if "static_baseline" not in log:
                from traceany_ros.backends import make_backend

                log["static_baseline"] = validate(make_backend("static"), val_eps, cfg.val_window)
        net.eval()
        res = validate(backend, val_eps, cfg.val_window)
        net.train()
        return res

    def save(tag_best: bool):
        train_state = {"step": step, "seconds": seconds, "hours": seconds / 3600, "world_size": world,
                       "device": str(device), "val": log["val"][-1] if log["val"] else None,
                       "train_config": config_to_dict(cfg)}
        save_checkpoint(last, net, data=data_desc, train=train_state, extra={"optimizer": opt.state_dict()})
        if tag_best:
            save_checkpoint(out / "best.pt", net, data=data_desc, train=train_state)
        write_json(out / "log.json", log)
        try:
            plot_log(log, out / "curves.png")
        except Exception as e:  # a plotting problem must not stop training
            print(f"warning: could not plot curves: {e}", flush=True)

    bar = None
    if is_main and progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, initial=step, desc=f"train {mcfg.name}", dynamic_ncols=True)
    net.train()
    ema = None
    batches = _step_batches(data, step, cfg.steps, world, rank, cfg.batch_size, cfg.workers)
    while step < cfg.steps:
        t0 = time.time()
        lr = cfg.lr * min(1.0, (step + 1) / max(cfg.warmup, 1))
        for g in opt.param_groups:
            g["lr"] = lr
        opt.zero_grad(set_to_none=True)
        sums: dict[str, float] = {}
        total = 0.0
        for index, sample in next(batches):
            terms = window_losses(model, sample, cfg.loss, np.random.default_rng([cfg.seed, index, 1]), device)
            total = total + terms["total"] / cfg.batch_size
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach()) / cfg.batch_size
        total.backward()
        gnorm = float(torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip))
        if math.isfinite(gnorm):
            opt.step()
        step += 1
        seconds += time.time() - t0
        ema = sums["total"] if ema is None else 0.95 * ema + 0.05 * sums["total"]
        if is_main:
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{ema:.4f}", epe_cm=f"{100 * sums['epe_m']:.2f}")
            if step % cfg.log_every == 0:
                log["train"].append({"step": step, "lr": lr, "grad_norm": gnorm, "seconds": round(seconds, 1),
                                     **{k: round(v, 6) for k, v in sums.items()}})
        out_of_time = _out_of_time(cfg, started, world, device)
        if step % cfg.val_every == 0 or step == cfg.steps or out_of_time:
            if is_main:
                res = run_validation()
                best = False
                if res is not None:
                    log["val"].append({"step": step, "seconds": round(seconds, 1), **res})
                    best = log["best_val_epe"] is None or res["epe"] < log["best_val_epe"]
                    if best:
                        log["best_val_epe"] = res["epe"]
                        log["best_step"] = step
                    if bar is not None:
                        bar.write(f"step {step}: val epe {100 * res['epe']:.2f} cm (static {100 * res['epe_static']:.2f}"
                                  f", dynamic {100 * res['epe_dynamic']:.2f})")
                save(best or res is None)
            if world > 1:
                dist.barrier()
        if out_of_time:
            if is_main:
                log["stopped"] = {"step": step, "reason": f"--max-minutes {cfg.max_minutes:g} reached; rerun to resume"}
                print(f"stopping at step {step}: --max-minutes {cfg.max_minutes:g} reached (rerun the same command "
                      f"to resume)", flush=True)
            break
    if bar is not None:
        bar.close()
    log["hours"] = seconds / 3600
    if is_main:
        write_json(out / "log.json", log)
    return log
