"""The AXI4-Stream forms of the Verilog back end (``--axis W``) and the streamed form
(``--fold``), simulated with their own self-checking bench (tb.v of the export).

Golden values are the PyTorch hard forward of models whose every gate is a random gate of both
inputs (so that no layer hardens to wires).  The bench streams the images with random stalls on
both sides; with ``+nostall`` it measures the latency and the cycles per image, which must be
what the RTL header and the sidecar state.  Bad options are one-line errors before anything is
written.  The cocotb benches (reset mid-frame, wrong-length frames, Verilator) are in
test_cocotb_axis.py.
"""
from __future__ import annotations

import json
import re
import subprocess

import numpy as np
import pytest
import torch

from difflogic.backends import verilog as V
from difflogic.backends import verilog_axis as A
from difflogic.compiler import compile, encode_input, hard_counts, random_inputs
from difflogic.models import LogicNet
from conftest import need, two_input_gates

ARCHS = {
    "gray": ([1, 9, 7], [{"type": "thresholds", "num": 2},
                         {"type": "conv", "out_channels": 4, "kernel_size": 3, "depth": 2,
                          "padding": 1, "or_pool": 2},
                         {"type": "conv", "out_channels": 6, "kernel_size": 2, "depth": 1,
                          "stride": 2, "groups": 2, "channels_per_tree": 2},
                         {"type": "flatten"}, {"type": "dense", "out_features": 36},
                         {"type": "group_sum", "k": 3, "tau": 1.0}]),
    "rgb": ([3, 6, 6], [{"type": "thresholds", "num": 3},
                        {"type": "conv", "out_channels": 8, "kernel_size": 3, "depth": 3,
                         "padding": 1, "or_pool": 2},
                        {"type": "conv", "out_channels": 8, "kernel_size": [3, 2], "depth": 2,
                         "padding": 2, "or_pool": 3},
                        {"type": "flatten"}, {"type": "dense", "out_features": 40},
                        {"type": "group_sum", "k": 4, "tau": 1.0}]),
    "binary": ([2, 8, 8], [{"type": "conv", "out_channels": 4, "kernel_size": 3, "depth": 2},
                           {"type": "or_pool", "kernel_size": 2}, {"type": "flatten"},
                           {"type": "dense", "out_features": 30},
                           {"type": "dense", "out_features": 20},
                           {"type": "group_sum", "k": 5, "tau": 1.0}]),
    "dense": ([1, 4, 4], [{"type": "thresholds", "num": 2}, {"type": "flatten"},
                          {"type": "dense", "out_features": 24},
                          {"type": "group_sum", "k": 3, "tau": 1.0}]),
}


def two_input_gate_model(arch: str, seed: int = 3) -> LogicNet:
    """The model of ``ARCHS[arch]`` with every gate a random gate of both inputs."""
    shape, layers = ARCHS[arch]
    torch.manual_seed(seed)
    return two_input_gates(LogicNet({"name": arch, "input_shape": shape, "init": "gaussian",
                                     "num_classes": layers[-1]["k"], "layers": layers}), seed)


def run_sim(d, *args):
    return subprocess.run(["bash", str(d / "run_sim.sh"), "iverilog", *args], capture_output=True,
                          text=True, timeout=300)


# stream width / fold / pipeline: unrolled and streamed forms, beats of one pixel value or
# several, pixels of one value or three (the gearbox), with and without an input encoder
CASES = [("gray", {"fold": "auto"}), ("gray", {"fold": 1, "axis": 16, "pipeline": 1}),
         ("gray", {"axis": 8}), ("rgb", {"fold": 2, "axis": 8}),
         ("rgb", {"fold": "auto", "axis": 32, "pipeline": 2}), ("rgb", {"axis": 32, "pipeline": 2}),
         ("binary", {"fold": "auto", "axis": 16}), ("binary", {"axis": 24}),
         ("dense", {"fold": "auto"})]


