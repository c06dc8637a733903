"""difflogic.platform: CPU model, SIMD level, usable cores, native-kernel status; and the bench
session that refuses to measure without the native kernels (benches/conftest.py)."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from difflogic import platform as P

X86 = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 9R14 96-Core Processor
flags\t\t: fpu sse2 sse4_1 sse4_2 avx avx2 avx512f avx512bw

processor\t: 1
model name\t: AMD EPYC 9R14 96-Core Processor
"""
ARM = """processor\t: 0
BogoMIPS\t: 243.75
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics
CPU implementer\t: 0x41
"""
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def cpuinfo(monkeypatch):
    """Replaces /proc/cpuinfo and the machine name; returns the setter."""
    def set_(text, machine="x86_64"):
        monkeypatch.setattr(P, "_read_cpuinfo", lambda: text)
        monkeypatch.setattr(P._stdlib_platform, "machine", lambda: machine)
        monkeypatch.setattr(P._stdlib_platform, "processor", lambda: "")
        P._cpuinfo.cache_clear()
    yield set_
    P._cpuinfo.cache_clear()


@pytest.mark.parametrize("flags, level", [("sse2 sse4_2 avx avx2 avx512f", "AVX-512"),
                                          ("sse2 sse4_2 avx avx2", "AVX2"),
                                          ("sse2 sse4_1 sse4_2", "SSE4.2")])
def test_x86_model_and_simd(cpuinfo, flags, level):
    cpuinfo(X86.replace("fpu sse2 sse4_1 sse4_2 avx avx2 avx512f avx512bw", flags))
    assert P.cpu_model() == "AMD EPYC 9R14 96-Core Processor"
    assert P.simd() == level


def test_arm_and_unreadable_cpuinfo_fall_back(cpuinfo):
    cpuinfo(ARM, machine="aarch64")
    assert P.simd() == "NEON" and P.cpu_model() == "aarch64"
    cpuinfo("", machine="x86_64")          # no /proc/cpuinfo: the architecture's baseline
    assert P.simd() == "SSE2" and P.cpu_model() == "x86_64"
    cpuinfo("", machine="riscv64")
    assert P.simd() == ""
    assert P.describe() == f"riscv64, {P.cpu_count()} core{'' if P.cpu_count() == 1 else 's'}"


def test_cpu_count_follows_affinity(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3}, raising=False)
    assert P.cpu_count() == 1
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    assert P.cpu_count() == 6


def test_describe_is_one_line(cpuinfo, monkeypatch):
    cpuinfo(X86)
    monkeypatch.setattr(P, "cpu_count", lambda: 2)
    assert P.describe() == "AMD EPYC 9R14 96-Core Processor (AVX-512), 2 cores"
    monkeypatch.setattr(P, "cpu_count", lambda: 1)
    assert P.describe().endswith("(AVX-512), 1 core")


def test_native_kernels_of_this_install():
    ok, reason = P.native_kernels()
    try:
        import difflogic._C as ext
    except ImportError:
        assert not ok and "difflogic._C" in reason
    else:
        assert ok and reason == f"difflogic._C loaded from {ext.__file__}"


# -------------------------------------------------------------- a checkout without the kernels
def _checkout_without_kernels(root: Path) -> Path:
    """A source-checkout look-alike (pyproject.toml beside difflogic/) holding no _C."""
    pkg = root / "difflogic"
    pkg.mkdir(parents=True)
    for name in ("__init__.py", "platform.py"):
        shutil.copy(Path(P.__file__).with_name(name), pkg / name)
    (root / "pyproject.toml").write_text("")
    return root


# drops scikit-build's editable-install finder, which would map difflogic to the real tree
_NO_EDITABLE = ("import sys; sys.meta_path[:] = [f for f in sys.meta_path "
                "if 'ScikitBuild' not in type(f).__name__]; sys.path.insert(0, '')\n")


def _run(root, code, **env):
    return subprocess.run([sys.executable, "-c", _NO_EDITABLE + code], cwd=root, text=True,
                          capture_output=True, timeout=120, env={**os.environ, **env})


def test_missing_kernels_say_why_and_how(tmp_path):
    root = _checkout_without_kernels(tmp_path)
    out = _run(root, "import difflogic.platform as p; print(p.native_kernels())")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"(False, \"difflogic at {root / 'difflogic'} has no compiled")
    assert "source checkout" in out.stdout and "pip install -e ." in out.stdout
    (root / "pyproject.toml").unlink()                      # an installed copy, not a checkout
    out = _run(root, "import difflogic.platform as p; print(p.native_kernels()[1])")
    assert "reinstall with `pip install .`" in out.stdout
    (root / "difflogic" / "_C.py").write_text("")           # and one whose extension loads
    out = _run(root, "import difflogic.platform as p; print(p.native_kernels())")
    assert out.stdout.startswith("(True, 'difflogic._C loaded from ") and "_C.py" in out.stdout


BENCH = """
def test_speed(benchmark):
    benchmark(sum, range(10))
    print(benchmark.name, "RESULT")
"""


def _bench_session(root, **env):
    (root / "benches").mkdir(exist_ok=True)
    shutil.copy(REPO / "benches" / "conftest.py", root / "benches" / "conftest.py")
    (root / "benches" / "bench_fake.py").write_text(BENCH)
    code = ("import pytest; sys.exit(pytest.main(['-p', 'no:cacheprovider', '-s', '-v', "
            "'-o', 'python_files=bench_*.py', '--benchmark-disable', 'benches']))")
    return _run(root, "import sys\n" + code, **env)


@pytest.mark.skipif(not (REPO / "benches" / "conftest.py").is_file(), reason="no benches/ here")
def test_bench_session_refuses_to_run_without_kernels(tmp_path):
    pytest.importorskip("pytest_benchmark")
    root = _checkout_without_kernels(tmp_path)
    out = _bench_session(root, DIFFLOGIC_ALLOW_SLOW="")
    errors = [line for line in (out.stdout + out.stderr).splitlines() if line.strip()]
    assert out.returncode == pytest.ExitCode.USAGE_ERROR, out.stdout + out.stderr
    assert len(errors) == 1 and errors[0].startswith("ERROR: benches need difflogic's native")
    assert "DIFFLOGIC_ALLOW_SLOW=1" in errors[0] and "RESULT" not in out.stdout
    out = _bench_session(root, DIFFLOGIC_ALLOW_SLOW="1")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "test_speed [NO NATIVE KERNELS] RESULT" in out.stdout
    assert "PASSED [NO NATIVE KERNELS]" in out.stdout
    assert "measured WITHOUT the native kernels" in out.stdout
    assert "native kernels: MISSING" in out.stdout and "machine: " in out.stdout
