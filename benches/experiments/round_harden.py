"""Experiment, not part of the library (benches/RESULTS.md, CIFAR-10 section): harden every
neuron to the *rounded expected truth table* of its gate mixture instead of its argmax gate,
and compare the two hard networks on the validation split and the test set.

    PYTHONPATH=. python benches/experiments/round_harden.py RUN/model.pt [cifar10|fashion-mnist|mnist] [DATA_DIR]

Why it could help: a relaxed neuron fed {0, 1} inputs outputs, for each of the 4 input pairs,
the mixture's expected truth-table entry (softmax of the logits times difflogic.gates'
TRUTH_TABLES).  Rounding each entry to 0/1 is the hard gate closest to what the relaxed
network computes on hard inputs; the argmax gate need not be (0.4 AND + 0.3 A + 0.3 OR rounds
to A, whose argmax is AND).  Prints how many gates per layer the rounding changes.
"""
import sys

import torch

from difflogic import checkpoint, data, gates
from difflogic.layers import _GateLayer
from difflogic.train import accuracy

torch.set_num_threads(2)
path = sys.argv[1]
name = data.canonical_name(sys.argv[2] if len(sys.argv) > 2 else "cifar10")
root = sys.argv[3] if len(sys.argv) > 3 else None
model = checkpoint.model_from_checkpoint(checkpoint.load_checkpoint(path), path)
x, y = data.load_dataset(name, root, "train")
_, val = data.train_val_split(len(y), data.DATASET_INFO[name].val_size, seed=0)
xt, yt = data.load_dataset(name, root, "test")


def report(tag):
    print(f"{tag}: hard val {accuracy(model, x, y, hard=True, indices=val):.4f}  "
          f"hard test {accuracy(model, xt, yt, hard=True):.4f}", flush=True)


report("argmax gates")
tables = torch.tensor(gates.TRUTH_TABLES, dtype=torch.float64)  # (16 gates, 4 input pairs)
place = torch.tensor([8, 4, 2, 1])  # a gate's id is its truth table read as a 4-bit number
for lname, m in model.named_modules():
    if not isinstance(m, _GateLayer):
        continue
    w = m.weight.detach()
    expected = torch.softmax(w.double(), -1) @ tables
    ids = ((expected > 0.5).long() * place).sum(-1)
    print(f"layer {lname}: {int((ids != w.argmax(-1)).sum()):,} of {ids.numel():,} gates change")
    # make the rounded gate the argmax: one above the row's maximum
    w.scatter_(-1, ids.unsqueeze(-1), w.max(-1, keepdim=True).values + 1.0)
report("rounded truth tables")
