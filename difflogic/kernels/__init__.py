"""Kernel dispatch: native C++ (``difflogic._C``), CUDA (:mod:`difflogic.kernels.cuda`) or the
PyTorch reference.

The layers call only the kernels below (``dense``, ``tree_conv_pool``, their hard forms,
``group_sum``, ``coeff_product``); ``native_available``, ``native_info`` and
``cuda_unavailable_reason`` say which implementation runs.  ``backend`` selects the implementation:

* ``"auto"``  -- native kernels when the extension is importable and the tensors are on the CPU
  (float32/float64), the CUDA module for CUDA tensors when it is importable, else the plain
  PyTorch reference of :mod:`difflogic.functional` (always correct, slower, more memory);
* ``"native"`` -- the compiled kernels or a clear error saying why they cannot run;
* ``"torch"``  -- the reference.

The extension does not link libtorch (so ``pip install .`` needs no torch at build time): it
takes numpy views of contiguous CPU tensors (``tensor.numpy()`` shares memory) and writes into
output tensors preallocated here.  Wiring arrives as int64 and is handed over as int32.
The relaxed ops are ``torch.autograd.Function``s whose backward runs the native backward
kernel; the fused conv saves only the pooled output's argmax (uint8), never the full plane.
"""
from __future__ import annotations

import importlib

import torch
from torch.autograd.function import once_differentiable

from .. import functional as F
from .. import gates

try:
    from .. import _C as native_module  # type: ignore[attr-defined]
    native_error: Exception | None = None
except ImportError as e:  # not built: everything falls back to the PyTorch reference
    native_module = None
    native_error = e

BACKENDS = ("auto", "native", "torch")
#: Limits of the fused CUDA tree kernels (:mod:`.cuda`): tree depth (2**depth leaves) and OR-pool
#: size (the argmax is a uint8 window index); larger ones run the PyTorch reference there.
CUDA_MAX_TREE_DEPTH = 5
CUDA_MAX_POOL = 16
_NATIVE_DTYPES = (torch.float32, torch.float64)
_NATIVE_LEAVES = (2, 4, 8, 16, 32)
_MAX_NATIVE_POOL = 15  # argmax is stored as uint8: pool * pool <= 225


def native_available() -> bool:
    """True when the compiled CPU kernels (difflogic._C) can be imported."""
    return native_module is not None


def native_info() -> dict:
    """How the CPU extension was built (OpenMP, -march=native), or {} when it is missing."""
    if native_module is None:
        return {}
    return {"openmp": bool(native_module.has_openmp), "native_arch": bool(native_module.native_arch)}


def _native_missing_msg() -> str:
    return ("backend='native' requested but the compiled extension difflogic._C is not available "
            f"({native_error}); build it with `pip install .` or, in a source checkout, "
            "`cmake -S . -B build -DCMAKE_BUILD_TYPE=Release && cmake --build build -j2`")


# ------------------------------------------------------------------ CUDA: CUDA tensors go to
# difflogic.kernels.cuda, which mirrors this module's function signatures.  When that module
# cannot be imported (no CuPy, no device), CUDA tensors use the PyTorch reference.
_CUDA_MODULE = None
_CUDA_TRIED = False
_CUDA_ERROR: Exception | None = None  # why the import failed, for messages


def _cuda_module():
    global _CUDA_MODULE, _CUDA_TRIED, _CUDA_ERROR
    if not _CUDA_TRIED:
        _CUDA_TRIED = True
        try:
            _CUDA_MODULE = importlib.import_module("difflogic.kernels.cuda")
        except Exception as e:  # noqa: BLE001 - missing CuPy / no driver / not written yet
            _CUDA_MODULE, _CUDA_ERROR = None, e
    return _CUDA_MODULE


def cuda_unavailable_reason() -> str | None:
    """None when CUDA tensors run on difflogic.kernels.cuda, else why they fall back to PyTorch."""
    return None if _cuda_module() is not None else str(_CUDA_ERROR)


