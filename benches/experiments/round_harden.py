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

from difflogic import data, gates
from difflogic.layers import GateLayer
from difflogic.evaluate import accuracy
from run_args import load_run

torch.set_num_threads(2)
run = load_run(sys.argv)
model, x, y, val = run.model, run.x, run.y, run.val
xt, yt = data.load_dataset(run.name, run.root, "test")


def report(tag):
    print(f"{tag}: hard val {accuracy(model, x, y, hard=True, indices=val):.4f}  "
          f"hard test {accuracy(model, xt, yt, hard=True):.4f}", flush=True)


report("argmax gates")
tables = torch.tensor(gates.TRUTH_TABLES, dtype=torch.float64)  # (16 gates, 4 input pairs)
place = torch.tensor([8, 4, 2, 1])  # a gate's id is its truth table read as a 4-bit number
for lname, m in model.named_modules():
    if not isinstance(m, GateLayer):
        continue
    w = m.weight.detach()
    expected = torch.softmax(w.double(), -1) @ tables
    ids = ((expected > 0.5).long() * place).sum(-1)
    print(f"layer {lname}: {int((ids != w.argmax(-1)).sum()):,} of {ids.numel():,} gates change")
    # make the rounded gate the argmax: one above the row's maximum
    w.scatter_(-1, ids.unsqueeze(-1), w.max(-1, keepdim=True).values + 1.0)
report("rounded truth tables")
