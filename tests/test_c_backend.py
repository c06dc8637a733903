"""C back end: generated bit-packed C equals the PyTorch hard forward and the IR simulator,
for every gate, random architectures, odd batch sizes, threads and input kinds."""
import os
import shutil
import subprocess

import numpy as np
import pytest
import torch

import difflogic as dl
from difflogic import gates
from difflogic.backends import c as cbe
from difflogic.compiler import encode_input, hard_counts, harden, ir, optimize, simulate
from conftest import random_input, random_model

pytestmark = pytest.mark.skipif(shutil.which(os.environ.get("CC") or "cc") is None
                                and shutil.which("gcc") is None, reason="no C compiler")

SEEDS = (1, 2, 5, 8, 13, 21)


@pytest.fixture(scope="session")
def compiled():
    """(model, netlist, CompiledNet) per seed, optimized; compiled once per session (and
    cached on disk by content hash across sessions)."""
    out = {}
    for s in SEEDS:
        m = random_model(s)
        net = optimize(harden(m))
        out[s] = (m, net, cbe.CompiledNet(net, opt_level=1))
    return out


def test_all_16_gates_exhaustively():
    # 2 inputs, 16 gates (one of each op), 16 classes of one output each
    blk = ir.GateBlock("dense", (2,), np.arange(2), np.arange(16, dtype=np.uint8),
                       np.full(16, 2, np.int64), np.full(16, 3, np.int64), np.arange(4, 20, dtype=np.int64))
    net = ir.Netlist((2,), [blk], ir.GroupSum(16, 1.0, 16))
    bits = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.uint8)
    expected = gates.hard_gate(np.arange(16)[None, :], bits[:, :1], bits[:, 1:])
    for lanes in (1, 4):
        got = cbe.BACKEND.run(net, bits, lanes=lanes, opt_level=0)
        assert np.array_equal(got, expected), lanes
    assert np.array_equal(simulate(net, bits), expected)
    # asymmetric gates really are asymmetric here
    assert got[1, gates.A_AND_NOT_B] == 0 and got[2, gates.A_AND_NOT_B] == 1


@pytest.mark.parametrize("seed", SEEDS)
def test_random_architectures_match_torch(compiled, seed):
    model, net, cn = compiled[seed]
    for n in (1, 63, 64, 65, 130, 300):
        x = random_input(model, n, seed=n)
        ref = hard_counts(model, x)
        assert np.array_equal(cn.counts(x), ref), n
    x = random_input(model, 257, seed=3)
    ref = hard_counts(model, x)
    assert np.array_equal(cn.counts(x, threads=2), ref)
    assert np.array_equal(cn.counts(encode_input(net, x), encoded=True), ref)
    assert np.array_equal(cn.counts(encode_input(net, x).astype(bool)), ref)
    assert np.array_equal(cn.predict(x), torch.as_tensor(ref).argmax(1).numpy())
    np.testing.assert_allclose(cn.scores(x), ref / net.head.tau, rtol=1e-6)
    if net.encoder is not None:   # uint8 images through the C encoder
        xu = (x * 255).round().to(torch.uint8)
        assert np.array_equal(cn.counts(xu), hard_counts(model, xu))
        assert np.array_equal(cn.counts(xu.numpy()), simulate(net, encode_input(net, xu)))


def test_unoptimized_netlist_and_word_widths():
    model = random_model(SEEDS[0])
    net = harden(model)
    x = random_input(model, 131)
    ref = hard_counts(model, x)
    for lanes in (1, 2):
        cn = cbe.CompiledNet(net, lanes=lanes, opt_level=1)
        assert cn.block_size == 64 * lanes
        assert np.array_equal(cn.counts(x, threads=2), ref)


def test_mnist_tiny_u8_and_float_paths():
    torch.manual_seed(0)
    model = dl.get_model("mnist-tiny", init="gaussian")
    cn = cbe.CompiledNet(model)   # hardens + optimizes
    xu = torch.randint(0, 256, (97, 1, 28, 28), dtype=torch.uint8)
    assert np.array_equal(cn.counts(xu, threads=2), hard_counts(model, xu))
    xf = torch.rand(70, 1, 28, 28)
    assert np.array_equal(cn.counts(xf), hard_counts(model, xf))
    assert cn.counts(xu[:0]).shape == (0, 10)


def test_missing_compiler_is_a_clear_error(monkeypatch):
    with pytest.raises(RuntimeError, match="no C compiler"):
        cbe.find_compiler("definitely-not-a-c-compiler")
    monkeypatch.setenv("CC", "/nonexistent/cc")
    with pytest.raises(RuntimeError, match="no C compiler"):
        cbe.build_shared("int x;", "", opt_level=0)


