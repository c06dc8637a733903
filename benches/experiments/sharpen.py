"""Experiment, not part of the library (benches/RESULTS.md, Fashion-MNIST variants; the library
now has `difflogic train --sharpen`, a geometric ramp over the whole run): anneal the
gate softmax's sharpness -- logits scaled by s = 1 -> SMAX over the last FRAC of training,
quadratic ramp -- by monkeypatching the library, then run the `difflogic` CLI.

    SMAX=8 FRAC=0.5 python benches/experiments/sharpen.py train --dataset fashion-mnist \
        --model fmnist-small --threads 1 --out runs/sharpen
"""
import os, sys
from difflogic import functional as F, train as T, layers as L
SMAX = float(os.environ.get("SMAX", "8")); FRAC = float(os.environ.get("FRAC", "0.5"))
state = {"s": 1.0}
orig_lr_at = T.lr_at
def lr_at(step, total, base, schedule):
    u = max(0.0, (step / max(1, total) - (1 - FRAC)) / FRAC)
    state["s"] = 1.0 + (SMAX - 1.0) * u * u
    return orig_lr_at(step, total, base, schedule)
T.lr_at = lr_at
orig = F.gate_coefficients
def gc(logits, hard=False, **kw):
    return orig(logits if hard else logits * state["s"], hard, **kw)
F.gate_coefficients = gc
L.gate_coefficients = gc
from difflogic.cli import main
sys.exit(main(sys.argv[1:]))
