"""Experiment, not part of the library (benches/RESULTS.md, CIFAR-10 section): where does the
relaxed/hard gap of a trained network come from?  Per gate layer, the share of neurons whose
top gate probability is <= 0.3 (near-uniform: 1/16 = 0.0625 is uniform) or <= 0.5; then the
relaxed accuracy on the validation split with only some neurons hardened (their logits replaced
by a one-hot of the argmax gate, the rest left as mixtures), and with every logit scaled by a
factor (a sharper softmax; the argmax, i.e. the hard network, does not change).

    PYTHONPATH=. python benches/experiments/gate_confidence.py RUN/model.pt [cifar10|fashion-mnist|mnist] [DATA_DIR]
"""
import sys

import torch

from difflogic.layers import GateLayer
from difflogic.evaluate import accuracy
from run_args import load_run

torch.set_num_threads(1)
run = load_run(sys.argv)
model, x, y, val = run.model, run.x, run.y, run.val
layers = [(n, m) for n, m in model.named_modules() if isinstance(m, GateLayer)]
logits = [m.weight.detach().clone() for _, m in layers]
top = [torch.softmax(w, -1).max(-1).values for w in logits]
for (n, m), p in zip(layers, top):
    print(f"layer {n} {type(m).__name__} {tuple(p.shape)}: top probability <= 0.3: "
          f"{float((p <= 0.3).float().mean()):.3f}, <= 0.5: {float((p <= 0.5).float().mean()):.3f}")


def relaxed(tag, pick=None, scale=1.0):
    """Relaxed val accuracy with the neurons where pick(top) holds hardened, logits x scale."""
    with torch.no_grad():
        for (_, m), w, p in zip(layers, logits, top):
            onehot = torch.nn.functional.one_hot(w.argmax(-1), w.shape[-1]).to(w.dtype) * 100
            m.weight.copy_(torch.where(pick(p)[..., None], onehot, w * scale) if pick else w * scale)
    print(f"{tag}: relaxed val {accuracy(model, x, y, hard=False, indices=val):.4f}", flush=True)


print(f"hard network: val {accuracy(model, x, y, hard=True, indices=val):.4f}")
relaxed("relaxed network")
for t in (0.3, 0.5, 0.9):
    relaxed(f"neurons with top probability > {t} hardened", lambda p, t=t: p > t)
    relaxed(f"neurons with top probability <= {t} hardened", lambda p, t=t: p <= t)
for s in (2.0, 4.0, 8.0):
    relaxed(f"every logit x{s:g}", scale=s)
