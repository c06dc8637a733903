"""difflogic.kernels.cuda against the PyTorch references of difflogic.functional, and the
cuda-packed back end (difflogic.backends.cuda_packed) against the PyTorch hard forward.

Every test runs in two environments:
* ``gpu``: the real module on a CUDA device (skipped without torch CUDA + CuPy);
* ``emulated``: the same module and the same .cu sources on the CPU, the kernels compiled with
  g++ against a host emulation of the CUDA execution model (tests/test_cuda_harness.py) --
  checks kernel logic and the Python glue on machines without a GPU (skipped without g++).

Forward values must be bit-identical to the reference (the kernels evaluate each gate with
the reference's operation order and rounding); gradients match to dtype tolerance (atomics
and reductions sum in a different order).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import difflogic as dl
from difflogic import data
from difflogic import functional as F
from difflogic.backends import cuda_packed
from difflogic.backends.cuda_packed import PackedNet
from difflogic.compiler import compile, encode_input, hard_counts, lower_to_flat
from difflogic.layers import random_pairs, random_tree_leaves
from conftest import random_input, random_model


class Env:
    def __init__(self, name, cu, device):
        self.name, self.cu, self.device = name, cu, torch.device(device)

    def t(self, x):
        return x.to(self.device)


@pytest.fixture(scope="module", params=["gpu", "emulated"])
def env(request):
    if request.param == "gpu":
        if not torch.cuda.is_available():
            pytest.skip("no CUDA device (torch.cuda.is_available() is False)")
        try:
            import difflogic.kernels.cuda as cu
        except ImportError as e:
            pytest.skip(f"difflogic.kernels.cuda unavailable: {e}")
        return Env("gpu", cu, "cuda")
    sys.path.insert(0, str(Path(__file__).resolve().parent))  # any pytest import mode
    import test_cuda_harness as harness
    if harness.compiler() is None:
        pytest.skip("no C++ compiler for the host emulation of the CUDA kernels")
    return Env("emulated", harness.load_emulated_module(), "cpu")


def _coeffs(shape, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    return F.gate_coefficients(torch.randn(*shape, 16, generator=g, dtype=dtype))


def _hard(shape, seed):
    g = torch.Generator().manual_seed(seed)
    ops = torch.randint(0, 16, shape, generator=g)
    return ops, F.coeff_matrix(dtype=torch.float64)[ops]


# ----------------------------------------------------------------------------- dense
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("N,n_in,n_out", [(1, 5, 7), (7, 13, 40), (33, 6, 3)])
def test_dense_matches_reference(env, dtype, N, n_in, n_out):
    torch.manual_seed(N + n_in)
    a, b = random_pairs(n_in, n_out)
    b[0] = a[0]  # a neuron reading one input twice: two CSR entries for one input
    x = torch.rand(N, n_in, dtype=dtype)
    c = _coeffs((n_out,), dtype, N)
    xr, cr = x.clone().requires_grad_(), c.clone().requires_grad_()
    ref = F.dense_reference(xr, a, b, cr)
    xd, cd = env.t(x).requires_grad_(), env.t(c).requires_grad_()
    y = env.cu.dense(xd, env.t(a), env.t(b), cd)
    assert y.shape == (N, n_out) and y.dtype == dtype
    assert torch.equal(y.detach().cpu(), ref.detach())  # bit-identical forward
    gy = torch.randn(N, n_out, dtype=dtype)
    ref.backward(gy)
    y.backward(env.t(gy))
    torch.testing.assert_close(xd.grad.cpu(), xr.grad)
    torch.testing.assert_close(cd.grad.cpu(), cr.grad)


def test_dense_chain_uses_transposed_views(env):
    torch.manual_seed(1)
    a1, b1 = random_pairs(10, 24)
    a2, b2 = random_pairs(24, 8)
    x = torch.rand(5, 10)
    c1, c2 = _coeffs((24,), torch.float32, 1), _coeffs((8,), torch.float32, 2)
    ref = F.dense_reference(F.dense_reference(x, a1, b1, c1), a2, b2, c2)
    h = env.cu.dense(env.t(x), env.t(a1), env.t(b1), env.t(c1))
    y = env.cu.dense(h, env.t(a2), env.t(b2), env.t(c2))
    assert torch.equal(y.cpu(), ref)


def test_dense_gradcheck_float64(env):
    torch.manual_seed(2)
    a, b = random_pairs(6, 9)
    x = env.t(torch.rand(4, 6, dtype=torch.float64)).requires_grad_()
    c = env.t(_coeffs((9,), torch.float64, 3)).requires_grad_()
    A, B = env.t(a), env.t(b)
    assert torch.autograd.gradcheck(lambda x, c: env.cu.dense(x, A, B, c), (x, c))


def test_dense_hard_matches_reference(env):
    torch.manual_seed(3)
    a, b = random_pairs(11, 50)
    ops, hc = _hard((50,), 4)
    x = torch.randint(0, 2, (9, 11), dtype=torch.uint8)
    ref = F.dense_reference(x.double(), a, b, hc).to(torch.uint8)
    y = env.cu.dense_hard(env.t(x), env.t(a), env.t(b), env.t(ops.to(torch.uint8)))
    assert y.dtype == torch.uint8 and torch.equal(y.cpu(), ref)


def test_dense_bad_input(env):
    a, b = random_pairs(4, 3)
    with pytest.raises(TypeError):
        env.cu.dense(env.t(torch.rand(2, 4)), env.t(a), env.t(b), env.t(_coeffs((3,), torch.float64, 0)))
    with pytest.raises(ValueError, match="indices in"):
        env.cu.dense(env.t(torch.rand(2, 4)), env.t(a + 4), env.t(b), env.t(_coeffs((3,), torch.float32, 0)))


# ----------------------------------------------------------------------------- tree conv
TREE_CASES = [  # (N, C, H, W, K, kernel, depth, stride, padding, pool)
    (1, 3, 5, 5, 4, 3, 1, 1, 0, 1),
    (2, 3, 8, 7, 5, 3, 2, 1, 1, 2),
    (3, 4, 9, 9, 3, 3, 3, 2, 1, 2),
    (2, 2, 6, 6, 2, (2, 3), 4, 1, 0, 1),
    (1, 4, 7, 8, 3, 3, 3, 1, 1, 3),
    (2, 6, 6, 6, 2, 3, 5, 1, 1, 2),
]


def _tree_setup(case, dtype, seed):
    N, C, H, W, K, k, depth, stride, padding, pool = case
    kk = (k, k) if isinstance(k, int) else k
    torch.manual_seed(seed)
    lc, ly, lx = random_tree_leaves(C, K, kk, depth, 2, 1)
    x = torch.rand(N, C, H, W, dtype=dtype)
    c = _coeffs((K, 2 ** depth - 1), dtype, seed)
    return x, (lc, ly, lx), c, (kk, stride, padding, pool)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("case", TREE_CASES)
def test_tree_conv_pool_matches_reference(env, dtype, case):
    x, leaves, c, geom = _tree_setup(case, dtype, 7)
    xr, cr = x.clone().requires_grad_(), c.clone().requires_grad_()
    ref = F.tree_conv_pool_reference(xr, *leaves, cr, *geom)
    xd, cd = env.t(x).requires_grad_(), env.t(c).requires_grad_()
    y = env.cu.tree_conv_pool(xd, *map(env.t, leaves), cd, *geom)
    assert y.shape == ref.shape
    assert torch.equal(y.detach().cpu(), ref.detach())  # bit-identical, same argmax
    gy = torch.randn(ref.shape, dtype=dtype)
    ref.backward(gy)
    y.backward(env.t(gy))
    torch.testing.assert_close(xd.grad.cpu(), xr.grad)
    torch.testing.assert_close(cd.grad.cpu(), cr.grad)


def test_tree_conv_pool_ties_go_to_first_max(env):
    # constant input: every position of a window has the same value; gradient must reach the
    # leaves of the first (top-left) position only, as with torch max_pool2d
    x, leaves, c, geom = _tree_setup((1, 2, 6, 6, 2, 3, 2, 1, 0, 2), torch.float64, 3)
    x = torch.full_like(x, 0.5)
    xr = x.clone().requires_grad_()
    F.tree_conv_pool_reference(xr, *leaves, c, *geom).sum().backward()
    xd = env.t(x).requires_grad_()
    env.cu.tree_conv_pool(xd, *map(env.t, leaves), env.t(c), *geom).sum().backward()
    torch.testing.assert_close(xd.grad.cpu(), xr.grad)


def test_tree_conv_gradcheck_float64(env):
    x, leaves, c, geom = _tree_setup((2, 3, 6, 5, 2, 3, 2, 1, 1, 2), torch.float64, 5)
    xd, cd = env.t(x).requires_grad_(), env.t(c).requires_grad_()
    L = tuple(map(env.t, leaves))
    assert torch.autograd.gradcheck(lambda x, c: env.cu.tree_conv_pool(x, *L, c, *geom), (xd, cd))


@pytest.mark.parametrize("case", TREE_CASES)
def test_tree_conv_pool_hard_matches_reference(env, case):
    x, leaves, _, geom = _tree_setup(case, torch.float64, 11)
    K, G = leaves[0].shape[0], leaves[0].shape[1] - 1
    ops, hc = _hard((K, G), 12)
    xb = (x > 0.5).to(torch.uint8)
    ref = F.tree_conv_pool_reference(xb.double(), *leaves, hc, *geom).to(torch.uint8)
    y = env.cu.tree_conv_pool_hard(env.t(xb), *map(env.t, leaves), env.t(ops.to(torch.uint8)), *geom)
    assert y.dtype == torch.uint8 and torch.equal(y.cpu(), ref)


def test_tree_conv_half_runs_in_float32(env):
    x, leaves, c, geom = _tree_setup(TREE_CASES[1], torch.float32, 2)
    y = env.cu.tree_conv_pool(env.t(x.half()), *map(env.t, leaves), env.t(c.half()), *geom)
    ref = F.tree_conv_pool_reference(x.half().float(), *leaves, c.half().float(), *geom).half()
    assert y.dtype == torch.float16 and torch.equal(y.cpu(), ref)


# ----------------------------------------------------------------------------- bit-packed
@pytest.mark.parametrize("bits", [32, 64])
def test_pack_unpack_roundtrip(env, bits):
    x = torch.randint(0, 2, (70, 3, 2, 5), dtype=torch.uint8)
    w = env.cu.pack_bits(env.t(x), bits)
    assert w.shape == (30, -(-70 // bits))
    assert torch.equal(env.cu.unpack_bits(w, 70).cpu(), x.reshape(70, -1))


@pytest.mark.parametrize("bits", [32, 64])
def test_packed_layers_match_hard_kernels(env, bits):
    torch.manual_seed(4)
    N = 45
    x = torch.randint(0, 2, (N, 3, 7, 6), dtype=torch.uint8)
    _, leaves, _, geom = _tree_setup((N, 3, 7, 6, 4, 3, 3, 1, 1, 2), torch.float32, 6)
    ops, hc = _hard((4, 7), 8)
    w = env.cu.pack_bits(env.t(x), bits)
    wc = env.cu.tree_conv_pool_packed(w, (3, 7, 6), *map(env.t, leaves), env.t(ops), *geom)
    ref = F.tree_conv_pool_reference(x.double(), *leaves, hc, *geom).to(torch.uint8)
    assert torch.equal(env.cu.unpack_bits(wc, N).cpu(), ref.reshape(N, -1))
    wp = env.cu.or_pool_packed(w, (3, 7, 6), 2)
    assert torch.equal(env.cu.unpack_bits(wp, N).cpu(), F.or_pool_reference(x.float(), 2).to(torch.uint8).reshape(N, -1))
    a, b = random_pairs(wc.shape[0], 60)
    dops, dhc = _hard((60,), 9)
    wd = env.cu.dense_packed(wc, env.t(a), env.t(b), env.t(dops))
    dref = F.dense_reference(ref.reshape(N, -1).double(), a, b, dhc).to(torch.uint8)
    assert torch.equal(env.cu.unpack_bits(wd, N).cpu(), dref)
    counts = env.cu.group_sum_packed(wd, 5, N)
    assert counts.dtype == torch.int32
    assert torch.equal(counts.cpu(), dref.reshape(N, 5, 12).sum(-1).to(torch.int32))


def tiny_net():
    cfg = {"name": "cuda-tiny", "input_shape": [2, 8, 8], "num_classes": 4, "init": "gaussian",
           "layers": [{"type": "thresholds", "thresholds": [0.3, 0.6]},
                      {"type": "conv", "out_channels": 6, "kernel_size": 3, "depth": 3, "padding": 1,
                       "channels_per_tree": 2, "groups": 1, "or_pool": 2},
                      {"type": "conv", "out_channels": 8, "kernel_size": 3, "depth": 2, "padding": 1,
                       "channels_per_tree": 2, "groups": 2, "or_pool": 1},
                      {"type": "or_pool", "kernel_size": 2},
                      {"type": "flatten"},
                      {"type": "dense", "out_features": 48},
                      {"type": "dense", "out_features": 40},
                      {"type": "group_sum", "k": 4, "tau": 3.0}]}
    torch.manual_seed(0)
    return dl.LogicNet(cfg)


@pytest.mark.parametrize("bits", [32, 64])
def test_packed_net_equals_eval_model(env, bits):
    model = tiny_net().eval()
    x = torch.rand(37, 2, 8, 8)
    with torch.no_grad():
        ref = model(x)  # CPU hard path
    net = PackedNet(model.to(env.device), word_bits=bits, kernels_module=env.cu)
    out = net(env.t(x))
    assert torch.equal(out.cpu(), ref)
    assert torch.equal(net.counts(env.t(x)).cpu().float(), ref * 3.0)


# ----------------------------------------------------------------------------- cuda-packed back end
def _steps(net):
    return [s["kind"] for s in cuda_packed.plan(net)["steps"]]


@pytest.mark.parametrize("optimize", [False, True], ids=["hardened", "optimized"])
def test_cuda_packed_runner_equals_hard_forward(env, optimize):
    """The netlist on the packed kernels == the PyTorch hard forward, bit for bit: hardened
    (fused tree kernels + one-launch dense layers) and optimized (levelled cells)."""
    model = tiny_net()
    net = compile(model, optimize=optimize)
    kinds = _steps(net)
    if optimize:
        assert "cell" in kinds and "tree" not in kinds, kinds
    else:
        assert kinds == ["tree", "tree", "dense", "dense"], kinds  # the OR pools fused
    x = torch.rand(70, 2, 8, 8)
    bits = encode_input(net, x)
    for word_bits in (32, 64):
        runner = cuda_packed.BACKEND.load(net, word_bits, env.device, env.cu)
        got = runner.counts(bits)
        assert got.dtype == np.int64 and np.array_equal(got, hard_counts(model, x)), word_bits
        assert runner.compile_seconds > 0


@pytest.mark.parametrize("seed", [1, 2, 5, 7])
def test_cuda_packed_random_architectures(env, seed):
    """Random nets (strides, paddings, pools, depths, constant outputs, no encoder), optimized,
    unoptimized and lowered to one flat cell: every form equals the hard forward."""
    model = random_model(seed)
    x = random_input(model, 45, seed)
    ref = hard_counts(model, x)
    hard = compile(model, optimize=False)
    bits = encode_input(hard, x)
    for net in (hard, compile(hard), lower_to_flat(hard)):
        got = cuda_packed.BACKEND.run(net, bits, device=env.device, kernels_module=env.cu)
        assert np.array_equal(got, ref), _steps(net)


def test_cuda_packed_export_loads_without_the_model(env, tmp_path):
    """emit() writes the program; load_program() runs it with no model or compiler."""
    model = tiny_net()
    net = compile(model)
    out = tmp_path / "gpu"
    (out / "keep.txt").parent.mkdir()
    (out / "keep.txt").write_text("mine")
    res = cuda_packed.BACKEND.emit(net, out)
    assert sorted(res["files"]) == ["packed_program.json", "packed_program.npz"]
    assert (out / "keep.txt").read_text() == "mine"
    x = torch.rand(33, 2, 8, 8)
    runner = cuda_packed.load_program(out, 64, env.device, env.cu)
    assert np.array_equal(runner.counts(encode_input(net, x)), hard_counts(model, x))
    with pytest.raises(ValueError, match="no readable cuda-packed export"):
        cuda_packed.load_program(tmp_path, 32, env.device, env.cu)


def test_cuda_packed_bad_input(env):
    net = compile(tiny_net())
    runner = cuda_packed.BACKEND.load(net, 32, env.device, env.cu)
    with pytest.raises(ValueError, match=r"bits must have shape \(N, 4, 8, 8\)"):
        runner.counts(np.zeros((3, 2, 8, 8), np.uint8))
    with pytest.raises(ValueError, match="only 0 and 1"):
        runner.counts(np.full((3, 4, 8, 8), 2, np.uint8))
    assert runner.counts(np.zeros((0, 4, 8, 8), np.uint8)).shape == (0, 4)
    with pytest.raises(ValueError, match="word_bits must be 32 or 64"):
        cuda_packed.BACKEND.load(net, 16, env.device, env.cu)


def test_class_scores_are_correctly_rounded_on_the_device(env):
    """counts / tau on the device == the correctly rounded quotient (float64 division rounded
    to float32 is exact for a quotient of two float32 values).  CUDA divides by a Python scalar
    as a multiply by the reciprocal: 5 / 3 came out 1 ulp high on an H200 (1.6666667), so the
    GPU's hard class scores differed from the CPU's and the C back end's."""
    n = torch.arange(300)
    bits = (n[None, :] < n[:, None]).to(torch.uint8).repeat(1, 10)  # row i: i ones per group
    for tau in (3.0, 7.3, 20.0, 1 / 3):
        tau32 = torch.tensor(tau, dtype=torch.float32).double()
        counts = torch.arange(3000).reshape(300, 10)
        want = (counts.double() / tau32).float()
        assert torch.equal(F.exact_div(env.t(counts), tau).cpu(), want), tau
        want = (n.double()[:, None].expand(300, 10) / tau32).float()
        assert torch.equal(dl.GroupSum(10, tau)(env.t(bits)).cpu(), want), tau  # the hard layer
    pixels = np.arange(256, dtype=np.uint8).reshape(1, 1, 16, 16)  # the loaders' x / 255, too
    want = (torch.arange(256, dtype=torch.float64) / 255).float().reshape(1, 1, 16, 16)
    assert torch.equal(data.to_unit_float(pixels, env.device).cpu(), want)


