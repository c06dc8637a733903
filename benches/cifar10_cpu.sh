#!/usr/bin/env bash
# The best CIFAR-10 LogicTreeNet-S recipe measured on the CPU (benches/RESULTS.md, CIFAR-10
# section), as one command:
#
#   benches/cifar10_cpu.sh CIFAR10_DIR [RUN_DIR]        (default RUN_DIR: runs/c10s_cpu)
#
# CIFAR10_DIR holds `cifar-10-batches-py` (the official python layout, or the JPEG copy made by
# ../shared/data/make_cifar10.py).  Steps:
# 1. writes RUN_DIR/model.json: the `cifar10-s` preset (960,512 gates) with 15 input thresholds
#    per channel instead of 3 and its first conv layer switched to straight-through (argmax)
#    gates for the last 70% of the run -- the two changes that moved the hard test accuracy
#    from 55.8% to 57.3-57.6%;
# 2. with TEACHER=1, trains the CNN teacher (`difflogic teacher`, ~35 min on 2 cores) unless
#    RUN_DIR/teacher.npz exists (distillation lifted validation but not test accuracy in the
#    measured runs, so it is off by default);
# 3. trains the logic network for 100 epochs at batch 32 (the paper's: 128) with horizontal
#    flips and random crops padded by 2 px (distilled from the teacher with TEACHER=1) and
#    AdamW weight decay 0.0015 (0.006 x batch / 128: per epoch the same decay as 0.006 at batch
#    128, i.e. 3x the paper's 0.002), pinned to one core when THREADS=1: 59.34% / 58.38%
#    hard test for seeds 0 / 1, ~2.1 h on one core (batch 16, wd 0.00075: 59.44% in 2.6 h;
#    EPOCHS=200: 59.71% for seed 0, the best figure so far, 59.34% for seed 1, 2.7-3.9 h;
#    EPOCHS=300: 59.41% for seed 0, 5.9 h on 2 threads);
#    batch 64 (wd 0.003) gave 58.46%, and batch 128 (BATCH_SIZE=128, wd 0.006) gave 58.65% on
#    110 epochs, 58.90% on 180 (EPOCHS=180 THREADS=2, ~2 h on both cores).
#    The 50-epoch form at batch 128, EPOCHS=50 CROP_PADDING=0 BATCH_SIZE=128 (flips only;
#    crops cost 0.5-1.5% on 60 epochs), gave 58.26 / 57.91% for seeds 0 / 1 (57.25 / 57.58% at
#    wd 0.002 on two CPU models; wd 0.012 gave 57.73%) in ~1 h; flips only for 110 epochs
#    overfits (57.95%).
#    Its last line is the hard and relaxed test accuracy of the best-validation checkpoint.
#    The run ends with POLISH_STEPS (default 50) all-layer straight-through steps at lr/10
#    (`--polish-steps`): +0.2-0.5% hard test in each of the eight polishes of relaxed-trained
#    batch-128 CIFAR-10 S checkpoints (RESULTS.md, 2026-12-03); at batch 32 the relaxed/hard
#    gap is already small (0.6% on validation) and the polish did not beat the unpolished net.
#
# Environment: EPOCHS (default 100: ~2.1 h on one core), BATCH_SIZE (default 32),
# WEIGHT_DECAY (default 0.006 x BATCH_SIZE / 128, so the decay per epoch does not move with
# the batch), CROP_PADDING (default 2; 0 = flips only), POLISH_STEPS (default 50; 0 = none),
# THREADS (default 1: a step runs only ~1.5x faster on 2 threads than on 1 (training-step
# section of RESULTS.md), so two runs side by side, one core each, get more done), DEVICE
# (default cpu; cuda = the same recipe on an NVIDIA GPU, where the paper's several hundred
# epochs fit, e.g. DEVICE=cuda EPOCHS=500; BATCH_SIZE=128 keeps a GPU busier), TEACHER (0 =
# plain cross-entropy, the default; 1 = distil), TEACHER_EPOCHS (default 10), KD_WEIGHT,
# KD_TEMPERATURE (default: the library's), PARAMETRIZATION (default softmax: 16 logits per
# gate; input_wise = 4 truth-table entries, which with a 2-4 epoch polish, e.g. POLISH_STEPS=5624
# at batch 32, gained 1.1% on the 50-epoch recipe and gave 59.85 / 59.76% (seeds 0 / 1) on
# EPOCHS=90: RESULTS.md, sessions 18-19), PYTHON (default python3), DIFFLOGIC (the command
# that runs the CLI; default `difflogic`, or `$PYTHON -m difflogic` from this checkout).
# RUN_DIR/net is overwritten by a new run.
set -euo pipefail

