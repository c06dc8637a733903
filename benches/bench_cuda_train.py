"""GPU benchmarks of the CUDA kernels (difflogic.kernels.cuda); skipped without a CUDA device.

Two ways to run:

    python -m pytest benches/bench_cuda_train.py --benchmark-only       # pytest-benchmark, S only
    python benches/bench_cuda_train.py --out DIR                         # full report (gpu_run.sh)

The report measures, at batch 128 with the trainer's fused AdamW (one step = forward +
backward + update):
  * training throughput (images/s, seconds per 45,000-image epoch) and peak GPU memory of
    LogicTreeNet-S/-M/-L on the CUDA kernels,
  * the same step with the pure-PyTorch reference backend (``backend="torch"``) and the ratio,
  * bit-packed inference throughput of S (the cuda-packed back end's PackedNet, 32- and 64-bit words) next to the uint8
    hard path, with a bit-exactness check against ``model.eval()``.
Results go to DIR/cuda_bench.json and DIR/cuda_bench.md.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import pytest
import torch

sys.path.append(str(Path(__file__).resolve().parents[1]))  # source checkout fallback
import difflogic as dl  # noqa: E402
from difflogic.backends.cuda_packed import PackedNet  # noqa: E402
from difflogic.train import make_optimizer  # noqa: E402

EPOCH_IMAGES = 45_000


def _cuda():
    if not torch.cuda.is_available():
        return None
    try:
        import difflogic.kernels.cuda as cu
        return cu
    except ImportError:
        return None


def set_backend(model, backend: str):
    for m in model.modules():
        if hasattr(m, "backend"):
            m.backend = backend


def make_step(name: str, backend: str, batch: int, device="cuda"):
    torch.manual_seed(0)
    model = dl.get_model(name).to(device).train()
    set_backend(model, backend)
    cfg = dl.get_model_config(name)["train"]
    # the optimizer of `difflogic train` (fused AdamW: one kernel for all parameters; the H200
    # figures of 2026-12-04 were taken with the default multi-tensor AdamW, a few more launches)
    opt = make_optimizer(model, cfg["lr"], cfg["weight_decay"])
    shape = model.input_shape
    x = torch.rand(batch, *shape, device=device)
    y = torch.randint(0, model.num_classes, (batch,), device=device)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    return model, step


def time_steps(step, steps: int, warmup: int = 3) -> float:
    """Seconds per step (CUDA events around `steps` steps after `warmup`)."""
    for _ in range(warmup):
        step()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(steps):
        step()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / 1000 / steps


def bench_train(name: str, backend: str, batch: int, steps: int) -> dict:
    cu = _cuda()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    before = dict(cu.calls) if cu else {}
    try:
        model, step = make_step(name, backend, batch)
        sec = time_steps(step, steps)
    except torch.cuda.OutOfMemoryError as e:
        torch.cuda.empty_cache()
        return {"model": name, "backend": backend, "error": f"out of memory: {str(e)[:120]}"}
    used_cuda = bool(cu) and cu.calls["tree_conv_pool"] > before.get("tree_conv_pool", 0)
    res = {"model": name, "backend": backend, "batch": batch, "steps": steps,
           "s_per_step": sec, "images_per_s": batch / sec, "s_per_epoch_45k": EPOCH_IMAGES * sec / batch,
           "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30,
           "cuda_kernels_used": used_cuda, "gates": model.gate_count()}
    del model, step
    torch.cuda.empty_cache()
    return res


def bench_packed(name: str, batch: int, reps: int) -> list[dict]:
    torch.manual_seed(0)
    model = dl.get_model(name, init="gaussian").cuda().eval()  # diverse gates, not all "A"
    x = torch.rand(batch, *model.input_shape, device="cuda")
    out = []
    with torch.no_grad():
        ref = model(x[:512])
        sec = time_steps(lambda: model(x), reps, warmup=2)
        out.append({"model": name, "path": "uint8 hard kernels (model.eval())", "batch": batch,
                    "images_per_s": batch / sec})
        for bits in (32, 64):
            net = PackedNet(model, word_bits=bits)
            exact = bool(torch.equal(net(x[:512]), ref))
            sec = time_steps(lambda: net.counts(x), reps, warmup=2)
            out.append({"model": name, "path": f"bit-packed, {bits}-bit words", "batch": batch,
                        "images_per_s": batch / sec, "bit_exact_vs_eval": exact})
    return out


def markdown(report: dict) -> str:
    lines = [f"# CUDA benchmarks ({report['device']})", "",
             f"torch {report['torch']}, CuPy {report['cupy']}, batch {report['batch']}, AdamW step = "
             "forward + backward + update; epoch = 45,000 images.", "",
             "| model | backend | images/s | s/epoch | peak GPU mem (GiB) | speed-up vs torch |",
             "|---|---|---:|---:|---:|---:|"]
    by = {(r["model"], r["backend"]): r for r in report["train"]}
    for r in report["train"]:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['backend']} | {r['error']} | | | |")
            continue
        ref = by.get((r["model"], "torch"))
        ratio = (f"{ref['s_per_step'] / r['s_per_step']:.1f}x"
                 if r["backend"] != "torch" and ref and "s_per_step" in ref else "")
        lines.append(f"| {r['model']} | {r['backend']}{'' if r['cuda_kernels_used'] or r['backend'] == 'torch' else ' (NOT on CUDA kernels!)'} "
                     f"| {r['images_per_s']:.0f} | {r['s_per_epoch_45k']:.1f} | {r['peak_mem_gib']:.2f} | {ratio} |")
    if report.get("packed"):
        lines += ["", "| inference (hard) | batch | images/s | bit-exact vs eval |", "|---|---:|---:|---|"]
        for r in report["packed"]:
            lines.append(f"| {r['model']}: {r['path']} | {r['batch']} | {r['images_per_s']:.0f} | "
                         f"{r.get('bit_exact_vs_eval', '')} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="cifar10-s,cifar10-m,cifar10-l")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=20, help="timed steps per CUDA-kernel run")
    p.add_argument("--ref-steps", type=int, default=5, help="timed steps per torch-reference run")
    p.add_argument("--skip-reference", action="store_true")
    p.add_argument("--ref-models", default=None,
                   help="models to time with the torch reference too (default: all of --models)")
    p.add_argument("--packed-batch", type=int, default=16384)
    p.add_argument("--out", default=None, help="folder for cuda_bench.json / cuda_bench.md")
    args = p.parse_args(argv)
    cu = _cuda()
    if cu is None:
        print("no CUDA device or difflogic.kernels.cuda unavailable (CuPy missing?)", file=sys.stderr)
        return 2
    import cupy
    report = {"device": torch.cuda.get_device_name(), "torch": torch.__version__,
              "cupy": cupy.__version__, "python": platform.python_version(), "batch": args.batch,
              "train": [], "packed": []}
    models = [m for m in args.models.split(",") if m]
    ref_models = models if args.ref_models is None else [m for m in args.ref_models.split(",") if m]

    def save():  # after every figure: a run cut short by a time limit still leaves its results
        if args.out:
            out = Path(args.out)
            out.mkdir(parents=True, exist_ok=True)
            (out / "cuda_bench.json").write_text(json.dumps(report, indent=2))
            (out / "cuda_bench.md").write_text(markdown(report))

    for name in models:
        for backend in ("auto",) + (("torch",) if name in ref_models and not args.skip_reference else ()):
            r = bench_train(name, backend, args.batch, args.steps if backend == "auto" else args.ref_steps)
            print(json.dumps(r), flush=True)
            report["train"].append(r)
            save()
    report["packed"] = bench_packed("cifar10-s", args.packed_batch, 10)
    for r in report["packed"]:
        print(json.dumps(r), flush=True)
    save()
    print(markdown(report))
    bad = [r for r in report["train"] if r.get("backend") == "auto" and not r.get("cuda_kernels_used")]
    bad += [r for r in report["packed"] if r.get("bit_exact_vs_eval") is False]
    return 1 if bad else 0


# ----------------------------------------------------------------------------- pytest-benchmark
needs_gpu = pytest.mark.skipif(_cuda() is None, reason="needs a CUDA device and CuPy (difflogic.kernels.cuda)")


@needs_gpu
@pytest.mark.parametrize("backend", ["auto", "torch"])
def test_cuda_train_step_s(benchmark, backend):
    _, step = make_step("cifar10-s", backend, 128)
    for _ in range(3):
        step()
    torch.cuda.synchronize()

    def run():
        step()
        torch.cuda.synchronize()

    benchmark.pedantic(run, rounds=10 if backend == "auto" else 3, iterations=1)
    benchmark.extra_info["images_per_s"] = round(128 / benchmark.stats.stats.median)


@needs_gpu
def test_cuda_packed_inference_s(benchmark):
    torch.manual_seed(0)
    model = dl.get_model("cifar10-s", init="gaussian").cuda().eval()
    x = torch.rand(8192, 3, 32, 32, device="cuda")
    net = PackedNet(model)
    with torch.no_grad():
        assert torch.equal(net(x[:256]), model(x[:256]))

    def run():
        net.counts(x)
        torch.cuda.synchronize()

    run()
    benchmark.pedantic(run, rounds=10, iterations=1)
    benchmark.extra_info["images_per_s"] = round(8192 / benchmark.stats.stats.median)


if __name__ == "__main__":
    sys.exit(main())
