#!/bin/bash
# The GPU check (docs/gpu/): train `base` from scratch for MINUTES on
# a data subset small enough to travel to a lent GPU machine (64 MiB with the repo), score it beside
# the shipped tiny on 6 held-out episodes, and bench predict on the device.
# The subset, in .gpu/ (ignored by git): .gpu/train = every 14th of the 400 training episodes less
# the 7 largest files (22), .gpu/val and .gpu/heldout = every 7th of the 40 (6 each).
# usage: bash scripts/gpu_base_check.sh [DEVICE=cuda] [MINUTES=5] [WORKERS=12] [PY=python3]
# (run from the repo root; on the device: OUT=$OUT bash scripts/gpu_base_check.sh cuda 6 12 python3)
DEV=${1:-cuda}; MIN=${2:-5}; W=${3:-12}; PY=${4:-python3}
OUT=${OUT:-/tmp/out}; mkdir -p $OUT
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 PYTHONDONTWRITEBYTECODE=1
R=/tmp/runs; mkdir -p $R
# what setup.py's package_dir maps (no pip install there)
for d in sim policies checkpoints; do [ -e traceany_ros/$d ] || ln -s ../$d traceany_ros/$d; done
( nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; nproc; df -h /dev/shm; $PY -c "import torch,cv2,scipy,numpy,sys;print(sys.version);print('torch',torch.__version__,torch.cuda.is_available(),'cv2',cv2.__version__,'numpy',numpy.__version__,'scipy',scipy.__version__)" ) 2>&1 | tee $OUT/env.txt
T0=$(date +%s)
TR="$PY -m traceany_ros.cli train --data .gpu/train --val .gpu/val --preset base --out $R/base --device $DEV --steps 100000 --batch-size 4 --lr 3e-4 --window 24 --min-window 12 --val-every 400 --val-episodes 6 --threads 4 --no-progress"
$TR --max-minutes $MIN --workers $W 2>&1 | tail -25 | tee $OUT/train.txt
if [ ${PIPESTATUS[0]} -ne 0 ]; then echo "RETRY without workers" | tee -a $OUT/train.txt; $TR --max-minutes 2.5 --workers 0 2>&1 | tail -25 | tee -a $OUT/train.txt; fi
cp $R/base/log.json $OUT/base_log.json; cp $R/base/curves.png $OUT/base_curves.png
echo "train wall $(( $(date +%s) - T0 )) s" | tee -a $OUT/train.txt
timeout 150 $PY -m traceany_ros.train.compare --data .gpu/heldout --methods static flow --checkpoints $R/base/best.pt checkpoints/tiny.pt \
  --device $DEV --threads 4 --output $OUT/compare_heldout6.json 2>&1 | grep -v "compare:"
timeout 90 $PY -m traceany_ros.cli bench predict --device $DEV --checkpoint $R/base/best.pt --methods model --repeat 5 --json --output $OUT/bench_base.json 2>&1 | tail -3
timeout 60 $PY -m traceany_ros.cli bench predict --device $DEV --methods model --repeat 5 --json --output $OUT/bench_tiny.json 2>&1 | tail -3
ls -la $OUT