DATA=${1:?usage: benches/cifar10_cpu.sh CIFAR10_DIR [RUN_DIR]}
RUN=${2:-runs/c10s_cpu}
EPOCHS=${EPOCHS:-100}
CROP_PADDING=${CROP_PADDING:-2}
THREADS=${THREADS:-1}
TEACHER=${TEACHER:-0}
TEACHER_EPOCHS=${TEACHER_EPOCHS:-10}
BATCH_SIZE=${BATCH_SIZE:-32}
WEIGHT_DECAY=${WEIGHT_DECAY:-$(awk -v b="$BATCH_SIZE" 'BEGIN { print 0.006 * b / 128 }')}
POLISH_STEPS=${POLISH_STEPS:-50}
DEVICE=${DEVICE:-cpu}
export PARAMETRIZATION=${PARAMETRIZATION:-softmax}

source "$(dirname "$0")/_difflogic_cli.sh"
mkdir -p "$RUN"

$PY - "$RUN/model.json" <<'EOF'
import json, os, sys
from difflogic.models import get_model_config
cfg = get_model_config("cifar10-s")
cfg["name"] = "cifar10-s-t15-l1ste30"
enc = cfg["layers"][0]
assert enc["type"] == "thresholds", enc
enc["num"] = 15                         # 15 thresholds per channel (45 input bit-planes)
first_conv = next(l for l in cfg["layers"] if l["type"] == "conv")
first_conv["straight_through"] = 0.3    # argmax gates in the first conv layer from 30% of the run
if os.environ["PARAMETRIZATION"] != "softmax":
    cfg["name"] += "-" + os.environ["PARAMETRIZATION"]
    cfg["parametrization"] = os.environ["PARAMETRIZATION"]
with open(sys.argv[1], "w") as fh:
    json.dump(cfg, fh, indent=1)
print("model config:", sys.argv[1])
EOF

KD=()
if [ "$TEACHER" = 1 ]; then
  if [ ! -f "$RUN/teacher.npz" ]; then
    echo "==== teacher: $(date -u +%FT%TZ)"
    "${DL[@]}" teacher --dataset cifar10 --data-dir "$DATA" --epochs "$TEACHER_EPOCHS" \
      --threads "$(nproc)" --device "$DEVICE" --out "$RUN/teacher.npz"
  fi
  KD=(--teacher "$RUN/teacher.npz")
  [ -n "${KD_WEIGHT:-}" ] && KD+=(--kd-weight "$KD_WEIGHT")
  [ -n "${KD_TEMPERATURE:-}" ] && KD+=(--kd-temperature "$KD_TEMPERATURE")
fi

PIN=()
if [ "$DEVICE" = cpu ] && [ "$THREADS" = 1 ] && command -v taskset >/dev/null 2>&1; then
  PIN=(taskset -c "$(( $(nproc) - 1 ))")
fi
echo "==== train: $(date -u +%FT%TZ)"
"${PIN[@]}" "${DL[@]}" train --dataset cifar10 --data-dir "$DATA" --model "$RUN/model.json" \
  --epochs "$EPOCHS" --schedule cosine --batch-size "$BATCH_SIZE" --weight-decay "$WEIGHT_DECAY" \
  --augment --crop-padding "$CROP_PADDING" --threads "$THREADS" --polish-steps "$POLISH_STEPS" \
  --device "$DEVICE" "${KD[@]}" --out "$RUN/net"
echo "==== done: $(date -u +%FT%TZ)"
