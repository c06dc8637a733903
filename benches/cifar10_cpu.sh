#!/usr/bin/env bash
# The CPU recipe that reached the paper's LogicTreeNet-S figure on CIFAR-10 (benches/RESULTS.md):
#
#   benches/cifar10_cpu.sh DATA_DIR [RUN] [extra `difflogic train` options]
#
# It is the recipe file difflogic/configs/cifar10-s-cpu.json, run on one pinned core:
#   difflogic train --config cifar10-s-cpu --data-dir DATA_DIR --out RUN --seed SEED --threads 1
# (90 epochs on all 50,000 images, then the recipe's 4-epoch polish in the same folder; about
# 1.5 h on one core; RUN/model.pt is the final network).  Environment: SEED (default 0),
# THREADS (default 1), CORE (the core a one-thread run is pinned to; default the last one this
# process may use, so `taskset -c 0 ... & taskset -c 1 ...` runs two seeds side by side).
set -euo pipefail

DATA=${1:?usage: benches/cifar10_cpu.sh DATA_DIR [RUN] [extra train options]}
RUN=${2:-runs/c10s_cpu}
shift $(( $# >= 2 ? 2 : 1 ))
SEED=${SEED:-0}
THREADS=${THREADS:-1}

source "$(dirname "$0")/_difflogic_cli.sh"
require_native_kernels
PIN=()
if [ "$THREADS" = 1 ] && command -v taskset >/dev/null 2>&1; then
  PIN=(taskset -c "${CORE:-$("$PY" -c 'import os; print(max(os.sched_getaffinity(0)))')}")
fi
echo "==== train: $(date -u +%FT%TZ)"
"${PIN[@]}" "${DL[@]}" train --config cifar10-s-cpu --data-dir "$DATA" --out "$RUN" \
  --seed "$SEED" --threads "$THREADS" "$@"
echo "==== done: $(date -u +%FT%TZ)"
