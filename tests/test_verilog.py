"""Verilog back end: real simulations with Icarus Verilog and Verilator, yosys synthesis.

Golden values come from outside the emitter: the gate truth tables (difflogic.gates) for the
exhaustive gate test, the compiler's reference simulator and the PyTorch hard forward for
networks.  Verilator builds are shared per module (they dominate the run time).
Tools missing: skipped with the reason, unless the CI environment variable is set (then the
absence is a failure).
"""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import torch

from difflogic import gates
from difflogic.backends import verilog as V
from difflogic.compiler.harden import hard_counts, harden
from difflogic.compiler.ir import GateBlock, GroupSum, Netlist
from difflogic.compiler.sim import simulate
from difflogic.models import LogicNet

from conftest import need


# ------------------------------------------------------------------ the 16 gates, exhaustive
#: every gate on (in0, in1), and the asymmetric ones (2 A&~B, 4 ~A&B, 11 A|~B, 13 ~A|B) also with
#: swapped operands: an a/b mix-up anywhere in the chain flips their outputs.
ASYMMETRIC = (gates.A_AND_NOT_B, gates.NOT_A_AND_B, gates.A_OR_NOT_B, gates.NOT_A_OR_B)
GATE_CASES = [(op, 0, 1) for op in range(16)] + [(op, 1, 0) for op in ASYMMETRIC]


def gate_netlist():
    n = len(GATE_CASES)
    ops = np.array([c[0] for c in GATE_CASES], np.uint8)
    a = np.array([2 + c[1] for c in GATE_CASES], np.int64)  # node 2 = leaf 0 = input 0
    b = np.array([2 + c[2] for c in GATE_CASES], np.int64)
    blk = GateBlock("dense", (2,), np.array([0, 1]), ops, a, b, 4 + np.arange(n), name="gates")
    # one class per gate: the class count *is* the gate output
    return Netlist((2,), [blk], GroupSum(n, 1.0, n), meta={"name": "all16"})


GATE_BITS = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.uint8)


def gate_truth():
    return np.array([[int(gates.hard_gate(op, x[i], x[j])) for op, i, j in GATE_CASES]
                     for x in GATE_BITS], np.int64)


def test_truth_table_golden_is_the_documented_one():
    t = gate_truth()
    col = {c: k for k, c in enumerate(GATE_CASES)}
    # spot checks straight from the definitions, asymmetric gates in both operand orders
    assert t[:, col[(gates.AND, 0, 1)]].tolist() == [0, 0, 0, 1]
    assert t[:, col[(gates.A_AND_NOT_B, 0, 1)]].tolist() == [0, 0, 1, 0]
    assert t[:, col[(gates.A_AND_NOT_B, 1, 0)]].tolist() == [0, 1, 0, 0]
    assert t[:, col[(gates.NOT_A_OR_B, 0, 1)]].tolist() == [1, 1, 0, 1]
    assert t[:, col[(gates.NOT_A_OR_B, 1, 0)]].tolist() == [1, 0, 1, 1]