def _choose(backend: str, x: torch.Tensor, native_ok: bool, why_not: str) -> str:
    """-> "native", "cuda" or "torch" for this call."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "torch":
        return "torch"
    if x.is_cuda:
        if _cuda_module() is not None:
            return "cuda"
        if backend == "native":
            raise RuntimeError("backend='native' on a CUDA tensor needs difflogic.kernels.cuda (CuPy), "
                               f"which could not be imported ({cuda_unavailable_reason()}); "
                               "install it with `pip install \".[cuda13]\"` (or .[cuda12])")
        return "torch"
    if backend == "native":
        if native_module is None:
            raise RuntimeError(_native_missing_msg())
        if x.device.type != "cpu":
            raise RuntimeError(f"backend='native' supports CPU and CUDA tensors, got device {x.device}")
        if not native_ok:
            raise TypeError(f"backend='native': {why_not}")
        return "native"
    return "native" if (native_module is not None and x.device.type == "cpu" and native_ok) else "torch"


# ------------------------------------------------------------------ validation helpers
def _tensor(name: str, t) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    return t


def _index(name: str, t, shape: tuple | None = None, device=None) -> torch.Tensor:
    t = _tensor(name, t)
    if t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
        raise TypeError(f"{name} must be an integer tensor (int64), got {t.dtype}")
    if shape is not None and tuple(t.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {tuple(t.shape)}")
    if device is not None and t.device != device:
        raise ValueError(f"{name} is on {t.device} but x is on {device}")
    return t


def _i32(t: torch.Tensor) -> torch.Tensor:
    return t.to(torch.int32).contiguous()


def _pair(name: str, v) -> tuple[int, int]:
    if isinstance(v, int) and not isinstance(v, bool):
        v = (v, v)
    if not (isinstance(v, (tuple, list)) and len(v) == 2
            and all(isinstance(i, int) and not isinstance(i, bool) and i >= 1 for i in v)):
        raise ValueError(f"{name} must be a positive int or a pair of positive ints, got {v!r}")
    return int(v[0]), int(v[1])


def _int(name: str, v, minimum: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {v!r}")
    return v


#: Below this many gate evaluations a call runs on one thread (a parallel region would cost more
#: than it saves); tests set it to 0 to drive the multi-threaded code on small shapes.
SERIAL_WORK = 1 << 16


def _nthreads(work: int) -> int:
    """torch's intra-op thread count, or 1 for tiny calls (thread wake-up dominates there)."""
    return 1 if work < SERIAL_WORK else max(1, torch.get_num_threads())


def _np(t: torch.Tensor):
    return t.detach().numpy()


# ------------------------------------------------------------------ dense
# The native dense kernels are feature-major (difflogic/csrc/cpu/dense.cpp): they read x^T
# (in, N) and write y^T (out, N).  So the layer returns y as an (N, out) tensor with strides
# (1, N) -- its .t() is the kernel's contiguous output -- and accepts such tensors without a
# copy: a stack of dense layers never transposes a batch, forward or backward (gradients come
# back in the same layout).  Only inputs in the ordinary row-major layout (the first dense layer
# after a flatten, the gradient from a group sum) are transposed once.
def _feature_major(t: torch.Tensor, nthreads: int) -> torch.Tensor:
    """(N, F) tensor -> its transpose (F, N) as a C-contiguous tensor, a view when possible."""
    tt = t.t()
    if tt.is_contiguous():
        return tt
    if t.is_contiguous():
        out = torch.empty(tt.shape, dtype=t.dtype)
        native_module.transpose(t.numpy(), out.numpy(), nthreads)
        return out
    return tt.contiguous()


def _batch_major_empty(N: int, F: int, dtype) -> torch.Tensor:
    """Uninitialised (N, F) tensor with strides (1, N): its .t() is a contiguous (F, N) buffer."""
    return torch.empty_strided((N, F), (1, N), dtype=dtype)


