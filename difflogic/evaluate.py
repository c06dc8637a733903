"""Accuracy of a logic gate network on uint8 images: the hard (discretised) network, which is
what the compiled C and Verilog compute, or the relaxed one the optimizer trains.

Used by the trainer's evaluations and by ``difflogic eval``; it lives outside the trainer so
that evaluating a checkpoint does not import the training loop.  The hard network of a CPU
model is evaluated as its netlist by the bit-parallel reference simulator (the golden model
every export is checked against, bit-exact with the PyTorch hard forward and about ten times
faster on the CPU); the relaxed network, and any model on a GPU, by PyTorch.
"""
from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from . import data
from .compiler import compile as compile_netlist, sim
from .layers import GateLayer

#: Simulator memory per worker thread: its chunks of samples are sized to stay within it.
SIM_BUDGET_BYTES = 128 << 20
ENGINES = ("auto", "netlist", "torch")


def accuracy(model: torch.nn.Module, images: np.ndarray, labels: np.ndarray, *, hard: bool,
             batch_size: int = 1000, indices=None) -> float:
    """Share of ``images`` (uint8 ``(N, C, H, W)``, scaled to [0, 1] as the training loader
    does) whose first-maximum class equals ``labels`` (see :func:`count_correct`)."""
    n = len(images) if indices is None else len(indices)
    return count_correct(model, images, labels, hard=hard, batch_size=batch_size,
                         indices=indices) / max(1, n)


@torch.no_grad()
def count_correct(model: torch.nn.Module, images: np.ndarray, labels: np.ndarray, *,
                  hard: bool, batch_size: int = 1000, indices=None, engine: str = "auto") -> int:
    """How many of ``images`` the network classifies as ``labels`` (first maximum).

    ``hard=True`` evaluates the discretised network (argmax gates); ``hard=False`` the
    softmax mixture in train mode, with straight-through and Gumbel noise switched off.  Only
    ``indices`` are evaluated when given.  ``engine`` (hard only): ``"netlist"`` the hardened
    netlist in the simulator, ``"torch"`` the model in eval mode, ``"auto"`` the netlist for a
    CPU model the compiler takes when the simulator is compiled (numba), else torch.  The
    model's mode and every layer's switches are restored afterwards."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    idx = np.arange(len(images)) if indices is None else np.asarray(indices)
    net = _netlist(model, engine) if hard else None
    if net is not None:
        return _count_correct_netlist(net, images, labels, idx)
    return _count_correct_torch(model, images, labels, hard, batch_size, idx)


def hard_engine(model: torch.nn.Module) -> str:
    """What evaluates ``model``'s hard accuracy by default: "netlist" or "torch"."""
    return "torch" if _netlist(model, "auto") is None else "netlist"


def _netlist(model: torch.nn.Module, engine: str):
    """The model's hardened netlist when the hard evaluation should run on it, else None."""
    if engine == "torch":
        return None
    if engine == "auto":
        if not sim.COMPILED or _device(model).type != "cpu":
            return None
        try:
            net = compile_netlist(model, optimize=False)
        except (TypeError, ValueError):   # a model the compiler does not take: PyTorch's turn
            return None
        # without Thresholds the model reads images / 255 as floats, not bits: PyTorch's turn
        return net if net.encoder is not None else None
    return compile_netlist(model, optimize=False)


def _device(model: torch.nn.Module) -> torch.device:
    """Where the model's tensors are (the CPU for a model without any)."""
    t = next(itertools.chain(model.parameters(), model.buffers()), None)
    return torch.device("cpu") if t is None else t.device


def _count_correct_netlist(net, images: np.ndarray, labels: np.ndarray, idx: np.ndarray) -> int:
    """count_correct of a netlist: chunks sized to the simulator budget, one per thread."""
    chunk = max(64, SIM_BUDGET_BYTES // sim.bytes_per_sample(net) // 64 * 64)
    parts = [idx[i:i + chunk] for i in range(0, len(idx), chunk)]

    def correct(sel):
        counts = sim.simulate(net, sim.encode_input(net, images[sel]))
        return int((counts.argmax(1) == labels[sel]).sum())

    workers = min(torch.get_num_threads(), len(parts))
    if workers <= 1:
        return sum(map(correct, parts))
    with ThreadPoolExecutor(workers) as pool:   # the gate loop and numpy release the GIL
        return sum(pool.map(correct, parts))


@torch.no_grad()
def _count_correct_torch(model, images, labels, hard: bool, batch_size: int, idx) -> int:
    was_training = model.training
    model.train(not hard)
    saved = [(m, m.straight_through, m.always_straight_through, m.gumbel)
             for m in model.modules() if isinstance(m, GateLayer)]
    for m, *_ in saved:
        m.straight_through, m.always_straight_through, m.gumbel = False, False, 0.0
    device = _device(model)
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
