"""The C back end's table form of dense blocks (gates as data read by one loop), forced on
small nets: class counts equal the IR simulator and the PyTorch hard forward for every input
form, thread count and odd batch size; the form mixes with straight-line blocks and conv
cells; a wrong table is caught; the workspace stays bounded; the exported folder builds."""
import ctypes
import os
import re
import shutil
import subprocess

import numpy as np
import pytest
import torch

import difflogic as dl
from difflogic.backends import c as cbe
from difflogic.compiler import encode_input, hard_counts, harden, optimize, simulate
from conftest import random_input, random_model

pytestmark = pytest.mark.skipif(shutil.which(os.environ.get("CC") or "cc") is None
                                and shutil.which("gcc") is None, reason="no C compiler")


def _packed(bits) -> np.ndarray:
    bits = np.asarray(bits).reshape(len(bits), -1)
    return np.packbits(bits.astype(np.uint8), axis=1, bitorder="little")


def _check_every_form(model, net, cn):
    """Counts of every entry point == torch hard forward == IR simulator, 1 and 2 threads."""
    for n, threads in ((1, 1), (77, 2), (300, 1), (513, 2)):
        x = random_input(model, n, seed=n)
        ref = hard_counts(model, x)
        bits = encode_input(net, x)
        assert np.array_equal(simulate(net, bits), ref), n
        assert np.array_equal(cn.counts(bits, encoded=True, threads=threads), ref), (n, threads)
        assert np.array_equal(cn.counts(bits.astype(bool), threads=threads), ref), (n, threads)
        assert np.array_equal(cn.counts(_packed(bits), packed=True, threads=threads), ref), (n, threads)
        if net.encoder is not None:
            assert np.array_equal(cn.counts(x.numpy().astype(np.float32), threads=threads), ref), (n, threads)
            xu = (x * 255).round().to(torch.uint8)
            assert np.array_equal(cn.counts(xu.numpy(), threads=threads), hard_counts(model, xu)), (n, threads)


def _dense_model(widths, n_in=40, k=4, seed=0):
    torch.manual_seed(seed)
    cfg = {"name": "dense", "input_shape": [1, n_in], "num_classes": k, "init": "gaussian",
           "layers": [{"type": "thresholds", "num": 2}, {"type": "flatten"},
                      *[{"type": "dense", "out_features": w} for w in widths],
                      {"type": "group_sum", "k": k, "tau": 1.0}]}
    return dl.LogicNet(cfg)


@pytest.mark.parametrize("widths", [(120,), (300, 200, 160)], ids=["one-layer", "three-layers"])
def test_forced_table_form_matches_torch_and_sim_for_every_form(widths):
    model = _dense_model(widths)
    net = optimize(harden(model))
    cn = cbe.CompiledNet(net, table_gates=0)
    assert "Table form: " in cn.source and "dl_table_run(ws" in cn.source
    _check_every_form(model, net, cn)


@pytest.mark.parametrize("seed", (1, 5, 13))
def test_table_form_with_conv_cells_and_unoptimized_netlists(seed):
    model = random_model(seed)
    for net in (optimize(harden(model)), harden(model)):
        cn = cbe.CompiledNet(net, table_gates=0)
        _check_every_form(model, net, cn)


def test_table_and_straight_line_blocks_mix_and_threshold_picks_them():
    model = _dense_model((50, 400, 32))
    net = harden(model)   # not optimized: the block sizes stay 50, 400, 30
    src, _ = cbe.generate(net, table_gates=100)
    assert "1 of 3 dense blocks" in src and src.count("_runs[] =") == 1
    assert "Table form" not in cbe.generate(net, table_gates=None)[0]
    cn = cbe.CompiledNet(net, table_gates=100)
    _check_every_form(model, net, cn)


def test_a_wrong_table_is_caught(tmp_path):
    model = _dense_model((64,))
    net = harden(model)
    src, hdr = cbe.generate(net, header_name="dl.h", table_gates=0)
    runs = re.search(r"op0_runs\[\] = \{(\d+),", src)
    wrong = (int(runs.group(1)) + 1) % 16   # the first run's gates computed by another gate
    bad = src[:runs.start(1)] + str(wrong) + src[runs.end(1):]
    bits = np.random.default_rng(0).integers(0, 2, (200, net.n_inputs), dtype=np.uint8)
    ref = simulate(net, bits.reshape(len(bits), *net.input_shape))
    for text, same in ((src, True), (bad, False)):
        lib = cbe.build_shared(text, hdr)
        fn = ctypes.CDLL(str(lib)).dl_scores_bits
        out = np.zeros((len(bits), net.num_classes), np.int32)
        assert fn(ctypes.c_void_p(bits.ctypes.data), ctypes.c_size_t(len(bits)),
                  ctypes.c_void_p(out.ctypes.data), 1) == 0
        assert np.array_equal(out, ref) == same


def test_table_form_workspace_reuses_words_by_liveness():
    model = _dense_model((200,) * 6)
    net = harden(model)
    src, _ = cbe.generate(net, table_gates=0)
    ws = int(re.search(r"#define DL_WS_WORDS (\d+)", src).group(1))
    assert ws < 3 * 200 + net.n_inputs + 64   # about two layers live, not all six


def test_bad_table_gates_are_refused():
    net = harden(_dense_model((8,)))
    for bad in (-1, 1.5, True, "10"):
        with pytest.raises(ValueError, match="table_gates must be None"):
            cbe.generate(net, table_gates=bad)


def test_table_form_export_builds_with_its_makefile(tmp_path):
    make = shutil.which("make")
    if make is None:
        pytest.skip("make not installed")
    model = _dense_model((100, 80))
    net = optimize(harden(model))
    files = cbe.export(net, tmp_path / "out", table_gates=0)
    assert "Table form" in open(files["net.c"]).read()
    r = subprocess.run([make, "-C", str(tmp_path / "out")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([str(tmp_path / "out" / "bench"), "300", "1", "2", "bits"], capture_output=True, text=True)
    assert r.returncode == 0 and "images/s" in r.stdout, r.stdout + r.stderr
    r = subprocess.run([cbe.find_compiler(), "-std=c99", "-fsyntax-only", "-DDL_LANES=1", files["net.c"]],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_table_blocks_without_gates_and_with_wired_or_constant_outputs():
    from difflogic.compiler import ir
    wires = ir.GateBlock("dense", (6,), np.arange(6), np.zeros(0, np.uint8), np.zeros(0, np.int64),
                         np.zeros(0, np.int64), np.array([2, 3, 0, 1, 7, 4], np.int64))
    gates2 = ir.GateBlock("dense", (6,), np.arange(6), np.array([6, 8], np.uint8), np.array([2, 3], np.int64),
                          np.array([4, 5], np.int64), np.array([8, 9, 2, 0, 1, 9], np.int64))
    bits = np.random.default_rng(0).integers(0, 2, (300, 6)).astype(np.uint8)
    for ops in ([wires], [wires, gates2]):
        net = ir.Netlist((6,), ops, ir.GroupSum(2, 1.0, 6))
        got = cbe.CompiledNet(net, table_gates=0).counts(bits, encoded=True, threads=2)
        assert np.array_equal(got, simulate(net, bits))
