"""Where a training step's time goes, layer by layer (benches/RESULTS.md, training-step section).

    PYTHONPATH=. python benches/experiments/step_breakdown.py [MODEL] [--batch 32] [--threads 1] [--thresholds 15]

(``PYTHONPATH=.``: a script's own folder, not the checkout, is on ``sys.path``, so without it
an installed copy of difflogic is what gets timed.)  MODEL is a preset name or a model JSON
(default ``cifar10-s``); ``--thresholds T`` gives the input encoder T uniform thresholds per
channel (the CPU CIFAR-10 recipe uses 15).  Runs the step ``difflogic train`` runs (fused
AdamW, malloc keeping freed blocks) on random inputs and prints the median wall time of each
layer's forward pass, of the whole backward pass and of the optimizer update over 20 steps
after 3 warm-ups.  Wall times of single layers, not a profiler: torch.profiler's per-op
figures on this 2-vCPU VM read several times too high for small ops (e.g. 20 ms for a 0.8 ms
GroupSum on two threads).
"""
import argparse
import json
import statistics
import time

import torch

import difflogic as dl
from difflogic.models import LogicNet
from difflogic.training import keep_freed_memory, make_optimizer

ap = argparse.ArgumentParser()
ap.add_argument("model", nargs="?", default="cifar10-s")
ap.add_argument("--batch", type=int, default=32)
ap.add_argument("--threads", type=int, default=1)
ap.add_argument("--thresholds", type=int, default=0, help="uniform input thresholds per channel")
args = ap.parse_args()
torch.set_num_threads(args.threads)
keep_freed_memory()
config = (json.load(open(args.model)) if args.model.endswith(".json")
          else dl.models.get_model_config(args.model))
if args.thresholds:
    config["layers"][0] = {"type": "thresholds", "num": args.thresholds}
torch.manual_seed(0)
model = LogicNet(config)
opt = make_optimizer(model, 0.02, 0.0)
x0 = torch.rand(args.batch, *model.input_shape)
y0 = torch.randint(0, model.num_classes, (args.batch,))
times: dict[str, list[float]] = {}


def timed(name, fn, record):
    t0 = time.perf_counter()
    out = fn()
    if record:
        times.setdefault(name, []).append(time.perf_counter() - t0)
    return out


def step(record):
    x = x0
    for i, m in enumerate(model):
        x = timed(f"forward {i} {type(m).__name__}", lambda: m(x), record)
    loss = torch.nn.functional.cross_entropy(x, y0)
    opt.zero_grad(set_to_none=True)
    timed("backward (all layers)", loss.backward, record)
    timed("AdamW update", opt.step, record)


for _ in range(3):
    step(False)
wall = []
for _ in range(20):
    t0 = time.perf_counter()
    step(True)
    wall.append(time.perf_counter() - t0)
print(f"{config.get('name')}, batch {args.batch}, {args.threads} thread(s): step median "
      f"{statistics.median(wall) * 1e3:.1f} ms")
for name, ts in times.items():
    print(f"  {name:28s} {statistics.median(ts) * 1e3:8.2f} ms")