class _DenseFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, a32, b32, coeffs):
        coeffs = coeffs.contiguous()
        N, out = x.shape[0], a32.shape[0]
        nt = _nthreads(N * out)
        xt = _feature_major(x.detach(), nt)
        y = _batch_major_empty(N, out, x.dtype)
        native_module.dense_forward(xt.numpy(), a32.numpy(), b32.numpy(), _np(coeffs), y.t().numpy(), nt)
        ctx.save_for_backward(xt, a32, b32, coeffs)
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_y):
        xt, a32, b32, coeffs = ctx.saved_tensors
        nt = _nthreads(grad_y.numel())
        gyt = _feature_major(grad_y.detach().to(xt.dtype), nt)
        gx = _batch_major_empty(xt.shape[1], xt.shape[0], xt.dtype) if ctx.needs_input_grad[0] else None
        gc = torch.empty_like(coeffs)
        native_module.dense_backward(xt.numpy(), a32.numpy(), b32.numpy(), _np(coeffs), gyt.numpy(),
                          None if gx is None else gx.t().numpy(), gc.numpy(), nt)
        return gx, None, None, (gc if ctx.needs_input_grad[3] else None)


def _check_dense_args(x_name: str, x: torch.Tensor, a, b):
    """Shared by the relaxed and the hard dense layer: x (N, in), wiring a/b (out,) on x's device."""
    if x.dim() != 2:
        raise ValueError(f"{x_name} must be 2-D (N, in_features), got shape {tuple(x.shape)}")
    a = _index("a", a, device=x.device)
    if a.dim() != 1:
        raise ValueError(f"a must be 1-D (out_features,), got shape {tuple(a.shape)}")
    return a, _index("b", b, tuple(a.shape), x.device)


def dense(x, a, b, coeffs, backend="auto") -> torch.Tensor:
    """Relaxed dense logic layer: ``y[n, j] = c0 + c1 xa + c2 xb + c3 xa xb`` with
    ``xa = x[n, a[j]]``, ``xb = x[n, b[j]]``.  x (N, in) float, a/b (out,) int, coeffs (out, 4)."""
    x = _tensor("x", x)
    a, b = _check_dense_args("x", x, a, b)
    coeffs = _tensor("coeffs", coeffs)
    if tuple(coeffs.shape) != (a.shape[0], 4):
        raise ValueError(f"coeffs must have shape ({a.shape[0]}, 4), got {tuple(coeffs.shape)}")
    if not x.dtype.is_floating_point or coeffs.dtype != x.dtype:
        raise TypeError(f"x and coeffs must share one floating dtype, got {x.dtype} and {coeffs.dtype}")
    if coeffs.device != x.device:
        raise ValueError(f"coeffs is on {coeffs.device} but x is on {x.device}")
    which = _choose(backend, x, x.dtype in _NATIVE_DTYPES, f"dtype {x.dtype} (needs float32/float64)")
    if which == "native":
        return _DenseFn.apply(x, _i32(a), _i32(b), coeffs)
    if which == "cuda":
        return _cuda_module().dense(x, a, b, coeffs)
    return F.dense_reference(x, a, b, coeffs)


# ------------------------------------------------------------------ gate coefficients
class _RowProductFn(torch.autograd.Function):
    """``p @ m`` for a constant ``m`` (K, J <= 16) by the native row product, both ways."""

    @staticmethod
    def forward(ctx, p, m):
        ctx.save_for_backward(m)
        out = torch.empty(p.shape[0], m.shape[1], dtype=p.dtype)
        native_module.row_product(_np(p.contiguous()), _np(m.contiguous()), out.numpy(),
                                  _nthreads(p.numel() * m.shape[1]))
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        (m,) = ctx.saved_tensors
        gp = torch.empty(grad.shape[0], m.shape[0], dtype=grad.dtype)
        native_module.row_product(_np(grad.contiguous()), _np(m.t().contiguous()), gp.numpy(),
                                  _nthreads(gp.numel() * m.shape[1]))
        return gp, None


def coeff_product_for(w: torch.Tensor):
    """:func:`coeff_product` for gate parameters like ``w`` when it runs natively (CPU,
    float32/float64), else None: other devices and dtypes keep the reference's own product."""
    native = native_module is not None and w.device.type == "cpu" and w.dtype in _NATIVE_DTYPES
    return coeff_product if native else None


