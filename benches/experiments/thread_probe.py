"""Experiment, not part of the library (benches/RESULTS.md, Fashion-MNIST section, 2026-12-05):
does one training step of a model round the same with 1 and with N threads on this machine?
Runs forward + backward of one fixed random batch at each thread count and prints, for every
layer output, its gradient and every parameter gradient, whether the two runs are equal.

    python benches/experiments/thread_probe.py [MODEL] [N]      (default: fmnist-small 2)

MODEL is what `difflogic train --model` takes: a preset name or a JSON config file.

Training is deterministic for one thread count; where this prints differences, a run with
`--threads 1` and one with `--threads N` part after a few steps (BLAS may pick its kernel by
CPU model and thread count)."""
import sys

import torch

from difflogic.models import LogicNet
from difflogic.training.plan import resolve_model_config


def one_step(name: str, threads: int) -> dict[str, torch.Tensor]:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = LogicNet(resolve_model_config(name))
    x = torch.rand(64, *model.config["input_shape"])
    y = torch.randint(0, model.config["num_classes"], (64,))
    outs, h = [], x
    for m in model:
        h = m(h)
        if h.requires_grad:
            h.retain_grad()
        outs.append(h)
    torch.nn.functional.cross_entropy(h, y).backward()
    res = {f"output {i} ({type(model[i]).__name__})": o.detach().clone()
           for i, o in enumerate(outs)}
    res.update({f"output {i} grad": o.grad for i, o in enumerate(outs) if o.grad is not None})
    res.update({f"param {n} grad": p.grad for n, p in model.named_parameters()})
    return res


if __name__ == "__main__":
    name = sys.argv[1] if len(sys.argv) > 1 else "fmnist-small"
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    a, b = one_step(name, 1), one_step(name, n)
    for k in a:
        same = torch.equal(a[k], b[k])
        print(f"{k:40s} {'equal' if same else 'max diff %.3g' % (a[k] - b[k]).abs().max().item()}")
