"""Compiled-C inference benchmarks (CPU): trained and random networks, every input form, the
machine's widest SIMD and AVX2 only.

    python -m pytest benches/bench_c_inference.py --benchmark-only -s
    DL_FMNIST=RUN/model.pt DL_CIFAR_S=RUN/model.pt DL_CIFAR_DATA=DATA_DIR \
        python -m pytest benches/bench_c_inference.py --benchmark-only -s

Networks: the trained checkpoints named by ``DL_FMNIST`` (the Fashion-MNIST main job) and
``DL_CIFAR_S`` (a trained LogicTreeNet-S), skipped when not given; LogicTreeNet-S with
Gaussian-init gate logits (residual init hardens to pure wires, which would benchmark nothing)
and the dense upstream-style MNIST net (400 inputs, 6 x 8,000 gates), both seed 0.

Bit-exactness of every build and input form against the PyTorch hard forward is checked on
the benchmarked (random) inputs and, for the trained networks, on real test images:
Fashion-MNIST from the default dataset folders, CIFAR-10 from ``DL_CIFAR_DATA``.

Builds: ``native`` (``-march=native``: AVX-512 words where the CPU has it) and ``avx2``
(``-march=native -mno-avx512f``: the code an AVX2-only CPU runs, 256-bit words), each at the
back end's default -O level.  Each figure is the median of ROUNDS calls of N_IMAGES images
(pytest-benchmark's stats; the min is printed too), next to the median by process CPU time
(N x threads / CPU seconds: what the threads reach on cores of their own, the figure to
quote on a shared machine) and the load average.  The timed calls hold an exclusive lock on
``$DL_BENCH_LOCK`` (default /tmp/dl-bench.lock) so that two benchmarks never overlap; the
builds happen before it is taken.  The gate-word limit is the issue's:
threads x clock x 256 bits / gates after the passes (one 256-bit gate-word per cycle per
core), the clock read from /proc/cpuinfo ("cpu MHz").
"""
from __future__ import annotations

import fcntl
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
from difflogic.checkpoint import load_model
from difflogic.compiler import compile, encode_input

N_IMAGES = 65536
ROUNDS = 7
WORD_BITS = 256
BUILDS = {"native": (), "avx2": ("-mno-avx512f",)}
LOCK = os.environ.get("DL_BENCH_LOCK", "/tmp/dl-bench.lock")


def cpu_ghz() -> float:
    try:
        txt = open("/proc/cpuinfo").read()
        return float(re.search(r"cpu MHz\s*:\s*([\d.]+)", txt).group(1)) / 1000
    except (OSError, AttributeError):
        return float("nan")


def _networks():
    for env, name in (("DL_FMNIST", "fmnist-trained"), ("DL_CIFAR_S", "cifar-s-trained")):
        if os.environ.get(env):
            yield name, lambda p=os.environ[env]: load_model(p).eval()

    def random_s():
        torch.manual_seed(0)
        return dl.get_model("cifar10-s", init="gaussian").eval()

    def dense_mnist():
        torch.manual_seed(0)
        layers = [dl.LogicLayer(400 if i == 0 else 8000, 8000, device="cpu") for i in range(6)]
        return torch.nn.Sequential(*layers, dl.GroupSum(10, tau=10)).eval()
    yield "cifar-s-random", random_s
    yield "dense-mnist-random", dense_mnist


NETWORKS = dict(_networks())
_CACHE: dict = {}


def _compiled(name: str, build: str):
    """(model, hardened netlist, optimized netlist, CompiledNet) for a network and build."""
    if name not in _CACHE:
        model = NETWORKS[name]()
        hard = compile(model, optimize=False)
        _CACHE[name] = (model, hard, compile(hard), {})
    model, hard, opt, nets = _CACHE[name]
    if build not in nets:
        nets[build] = cbe.CompiledNet(opt, extra_flags=BUILDS[build])
    return model, hard, opt, nets[build]


