"""C back end: generated bit-packed C equals the PyTorch hard forward and the IR simulator,
for every gate, random architectures, odd batch sizes, threads, word widths, instruction sets
and input forms (uint8 images, float32 inputs, 0/1 bytes, bool arrays, packed bits)."""
import os
import shutil
import subprocess

import numpy as np
import pytest
import torch

import difflogic as dl
from difflogic import gates
from difflogic.backends import c as cbe
from difflogic.compiler import compile as compile_model
from difflogic.compiler import encode_input, hard_counts, harden, ir, optimize, simulate
from conftest import random_input, random_model

pytestmark = pytest.mark.skipif(shutil.which(os.environ.get("CC") or "cc") is None
                                and shutil.which("gcc") is None, reason="no C compiler")

SEEDS = (1, 2, 5, 8, 13, 21)
#: instruction sets of the generated code's paths: AVX-512, AVX2, SSE2 only, and portable C
ISAS = {"native": (), "avx2": ("-mno-avx512f",), "sse2": ("-mno-avx", "-mno-avx2", "-mno-avx512f"),
        "scalar": ("-mno-avx", "-mno-avx2", "-mno-avx512f", "-U__SSE2__", "-Wno-builtin-macro-redefined")}


def _packed(bits) -> np.ndarray:
    """0/1 bits (N, ...) as the packed form: 8 per byte, feature f at bit f % 8 of byte f / 8."""
    bits = np.asarray(bits).reshape(len(bits), -1)
    return np.packbits(bits.astype(np.uint8), axis=1, bitorder="little")


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
    bits = encode_input(net, x)
    assert np.array_equal(cn.counts(bits, encoded=True), ref)
    assert np.array_equal(cn.counts(bits.astype(bool)), ref)
    assert np.array_equal(cn.counts(_packed(bits), packed=True, threads=2), ref)
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


def test_runner_counts_raw_images_through_the_c_encoder(compiled):
    """CRunner.counts_images (the path `difflogic bench` times): uint8 images, thresholds in
    C, == the PyTorch hard forward and the runner's own encoded-bits path; wrong dtypes and a
    netlist without an encoder are refused."""
    model, net, _ = next((m, n, c) for m, n, c in compiled.values() if n.encoder is not None)
    runner = cbe.BACKEND.load(net, opt_level=1)
    xu = (random_input(model, 203, seed=4) * 255).round().to(torch.uint8).numpy()
    ref = hard_counts(model, torch.as_tensor(xu))
    for threads in (1, 2):
        got = runner.counts_images(xu, threads=threads)
        assert got.dtype == np.int64 and np.array_equal(got, ref), threads
    assert np.array_equal(runner.counts(encode_input(net, xu)), ref)
    assert np.array_equal(runner.counts_images(xu.astype(np.float32) / np.float32(255)), ref)
    with pytest.raises(TypeError, match="inputs must be uint8 images or float32 values"):
        runner.counts_images(xu.astype(np.int16))
    with pytest.raises(ValueError, match="must have shape"):
        runner.counts_images(xu[..., :-1])
    bare = ir.Netlist(net.input_shape, net.ops, net.head)   # no encoder
    with pytest.raises(ValueError, match="no input encoder"):
        cbe.BACKEND.load(bare, opt_level=1).counts_images(xu)


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
    assert np.array_equal(cbe.BACKEND.run(net, bits, opt_level=1, table_gates=0), ref)   # the table form


def _thresholds_model(layers, in_shape, thresholds, seed=0):
    """A LogicNet whose first layer is a Thresholds layer of any finite thresholds."""
    torch.manual_seed(seed)
    model = dl.LogicNet({"input_shape": list(in_shape), "init": "gaussian", "layers": layers})
    model[0] = dl.Thresholds(thresholds, unit_range=False)
    return model.eval()


