"""A Fashion-MNIST logic gate network sized for an iCE40 HX8K, placed, routed and timed.

    python -m pytest benches/bench_fpga_ice40.py --benchmark-only -s
    DIFFLOGIC_ICE40_RUN=RUN python -m pytest benches/bench_fpga_ice40.py --benchmark-only -s

Without ``DIFFLOGIC_ICE40_RUN`` it first trains :data:`CONFIG` (a recipe: model + training
settings; about 5 minutes on one core) into a temporary run; with it, it uses ``RUN/model.pt``.
Then: the hard test accuracy on the 10,000 Fashion-MNIST test images, the streamed form
(``--fold``, 8-bit beats, one pixel per beat) bit-exact against the PyTorch hard forward on
real test images in Verilator, its LUT6 mapping estimate, and ``difflogic synth --pnr ice40
--device hx8k``: LUT4s, flip-flops, block RAMs, logic cells, the router's Fmax and images/s at
that clock.  One printed line per step; ``extra_info`` keeps the figures.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from difflogic.backends import verilog as V

#: The HX8K network: three tree-conv blocks with OR pooling over 3 thermometer bits per pixel,
#: one dense layer, 200 outputs per class (benches/notes/2026-12-07-fpga.md: how it was sized).
CONFIG = {
    "description": "A Fashion-MNIST logic gate network whose streamed form fits an iCE40 HX8K.",
    "dataset": "fashion-mnist",
    "model": {
        "name": "fmnist-ice40", "input_shape": [1, 28, 28], "num_classes": 10,
        "init": "residual", "parametrization": "input_wise",
        "layers": [
            {"type": "thresholds", "thresholds": [0.25, 0.5, 0.75]},
            {"type": "conv", "out_channels": 16, "kernel_size": 5, "depth": 3, "padding": 0,
             "channels_per_tree": 1, "or_pool": 2, "residual_logit": 2.5},
            {"type": "conv", "out_channels": 32, "kernel_size": 3, "depth": 3, "padding": 1,
             "channels_per_tree": 2, "groups": 2, "or_pool": 2, "residual_logit": 2.5},
            {"type": "conv", "out_channels": 64, "kernel_size": 3, "depth": 3, "padding": 1,
             "channels_per_tree": 2, "groups": 4, "or_pool": 2, "residual_logit": 2.5},
            {"type": "flatten"},
            {"type": "dense", "out_features": 2000, "residual_logit": 2.5},
            {"type": "group_sum", "k": 10, "tau": 4}]},
    "train": {"lr": 0.05, "weight_decay": 0.0, "batch_size": 64, "epochs": 14,
              "schedule": "cosine", "eval_every": 2000, "ste_from": 0.8},
}
CHECK_IMAGES = 500


def _need(*tools):
    for t in tools:
        if shutil.which(t) is None:
            pytest.skip(f"{t} not installed (apt-get install {V.APT[t]})")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The run folder: DIFFLOGIC_ICE40_RUN, or CONFIG trained here."""
    if os.environ.get("DIFFLOGIC_ICE40_RUN"):
        return os.environ["DIFFLOGIC_ICE40_RUN"]
    root = tmp_path_factory.mktemp("ice40_run")
    (root / "recipe.json").write_text(json.dumps(CONFIG))
    out = root / "run"
    subprocess.run([sys.executable, "-m", "difflogic", "train", "--config",
                    str(root / "recipe.json"), "--threads", "1", "--progress", "none",
                    "--out", str(out)], check=True)
    return str(out)


@pytest.fixture(scope="module")
def design(run, tmp_path_factory):
    from difflogic.checkpoint import load_model
    from difflogic.compiler import compile, hard_counts
    from difflogic.data import load_dataset
    model = load_model(os.path.join(run, "model.pt")).eval()
    x, y = load_dataset("fashion-mnist", split="test")
    counts = hard_counts(model, x)
    nl = compile(model)
    d = tmp_path_factory.mktemp("ice40") / "rtl"
    side = V.export(nl, d, fold="auto", axis=8)
    return {"model": model, "nl": nl, "dir": d, "side": side, "x": x, "counts": counts,
            "accuracy": float((counts.argmax(1) == y).mean())}


def test_ice40_net_accuracy_and_size(benchmark, design):
    side = design["side"]
    info = {"test_hard_acc": design["accuracy"], "gates_paper": design["nl"].gate_count(),
            "gates_streamed": side["gates"], "cycles_per_image": side["cycles_per_image"],
            "latency_cycles": side["latency_cycles"], "fold": side["fold"]}
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    benchmark.extra_info.update(info)
    print("\nice40 net: " + ", ".join(f"{k} {v}" for k, v in info.items()))


def test_ice40_net_bit_exact_on_test_images_in_verilator(benchmark, design, tmp_path):
    _need("verilator", "make")
    from difflogic.compiler import encode_input
    x = design["x"][:CHECK_IMAGES]
    got = benchmark.pedantic(V.BACKEND.run, args=(design["nl"], encode_input(design["nl"], x)),
                             kwargs=dict(simulator="verilator", fold="auto", axis=8,
                                         workdir=tmp_path), rounds=1, iterations=1)
    np.testing.assert_array_equal(got, design["counts"][:CHECK_IMAGES])
    print(f"\nice40 net: {CHECK_IMAGES} test images bit-exact (Verilator == PyTorch)")


def test_ice40_net_lut6_estimate(benchmark, design):
    _need("yosys")
    from difflogic.synth import synthesize
    r = benchmark.pedantic(synthesize, args=(design["dir"],), kwargs={"fast": True}, rounds=1,
                           iterations=1)
    benchmark.extra_info.update(lut6=r["luts"], ffs=r["ffs"])
    print(f"\nice40 net: LUT6 estimate {r['luts']}, flip-flops {r['ffs']}")


def test_ice40_net_place_and_route_hx8k(benchmark, design):
    _need("yosys", "nextpnr-ice40", "icepack", "icetime")
    from difflogic.synth import place_and_route
    r = benchmark.pedantic(place_and_route, args=(design["dir"], "hx8k"), rounds=1, iterations=1)
    keys = ("lut4", "ffs", "carry", "bram", "logic_cells", "fmax_mhz", "icetime_mhz",
            "images_per_s", "cycles_per_image", "seconds")
    benchmark.extra_info.update({k: r[k] for k in keys})
    print("\nice40 net on hx8k: " + ", ".join(f"{k} {r[k]}" for k in keys))
