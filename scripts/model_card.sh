#!/bin/bash
# Every number of MODEL.md's card, measured again: the shipped checkpoint's size, parameters and training
# record, and its validation (the training loop's validate() on the validation seeds, episodes generated
# on demand into data/pool_wide_val). Usage (from the repository root, after `make install`):
#
#   scripts/model_card.sh [OUT_DIR]        # default: runs/model_card/ (ignored by git)
#
# Writes OUT_DIR/checkpoint.json and OUT_DIR/validation.json; a few minutes on 2 idle cores.
set -euo pipefail
OUT=${1:-runs/model_card}
PY=${PYTHON:-.venv/bin/python}
mkdir -p "$OUT"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

"$PY" - "$OUT" <<'PYEOF'
import json, os, sys
from pathlib import Path

from traceany_ros.model import default_checkpoint, load_checkpoint
from traceany_ros.train.loop import TrainConfig, validate

out = Path(sys.argv[1])
path = default_checkpoint()
model, meta = load_checkpoint(path)
train = meta.get("train", {})
card = {"checkpoint": str(path), "mb": round(os.path.getsize(path) / 1e6, 2),
        "parameters": sum(p.numel() for p in model.parameters()), "kind": meta.get("kind"),
        "config": meta["config"], "step": train.get("step"), "hours": train.get("hours"),
        "data": meta.get("data"), "train_config": train.get("config"), "recorded_validation": train.get("val"),
        "git_commit": meta.get("git_commit")}
(out / "checkpoint.json").write_text(json.dumps(card, indent=1, default=str) + "\n")
print(json.dumps({k: card[k] for k in ("mb", "parameters", "step", "hours", "recorded_validation")}, default=str))
val = validate(model, TrainConfig(out=str(out)), "cpu")
(out / "validation.json").write_text(json.dumps(val, indent=1) + "\n")
print(json.dumps(val))
PYEOF
