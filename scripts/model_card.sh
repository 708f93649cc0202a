#!/bin/bash
# Every number of MODEL.md's card, measured again: the shipped checkpoint's size, parameters and training
# record; the held-out splits generated from their seeds (families never trained on, and a generator
# configuration unlike training); static, flow-rigid and the network scored side by side on them, split by
# fixed and moving cameras; the predict time. Usage (repository root, after `make install`):
#
#   scripts/model_card.sh [DATA_DIR] [OUT_DIR] [EPISODES]    # defaults: data/, runs/model_card/, 20
#
# Writes OUT_DIR/checkpoint.json, validation.json (the training loop's validate() on the validation seeds),
# heldout_families.json/.md, heldout_shifted.json/.md, the goal-pair and forecast modes of both splits
# (SPLIT_goal.json/.md, SPLIT_forecast.json/.md) and bench_predict.json.
set -euo pipefail
DATA=${1:-data}
OUT=${2:-runs/model_card}
N=${3:-20}
PY=${PYTHON:-.venv/bin/python}
mkdir -p "$OUT"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

"$PY" - "$OUT" <<'PYEOF'
import json, os, sys
from pathlib import Path

from traceany_ros.model import default_checkpoint, load_checkpoint
from traceany_ros.train.loop import TrainConfig, validate

path = default_checkpoint()
model, meta = load_checkpoint(path)
train = meta.get("train", {})
out = {"checkpoint": str(path), "mb": round(os.path.getsize(path) / 1e6, 2),
       "parameters": sum(p.numel() for p in model.parameters()), "config": meta["config"],
       "step": train.get("step"), "hours": train.get("hours"), "data": meta.get("data"),
       "recorded_validation": train.get("val"), "git_commit": meta.get("git_commit")}
Path(sys.argv[1], "checkpoint.json").write_text(json.dumps(out, indent=1, default=str) + "\n")
print(json.dumps({k: out[k] for k in ("mb", "parameters", "step", "hours")}))
val = validate(model, TrainConfig(out=sys.argv[1]), "cpu")
Path(sys.argv[1], "validation.json").write_text(json.dumps(val, indent=1) + "\n")
print(json.dumps(val))
PYEOF

"$PY" -m traceany_ros.cli generate --out "$DATA/heldout_families" --n "$N" --seed 800000 --families heldout --workers 2
"$PY" -m traceany_ros.cli generate --out "$DATA/heldout_shifted" --n "$N" --seed 810000 --families all --style shifted \
    --workers 2
for split in heldout_families heldout_shifted; do
    "$PY" -m traceany_ros.train.compare --data "$DATA/$split" --methods static flow-rigid \
        --checkpoints checkpoints/tiny.pt --output "$OUT/$split.json" | tee "$OUT/$split.md"
    for mode in goal forecast; do
        "$PY" -m traceany_ros.train.compare --data "$DATA/$split" --mode $mode --methods static flow-rigid \
            --checkpoints checkpoints/tiny.pt --output "$OUT/${split}_$mode.json" | tee "$OUT/${split}_$mode.md"
    done
done
"$PY" -m traceany_ros.cli bench predict --methods model,flow-rigid,static --json --output "$OUT/bench_predict.json"