def _edge_floats(thr: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Float32 values at, just above and just below each threshold, +-0, and random ones."""
    t = thr.astype(np.float32).reshape(-1)
    vals = np.concatenate([t, np.nextafter(t, np.float32(np.inf)), np.nextafter(t, np.float32(-np.inf)),
                           np.float32([0.0, -0.0, 1e-38, -1e-38, 1e30, -1e30])])
    rng = np.random.default_rng(seed)
    return rng.choice(vals, n).astype(np.float32)


@pytest.mark.parametrize("isa", list(ISAS))
def test_float32_inputs_compare_exactly_like_torch(isa):
    """The float32 form thermometer-encodes in C: x > threshold exactly as PyTorch's float32
    compare, at and next to every threshold, for (C,) and (C, H, W) inputs."""
    thr_dense = np.float32([[-1.5, 0.1, 0.1, 7.25], [0.3333333, 1e-7, 2.0, 1e6], [0.0, -0.0, 0.5, 0.75]])
    dense = _thresholds_model([{"type": "thresholds", "num": 4}, {"type": "dense", "out_features": 24},
                               {"type": "group_sum", "k": 3, "tau": 1}], (3,), thr_dense)
    thr_conv = np.float32([[0.1, 0.2, 0.30000001], [0.5, 0.5, 0.9]])
    conv = _thresholds_model([{"type": "thresholds", "num": 3},
                              {"type": "conv", "out_channels": 4, "kernel_size": 3, "depth": 2, "padding": 1},
                              {"type": "flatten"}, {"type": "group_sum", "k": 2, "tau": 1}], (2, 5, 6), thr_conv)
    for model, thr in ((dense, thr_dense), (conv, thr_conv)):
        cn = cbe.CompiledNet(model, opt_level=1, extra_flags=ISAS[isa])
        shape = tuple(model.input_shape)
        for n in (1, 70, 600):
            x = _edge_floats(thr, n * int(np.prod(shape)), n).reshape(n, *shape)
            ref = hard_counts(model, torch.as_tensor(x))
            assert np.array_equal(cn.counts(x, threads=2), ref), (isa, shape, n)
            assert np.array_equal(cn.counts(torch.as_tensor(x)), ref)


@pytest.mark.parametrize("isa", list(ISAS))
def test_uint8_encoder_modes_cover_every_pixel_value(isa):
    """Channel 0 has 15 uniform thresholds (bit planes + comparator gates), channel 1 one odd
    threshold (a direct compare), channel 2 thresholds that are constant (never / always):
    all 256 pixel values of every channel, every word width, equal to the hard forward."""
    thr = np.float32([[(t + 1) / 16 for t in range(15)],
                      [0.123] + [0.999] * 14,
                      [-1.0, 1.0, 0.0] + [0.5] * 12])
    model = _thresholds_model([{"type": "thresholds", "num": 15},
                               {"type": "conv", "out_channels": 12, "kernel_size": 1, "depth": 3},
                               {"type": "flatten"}, {"type": "group_sum", "k": 3, "tau": 1}], (3, 4, 4), thr, seed=3)
    x = np.stack([np.roll(np.arange(256, dtype=np.uint8), s) for s in range(48)], 1).reshape(256, 3, 4, 4)
    ref = hard_counts(model, torch.as_tensor(x))
    for lanes in (None, 1, 8):
        cn = cbe.CompiledNet(model, opt_level=1, lanes=lanes, extra_flags=ISAS[isa])
        assert np.array_equal(cn.counts(x, threads=2), ref), (isa, lanes)
    src = cn.source
    assert "_planes(" in src and "dl_ge_word(col, " in src   # both encoder kinds were generated


@pytest.mark.parametrize("isa", list(ISAS))
def test_bit_forms_on_every_isa(isa, deep_dense):
    """0/1 bytes, bool and packed bits through each instruction set's packer (600 inputs:
    a partial 64-feature chunk, more than one span of some packers)."""
    model, net = deep_dense
    cn = cbe.CompiledNet(net, opt_level=1, extra_flags=ISAS[isa])
    for n in (1, 9, 300, 1100):
        bits = np.random.default_rng(n).integers(0, 2, (n, 600), dtype=np.uint8)
        ref = hard_counts(model, torch.as_tensor(bits, dtype=torch.float32))
        assert np.array_equal(cn.counts(bits, encoded=True, threads=2), ref), n
        assert np.array_equal(cn.counts(bits.astype(bool)), ref), n
        assert np.array_equal(cn.counts(_packed(bits), packed=True), ref), n


def test_bad_input_values_are_refused_by_every_form(compiled):
    """Bytes other than 0/1 and non-finite floats: the same one-line errors as the numpy
    checks, whichever block or thread meets them."""
    model, net, cn = compiled[SEEDS[0]]
    bits = encode_input(net, random_input(model, 700, seed=1))
    read = np.flatnonzero(cbe._used_features(net))
    for row, f in ((0, read[-1]), (699, read[0])):
        bad = bits.copy()
        bad.reshape(700, -1)[row, f] = 2
        with pytest.raises(ValueError, match="bits must contain only 0 and 1"):
            cn.counts(bad, encoded=True, threads=2)
    with pytest.raises(ValueError, match=r"packed bits must be uint8 of shape \(N, "):
        cn.counts(_packed(bits)[:, :-1], packed=True)
    with pytest.raises(ValueError, match="packed bits must be uint8"):
        cn.counts(_packed(bits).astype(np.int16), packed=True)
    if net.encoder is not None:
        x = random_input(model, 700, seed=2).numpy()
        for v in (np.nan, np.inf, -np.inf):
            bad = x.copy()
            bad.reshape(700, -1)[650, 3] = v
            with pytest.raises(ValueError, match="NaN or inf"):
                cn.counts(bad, threads=2)
        with pytest.raises(ValueError, match="x must have shape"):
            cn.counts(x[..., :-1])


def test_unread_input_features_are_skipped_by_the_bit_packer():
    """Thresholds the first layer never reads are not packed from 0/1 bytes or packed bits:
    whatever they hold, the counts are the hard forward's (and they are not checked for 0/1)."""
    torch.manual_seed(3)
    model = dl.LogicNet({"input_shape": [2, 8, 8], "init": "gaussian", "layers": [
        {"type": "thresholds", "num": 4}, {"type": "conv", "out_channels": 6, "kernel_size": 3, "depth": 2},
        {"type": "flatten"}, {"type": "group_sum", "k": 2, "tau": 1}]})
    net = compile_model(model)
    read = cbe._used_features(net)
    assert 0 < read.sum() < read.size, "the test needs a network that skips some thresholds"
    x = random_input(model, 300, seed=5)
    bits = encode_input(net, x)
    junk = bits.copy().reshape(300, -1)
    junk[:, ~read] = 7
    cn = cbe.CompiledNet(net, opt_level=1)
    ref = hard_counts(model, x)
    for b in (bits, junk.reshape(bits.shape)):
        assert np.array_equal(cn.counts(b, encoded=True, threads=2), ref)
    flipped = bits.copy().reshape(300, -1)
    flipped[:, ~read] ^= 1   # packed bits: the unread ones are not unpacked at all
    assert np.array_equal(cn.counts(_packed(flipped), packed=True, threads=2), ref)


