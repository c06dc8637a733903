"""Upstream difflogic's own benchmark network through the drop-in ``CompiledLogicNet``, and how
compile time grows to a 5M-gate network.

    python benches/bench_upstream.py                       # both parts
    python benches/bench_upstream.py --part upstream --opt-levels 1,2
    python benches/bench_upstream.py --part big --big 5x1024000

* ``upstream``: the mnist20x20 network of upstream's README (400 inputs, 6 x 8,000 gates,
  GroupSum 10; upstream's Gaussian init, untrained: its argmax gates are uniformly random), used
  exactly as upstream's README says: ``CompiledLogicNet(model, num_bits=64)``,
  ``compile(opt_level=...)`` (cache bypassed: a fresh cache folder), ``forward`` on a bool NumPy
  array of 65,536 samples, one thread; then the same library built with ``-mno-avx512f``
  (AVX2 code).  Upstream measured 71 s to compile at -O1 and 615k
  images/s on a 2-core AVX2 machine (its README / issue figures, see the dated note).
* ``big``: a dense net of LAYERS x WIDTH gates over 95,232 inputs (upstream's CIFAR-10 31
  thresholds), timed stage by stage: build, harden, optimize, C generation, C compiler; then
  checked bit-exact against the IR simulator on 256 samples and timed on 4,096.

Every figure is the median of ``--repeats`` calls (min-max), after one warm-up call, and the
same from the calls' CPU time (robust to other load on a shared machine).
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import tempfile
import time

import numpy as np
import torch

os.environ.setdefault("DIFFLOGIC_CACHE_DIR", tempfile.mkdtemp(prefix="difflogic-bench-cache-"))

import difflogic as dl
from difflogic import platform
from difflogic.backends.c import CompiledNet, build_shared, generate
from difflogic.compiler import hard_counts, harden, optimize, simulate


def rates(call, n: int, repeats: int) -> str:
    """Wall-clock images/s, median (min-max), and from the CPU time of the (one-thread) calls:
    on a shared machine the CPU time leaves out the time other processes held the core."""
    call()
    secs, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        call()
        secs.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    r = sorted(n / s for s in secs)
    return (f"{statistics.median(r):,.0f} images/s ({r[0]:,.0f}-{r[-1]:,.0f}); from CPU time "
            f"{n / statistics.median(cpu):,.0f}")


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (the C compiler)."""
    me, kids = (resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def upstream_net(seed: int = 0) -> torch.nn.Sequential:
    torch.manual_seed(seed)
    layers = [dl.LogicLayer(400 if i == 0 else 8000, 8000, device="cpu") for i in range(6)]
    return torch.nn.Sequential(torch.nn.Flatten(), *layers, dl.GroupSum(k=10, tau=10)).eval()


def part_upstream(opt_levels, repeats: int) -> None:
    model = upstream_net()
    x = np.random.default_rng(0).integers(0, 2, (65536, 400)).astype(bool)
    ref = hard_counts(model, x[:4096].astype(np.uint8))
    for level in opt_levels:
        t0, c0 = time.perf_counter(), cpu_seconds()
        cm = dl.CompiledLogicNet(model, num_bits=64, cpu_compiler="gcc")
        t_net, c_net = time.perf_counter() - t0, cpu_seconds() - c0
        t0, c0 = time.perf_counter(), cpu_seconds()
        cm.compile(opt_level=level)
        t_cc, c_cc = time.perf_counter() - t0, cpu_seconds() - c0
        assert np.array_equal(cm(x[:4096]).numpy(), ref), "compiled counts differ from torch"
        print(f"upstream 6 x 8,000 (400 inputs): -O{level}: netlist {t_net:.2f} s (CPU "
              f"{c_net:.2f} s; {cm.netlist.gate_count():,} gates after optimization), generate "
              f"+ cc {t_cc:.2f} s (CPU {c_cc:.2f} s, this process and the compiler); 1 thread: "
              f"{rates(lambda c=cm: c(x), len(x), repeats)}; bit-exact on 4,096 samples; "
              f"load {os.getloadavg()[0]:.1f}", flush=True)
    # the same library built as AVX2 code (upstream's machine had no AVX-512)
    t0, c0 = time.perf_counter(), cpu_seconds()
    avx2 = CompiledNet(cm.netlist, opt_level=opt_levels[0], cc="gcc", extra_flags=("-mno-avx512f",))
    t_cc, c_cc = time.perf_counter() - t0, cpu_seconds() - c0
    assert np.array_equal(avx2.counts(x[:4096]), ref), "AVX2 build differs from torch"
    print(f"the same, -O{opt_levels[0]} -mno-avx512f (AVX2 code): generate + cc {t_cc:.2f} s "
          f"(CPU {c_cc:.2f} s); 1 thread: {rates(lambda: avx2.counts(x), len(x), repeats)}; "
          f"bit-exact on 4,096 samples; load {os.getloadavg()[0]:.1f}", flush=True)


def part_big(layers: int, width: int, repeats: int, opt_level: int) -> None:
    t = {}
    t0 = time.perf_counter()
    torch.manual_seed(0)
    stack = [dl.LogicLayer(95232 if i == 0 else width, width, device="cpu") for i in range(layers)]
    model = torch.nn.Sequential(*stack, dl.GroupSum(k=10, tau=100)).eval()
    t["build"] = time.perf_counter() - t0
    for name, fn in (("harden", lambda: harden(model)), ("optimize", lambda: optimize(t["net"]))):
        t0 = time.perf_counter()
        t["net"] = fn()
        t[name] = time.perf_counter() - t0
    net = t.pop("net")
    t0 = time.perf_counter()
    src, hdr = generate(net, header_name="dl.h")
    t["generate"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    build_shared(src, hdr, opt_level=opt_level, cc="gcc")   # the compiler CompiledLogicNet uses
    t["cc"] = time.perf_counter() - t0
    print(f"big {layers} x {width:,} = {layers * width:,} gates -> {net.gate_count():,} after "
          f"optimization, {src.count(chr(10)):,} lines of C: "
          + ", ".join(f"{k} {v:.1f} s" for k, v in t.items()), flush=True)
    cm = dl.CompiledLogicNet(net)   # the netlist itself: compile() hits the cache just filled
    cm.compile(opt_level=opt_level)
    x = np.random.default_rng(0).integers(0, 2, (4096, 95232)).astype(bool)
    assert np.array_equal(cm(x[:256]).numpy(), simulate(net, x[:256].astype(np.uint8)))
    print(f"big: bit-exact against the IR simulator on 256 samples; 1 thread: "
          f"{rates(lambda: cm(x), len(x), repeats)}", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--part", choices=("upstream", "big", "all"), default="all")
    p.add_argument("--opt-levels", default="1,2", help="C optimization levels to compile with")
    p.add_argument("--big", default="5x1024000", metavar="LAYERSxWIDTH")
    p.add_argument("--repeats", type=int, default=5)
    a = p.parse_args()
    torch.set_num_threads(1)
    print(f"{platform.describe()}; gcc -march=native; {time.strftime('%Y-%m-%d %H:%M')}; load "
          f"{os.getloadavg()[0]:.1f}", flush=True)
    if a.part in ("upstream", "all"):
        part_upstream([int(v) for v in a.opt_levels.split(",")], a.repeats)
    if a.part in ("big", "all"):
        layers, width = (int(v) for v in a.big.lower().split("x"))
        part_big(layers, width, a.repeats, int(a.opt_levels.split(",")[0]))


if __name__ == "__main__":
    main()
