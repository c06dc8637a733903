"""CUDA kernels for the logic layers, compiled at first use with NVRTC through CuPy.

Why CuPy/NVRTC instead of a compiled extension: ``pip install`` must never need a CUDA toolkit.
The kernel sources (``csrc/cuda/*.cu``, installed as ``difflogic/_cuda_src``) are compiled on
the user's machine for the exact GPU the first time a kernel is needed; CuPy caches the binary
on disk (``~/.cupy/kernel_cache`` or ``$CUPY_CACHE_DIR``), keyed by source, options and
architecture, so later processes load it in milliseconds.

Mirrors :mod:`difflogic.kernels` (``dense``, ``tree_conv_pool``, ``dense_hard``,
``tree_conv_pool_hard``) for CUDA tensors, plus the bit-packed inference kernels
(``pack_bits``, ``dense_packed``, ``tree_conv_pool_packed``, ``or_pool_packed``,
``group_sum_packed``) that the ``cuda-packed`` back end (:mod:`difflogic.backends.cuda_packed`)
runs a netlist with.
Kernels are launched on PyTorch's *current* stream of the tensor's device, read and write the
tensors' memory in place (outputs are allocated by PyTorch's caching allocator), and never
synchronise the device.  Launch and compile failures raise ``RuntimeError``.

Importing this module raises ``ImportError`` (with the fix in the message) when CuPy, a CUDA
device or the NVRTC library is missing; :mod:`difflogic.kernels` then falls back to the PyTorch
reference for CUDA tensors.
"""
from __future__ import annotations

import collections
import hashlib
import threading
import warnings
import weakref
from pathlib import Path

import numpy as np
import torch

from .. import functional as F
from . import CUDA_MAX_POOL, CUDA_MAX_TREE_DEPTH

_INSTALL_HINT = ("install CuPy matching your CUDA driver: `pip install cupy-cuda12x` (CUDA 12) or "
                 "`pip install cupy-cuda13x` (CUDA 13)")

try:
    import cupy
except Exception as e:  # ImportError, or a broken CUDA library set-up inside CuPy
    raise ImportError(f"difflogic.kernels.cuda needs CuPy ({e}); {_INSTALL_HINT}") from e

if not torch.cuda.is_available():
    raise ImportError("difflogic.kernels.cuda: PyTorch sees no CUDA device (torch.cuda.is_available() is "
                      "False); the layers use the CPU kernels or the PyTorch reference")
try:
    if cupy.cuda.runtime.getDeviceCount() < 1:
        raise RuntimeError("no device")
except Exception as e:  # noqa: BLE001 - CUDARuntimeError, driver too old for this CuPy, ...
    raise ImportError(f"difflogic.kernels.cuda: CuPy cannot use the CUDA device ({e}); {_INSTALL_HINT}") from e
try:
    from cupy_backends.cuda.libs import nvrtc as _nvrtc
    _NVRTC_VERSION = _nvrtc.getVersion()
except Exception as e:  # noqa: BLE001
    raise ImportError(f"difflogic.kernels.cuda: the NVRTC runtime compiler library is missing ({e}); install "
                      "it with `pip install nvidia-cuda-nvrtc` (matching your CUDA major version) or "
                      "a CUDA toolkit") from e

__all__ = ["dense", "tree_conv_pool", "dense_hard", "tree_conv_pool_hard", "pack_bits",
           "unpack_bits", "dense_packed", "tree_conv_pool_packed", "or_pool_packed",
           "group_sum_packed", "source_dir", "calls"]

_PKG = Path(__file__).resolve().parent.parent   # the difflogic package folder
_FLOAT_T = {torch.float32: "float", torch.float64: "double"}
_WORD_T = {32: ("unsigned int", torch.int32), 64: ("unsigned long long", torch.int64)}
_MAX_DEPTH = CUDA_MAX_TREE_DEPTH
_MAX_POOL = CUDA_MAX_POOL
_INT_LIMIT = 2**31 - 1  # kernels index with 32-bit ints
_THREADS = 256

#: Number of calls per public op that ran on the CUDA kernels (benchmarks check the path taken).
calls: collections.Counter = collections.Counter()


def source_dir() -> Path:
    """Folder of the .cu sources: ``difflogic/_cuda_src`` when installed, ``csrc/cuda`` in a checkout."""
    for cand in (_PKG / "_cuda_src", _PKG.parent / "csrc" / "cuda"):
        if (cand / "common.cuh").is_file():
            return cand
    raise FileNotFoundError("difflogic CUDA sources not found (expected difflogic/_cuda_src in an "
                            "installed package or csrc/cuda in a source checkout); reinstall with "
                            "`pip install .`")


