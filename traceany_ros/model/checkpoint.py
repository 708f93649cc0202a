"""The network's checkpoints: the shipped one, and building a TraceModel from a checkpoint file
(the file format: :mod:`traceany_ros.checkpoint_file`).

A network checkpoint has ``kind = "trajectory-field-network"`` and holds by value everything inference
needs: the whole ModelConfig (architecture, stride, K, gating) and the weights. Nothing is looked up by
name elsewhere.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from traceany_ros.checkpoint_file import CheckpointError, read_checkpoint, resolve_device, save_checkpoint, shipped_file
from traceany_ros.model.config import ModelConfig
from traceany_ros.model.network import TraceModel

DEFAULT_NAME = "tiny.pt"
KIND = "trajectory-field-network"


def default_checkpoint() -> Path:
    """The shipped checkpoint: ``checkpoints/tiny.pt`` in the repository (or installed package)."""
    return shipped_file(DEFAULT_NAME, "pass --checkpoint PATH or train one with `traceany train --out runs/NAME`")


def save_model(path: str | os.PathLike, model: torch.nn.Module, **kw) -> Path:
    """``save_checkpoint`` with this network's kind (``kw``: data, train, extra)."""
    extra = {"kind": KIND, **(kw.pop("extra", None) or {})}
    return save_checkpoint(path, model, extra=extra, **kw)


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[TraceModel, dict]:
    """Build the model of a checkpoint and load its weights -> (model on device, checkpoint dict without weights).

    Raises CheckpointError with what to do for a checkpoint of another kind (the matcher's) and for one of
    the earlier hybrid model (a learned gate over the flow-rigid tracker), which this version does not run.
    """
    ck = read_checkpoint(path)
    if ck.get("kind") != KIND:
        cfg = ck.get("config") if isinstance(ck.get("config"), dict) else {}
        if "flow_prior" in cfg or "patch_size" in cfg:
            raise CheckpointError(
                f"{path} is a checkpoint of the earlier hybrid model (a learned gate over the flow-rigid tracker, "
                f"preset {cfg.get('name', '?')!r}), which this version no longer runs. Use the shipped "
                f"checkpoints/tiny.pt (the standalone network), retrain with `traceany train --out runs/NAME`, "
                f"or run the classical tracker itself with `--method flow-rigid`")
        raise CheckpointError(f"{path} is a traceany checkpoint of kind {ck.get('kind')!r}, not the trajectory-field "
                              f"network ({KIND!r}); pass the network's checkpoint (e.g. checkpoints/tiny.pt)")
    try:
        config = ModelConfig.from_dict(ck["config"])
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: bad model config: {e}") from e
    model = TraceModel(config)
    try:
        model.load_state_dict(ck["state_dict"], strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not match the model its config describes "
                              f"({str(e).splitlines()[0][:300]}); the checkpoint is corrupt or from another version") from e
    meta = {k: v for k, v in ck.items() if k not in ("state_dict", "optimizer")}
    meta["path"] = str(path)
    return model.to(resolve_device(device)).eval(), meta
