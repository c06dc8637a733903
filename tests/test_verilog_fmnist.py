"""A trained Fashion-MNIST conv net on real test images, simulated as RTL.

Trains a tiny conv+pool+dense logic net for a few dozen steps on the real files (plain
PyTorch loop, so this test does not depend on the training pipeline), hardens and optimizes
it, and checks that the Verilog design predicts exactly what PyTorch's hard forward predicts
on real test images, with Icarus Verilog (pipelined) and Verilator (combinational).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from difflogic.backends import verilog as V
from difflogic.compiler.harden import hard_counts, harden
from difflogic.compiler.sim import encode_input, simulate
from difflogic.models import LogicNet
from conftest import need

CONFIG = {"name": "fmnist-verilog-test", "input_shape": [1, 28, 28], "num_classes": 10,
          "init": "gaussian",
          "layers": [{"type": "thresholds", "thresholds": [0.25, 0.5]},
                     {"type": "conv", "out_channels": 8, "kernel_size": 3, "depth": 2,
                      "padding": 1, "or_pool": 2},
                     {"type": "conv", "out_channels": 16, "kernel_size": 3, "depth": 2,
                      "padding": 1, "or_pool": 2, "groups": 2},
                     {"type": "flatten"}, {"type": "dense", "out_features": 500},
                     {"type": "group_sum", "k": 10, "tau": 10.0}]}


@pytest.fixture(scope="module")
def trained():
    data = pytest.importorskip("difflogic.data")
    try:
        x_tr, y_tr = data.load_dataset("fashion-mnist", split="train")
        x_te, y_te = data.load_dataset("fashion-mnist", split="test")
    except FileNotFoundError as e:
        import os
        if os.environ.get("CI"):
            raise
        pytest.skip(f"Fashion-MNIST files not available: {e}")
    torch.manual_seed(0)
    model = LogicNet(CONFIG)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    rng = np.random.default_rng(0)
    model.train()
    for _ in range(40):
        idx = rng.choice(len(x_tr), 128, replace=False)
        xb = torch.from_numpy(x_tr[idx]).float() / 255
        loss = torch.nn.functional.cross_entropy(model(xb), torch.from_numpy(y_tr[idx]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    nl = harden(model)
    try:
        from difflogic.compiler import optimize
        nl = optimize(nl)
    except ImportError:  # optimizer not available: the hardened netlist is valid RTL input too
        pass
    return model, nl, x_te[:200], y_te[:200]


def test_trained_net_matches_pytorch_iverilog(trained, tmp_path):
    need("iverilog", "vvp")
    model, nl, x, y = trained
    bits = encode_input(nl, x)
    ref = hard_counts(model, x)
    np.testing.assert_array_equal(simulate(nl, bits), ref)
    info = V.export(nl, tmp_path / "rtl", pipeline=8, vectors=bits)
    r = V.run_testbench(tmp_path / "rtl", "iverilog")
    assert r.passed, r.output[-2000:]
    assert info["latency"] >= 2
    acc = float((ref.argmax(1) == y).mean())
    assert acc > 0.4, f"a few dozen training steps should beat chance by far, got {acc:.3f}"


def test_trained_net_counts_verilator(trained, tmp_path, monkeypatch):
    need("verilator", "make")
    monkeypatch.setenv("VERILATOR_OPT_FAST", "-O0")  # compile time dominates 100 vectors
    model, nl, x, y = trained
    bits = encode_input(nl, x[:100])
    got = V.BACKEND.run(nl, bits, simulator="verilator", workdir=tmp_path)
    np.testing.assert_array_equal(got, hard_counts(model, x[:100]))
