"""Both FPGA forms of trained networks: the unrolled network behind AXI4-Stream ports
(``--axis 64 --pipeline 8``) and the streamed form (``--fold``, one pixel per beat): LUT6
mapping estimate (yosys ``abc -lut 6``, ABC's fast script), flip-flops, block RAMs, cycles per
image and latency, and the RTL bit-exact in Verilator against the PyTorch hard forward.

    DIFFLOGIC_FMNIST_RUN=RUN1 DIFFLOGIC_CIFAR_S_RUN=RUN2 \
        python -m pytest benches/bench_fpga_forms.py --benchmark-only -s

RUN1: a Fashion-MNIST main-job run (``fmnist-small``); RUN2: a CIFAR-10 LogicTreeNet-S run
(any length).  Always measured as well: LogicTreeNet-S with every gate a random two-input
gate (untrained; nothing hardens to a wire, the worst case of the streamed form's size).  Each
design prints one line with the figures of benches/RESULTS.md; ``extra_info`` keeps them.
Synthesis of an unrolled network takes minutes (of a large one, tens of minutes).
"""
from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import torch

from difflogic import gates
from difflogic.backends import verilog as V

FORMS = {"unrolled": {"axis": 64, "pipeline": 8}, "streamed": {"fold": "auto"}}
NETS = ("fmnist", "cifar10-s", "cifar10-s-random-gates")
#: (net, form) measured; the random-gate S is not unrolled (over a million gates)
CASES = [(n, f) for n in NETS for f in FORMS if (n, f) != ("cifar10-s-random-gates", "unrolled")]
CHECK_IMAGES = 64


def _random_gate_s():
    import difflogic as dl
    from difflogic.layers import GateLayer
    two = [op for op in range(16) if gates.USES_A[op] and gates.USES_B[op]]
    torch.manual_seed(0)
    model = dl.get_model("cifar10-s")
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for layer in model.modules():
            if isinstance(layer, GateLayer):
                ops = torch.tensor(two)[torch.randint(len(two), layer.weight.shape[:-1],
                                                      generator=g)]
                layer.weight.zero_().scatter_(-1, ops[..., None], 5.0)
    return model.eval()


@pytest.fixture(scope="module")
def nets():
    """name -> (model, optimized netlist) for the nets this machine has."""
    from difflogic.checkpoint import load_model
    from difflogic.compiler import compile
    out = {}
    for name, env in (("fmnist", "DIFFLOGIC_FMNIST_RUN"), ("cifar10-s", "DIFFLOGIC_CIFAR_S_RUN")):
        if os.environ.get(env):
            out[name] = load_model(os.path.join(os.environ[env], "model.pt")).eval()
    out["cifar10-s-random-gates"] = _random_gate_s()
    return {name: (m, compile(m)) for name, m in out.items()}


def _need(*tools):
    for t in tools:
        if shutil.which(t) is None:
            pytest.skip(f"{t} not installed (apt-get install {V.APT[t]})")


@pytest.mark.parametrize("name,form", CASES)
def test_fpga_form_lut6_estimate(benchmark, nets, tmp_path, name, form):
    _need("yosys")
    if name not in nets:
        pytest.skip(f"no {name} run given (see the module docstring)")
    from difflogic.synth import synthesize
    _, nl = nets[name]
    d = tmp_path / "rtl"
    side = V.export(nl, d, **FORMS[form])
    r = benchmark.pedantic(synthesize, args=(d,), kwargs={"fast": True}, rounds=1, iterations=1)
    bram = sum(n for c, n in r["cell_types"].items() if "mem" in c.lower())
    info = {"gates": side["gates"], "lut6": r["luts"], "ffs": r["ffs"], "bram_cells": bram,
            "depth_luts": r["depth_luts"], "cycles_per_image": side["cycles_per_image"],
            "latency_cycles": side["latency_cycles"], "synth_seconds": r["synth_seconds"],
            "axis_width": side["axis_width"], "fold": side.get("fold")}
    benchmark.extra_info.update(info)
    print(f"\n{name} {form}: " + ", ".join(f"{k} {v}" for k, v in info.items()))


@pytest.mark.parametrize("name,form", CASES)
def test_fpga_form_bit_exact_in_verilator(benchmark, nets, tmp_path, name, form):
    _need("verilator", "make")
    if name not in nets:
        pytest.skip(f"no {name} run given (see the module docstring)")
    from difflogic.compiler import encode_input, hard_counts, random_inputs
    model, nl = nets[name]
    x = random_inputs(nl, CHECK_IMAGES, 0)
    bits = encode_input(nl, x)
    got = benchmark.pedantic(V.BACKEND.run, args=(nl, bits),
                             kwargs=dict(simulator="verilator", workdir=tmp_path, **FORMS[form]),
                             rounds=1, iterations=1)
    np.testing.assert_array_equal(got, hard_counts(model, x))
    benchmark.extra_info["images"] = CHECK_IMAGES
    print(f"\n{name} {form}: {CHECK_IMAGES} images bit-exact (Verilator == PyTorch)")
