"""What machine this is, for benchmark reports: CPU model, SIMD level, usable cores, and whether
the compiled CPU kernels (``difflogic._C``) load.

Speeds measured without the native kernels are ~70x lower (the PyTorch reference runs
instead), and that happens silently when the source checkout, which has no compiled
extension, is imported ahead of the installed package; :func:`native_kernels` says so and
why.  Imports nothing heavy (no torch), so it is cheap to call from anywhere.

``python -m difflogic.platform`` prints :func:`describe` and the native-kernel status, and
exits with status 1 when the kernels are missing.
"""
from __future__ import annotations

import functools
import importlib
import os
import platform as _stdlib_platform
import sys
from pathlib import Path

# (cpuinfo flag, name), best first: x86 "flags", then ARM "Features"
_SIMD_FLAGS = (("avx512f", "AVX-512"), ("avx2", "AVX2"), ("avx", "AVX"), ("sse4_2", "SSE4.2"),
               ("sve", "SVE"), ("asimd", "NEON"))
# SIMD every CPU of an architecture has, when its flags cannot be read
_SIMD_BASELINE = {"x86_64": "SSE2", "amd64": "SSE2", "aarch64": "NEON", "arm64": "NEON"}
_MODEL_KEYS = ("model name", "cpu model", "Model", "Hardware")


def _read_cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:  # not Linux
        return ""


@functools.lru_cache(maxsize=1)
def _cpuinfo() -> dict[str, str]:
    """The fields of /proc/cpuinfo's first processor, plus machine-wide ones (ARM's Hardware)."""
    fields: dict[str, str] = {}
    for line in _read_cpuinfo().splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), value.strip())
    return fields


def cpu_model() -> str:
    """The CPU's marketing name, e.g. "AMD EPYC 9R14 96-Core Processor"."""
    info = _cpuinfo()
    for key in _MODEL_KEYS:
        if info.get(key):
            return info[key]
    return _stdlib_platform.processor() or _stdlib_platform.machine() or "unknown CPU"


def simd() -> str:
    """The widest SIMD instruction set the CPU offers ("AVX-512", "AVX2", "AVX", "SSE4.2",
    "SVE", "NEON"); the architecture's baseline when the flags cannot be read; "" if unknown."""
    flags = set((_cpuinfo().get("flags") or _cpuinfo().get("Features") or "").split())
    for flag, name in _SIMD_FLAGS:
        if flag in flags:
            return name
    return _SIMD_BASELINE.get(_stdlib_platform.machine().lower(), "")


def cpu_count() -> int:
    """The cores this process may run on (its CPU affinity), not all the machine's cores."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # no affinity API (macOS, Windows)
        return os.cpu_count() or 1


def native_kernels() -> tuple[bool, str]:
    """``(ok, reason)``: whether this difflogic's compiled CPU kernels ``difflogic._C`` import,
    with the file they load from, or why not and how to fix it."""
    package = Path(__file__).resolve().parent
    try:
        ext = importlib.import_module(f"{__package__}._C")
    except ImportError as e:
        return False, _missing_reason(package, e)
    return True, f"difflogic._C loaded from {getattr(ext, '__file__', None) or package}"


def _missing_reason(package: Path, error: ImportError) -> str:
    where = f"difflogic at {package} has no compiled kernels ({error})"
    if (package.parent / "pyproject.toml").is_file():
        return (f"{where}: it is a source checkout, imported instead of the installed package; "
                "run `pytest` (not `python -m pytest`) or run from another folder, or build the "
                "kernels in place with `pip install -e .`")
    return f"{where}: reinstall with `pip install .` (needs cmake and a C++ compiler)"


def describe() -> str:
    """One line for a report: "AMD EPYC 9R14 96-Core Processor (AVX-512), 2 cores"."""
    n = cpu_count()
    level = simd()
    return f"{cpu_model()}{f' ({level})' if level else ''}, {n} core{'' if n == 1 else 's'}"


def main() -> int:
    ok, reason = native_kernels()
    print(describe())
    print(f"native kernels: {'yes' if ok else 'MISSING'}: {reason}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