def _inputs(net, form: str, n: int) -> tuple[np.ndarray, dict]:
    """Random inputs of a form and the keywords of CompiledNet.counts for it."""
    rng = np.random.default_rng(0)
    if net.encoder is None or form in ("bits", "bool", "packed"):
        if net.encoder is None:
            bits = rng.integers(0, 2, (n, *net.input_shape), dtype=np.uint8)
        else:
            bits = encode_input(net, rng.integers(0, 256, (n, *net.encoder.in_shape), dtype=np.uint8))
        if form == "bool":
            return bits.astype(bool), {}
        if form == "packed":
            return np.packbits(bits.reshape(n, -1), axis=1, bitorder="little"), {"packed": True}
        return bits, {"encoded": True}
    x = rng.integers(0, 256, (n, *net.encoder.in_shape), dtype=np.uint8)
    return (x, {}) if form == "u8" else ((x / np.float32(255)).astype(np.float32), {})


def timed(benchmark, fn, x, kw, threads) -> tuple[list, tuple]:
    """Run ``fn`` ROUNDS times under the bench lock; (CPU seconds per round, load before/after)."""
    cpu = []

    def call():
        c0 = time.process_time()
        fn(x, **kw, threads=threads)
        cpu.append(time.process_time() - c0)
    with open(LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        load = os.getloadavg()[0]
        benchmark.pedantic(call, rounds=ROUNDS, warmup_rounds=1)
        return cpu[1:], (load, os.getloadavg()[0])


def _record(benchmark, name, build, form, threads, gates_opt, gates_hard, cpu, load):
    med, best = benchmark.stats.stats.median, benchmark.stats.stats.min
    ips = N_IMAGES / med
    ips_cpu = N_IMAGES * threads / float(np.median(cpu))
    ghz = cpu_ghz()
    limit = threads * ghz * 1e9 * WORD_BITS / max(gates_opt, 1)
    benchmark.extra_info.update({
        "images_per_s_median": round(ips), "images_per_s_best": round(N_IMAGES / best),
        "images_per_s_cpu_time": round(ips_cpu), "load_before_after": load, "threads": threads,
        "build": build, "form": form, "gates_hardened": gates_hard, "gates_optimized": gates_opt,
        "cpu_ghz": ghz, "limit_images_per_s": round(limit), "fraction_of_limit": ips / limit,
        "fraction_of_limit_cpu_time": ips_cpu / limit})
    print(f"\n{name} [{build}] {form}, {threads} thread(s): {ips:,.0f} images/s median of {ROUNDS} "
          f"(best {N_IMAGES / best:,.0f}; by CPU time {ips_cpu:,.0f}); {gates_opt:,} gates after the passes; "
          f"{ips / limit:.1%} ({ips_cpu / limit:.1%} by CPU time) of {threads} x {ghz:.2f} GHz x {WORD_BITS} "
          f"bits / gates; load {load[0]:.1f} -> {load[1]:.1f}")


def _forms(name):
    return ["bits", "bool", "packed"] if name == "dense-mnist-random" else ["u8", "f32", "bits", "bool", "packed"]


CASES = [(name, build, form, threads) for name in NETWORKS for build in BUILDS for form in _forms(name)
         for threads in (1, 2) if threads == 2 or form == _forms(name)[0]]


@pytest.mark.parametrize("name, build, form, threads", CASES, ids=["-".join(map(str, c)) for c in CASES])
def test_c_images_per_s(benchmark, name, build, form, threads):
    """images/s of one network, build, input form and thread count."""
    model, hard, opt, cn = _compiled(name, build)
    x, kw = _inputs(opt, form, N_IMAGES)
    cpu, load = timed(benchmark, cn.counts, x, kw, threads)
    _record(benchmark, name, build, form, threads, opt.gate_count(), hard.gate_count(), cpu, load)


def _real_images(name: str, n: int = 2000):
    """The first ``n`` test images of a trained network's dataset, or None where not found."""
    from difflogic.data import DatasetError, load_dataset
    where = {"fmnist-trained": ("fashion-mnist", None), "cifar-s-trained": ("cifar10", os.environ.get("DL_CIFAR_DATA"))}
    if name not in where or (where[name][0] == "cifar10" and not where[name][1]):
        return None
    try:
        return load_dataset(*where[name], split="test")[0][:n]
    except DatasetError:
        return None


def _as_form(net, images: np.ndarray, form: str) -> tuple[np.ndarray, dict]:
    """uint8 images in one input form (as _inputs makes them)."""
    if form == "u8":
        return images, {}
    if form == "f32":
        return (images / np.float32(255)).astype(np.float32), {}
    bits = encode_input(net, images)
    if form == "bool":
        return bits.astype(bool), {}
    if form == "packed":
        return np.packbits(bits.reshape(len(bits), -1), axis=1, bitorder="little"), {"packed": True}
    return bits, {"encoded": True}


@pytest.mark.parametrize("name", list(NETWORKS))
def test_c_is_bit_exact_on_the_benchmarked_inputs(name):
    """Every build and input form of the benchmarked library against the PyTorch hard forward
    on the same images (every form is made from one seeded batch), and on real test images."""
    from difflogic.compiler import hard_counts
    real = _real_images(name)
    for build in BUILDS:
        model, hard, opt, cn = _compiled(name, build)
        ref = None
        for form in _forms(name):
            x, kw = _inputs(opt, form, 700)
            if ref is None:   # the first form: uint8 images, or 0/1 bits without an encoder
                ref = hard_counts(model, torch.as_tensor(x if opt.encoder is not None else x.astype(np.float32)))
            assert np.array_equal(cn.counts(x, threads=2, **kw), ref), (name, build, form)
        if real is not None:
            ref = hard_counts(model, torch.as_tensor(real))
            for form in _forms(name):
                x, kw = _as_form(opt, real, form)
                assert np.array_equal(cn.counts(x, threads=2, **kw), ref), (name, build, form, "real")
            print(f"\n{name} [{build}]: bit-exact on {len(real)} real test images, forms {', '.join(_forms(name))}")


@pytest.mark.parametrize("opt_level", [1, 2, 3])
def test_c_compile_time_cifar_s(benchmark, opt_level):
    """Wall time of `cc -O<level>` on the generated random LogicTreeNet-S source (cache bypassed)."""
    _, _, opt, _ = _compiled("cifar-s-random", "native")
    src, hdr = cbe.generate(opt, header_name="dl.h")
    cc = cbe.find_compiler()

    def build():
        with tempfile.TemporaryDirectory() as d:
            open(os.path.join(d, "net.c"), "w").write(src)
            open(os.path.join(d, "dl.h"), "w").write(hdr)
            subprocess.run([cc, f"-O{opt_level}", "-march=native", "-std=gnu99", "-fPIC", "-shared",
                            "-pthread", "-o", os.path.join(d, "net.so"), os.path.join(d, "net.c")], check=True)
    benchmark.pedantic(build, rounds=1, iterations=1)
    benchmark.extra_info.update({"source_lines": src.count("\n"), "gates_optimized": opt.gate_count()})
    print(f"\ncompile -O{opt_level}: {benchmark.stats.stats.min:.1f} s for {src.count(chr(10)):,} lines "
          f"(load {os.getloadavg()[0]:.1f})")


def test_torch_hard_forward_cifar_s(benchmark):
    """PyTorch eval-mode forward (native hard kernels), to compare with the compiled C."""
    model, _, _, _ = _compiled("cifar-s-random", "native")
    n = 2048
    x = torch.rand(n, 3, 32, 32)
    t = time.perf_counter()
    with torch.no_grad():
        benchmark.pedantic(model, args=(x,), rounds=3, warmup_rounds=1)
    ips = n / benchmark.stats.stats.median
    benchmark.extra_info.update({"images_per_s": round(ips), "torch_threads": torch.get_num_threads(),
                                 "seconds": time.perf_counter() - t})
    print(f"\ntorch hard forward: {ips:,.0f} images/s ({torch.get_num_threads()} threads)")
