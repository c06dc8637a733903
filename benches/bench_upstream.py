"""Upstream difflogic's own benchmark network through the drop-in ``CompiledLogicNet``, and how
compile time grows to a 5M-gate network.

    python benches/bench_upstream.py                       # both parts
    python benches/bench_upstream.py --part upstream --opt-levels 1,2
    python benches/bench_upstream.py --part big --big 5x1024000
    python benches/bench_upstream.py --part big --big 5x200000 --table-gates never

* ``upstream``: the mnist20x20 network of upstream's README (400 inputs, 6 x 8,000 gates,
  GroupSum 10; upstream's Gaussian init, untrained: its argmax gates are uniformly random), used
  exactly as upstream's README says: ``CompiledLogicNet(model, num_bits=64)``,
  ``compile(opt_level=...)`` (cache bypassed: a fresh cache folder), ``forward`` on a bool NumPy
  array of 65,536 samples, one thread; then the same net in the C back end's table form
  (``table_gates=0``) and the library built with ``-mno-avx512f`` (AVX2 code).  Upstream measured 71 s to compile at -O1 and 615k
  images/s on a 2-core AVX2 machine (its README / issue figures, see the dated note).
* ``big``: a dense net of LAYERS x WIDTH gates over 95,232 inputs (upstream's CIFAR-10 31
  thresholds), timed stage by stage (wall and CPU): build, harden, optimize, C generation, C
  compiler, with ``--table-gates`` (default: the back end's threshold; ``never``: straight-line
  C, minutes of gcc per million gates); then checked bit-exact against the IR simulator on 256
  samples and timed on 4,096 (through ``CompiledLogicNet`` at the default threshold).

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
from difflogic.backends.c import TABLE_GATES, CompiledNet, build_shared, generate
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
    # the table form of every dense block (what nets above TABLE_GATES per block get)
    t0, c0 = time.perf_counter(), cpu_seconds()
    tab = CompiledNet(cm.netlist, opt_level=opt_levels[0], cc="gcc", table_gates=0)
    t_cc, c_cc = time.perf_counter() - t0, cpu_seconds() - c0
    assert np.array_equal(tab.counts(x[:4096]), ref), "table form differs from torch"
    print(f"the same in the table form (table_gates=0), -O{opt_levels[0]}: generate + cc {t_cc:.2f} s "
          f"(CPU {c_cc:.2f} s); 1 thread: {rates(lambda: tab.counts(x), len(x), repeats)}; "
          f"bit-exact on 4,096 samples; load {os.getloadavg()[0]:.1f}", flush=True)
    # the same library built as AVX2 code (upstream's machine had no AVX-512)
    t0, c0 = time.perf_counter(), cpu_seconds()
    avx2 = CompiledNet(cm.netlist, opt_level=opt_levels[0], cc="gcc", extra_flags=("-mno-avx512f",))
    t_cc, c_cc = time.perf_counter() - t0, cpu_seconds() - c0
    assert np.array_equal(avx2.counts(x[:4096]), ref), "AVX2 build differs from torch"
    print(f"the same, -O{opt_levels[0]} -mno-avx512f (AVX2 code): generate + cc {t_cc:.2f} s "
          f"(CPU {c_cc:.2f} s); 1 thread: {rates(lambda: avx2.counts(x), len(x), repeats)}; "
          f"bit-exact on 4,096 samples; load {os.getloadavg()[0]:.1f}", flush=True)


def _staged(t: dict, name: str, fn):
    """Run ``fn``, record its wall and CPU seconds (this process and the compiler) as ``t[name]``."""
    t0, c0 = time.perf_counter(), cpu_seconds()
    out = fn()
    t[name] = (time.perf_counter() - t0, cpu_seconds() - c0)
    return out


def part_big(layers: int, width: int, repeats: int, opt_level: int, table_gates) -> None:
    t = {}
    torch.manual_seed(0)
    model = _staged(t, "build", lambda: torch.nn.Sequential(
        *[dl.LogicLayer(95232 if i == 0 else width, width, device="cpu") for i in range(layers)],
        dl.GroupSum(k=10, tau=100)).eval())
    net = _staged(t, "harden", lambda: harden(model))
    net = _staged(t, "optimize", lambda: optimize(net))
    src, hdr = _staged(t, "generate", lambda: generate(net, header_name="dl.h", table_gates=table_gates))
    _staged(t, "cc", lambda: build_shared(src, hdr, opt_level=opt_level, cc="gcc"))   # as CompiledLogicNet does
    form = "straight-line C" if table_gates is None else f"table form from {table_gates:,} gates per block"
    print(f"big {layers} x {width:,} = {layers * width:,} gates -> {net.gate_count():,} after "
          f"optimization ({form}), {src.count(chr(10)):,} lines / {len(src) / 1e6:.1f} MB of C: "
          + ", ".join(f"{k} {w:.1f} s (CPU {c:.1f} s)" for k, (w, c) in t.items())
          + f"; optimize + generate + cc {sum(t[k][0] for k in ('optimize', 'generate', 'cc')):.1f} s; "
          f"passes {net.meta['optimize']['seconds']}; load {os.getloadavg()[0]:.1f}", flush=True)
    if table_gates == TABLE_GATES:   # the drop-in, on the netlist itself: compile() hits the cache
        run = dl.CompiledLogicNet(net)
        run.compile(opt_level=opt_level)
    else:
        run = CompiledNet(net, opt_level=opt_level, cc="gcc", table_gates=table_gates).counts
    x = np.random.default_rng(0).integers(0, 2, (4096, 95232)).astype(bool)
    assert np.array_equal(np.asarray(run(x[:256])), simulate(net, x[:256].astype(np.uint8)))
    print(f"big: bit-exact against the IR simulator on 256 samples; 1 thread ({form}): "
          f"{rates(lambda: run(x), len(x), repeats)}; load {os.getloadavg()[0]:.1f}", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--part", choices=("upstream", "big", "all"), default="all")
    p.add_argument("--opt-levels", default="1,2", help="C optimization levels to compile with")
    p.add_argument("--big", default="5x1024000", metavar="LAYERSxWIDTH")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--table-gates", default=str(TABLE_GATES), metavar="N|never",
                   help="C back end: dense blocks of at least N gates in the table form")
    a = p.parse_args()
    torch.set_num_threads(1)
    print(f"{platform.describe()}; gcc -march=native; {time.strftime('%Y-%m-%d %H:%M')}; load "
          f"{os.getloadavg()[0]:.1f}", flush=True)
    if a.part in ("upstream", "all"):
        part_upstream([int(v) for v in a.opt_levels.split(",")], a.repeats)
    if a.part in ("big", "all"):
        layers, width = (int(v) for v in a.big.lower().split("x"))
        tg = None if a.table_gates == "never" else int(a.table_gates)
        part_big(layers, width, a.repeats, int(a.opt_levels.split(",")[0]), tg)


if __name__ == "__main__":
    main()
