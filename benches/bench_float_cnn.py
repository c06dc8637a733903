"""What a user would otherwise deploy: a small float CNN in PyTorch (Fashion-MNIST or
CIFAR-10), trained for a few epochs, its test accuracy and its inference images/s on the same
cores as ``difflogic bench``; with ``--bench-json`` the ratio of each logic-gate target to it.

    difflogic bench RUN/model.pt --dataset fashion-mnist --threads 1,2 --json OUT/bench.json
    python benches/bench_float_cnn.py --threads 1,2 --bench-json OUT/bench.json
    python benches/bench_float_cnn.py --dataset cifar10 --data-dir DATA_DIR --width 8 --epochs 1

``--model OUT/cnn.pt`` saves the trained CNN there, or loads it when it exists, so that the
training (minutes) runs apart from the timing (run that one alone on the machine).

The CNN: conv 3x3 (W channels) - ReLU - max pool 2 - conv 3x3 (2W) - ReLU - max pool 2 -
linear 10, float32, Adam (lr 2e-3, batch 128).  Inference in eval mode under
``torch.inference_mode``, two ways: eager PyTorch, and frozen TorchScript
(``torch.jit.optimize_for_inference(torch.jit.trace(model))``: oneDNN convolutions, fused
ReLUs; what a user deploying a CNN on a CPU would reach for); the ratios use the faster.
uint8 images in (the /255 conversion timed, as ``difflogic bench``'s torch row does), batch
4,096 (throughput) and 1 (latency), median of 5 calls (min-max) after one warm-up call.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from difflogic import platform
from difflogic.data import DATASET_INFO, canonical_name, load_dataset
from difflogic.files import atomic_write


def cnn(width: int, shape=(1, 28, 28)) -> nn.Sequential:
    c, h, w = shape
    return nn.Sequential(nn.Conv2d(c, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(2 * width * (h // 4) * (w // 4), 10))


def train(model, x, y, epochs: int, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=g).split(128):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(x[idx].float() / 255), y[idx])
            loss.backward()
            opt.step()


@torch.inference_mode()
def accuracy(model, x, y) -> float:
    model.eval()
    pred = torch.cat([model(b.float() / 255).argmax(1) for b in x.split(2000)])
    return float((pred == y).float().mean())


@torch.inference_mode()
def rate(model, images, threads: int, repeats: int = 5) -> dict:
    torch.set_num_threads(threads)
    model(images.float() / 255)
    secs, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        model(images.float() / 255)
        secs.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    r = [len(images) / s for s in secs]
    return {"median": statistics.median(r), "min": min(r), "max": max(r),
            "latency_s": statistics.median(secs), "cpu": len(images) / statistics.median(cpu)}


def ratios(bench_json: str, cnn_rates: dict) -> list[str]:
    """Each logic-gate target's best verified images/s at a thread count over the CNN's."""
    with open(bench_json) as fh:
        report = json.load(fh)
    lines = []
    for t in report["targets"]:
        for th, cr in cnn_rates.items():
            ok = [r["images_per_s"] for r in t["rows"]
                  if r["status"] == "ok" and r["threads"] in (th, None)]
            if ok:
                best = max(r["median"] for r in ok)
                cpu = max((r["cpu_time"] for r in ok if "cpu_time" in r), default=None)
                by_cpu = (f"; from CPU time {cpu:,.0f} = {cpu / cr['cpu']:,.2f}x"
                          if cpu and th == 1 else "")
                lines.append(f"{t['target']} ({th} threads): {best:,.0f} images/s = "
                             f"{best / cr['median']:,.2f}x the float CNN{by_cpu}")
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="fashion-mnist", help="fashion-mnist or cifar10")
    p.add_argument("--model", help="the trained CNN's state: loaded when the file exists, else "
                   "trained and saved there")
    p.add_argument("--width", type=int, default=16, help="channels of the first conv")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", default="1,2")
    p.add_argument("--train-threads", type=int, default=2)
    p.add_argument("--data-dir")
    p.add_argument("--bench-json", help="a `difflogic bench --json` report to compare with")
    a = p.parse_args()
    ds = canonical_name(a.dataset)
    xte, yte = (torch.from_numpy(np.asarray(v)) for v in load_dataset(ds, a.data_dir, "test"))
    torch.manual_seed(a.seed)
    torch.set_num_threads(a.train_threads)
    model = cnn(a.width, DATASET_INFO[ds].shape)
    t0 = time.perf_counter()
    if a.model and Path(a.model).exists():
        model.load_state_dict(torch.load(a.model, weights_only=True))
        how = f"loaded from {a.model}"
    else:
        xtr, ytr = (torch.from_numpy(np.asarray(v)) for v in load_dataset(ds, a.data_dir, "train"))
        train(model, xtr, ytr.long(), a.epochs, a.seed)
        how = f"{a.epochs} epochs in {time.perf_counter() - t0:.0f} s"
        if a.model:
            atomic_write(a.model, lambda fh: torch.save(model.state_dict(), fh))
    acc = accuracy(model, xte, yte.long())
    params = sum(p.numel() for p in model.parameters())
    print(f"{platform.describe()}; torch {torch.__version__}; {time.strftime('%Y-%m-%d')}; "
          f"load {os.getloadavg()[0]:.1f}")
    print(f"float CNN width {a.width}: {params:,} parameters, {how}, "
          f"{DATASET_INFO[ds].title} test accuracy {100 * acc:.2f}%")
    cnn_rates = {}
    with torch.inference_mode():
        frozen = torch.jit.optimize_for_inference(torch.jit.trace(model.eval(), xte[:8].float() / 255))
    for th in (int(v) for v in a.threads.split(",")):
        for name, m in (("eager", model), ("TorchScript", frozen)):
            r, one = rate(m, xte[:4096], th), rate(m, xte[:1], th)
            if r["median"] > cnn_rates.get(th, {"median": 0})["median"]:
                cnn_rates[th] = r
            print(f"  {name:11s} {th} thread(s): {r['median']:,.0f} images/s ({r['min']:,.0f}-"
                  f"{r['max']:,.0f}) at batch 4,096"
                  f"{'; from CPU time %s' % format(r['cpu'], ',.0f') if th == 1 else ''}; "
                  f"one image {one['latency_s'] * 1e3:.3f} ms")
    if a.bench_json:
        print("\n".join(ratios(a.bench_json, cnn_rates)))


if __name__ == "__main__":
    main()
