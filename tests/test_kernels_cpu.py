"""Native CPU kernels (difflogic._C via difflogic.kernels) against the PyTorch references.

Forward values, input gradients and coefficient gradients must match difflogic.functional in
float32 (~1e-5) and float64 (~1e-12) over odd shapes, strides, paddings, kernel shapes, tree
depths, pool sizes and channel counts; float64 gradcheck on small shapes; hard (uint8) kernels
must equal both the torch fallback and the relaxed kernels with one-hot gate coefficients.
"""
from __future__ import annotations

import pytest
import torch

from difflogic import gates, kernels
from difflogic import functional as F

native = pytest.mark.skipif(not kernels.native_available(),
                            reason="difflogic._C is not built (pip install . or the cmake dev build)")

TOL = {torch.float32: dict(rtol=1e-5, atol=1e-5), torch.float64: dict(rtol=1e-12, atol=1e-12)}


def relaxed_coeffs(shape, dtype, gen):
    """Coefficients of random gate distributions (what the layers feed the kernels)."""
    logits = torch.randn(*shape, 16, generator=gen, dtype=torch.float64) * 2
    return F.gate_coefficients(logits).to(dtype)


def grads(fn, x, coeffs, gy):
    x = x.detach().clone().requires_grad_(True)
    c = coeffs.detach().clone().requires_grad_(True)
    y = fn(x, c)
    gx, gc = torch.autograd.grad(y, (x, c), gy)
    return y.detach(), gx, gc


def rand_wiring(n_in, n_out, gen, same_every=0):
    a = torch.randint(0, n_in, (n_out,), generator=gen)
    b = torch.randint(0, n_in, (n_out,), generator=gen)
    if same_every:
        b[::same_every] = a[::same_every]  # a == b: both partial derivatives hit one input
    return a, b


def rand_leaves(C, K, L, kh, kw, gen):
    return (torch.randint(0, C, (K, L), generator=gen), torch.randint(0, kh, (K, L), generator=gen),
            torch.randint(0, kw, (K, L), generator=gen))


# ----------------------------------------------------------------------------- dense
@native
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("N,n_in,n_out", [(1, 2, 1), (7, 5, 13), (33, 64, 100), (130, 300, 517)])
def test_dense_matches_reference(dtype, N, n_in, n_out):
    gen = torch.Generator().manual_seed(N * 1000 + n_out)
    x = torch.rand(N, n_in, generator=gen, dtype=torch.float64).to(dtype)
    a, b = rand_wiring(n_in, n_out, gen, same_every=3)
    c = relaxed_coeffs((n_out,), dtype, gen)
    gy = torch.randn(N, n_out, generator=gen, dtype=torch.float64).to(dtype)
    got = grads(lambda x, c: kernels.dense(x, a, b, c, backend="native"), x, c, gy)
    ref = grads(lambda x, c: F.dense_reference(x, a, b, c), x, c, gy)
    for g, r, name in zip(got, ref, ("y", "grad_x", "grad_coeffs")):
        torch.testing.assert_close(g, r, **TOL[dtype], msg=lambda m: f"{name}: {m}")


@native
def test_dense_gradcheck_float64_with_repeated_inputs():
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(4, 6, generator=gen, dtype=torch.float64, requires_grad=True)
    a, b = rand_wiring(6, 9, gen, same_every=2)
    c = torch.randn(9, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, c: kernels.dense(x, a, b, c, backend="native"), (x, c))


@native
def test_dense_grad_of_coeffs_only():
    """x without requires_grad: the kernel skips grad_x; coeff grads still right."""
    gen = torch.Generator().manual_seed(2)
    x = torch.rand(5, 8, generator=gen)
    a, b = rand_wiring(8, 6, gen)
    c = relaxed_coeffs((6,), torch.float32, gen).requires_grad_(True)
    (g1,) = torch.autograd.grad(kernels.dense(x, a, b, c, backend="native").sum(), c)
    (g2,) = torch.autograd.grad(F.dense_reference(x, a, b, c).sum(), c)
    torch.testing.assert_close(g1, g2, **TOL[torch.float32])


