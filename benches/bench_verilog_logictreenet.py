"""RTL generation for LogicTreeNet-S (CIFAR-10 shapes, Gaussian-init logits so the gates are
varied; residual init would harden to wires).

    python -m pytest benches/bench_verilog_logictreenet.py --benchmark-only

Measures export time and records gate counts / logic depth / registers per form in
``extra_info``.  Synthesis (yosys, minutes) and the Verilator run of this net are not part of
the suite; see benches/RESULTS.md for the by-hand commands and figures.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from difflogic.backends import verilog as V
from difflogic.models import LogicNet, logic_tree_net_config


@pytest.fixture(scope="module")
def netlist():
    from difflogic.compiler import compile
    torch.manual_seed(0)
    cfg = logic_tree_net_config("cifar10-s")
    cfg["init"] = "gaussian"
    model = LogicNet(cfg).eval()
    hard = compile(model, optimize=False)
    return hard, compile(hard)


@pytest.mark.parametrize("pipeline", [0, 8])
def test_verilog_export_logictreenet_s(benchmark, netlist, tmp_path, pipeline):
    hard, nl = netlist
    bits = np.random.default_rng(0).integers(0, 2, (100, *nl.input_shape), dtype=np.uint8)
    info = benchmark.pedantic(V.export, args=(nl, tmp_path / "rtl"),
                              kwargs={"pipeline": pipeline, "vectors": bits}, rounds=1, iterations=1)
    benchmark.extra_info.update({k: info[k] for k in ("gates", "network_gates", "head_gates", "levels",
                                                      "network_levels", "latency", "registers")})
    benchmark.extra_info["paper_gates"] = hard.gate_count()
    benchmark.extra_info["ir_gates_optimized"] = nl.gate_count()
    assert info["gates"] < nl.gate_count(include_head=True)
