#!/usr/bin/env bash
# One-shot GPU check of the CUDA kernels: tests + benchmarks + a CIFAR-10 S training run of the
# CPU recipe (benches/cifar10_cpu.sh) on the GPU.  Run from anywhere on a machine with an NVIDIA
# GPU, PyTorch (CUDA build), CuPy (cupy-cuda12x/13x) and optionally nvcc; no internet needed.
# Uses the source checkout directly (PYTHONPATH), nothing is installed.
#
#   OUT=/tmp/gpu_results bash benches/gpu_run.sh [CIFAR10_DIR]
#
# Env: OUT (results folder: tests.log, bench.log, cuda_bench.json/.md, profile.log +
# gpu_profile_*.json (benches/gpu_profile.py), ncu.log (Nsight Compute on the tree-conv
# kernels of an L step; NCU=0 skips it), train.log + c10s_gpu/), MODELS
# (default cifar10-s,cifar10-m,cifar10-l), REF_MODELS (also timed with the pure-PyTorch
# reference; default cifar10-s,cifar10-m), STEPS (default 20), BUDGET (seconds for the whole
# script, default 3600: every stage runs under `timeout`, and the training run's epochs are
# chosen from the measured S throughput so that it ends inside the budget), EPOCHS (fixes the
# training run's length instead), BATCH_SIZE (training run, default 128).  Without CIFAR10_DIR
# the training run is skipped; a folder that does not hold cifar-10-batches-py yet is waited
# for (up to 3 min), so the data can be unpacked in the background while the tests run.
# Exit status: 0 when tests and benchmarks passed, 1 when any test failed or a benchmark ran
# off the CUDA kernels / was not bit-exact.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-python3}
DATA=${1:-${CIFAR10_DIR:-}}
MODELS=${MODELS:-cifar10-s,cifar10-m,cifar10-l}
REF_MODELS=${REF_MODELS:-cifar10-s,cifar10-m}
STEPS=${STEPS:-20}
BUDGET=${BUDGET:-3600}
BATCH_SIZE=${BATCH_SIZE:-128}
OUT=${OUT:-}
LOGDIR=${OUT:-$(mktemp -d)}
mkdir -p "$LOGDIR"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
left() { echo $(( BUDGET - SECONDS )); }   # seconds of the budget still left
say() { printf '\n==== %s\n' "$*"; }

say "environment"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || true
command -v nvcc >/dev/null && nvcc --version | tail -1 || echo "nvcc: not found (compile-check test will skip)"
$PY - <<'EOF'
import sys, torch
print("python", sys.version.split()[0], "| torch", torch.__version__, "| torch CUDA", torch.version.cuda,
      "| cuda available", torch.cuda.is_available())
if not torch.cuda.is_available():
    sys.exit("no CUDA device visible to PyTorch: this script needs a GPU")
try:
    import cupy
    print("cupy", cupy.__version__)
except Exception as e:
    sys.exit(f"CuPy is not importable ({e}); install cupy-cuda12x or cupy-cuda13x")
import difflogic.kernels.cuda as cu   # raises ImportError with the reason if unusable
print("difflogic.kernels.cuda OK, sources in", cu.source_dir())
EOF

say "compiling kernels (NVRTC, cached by CuPy in ~/.cupy/kernel_cache)"
if timeout $(( $(left) / 4 )) $PY - <<'EOF'
import time, torch, difflogic as dl
t = time.time()
m = dl.get_model("cifar10-s").cuda()
m(torch.rand(2, 3, 32, 32, device="cuda")).sum().backward()
m.eval()(torch.rand(2, 3, 32, 32, device="cuda"))
torch.cuda.synchronize()
print(f"first forward/backward incl. compilation: {time.time() - t:.1f} s")
EOF
then :; else echo "compiling failed or timed out (the tests below say where)"; fi

say "tests (log: $LOGDIR/tests.log; $(left) s of the budget left)"
status=0
PER_TEST=()  # a hung kernel fails its test instead of eating the budget (pytest-timeout)
$PY -c "import pytest_timeout" 2>/dev/null && PER_TEST=(--timeout 120)
DIFFLOGIC_NVCC_FULL=1 timeout $(( $(left) / 3 )) $PY -m pytest -q -rs -p no:cacheprovider "${PER_TEST[@]}" \
  tests/test_cuda.py tests/test_cuda_compile.py \
  "tests/test_train.py::test_train_on_gpu_resumes_and_loads_on_cpu" 2>&1 | tee "$LOGDIR/tests.log" || status=1

say "benchmarks ($(left) s of the budget left)"
timeout $(( $(left) / 3 )) $PY benches/bench_cuda_train.py --models "$MODELS" --ref-models "$REF_MODELS" \
  --steps "$STEPS" --out "$LOGDIR" 2>&1 | tee "$LOGDIR/bench.log" || status=1

say "profile: where a step's time goes ($(left) s of the budget left)"
for spec in cifar10-s:32 cifar10-s:128 cifar10-l:128; do
  timeout 60 $PY benches/gpu_profile.py --model "${spec%%:*}" --batch "${spec##*:}" --out "$LOGDIR" \
    2>&1 | tee -a "$LOGDIR/profile.log" || true
done
if command -v ncu >/dev/null && [ "${NCU:-1}" = 1 ]; then  # the tree-conv kernels vs the limits
  timeout 150 ncu --clock-control none -k regex:tree_conv_pool --launch-skip 8 --launch-count 8 \
    --metrics gpu__time_duration.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed,sm__throughput.avg.pct_of_peak_sustained_elapsed,sm__pipe_fma_cycles_active.avg.pct_of_peak_sustained_active \
    $PY benches/gpu_profile.py --model cifar10-l --batch 128 --ncu 2>&1 | tee "$LOGDIR/ncu.log" | tail -60 || true
fi

if [ -n "$DATA" ]; then
  for _ in $(seq 180); do [ -f "$DATA/cifar-10-batches-py/batches.meta" ] && break; sleep 1; done
  if [ -z "${EPOCHS:-}" ]; then  # fit the run into what is left: 55% of the bench's step rate
    EPOCHS=$($PY - "$LOGDIR/cuda_bench.json" "$(( $(left) - 60 ))" <<'EOF'
import json, sys
r = [t for t in json.load(open(sys.argv[1]))["train"]
     if t["model"] == "cifar10-s" and t["backend"] == "auto" and "images_per_s" in t]
print(max(1, int(0.55 * r[0]["images_per_s"] * int(sys.argv[2]) / 45000)) if r else 0)
EOF
) || EPOCHS=0
  fi
  say "CIFAR-10 S recipe on the GPU: $EPOCHS epochs at batch $BATCH_SIZE ($(left) s of the budget left)"
  if [ "$EPOCHS" -gt 0 ]; then
    DEVICE=cuda EPOCHS=$EPOCHS BATCH_SIZE=$BATCH_SIZE THREADS=4 timeout $(( $(left) - 10 )) \
      bash benches/cifar10_cpu.sh "$DATA" "$LOGDIR/c10s_gpu" 2>&1 | tee "$LOGDIR/train.log" || status=1
  fi
else
  echo "(no CIFAR-10 folder given: skipping the training run)"
fi

say "done (status $status, $SECONDS s); results in $LOGDIR"
exit $status