@native
def test_dense_feature_major_chain_and_layouts():
    """The native dense op returns (N, out) tensors with strides (1, N) (its kernels are
    feature-major) and takes them as input without a copy; a chain of layers, a row-major
    input, a non-contiguous input and an expanded (stride-0) gradient must all match the
    reference."""
    gen = torch.Generator().manual_seed(3)
    N, sizes = 37, (50, 80, 64, 20)
    wires = [rand_wiring(i, o, gen, same_every=5) for i, o in zip(sizes[:-1], sizes[1:])]
    cs = [relaxed_coeffs((o,), torch.float64, gen) for o in sizes[1:]]
    x0 = torch.rand(N, 2 * sizes[0], generator=gen, dtype=torch.float64)[:, ::2]  # non-contiguous

    def run(impl):
        x = x0.clone().requires_grad_(True)
        c = [t.clone().requires_grad_(True) for t in cs]
        h = x
        for (a, b), ci in zip(wires, c):
            h = impl(h, a, b, ci)
        loss = h.sum(0)  # backward hands the last layer an expanded (stride 0) gradient
        (loss * torch.arange(1.0, sizes[-1] + 1, dtype=torch.float64)).sum().backward()
        return h, x.grad, [ci.grad for ci in c]

    y, gx, gc = run(lambda h, a, b, c: kernels.dense(h, a, b, c, backend="native"))
    y_r, gx_r, gc_r = run(F.dense_reference)
    assert y.shape == (N, sizes[-1]) and y.stride() == (1, N)
    torch.testing.assert_close(y, y_r, **TOL[torch.float64])
    torch.testing.assert_close(gx, gx_r, **TOL[torch.float64])
    for g, r in zip(gc, gc_r):
        torch.testing.assert_close(g, r, **TOL[torch.float64])
    # row-major input (a fresh contiguous tensor): same values
    xr = x0.contiguous()
    torch.testing.assert_close(kernels.dense(xr, *wires[0], cs[0], backend="native"),
                               F.dense_reference(xr, *wires[0], cs[0]), **TOL[torch.float64])


@native
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dense_results_do_not_depend_on_thread_count(monkeypatch, dtype):
    """The backward splits batch 200 into three column blocks (>= 64 samples each, a ragged
    tail) whatever the thread count: 1, 2 and 3 threads give the same bits, and the
    reference's values."""
    monkeypatch.setattr(kernels, "SERIAL_WORK", 0)
    gen = torch.Generator().manual_seed(4)
    N, n_in, n_out = 200, 96, 150
    x = torch.rand(N, n_in, generator=gen, dtype=torch.float64).to(dtype)
    a, b = rand_wiring(n_in, n_out, gen, same_every=4)
    c = relaxed_coeffs((n_out,), dtype, gen)
    gy = torch.randn(N, n_out, generator=gen, dtype=torch.float64).to(dtype)
    ref = grads(lambda x, c: F.dense_reference(x, a, b, c), x, c, gy)
    old = torch.get_num_threads()
    try:
        runs = []
        for nt in (1, 2, 3):
            torch.set_num_threads(nt)
            got = grads(lambda x, c: kernels.dense(x, a, b, c, backend="native"), x, c, gy)
            for g, r, name in zip(got, ref, ("y", "grad_x", "grad_coeffs")):
                torch.testing.assert_close(g, r, **TOL[dtype], msg=lambda m: f"{nt} threads, {name}: {m}")
            runs.append(got)
    finally:
        torch.set_num_threads(old)
    for got in runs[1:]:
        assert all(torch.equal(g, r) for g, r in zip(got, runs[0]))


