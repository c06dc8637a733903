#!/usr/bin/env bash
# The README's main job, one command on a fresh machine (CPU only, 2 cores are enough):
#
#   benches/main_job.sh [RUN_DIR]        (default RUN_DIR: runs/fmnist)
#
# 1. trains the small conv logic gate network `fmnist-small` on Fashion-MNIST
#    (tree-conv blocks with OR pooling + a dense head; native C++ kernels), starting over in
#    RUN_DIR if an earlier main job left a run there (`--overwrite`),
# 2. reports the hard (discretised) test accuracy of the best-validation checkpoint,
# 3. exports it to bit-packed C and verifies that the compiled C computes exactly the
#    same class scores as the PyTorch model (random inputs and real test images),
# 4. benchmarks it with `difflogic bench` on test images: the PyTorch hard forward, the
#    compiled C and (on a GPU machine) the packed GPU engine, on 1 and THREADS threads, each
#    run checked bit-exact first (RUN_DIR/bench.json, RUN_DIR/bench.png).
#
# Environment: DATA_DIR (Fashion-MNIST IDX folder; default: the dataset-fashion-mnist package's
# /usr/share/datasets/fashion-mnist or $DIFFLOGIC_DATA/fashion-mnist), THREADS (default: all
# cores), EPOCHS (default: the fmnist-small recipe's), DIFFLOGIC_ALLOW_SLOW=1 (run even without
# the compiled kernels).  Both the kernels and the dataset are checked before any training
# (exit 2, printing what to run, when one is missing).  Prints the wall time of every stage.
set -euo pipefail

RUN=${1:-runs/fmnist}
THREADS=${THREADS:-$(nproc)}
EPOCHS=${EPOCHS:-}
MODEL=${MODEL:-fmnist-small}

source "$(dirname "$0")/_difflogic_cli.sh"
# OpenMP wait policy: libgomp's default (spin briefly, then sleep) is left alone: with
# OMP_WAIT_POLICY=PASSIVE every parallel region pays a futex wake-up; set PASSIVE yourself on
# a machine busy with other work, where spinning threads would steal its cores.

# Before any training: the native kernels (else ~70x slower) and Fashion-MNIST must be there.
require_native_kernels
if [ -n "${DATA_DIR:-}" ] && [[ "$DATA_DIR" != /* ]]; then DATA_DIR=$PWD/$DATA_DIR; fi
data_args=()
[ -n "${DATA_DIR:-}" ] && data_args=(--data-dir "$DATA_DIR")

# Prints where Fashion-MNIST is, or what to run to get it and exits 2.  Asks difflogic.data,
# so it looks exactly where `difflogic train` will.
require_fashion_mnist() {
  local found rc=0
  found=$(cd / && "${DL_PY:-$PY}" - "${DATA_DIR:-}" <<'PY'
import sys
from difflogic.data import DatasetNotFoundError, default_data_dirs, locate_dataset
data_dir = sys.argv[1] or None
try:
    print(locate_dataset("fashion-mnist", data_dir))
except DatasetNotFoundError:
    print(", ".join(map(str, [data_dir] if data_dir else default_data_dirs("fashion-mnist"))))
    sys.exit(3)
PY
  ) || rc=$?
  if [ "$rc" -eq 3 ] && [ -n "${DATA_DIR:-}" ]; then
    cat >&2 <<EOF
$(basename "$0"): Fashion-MNIST not found in DATA_DIR=$DATA_DIR. Point DATA_DIR at a folder
holding its four IDX files (train-images-idx3-ubyte.gz, ...), or unset it after running
    sudo apt-get install dataset-fashion-mnist
EOF
    exit 2
  elif [ "$rc" -eq 3 ]; then
    cat >&2 <<EOF
$(basename "$0"): Fashion-MNIST not found (looked in $found). Get it with
    sudo apt-get install dataset-fashion-mnist
or point the job at a folder holding its four IDX files (train-images-idx3-ubyte.gz, ...):
    DATA_DIR=DIR bash $0 $RUN
EOF
    exit 2
  elif [ "$rc" -ne 0 ]; then
    echo "$(basename "$0"): could not look for Fashion-MNIST: $found" >&2
    exit 1
  fi
  echo "Fashion-MNIST: $found"
}
require_fashion_mnist
train_args=()
[ -n "$EPOCHS" ] && train_args=(--epochs "$EPOCHS")

t0=$(date +%s)
bench_json=
stage() { echo; echo "=== $1 ($(( $(date +%s) - t0 ))s elapsed)"; }

stage "train $MODEL on Fashion-MNIST -> $RUN"
"${DL[@]}" train --config "$MODEL" "${data_args[@]}" \
  --threads "$THREADS" "${train_args[@]}" --overwrite --out "$RUN"
t_train=$(( $(date +%s) - t0 ))

stage "hard test accuracy of $RUN/model.pt"
"${DL[@]}" eval "$RUN/model.pt" --dataset fashion-mnist "${data_args[@]}" --threads "$THREADS"

if "${DL[@]}" export --help >/dev/null 2>&1; then
  stage "export to C -> $RUN/c"
  "${DL[@]}" export "$RUN/model.pt" --target c --out "$RUN/c"
  stage "verify the compiled C against PyTorch (bit-exact class scores)"
  "${DL[@]}" verify "$RUN/model.pt" --target c --dataset fashion-mnist "${data_args[@]}"
  stage "benchmark: PyTorch hard forward, compiled C, GPU engine if any (bit-exact checked)"
  "${DL[@]}" bench "$RUN/model.pt" --dataset fashion-mnist "${data_args[@]}" \
    --threads "1,$THREADS" --json "$RUN/bench.json" --plot "$RUN/bench.png"
  bench_json=$RUN/bench.json
else
  echo "(difflogic export is not available in this installation: skipping export/verify)"
fi

t_all=$(( $(date +%s) - t0 ))
echo
echo "=== main job done: training ${t_train}s, total ${t_all}s ($(nproc) cores, $THREADS threads)"
python3 - "$RUN/summary.json" "${bench_json:-}" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
if sys.argv[2]:   # this job's benchmark: the best verified run of each target
    for t in json.load(open(sys.argv[2]))["targets"]:
        ok = [r for r in t["rows"] if r["status"] == "ok"]
        if ok:
            r = max(ok, key=lambda r: r["images_per_s"]["median"])
            print(f"{t['target']}: {r['images_per_s']['median']:,.0f} images/s "
                  f"({r['threads'] or '-'} threads, batch {r['batch']:,}, input {r['input']})")
print(f"Fashion-MNIST hard test accuracy: {100 * s['test_hard_acc']:.2f}% "
      f"({s['model']}, {s['gates']:,} gates, best step {s['best_step']}/{s['total_steps']})")
PY