def test_export_writes_complete_files_and_builds(tmp_path, compiled):
    model, net, cn = compiled[SEEDS[1]]
    files = cbe.export(net, tmp_path / "out", prefix="mynet", name="mynet")
    names = sorted(os.listdir(tmp_path / "out"))
    assert names == ["Makefile", "bench_main.c", "mynet.c", "mynet.h"]
    cc = cbe.find_compiler()
    r = subprocess.run([cc, "-std=c99", "-fsyntax-only", "-DDL_LANES=1", files["mynet.c"]], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([cc, "-O1", "-std=gnu99", "-pthread", "-o", str(tmp_path / "bench"), files["bench_main.c"],
                        files["mynet.c"]], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([str(tmp_path / "bench"), "300", "2", "1"], capture_output=True, text=True)
    assert r.returncode == 0 and "images/s" in r.stdout


def test_export_to_unwritable_location_is_clear_and_leaves_nothing(tmp_path, compiled):
    _, net, _ = compiled[SEEDS[0]]
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OSError, match="cannot create output directory"):
        cbe.export(net, blocker / "sub")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if os.access(ro, os.W_OK):   # root ignores permissions
            pytest.skip("running as root: directory permissions are not enforced")
        with pytest.raises(PermissionError, match="not writable"):
            cbe.export(net, ro)
        assert os.listdir(ro) == []
    finally:
        ro.chmod(0o700)


def test_bad_arguments():
    model = random_model(SEEDS[0])
    net = harden(model)
    with pytest.raises(ValueError, match="prefix"):
        cbe.generate(net, prefix="9bad")
    with pytest.raises(ValueError, match="lanes"):
        cbe.build_shared("", "", lanes=3)
    with pytest.raises(ValueError, match="opt_level"):
        cbe.build_shared("", "", opt_level=7)


@pytest.mark.parametrize("layers", [
    # stride-2 padded conv, standalone OR pool, unpadded pooled conv, dense head
    [{"type": "thresholds", "num": 2},
     {"type": "conv", "out_channels": 5, "kernel_size": 3, "depth": 3, "stride": 2, "padding": 1},
     {"type": "or_pool", "kernel_size": 2},
     {"type": "conv", "out_channels": 6, "kernel_size": 2, "depth": 2, "or_pool": 2},
     {"type": "flatten"}, {"type": "dense", "out_features": 12}, {"type": "group_sum", "k": 3, "tau": 1}],
    # conv-only network: GroupSum reads the conv output directly (odd sizes, 1-level trees)
    [{"type": "thresholds", "num": 1},
     {"type": "conv", "out_channels": 6, "kernel_size": 3, "depth": 1, "padding": 1},
     {"type": "flatten"}, {"type": "group_sum", "k": 2, "tau": 1}],
])
def test_fixed_architectures_match_torch(layers):
    torch.manual_seed(4)
    model = dl.LogicNet({"input_shape": [2, 13, 11], "init": "gaussian", "layers": layers})
    x = torch.rand(131, 2, 13, 11)
    ref = hard_counts(model, x)
    for optimized in (False, True):
        cn = cbe.CompiledNet(model, optimize=optimized, opt_level=1)
        assert np.array_equal(cn.counts(x, threads=3), ref)
        xu = (x * 255).to(torch.uint8)
        assert np.array_equal(cn.counts(xu), hard_counts(model, xu))


@pytest.fixture(scope="module")
def deep_dense():
    """A dense-only net whose optimized netlist has outputs wired across layers and constant
    features, 600 inputs (more than one 512-feature packing span, not a multiple of 64)."""
    torch.manual_seed(7)
    layers = [dl.LogicLayer(600 if i == 0 else 240, 240, device="cpu") for i in range(4)]
    model = torch.nn.Sequential(*layers, dl.GroupSum(6, tau=1)).eval()
    net = optimize(harden(model))
    last = net.ops[-1]
    assert (last.outputs < last.first_gate).any()   # wires / constants reach GroupSum
    return model, net


@pytest.mark.parametrize("lanes, flags", [(None, ()), (1, ()), (2, ()), (8, ()),
                                          (None, ("-mno-avx512f",)), (4, ("-mno-avx2", "-mno-avx512f"))])
def test_deep_dense_chain_all_word_widths_and_isas(deep_dense, lanes, flags):
    model, net = deep_dense
    cn = cbe.CompiledNet(net, opt_level=1, lanes=lanes, extra_flags=flags)
    for n in (1, 200, 513, 1100):
        bits = np.random.default_rng(n).integers(0, 2, (n, 600), dtype=np.uint8)
        ref = hard_counts(model, torch.as_tensor(bits, dtype=torch.float32))
        assert np.array_equal(cn.counts(bits, encoded=True, threads=2 if n > 600 else 1), ref), n
        assert np.array_equal(simulate(net, bits), ref)


def test_dense_into_conv_materializes_its_outputs():
    """A dense block feeding a (padded) conv: its outputs (gates, wires, constants) are copied
    into the conv's (C, H, W) input buffer."""
    rng = np.random.default_rng(0)
    n_in, ng = 16, 12
    first = ir.FIRST_LEAF + n_in

    def rand_ops(first, ng):
        return (rng.integers(0, 16, ng).astype(np.uint8),
                np.array([rng.integers(ir.FIRST_LEAF, first + g) for g in range(ng)]),
                np.array([rng.integers(ir.FIRST_LEAF, first + g) for g in range(ng)]))
    op, a, b = rand_ops(first, ng)
    outs = np.concatenate([first + np.arange(ng), [ir.CONST0, ir.CONST1, 2, 5, 7, first + 3]])
    dense = ir.GateBlock("dense", (n_in,), np.arange(n_in), op, a, b, outs)
    leaves = np.array([(c, dy, dx) for c in range(2) for dy in range(3) for dx in range(3)])
    f2 = ir.FIRST_LEAF + len(leaves)
    op, a, b = rand_ops(f2, 6)
    conv = ir.GateBlock("conv", (2, 3, 3), leaves, op, a, b, f2 + np.array([5, 4, 3, 0]), kernel_size=(3, 3),
                        stride=1, padding=1)
    net = ir.Netlist((n_in,), [dense, conv], ir.GroupSum(2, 1.0, 36))
    bits = rng.integers(0, 2, (300, n_in)).astype(np.uint8)
    ref = simulate(net, bits)
    for lanes in (None, 1):
        assert np.array_equal(cbe.BACKEND.run(net, bits, lanes=lanes, opt_level=1), ref), lanes
