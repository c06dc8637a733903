"""Benchmark session set-up: the machine in the report header, and no silent slow runs.

A difflogic without its compiled kernels (the source checkout imported ahead of the installed
package, or a failed build) measures the PyTorch fallback, ~70x slower, so the session stops
at once with the reason.  ``DIFFLOGIC_ALLOW_SLOW=1`` measures anyway, and then every result
says so: the benchmark names (table, JSON and the lines the benches print), their
``extra_info``, each test's status word and the closing summary.
"""
from __future__ import annotations

import os

import pytest

from difflogic.platform import describe, native_kernels

ALLOW_SLOW_ENV = "DIFFLOGIC_ALLOW_SLOW"
SLOW_TAG = " [NO NATIVE KERNELS]"

_NATIVE_OK, _NATIVE_WHY = native_kernels()
_ALLOW_SLOW = os.environ.get(ALLOW_SLOW_ENV, "") not in ("", "0")
_SLOW = not _NATIVE_OK and _ALLOW_SLOW


def pytest_configure(config):
    if not _NATIVE_OK and not _ALLOW_SLOW:
        raise pytest.UsageError(f"benches need difflogic's native kernels: {_NATIVE_WHY} "
                                f"(or set {ALLOW_SLOW_ENV}=1 to measure the slow fallback)")


def pytest_report_header(config):
    kernels = _NATIVE_WHY if _NATIVE_OK else f"MISSING ({ALLOW_SLOW_ENV}=1): {_NATIVE_WHY}"
    return [f"machine: {describe()}", f"native kernels: {kernels}"]


def pytest_benchmark_update_machine_info(config, machine_info):
    machine_info["difflogic_platform"] = describe()
    machine_info["difflogic_native_kernels"] = {"ok": _NATIVE_OK, "reason": _NATIVE_WHY}


@pytest.fixture(autouse=True)
def _tag_slow_benchmarks(request):
    """Under DIFFLOGIC_ALLOW_SLOW without native kernels, every benchmark's name carries the
    tag, so each line that names it (table, JSON, the benches' own prints) says so."""
    if _SLOW and "benchmark" in request.fixturenames:
        bench = request.getfixturevalue("benchmark")
        bench.name += SLOW_TAG
        bench.fullname += SLOW_TAG
        bench.extra_info["native_kernels"] = False


def pytest_report_teststatus(report, config):
    if _SLOW and report.when == "call" and report.passed:
        return "passed", ".", f"PASSED{SLOW_TAG}"
    return None


@pytest.hookimpl(trylast=True)  # after pytest-benchmark's table
def pytest_terminal_summary(terminalreporter):
    if _SLOW:
        terminalreporter.write_line(f"every result of this session was measured WITHOUT the "
                                    f"native kernels ({ALLOW_SLOW_ENV}=1): {_NATIVE_WHY}",
                                    red=True)