# ----------------------------------------------------------------------------- through the layers (GPU)
def test_layers_dispatch_to_cuda_kernels(env):
    if env.name != "gpu":
        pytest.skip("dispatch from difflogic.kernels to difflogic.kernels.cuda needs CUDA tensors")
    model = tiny_net().to(env.device).train()
    x = torch.rand(16, 2, 8, 8, device=env.device)
    before = dict(env.cu.calls)
    y = model(x)
    y.sum().backward()
    assert env.cu.calls["dense"] > before.get("dense", 0)
    assert env.cu.calls["tree_conv_pool"] > before.get("tree_conv_pool", 0)
    ref_model = tiny_net().train()
    ref_model.load_state_dict(model.cpu().state_dict())
    for m in ref_model.modules():
        if hasattr(m, "backend"):
            m.backend = "torch"
    torch.testing.assert_close(y.detach().cpu(), ref_model(x.cpu()))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("case", TREE_CASES + [(2, 1, 6, 6, 3, 3, 3, 1, 1, 2)])  # + one channel
def test_deterministic_backward_matches_the_atomic_one(env, dtype, case):
    """torch.use_deterministic_algorithms(True): the backward stores per-leaf gradients and
    per-block coefficient sums and sums them in a fixed order (no atomics), so two runs give
    the same bits; the values equal the atomic backward's and the reference's to rounding."""
    x, leaves, c, geom = _tree_setup(case, dtype, 7)
    gy = torch.randn(F.tree_conv_pool_reference(x, *leaves, c, *geom).shape, dtype=dtype)

    def grads():
        xd, cd = env.t(x.clone()).requires_grad_(), env.t(c.clone()).requires_grad_()
        env.cu.tree_conv_pool(xd, *map(env.t, leaves), cd, *geom).backward(env.t(gy))
        return xd.grad.cpu(), cd.grad.cpu()

    gx_atomic, gc_atomic = grads()
    before = env.cu.calls["tree_conv_pool"]
    was = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        (gx1, gc1), (gx2, gc2) = grads(), grads()
    finally:
        torch.use_deterministic_algorithms(was)
    assert env.cu.calls["tree_conv_pool"] == before + 2  # the fused kernels, not a fallback
    assert torch.equal(gx1, gx2) and torch.equal(gc1, gc2)
    torch.testing.assert_close(gx1, gx_atomic)
    torch.testing.assert_close(gc1, gc_atomic)
    xr, cr = x.clone().requires_grad_(), c.clone().requires_grad_()
    F.tree_conv_pool_reference(xr, *leaves, cr, *geom).backward(gy)
    torch.testing.assert_close(gx1, xr.grad)
    torch.testing.assert_close(gc1, cr.grad)


def test_tree_conv_large_pool_falls_back_exactly(env):
    # pool 17 exceeds the uint8 argmax: relaxed and hard paths use the PyTorch reference
    x, leaves, c, _ = _tree_setup((1, 2, 17, 17, 2, 1, 1, 1, 0, 1), torch.float32, 1)
    geom = ((1, 1), 1, 0, 17)
    y = env.cu.tree_conv_pool(env.t(x), *map(env.t, leaves), env.t(c), *geom)
    assert torch.equal(y.cpu(), F.tree_conv_pool_reference(x, *leaves, c, *geom))
    ops, hc = _hard((2, 1), 3)
    xb = (x > 0.5).to(torch.uint8)
    yh = env.cu.tree_conv_pool_hard(env.t(xb), *map(env.t, leaves), env.t(ops), *geom)
    assert torch.equal(yh.cpu(), F.tree_conv_pool_reference(xb.double(), *leaves, hc, *geom).to(torch.uint8))