@native
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("N", [1, 16, 32, 64, 100])
def test_small_batch_dense_backward_is_bit_identical_on_any_thread_count(monkeypatch, dtype, N):
    """A batch too small for two column blocks is shared by the threads two ways (each gate's
    sums over the whole batch by one thread, each thread's columns of the input gradient, gates
    in order): bit for bit the one-thread result, which is what lets a run change its thread
    count without changing its numbers."""
    monkeypatch.setattr(kernels, "SERIAL_WORK", 0)
    gen = torch.Generator().manual_seed(N)
    n_in, n_out = 300, 2000
    x = torch.rand(N, n_in, generator=gen, dtype=torch.float64).to(dtype)
    a, b = rand_wiring(n_in, n_out, gen, same_every=5)
    c = relaxed_coeffs((n_out,), dtype, gen)
    gy = torch.randn(N, n_out, generator=gen, dtype=torch.float64).to(dtype)
    old = torch.get_num_threads()
    try:
        runs = []
        for nt in (1, 2, 3):
            torch.set_num_threads(nt)
            runs.append(grads(lambda x, c: kernels.dense(x, a, b, c, backend="native"), x, c, gy))
    finally:
        torch.set_num_threads(old)
    for got in runs[1:]:
        for g, r, name in zip(got, runs[0], ("y", "grad_x", "grad_coeffs")):
            assert torch.equal(g, r), name
    ref = grads(lambda x, c: F.dense_reference(x, a, b, c), x, c, gy)
    for g, r in zip(runs[1], ref):
        torch.testing.assert_close(g, r, **TOL[dtype])


# ----------------------------------------------------------------------------- coefficients, group sum
def on_threads(fn, counts=(1, 2, 3)):
    """fn() run on each thread count (small-call shortcut off by the caller's monkeypatch)."""
    old = torch.get_num_threads()
    try:
        out = []
        for nt in counts:
            torch.set_num_threads(nt)
            out.append(fn())
        return out
    finally:
        torch.set_num_threads(old)


@native
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("G,K,J", [(1, 4, 4), (40_000, 4, 4), (700, 16, 4), (333, 4, 16), (50, 3, 5)])
def test_coeff_product_matches_matmul_on_any_thread_count(monkeypatch, dtype, G, K, J):
    """The native (G, K) @ (K, J) of the gate coefficients and its gradient: the values of
    ``p @ m``, the same bits on 1, 2 and 3 threads."""
    monkeypatch.setattr(kernels, "SERIAL_WORK", 0)
    gen = torch.Generator().manual_seed(G + K)
    p = torch.rand(G, K, generator=gen, dtype=torch.float64).to(dtype)
    m = torch.randn(K, J, generator=gen, dtype=torch.float64).to(dtype)
    g = torch.randn(G, J, generator=gen, dtype=torch.float64).to(dtype)

    def run(product):
        q = p.clone().requires_grad_(True)
        y = product(q, m)
        return y.detach(), torch.autograd.grad(y, q, g)[0]
    runs = on_threads(lambda: run(kernels.coeff_product))
    for got in runs[1:]:
        assert all(torch.equal(a, b) for a, b in zip(got, runs[0]))
    for a, b in zip(runs[0], run(lambda q, m: q @ m)):
        torch.testing.assert_close(a, b, **TOL[dtype])


@native
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("N,F_,k", [(2, 6, 3), (64, 20480, 10), (37, 500, 5)])
def test_group_sum_of_feature_major_input_matches_reference(monkeypatch, dtype, N, F_, k):
    """GroupSum of a dense layer's feature-major output: the reference's class scores, its
    gradient exactly, in the feature-major layout (the dense backward then needs no transpose),
    the same bits on any thread count."""
    monkeypatch.setattr(kernels, "SERIAL_WORK", 0)
    gen = torch.Generator().manual_seed(N + F_)
    xt = torch.rand(F_, N, generator=gen, dtype=torch.float64).to(dtype)
    g = torch.randn(N, k, generator=gen, dtype=torch.float64).to(dtype)

    def run(fn):
        x = xt.clone().requires_grad_(True)
        y = fn(x.t(), k, 30.0)
        return y.detach(), torch.autograd.grad(y, x, g)[0]
    runs = on_threads(lambda: run(kernels.group_sum))
    for got in runs[1:]:
        assert all(torch.equal(a, b) for a, b in zip(got, runs[0]))
    y, gx = runs[0]
    y_ref, gx_ref = run(F.group_sum)
    torch.testing.assert_close(y, y_ref, **TOL[dtype])
    assert torch.equal(gx, gx_ref) and gx.is_contiguous()