try:
    source_dir()
except FileNotFoundError as e:
    raise ImportError(f"difflogic.kernels.cuda: {e}") from e


# ----------------------------------------------------------------------------- compilation
_MODULES: dict[tuple[str, tuple[str, ...]], "cupy.RawModule"] = {}
_LOCK = threading.Lock()


def _module(filename: str, names: tuple[str, ...]):
    """RawModule for one .cu file and the template instantiations it must provide.

    Each (file, names) pair is its own small NVRTC program, so a model only compiles the
    depths/dtypes it uses.  The header's hash is part of the source text because CuPy's disk
    cache keys on the source string, not on included files.
    """
    key = (filename, names)
    mod = _MODULES.get(key)
    if mod is None:
        with _LOCK:
            mod = _MODULES.get(key)
            if mod is None:
                src_dir = source_dir()
                header = (src_dir / "common.cuh").read_bytes()
                code = (f"// common.cuh sha256 {hashlib.sha256(header).hexdigest()}\n"
                        + (src_dir / filename).read_text())
                mod = cupy.RawModule(code=code, options=("-std=c++17", f"-I{src_dir}"),
                                     name_expressions=list(names))
                _MODULES[key] = mod
    return mod


def _kernel(filename: str, names: tuple[str, ...], name: str) -> tuple:
    """A kernel reference, resolved (compiled/loaded) by :func:`_launch` inside the context of
    the tensors' device: CuPy loads modules per device."""
    return (filename, names, name)


_FUNCTIONS: dict[tuple, object] = {}


def _resolve(spec: tuple, index: int):
    fn = _FUNCTIONS.get((index, spec))
    if fn is None:
        filename, names, name = spec
        try:
            fn = _module(filename, names).get_function(name)
        except Exception as e:  # noqa: BLE001 - CompileException carries the NVRTC log
            raise RuntimeError(f"difflogic: compiling CUDA kernel {name} from {filename} failed: {e}") from e
        _FUNCTIONS[(index, spec)] = fn
    return fn


# ----------------------------------------------------------------------------- launching
_STREAMS: dict[tuple[int, int], object] = {}


def cupy_stream(index: int):
    """CuPy view of PyTorch's current stream on device ``index`` (cached per raw handle)."""
    ptr = torch.cuda.current_stream(index).cuda_stream
    s = _STREAMS.get((index, ptr))
    if s is None:
        if len(_STREAMS) > 64:
            _STREAMS.clear()
        with warnings.catch_warnings():  # ExternalStream is deprecated in CuPy 14 but still the
            warnings.simplefilter("ignore")  # one API that takes a raw handle + device id
            s = cupy.cuda.ExternalStream(ptr, index)
        _STREAMS[(index, ptr)] = s
    return s


def _arg(v):
    if isinstance(v, torch.Tensor):
        return np.uint64(v.data_ptr())
    if v is None:
        return np.uint64(0)
    return np.int32(v)


def is_cuda_tensor(t: torch.Tensor) -> bool:
    """Whether ``t`` lives on a CUDA device.  The CPU emulation of the kernels
    (tests/test_cuda_harness.py) replaces this, ``device_index`` and ``cupy_stream`` on its copy."""
    return t.is_cuda


def device_index(device: torch.device) -> int:
    """The CUDA device ordinal of ``device`` (the current one when it names none)."""
    return device.index if device.index is not None else torch.cuda.current_device()


def _launch(spec: tuple, name: str, device: torch.device, grid, block, args) -> None:
    index = device_index(device)
    with cupy.cuda.Device(index):
        kernel = _resolve(spec, index)
        try:
            with cupy_stream(index):
                kernel(grid, block, tuple(_arg(a) for a in args))
        except Exception as e:  # noqa: BLE001
            raise RuntimeError(f"difflogic: CUDA kernel {name} failed to launch on {device} "
                               f"(grid {grid}, block {block}): {e}") from e