@pytest.mark.parametrize("simplify", [True, False], ids=["simplified", "raw"])
@pytest.mark.parametrize("pipeline", [0, 2])
def test_all_16_gates_iverilog(tmp_path, simplify, pipeline):
    need("iverilog", "vvp")
    nl = gate_netlist()
    expected = gate_truth()
    net = V.build(nl, simplify=simplify)
    counts, cls = net.evaluate(GATE_BITS)
    np.testing.assert_array_equal(counts, expected)
    info = V.export(nl, tmp_path / "rtl", pipeline=pipeline, scores=True, vectors=GATE_BITS,
                    expected=expected, simplify=simplify)
    assert info["latency"] == (0 if not pipeline else -(-info["levels"] // pipeline))
    r = V.run_testbench(tmp_path / "rtl", "iverilog")
    assert r.passed, r.output
    assert "PASS: 4 vectors" in r.output
    if not simplify:  # every gate is emitted with its own expression
        rtl = (tmp_path / "rtl" / "difflogic_net.v").read_text()
        for op in range(16):
            assert gates.render(op, "x[0]", "x[1]", not_="~", zero="1'b0", one="1'b1") in rtl


# ------------------------------------------------------------------ random architectures
def random_model(seed, kind):
    torch.manual_seed(seed)
    if kind == "dense":
        layers = [{"type": "flatten"}, {"type": "dense", "out_features": 48},
                  {"type": "dense", "out_features": 30}, {"type": "group_sum", "k": 5, "tau": 1.0}]
        shape = [1, 4, 4]
    elif kind == "conv_pool":
        layers = [{"type": "conv", "out_channels": 4, "kernel_size": 3, "depth": 2, "padding": 1,
                   "or_pool": 2},
                  {"type": "conv", "out_channels": 6, "kernel_size": 2, "depth": 1, "stride": 2,
                   "groups": 2, "channels_per_tree": 2},
                  {"type": "flatten"}, {"type": "dense", "out_features": 36},
                  {"type": "group_sum", "k": 3, "tau": 2.0}]
        shape = [2, 9, 8]
    elif kind == "thresholds_conv":
        layers = [{"type": "thresholds", "thresholds": [0.3, 0.6]},
                  {"type": "conv", "out_channels": 6, "kernel_size": [3, 2], "depth": 3,
                   "padding": 2, "or_pool": 3},
                  {"type": "flatten"}, {"type": "dense", "out_features": 40},
                  {"type": "group_sum", "k": 4, "tau": 1.0}]
        shape = [1, 7, 7]
    else:
        raise ValueError(kind)
    # Gaussian logits: varied gates (residual init would harden to wires)
    return LogicNet({"name": f"{kind}-{seed}", "input_shape": shape, "num_classes": layers[-1]["k"],
                     "init": "gaussian", "layers": layers})


def model_vectors(model, nl, n, seed):
    rng = np.random.default_rng(seed)
    if nl.encoder is not None:
        images = rng.integers(0, 256, (n, *model.input_shape), dtype=np.uint8)
        from difflogic.compiler.sim import encode_input
        return encode_input(nl, images), images
    bits = rng.integers(0, 2, (n, *nl.input_shape)).astype(np.uint8)
    return bits, torch.from_numpy(bits.astype(np.float32))


@pytest.mark.parametrize("kind,seed,pipeline", [("dense", 1, 0), ("dense", 2, 3),
                                                ("conv_pool", 3, 0), ("conv_pool", 4, 2),
                                                ("thresholds_conv", 5, 0), ("thresholds_conv", 6, 5)])
def test_random_architectures_iverilog(tmp_path, kind, seed, pipeline):
    need("iverilog", "vvp")
    model = random_model(seed, kind)
    nl = harden(model)
    bits, x = model_vectors(model, nl, 64, seed)
    ref = simulate(nl, bits)
    np.testing.assert_array_equal(ref, hard_counts(model, x))  # the golden is the model
    assert len(set(ref.argmax(1).tolist())) > 1 or nl.num_classes == 1
    V.export(nl, tmp_path / "rtl", pipeline=pipeline, scores=True, vectors=bits)
    r = V.run_testbench(tmp_path / "rtl", "iverilog")
    assert r.passed, r.output
    # run_counts: the RTL's own counts, independently of the golden file
    (tmp_path / "rc").mkdir()
    got = V.BACKEND.run(nl, bits, simulator="iverilog", pipeline=pipeline, workdir=tmp_path / "rc")
    np.testing.assert_array_equal(got, ref)


def test_export_without_scores_checks_class_only(tmp_path):
    need("iverilog", "vvp")
    model = random_model(7, "conv_pool")
    nl = harden(model)
    bits, _ = model_vectors(model, nl, 40, 7)
    info = V.export(nl, tmp_path / "rtl", vectors=bits)
    rtl = (tmp_path / "rtl" / "difflogic_net.v").read_text()
    assert "scores" not in rtl.split(");")[0] and info["scores"] is False
    assert V.run_testbench(tmp_path / "rtl", "iverilog").passed


# ------------------------------------------------------------------ bench failure detection
def corrupt_first_vector(d):
    p = d / "vectors_out.hex"
    lines = p.read_text().split("\n")
    v = int(lines[0], 16)
    lines[0] = format(v ^ 1, f"0{len(lines[0])}x")  # flip the class LSB of vector 0
    p.write_text("\n".join(lines))


def test_bench_detects_mismatch_iverilog(tmp_path):
    need("iverilog", "vvp")
    nl = gate_netlist()
    V.export(nl, tmp_path / "rtl", pipeline=1, scores=True, vectors=GATE_BITS, expected=gate_truth())
    corrupt_first_vector(tmp_path / "rtl")
    r = V.run_testbench(tmp_path / "rtl", "iverilog")
    assert not r.passed and r.returncode != 0
    assert "FAIL: vector 0" in r.output


def test_bench_detects_mutated_gate(tmp_path):
    """Mutation test: flip one observable gate's op in the RTL -> the bench must fail."""
    need("iverilog", "vvp")
    nl = gate_netlist()
    V.export(nl, tmp_path / "rtl", scores=True, vectors=GATE_BITS, expected=gate_truth(),
             simplify=False)
    p = tmp_path / "rtl" / "difflogic_net.v"
    rtl = p.read_text()
    assert "wire g1 = (x[0] & x[1]);" in rtl
    p.write_text(rtl.replace("wire g1 = (x[0] & x[1]);", "wire g1 = (x[0] | x[1]);"))
    r = V.run_testbench(tmp_path / "rtl", "iverilog")
    assert not r.passed and "FAIL" in r.output


# ------------------------------------------------------------------ Verilator (shared builds)
@pytest.fixture(scope="module")
def verilator_designs(tmp_path_factory):
    """Two designs built once: a pipelined conv+pool net and the 16 gates (combinational)."""
    need("verilator", "make")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VERILATOR_OPT_FAST", "-O0")  # C++ compile time dominates these small runs
        yield _build_verilator_designs(tmp_path_factory)


def _build_verilator_designs(tmp_path_factory):
    root = tmp_path_factory.mktemp("verilator")
    model = random_model(11, "conv_pool")
    nl = harden(model)
    bits, _ = model_vectors(model, nl, 100, 11)
    V.export(nl, root / "conv", pipeline=3, scores=True, vectors=bits)
    V.export(gate_netlist(), root / "gates", scores=True, vectors=GATE_BITS, expected=gate_truth())
    runs = {name: V.run_testbench(root / name, "verilator") for name in ("conv", "gates")}
    return root, nl, bits, runs


def test_verilator_pipelined_conv_pool(verilator_designs):
    root, nl, bits, runs = verilator_designs
    assert runs["conv"].passed, runs["conv"].output
    assert "PASS: 100 vectors" in runs["conv"].output
    assert json.loads((root / "conv" / "difflogic_net.json").read_text())["latency"] >= 2


def test_verilator_all_16_gates(verilator_designs):
    _, _, _, runs = verilator_designs
    assert runs["gates"].passed, runs["gates"].output


def test_verilator_dump_matches_reference(verilator_designs, tmp_path):
    """The built binary in dump mode (what run_counts reads) reproduces the reference counts."""
    root, nl, bits, _ = verilator_designs
    dump = tmp_path / "out.hex"
    r = V.run_testbench(root / "conv", "verilator", plusargs=("+nocheck", f"+dump={dump}"))
    assert r.passed and "DONE" in r.output
    info = json.loads((root / "conv" / "difflogic_net.json").read_text())
    cw, sw = info["class_width"], info["score_width"]
    vals = [int(l, 16) for l in dump.read_text().split()]
    counts = np.array([[(v >> (cw + j * sw)) & ((1 << sw) - 1) for j in range(nl.num_classes)]
                       for v in vals])
    np.testing.assert_array_equal(counts, simulate(nl, bits))


def test_verilator_bench_detects_mismatch(verilator_designs):
    root, _, _, _ = verilator_designs
    d = root / "conv"
    good = (d / "vectors_out.hex").read_text()
    try:
        corrupt_first_vector(d)  # vectors are read at run time: no rebuild needed
        r = V.run_testbench(d, "verilator")
        assert not r.passed and r.returncode != 0
        assert "FAIL: vector 0" in r.output
    finally:
        (d / "vectors_out.hex").write_text(good)


def test_run_counts_verilator(tmp_path, monkeypatch):
    need("verilator", "make")
    monkeypatch.setenv("VERILATOR_OPT_FAST", "-O0")
    model = random_model(12, "thresholds_conv")
    nl = harden(model)
    bits, _ = model_vectors(model, nl, 30, 12)
    got = V.BACKEND.run(nl, bits, simulator="verilator", workdir=tmp_path)
    np.testing.assert_array_equal(got, simulate(nl, bits))


# ------------------------------------------------------------------ yosys
def test_yosys_synth_small_net(tmp_path):
    need("yosys")
    from difflogic.synth import format_report, synthesize
    model = random_model(13, "conv_pool")
    nl = harden(model)
    comb = V.export(nl, tmp_path / "comb")
    pipe = V.export(nl, tmp_path / "pipe", pipeline=4)
    rc = synthesize(tmp_path / "comb")
    rp = synthesize(tmp_path / "pipe", fast=True)
    for r, info in ((rc, comb), (rp, pipe)):
        assert 0 < r["luts"] <= info["gates"]
        assert 1 <= r["depth_luts"] <= info["levels"]
        assert r["synth_seconds"] > 0
        assert (tmp_path / info["dir"].split("/")[-1] / "synth_report.json").is_file()
        assert os.path.getsize(r["log"]) > 0
    assert rc["ffs"] == 0 and rc["latency_cycles"] == 0
    assert rp["ffs"] >= pipe["latency"]  # at least the valid chain
    assert rp["depth_luts"] <= rc["depth_luts"]  # registers cut the longest path
    assert "LUT6" in format_report(rc) and "MHz" in format_report(rp)


def test_synth_command(tmp_path, capsys):
    need("yosys")
    import argparse

    from difflogic.commands import synth as cmd
    V.export(gate_netlist(), tmp_path / "g")
    parser = argparse.ArgumentParser()
    cmd.add_parser(parser.add_subparsers())
    args = parser.parse_args(["synth", str(tmp_path / "g"), "--json", "--lut", "4"])
    assert args.func(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["lut_size"] == 4 and out["luts"] > 0


# ------------------------------------------------------------------ errors and file handling
def test_too_large_reported_before_writing(tmp_path):
    nl = harden(random_model(14, "dense"))
    with pytest.raises(ValueError, match=r"too large.*combinational.*gates"):
        V.export(nl, tmp_path / "out", max_gates=10)
    with pytest.raises(ValueError, match=r"pipelined \(pipeline=4\)"):
        V.export(nl, tmp_path / "out", pipeline=4, max_gates=10)
    assert not (tmp_path / "out").exists() and list(tmp_path.iterdir()) == []


def test_bad_arguments(tmp_path):
    nl = gate_netlist()
    with pytest.raises(ValueError, match="pipeline"):
        V.export(nl, tmp_path / "a", pipeline=-1)
    with pytest.raises(ValueError, match="0/1"):
        V.export(nl, tmp_path / "a", vectors=np.array([[0, 2]]), expected=np.zeros((1, 20)))
    with pytest.raises(ValueError, match="shape"):
        V.export(nl, tmp_path / "a", vectors=np.zeros((3, 5), np.uint8))
    with pytest.raises(ValueError, match="expected must be counts"):
        V.export(nl, tmp_path / "a", vectors=GATE_BITS, expected=np.zeros((4, 3)))
    with pytest.raises(TypeError, match="Netlist"):
        V.export("model.pt", tmp_path / "a")
    with pytest.raises(ValueError, match="simulator"):
        V.BACKEND.run(nl, GATE_BITS, simulator="vcs")
    assert not (tmp_path / "a").exists()


def test_reexport_keeps_foreign_files_and_removes_only_its_own(tmp_path):
    """Exporting into a folder never deletes what the export did not write: a user's files
    stay; of an earlier export there, only the files its own manifest (the sidecar) lists
    and the new export does not rewrite are removed (here: its test vectors)."""
    nl = gate_netlist()
    d = tmp_path / "rtl"
    d.mkdir()
    (d / "notes.txt").write_text("keep")
    V.export(nl, d, pipeline=2, vectors=GATE_BITS)
    side = json.loads((d / "difflogic_net.json").read_text())
    assert side["files"] == sorted(p.name for p in d.iterdir() if p.name != "notes.txt")
    assert "vectors_in.hex" in side["files"]
    V.export(nl, d)   # no vectors this time: the old ones must not be left for the new bench
    side = json.loads((d / "difflogic_net.json").read_text())
    assert side["pipeline"] == 0 and "vectors_in.hex" not in side["files"]
    assert sorted(p.name for p in d.iterdir()) == sorted(side["files"] + ["notes.txt"])
    assert (d / "notes.txt").read_text() == "keep"
    (d / "difflogic_net.json").write_text('{"top": "difflogic_net", "files": ["notes.txt"]}')
    V.export(nl, d)   # a manifest naming another's file: that file is rewritten or kept, never lost
    assert (d / "notes.txt").read_text() == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rtl"]  # no temp dirs left
    assert not [p for p in d.iterdir() if p.name.startswith(".")]


def test_run_sim_states_the_cost_and_picks_a_simulator_by_size(tmp_path):
    """run_sim.sh announces gates, vectors and an expected time; ``estimate`` compares the
    simulators, and auto picks Verilator once Icarus' quadratic compile would dominate."""
    need("iverilog", "vvp")
    nl = gate_netlist()
    d = tmp_path / "rtl"
    V.export(nl, d, scores=True, vectors=np.tile(GATE_BITS, (30, 1)), expected=np.tile(gate_truth(), (30, 1)))
    r = run_sim_sh(d)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "run_sim.sh: iverilog on" in r.stdout and "x 120 vectors, expected about" in r.stdout
    assert "progress: 12/120 vectors" in r.stdout and "PASS: 120 vectors" in r.stdout
    r = run_sim_sh(d, "estimate")
    assert r.returncode == 0 and "auto: iverilog" in r.stdout, r.stdout + r.stderr
    if shutil.which("verilator") and shutil.which("make"):
        side = d / "difflogic_net.json"
        side.write_text(side.read_text().replace(f'"gates": {json.loads(side.read_text())["gates"]},',
                                                 '"gates": 2000000,'))
        r = run_sim_sh(d, "estimate")
        assert "2,000,000 gates" in r.stdout or "2000000 gates" in r.stdout
        assert "auto: verilator" in r.stdout, r.stdout
    import subprocess
    tools = tmp_path / "tools"   # the script's shell tools, but no simulator
    tools.mkdir()
    for t in ("dirname", "mkdir", "sed", "awk", "head", "cat"):
        (tools / t).symlink_to(shutil.which(t))
    r = subprocess.run(["/bin/bash", str(d / "run_sim.sh")], capture_output=True, text=True,
                       env=dict(os.environ, PATH=str(tools)))
    assert r.returncode == 127 and "apt-get install iverilog" in r.stderr, r.stderr


def test_missing_tool_names_apt_package(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(V.ToolNotFoundError, match="apt-get install verilator"):
        V.BACKEND.run(gate_netlist(), GATE_BITS, simulator="verilator")
    from difflogic.synth import synthesize
    with pytest.raises((V.ToolNotFoundError, FileNotFoundError)):
        synthesize("/nonexistent")


def test_header_and_sidecar(tmp_path):
    nl = harden(random_model(15, "conv_pool"))
    info = V.export(nl, tmp_path / "r", pipeline=3)
    side = json.loads((tmp_path / "r" / "difflogic_net.json").read_text())
    for key in ("inputs", "classes", "gates", "levels", "latency", "pipeline"):
        assert side[key] == info[key]
    assert side["inputs"] == nl.n_inputs and side["classes"] == nl.num_classes
    head = (tmp_path / "r" / "difflogic_net.v").read_text().split("module")[0]
    assert f"latency: {side['latency']} cycles" in head and f"{side['gates']} (" in head
    assert side["latency"] == -(-side["levels"] // 3)


# ------------------------------------------------------------------ the CLI (export/verify/synth)
@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """A small random conv net with a thermometer encoder, saved as a real checkpoint."""
    from difflogic.checkpoint import save_checkpoint
    torch.manual_seed(3)
    cfg = {"name": "tiny-verilog-cli", "input_shape": [1, 8, 8], "num_classes": 3,
           "init": "gaussian",
           "layers": [{"type": "thresholds", "num": 2},
                      {"type": "conv", "out_channels": 6, "kernel_size": 3, "depth": 2,
                       "padding": 1, "or_pool": 2},
                      {"type": "flatten"}, {"type": "dense", "out_features": 30},
                      {"type": "group_sum", "k": 3, "tau": 2.0}]}
    path = tmp_path_factory.mktemp("run") / "model.pt"
    save_checkpoint(path, LogicNet(cfg))
    return path


def run_sim_sh(d, *args):
    import subprocess
    return subprocess.run(["bash", str(d / "run_sim.sh"), *args], capture_output=True, text=True,
                          timeout=120)


def test_cli_export_pipelined_bench_passes_and_catches_corruption(ckpt, tmp_path, capsys):
    need("iverilog", "vvp")
    from difflogic import cli
    d = tmp_path / "rtl"
    assert cli.main(["export", str(ckpt), "--target", "verilog", "--out", str(d), "--pipeline", "2",
                     "--scores", "--vectors", "50", "--seed", "4"]) == 0
    out = capsys.readouterr().out
    side = json.loads((d / "difflogic_net.json").read_text())
    assert side["pipeline"] == 2 and side["latency"] == -(-side["levels"] // 2) >= 2
    assert side["scores"] is True and side["vectors"] == 50
    assert f"latency {side['latency']} cycles" in out
    assert f"// latency: {side['latency']} cycles" in (d / "difflogic_net.v").read_text()
    for f in ("tb.v", "run_sim.sh", "vectors_in.hex", "vectors_out.hex", "synth.ys"):
        assert (d / f).is_file(), f
    assert os.access(d / "run_sim.sh", os.X_OK)
    r = run_sim_sh(d, "iverilog")
    assert r.returncode == 0 and "PASS: 50 vectors" in r.stdout, r.stdout + r.stderr
    # the golden file is the model's own hard forward: corrupting one vector must fail the bench
    corrupt_first_vector(d)
    r = run_sim_sh(d, "iverilog")
    assert r.returncode != 0
    assert "FAIL: vector 0" in r.stdout + r.stderr and "PASS" not in r.stdout


def test_cli_export_combinational_golden_is_the_model(ckpt, tmp_path, capsys):
    """Without --scores the bench checks class_idx; the golden classes are torch's argmax."""
    from difflogic.checkpoint import load_model
    from difflogic import cli
    from difflogic.compiler import random_inputs
    d = tmp_path / "comb"
    assert cli.main(["export", str(ckpt), "--target", "verilog", "--out", str(d), "--vectors", "20",
                     "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["verilog"]["latency"] == 0 and "tb.v" in summary["files"]
    model = load_model(ckpt)
    nl = harden(model)
    x = random_inputs(nl, 20, 0)
    golden = [int(l, 16) for l in (d / "vectors_out.hex").read_text().split()]
    assert golden == hard_counts(model, x).argmax(1).tolist()
    if shutil.which("iverilog") and shutil.which("vvp"):
        assert V.run_testbench(d, "iverilog").passed


@pytest.mark.parametrize("pipeline", [None, "3"])
def test_cli_verify_verilog(ckpt, capsys, pipeline):
    need("iverilog", "vvp")
    from difflogic import cli
    argv = ["verify", str(ckpt), "--target", "verilog", "--simulator", "iverilog", "--samples", "40"]
    if pipeline:
        argv += ["--pipeline", pipeline]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "== verilog  (bit-identical" in out and out.strip().endswith("OK")
    assert ("pipeline=3" if pipeline else "combinational") in out


def test_cli_verify_verilog_detects_wrong_rtl(ckpt, capsys, monkeypatch):
    """Mutate the emitted RTL (one score bit inverted in the gate graph): verify must fail."""
    need("iverilog", "vvp")
    from difflogic import cli
    real = V.build

    def broken(netlist, **kw):
        net = real(netlist, **kw)
        net.score_lits[1][0] ^= 1  # class 1's count LSB inverted -> a different count everywhere
        return net
    monkeypatch.setattr(V, "build", broken)
    status = cli.main(["verify", str(ckpt), "--target", "verilog", "--samples", "10"])
    captured = capsys.readouterr()
    assert status == 1
    # either the counts differ, or the RTL's class_idx disagrees with its own counts
    assert "MISMATCH torch vs target" in captured.out or "first maximum" in captured.err


def test_cli_synth_on_exported_net(ckpt, tmp_path, capsys):
    need("yosys")
    from difflogic import cli
    d = tmp_path / "rtl"
    assert cli.main(["export", str(ckpt), "--target", "verilog", "--out", str(d), "--pipeline", "4",
                     "--vectors", "4"]) == 0
    side = json.loads((d / "difflogic_net.json").read_text())
    capsys.readouterr()
    assert cli.main(["synth", str(d), "--json", "--fast"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert 0 < rep["luts"] <= side["gates"] and rep["lut_size"] == 6
    assert rep["ffs"] >= side["latency"] and rep["latency_cycles"] == side["latency"]
    assert 1 <= rep["depth_luts"] <= 4  # at most 4 gate levels between register banks
    assert json.loads((d / "synth_report.json").read_text())["luts"] == rep["luts"]
    assert cli.main(["synth", str(d), "--fast"]) == 0
    text = capsys.readouterr().out
    assert f"LUT6:          {rep['luts']:,}" in text and "flip-flops" in text and "logic depth" in text


def test_cli_too_large_reported_before_writing(ckpt, tmp_path, capsys):
    from difflogic import cli
    from difflogic.checkpoint import load_model
    from difflogic.compiler import compile
    est = V.estimate_gates(compile(load_model(ckpt)))
    d = tmp_path / "big"
    assert cli.main(["export", str(ckpt), "--target", "verilog", "--out", str(d),
                     "--max-gates", str(est - 1)]) == 2
    err = capsys.readouterr().err
    assert "too large" in err and f"{est:,} gates" in err and "nothing was written" in err
    assert list(tmp_path.iterdir()) == []
    assert cli.main(["verify", str(ckpt), "--target", "verilog", "--pipeline", "2",
                     "--max-gates", "10"]) == 2
    assert "pipelined (pipeline=2)" in capsys.readouterr().err


def test_cli_verilog_options_rejected_elsewhere(ckpt, tmp_path, capsys):
    from difflogic import cli
    for argv, msg in (
            (["export", str(ckpt), "--out", str(tmp_path / "c"), "--pipeline", "2", "--scores"],
             "--pipeline, --scores only apply to --target verilog"),
            (["verify", str(ckpt), "--simulator", "iverilog"], "--simulator only applies to --target verilog"),
            (["export", str(ckpt), "--target", "verilog", "--out", str(tmp_path / "v"),
              "--prefix", "x"], "--prefix only applies to --target c"),
            (["export", str(ckpt), "--target", "verilog", "--out", str(tmp_path / "v"),
              "--vectors", "0"], "--vectors must be >= 1"),
            (["export", str(ckpt), "--target", "verilog", "--out", str(tmp_path / "v"),
              "--pipeline", "-1"], "pipeline must be an integer >= 0")):
        assert cli.main(argv) == 2, argv
        assert msg in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_cli_missing_tools_name_the_apt_package(ckpt, tmp_path, capsys, monkeypatch):
    from difflogic import cli
    V.export(gate_netlist(), tmp_path / "g")
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert cli.main(["verify", str(ckpt), "--target", "verilog", "--samples", "2"]) == 1
    assert "apt-get install iverilog" in capsys.readouterr().err
    assert cli.main(["verify", str(ckpt), "--target", "verilog", "--simulator", "verilator",
                     "--samples", "2"]) == 1
    assert "apt-get install verilator" in capsys.readouterr().err
    assert cli.main(["synth", str(tmp_path / "g")]) == 1
    assert "apt-get install yosys" in capsys.readouterr().err


def test_cli_help_shows_no_misleading_flag_defaults():
    from difflogic import cli
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name in ("export", "verify", "synth"):
        text = sub.choices[name].format_help()
        assert "(default: True)" not in text and "(default: False)" not in text, name
        assert "(default: None)" not in text, name
    assert "--no-optimize" in sub.choices["export"].format_help()
    assert "--pipeline N" in sub.choices["export"].format_help()
