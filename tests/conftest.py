"""Helpers and fixtures shared by the test modules (no test module imports another).

Fixtures are found by pytest; plain helpers are imported with ``from conftest import ...``
(the tests folder is on ``sys.path`` because tests/run.sh runs pytest from it).
"""
import json
import math
import os
import shutil

import numpy as np
import pytest
import torch

import difflogic as dl
from difflogic.checkpoint import load_checkpoint


# ----------------------------------------------------------------------------- environment
def need(*tools):
    """Skip when a simulator / synthesis tool is missing; under CI=true that is a failure."""
    from difflogic.backends import verilog as V
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        msg = f"{', '.join(missing)} not installed (apt-get install {' '.join(V.APT[t] for t in missing)})"
        if os.environ.get("CI"):
            pytest.fail(f"CI: {msg}")
        pytest.skip(msg)


# ----------------------------------------------------------------------------- training
#: A tiny conv logic net defined here (not a shipped preset): 2 tree-conv blocks with OR
#: pooling and a dense head, ~1 ms per step of 8 images.
TINY = {
    "name": "test-tiny", "input_shape": [1, 28, 28], "num_classes": 10, "init": "residual",
    "layers": [{"type": "thresholds", "thresholds": [0.5]},
               {"type": "conv", "out_channels": 4, "kernel_size": 3, "depth": 2, "padding": 1,
                "channels_per_tree": 1, "or_pool": 2},
               {"type": "conv", "out_channels": 8, "kernel_size": 3, "depth": 2, "padding": 1,
                "channels_per_tree": 2, "or_pool": 2},
               {"type": "flatten"}, {"type": "dense", "out_features": 120},
               {"type": "dense", "out_features": 60}, {"type": "group_sum", "k": 10, "tau": 3.0}],
    "train": {"lr": 0.05, "weight_decay": 0.0, "batch_size": 8},
}



@pytest.fixture
def one_thread():
    """Bit-exactness holds for a fixed thread count; 1 keeps the test cheap on busy machines."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def run_state(run):
    ck = load_checkpoint(run / "last.pt")
    return ck


def run_metrics(run):
    recs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    for r in recs:  # wall-clock fields legitimately differ
        r.pop("elapsed_s"), r.pop("images_per_s")
    return recs



# ----------------------------------------------------------------------------- random networks
def random_config(rng: np.random.Generator) -> dict | None:
    """A random valid config (or None when the drawn shapes do not fit)."""
    C = int(rng.integers(1, 3))
    H, W = int(rng.integers(4, 10)), int(rng.integers(4, 10))
    layers = []
    shape = (C, H, W)
    if rng.random() < 0.8:
        T = int(rng.integers(1, 3))
        layers.append({"type": "thresholds", "num": T})
        shape = (C * T, H, W)
    for _ in range(int(rng.integers(0, 3))):
        if rng.random() < 0.2 and min(shape[1:]) >= 2:
            layers.append({"type": "or_pool", "kernel_size": 2})
            shape = (shape[0], shape[1] // 2, shape[2] // 2)
            continue
        k = int(rng.integers(1, 4))
        stride, pad = int(rng.integers(1, 3)), int(rng.integers(0, 2))
        pool = int(rng.integers(1, 3))
        out = int(rng.integers(2, 7))
        if k * k * min(shape[0], 2) < 2:
            k = 2
        ho = (shape[1] + 2 * pad - k) // stride + 1
        wo = (shape[2] + 2 * pad - k) // stride + 1
        if ho < pool or wo < pool or ho < 1 or wo < 1:
            return None
        layers.append({"type": "conv", "out_channels": out, "kernel_size": k, "depth": int(rng.integers(1, 4)),
                       "stride": stride, "padding": pad, "channels_per_tree": 2, "or_pool": pool})
        shape = (out, ho // pool, wo // pool)
    layers.append({"type": "flatten"})
    F = math.prod(shape)
    n_dense = int(rng.integers(0, 3)) if F >= 2 else 1
    k = int(rng.integers(2, 5))
    if n_dense == 0:
        divs = [d for d in range(1, 6) if F % d == 0]
        k = int(rng.choice(divs))
    for i in range(n_dense):
        width = k * int(rng.integers(2, 12)) if i == n_dense - 1 else int(rng.integers(4, 40))
        layers.append({"type": "dense", "out_features": width})
    layers.append({"type": "group_sum", "k": k, "tau": 1.0})
    if F < 2 and n_dense:
        return None
    return {"name": "random", "input_shape": [C, H, W], "num_classes": k, "init": "gaussian", "layers": layers}


def random_model(seed: int) -> dl.LogicNet:
    """A random net; every third seed (2, 5, 8, ...) with input-wise gate parameters, so the
    hardening of both parametrizations goes through every compiler and back-end test."""
    rng = np.random.default_rng(seed)
    while True:
        cfg = random_config(rng)
        if cfg is None:
            continue
        if seed % 3 == 2:
            cfg["parametrization"] = "input_wise"
        torch.manual_seed(seed)
        try:
            return dl.LogicNet(cfg)
        except ValueError:
            continue


def random_input(model, n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, *model.input_shape, generator=g)
    if not any(isinstance(m, dl.Thresholds) for m in model):
        x = (x > 0.5).float()
    return x


def two_input_gates(model, seed: int):
    """``model`` (eval mode) with every gate a random gate of both its inputs, so that nothing
    hardens to a wire or a constant: the largest netlist its shape can give."""
    from difflogic import gates
    from difflogic.layers import GateLayer
    two = torch.tensor([op for op in range(16) if gates.USES_A[op] and gates.USES_B[op]])
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in model.modules():
            if isinstance(layer, GateLayer):
                ops = two[torch.randint(len(two), layer.weight.shape[:-1], generator=g)]
                layer.weight.zero_().scatter_(-1, ops[..., None], 5.0)
    return model.eval()


# ----------------------------------------------------------------------------- file writing
def disk_full_at(monkeypatch, call: int) -> list:
    """Make the ``call``-th ``os.replace`` fail with ENOSPC (a full disk mid-export); returns
    the destinations replaced so far, in order."""
    real, seen = os.replace, []

    def replace(src, dst):
        seen.append(dst)
        if len(seen) == call:
            raise OSError(28, "No space left on device")
        return real(src, dst)
    monkeypatch.setattr(os, "replace", replace)
    return seen
