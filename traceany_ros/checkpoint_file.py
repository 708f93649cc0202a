"""The one checkpoint file format (the network's and the matcher's): config + weights + provenance, read with
clear errors.

A checkpoint is a ``torch.save`` dict::

    format          "traceany_ros.checkpoint"
    format_version  1
    config          ModelConfig as a dict
    state_dict      model weights
    git_commit      commit of the code that trained it ("unknown" outside git)
    data            free-form description of the training data (dict)
    train           training state summary (step, hours, metrics) -- optional
    optimizer, ...  only in resumable training checkpoints (runs/NAME/last.pt)

Loading uses ``weights_only=True`` (no pickled code runs).
"""
from __future__ import annotations

import datetime
import json
import os
import subprocess
from dataclasses import asdict
from pathlib import Path

import torch

FORMAT = "traceany_ros.checkpoint"
FORMAT_VERSION = 1
REPO_ROOT = Path(__file__).resolve().parents[1]


class CheckpointError(RuntimeError):
    """A checkpoint file could not be used (corrupt, not ours, or mismatched)."""


def git_commit(cwd: str | os.PathLike | None = None) -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd or REPO_ROOT, capture_output=True, text=True,
                             timeout=10)
        return out.stdout.strip() if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def shipped_file(name: str, hint: str) -> Path:
    """``checkpoints/NAME`` in the repository (or the installed package); FileNotFoundError with ``hint`` if absent."""
    for cand in (REPO_ROOT / "checkpoints" / name, Path(__file__).resolve().parent / "checkpoints" / name):
        if cand.is_file():
            return cand
    raise FileNotFoundError(f"no shipped {name} at {REPO_ROOT / 'checkpoints' / name}; {hint}")


def resolve_device(device: str | torch.device | None = "cpu") -> torch.device:
    """"cpu" | "cuda" | "cuda:N" | "auto" -> torch.device; asking for CUDA without it is an error."""
    name = str(device or "cpu")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} requested but CUDA is not available in this torch build "
                           f"({torch.__version__}); use --device cpu")
    return torch.device(name)


def save_checkpoint(path: str | os.PathLike, model: torch.nn.Module, *, data: dict | None = None,
                    train: dict | None = None, extra: dict | None = None) -> Path:
    """Write a checkpoint atomically (tmp file + rename). ``extra`` adds keys (e.g. optimizer state).

    ``model``: a TraceModel (or its DDP wrapper) or any module whose ``config`` is a dataclass
    (the matcher, which adds ``kind`` through ``extra``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    net = model.module if hasattr(model, "module") else model  # unwrap DDP
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": asdict(net.config),
        "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()},
        "git_commit": git_commit(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "data": data or {},
        "train": train or {},
    }
    payload.update(extra or {})
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def read_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """Read and check a checkpoint dict; raises CheckpointError saying what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        ck = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises many types for truncated / foreign files
        raise CheckpointError(f"{path} is not a readable traceany checkpoint ({type(e).__name__}: "
                              f"{str(e).splitlines()[0][:200] if str(e) else ''}); the file is corrupt or truncated: "
                              f"copy it again or retrain") from e
    if not isinstance(ck, dict) or ck.get("format") != FORMAT:
        raise CheckpointError(f"{path} is a torch file but not a traceany checkpoint (no format={FORMAT!r})")
    if ck.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path} has checkpoint format version {ck.get('format_version')}, this code reads "
                              f"{FORMAT_VERSION}; use the matching traceany_ros version")
    for key in ("config", "state_dict"):
        if key not in ck:
            raise CheckpointError(f"{path} lacks {key!r}; the file is incomplete")
    return ck


def write_json(path: Path, obj) -> None:
    """Write a training log (or any JSON next to a checkpoint) atomically (tmp file + rename)."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=1, default=float))
    os.replace(tmp, path)
