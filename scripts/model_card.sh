#!/bin/bash
# Every number of MODEL.md's card, measured again: the shipped checkpoint's size, parameters and training
# record, the val and held-out splits generated from their seeds, every method scored on them, and the
# predict time. Usage (from the repository root, after `make install`):
#
#   scripts/model_card.sh [DATA_DIR] [OUT_DIR]        # defaults: data/, runs/model_card/ (both ignored by git)
#
# Writes OUT_DIR/checkpoint.json, heldout.json / .md, val.json / .md and bench_predict.json. About 25 min
# on 2 idle cores (generation ~2 min, each split's comparison ~10 min, the benchmark ~1 min).
set -euo pipefail
DATA=${1:-data}
OUT=${2:-runs/model_card}
PY=${PYTHON:-.venv/bin/python}
mkdir -p "$OUT"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

"$PY" - "$OUT/checkpoint.json" <<'PYEOF'
import json, os, sys
from traceany_ros.checkpoint_file import read_checkpoint
from traceany_ros.model import default_checkpoint, load_checkpoint
from traceany_ros.tracker.matcher import default_matcher_path, load_matcher

path = default_checkpoint()
model, meta = load_checkpoint(path)
matcher, _ = load_matcher()
train = meta.get("train", {})
out = {"checkpoint": str(path), "mb": round(os.path.getsize(path) / 1e6, 2),
       "parameters": sum(p.numel() for p in model.parameters()), "config": meta["config"],
       "step": train.get("step"), "hours": train.get("hours"), "device": train.get("device"),
       "data": meta.get("data"), "last_run": train.get("train_config"), "git_commit": meta.get("git_commit"),
       "matcher": {"mb": round(os.path.getsize(default_matcher_path()) / 1e6, 2),
                   "parameters": sum(p.numel() for p in matcher.parameters()),
                   "train": read_checkpoint(default_matcher_path()).get("train", {})}}
open(sys.argv[1], "w").write(json.dumps(out, indent=1, default=str) + "\n")
print(json.dumps({k: out[k] for k in ("mb", "parameters", "step", "hours", "device")}))
PYEOF

"$PY" -m traceany_ros.cli generate --out "$DATA/val" --n 40 --seed 10000 --workers 2
"$PY" -m traceany_ros.cli generate --out "$DATA/heldout" --n 40 --seed 20000 --families heldout --workers 2
for split in heldout val; do
    "$PY" -m traceany_ros.train.compare --data "$DATA/$split" --limit 40 --methods static flow flow-rigid \
        --checkpoints checkpoints/tiny.pt --output "$OUT/$split.json" | tee "$OUT/$split.md"
done
"$PY" -m traceany_ros.cli bench predict --methods model,flow-rigid,flow,static --output "$OUT/bench_predict.json"