def _grid1d(total: int, per_block: int = _THREADS) -> tuple[int]:
    return (max(1, min(-(-total // per_block), 1 << 20)),)


def _check_size(what: str, n: int) -> None:
    if n > _INT_LIMIT:
        raise ValueError(f"{what} has {n} elements; the CUDA kernels index with 32-bit integers "
                         f"(at most {_INT_LIMIT}); use a smaller batch")


# ----------------------------------------------------------------------------- cached tables
class _Cache:
    """Derived tables of wiring tensors (int32 copies, the CSR inverse map), keyed by the tensors'
    identity and version counters: rebuilt when a buffer is replaced or modified in place,
    never confused with a new tensor at a recycled address (entries hold weak references)."""

    def __init__(self, size: int = 256):
        self._d: collections.OrderedDict = collections.OrderedDict()
        self._size = size

    def get(self, tensors, extra, build):
        key = tuple(id(t) for t in tensors) + tuple(extra)
        ent = self._d.get(key)
        versions = tuple(t._version for t in tensors)
        if ent is not None and ent[1] == versions and all(r() is t for r, t in zip(ent[0], tensors)):
            self._d.move_to_end(key)
            return ent[2]
        value = build()
        self._d[key] = (tuple(weakref.ref(t) for t in tensors), versions, value)
        if len(self._d) > self._size:
            self._d.popitem(last=False)
        return value


_CACHE = _Cache()


def _index_range(name: str, t: torch.Tensor, hi: int) -> None:
    if t.numel() and (int(t.min()) < 0 or int(t.max()) >= hi):
        raise ValueError(f"{name} must hold indices in [0, {hi}), got values in "
                         f"[{int(t.min())}, {int(t.max())}]")


def _csr_inverse(idx: torch.Tensor, n: int):
    """CSR inverse of an index list: for each value i in [0, n), order[rowptr[i]:rowptr[i+1]]
    are the positions of ``idx`` holding i, ascending (stable sort: a fixed order, which the
    atomic-free gradient kernels rely on).  -> (int32 rowptr (n+1,), int64 order)."""
    idx = idx.reshape(-1).long()
    order = torch.argsort(idx, stable=True)
    rowptr = torch.zeros(n + 1, dtype=torch.int64, device=idx.device)
    rowptr[1:] = torch.cumsum(torch.bincount(idx, minlength=n), 0)
    return rowptr.to(torch.int32), order


def _dense_tables(a: torch.Tensor, b: torch.Tensor, n_in: int):
    """int32 wiring and the CSR inverse map: for input i, entries[rowptr[i]:rowptr[i+1]] lists
    2*j + side for every neuron j reading i (side 0: as input a, 1: as input b), in neuron order."""
    def build():
        _index_range("a", a, n_in)
        _index_range("b", b, n_in)
        out = a.shape[0]
        rowptr, order = _csr_inverse(torch.cat([a.reshape(-1), b.reshape(-1)]), n_in)
        entries = ((order % max(out, 1)) * 2 + order // max(out, 1)).to(torch.int32)
        return {"a": a.to(torch.int32).contiguous(), "b": b.to(torch.int32).contiguous(),
                "rowptr": rowptr, "entries": entries.contiguous()}
    return _CACHE.get((a, b), ("dense", n_in), build)


def _leaf_tables(leaf_c, leaf_dy, leaf_dx, C: int, kh: int, kw: int):
    def build():
        _index_range("leaf_c", leaf_c, C)
        _index_range("leaf_dy", leaf_dy, kh)
        _index_range("leaf_dx", leaf_dx, kw)
        return tuple(t.to(torch.int32).contiguous() for t in (leaf_c, leaf_dy, leaf_dx))
    return _CACHE.get((leaf_c, leaf_dy, leaf_dx), ("leaves", C, kh, kw), build)


def _leaf_inverse(leaf_c32: torch.Tensor, C: int):
    """CSR inverse of the leaves' channels: for channel c, kl[rowptr[c]:rowptr[c+1]] lists
    k*L + l for every leaf l of tree k reading c (deterministic grad_x gather)."""
    def build():
        rowptr, order = _csr_inverse(leaf_c32, C)
        return rowptr, order.to(torch.int32).contiguous()
    return _CACHE.get((leaf_c32,), ("leaf-inverse", C), build)


def _on_device(name: str, t: torch.Tensor, device: torch.device) -> None:
    if t.device != device:
        raise ValueError(f"{name} is on {t.device} but x is on {device}")


# ----------------------------------------------------------------------------- dense (relaxed)
def _dense_names(T: str):
    return (f"dense_forward<{T}>", f"dense_backward_coeffs<{T}>", f"dense_backward_x<{T}>")


def _dense_forward(xT: torch.Tensor, tab, coeffs: torch.Tensor) -> torch.Tensor:
    n_in, N = xT.shape
    out = tab["a"].shape[0]
    yT = torch.empty(out, N, dtype=xT.dtype, device=xT.device)
    _check_size("the dense output", yT.numel())
    if yT.numel():
        names = _dense_names(_FLOAT_T[xT.dtype])
        _launch(_kernel("dense.cu", names, names[0]), names[0], xT.device, _grid1d(yT.numel()),
                (_THREADS,), (xT, tab["a"], tab["b"], coeffs, yT, out, N))
    return yT


class _DenseFn(torch.autograd.Function):
    """Feature-major dense layer.  The result is returned as ``yT.t()``: a (N, out) view of an
    (out, N) buffer, so the next dense layer's ``x.t().contiguous()`` is free."""

    @staticmethod
    def forward(ctx, x, coeffs, tab):
        xT = x.t().contiguous()
        coeffs = coeffs.contiguous()
        ctx.save_for_backward(xT, coeffs)
        ctx.tab = tab
        return _dense_forward(xT, tab, coeffs).t()

    @staticmethod
    def backward(ctx, gy):
        xT, coeffs = ctx.saved_tensors
        tab = ctx.tab
        n_in, N = xT.shape
        out = coeffs.shape[0]
        gyT = gy.t().contiguous().to(xT.dtype)
        names = _dense_names(_FLOAT_T[xT.dtype])
        gx = gc = None
        if ctx.needs_input_grad[0]:
            gxT = torch.empty_like(xT)
            if gxT.numel():
                _launch(_kernel("dense.cu", names, names[2]), names[2], xT.device, _grid1d(gxT.numel()),
                        (_THREADS,), (xT, tab["a"], tab["b"], coeffs, gyT, tab["rowptr"],
                                      tab["entries"], gxT, n_in, N))
            gx = gxT.t()
        if ctx.needs_input_grad[1]:
            gc = torch.zeros_like(coeffs)
            if N and out:
                _launch(_kernel("dense.cu", names, names[1]), names[1], xT.device,
                        _grid1d(out * 32), (_THREADS,), (xT, tab["a"], tab["b"], gyT, gc, out, N))
        return gx, gc, None


def dense(x, a, b, coeffs, backend="auto") -> torch.Tensor:
    """Relaxed dense logic layer on CUDA (same contract as :func:`difflogic.kernels.dense`).

    float16/bfloat16 run in float32.  The (N, out) result is a transposed view (see _DenseFn).
    """
    if backend == "torch":
        return F.dense_reference(x, a, b, coeffs)
    if not (is_cuda_tensor(x) and x.dim() == 2):
        raise ValueError(f"difflogic.kernels.cuda.dense: x must be a 2-D CUDA tensor, got {x.device} shape {tuple(x.shape)}")
    for name, t in (("a", a), ("b", b), ("coeffs", coeffs)):
        _on_device(name, t, x.device)
    if tuple(coeffs.shape) != (a.shape[0], 4) or b.shape != a.shape:
        raise ValueError(f"a, b must be (out,) and coeffs (out, 4); got {tuple(a.shape)}, "
                         f"{tuple(b.shape)}, {tuple(coeffs.shape)}")
    if x.dtype in (torch.float16, torch.bfloat16):
        return dense(x.float(), a, b, coeffs.float()).to(x.dtype)
    if x.dtype not in _FLOAT_T or coeffs.dtype != x.dtype:
        raise TypeError(f"x and coeffs must share float32/float64, got {x.dtype} and {coeffs.dtype}")
    _check_size("x", x.numel())
    calls["dense"] += 1
    tab = _dense_tables(a, b, x.shape[1])
    if torch.is_grad_enabled() and (x.requires_grad or coeffs.requires_grad):
        return _DenseFn.apply(x, coeffs, tab)
    return _dense_forward(x.t().contiguous(), tab, coeffs.contiguous()).t()


# ----------------------------------------------------------------------------- tree conv (relaxed)
def _geometry(x, leaf_c, kernel_size, stride, padding, pool):
    kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
    N, C, H, W = x.shape
    Ho = F.conv_output_size(H, kh, stride, padding)
    Wo = F.conv_output_size(W, kw, stride, padding)
    if Ho < pool or Wo < pool:
        raise ValueError(f"kernel_size={(kh, kw)}, stride={stride}, padding={padding}, pool={pool} "
                         f"do not fit a {H}x{W} input")
    K, L = leaf_c.shape
    depth = L.bit_length() - 1
    return dict(N=N, C=C, H=H, W=W, K=K, L=L, depth=depth, kh=kh, kw=kw, Hp=Ho // pool,
                Wp=Wo // pool, stride=stride, pad=padding, pool=pool)


def _supported_tree(g) -> bool:
    return (g["L"] >= 2 and g["L"] & (g["L"] - 1) == 0 and g["depth"] <= _MAX_DEPTH
            and g["pool"] <= _MAX_POOL)


def _tree_names(T: str, D: int):
    """forward, backward (atomics), backward (deterministic mode), its grad_x gather."""
    return (f"tree_conv_pool_forward<{T}, {D}>", f"tree_conv_pool_backward<{T}, {D}, false>",
            f"tree_conv_pool_backward<{T}, {D}, true>", f"tree_conv_grad_x_gather<{T}, {D}>")


def _tree_launch_shape(P: int, K: int, per_thread: int):
    block = min(_THREADS, max(32, -(-P // 32) * 32))
    return (K, max(1, min(-(-P // (block * per_thread)), 65535))), (block,)


def _geom_args(g):
    return (g["N"], g["C"], g["H"], g["W"], g["K"], g["Hp"], g["Wp"], g["stride"], g["pad"], g["pool"])


def _tree_forward(x, leaves, coeffs, g, with_argmax: bool):
    out = torch.empty(g["N"], g["K"], g["Hp"], g["Wp"], dtype=x.dtype, device=x.device)
    am = (torch.empty(out.shape, dtype=torch.uint8, device=x.device)
          if with_argmax and g["pool"] > 1 else None)
    _check_size("the tree-conv output", out.numel())
    if out.numel():
        names = _tree_names(_FLOAT_T[x.dtype], g["depth"])
        grid, block = _tree_launch_shape(g["N"] * g["Hp"] * g["Wp"], g["K"], 1)
        _launch(_kernel("tree_conv.cu", names, names[0]), names[0], x.device, grid, block,
                (x, *leaves, coeffs, out, am, *_geom_args(g)))
    return out, am


class _TreeConvPoolFn(torch.autograd.Function):
    """Fused tree conv + OR pool; saves x, the coefficients and the uint8 argmax only."""

    @staticmethod
    def forward(ctx, x, coeffs, leaves, g):
        x = x.contiguous()
        coeffs = coeffs.contiguous()
        out, am = _tree_forward(x, leaves, coeffs, g, True)
        ctx.save_for_backward(x, coeffs, *(() if am is None else (am,)))
        ctx.leaves, ctx.g = leaves, g
        return out

    @staticmethod
    def backward(ctx, gy):
        x, coeffs, *rest = ctx.saved_tensors
        am = rest[0] if rest else None
        g = ctx.g
        gy = gy.contiguous().to(x.dtype)
        gx = torch.zeros_like(x) if ctx.needs_input_grad[0] else None
        gc = torch.zeros_like(coeffs) if ctx.needs_input_grad[1] else None
        if not gy.numel() or (gx is None and gc is None):
            return gx, gc, None, None
        names = _tree_names(_FLOAT_T[x.dtype], g["depth"])
        grid, block = _tree_launch_shape(g["N"] * g["Hp"] * g["Wp"], g["K"], 4)
        if not torch.are_deterministic_algorithms_enabled():  # atomics: fast, last bits vary
            _launch(_kernel("tree_conv.cu", names, names[1]), names[1], x.device, grid, block,
                    (x, *ctx.leaves, coeffs, gy, am, gx, gc, None, None, *_geom_args(g)))
            return gx, gc, None, None
        # Deterministic: per-leaf gradients and per-block coefficient sums, then fixed-order
        # sums (tree_conv.cu).  Costs a buffer of N*K*Hp*Wp*2^D values and one more launch.
        lg = (torch.zeros(gy.numel() * g["L"], dtype=x.dtype, device=x.device)
              if gx is not None else None)
        part = (torch.empty(grid[1], gc.numel(), dtype=x.dtype, device=x.device)
                if gc is not None else None)
        _launch(_kernel("tree_conv.cu", names, names[2]), names[2], x.device, grid, block,
                (x, *ctx.leaves, coeffs, gy, am, None, None, lg, part, *_geom_args(g)))
        if part is not None:
            gc = part.sum(0).view_as(coeffs)
        if lg is not None:
            rowptr, kl = _leaf_inverse(ctx.leaves[0], g["C"])
            _launch(_kernel("tree_conv.cu", names, names[3]), names[3], x.device,
                    _grid1d(gx.numel()), (_THREADS,),
                    (lg, am, rowptr, kl, ctx.leaves[1], ctx.leaves[2], gx, *_geom_args(g)))
        return gx, gc, None, None


def tree_conv_pool(x, leaf_c, leaf_dy, leaf_dx, coeffs, kernel_size, stride=1, padding=0, pool=1,
                   backend="auto") -> torch.Tensor:
    """Relaxed tree convolution + OR pool on CUDA (contract: :func:`difflogic.kernels.tree_conv_pool`).

    Depth 1..5 and pool <= 16 run the fused kernels; anything else (and ``backend="torch"``)
    runs the PyTorch reference.  float16/bfloat16 run in float32.  The backward sums with
    float atomics (the last bits vary from run to run); under
    ``torch.use_deterministic_algorithms(True)`` it runs an atomic-free variant instead (the
    same bits every run, a buffer of N*K*Hp*Wp*2^depth gradients; PyTorch's own matmuls then
    need ``CUBLAS_WORKSPACE_CONFIG=:4096:8``, as PyTorch's error message says).
    """
    if not (is_cuda_tensor(x) and x.dim() == 4):
        raise ValueError(f"difflogic.kernels.cuda.tree_conv_pool: x must be a 4-D CUDA tensor, got "
                         f"{x.device} shape {tuple(x.shape)}")
    g = _geometry(x, leaf_c, kernel_size, stride, padding, pool)
    if backend == "torch" or not _supported_tree(g):
        return F.tree_conv_pool_reference(x, leaf_c, leaf_dy, leaf_dx, coeffs, (g["kh"], g["kw"]),
                                          stride, padding, pool)
    for name, t in (("leaf_c", leaf_c), ("leaf_dy", leaf_dy), ("leaf_dx", leaf_dx), ("coeffs", coeffs)):
        _on_device(name, t, x.device)
    if tuple(coeffs.shape) != (g["K"], g["L"] - 1, 4):
        raise ValueError(f"coeffs must have shape ({g['K']}, {g['L'] - 1}, 4), got {tuple(coeffs.shape)}")
    if x.dtype in (torch.float16, torch.bfloat16):
        return tree_conv_pool(x.float(), leaf_c, leaf_dy, leaf_dx, coeffs.float(), kernel_size,
                              stride, padding, pool).to(x.dtype)
    if x.dtype not in _FLOAT_T or coeffs.dtype != x.dtype:
        raise TypeError(f"x and coeffs must share float32/float64, got {x.dtype} and {coeffs.dtype}")
    _check_size("x", x.numel())
    training = torch.is_grad_enabled() and (x.requires_grad or coeffs.requires_grad)
    calls["tree_conv_pool"] += 1
    leaves = _leaf_tables(leaf_c, leaf_dy, leaf_dx, g["C"], g["kh"], g["kw"])
    if training:
        return _TreeConvPoolFn.apply(x, coeffs, leaves, g)
    return _tree_forward(x.contiguous(), leaves, coeffs.contiguous(), g, False)[0]


# ----------------------------------------------------------------------------- hard (uint8)
def _u8(name: str, x: torch.Tensor) -> torch.Tensor:
    if x.dtype == torch.bool:
        return x.to(torch.uint8)
    if x.dtype != torch.uint8:
        raise TypeError(f"{name} must be uint8/bool 0/1 values, got {x.dtype}")
    return x


def dense_hard(x_u8, a, b, ops) -> torch.Tensor:
    """Hard dense layer on {0,1} bytes (nonzero = 1): uint8 (N, in) -> uint8 (N, out)."""
    x = _u8("x_u8", x_u8).contiguous()
    if not (is_cuda_tensor(x) and x.dim() == 2):
        raise ValueError(f"x_u8 must be a 2-D CUDA tensor, got {x.device} shape {tuple(x.shape)}")
    N, n_in = x.shape
    out = a.shape[0]
    tab = _dense_tables(a, b, n_in)
    ops = ops.to(device=x.device, dtype=torch.uint8).contiguous()
    if ops.shape != (out,):
        raise ValueError(f"ops must have shape ({out},), got {tuple(ops.shape)}")
    y = torch.empty(N, out, dtype=torch.uint8, device=x.device)
    _check_size("the dense output", y.numel())
    _check_size("x_u8", x.numel())
    calls["dense_hard"] += 1
    if y.numel():
        _launch(_kernel("dense.cu", ("dense_hard",), "dense_hard"), "dense_hard", x.device,
                _grid1d(y.numel()), (_THREADS,), (x, tab["a"], tab["b"], ops, y, N, n_in, out))
    return y


def tree_conv_pool_hard(x_u8, leaf_c, leaf_dy, leaf_dx, ops, kernel_size, stride=1, padding=0,
                        pool=1) -> torch.Tensor:
    """Hard tree conv + logical-OR pool on {0,1} bytes: uint8 (N, C, H, W) -> uint8 (N, K, Hp, Wp).
    Depths beyond 5 or pools beyond 16 run the (exact) PyTorch reference."""
    x = _u8("x_u8", x_u8).contiguous()
    if not (is_cuda_tensor(x) and x.dim() == 4):
        raise ValueError(f"x_u8 must be a 4-D CUDA tensor, got {x.device} shape {tuple(x.shape)}")
    g = _geometry(x, leaf_c, kernel_size, stride, padding, pool)
    ops = ops.to(device=x.device, dtype=torch.uint8).contiguous()
    if ops.shape != (g["K"], g["L"] - 1):
        raise ValueError(f"ops must have shape ({g['K']}, {g['L'] - 1}), got {tuple(ops.shape)}")
    if not _supported_tree(g):  # exact on {0,1}: integer coefficients of the chosen gates
        hc = F.coeff_matrix(x.device, torch.float32)[ops.long()]
        return F.tree_conv_pool_reference((x != 0).float(), leaf_c, leaf_dy, leaf_dx, hc,
                                          (g["kh"], g["kw"]), stride, padding, pool).to(torch.uint8)
    leaves = _leaf_tables(leaf_c, leaf_dy, leaf_dx, g["C"], g["kh"], g["kw"])
    out = torch.empty(g["N"], g["K"], g["Hp"], g["Wp"], dtype=torch.uint8, device=x.device)
    _check_size("the tree-conv output", out.numel())
    _check_size("x_u8", x.numel())
    calls["tree_conv_pool_hard"] += 1
    if out.numel():
        name = f"tree_conv_pool_hard<{g['depth']}>"
        grid, block = _tree_launch_shape(g["N"] * g["Hp"] * g["Wp"], g["K"], 1)
        _launch(_kernel("tree_conv.cu", (name,), name), name, x.device, grid, block,
                (x, *leaves, ops, out, *_geom_args(g)))
    return out


# ----------------------------------------------------------------------------- bit-packed inference
def _word(bits: int):
    if bits not in _WORD_T:
        raise ValueError(f"word_bits must be 32 or 64, got {bits!r}")
    return _WORD_T[bits]


def _packed_kernel(name: str, bits: int, depth: int | None = None):
    ctype = _word(bits)[0]
    expr = f"{name}<{ctype}>" if depth is None else f"{name}<{ctype}, {depth}>"
    return _kernel("packed.cu", (expr,), expr), expr


def _words_of(name: str, words: torch.Tensor) -> int:
    if words.dtype == torch.int32:
        return 32
    if words.dtype == torch.int64:
        return 64
    raise TypeError(f"{name} must be packed words (int32 for 32-bit, int64 for 64-bit), got {words.dtype}")


def pack_bits(x_u8: torch.Tensor, word_bits: int = 32) -> torch.Tensor:
    """(N, *features) {0,1} bytes -> (F, ceil(N / word_bits)) words; bit t of word w = sample
    w*word_bits + t.  Words are stored as int32/int64 (the bit pattern of unsigned words)."""
    x = _u8("x_u8", x_u8)
    if not is_cuda_tensor(x) or x.dim() < 2:
        raise ValueError(f"x_u8 must be a CUDA tensor (N, ...), got {x.device} shape {tuple(x.shape)}")
    x = x.reshape(x.shape[0], -1).contiguous()
    N, Fn = x.shape
    NW = -(-N // word_bits)
    out = torch.empty(Fn, NW, dtype=_word(word_bits)[1], device=x.device)
    _check_size("x_u8", x.numel())
    if out.numel():
        k, name = _packed_kernel("pack_bits", word_bits)
        _launch(k, name, x.device, _grid1d(out.numel()), (_THREADS,), (x, out, N, Fn, NW))
    return out


def unpack_bits(words: torch.Tensor, n: int) -> torch.Tensor:
    """(F, NW) words -> (n, F) {0,1} bytes (inverse of :func:`pack_bits`)."""
    bits = _words_of("words", words)
    Fn, NW = words.shape
    if not 0 <= n <= NW * bits:
        raise ValueError(f"n must be in [0, {NW * bits}] for {NW} words, got {n}")
    out = torch.empty(n, Fn, dtype=torch.uint8, device=words.device)
    if out.numel():
        k, name = _packed_kernel("unpack_bits", bits)
        _launch(k, name, words.device, _grid1d(out.numel()), (_THREADS,),
                (words.contiguous(), out, n, Fn, NW))
    return out


def dense_packed(words, a, b, ops) -> torch.Tensor:
    """Hard dense layer on packed words: (in, NW) -> (out, NW)."""
    bits = _words_of("words", words)
    n_in, NW = words.shape
    tab = _dense_tables(a, b, n_in)
    out = a.shape[0]
    ops = ops.to(device=words.device, dtype=torch.uint8).contiguous()
    y = torch.empty(out, NW, dtype=words.dtype, device=words.device)
    _check_size("the packed dense output", y.numel())
    if y.numel():
        k, name = _packed_kernel("dense_packed", bits)
        _launch(k, name, words.device, _grid1d(y.numel()), (_THREADS,),
                (words.contiguous(), tab["a"], tab["b"], ops, y, out, NW))
    return y


def tree_conv_pool_packed(words, shape, leaf_c, leaf_dy, leaf_dx, ops, kernel_size, stride=1,
                          padding=0, pool=1) -> torch.Tensor:
    """Hard tree conv + OR pool on packed words: (C*H*W, NW) with ``shape`` = (C, H, W)
    -> (K*Hp*Wp, NW)."""
    bits = _words_of("words", words)
    C, H, W = shape
    NW = words.shape[1]
    if words.shape[0] != C * H * W:
        raise ValueError(f"words has {words.shape[0]} features, expected C*H*W = {C * H * W}")
    _check_size("the packed input", words.numel())
    fake = torch.empty(1, C, H, W, device="meta")
    g = _geometry(fake, leaf_c, kernel_size, stride, padding, pool)
    if not _supported_tree(g):
        raise ValueError(f"packed tree conv supports depth 1..{_MAX_DEPTH} and pool <= {_MAX_POOL}")
    leaves = _leaf_tables(leaf_c, leaf_dy, leaf_dx, C, g["kh"], g["kw"])
    ops = ops.to(device=words.device, dtype=torch.uint8).contiguous()
    out = torch.empty(g["K"] * g["Hp"] * g["Wp"], NW, dtype=words.dtype, device=words.device)
    _check_size("the packed tree-conv output", out.numel())
    if out.numel():
        k, name = _packed_kernel("tree_conv_pool_packed", bits, g["depth"])
        grid, block = _tree_launch_shape(g["Hp"] * g["Wp"] * NW, g["K"], 1)
        _launch(k, name, words.device, grid, block,
                (words.contiguous(), *leaves, ops, out, C, H, W, g["K"], g["Hp"], g["Wp"],
                 g["stride"], g["pad"], g["pool"], NW))
    return out


def or_pool_packed(words, shape, pool: int) -> torch.Tensor:
    """Logical-OR pool (stride = size, floor mode) on packed words: (C*H*W, NW) -> (C*Hp*Wp, NW)."""
    bits = _words_of("words", words)
    C, H, W = shape
    NW = words.shape[1]
    Hp, Wp = H // pool, W // pool
    out = torch.empty(C * Hp * Wp, NW, dtype=words.dtype, device=words.device)
    if out.numel():
        k, name = _packed_kernel("or_pool_packed", bits)
        _launch(k, name, words.device, _grid1d(out.numel()), (_THREADS,),
                (words.contiguous(), out, C, H, W, Hp, Wp, pool, NW))
    return out


def group_sum_packed(words, k: int, n: int) -> torch.Tensor:
    """Popcount of each of k consecutive feature groups per sample: (F, NW) -> int32 (n, k)."""
    bits = _words_of("words", words)
    Fn, NW = words.shape
    if k < 1 or Fn % k:
        raise ValueError(f"k={k} must divide the number of features {Fn}")
    counts = torch.empty(n, k, dtype=torch.int32, device=words.device)
    if counts.numel():
        kern, name = _packed_kernel("group_sum_packed", bits)
        _launch(kern, name, words.device, _grid1d(k * NW * 32), (_THREADS,),
                (words.contiguous(), counts, Fn, k, n, NW))
    return counts
