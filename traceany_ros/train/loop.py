"""The training loop of the trajectory-field network: CPU or GPU, one process or ``torchrun`` (DDP), resumable.

    traceany train --out runs/tiny            # CPU; run the same command again to go on from OUT/last.pt
    torchrun --nproc_per_node=G -m traceany_ros.cli train --device cuda --preset base --out runs/base

``OUT/last.pt`` (weights, optimizer, step) is written every ``val_every`` steps; ``OUT/best.pt`` holds the
weights with the lowest validation loss (the file to ship), ``OUT/log.json`` the history and
``OUT/curves.png`` the loss and validation EPE plot. SIGTERM or SIGINT stops a run after its step in
progress, validated and saved. Windows come from :mod:`traceany_ros.train.data`.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from traceany_ros.model import ModelConfig, TraceModel
from traceany_ros.train.data import DataConfig, WindowStream, load_or_make_episode, make_sample, to_tensors
from traceany_ros.train.losses import LossWeights, losses


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


def _plot(log: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tr = [r for r in log if r["kind"] == "train"]
    va = [r for r in log if r["kind"] == "val"]
    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    if tr:
        steps, total = np.array([r["step"] for r in tr]), np.array([r["total"] for r in tr])
        ax[0].plot(steps, total, lw=0.5, alpha=0.4, label="every log row")
        k = min(10, len(total))
        ax[0].plot(steps[k - 1:], np.convolve(total, np.ones(k) / k, "valid"), lw=1.5, label=f"mean of {k}")
        ax[0].legend()
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
def validation_data(cfg: TrainConfig):
    """The DataConfig of the fixed validation windows."""
    return replace(cfg.data, pool=cfg.data.pool + "_val", modes=(1.0, 0.0, 0.0), colour_jitter=0.0, moving_windows=1.0,
                   min_frames=8, max_frames=8, max_stride=1)


def validation_key(cfg: TrainConfig) -> str:
    """What the validation numbers depend on; ``best`` only compares runs of the same key."""
    import hashlib

    d = asdict(validation_data(cfg))
    d.pop("pool")
    return hashlib.sha1(json.dumps([d, list(cfg.val_seeds), asdict(cfg.loss)], sort_keys=True).encode()).hexdigest()[:12]


def validate(net: TraceModel, cfg: TrainConfig, device) -> dict:
    """Mean losses and EPEs on fixed validation windows: 8 consecutive frames of each val seed, drawn where
    something moves, with the training query-frame count."""
    net.eval()
    dcfg = validation_data(cfg)
    rows = []
    for seed in cfg.val_seeds:
        ep = load_or_make_episode(seed, dcfg.pool, dcfg.families, dcfg.style)
        sample = make_sample(ep, np.random.default_rng([seed, 7]), dcfg, net.config.stride)
        w, gt = to_tensors(sample, device)
        net.train()  # the soft gate, as trained; the hard gate is checked by the evaluation command
        out = losses(net, w, gt, cfg.loss)
        net.eval()
        rows.append({k: float(v.detach()) for k, v in out.items()})
    net.train()

    def mean(k):
        v = [r[k] for r in rows if np.isfinite(r[k])]
        return float(np.mean(v)) if v else float("nan")

    return {"total": mean("total"), "epe_static_cm": 100 * mean("epe_static_m"),
            "epe_dynamic_cm": 100 * mean("epe_dynamic_m"), "static_dynamic_cm": 100 * mean("static_dynamic_m"),
            "match_acc_moving": mean("match_acc_moving")}


class StopSignals:
    """SIGTERM and SIGINT (also a background job's, whose SIGINT the shell ignores) ask the loop to stop
    after the step in progress, validate and save. ``install()`` takes them (only the main thread can;
    elsewhere it does nothing), ``restore()`` puts the previous handlers back (the loop does so however it
    ends); true once one came."""

    SIGNALS = ("SIGTERM", "SIGINT")

    def __init__(self):
        self.received: list[int] = []
        self._previous: dict = {}

    def install(self) -> "StopSignals":
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            for name in self.SIGNALS:
                sig = getattr(signal, name)
                self._previous[sig] = signal.signal(sig, lambda signum, frame: self.received.append(signum))
        return self

    def restore(self) -> None:
        import signal

        for sig, old in self._previous.items():
            signal.signal(sig, old)
        self._previous = {}

    def __bool__(self) -> bool:
        return bool(self.received)


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
    net = TraceModel(ModelConfig.preset(cfg.preset)).to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    step, log, best, hours, warm_from = 0, [], float("inf"), 0.0, 0
    last = out / "last.pt"
    if last.is_file():
        ck = torch.load(last, map_location="cpu", weights_only=True)
        step, hours = ck["step"], ck.get("hours", 0.0)
        warm_from = ck.get("warm_from", 0)
        added = net.grow_from(ck["state_dict"])
        if added:  # the preset gained blocks that start as the identity: new optimizer state, a new warm-up
            print(f"[train] the run's network grows by {', '.join(added)} at step {step}; the optimizer restarts")
            warm_from = step
        else:
            opt.load_state_dict(ck["optimizer"])
        if ck.get("best_key") == validation_key(cfg):  # else the validation changed: the next one is the best
            best = ck.get("best", best)
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
    stop_signal = StopSignals().install()
    bar = tqdm(total=cfg.steps, initial=step, desc="train", disable=not progress or rank != 0, dynamic_ncols=True)
    acc: dict[str, list] = {}

    def save(kind_best: bool = False):
        if rank != 0:
            return
        from traceany_ros.model.checkpoint import save_model

        h = hours + (time.time() - t_start) / 3600
        state = {"step": step, "best": best, "best_key": validation_key(cfg), "hours": h, "warm_from": warm_from}
        save_model(last, net, train={**state, "config": asdict(cfg)},
                        extra={"optimizer": opt.state_dict(), **state})
        if kind_best:
            save_model(out / "best.pt", net, train={**state, "config": asdict(cfg), "val": log[-1]},
                            data={"generator": "traceany_ros.sim", "families": list(cfg.data.families),
                                  "seeds_from": cfg.data.seed_base, "episodes_seen":
                                  step * world // cfg.data.windows_per_episode})
        (out / "log.json").write_text(json.dumps({"config": asdict(cfg), "git_commit": git_commit(), "log": log},
                                                 indent=1))
        _plot(log, out / "curves.png")

    try:
        for n, sample in loader:
            if step >= cfg.steps:
                break
            lr = cfg.lr * min(1.0, (step - warm_from + 1) / cfg.warmup)
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
                row = {"kind": "train", "step": step, "lr": lr,
                       "time_h": round(hours + (time.time() - t_start) / 3600, 4)}
                row.update({k: float(np.nanmean(v)) for k, v in acc.items()})
                log.append(row)
                acc = {}
                bar.set_postfix(loss=f"{row['total']:.4f}", dyn=f"{100 * row['epe_dynamic_m']:.1f}cm",
                                sta=f"{100 * row['epe_static_m']:.2f}cm")
            stop = (cfg.max_minutes > 0 and (time.time() - t_start) / 60 > cfg.max_minutes) or bool(stop_signal)
            if (step % cfg.val_every == 0 or stop or step >= cfg.steps) and rank == 0:
                v = validate(net, cfg, device)
                log.append({"kind": "val", "step": step, **v})
                is_best = v["total"] < best
                best = min(best, v["total"])
                save(is_best)
            if stop:
                break
    finally:
        stop_signal.restore()
    bar.close()
    if stop_signal:
        print(f"[train] stopped by signal {stop_signal.received[0]} at step {step}; the state is saved, the same "
              "command goes on")
    if rank == 0:
        save()
    return {"step": step, "best_val_total": best, "out": str(out), "rank": rank}