@pytest.mark.parametrize("arch,opts", CASES, ids=[f"{a}-{'-'.join(f'{k}{v}' for k, v in o.items())}"
                                                  for a, o in CASES])
def test_stream_form_matches_pytorch_and_its_stated_timing(tmp_path, arch, opts):
    need("iverilog", "vvp")
    model = two_input_gate_model(arch)
    nl = compile(model)
    x = random_inputs(nl, 12, 1)
    d = tmp_path / "rtl"
    side = V.export(nl, d, vectors=encode_input(nl, x), expected=hard_counts(model, x),
                    scores=True, **opts)
    assert side["interface"] == "axi4-stream" and side["vectors"] == 12
    assert side["form"] == ("streamed" if "fold" in opts else "unrolled")
    r = run_sim(d)
    assert r.returncode == 0 and "PASS: 12 vectors" in r.stdout, r.stdout[-3000:] + r.stderr[-2000:]
    r = run_sim(d, "+nostall")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    stated = (f"TIMING: latency {side['latency_cycles']} cycles, {side['cycles_per_image']} "
              "cycles per image")
    assert stated in r.stdout, r.stdout[-1000:]
    head = (d / "difflogic_net.v").read_text().split("`timescale")[0]
    assert f"one image every {side['cycles_per_image']} cycles" in head
    assert f"latency: the result beat moves {side['latency_cycles']} clock edges" in head
    assert f"// model: {arch};" in head   # the netlist's model name


def test_streamed_form_keeps_one_cell_per_conv_layer(tmp_path):
    """The streamed form's gates are the conv cells (not times the positions), the dense
    layers and the popcount: far fewer than the unrolled form's."""
    nl = compile(two_input_gate_model("gray"))
    unrolled = V.export(nl, tmp_path / "u", axis=8)
    folded = V.export(nl, tmp_path / "f", fold="auto")
    cells = [op.n_gates for op in nl.ops if getattr(op, "kind", "") == "conv"]
    assert len(folded["cell_gates"]) == len(cells)
    assert all(0 < g <= c for g, c in zip(folded["cell_gates"], cells))
    assert folded["gates"] < unrolled["gates"] / 2
    assert folded["cycles_per_image"] == (9 + 2) * (7 + 2)   # the first conv layer's padded scan
    group = nl.head.in_features // nl.head.k
    assert group % folded["fold"] == 0


def test_bench_catches_a_wrong_golden_result(tmp_path):
    need("iverilog", "vvp")
    model = two_input_gate_model("rgb")
    nl = compile(model)
    x = random_inputs(nl, 6, 2)
    exp = hard_counts(model, x)
    exp[3] = exp[3][::-1].copy()   # another class order: another {scores, class}
    assert not np.array_equal(exp[3], hard_counts(model, x)[3])
    d = tmp_path / "rtl"
    V.export(nl, d, vectors=encode_input(nl, x), expected=exp, scores=True, fold="auto")
    r = run_sim(d)
    assert r.returncode != 0 and "FAIL: vector 3" in r.stdout + r.stderr, r.stdout[-2000:]


def test_cli_export_and_verify_stream_forms(tmp_path, capsys):
    """export --axis / --fold write a bench that passes; verify simulates both forms and they
    equal torch == ir == ir-optimized."""
    need("iverilog", "vvp")
    from difflogic import cli
    from difflogic.checkpoint import save_checkpoint
    ckpt = tmp_path / "model.pt"
    save_checkpoint(ckpt, two_input_gate_model("gray"))
    d = tmp_path / "rtl"
    assert cli.main(["export", str(ckpt), "--target", "verilog", "--fold", "--axis", "16",
                     "--vectors", "20", "--out", str(d)]) == 0
    out = capsys.readouterr().out
    assert "AXI4-Stream, streamed" in out and "one image every" in out
    assert "PASS: 20 vectors" in run_sim(d).stdout
    for opts in (["--axis", "8", "--pipeline", "2"], ["--fold", "3"]):
        assert cli.main(["verify", str(ckpt), "--target", "verilog", "--simulator", "iverilog",
                         "--samples", "30", *opts]) == 0, opts
        out = capsys.readouterr().out
        assert "torch == ir == ir-optimized == verilog  (bit-identical" in out, out
        assert ("streamed fold=3" if "--fold" in opts else "axis=8") in out


