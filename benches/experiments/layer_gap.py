"""Experiment, not part of the library (benches/RESULTS.md): where does a trained network's
relaxed/hard gap sit?  Hardens one gate layer at a time (the rest relaxed), and everything but
one layer, and prints the accuracy of each mix on the first 2,000 validation images.

    python benches/experiments/layer_gap.py RUN/model.pt [cifar10|fashion-mnist|mnist] [DATA_DIR]

A hard layer in an otherwise relaxed net computes its argmax gates on real-valued inputs (the
float path of eval mode)."""
import sys

import torch

from difflogic.layers import GateLayer
from run_args import load_run

torch.set_num_threads(1)
run = load_run(sys.argv)
model, x, y = run.model, run.x, run.y
val = run.val[:2000]
xv = torch.from_numpy(x[val]).float() / 255
yv = torch.from_numpy(y[val])
layers = [(n, m) for n, m in model.named_modules() if isinstance(m, GateLayer)]


def acc(hard_set):
    model.train()
    for i, (_, m) in enumerate(layers):
        m.train(i not in hard_set)
    with torch.no_grad():
        c = sum(int((model(xv[i:i + 500]).argmax(-1) == yv[i:i + 500]).sum())
                for i in range(0, len(yv), 500))
    return c / len(yv)


everything = set(range(len(layers)))
print(f"all relaxed {acc(set()):.4f}  all hard {acc(everything):.4f}")
for i, (name, m) in enumerate(layers):
    top = torch.softmax(m.weight.detach(), -1).max(-1).values.mean()
    print(f"layer {name:4s} {type(m).__name__:12s} {m.weight.shape[:-1].numel():8,d} gates  "
          f"mean top p {top:.3f}  only this hard {acc({i}):.4f}  "
          f"all hard but this {acc(everything - {i}):.4f}", flush=True)