def test_c_entry_points_report_bad_values_and_missing_encoder(tmp_path):
    """The C API itself: -4 for a byte other than 0/1 or a NaN, -3 for _u8 / _f32 without an
    encoder, through the exported library."""
    import ctypes
    torch.manual_seed(0)
    enc = dl.get_model("mnist-tiny", init="gaussian")
    plain = torch.nn.Sequential(dl.LogicLayer(16, 32, device="cpu"), dl.GroupSum(4, tau=1)).eval()
    for model, has_enc in ((enc, True), (plain, False)):
        cn = cbe.CompiledNet(model, opt_level=1)
        lib = ctypes.CDLL(str(cn.so_path))
        for form in ("bits", "f32", "u8"):
            getattr(lib, f"dl_scores_{form}").argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_int]
        n_in = cn.netlist.n_inputs
        out = np.zeros((3, cn.netlist.head.k), np.int32)
        bits = np.ones((3, n_in), np.uint8)
        bits[2, 5] = 7
        assert lib.dl_scores_bits(bits.ctypes.data, ctypes.c_size_t(3), out.ctypes.data, 1) == -4
        if has_enc:
            x = np.full((3, 1, 28, 28), 0.5, np.float32)
            x[1, 0, 3, 3] = np.nan
            assert lib.dl_scores_f32(x.ctypes.data, ctypes.c_size_t(3), out.ctypes.data, 1) == -4
        else:
            x = np.zeros(3, np.float32)
            assert lib.dl_scores_f32(x.ctypes.data, ctypes.c_size_t(3), out.ctypes.data, 1) == -3
            assert lib.dl_scores_u8(x.ctypes.data, ctypes.c_size_t(3), out.ctypes.data, 1) == -3


def test_export_bench_runs_every_input_form(tmp_path):
    torch.manual_seed(0)
    model = dl.get_model("mnist-tiny", init="gaussian")
    files = cbe.export(compile_model(model), tmp_path / "out")
    cc = cbe.find_compiler()
    r = subprocess.run([cc, "-O1", "-std=gnu99", "-pthread", "-o", str(tmp_path / "bench"), files["bench_main.c"],
                        files["net.c"]], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    sums = set()
    for form in ("u8", "f32", "bits", "packed"):
        r = subprocess.run([str(tmp_path / "bench"), "600", "2", "2", form], capture_output=True, text=True)
        assert r.returncode == 0 and f"({form})" in r.stdout and "images/s" in r.stdout, r.stdout + r.stderr
        sums.add(r.stdout.split("checksum ")[1])
    assert len(sums) == 4   # different random inputs per form: not one result printed four times
    r = subprocess.run([str(tmp_path / "bench"), "10", "1", "1", "hex"], capture_output=True, text=True)
    assert r.returncode == 2 and "form must be" in r.stderr
