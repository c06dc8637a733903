"""Offline compile checks of the CUDA kernels with nvcc and NVRTC (no GPU needed; each skips
when its compiler is missing).

At run time the kernels are built by NVRTC (difflogic/kernels/cuda.py); nvcc compiles the very same
sources here, with the template instantiations the loader can request, for sm_90 (H100) and
sm_80 (A100), as errors-on-warnings builds through ptxas (tree depths 1-3 by default, all of
1-5 with DIFFLOGIC_NVCC_FULL=1).  When CuPy can load libnvrtc, the sources are also compiled
exactly as the loader does (NVRTC, name expressions) -- that needs no GPU either.  Also checks that the sources stay NVRTC-compatible (no host headers).

    DIFFLOGIC_NVCC_FULL=1 DIFFLOGIC_NVCC_REPORT=1 pytest tests/test_cuda_compile.py -s  # + registers/spills
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "csrc" / "cuda"
NVCC = shutil.which("nvcc") or ("/usr/local/cuda/bin/nvcc" if Path("/usr/local/cuda/bin/nvcc").exists() else None)
CU_FILES = sorted(SRC.glob("*.cu"))

pytestmark = [
    pytest.mark.skipif(not SRC.is_dir(), reason="csrc/cuda not present (installed package only)"),
]


def test_sources_are_nvrtc_compatible():
    """NVRTC has no C/C++ standard library: only our own header may be included."""
    assert {p.name for p in CU_FILES} >= {"dense.cu", "tree_conv.cu", "packed.cu"}
    for p in [*CU_FILES, *SRC.glob("*.cuh")]:
        for line in p.read_text().splitlines():
            if line.lstrip().startswith("#include"):
                assert line.strip() == '#include "common.cuh"', f"{p.name}: {line.strip()}"


def _jobs():
    """tree_conv first (the long pole); depths 4-5 only with DIFFLOGIC_NVCC_FULL=1 (slow to
    compile; the emulation build in test_cuda.py instantiates them too)."""
    depth = [] if os.environ.get("DIFFLOGIC_NVCC_FULL") else ["-DDIFFLOGIC_NVCC_MAX_DEPTH=3"]
    files = sorted(CU_FILES, key=lambda f: f.name != "tree_conv.cu")
    return [(f, arch, depth) for f in files for arch in ("sm_90", "sm_80")]


@pytest.mark.skipif(NVCC is None, reason="nvcc not found (CUDA toolkit not installed)")
def test_nvcc_compiles_every_kernel(tmp_path):
    procs = []
    pending = _jobs()
    results = []
    width = max(1, min(len(pending), os.cpu_count() or 1))
    while pending or procs:
        while pending and len(procs) < width:
            f, arch, extra = pending.pop(0)
            cmd = [NVCC, "-std=c++17", f"-arch={arch}", "-c", str(f), f"-I{SRC}",
                   "-DDIFFLOGIC_NVCC_INSTANTIATE", *extra, "--resource-usage", "-Werror",
                   "all-warnings", "-o", str(tmp_path / f"{f.stem}_{arch}.o")]
            procs.append(((f.name, arch, cmd), subprocess.Popen(cmd, stdout=subprocess.PIPE,
                                                               stderr=subprocess.STDOUT, text=True)))
        (job, p) = procs.pop(0)
        out, _ = p.communicate()
        results.append((job, p.returncode, out))
    for (name, arch, cmd), rc, out in results:
        assert rc == 0, f"nvcc failed for {name} ({arch}):\n{' '.join(cmd)}\n{out[-4000:]}"
        kernels = re.findall(r"Compiling entry function '([^']+)'", out)
        assert kernels, f"{name} ({arch}): no kernel was compiled (instantiations missing?)"
    if os.environ.get("DIFFLOGIC_NVCC_REPORT"):
        for (name, arch, _), _, out in results:
            print(f"== {name} {arch}")
            for fn, props, regs in re.findall(r"entry function '([^']+)'.*?\n.*?Function properties for \S+\n"
                                              r"\s+(.*?)\n.*?(Used \d+ registers[^\n]*)", out):
                print(f"  {fn}: {regs}; {props}")


def _nvrtc():
    try:
        from cupy_backends.cuda.libs import nvrtc
        nvrtc.getVersion()
        return nvrtc
    except Exception:  # noqa: BLE001 - CuPy or libnvrtc missing
        return None


@pytest.mark.skipif(_nvrtc() is None, reason="CuPy's NVRTC bindings or libnvrtc not available")
def test_nvrtc_compiles_every_name_expression():
    """The run-time path without a GPU: NVRTC compiles each source with the name expressions
    difflogic/kernels/cuda.py requests (as listed by the emulation harness) to sm_80/sm_90 cubins."""
    import hashlib
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))  # any pytest import mode
    import test_cuda_harness as harness
    nvrtc = _nvrtc()
    full = bool(os.environ.get("DIFFLOGIC_NVCC_FULL"))
    names = [n for n in harness.kernel_names() if full or not re.search(r"[45]>$", n)]
    groups = {"dense.cu": [n for n in names if n.startswith("dense_") and "packed" not in n],
              "tree_conv.cu": [n for n in names if n.startswith("tree_conv_pool_") and "packed" not in n],
              "packed.cu": [n for n in names if "pack" in n or n.startswith(("or_pool", "group_sum"))]}
    assert sum(map(len, groups.values())) == len(names)
    header = (SRC / "common.cuh").read_bytes()
    for arch in ("sm_80", "sm_90"):
        for f, ns in groups.items():
            code = (f"// common.cuh sha256 {hashlib.sha256(header).hexdigest()}\n"
                    + (SRC / f).read_text())
            prog = nvrtc.createProgram(code, f, [], [])
            try:
                for n in ns:
                    nvrtc.addNameExpression(prog, n)
                try:
                    nvrtc.compileProgram(prog, ["-std=c++17", f"-I{SRC}", f"--gpu-architecture={arch}"])
                except Exception as e:  # noqa: BLE001
                    pytest.fail(f"NVRTC failed on {f} ({arch}): {e}\n{nvrtc.getProgramLog(prog)}")
                assert nvrtc.getCUBIN(prog)
                for n in ns:
                    assert nvrtc.getLoweredName(prog, n)
            finally:
                nvrtc.destroyProgram(prog)
