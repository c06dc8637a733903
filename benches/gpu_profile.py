"""Where a GPU training step's time goes (needs CUDA + CuPy; run by benches/gpu_run.sh).

    python benches/gpu_profile.py [--model cifar10-s] [--batch 128] [--steps 10] [--out DIR]

On an H200 (benches/RESULTS.md, CUDA section) LogicTreeNet-S and -M both took ~5.5-7 ms per
batch-128 step and S took 7.4 ms at batch 32, i.e. the step time hardly moves with the work:
the step is bound by kernel launches and Python, not by the GPU.  This prints, from
torch.profiler (CUPTI sees the CuPy-launched kernels too), per step:
  * wall time, GPU kernel time (sum of kernel durations) and the GPU's busy share,
  * the number of kernel launches,
  * the kernels ranked by GPU time,
so the next speed change can be aimed (CUDA graphs / fewer launches when the GPU idles, the
kernels themselves when it is busy) and measured before and after.  With ``--ncu`` it runs
the step once and nothing else, for Nsight Compute to measure the tree-conv kernels against
the memory-bandwidth and FP32 limits (gpu_run.sh does that).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_cuda_train import make_step  # noqa: E402  (the same step the benchmark times)


def profile(name: str, batch: int, steps: int) -> dict:
    _, step = make_step(name, "auto", batch)
    for _ in range(3):  # compile + warm up
        step()
    torch.cuda.synchronize()
    acts = [torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]
    with torch.profiler.profile(activities=acts) as prof:
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        torch.cuda.synchronize()
        wall = (time.perf_counter() - t0) / steps
    kernels = {}
    for e in prof.events():
        if e.device_type == torch.autograd.DeviceType.CUDA:
            k = kernels.setdefault(e.name, [0, 0.0])
            k[0] += 1
            k[1] += e.time_range.elapsed_us()  # a kernel (or copy) on the GPU: its duration
    gpu_us = sum(v[1] for v in kernels.values()) / steps
    launches = sum(v[0] for v in kernels.values()) / steps
    top = sorted(kernels.items(), key=lambda kv: -kv[1][1])[:20]
    return {"model": name, "batch": batch, "steps": steps, "wall_ms_per_step": wall * 1e3,
            "gpu_kernel_ms_per_step": gpu_us / 1e3, "gpu_busy_share": gpu_us / 1e3 / (wall * 1e3),
            "launches_per_step": launches,
            "top_kernels": [{"name": n[:120], "calls_per_step": c / steps, "ms_per_step": us / steps / 1e3}
                            for n, (c, us) in top]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="cifar10-s")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--ncu", action="store_true", help="one warm-up and one measured step, no profiler")
    p.add_argument("--out", default=None, help="folder for gpu_profile_<model>_<batch>.json")
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        print("gpu_profile.py needs a CUDA device", file=sys.stderr)
        return 2
    if args.ncu:
        _, step = make_step(args.model, "auto", args.batch)
        step()
        torch.cuda.synchronize()
        step()
        torch.cuda.synchronize()
        return 0
    r = profile(args.model, args.batch, args.steps)
    print(f"{r['model']} batch {r['batch']}: {r['wall_ms_per_step']:.2f} ms/step wall, "
          f"{r['gpu_kernel_ms_per_step']:.2f} ms of kernels ({100 * r['gpu_busy_share']:.0f}% busy), "
          f"{r['launches_per_step']:.0f} launches/step")
    for k in r["top_kernels"]:
        print(f"  {k['ms_per_step']:8.3f} ms  {k['calls_per_step']:5.1f}x  {k['name']}")
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"gpu_profile_{args.model}_{args.batch}.json").write_text(json.dumps(r, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
