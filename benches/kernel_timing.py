"""Per-kernel timings of the native CPU kernels at LogicTreeNet-S / CIFAR-10 shapes (batch 128).

    PYTHONPATH=. python benches/kernel_timing.py [--batch 128] [--reps 5] [--dtype float32] [--torch]

Prints, for every conv block (fused tree conv + 2x2 OR pool) and dense layer, forward and
backward wall time (median of --reps), GFLOP/s and the fraction of the machine's fp32 peak.
Flop counts (stated, not measured):
  * conv forward: N*K*Ho*Wo positions (all 4 positions of each pool window) x (L-1) gates x
    4 flops (c0 + c1 a + c2 b + c3 ab counted as 4; the kernel executes 3 FMA = 6 flops);
  * conv backward: N*K*Hq*Wq selected positions x (L-1) gates x 14 flops (4 recompute +
    10 for the two input gradients and the four coefficient-gradient terms);
  * dense: N*out x 4 flops forward, x 14 backward.
Peak: measured with a large float32 matmul (MKL) on the same threads, and the nominal value
cores x 32 flops/cycle (2 x 256-bit FMA) x the nominal clock from /proc/cpuinfo.
--torch also times the PyTorch reference (difflogic.functional) for comparison.
"""
from __future__ import annotations

import argparse
import time

import torch

import difflogic as dl
from difflogic import kernels
from difflogic import functional as F
from difflogic.layers import LogicConv2d, LogicDense


def timeit(fn, reps):
    """Best wall time of ``reps`` runs after a warm-up.  Best, not median: on a shared machine
    the other processes' load only ever adds time, so the minimum is the kernel's own cost."""
    fn()  # warm-up (allocations, page faults, thread pool)
    ts, cs = [], []
    for _ in range(reps):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        ts.append(time.perf_counter() - t0)
        cs.append(time.process_time() - c0)
    CPU_TIMES.append(min(cs))
    return min(ts)


#: process CPU time (best of reps) of every timeit call: with --threads 1 this is the kernel's
#: own time even when other processes share the cores (wall time then includes waiting).
CPU_TIMES: list[float] = []


def measured_peak(dtype):
    n = 2048
    a = torch.randn(n, n, dtype=dtype)
    b = torch.randn(n, n, dtype=dtype)
    t = timeit(lambda: a @ b, 3)
    return 2 * n ** 3 / t / 1e9


def nominal_peak():
    mhz = None
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("bogomips"):
                mhz = float(line.split(":")[1]) / 2  # x86: bogomips = 2 x TSC MHz
                break
    except OSError:
        pass
    return None if mhz is None else torch.get_num_threads() * 32 * mhz / 1e3


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--torch", action="store_true", help="also time the PyTorch reference")
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: keep)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if not kernels.native_available():
        raise SystemExit("difflogic._C is not built")
    dtype = getattr(torch, args.dtype)
    torch.manual_seed(0)
    model = dl.get_model("cifar10-s")
    N = args.batch
    peak_m = measured_peak(dtype)
    peak_n = nominal_peak()
    print(f"threads={torch.get_num_threads()} batch={N} dtype={args.dtype} "
          f"openmp={kernels.native_info()['openmp']} native_arch={kernels.native_info()['native_arch']}")
    print(f"peak: matmul {peak_m:.1f} GFLOP/s measured"
          + (f", nominal {peak_n:.1f} GFLOP/s" if peak_n else ""))
    backends = ["native"] + (["torch"] if args.torch else [])
    x = torch.rand(N, 9, 32, 32, dtype=dtype)
    total = {b: 0.0 for b in backends}
    hdr = (f"{'layer':<34}{'backend':<8}{'fwd ms':>9}{'bwd ms':>9}{'fwd GF/s':>10}{'bwd GF/s':>10}"
           f"{'fwd %pk':>9}{'cpu fwd':>9}{'cpu bwd':>9}")
    print(hdr)
    for m in model:
        if not isinstance(m, (LogicConv2d, LogicDense)):
            if isinstance(m, torch.nn.Flatten):
                x = x.flatten(1)
            continue
        coeffs = F.gate_coefficients(m.weight.detach().to(dtype) + torch.randn_like(m.weight, dtype=dtype))
        coeffs.requires_grad_(True)
        xin = x.detach().requires_grad_(not isinstance(m, LogicConv2d) or m.in_channels != 9)
        for backend in backends:
            if isinstance(m, LogicConv2d):
                def fwd():
                    return kernels.tree_conv_pool(xin, m.leaf_c, m.leaf_dy, m.leaf_dx, coeffs, m.kernel_size,
                                               m.stride, m.padding, m.or_pool, backend=backend)
                y = fwd()
                K, Hq, Wq = y.shape[1:]
                L = m.leaf_c.shape[1]
                fl_f = N * K * Hq * Wq * m.or_pool ** 2 * (L - 1) * 4
                fl_b = N * K * Hq * Wq * (L - 1) * 14
                name = f"conv {m.in_channels}->{m.out_channels} {x.shape[2]}x{x.shape[3]}"
            else:
                def fwd():
                    return kernels.dense(xin, m.wire_a, m.wire_b, coeffs, backend=backend)
                y = fwd()
                fl_f = N * m.out_features * 4
                fl_b = N * m.out_features * 14
                name = f"dense {m.in_features}->{m.out_features}"
            g = torch.randn_like(y)
            tf = timeit(fwd, args.reps)
            cf = CPU_TIMES[-1]
            inputs = (xin, coeffs) if xin.requires_grad else (coeffs,)

            def fb():
                torch.autograd.grad(fwd(), inputs, g)
            tb = max(timeit(fb, args.reps) - tf, 1e-9)
            cb = max(CPU_TIMES[-1] - cf, 0.0)
            total[backend] += tf + tb
            print(f"{name:<34}{backend:<8}{tf * 1e3:9.2f}{tb * 1e3:9.2f}{fl_f / tf / 1e9:10.1f}"
                  f"{fl_b / tb / 1e9:10.1f}{100 * fl_f * 1.5 / tf / 1e9 / peak_m:8.1f}%"
                  f"{cf * 1e3:9.2f}{cb * 1e3:9.2f}")
        x = y.detach()
    for b in backends:
        print(f"sum of layer fwd+bwd ({b}): {total[b] * 1e3:.1f} ms")
    # one full training step of the whole model (AdamW), as the layers run it
    model = dl.get_model("cifar10-s").to(dtype)
    opt = torch.optim.AdamW(model.parameters(), lr=0.02)
    xb = torch.rand(N, 3, 32, 32, dtype=dtype)
    yb = torch.randint(0, 10, (N,))

    def step():
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(xb), yb).backward()
        opt.step()
    t = timeit(step, args.reps)
    print(f"full training step (model(x), CE, backward, AdamW), native: {t * 1e3:.1f} ms wall, "
          f"{CPU_TIMES[-1] * 1e3:.1f} ms process CPU time")
    print("(fwd %pk uses the executed 3 FMA = 6 flops per gate against the measured matmul peak)")


if __name__ == "__main__":
    main()