@pytest.mark.parametrize("argv,message", [
    (["--axis", "0"], "--axis must be a positive multiple of 8"),
    (["--axis", "12"], "--axis must be a positive multiple of 8 (AXI4-Stream tdata is whole "
                       "bytes, each beat whole 8-bit pixel values), got 12"),
    (["--axis", "512"], "--axis 512 is wider than the image (63 pixel values x 8 bits = 504 "
                        "bits); use a multiple of 8 up to 504"),
    (["--fold", "5"], "--fold 5: the fold factor must divide the 12 outputs per class "
                      "(GroupSum k=3); use one of 1, 2, 3, 4, 6, 12"),
    (["--fold", "0"], "--fold 0: the fold factor must divide"),
    (["--fold", "--axis", "-8"], "--axis must be a positive multiple of 8"),
])
def test_cli_bad_stream_options_are_one_line_errors_before_writing(tmp_path, capsys, argv,
                                                                      message):
    from difflogic import cli
    from difflogic.checkpoint import save_checkpoint
    ckpt = tmp_path / "model.pt"
    save_checkpoint(ckpt, two_input_gate_model("gray"))
    for cmd in (["export", str(ckpt), "--out", str(tmp_path / "out")], ["verify", str(ckpt)]):
        assert cli.main([*cmd, "--target", "verilog", *argv]) == 2, (cmd, argv)
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "out").exists()


def test_stream_values_invert_the_encoder_and_refuse_other_bits():
    nl = compile(two_input_gate_model("rgb"))
    fmt = A.stream_format(nl, 8)
    x = random_inputs(nl, 5, 0)
    vals = A.stream_values(fmt, nl.n_inputs, encode_input(nl, x))
    again = np.stack([v.reshape(6, 6, 3).transpose(2, 0, 1) for v in vals]).astype(np.uint8)
    np.testing.assert_array_equal(encode_input(nl, again), encode_input(nl, x))
    bits = encode_input(nl, x)
    bits[0, 1] = 1 - bits[0, 1]   # one threshold bit of channel 0 flipped: no pixel encodes it
    bits[0, 0], bits[0, 2] = 0, 1
    with pytest.raises(ValueError, match="not the thermometer code of any"):
        A.stream_values(fmt, nl.n_inputs, bits)


def test_cycle_model_is_what_the_header_states_for_s(tmp_path):
    """LogicTreeNet-S's streamed form (untrained, generated only, not simulated): one image
    per 34 x 34 scan steps of the first layer, the class counts within that."""
    import difflogic as dl
    nl = compile(dl.get_model("cifar10-s").eval())
    side = V.export(nl, tmp_path / "s", fold="auto")
    assert side["beats_per_image"] == 1024 and side["axis_width"] == 24
    assert side["cycles_per_image"] == 34 * 34
    assert side["fold"] == 1024 and 0 < side["latency_cycles"] < 3 * 34 * 34


def test_synth_estimate_of_the_streamed_form(tmp_path, capsys):
    """The LUT6 mapping estimate of a streamed design: its flip-flops are the line buffers,
    pools, gathered features and counters; the report says it is an estimate."""
    need("yosys")
    from difflogic import cli
    nl = compile(two_input_gate_model("gray"))
    d = tmp_path / "f"
    V.export(nl, d, fold="auto")
    capsys.readouterr()
    assert cli.main(["synth", str(d), "--fast"]) == 0
    text = capsys.readouterr().out
    rep = json.loads((d / "synth_report.json").read_text())
    assert rep["luts"] > 0 and rep["ffs"] > 100
    assert f"LUT6:          {rep['luts']:,}" in text and "mapping estimate" in text
    assert re.search(r"flip-flops:\s+\d", text)