# ----------------------------------------------------------------------------- tree conv + pool
# (N, C, H, W, K, depth, (kh, kw), stride, padding, pool)
TREE_CASES = [
    (1, 1, 5, 5, 2, 1, (3, 3), 1, 0, 1),
    (2, 3, 7, 5, 4, 3, (3, 3), 1, 1, 2),
    (3, 2, 9, 8, 5, 2, (2, 3), 2, 2, 3),
    (1, 9, 6, 6, 3, 4, (5, 5), 1, 2, 1),
    (2, 4, 11, 10, 6, 3, (3, 3), 2, 1, 2),
    (4, 5, 8, 8, 7, 2, (5, 5), 1, 0, 2),
    (2, 7, 7, 9, 3, 4, (2, 3), 1, 1, 3),
    (3, 6, 10, 10, 4, 1, (3, 3), 2, 0, 1),
    (2, 8, 16, 16, 8, 3, (3, 3), 1, 1, 2),
    (17, 4, 16, 16, 8, 3, (3, 3), 1, 1, 2),  # big enough for the multi-threaded paths
]


def check_tree_native_matches_reference(x, leaves, coeffs, geom, gen):
    """The native tree conv + pool against the PyTorch reference in x's dtype: the output and
    both gradients, for one random upstream gradient drawn from gen."""
    dtype = x.dtype
    ref_fn = lambda x, c: F.tree_conv_pool_reference(x, *leaves, c, *geom)  # noqa: E731
    nat_fn = lambda x, c: kernels.tree_conv_pool(x, *leaves, c, *geom, backend="native")  # noqa: E731
    y_ref = ref_fn(x, coeffs)
    gy = torch.randn(y_ref.shape, generator=gen, dtype=torch.float64).to(dtype)
    got = grads(nat_fn, x, coeffs, gy)
    ref = grads(ref_fn, x, coeffs, gy)
    assert got[0].shape == y_ref.shape
    for g, r, name in zip(got, ref, ("y", "grad_x", "grad_coeffs")):
        torch.testing.assert_close(g, r, **TOL[dtype], msg=lambda m: f"{name}: {m}")


def _tree_id(case):
    N, C, H, W, K, d, k, s, p, pool = case
    return f"N{N}C{C}_{H}x{W}_K{K}d{d}_k{k[0]}x{k[1]}s{s}p{p}pool{pool}"


@native
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("case", TREE_CASES, ids=_tree_id)
def test_tree_conv_pool_matches_reference(dtype, case):
    N, C, H, W, K, depth, ks, stride, padding, pool = case
    L = 2 ** depth
    gen = torch.Generator().manual_seed(hash(case) % 2**31)
    x = torch.rand(N, C, H, W, generator=gen, dtype=torch.float64).to(dtype)
    leaves = rand_leaves(C, K, L, *ks, gen)
    c = relaxed_coeffs((K, L - 1), dtype, gen)
    check_tree_native_matches_reference(x, leaves, c, (ks, stride, padding, pool), gen)


@native
def test_tree_conv_depth5_and_large_pool():
    gen = torch.Generator().manual_seed(5)
    x = torch.rand(2, 3, 9, 9, generator=gen, dtype=torch.float64)
    leaves = rand_leaves(3, 2, 32, 3, 3, gen)
    c = relaxed_coeffs((2, 31), torch.float64, gen)
    for pool in (1, 4, 7):
        geom = ((3, 3), 1, 1, pool)
        check_tree_native_matches_reference(x, leaves, c, geom, gen)


