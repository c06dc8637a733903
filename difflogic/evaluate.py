"""Accuracy of a logic gate network on uint8 images: the hard (discretised) network, which is
what the compiled C and Verilog compute, or the relaxed one the optimizer trains.

Used by the trainer's evaluations and by ``difflogic eval``; it lives outside the trainer so
that evaluating a checkpoint does not import the training loop.
"""
from __future__ import annotations

import numpy as np
import torch

from . import data
from .layers import GateLayer


def accuracy(model: torch.nn.Module, images: np.ndarray, labels: np.ndarray, *, hard: bool,
             batch_size: int = 1000, indices=None) -> float:
    """Share of ``images`` (uint8 ``(N, C, H, W)``, scaled to [0, 1] as the training loader
    does) whose first-maximum class equals ``labels`` (see :func:`count_correct`)."""
    n = len(images) if indices is None else len(indices)
    return count_correct(model, images, labels, hard=hard, batch_size=batch_size,
                         indices=indices) / max(1, n)


@torch.no_grad()
def count_correct(model: torch.nn.Module, images: np.ndarray, labels: np.ndarray, *,
                  hard: bool, batch_size: int = 1000, indices=None) -> int:
    """How many of ``images`` the network classifies as ``labels``.

    ``hard=True`` evaluates in eval mode (argmax gates, integer kernels); ``hard=False`` the
    softmax mixture in train mode, with straight-through and Gumbel noise switched off.  Only
    ``indices`` are evaluated when given.  The model's mode and every layer's switches are
    restored afterwards."""
    was_training = model.training
    model.train(not hard)
    saved = [(m, m.straight_through, m.always_straight_through, m.gumbel)
             for m in model.modules() if isinstance(m, GateLayer)]
    for m, *_ in saved:
        m.straight_through, m.always_straight_through, m.gumbel = False, False, 0.0
    idx = np.arange(len(images)) if indices is None else np.asarray(indices)
    device = next(model.parameters()).device
    correct = 0
    try:
        for i in range(0, len(idx), batch_size):
            sel = idx[i:i + batch_size]
            x = data.to_unit_float(images[sel], device)
            y = torch.from_numpy(labels[sel]).to(device)
            correct += int((model(x).argmax(-1) == y).sum())
    finally:
        model.train(was_training)
        for m, ste, always, noise in saved:
            m.straight_through, m.always_straight_through, m.gumbel = ste, always, noise
    return correct
