#!/bin/bash
# Continue the network's training on a lent GPU machine and bring its state back.
#
# On the device (16 cores, one GPU, a few minutes a call): generate training episodes on its cores
# (seeds the committed run has not reached yet, so nothing is made twice), resume the committed run
# checkpoints/train/PRESET on the GPU for MINUTES, and copy last.pt, best.pt, log.json and curves.png
# to $OUT. Back here, copy them into checkpoints/train/PRESET and commit; the next CPU or GPU run goes
# on from there.
#
# usage (repo root):  OUT=$OUT bash scripts/gpu_train.sh [MINUTES=7] [EPISODES=400] [PRESET=tiny] [DEVICE=cuda]
# The same script runs on a CPU machine with DEVICE=cpu (slowly), which is how it is checked here.
set -euo pipefail
MIN=${1:-7}; N=${2:-400}; PRESET=${3:-tiny}; DEV=${4:-cuda}
PY=${PY:-python3}
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 PYTHONDONTWRITEBYTECODE=1
CORES=$(nproc)
RUN=${RUN:-checkpoints/train/$PRESET}
POOL=${POOL:-data/pool_wide}
mkdir -p "$RUN" "$POOL"
( nvidia-smi --query-gpu=name,memory.total --format=csv 2>/dev/null || echo "no nvidia-smi"; echo "cores $CORES";
  $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" ) | tee "$OUT/env.txt"
# the first episode seed training has not used yet (4 windows per episode, one window per step)
STEP=$($PY -c "import torch,sys; p='$RUN/last.pt'; import os; print(torch.load(p, weights_only=True)['step'] if os.path.exists(p) else 0)")
SEED=$((1000000 + STEP / 4))
T0=$(date +%s)
$PY -m traceany_ros.cli generate --out "$POOL" --n "$N" --seed "$SEED" --families train --style wide \
    --queries 64 --workers $((CORES > 3 ? CORES - 2 : 1)) --json | tail -c 400 | tee "$OUT/generate.txt"
echo "generated in $(( $(date +%s) - T0 )) s" | tee -a "$OUT/generate.txt"
$PY -m traceany_ros.cli train --out "$RUN" --pool "$POOL" --preset "$PRESET" --device "$DEV" --threads 4 \
    --workers $((CORES > 4 ? CORES - 4 : 1)) --max-minutes "$MIN" --no-progress 2>&1 | tail -5 | tee "$OUT/train.txt"
cp "$RUN"/last.pt "$RUN"/best.pt "$RUN"/log.json "$RUN"/curves.png "$OUT"/
echo "wall $(( $(date +%s) - T0 )) s" | tee -a "$OUT/train.txt"