@native
def test_tree_conv_pool_ties_go_to_first_maximum():
    """Constant input: every pool window is one big tie; the gradient must reach the first
    (row-major) position, as with max_pool2d, in forward and backward."""
    gen = torch.Generator().manual_seed(6)
    x = torch.full((2, 2, 6, 6), 0.5, dtype=torch.float64)
    leaves = rand_leaves(2, 3, 4, 3, 3, gen)
    c = relaxed_coeffs((3, 3), torch.float64, gen)
    for padding in (0, 1):
        geom = ((3, 3), 1, padding, 2)
        check_tree_native_matches_reference(x, leaves, c, geom, gen)


@native
@pytest.mark.parametrize("stride,padding,pool", [(1, 0, 2), (2, 0, 2), (1, 1, 1), (1, 0, 3)])
def test_tree_conv_pool_gradcheck_float64(stride, padding, pool):
    # padding 0 whenever pool > 1: zero padding creates exact ties, where max has no derivative
    gen = torch.Generator().manual_seed(7 + stride + 10 * padding + 100 * pool)
    x = torch.rand(1, 2, 7, 6, generator=gen, dtype=torch.float64, requires_grad=True)
    leaves = rand_leaves(2, 2, 4, 3, 2, gen)
    c = (torch.randn(2, 3, 4, generator=gen, dtype=torch.float64) * 0.5).requires_grad_(True)
    fn = lambda x, c: kernels.tree_conv_pool(x, *leaves, c, (3, 2), stride, padding, pool,  # noqa: E731
                                          backend="native")
    assert torch.autograd.gradcheck(fn, (x, c))


@native
def test_results_do_not_depend_on_thread_count(monkeypatch):
    monkeypatch.setattr(kernels, "SERIAL_WORK", 0)  # no serial shortcut for small calls
    gen = torch.Generator().manual_seed(8)
    x = torch.rand(5, 4, 8, 8, generator=gen, dtype=torch.float64)
    leaves = rand_leaves(4, 6, 8, 3, 3, gen)
    c = relaxed_coeffs((6, 7), torch.float64, gen)
    gy = torch.randn(5, 6, 4, 4, generator=gen, dtype=torch.float64)
    fn = lambda x, c: kernels.tree_conv_pool(x, *leaves, c, (3, 3), 1, 1, 2, backend="native")  # noqa: E731
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = grads(fn, x, c, gy)
        torch.set_num_threads(max(2, old))
        many = grads(fn, x, c, gy)
    finally:
        torch.set_num_threads(old)
    for g, r in zip(one, many):
        torch.testing.assert_close(g, r, **TOL[torch.float64])
    # batch 1 (< threads): the (n, k)-parallel forward path
    fn1 = lambda x: kernels.tree_conv_pool(x, *leaves, c, (3, 3), 1, 1, 2, backend="native")  # noqa: E731
    torch.testing.assert_close(fn1(x[:1]), F.tree_conv_pool_reference(x[:1], *leaves, c, (3, 3), 1, 1, 2),
                               **TOL[torch.float64])


# ----------------------------------------------------------------------------- hard kernels
def _without_native(monkeypatch):
    monkeypatch.setattr(kernels, "native_module", None)


