#!/usr/bin/env bash
# One-shot GPU check of the CUDA kernels: tests + benchmarks.  Run from anywhere on a machine
# with an NVIDIA GPU, PyTorch (CUDA build), CuPy (cupy-cuda12x/13x) and optionally nvcc; no
# internet needed.  Uses the source checkout directly (PYTHONPATH), nothing is installed.
#
#   OUT=/tmp/gpu_results bash benches/gpu_run.sh [CIFAR10_DIR]
#
# Env: OUT (results folder: tests.log, cuda_bench.json, cuda_bench.md), MINUTES (accuracy run
# length, default 5), MODELS (default cifar10-s,cifar10-m,cifar10-l), STEPS (default 20).
# Exit status: 0 when tests and benchmarks passed, 1 when any test failed or a benchmark ran
# off the CUDA kernels / was not bit-exact.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-python3}
DATA=${1:-${CIFAR10_DIR:-}}
MINUTES=${MINUTES:-5}
MODELS=${MODELS:-cifar10-s,cifar10-m,cifar10-l}
STEPS=${STEPS:-20}
OUT=${OUT:-}
LOGDIR=${OUT:-$(mktemp -d)}
mkdir -p "$LOGDIR"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"

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
import difflogic._cuda as cu   # raises ImportError with the reason if unusable
print("difflogic._cuda OK, sources in", cu.source_dir())
EOF

say "compiling kernels (NVRTC, cached by CuPy in ~/.cupy/kernel_cache)"
$PY - <<'EOF'
import time, torch, difflogic as dl
t = time.time()
m = dl.get_model("cifar10-s").cuda()
m(torch.rand(2, 3, 32, 32, device="cuda")).sum().backward()
m.eval()(torch.rand(2, 3, 32, 32, device="cuda"))
torch.cuda.synchronize()
print(f"first forward/backward incl. compilation: {time.time() - t:.1f} s")
EOF

say "tests (log: $LOGDIR/tests.log)"
status=0
DIFFLOGIC_NVCC_FULL=1 $PY -m pytest -q -rs -p no:cacheprovider tests/test_cuda.py tests/test_cuda_compile.py \
  "tests/test_train.py::test_train_on_gpu_resumes_bit_exactly_and_loads_on_cpu" 2>&1 | tee "$LOGDIR/tests.log" || status=1

say "benchmarks"
bench_args=(--models "$MODELS" --steps "$STEPS")
[ -n "$OUT" ] && bench_args+=(--out "$OUT")
if [ -n "$DATA" ]; then
  bench_args+=(--data-dir "$DATA" --minutes "$MINUTES")
else
  echo "(no CIFAR-10 folder given: skipping the accuracy run)"
fi
$PY benches/test_cuda_train.py "${bench_args[@]}" 2>&1 | tee "$LOGDIR/bench.log" || status=1

say "done (status $status); results in $LOGDIR"
exit $status
