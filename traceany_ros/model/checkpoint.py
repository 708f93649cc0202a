"""The network's checkpoints: the shipped one, and building a TraceModel from a checkpoint file
(the file format: :mod:`traceany_ros.checkpoint_file`)."""
from __future__ import annotations

import os
from pathlib import Path

import torch

from traceany_ros.checkpoint_file import CheckpointError, read_checkpoint, resolve_device, shipped_file
from traceany_ros.model.config import ModelConfig
from traceany_ros.model.network import TraceModel

DEFAULT_NAME = "tiny.pt"


def default_checkpoint() -> Path:
    """The shipped checkpoint: ``checkpoints/tiny.pt`` in the repository (or installed package)."""
    return shipped_file(DEFAULT_NAME, "pass --checkpoint PATH or train one with "
                                      "`traceany train --data DIR --preset tiny --out runs/NAME`")


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[TraceModel, dict]:
    """Build the model of a checkpoint and load its weights -> (model on device, checkpoint dict without weights)."""
    ck = read_checkpoint(path)
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
    return model.to(resolve_device(device)), meta