def test_dense_hard_exhaustive_16_gates(monkeypatch):
    """Every gate on every input pair, native (if built) and torch fallback, vs gates.py."""
    x = torch.tensor([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=torch.uint8)
    a = torch.zeros(16, dtype=torch.long)
    b = torch.ones(16, dtype=torch.long)
    ops = torch.arange(16)
    expected = torch.as_tensor(gates.TRUTH_TABLES.T.copy())  # (input pair, gate)
    results = [kernels.dense_hard(x, a, b, ops)]
    _without_native(monkeypatch)
    results.append(kernels.dense_hard(x, a, b, ops))
    for y in results:
        assert y.dtype == torch.uint8
        assert torch.equal(y, expected)


@pytest.mark.parametrize("N,n_in,n_out", [(1, 3, 5), (37, 50, 211), (130, 64, 70)])
def test_dense_hard_matches_fallback_and_relaxed(monkeypatch, N, n_in, n_out):
    gen = torch.Generator().manual_seed(n_out)
    x = torch.randint(0, 2, (N, n_in), generator=gen, dtype=torch.uint8)
    a, b = rand_wiring(n_in, n_out, gen, same_every=4)
    ops = torch.randint(0, 16, (n_out,), generator=gen)
    y = kernels.dense_hard(x, a, b, ops)
    relaxed = F.dense_reference(x.double(), a, b, F.coeff_matrix(dtype=torch.float64)[ops])
    assert torch.equal(y, relaxed.to(torch.uint8)) and bool(((relaxed == 0) | (relaxed == 1)).all())
    if kernels.native_available():
        got_native_relaxed = kernels.dense(x.float(), a, b, F.coeff_matrix()[ops], backend="native")
        assert torch.equal(got_native_relaxed, relaxed.float())
    _without_native(monkeypatch)
    assert torch.equal(kernels.dense_hard(x, a, b, ops), y)
    assert torch.equal(kernels.dense_hard(x.bool(), a, b, ops), y)


def test_tree_hard_exhaustive_16_gates(monkeypatch):
    """Depth-1 trees with every gate, leaves at two pixels that take all four input pairs."""
    x = torch.tensor([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=torch.uint8).reshape(4, 1, 1, 2)
    K = 16
    leaf_c = torch.zeros(K, 2, dtype=torch.long)
    leaf_dy = torch.zeros(K, 2, dtype=torch.long)
    leaf_dx = torch.tensor([[0, 1]] * K)
    ops = torch.arange(16).reshape(K, 1)
    expected = torch.as_tensor(gates.TRUTH_TABLES.T.copy()).reshape(4, K, 1, 1)
    results = [kernels.tree_conv_pool_hard(x, leaf_c, leaf_dy, leaf_dx, ops, (1, 2), 1, 0, 1)]
    _without_native(monkeypatch)
    results.append(kernels.tree_conv_pool_hard(x, leaf_c, leaf_dy, leaf_dx, ops, (1, 2), 1, 0, 1))
    for y in results:
        assert torch.equal(y, expected)


@pytest.mark.parametrize("case", TREE_CASES + [(2, 3, 9, 9, 3, 5, (3, 3), 1, 1, 2)], ids=_tree_id)
def test_tree_hard_matches_fallback_and_relaxed(monkeypatch, case):
    N, C, H, W, K, depth, ks, stride, padding, pool = case
    L = 2 ** depth
    gen = torch.Generator().manual_seed(hash(case) % 2**31 + 1)
    x = torch.randint(0, 2, (N, C, H, W), generator=gen, dtype=torch.uint8)
    leaves = rand_leaves(C, K, L, *ks, gen)
    ops = torch.randint(0, 16, (K, L - 1), generator=gen)
    geom = (ks, stride, padding, pool)
    y = kernels.tree_conv_pool_hard(x, *leaves, ops, *geom)
    assert y.dtype == torch.uint8
    onehot64 = F.coeff_matrix(dtype=torch.float64)[ops]
    relaxed = F.tree_conv_pool_reference(x.double(), *leaves, onehot64, *geom)
    assert torch.equal(y, relaxed.to(torch.uint8)) and bool(((relaxed == 0) | (relaxed == 1)).all())
    if kernels.native_available():  # relaxed native kernel with one-hot coeffs is exact on {0,1}
        nat = kernels.tree_conv_pool(x.float(), *leaves, F.coeff_matrix()[ops], *geom, backend="native")
        assert torch.equal(nat, relaxed.float())
    _without_native(monkeypatch)
    assert torch.equal(kernels.tree_conv_pool_hard(x, *leaves, ops, *geom), y)


# ----------------------------------------------------------------------------- dispatch / errors
def test_torch_backend_and_auto_fallback_without_extension(monkeypatch):
    gen = torch.Generator().manual_seed(9)
    x = torch.rand(3, 6, generator=gen)
    a, b = rand_wiring(6, 4, gen)
    c = relaxed_coeffs((4,), torch.float32, gen)
    ref = F.dense_reference(x, a, b, c)
    torch.testing.assert_close(kernels.dense(x, a, b, c, backend="torch"), ref)
    _without_native(monkeypatch)
    assert not kernels.native_available()
    torch.testing.assert_close(kernels.dense(x, a, b, c), ref)
    with pytest.raises(RuntimeError, match="difflogic._C"):
        kernels.dense(x, a, b, c, backend="native")


@native
def test_auto_uses_reference_for_unsupported_dtype():
    x = torch.rand(2, 4, dtype=torch.bfloat16)
    a, b = torch.tensor([0, 1]), torch.tensor([2, 3])
    c = torch.rand(2, 4, dtype=torch.bfloat16)
    torch.testing.assert_close(kernels.dense(x, a, b, c), F.dense_reference(x, a, b, c))
    with pytest.raises(TypeError, match="float32/float64"):
        kernels.dense(x, a, b, c, backend="native")


@native
def test_bad_inputs_raise_clear_errors():
    x = torch.rand(2, 4)
    a, b = torch.tensor([0, 1]), torch.tensor([2, 3])
    c = torch.rand(2, 4)
    with pytest.raises(ValueError, match="backend"):
        kernels.dense(x, a, b, c, backend="cuda-please")
    with pytest.raises(ValueError, match=r"b\[0\] = 9 is out of range"):
        kernels.dense(x, a, torch.tensor([9, 3]), c, backend="native")
    with pytest.raises(TypeError, match="dtype"):
        kernels.dense(x, a, b, c.double(), backend="native")
    with pytest.raises(ValueError, match="coeffs must have shape"):
        kernels.dense(x, a, b, torch.rand(3, 4), backend="native")
    with pytest.raises(TypeError, match="integer"):
        kernels.dense(x, a.float(), b, c)
    xc = torch.rand(1, 2, 5, 5)
    lc, ly, lx = torch.zeros(3, 4, dtype=torch.long), torch.zeros(3, 4, dtype=torch.long), torch.zeros(3, 4, dtype=torch.long)
    cc = torch.rand(3, 3, 4)
    with pytest.raises(ValueError, match="leaf_dx"):
        kernels.tree_conv_pool(xc, lc, ly, lx + 3, cc, 3, 1, 0, 1, backend="native")
    with pytest.raises(ValueError, match="do not fit"):
        kernels.tree_conv_pool(xc, lc, ly, lx, cc, 3, 1, 0, 4, backend="native")
    with pytest.raises(ValueError, match="power of two"):
        kernels.tree_conv_pool(xc, torch.zeros(3, 3, dtype=torch.long), ly[:, :3], lx[:, :3], cc, 3, 1, 0, 1)
    with pytest.raises(ValueError, match="gate ids"):
        kernels.dense_hard(torch.zeros(2, 4, dtype=torch.uint8), a, b, torch.tensor([3, 16]))
    with pytest.raises(TypeError, match="uint8"):
        kernels.dense_hard(x, a, b, torch.tensor([3, 1]))


@native
def test_non_contiguous_inputs_are_handled():
    gen = torch.Generator().manual_seed(10)
    x = torch.rand(6, 8, generator=gen).t()  # (8, 6) non-contiguous
    a, b = rand_wiring(6, 5, gen)
    c = relaxed_coeffs((5,), torch.float32, gen)
    torch.testing.assert_close(kernels.dense(x, a, b, c, backend="native"), F.dense_reference(x, a, b, c))
    xc = torch.rand(3, 2, 6, 6, generator=gen).permute(0, 1, 3, 2)
    leaves = rand_leaves(2, 3, 4, 3, 3, gen)
    cc = relaxed_coeffs((3, 3), torch.float32, gen)
    torch.testing.assert_close(kernels.tree_conv_pool(xc, *leaves, cc, 3, 1, 1, 2, backend="native"),
                               F.tree_conv_pool_reference(xc, *leaves, cc, (3, 3), 1, 1, 2))