def coeff_product(p: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """``p @ m``: gate parameters (G, K) times the constant (K, J) map to basis coefficients
    (:func:`difflogic.functional.gate_coefficients`), natively on the CPU: one pass over the
    rows, the same numbers on any thread count."""
    if (native_module is not None and p.device.type == "cpu" and p.dtype in _NATIVE_DTYPES
            and m.dtype == p.dtype and p.dim() == 2 and m.dim() == 2
            and 1 <= m.shape[0] <= 16 and 1 <= m.shape[1] <= 16 and not m.requires_grad):
        return _RowProductFn.apply(p, m)
    return p @ m


# ------------------------------------------------------------------ group sum
class _GroupSumFeatureMajorFn(torch.autograd.Function):
    """Group sums of a feature-major (N, F) tensor (strides (1, N), what the dense kernels
    return): one contiguous reduction of its (F, N) buffer; the gradient comes back in the same
    layout, so the dense backward below it needs no transpose."""

    @staticmethod
    def forward(ctx, x, k):
        xt = x.detach().t()
        ctx.k, ctx.shape = k, xt.shape
        return xt.view(k, xt.shape[0] // k, xt.shape[1]).sum(1).t()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        F_, N = ctx.shape
        g = grad.t().contiguous()[:, None, :].expand(ctx.k, F_ // ctx.k, N)
        return g.reshape(F_, N).t(), None


def group_sum(x: torch.Tensor, k: int, tau: float) -> torch.Tensor:
    """(N, F) float -> (N, k): :func:`difflogic.functional.group_sum`, by one contiguous
    reduction when ``x`` is feature-major on the CPU (the output of a native dense layer)."""
    if (x.dim() == 2 and x.device.type == "cpu" and x.dtype.is_floating_point and x.shape[0] > 1
            and not x.is_contiguous() and x.t().is_contiguous() and x.shape[1] % k == 0):
        return F.exact_div(_GroupSumFeatureMajorFn.apply(x, k), tau)
    return F.group_sum(x, k, tau)


# ------------------------------------------------------------------ fused tree conv + OR pool
class _TreeConvPoolFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, lc, ly, lx, coeffs, geom):
        kh, kw, stride, padding, pool, Hq, Wq = geom
        x = x.contiguous()
        coeffs = coeffs.contiguous()
        N, K = x.shape[0], lc.shape[0]
        y = torch.empty(N, K, Hq, Wq, dtype=x.dtype)
        am = torch.empty(N, K, Hq, Wq, dtype=torch.uint8) if pool > 1 else None
        native_module.tree_conv_pool_forward(_np(x), lc.numpy(), ly.numpy(), lx.numpy(), _np(coeffs), kh, kw,
                                  stride, padding, pool, y.numpy(),
                                  None if am is None else am.numpy(),
                                  _nthreads(y.numel() * pool * pool * lc.shape[1]))
        ctx.save_for_backward(x, lc, ly, lx, coeffs)
        ctx.argmax = am
        ctx.geom = geom
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_y):
        x, lc, ly, lx, coeffs = ctx.saved_tensors
        kh, kw, stride, padding, pool, _, _ = ctx.geom
        am = ctx.argmax
        grad_y = grad_y.contiguous().to(x.dtype)
        gx = torch.empty_like(x) if ctx.needs_input_grad[0] else None
        gc = torch.empty_like(coeffs)
        native_module.tree_conv_pool_backward(_np(x), lc.numpy(), ly.numpy(), lx.numpy(), _np(coeffs),
                                   None if am is None else am.numpy(), _np(grad_y), kh, kw,
                                   stride, padding, pool, None if gx is None else gx.numpy(),
                                   gc.numpy(), _nthreads(grad_y.numel() * lc.shape[1]))
        return gx, None, None, None, (gc if ctx.needs_input_grad[4] else None), None


def _check_tree_args(x, leaf_c, leaf_dy, leaf_dx, kernel_size, stride, padding, pool):
    """Shared validation of the tree-conv arguments; returns the normalised geometry."""
    x = _tensor("x", x)
    if x.dim() != 4:
        raise ValueError(f"x must be 4-D (N, C, H, W), got shape {tuple(x.shape)}")
    leaf_c = _index("leaf_c", leaf_c, device=x.device)
    if leaf_c.dim() != 2:
        raise ValueError(f"leaf_c must be 2-D (K, L), got shape {tuple(leaf_c.shape)}")
    K, L = leaf_c.shape
    if L < 2 or L & (L - 1):
        raise ValueError(f"the number of leaves per tree must be a power of two >= 2, got {L}")
    leaf_dy = _index("leaf_dy", leaf_dy, (K, L), x.device)
    leaf_dx = _index("leaf_dx", leaf_dx, (K, L), x.device)
    kh, kw = _pair("kernel_size", kernel_size)
    stride = _int("stride", stride, 1)
    padding = _int("padding", padding, 0)
    pool = _int("pool", pool, 1)
    H, W = x.shape[2], x.shape[3]
    Ho = F.conv_output_size(H, kh, stride, padding)
    Wo = F.conv_output_size(W, kw, stride, padding)
    if Ho < pool or Wo < pool:
        raise ValueError(f"kernel_size={(kh, kw)}, stride={stride}, padding={padding}, pool={pool} "
                         f"do not fit a {H}x{W} input (conv output {max(Ho, 0)}x{max(Wo, 0)})")
    return x, leaf_c, leaf_dy, leaf_dx, (kh, kw, stride, padding, pool, Ho // pool, Wo // pool)


def tree_conv_pool(x, leaf_c, leaf_dy, leaf_dx, coeffs, kernel_size, stride, padding, pool,
                   backend="auto") -> torch.Tensor:
    """Relaxed logic-tree convolution fused with OR (max) pooling of size ``pool`` (1 = none).

    x (N, C, H, W) float; leaf_c/leaf_dy/leaf_dx (K, L) int; coeffs (K, L-1, 4)
    -> (N, K, Ho // pool, Wo // pool).  Conventions: :mod:`difflogic.functional`.
    """
    x, leaf_c, leaf_dy, leaf_dx, geom = _check_tree_args(x, leaf_c, leaf_dy, leaf_dx, kernel_size,
                                                         stride, padding, pool)
    K, L = leaf_c.shape
    coeffs = _tensor("coeffs", coeffs)
    if tuple(coeffs.shape) != (K, L - 1, 4):
        raise ValueError(f"coeffs must have shape ({K}, {L - 1}, 4), got {tuple(coeffs.shape)}")
    if not x.dtype.is_floating_point or coeffs.dtype != x.dtype:
        raise TypeError(f"x and coeffs must share one floating dtype, got {x.dtype} and {coeffs.dtype}")
    if coeffs.device != x.device:
        raise ValueError(f"coeffs is on {coeffs.device} but x is on {x.device}")
    ok = x.dtype in _NATIVE_DTYPES and L in _NATIVE_LEAVES and geom[4] <= _MAX_NATIVE_POOL
    why = (f"needs float32/float64 (got {x.dtype}), 2..32 leaves (got {L}) and pool <= "
           f"{_MAX_NATIVE_POOL} (got {geom[4]})")
    which = _choose(backend, x, ok, why)
    kh, kw, stride, padding, pool = geom[:5]
    if which == "native":
        return _TreeConvPoolFn.apply(x, _i32(leaf_c), _i32(leaf_dy), _i32(leaf_dx), coeffs, geom)
    if which == "cuda":
        return _cuda_module().tree_conv_pool(x, leaf_c, leaf_dy, leaf_dx, coeffs, (kh, kw), stride,
                                             padding, pool)
    return F.tree_conv_pool_reference(x, leaf_c, leaf_dy, leaf_dx, coeffs, (kh, kw), stride,
                                      padding, pool)


# ------------------------------------------------------------------ hard (eval) kernels
def _binary(name: str, x) -> torch.Tensor:
    x = _tensor(name, x)
    if x.dtype == torch.bool:
        return x.to(torch.uint8)
    if x.dtype != torch.uint8:
        raise TypeError(f"{name} must be a uint8 (or bool) tensor of 0/1 values, got {x.dtype}")
    return x


def _ops_u8(name: str, ops, shape, device) -> torch.Tensor:
    ops = _index(name, ops, shape, device)
    if ops.numel() and (int(ops.min()) < 0 or int(ops.max()) > 15):
        raise ValueError(f"{name} must hold gate ids in [0, 15], got values in "
                         f"[{int(ops.min())}, {int(ops.max())}]")
    return ops.to(torch.uint8).contiguous()


def dense_hard(x_u8, a, b, ops) -> torch.Tensor:
    """Hard dense layer on {0,1} bytes (nonzero counts as 1): gate ``ops[j]`` of
    ``x[:, a[j]]`` and ``x[:, b[j]]``.  uint8 (N, in) -> uint8 (N, out)."""
    x = _binary("x_u8", x_u8)
    a, b = _check_dense_args("x_u8", x, a, b)
    ops = _ops_u8("ops", ops, tuple(a.shape), x.device)
    which = _choose("auto", x, True, "")
    if which == "native":
        x = x.contiguous()
        y = torch.empty(x.shape[0], a.shape[0], dtype=torch.uint8)
        native_module.dense_hard(x.numpy(), _i32(a).numpy(), _i32(b).numpy(), ops.numpy(), y.numpy(),
                      _nthreads(y.numel()))
        return y
    if which == "cuda" and hasattr(_cuda_module(), "dense_hard"):
        return _cuda_module().dense_hard(x, a, b, ops)
    xl = (x != 0).long()
    return gates.hard_gate(ops[None].long(), xl[:, a], xl[:, b]).to(torch.uint8)


def tree_conv_pool_hard(x_u8, leaf_c, leaf_dy, leaf_dx, ops, kernel_size, stride, padding,
                        pool) -> torch.Tensor:
    """Hard tree convolution + OR pooling on {0,1} bytes.  ops (K, L-1) gate ids.
    uint8 (N, C, H, W) -> uint8 (N, K, Ho // pool, Wo // pool)."""
    x = _binary("x_u8", x_u8)
    x, leaf_c, leaf_dy, leaf_dx, geom = _check_tree_args(x, leaf_c, leaf_dy, leaf_dx, kernel_size,
                                                         stride, padding, pool)
    K, L = leaf_c.shape
    ops = _ops_u8("ops", ops, (K, L - 1), x.device)
    kh, kw, stride, padding, pool, Hq, Wq = geom
    which = _choose("auto", x, L in _NATIVE_LEAVES and pool <= _MAX_NATIVE_POOL, "")
    if which == "native":
        x = x.contiguous()
        y = torch.empty(x.shape[0], K, Hq, Wq, dtype=torch.uint8)
        native_module.tree_conv_pool_hard(x.numpy(), _i32(leaf_c).numpy(), _i32(leaf_dy).numpy(),
                               _i32(leaf_dx).numpy(), ops.numpy(), kh, kw, stride, padding, pool,
                               y.numpy(), _nthreads(y.numel() * pool * pool * L))
        return y
    if which == "cuda" and hasattr(_cuda_module(), "tree_conv_pool_hard"):
        return _cuda_module().tree_conv_pool_hard(x, leaf_c, leaf_dy, leaf_dx, ops, (kh, kw),
                                                  stride, padding, pool)
    v = F.gather_leaves((x != 0).long(), leaf_c, leaf_dy, leaf_dx, (kh, kw), stride, padding)
    g = 0
    while v.shape[2] > 1:  # level by level, same gate order as functional.tree_reduce
        n = v.shape[2] // 2
        op = ops[:, g:g + n].reshape(K, n, 1, 1)
        v = gates.hard_gate(op.long(), v[:, :, 0::2], v[:, :, 1::2])
        g += n
    v = v[:, :, 0]
    N = v.shape[0]
    v = v[:, :, :Hq * pool, :Wq * pool].reshape(N, K, Hq, pool, Wq, pool).amax((3, 5))
    return v.to(torch.uint8)
