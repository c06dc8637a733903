"""Compiled-C inference benchmarks (CPU).

    python -m pytest benches/bench_c_inference.py --benchmark-only -s

* LogicTreeNet-S (CIFAR-10 shapes) with Gaussian-init logits (residual init hardens to pure
  wires, which would benchmark nothing): C compile time at -O2, images/s on 1 and 2 threads
  (uint8 images in, thermometer encoding inside C), and the PyTorch hard forward for the ratio.
* The dense upstream-style MNIST net (400 inputs, 6 x 8,000 gates, GroupSum 10): images/s on
  one thread from pre-encoded bits.
Each result's extra_info holds gates before/after optimization, gate evaluations per second
and the fraction of the machine limit ``cores x clock x 256 bits`` (one 256-bit op per gate
per cycle per core) that was reached.
"""
from __future__ import annotations

import os
import re
import subprocess
import tempfile
import time

import numpy as np
import pytest
import torch

import difflogic as dl
from difflogic.backends import c as cbe
from difflogic.compiler import compile

N_IMAGES = 65536
WORD_BITS = 256   # the limit's word: one 256-bit op per gate per cycle per core (whatever width the code uses)


def cpu_ghz() -> float:
    try:
        txt = open("/proc/cpuinfo").read()
        return float(re.search(r"cpu MHz\s*:\s*([\d.]+)", txt).group(1)) / 1000
    except (OSError, AttributeError):
        return float("nan")


def _cpu_time_per_image(fn, n_images):
    """CPU seconds (all threads) per image of one call: robust to other load on a shared machine."""
    t = time.process_time()
    fn()
    return (time.process_time() - t) / n_images


def _record(benchmark, n_images, gates_opt, gates_hard, threads, cpu_per_image=None):
    sec = benchmark.stats.stats.min
    ips = n_images / sec
    ghz = cpu_ghz()
    limit = threads * ghz * 1e9 * WORD_BITS / max(gates_opt, 1)
    benchmark.extra_info.update({
        "images_per_s": round(ips), "threads": threads, "gates_hardened": gates_hard,
        "gates_optimized": gates_opt, "gate_evals_per_s": ips * gates_opt,
        "limit_images_per_s": round(limit), "fraction_of_limit": ips / limit, "cpu_ghz": ghz,
        "word_bits": WORD_BITS})
    if cpu_per_image:
        benchmark.extra_info["cpu_us_per_image"] = cpu_per_image * 1e6
        benchmark.extra_info["images_per_s_from_cpu_time"] = round(threads / cpu_per_image)
    print(f"\n{benchmark.name}: {ips:,.0f} images/s ({threads} thread(s)); {gates_opt:,} gates after "
          f"optimization ({gates_hard:,} hardened); {ips * gates_opt:.3g} gate-evals/s = "
          f"{ips / limit:.1%} of {threads} x {ghz:.2f} GHz x {WORD_BITS} bits"
          + (f"; CPU time {cpu_per_image * 1e6:.3f} us/image -> {threads / cpu_per_image:,.0f} images/s "
             f"if the {threads} core(s) were not shared" if cpu_per_image else ""))


@pytest.fixture(scope="module")
def cifar_s():
    torch.manual_seed(0)
    model = dl.get_model("cifar10-s", init="gaussian").eval()
    hard = compile(model, optimize=False)
    opt = compile(hard)
    return model, hard, opt


@pytest.fixture(scope="module")
def cifar_s_compiled(cifar_s):
    return cbe.CompiledNet(cifar_s[2], opt_level=2)


def test_c_compile_time_cifar_s(benchmark, cifar_s):
    """Wall time of `cc -O2` on the generated LogicTreeNet-S source (cache bypassed)."""
    src, hdr = cbe.generate(cifar_s[2], header_name="dl.h")
    cc = cbe.find_compiler()

    def build():
        with tempfile.TemporaryDirectory() as d:
            open(os.path.join(d, "net.c"), "w").write(src)
            open(os.path.join(d, "dl.h"), "w").write(hdr)
            subprocess.run([cc, "-O2", "-march=native", "-std=gnu99", "-fPIC", "-shared", "-pthread",
                            "-o", os.path.join(d, "net.so"), os.path.join(d, "net.c")], check=True)
    benchmark.pedantic(build, rounds=1, iterations=1)
    benchmark.extra_info.update({"source_lines": src.count("\n"), "gates_optimized": cifar_s[2].gate_count()})
    print(f"\ncompile -O2: {benchmark.stats.stats.min:.1f} s for {src.count(chr(10)):,} lines")


@pytest.mark.parametrize("threads", [1, 2])
def test_c_images_per_s_cifar_s(benchmark, cifar_s, cifar_s_compiled, threads):
    _, hard, opt = cifar_s
    x = np.random.default_rng(0).integers(0, 256, (N_IMAGES, 3, 32, 32), dtype=np.uint8)
    benchmark.pedantic(cifar_s_compiled.counts, args=(x,), kwargs={"threads": threads}, rounds=5,
                       warmup_rounds=1)
    cpu = _cpu_time_per_image(lambda: cifar_s_compiled.counts(x, threads=threads), N_IMAGES)
    _record(benchmark, N_IMAGES, opt.gate_count(), hard.gate_count(), threads, cpu)


def test_torch_hard_forward_cifar_s(benchmark, cifar_s):
    """PyTorch eval-mode forward (native hard kernels), to compare with the compiled C."""
    model, hard, opt = cifar_s
    n = 2048
    x = torch.rand(n, 3, 32, 32)
    with torch.no_grad():
        benchmark.pedantic(model, args=(x,), rounds=3, warmup_rounds=1)
    ips = n / benchmark.stats.stats.min
    benchmark.extra_info.update({"images_per_s": round(ips), "torch_threads": torch.get_num_threads()})
    print(f"\ntorch hard forward: {ips:,.0f} images/s ({torch.get_num_threads()} threads)")


@pytest.fixture(scope="module")
def dense_mnist():
    torch.manual_seed(0)
    layers = [dl.LogicLayer(400 if i == 0 else 8000, 8000, device="cpu") for i in range(6)]
    model = torch.nn.Sequential(*layers, dl.GroupSum(10, tau=10)).eval()
    hard = compile(model, optimize=False)
    opt = compile(hard)
    return model, hard, opt, cbe.CompiledNet(opt, opt_level=2)


def test_c_images_per_s_dense_mnist(benchmark, dense_mnist):
    model, hard, opt, cn = dense_mnist
    bits = np.random.default_rng(0).integers(0, 2, (N_IMAGES, 400), dtype=np.uint8)
    benchmark.pedantic(cn.counts, args=(bits,), kwargs={"encoded": True, "threads": 1}, rounds=5,
                       warmup_rounds=1)
    cpu = _cpu_time_per_image(lambda: cn.counts(bits, encoded=True, threads=1), N_IMAGES)
    _record(benchmark, N_IMAGES, opt.gate_count(), hard.gate_count(), 1, cpu)
