"""Plain PyTorch references for every kernel: slow, obviously right, differentiable.

The native kernels (``csrc/``, C++ and CUDA) are tested against these functions, forward
and backward.  They are also the fallback when no native kernel is available.

Conventions shared with the kernels
-----------------------------------
* ``coeffs`` are the per-neuron basis coefficients (c0, c1, c2, c3) of
  :data:`difflogic.gates.COEFFS` (see :func:`gate_coefficients`).
* Dense layer: ``y[n, j] = c0 + c1 x[n, a[j]] + c2 x[n, b[j]] + c3 x[n, a[j]] x[n, b[j]]``.
* Conv tree of depth ``d`` (``L = 2**d`` leaves, ``L - 1`` gates per output channel):
  leaf ``l`` of channel ``k`` reads ``xpad[n, leaf_c[k, l], s*i + leaf_dy[k, l], s*j + leaf_dx[k, l]]``
  where ``xpad`` is ``x`` zero-padded by ``padding`` on every side.  Gates are stored level by
  level: gates ``0 .. L/2-1`` read leaf pairs ``(2g, 2g+1)``; each next level reads pairs of
  the previous level's outputs; the last gate is the root.
* OR pool of size ``p`` (stride ``p``, floor mode): relaxed as max, hard as logical OR.  Ties
  go to the first maximum in row-major window order, as in ``torch.nn.functional.max_pool2d``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from . import gates

_COEFFS_CACHE: dict[tuple[torch.device, torch.dtype], torch.Tensor] = {}


def coeff_matrix(device=None, dtype=torch.float32) -> torch.Tensor:
    """The (16, 4) gate->basis matrix as a tensor (cached per device/dtype)."""
    key = (torch.device(device or "cpu"), dtype)
    m = _COEFFS_CACHE.get(key)
    if m is None:
        m = torch.as_tensor(gates.COEFFS, dtype=dtype, device=key[0])
        _COEFFS_CACHE[key] = m
    return m


def gate_coefficients(logits: torch.Tensor, hard: bool = False,
                      straight_through: bool = False, product=None) -> torch.Tensor:
    """(..., 16) logits -> (..., 4) basis coefficients.

    Relaxed: ``softmax(logits) @ COEFFS`` (differentiable).  Hard: the argmax gate's row,
    so the neuron computes exactly that gate (integer coefficients, exact on {0, 1}).
    ``straight_through`` (training only): the forward pass uses the hard rows while the
    gradient is that of the relaxed ones (straight-through estimator), so the loss sees the
    gates the exported network will use; it narrows the relaxed/hard gap (benches/RESULTS.md).
    ``product(p, m)`` computes ``p @ m`` (the layers pass the native kernel's).
    """
    m = coeff_matrix(logits.device, logits.dtype)
    if hard:
        return m[logits.argmax(-1)]
    p = torch.softmax(logits, -1).reshape(-1, gates.NUM_GATES)
    # (4, 16) @ (16, G) rather than (G, 16) @ (16, 4): the same products, but BLAS handles the
    # long-and-thin shape this way round several times faster
    soft = (product(p, m) if product is not None else _coeff_product(m.t(), p.t()).t())
    soft = soft.reshape(*logits.shape[:-1], 4)
    if straight_through:
        # hard + (soft - soft): exactly the hard rows (x - x == 0 in IEEE arithmetic, where
        # soft + (hard - soft) would round), with the relaxed rows' gradient
        return m[logits.detach().argmax(-1)] + (soft - soft.detach())
    return soft


class _OneThreadProduct(torch.autograd.Function):
    """``m @ p`` and its gradient on one CPU thread.  BLAS splits a product differently for
    different thread counts and so rounds differently; on one thread a run's numbers do not
    depend on how many threads it trains with (the product is small next to the kernels)."""

    @staticmethod
    def forward(ctx, m, p):
        ctx.save_for_backward(m)
        with _one_thread():
            return m @ p

    @staticmethod
    def backward(ctx, grad):
        (m,) = ctx.saved_tensors
        with _one_thread():
            return None, m.t() @ grad


class _one_thread:
    def __enter__(self):
        self.old = torch.get_num_threads()
        if self.old != 1:
            torch.set_num_threads(1)

    def __exit__(self, *exc):
        if self.old != 1:
            torch.set_num_threads(self.old)


def _coeff_product(m: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """``m @ p`` (constant ``m``), thread-count invariant on the CPU."""
    if p.device.type != "cpu":
        return m @ p
    return _OneThreadProduct.apply(m, p)


_TRUTH_CACHE: dict[tuple[torch.device, torch.dtype], tuple[torch.Tensor, torch.Tensor]] = {}


def _truth_matrices(device, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """(TRUTH_TO_COEFFS, TRUTH_BIT_WEIGHTS) as tensors (cached per device/dtype)."""
    key = (torch.device(device or "cpu"), dtype)
    t = _TRUTH_CACHE.get(key)
    if t is None:
        t = (torch.as_tensor(gates.TRUTH_TO_COEFFS, dtype=dtype, device=key[0]),
             torch.as_tensor(gates.TRUTH_BIT_WEIGHTS, device=key[0]))
        _TRUTH_CACHE[key] = t
    return t


def input_wise_ops(theta: torch.Tensor) -> torch.Tensor:
    """(..., 4) input-wise parameters -> (...,) hard gate ids (int64): the gate whose truth
    table is ``theta > 0``, i.e. every entry of ``sigmoid(theta)`` rounded."""
    _, bits = _truth_matrices(theta.device, theta.dtype)
    return ((theta > 0).long() * bits).sum(-1)


def input_wise_coefficients(theta: torch.Tensor, hard: bool = False,
                            straight_through: bool = False, product=None) -> torch.Tensor:
    """(..., 4) input-wise parameters -> (..., 4) basis coefficients.

    The input-wise parametrization (Ruettgers et al. 2025, "Light Differentiable Logic
    Gate Networks") learns a neuron's truth table directly: entry ``(a, b)`` of the relaxed
    table is ``sigmoid(theta[..., 2a + b])``, the probability that the gate outputs 1 on
    inputs ``(a, b)``, and the relaxed output is that table's multilinear extension,
    ``TRUTH_TO_COEFFS`` away from the kernels' 4 coefficients.  It spans the same cube of
    relaxed truth tables as ``softmax(logits) @ TRUTH_TABLES`` with 4 instead of 16 numbers
    per neuron and no redundant directions, which is why the paper sees faster convergence.
    Hard: every entry rounded (``theta > 0``), exactly one of the 16 gates.
    ``straight_through`` and ``product`` as in :func:`gate_coefficients`.
    """
    m, _ = _truth_matrices(theta.device, theta.dtype)
    if hard:
        return (theta > 0).to(theta.dtype) @ m
    p = torch.sigmoid(theta)
    soft = (p @ m if product is None else
            product(p.reshape(-1, 4), m).reshape(theta.shape))
    if straight_through:
        return (theta.detach() > 0).to(theta.dtype) @ m + (soft - soft.detach())
    return soft


def gumbel_noise(like: torch.Tensor, scale: float) -> torch.Tensor:
    """``scale`` x i.i.d. Gumbel(0, 1) samples shaped like ``like`` (from torch's global RNG,
    so a checkpointed RNG state replays them exactly).

    Added to gate logits in training (Yousefi et al. 2025, "Mind the Gap"): with
    straight-through selection, argmax(logits + noise) *samples* a gate from softmax(logits),
    so the loss sees the gates a hardened network could pick and the relaxed/hard gap closes.
    -log(-log U) with U ~ U(0, 1) is Gumbel(0, 1).  ``rand`` is in [0, 1): clamping 0 up to
    the smallest normal keeps both logs finite.  (``exponential_`` would give -log U
    directly, but it is 7x slower on the CPU: 21 vs 3 ms for 1M logits, 2 threads.)
    """
    u = torch.rand_like(like).clamp_(min=torch.finfo(like.dtype).tiny)
    return u.log_().neg_().log_().mul_(-float(scale))


def apply_coeffs(coeffs: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """c0 + c1 a + c2 b + c3 a b, with coeffs broadcast along the last axis of length 4."""
    c0, c1, c2, c3 = coeffs.unbind(-1)
    return c0 + c1 * a + c2 * b + c3 * a * b


def relaxed_gates_all16(probs: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The textbook relaxation: sum over all 16 gates of p_i * g_i(a, b) (probabilistic logic).

    Only used as the definition the 4-coefficient form is tested against and as the naive
    baseline of the benchmarks: it materialises 16 tensors.
    """
    ab = a * b
    exprs = (
        torch.zeros_like(a), ab, a - ab, a, b - ab, b, a + b - 2 * ab, a + b - ab,
        1 - (a + b - ab), 1 - (a + b - 2 * ab), 1 - b, 1 - b + ab, 1 - a, 1 - a + ab, 1 - ab,
        torch.ones_like(a),
    )
    p = probs.unbind(-1)
    return sum(pi * e for pi, e in zip(p, exprs))


# --------------------------------------------------------------------------- dense
def dense_reference(x: torch.Tensor, a: torch.Tensor, b: torch.Tensor, coeffs: torch.Tensor) -> torch.Tensor:
    """x (N, in), a/b (out,) int64, coeffs (out, 4) -> (N, out)."""
    return apply_coeffs(coeffs, x[:, a], x[:, b])


# --------------------------------------------------------------------------- conv tree
def conv_output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def gather_leaves(x: torch.Tensor, leaf_c, leaf_dy, leaf_dx, kernel_size, stride: int, padding: int):
    """x (N, C, H, W) -> leaves (N, K, L, Ho, Wo): every leaf at every output position."""
    kh, kw = kernel_size
    N, C, H, W = x.shape
    Ho = conv_output_size(H, kh, stride, padding)
    Wo = conv_output_size(W, kw, stride, padding)
    xp = F.pad(x, (padding, padding, padding, padding))
    rows = leaf_dy[..., None] + stride * torch.arange(Ho, device=x.device)  # (K, L, Ho)
    cols = leaf_dx[..., None] + stride * torch.arange(Wo, device=x.device)  # (K, L, Wo)
    return xp[:, leaf_c[..., None, None], rows[..., :, None], cols[..., None, :]]


def tree_reduce(leaves: torch.Tensor, coeffs: torch.Tensor) -> torch.Tensor:
    """Evaluate the gate tree.  leaves (N, K, L, ...); coeffs (K, L-1, 4) -> (N, K, ...)."""
    v = leaves
    g = 0
    extra = leaves.dim() - 3
    while v.shape[2] > 1:
        n = v.shape[2] // 2
        c = coeffs[:, g:g + n].reshape(coeffs.shape[0], n, *([1] * extra), 4)
        v = apply_coeffs(c, v[:, :, 0::2], v[:, :, 1::2])
        g += n
    return v[:, :, 0]


def tree_conv_reference(x, leaf_c, leaf_dy, leaf_dx, coeffs, kernel_size, stride=1, padding=0):
    """Logic-gate tree convolution (no pooling): (N, C, H, W) -> (N, K, Ho, Wo)."""
    return tree_reduce(gather_leaves(x, leaf_c, leaf_dy, leaf_dx, kernel_size, stride, padding), coeffs)


def or_pool_reference(x: torch.Tensor, size: int) -> torch.Tensor:
    """Relaxed OR pooling = max pooling (stride = size, floor mode).

    On {0, 1} inputs max is exactly logical OR, so this also serves the hard network.
    """
    if size == 1:
        return x
    return F.max_pool2d(x, size, size)


def tree_conv_pool_reference(x, leaf_c, leaf_dy, leaf_dx, coeffs, kernel_size, stride=1, padding=0, pool=1):
    """The fused block the native kernels implement: tree conv followed by OR pool."""
    return or_pool_reference(tree_conv_reference(x, leaf_c, leaf_dy, leaf_dx, coeffs, kernel_size, stride, padding), pool)


def tree_conv_pool_naive(x, leaf_c, leaf_dy, leaf_dx, logits, kernel_size, stride=1, padding=0, pool=1):
    """The straightforward baseline from the issue: every gate relaxed as the softmax-weighted
    sum of all 16 gate expressions, leaves gathered per position, then max pool.
    Memory-hungry by design; used only for the side-by-side benchmark."""
    leaves = gather_leaves(x, leaf_c, leaf_dy, leaf_dx, kernel_size, stride, padding)
    probs = torch.softmax(logits, -1)  # (K, L-1, 16)
    v, g, extra = leaves, 0, leaves.dim() - 3
    while v.shape[2] > 1:
        n = v.shape[2] // 2
        p = probs[:, g:g + n].reshape(probs.shape[0], n, *([1] * extra), 16)
        v = relaxed_gates_all16(p, v[:, :, 0::2], v[:, :, 1::2])
        g += n
    return or_pool_reference(v[:, :, 0], pool)


def dense_naive(x, a, b, logits):
    """Dense layer, naive 16-expression relaxation (benchmark baseline)."""
    return relaxed_gates_all16(torch.softmax(logits, -1), x[:, a], x[:, b])


def group_sum(x: torch.Tensor, k: int, tau: float) -> torch.Tensor:
    """(N, F) -> (N, k): sum of each of k consecutive groups of F/k outputs, divided by tau."""
    return exact_div(x.reshape(*x.shape[:-1], k, x.shape[-1] // k).sum(-1), tau)


def exact_div(x: torch.Tensor, divisor: float) -> torch.Tensor:
    """``x / divisor``, correctly rounded on every device (GroupSum's ``/ tau``, the loaders'
    ``/ 255``).

    Why not ``x / divisor`` with a Python number: on CUDA, PyTorch divides by a Python scalar
    as a multiplication by its reciprocal, which can be 1 ulp off the correctly rounded
    quotient the CPU (and the C back end) compute -- 5 / 3 in float32 is 1.6666666 on the CPU
    and 1.6666667 on an H200 -- so GPU class scores would not be bit-identical to CPU ones, and
    85 / 255 could land on the other side of a threshold of 1/3.  A divisor tensor on the same
    device takes the true-division kernel everywhere; on the CPU the values are the same as
    before.  Integer inputs are divided in float32 (exact for counts below 2**24)."""
    if not x.is_floating_point():
        x = x.float()
    if x.dtype in (torch.float16, torch.bfloat16):  # as PyTorch does: in float32, then round
        return exact_div(x.float(), divisor).to(x.dtype)
    return x / torch.full((), divisor, dtype=x.dtype, device=x.device)
