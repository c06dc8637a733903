"""The AXI4-Stream exports under cocotb + cocotbext-axi, on Icarus Verilog and on Verilator.

A small RGB conv net whose every gate is a random two-input gate (so that no layer hardens to
wires) is exported in both AXI4-Stream forms, unrolled (``--axis 16``) and streamed
(``--fold``, also 16-bit beats: 2 pixel values per beat, 3 per pixel, so the gearbox and the
per-lane encoder channels are exercised), with ``--scores``.  The cocotb bench
(tests/cocotb/axis_stream_bench.py) streams the images back to back with random stalls on
both sides, resets in the middle of a frame with a result in flight, and sends wrong-length
frames; every result is checked against the PyTorch hard forward.  A bench given one wrong
expected result must fail.  Simulators missing: skipped, or failed under CI=true.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from difflogic.backends import verilog as V
from difflogic.backends import verilog_axis as A
from difflogic.compiler import compile, encode_input, hard_counts, random_inputs
from difflogic.models import LogicNet
from conftest import need, two_input_gates

BENCH_DIR = Path(__file__).resolve().parent / "cocotb"
CONFIG = {"name": "cocotb-rgb", "input_shape": [3, 6, 6], "num_classes": 4, "init": "gaussian",
          "layers": [{"type": "thresholds", "num": 3},
                     {"type": "conv", "out_channels": 8, "kernel_size": 3, "depth": 2,
                      "padding": 1, "or_pool": 2},
                     {"type": "conv", "out_channels": 8, "kernel_size": 2, "depth": 2,
                      "padding": 1, "or_pool": 3},
                     {"type": "flatten"}, {"type": "dense", "out_features": 40},
                     {"type": "group_sum", "k": 4, "tau": 1.0}]}
WIDTH = 16
IMAGES = 8
try:
    from cocotb_tools import runner as cocotb_runner
except ImportError:   # a failure under CI=true (the collection error), else a skip
    if os.environ.get("CI"):
        raise
    pytest.skip("cocotb is not installed (pip install '.[test]')", allow_module_level=True)


def two_input_gate_model(config: dict, seed: int) -> LogicNet:
    """The model of ``config`` with every gate a random gate of both inputs."""
    torch.manual_seed(seed)
    return two_input_gates(LogicNet(config), seed)


def result_value(counts, cw: int, sw: int) -> int:
    value = int(np.argmax(counts))
    for j, c in enumerate(counts):
        value |= int(c) << (cw + j * sw)
    return value


def frame_hex(fmt: A.StreamFormat, values: np.ndarray) -> str:
    """The bytes of one frame (whole beats) of stream values."""
    bits = sum(int(v) << (i * fmt.elem_bits) for i, v in enumerate(values.tolist()))
    return bits.to_bytes(fmt.beats * fmt.width // 8, "little").hex()


def image_of(fmt: A.StreamFormat, values: np.ndarray) -> np.ndarray:
    """Stream values (pixel-major) -> the (C, H, W) uint8 image."""
    return values.reshape(fmt.height, fmt.cols, fmt.channels).transpose(2, 0, 1).astype(np.uint8)


@pytest.fixture(scope="module")
def designs(tmp_path_factory):
    """Both AXI4-Stream forms of one net, and the bench's spec of each."""
    root = tmp_path_factory.mktemp("cocotb_axis")
    model = two_input_gate_model(CONFIG, 11)
    nl = compile(model)
    x = random_inputs(nl, IMAGES, 5)
    counts = hard_counts(model, x)
    out = {}
    for form, opts in (("unrolled", {"axis": WIDTH, "pipeline": 3}),
                       ("folded", {"axis": WIDTH, "fold": "auto"})):
        d = root / form
        side = V.export(nl, d, scores=True, **opts)
        fmt = A.stream_format(nl, WIDTH)
        vals = A.stream_values(fmt, nl.n_inputs, encode_input(nl, x))
        cw, sw = side["class_width"], side["score_width"]
        cut = max(1, fmt.beats // 2) * fmt.lanes    # the short frame's values
        short = vals[0].copy()
        short[cut:] = 0
        short_counts = hard_counts(model, image_of(fmt, short)[None])[0]
        spec = {"width": WIDTH, "out_width": side["out_width"], "class_bits": cw,
                "result_bits": A.result_width(cw, nl.num_classes, sw, True),
                "cycles_per_image": side["cycles_per_image"],
                "latency_cycles": side["latency_cycles"],
                "frames": [frame_hex(fmt, v) for v in vals],
                "expected": [result_value(c, cw, sw) for c in counts],
                "short_frame": {"bytes": frame_hex(fmt, short)[:cut * fmt.elem_bits // 4],
                                "expected": result_value(short_counts, cw, sw)},
                "long_frame": {"bytes": frame_hex(fmt, vals[1]) + "ab" * (2 * WIDTH // 8),
                               "expected": result_value(counts[1], cw, sw)}}
        (d / "spec.json").write_text(json.dumps(spec))
        harness(d, WIDTH, side["out_width"])
        out[form] = d
    return out


def harness(design: Path, width: int, out_width: int) -> Path:
    """``cocotb_top``: the design's ports as variables of a port-less top module.  cocotb
    drives them; Verilator 5.006 would otherwise give VPI a copy of each top-level input,
    which the model overwrites from the real input at every evaluation."""
    text = "\n".join([
        "`timescale 1ns/1ps", "module cocotb_top;",
        "  reg aclk = 1'b0, aresetn = 1'b0, s_axis_tvalid = 1'b0, s_axis_tlast = 1'b0, "
        "m_axis_tready = 1'b0;",
        f"  reg [{width - 1}:0] s_axis_tdata = {width}'d0;",
        "  wire s_axis_tready, m_axis_tvalid, m_axis_tlast;",
        f"  wire [{out_width - 1}:0] m_axis_tdata;", "  wire [0:0] m_axis_tuser;",
        "  difflogic_net dut (.aclk(aclk), .aresetn(aresetn), .s_axis_tdata(s_axis_tdata),",
        "    .s_axis_tvalid(s_axis_tvalid), .s_axis_tready(s_axis_tready),",
        "    .s_axis_tlast(s_axis_tlast), .m_axis_tdata(m_axis_tdata),",
        "    .m_axis_tvalid(m_axis_tvalid), .m_axis_tready(m_axis_tready),",
        "    .m_axis_tlast(m_axis_tlast), .m_axis_tuser(m_axis_tuser));", "endmodule", ""])
    path = design / "cocotb_top.v"
    path.write_text(text)
    return path


def vpi_has_inertial_puts() -> bool:
    """Whether this Verilator's VPI has what cocotb's own simulation loop needs."""
    root = subprocess.run(["verilator", "--getenv", "VERILATOR_ROOT"], capture_output=True,
                          text=True).stdout.strip()
    header = Path(root) / "include" / "verilated_vpi.h"
    return header.is_file() and "doInertialPuts" in header.read_text()


class OlderVerilator(cocotb_runner.Verilator):
    """cocotb's Verilator runner with tests/cocotb/verilator_main.cpp as the main loop."""

    def _build_command(self):
        cmds = super()._build_command()
        main = str(BENCH_DIR / "verilator_main.cpp")
        cmds[0] = [main if str(c).endswith("verilator.cpp") else c for c in cmds[0]]
        return cmds


def run_bench(design: Path, simulator: str, build: Path, spec: Path | None = None,
              testcase: str | None = None) -> tuple:
    """Build and run the cocotb bench (all its tests, or ``testcase``); returns (tests,
    failures, the simulation log)."""
    env = {"DIFFLOGIC_AXIS_SPEC": str(spec or design / "spec.json")}
    args = []
    if simulator == "verilator":
        args = ["-Wno-fatal", "-Wno-lint", "-Wno-style", "-fno-dfg"]
        if vpi_has_inertial_puts():
            runner = cocotb_runner.get_runner("verilator")
        else:
            runner = OlderVerilator()
            env["COCOTB_TRUST_INERTIAL_WRITES"] = "0"
    else:
        runner = cocotb_runner.get_runner("icarus")
    build.mkdir(parents=True, exist_ok=True)
    runner.build(sources=[design / "difflogic_net.v", design / "cocotb_top.v"],
                 hdl_toplevel="cocotb_top", build_dir=build, build_args=args,
                 timescale=("1ns", "1ps"), log_file=build / "build.log")
    xml = build / "results.xml"
    try:   # under pytest the runner exits when a cocotb test fails: read the results anyway
        runner.test(hdl_toplevel="cocotb_top", test_module="axis_stream_bench",
                    test_dir=BENCH_DIR, build_dir=build, extra_env=env, results_xml=str(xml),
                    testcase=testcase, log_file=build / "sim.log")
    except SystemExit:
        if not xml.is_file():
            raise
    from cocotb_tools.check_results import get_results
    tests, failed = get_results(xml)
    return tests, failed, (build / "sim.log").read_text()


@pytest.mark.parametrize("form", ["unrolled", "folded"])
def test_axis_cocotb_icarus(designs, tmp_path, form):
    need("iverilog", "vvp")
    tests, failed, log = run_bench(designs[form], "icarus", tmp_path / "build")
    assert (tests, failed) == (3, 0), log[-4000:]


def test_axis_cocotb_verilator_streamed_form(designs, tmp_path):
    need("verilator", "make")
    tests, failed, log = run_bench(designs["folded"], "verilator", tmp_path / "build")
    assert (tests, failed) == (3, 0), log[-4000:]


def test_cocotb_bench_fails_on_one_wrong_result(designs, tmp_path):
    """The bench checks values: one expected class changed -> the stall test fails."""
    need("iverilog", "vvp")
    spec = json.loads((designs["folded"] / "spec.json").read_text())
    spec["expected"][IMAGES // 2] ^= 1
    bad = tmp_path / "bad_spec.json"
    bad.write_text(json.dumps(spec))
    tests, failed, log = run_bench(designs["folded"], "icarus", tmp_path / "build", bad,
                                   testcase="back_to_back_with_random_stalls")
    assert (tests, failed) == (1, 1), log[-2000:]
    assert re.search(rf"image {IMAGES // 2}: class \d+", log), log[-2000:]
