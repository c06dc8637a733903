"""Verilog back end on a small Fashion-MNIST conv net (trained briefly on the real files).

    python -m pytest benches/bench_verilog_fmnist.py --benchmark-only

Measures: RTL generation time, Verilator and Icarus simulation time for 1,000 real test
images (self-checking bench, bit-exact against the reference simulator), and yosys LUT6
synthesis with ABC's fast script (LUTs, flip-flops, depth, time) of the combinational and a
pipelined form.  The
gate/LUT figures are stored in each benchmark's ``extra_info``.
LogicTreeNet-S (CIFAR-10 shapes) is in benches/bench_verilog_logictreenet.py.
"""
from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import torch

from difflogic.backends import verilog as V
from difflogic.models import LogicNet

CONFIG = {"name": "fmnist-small-conv", "input_shape": [1, 28, 28], "num_classes": 10,
          "init": "gaussian",
          "layers": [{"type": "thresholds", "thresholds": [0.25, 0.5]},
                     {"type": "conv", "out_channels": 16, "kernel_size": 3, "depth": 3,
                      "padding": 1, "or_pool": 2},
                     {"type": "conv", "out_channels": 32, "kernel_size": 3, "depth": 3,
                      "padding": 1, "or_pool": 2, "groups": 2},
                     {"type": "flatten"}, {"type": "dense", "out_features": 2000},
                     {"type": "group_sum", "k": 10, "tau": 10.0}]}
N_VECTORS = 1000


def _need(tool):
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} not installed (apt-get install {V.APT[tool]})")


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    from difflogic import data
    from difflogic.compiler import compile, encode_input, hard_counts
    try:
        x_tr, y_tr = data.load_dataset("fashion-mnist", split="train")
        x_te, y_te = data.load_dataset("fashion-mnist", split="test")
    except FileNotFoundError as e:
        pytest.skip(f"Fashion-MNIST not available: {e}")
    torch.manual_seed(0)
    model = LogicNet(CONFIG)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    rng = np.random.default_rng(0)
    for _ in range(100):
        idx = rng.choice(len(x_tr), 128, replace=False)
        loss = torch.nn.functional.cross_entropy(model(torch.from_numpy(x_tr[idx]).float() / 255),
                                                 torch.from_numpy(y_tr[idx]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    nl = compile(model)
    x = x_te[:N_VECTORS]
    counts = hard_counts(model, x)
    root = tmp_path_factory.mktemp("verilog_fmnist")
    return {"nl": nl, "bits": encode_input(nl, x), "counts": counts, "root": root,
            "accuracy": float((counts.argmax(1) == y_te[:N_VECTORS]).mean())}


def test_verilog_export_fmnist(benchmark, net):
    d = net["root"] / "comb"
    info = benchmark.pedantic(V.export, args=(net["nl"], d), kwargs={"vectors": net["bits"],
                              "expected": net["counts"]}, rounds=3, iterations=1)
    benchmark.extra_info.update({k: info[k] for k in ("gates", "network_gates", "head_gates",
                                                      "levels", "network_levels")})
    benchmark.extra_info["ir_gates_optimized"] = net["nl"].gate_count()
    benchmark.extra_info["accuracy_1000"] = net["accuracy"]


@pytest.mark.parametrize("simulator", ["verilator", "iverilog"])
def test_verilog_sim_1000_vectors(benchmark, net, simulator):
    _need(simulator)
    d = net["root"] / "comb"
    if not (d / "tb.v").exists():
        V.export(net["nl"], d, vectors=net["bits"], expected=net["counts"])
    first = V.run_testbench(d, simulator)  # builds (Verilator) outside the timing
    assert first.passed, first.output[-2000:]
    res = benchmark.pedantic(V.run_testbench, args=(d, simulator), rounds=3, iterations=1)
    assert res.passed and f"PASS: {N_VECTORS} vectors" in res.output
    benchmark.extra_info["vectors"] = N_VECTORS


@pytest.mark.parametrize("pipeline", [0, 8])
def test_verilog_yosys_lut6(benchmark, net, pipeline):
    _need("yosys")
    from difflogic.synth import synthesize
    d = net["root"] / f"synth{pipeline}"
    info = V.export(net["nl"], d, pipeline=pipeline)
    r = benchmark.pedantic(synthesize, args=(d,), kwargs={"fast": True}, rounds=1, iterations=1)
    benchmark.extra_info.update({
        "gates": info["gates"], "network_gates": info["network_gates"], "luts": r["luts"],
        "ffs": r["ffs"], "depth_luts": r["depth_luts"], "latency_cycles": r["latency_cycles"],
        "luts_per_gate": r["luts"] / info["gates"], "synth_seconds": r["synth_seconds"],
        "est_latency_ns": r["timing_estimate"]["latency_ns"]})
    assert r["luts"] <= 0.6 * info["gates"], "LUT6 target: <= 0.6 x optimized 2-input gates"
    if os.environ.get("DIFFLOGIC_BENCH_PRINT"):
        print(r)
