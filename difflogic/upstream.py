"""Drop-in names for scripts written against the upstream ``difflogic`` package (NeurIPS 2022).

Upstream's public API is ``LogicLayer``, ``GroupSum`` (both in :mod:`difflogic.layers`, with
upstream's signatures), ``PackBitsTensor`` and ``CompiledLogicNet``; the last two live here and
run on this project's compiler and back ends:

* :class:`PackBitsTensor` packs a (batch, features) bool tensor along the batch into words; a
  model in ``eval()`` mode applied to it returns the integer class counts (GroupSum without the
  division by tau), as upstream's does.  Unlike upstream it works on the CPU too, never
  modifies the tensor it is given, and runs any :class:`~difflogic.models.LogicNet` (conv nets
  included, through the netlist simulator) besides upstream's ``nn.Sequential`` of
  ``LogicLayer`` s.
* :class:`CompiledLogicNet` compiles any model :func:`difflogic.compiler.compile` takes (not
  only upstream's dense stacks) with the bit-packed C back end; ``compile(save_lib_path=...)``
  saves the shared library and a small JSON sidecar beside it (``PATH.json``: what ``load``
  needs and the library's checksum), written together atomically.  Batches of any size work,
  a one-layer net works, and ``num_bits`` is accepted for compatibility only: the generated
  code picks its own word width (64 x 4 or 8 lanes).
"""
from __future__ import annotations

import ctypes
import hashlib
import json
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import __version__, gates
from .backends.c import build_shared, find_compiler, generate
from .compiler import compile as compile_netlist
from .compiler import ir, sim
from .files import write_files
from .layers import Flatten, LogicDense

BIT_COUNTS = (8, 16, 32, 64)
_WORD_DTYPE = {8: torch.int8, 16: torch.int16, 32: torch.int32, 64: torch.int64}
SIDECAR_FORMAT = "difflogic-compiled-logic-net"


def _bit_count(value, name: str) -> int:
    if isinstance(value, bool) or value not in BIT_COUNTS:
        raise ValueError(f"{name} must be one of {BIT_COUNTS} (bits per packed word), got {value!r}")
    return int(value)


# ============================================================================ PackBitsTensor
class PackBitsTensor:
    """A (batch, features) bool tensor packed along the batch: ``t`` holds (features,
    ceil(batch / bit_count)) words of ``bit_count`` bits (sample ``w * bit_count + j`` is bit
    ``j`` of word ``w``; the int8..int64 words hold the unsigned bit patterns).

    ``model.eval()(PackBitsTensor(x))`` returns the int32 class counts (batch, k).  ``t`` may
    also be (batch, ...): the trailing dimensions are flattened (upstream needed a reshape).
    ``device='cuda'`` without a GPU falls back to the CPU with a warning, as ``LogicLayer`` does.
    """

    #: Read by the layers (``difflogic.layers.is_packed_bits``) instead of an import.
    packed_bits = True

    def __init__(self, t, bit_count: int = 32, device="cuda"):
        self.bit_count = _bit_count(bit_count, "bit_count")
        self.device = _device(device)
        bits = _as_bits(t).to(self.device)
        self.batch_size, self.features = bits.shape
        self.t = _pack(bits, self.bit_count)
        self.pad_len = self.t.shape[1] * self.bit_count - self.batch_size

    @classmethod
    def from_words(cls, words: torch.Tensor, batch_size: int, bit_count: int) -> PackBitsTensor:
        """A PackBitsTensor around already packed ``words`` (what the layers return)."""
        self = cls.__new__(cls)
        self.bit_count, self.device, self.t = bit_count, words.device, words
        self.batch_size, self.features = int(batch_size), int(words.shape[0])
        self.pad_len = words.shape[1] * bit_count - self.batch_size
        return self

    def flatten(self, *args, **kwargs) -> PackBitsTensor:
        """Already flat (features are one axis): ``nn.Flatten`` passes the tensor through."""
        return self

    def unpack(self) -> torch.Tensor:
        """The bool tensor (batch, features) this packs."""
        return _unpack(self.t, self.bit_count, self.batch_size).T

    def gates(self, wire_a, wire_b, ops) -> PackBitsTensor:
        """A hard gate layer on the packed words: output ``g`` = gate ``ops[g]`` of inputs
        ``wire_a[g]``, ``wire_b[g]`` (a new tensor; this one is left as it is)."""
        reads = int(torch.maximum(wire_a.max(), wire_b.max())) + 1 if wire_a.numel() else 0
        if reads > self.features:
            raise ValueError(f"PackBitsTensor: the layer reads {reads} inputs but the tensor has "
                             f"{self.features} features per sample")
        dev = self.t.device
        words = _gate_words(self.t, wire_a.to(dev), wire_b.to(dev), ops.to(dev))
        return PackBitsTensor.from_words(words, self.batch_size, self.bit_count)

    def group_sum(self, k: int) -> torch.Tensor:
        """int32 (batch, k): the ones in each of k consecutive feature groups (no tau)."""
        if self.features % k:
            raise ValueError(f"GroupSum: {self.features} features are not divisible by k={k}")
        return _group_counts(self.t, k, self.bit_count, self.batch_size)

    def run_model(self, model) -> torch.Tensor:
        """int32 (batch, k) counts of a whole network on these bits (its encoded input, as
        ``difflogic.compiler.encode_input`` makes it), through the netlist simulator."""
        net = compile_netlist(model, optimize=False)
        if self.features != net.n_inputs:
            raise ValueError(f"PackBitsTensor: the model takes {net.n_inputs} input bits per sample "
                             f"(shape {tuple(net.input_shape)}), the tensor has {self.features}")
        words = _to_sim_words(self.t, self.bit_count).reshape(*net.input_shape, -1)
        feats = sim.run_packed(net, words)
        counts = sim.group_counts(feats, net.head.k, self.batch_size).astype(np.int32)
        return torch.from_numpy(counts).to(self.device)

    def __repr__(self) -> str:
        return (f"PackBitsTensor(batch_size={self.batch_size}, features={self.features}, "
                f"bit_count={self.bit_count}, device={self.device})")


def _device(device) -> torch.device:
    try:
        dev = torch.device(device)
    except (TypeError, RuntimeError) as e:
        raise ValueError(f"device must be 'cpu' or 'cuda' (or 'cuda:N'), got {device!r} "
                         f"({e})") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        warnings.warn("PackBitsTensor(device='cuda'): no CUDA device available, using the CPU",
                      stacklevel=3)
        return torch.device("cpu")
    return dev


def _as_bits(t) -> torch.Tensor:
    """``t`` as a bool tensor (batch, features); 0/1 integers are accepted too."""
    x = torch.as_tensor(np.asarray(t) if not isinstance(t, torch.Tensor) else t)
    if x.dim() < 2:
        raise ValueError(f"PackBitsTensor needs a (batch, features) tensor, got shape {tuple(x.shape)}")
    x = x.reshape(x.shape[0], -1)
    if x.dtype != torch.bool:
        binary = not (x.is_floating_point() or x.is_complex()) and \
            (not x.numel() or bool(((x == 0) | (x == 1)).all()))
        if not binary:
            raise TypeError(f"PackBitsTensor needs bool (or 0/1 integer) data, got {x.dtype}; "
                            "binarize first, e.g. PackBitsTensor(x > 0.5)")
        x = x != 0
    return x


def _pack(bits: torch.Tensor, bc: int) -> torch.Tensor:
    """(N, F) bool -> (F, ceil(N / bc)) words, one bit position at a time (no wide temporary)."""
    N, F = bits.shape
    nw = max(1, -(-N // bc))
    padded = torch.zeros(nw * bc, F, dtype=torch.bool, device=bits.device)
    padded[:N] = bits
    grid = padded.view(nw, bc, F)
    dtype = _WORD_DTYPE[bc]
    words = torch.zeros(nw, F, dtype=dtype, device=bits.device)
    for j in range(bc):   # bit bc - 1 lands on the sign bit: the unsigned pattern, as signed
        words |= grid[:, j].to(dtype) << j
    return words.T.contiguous()


def _unpack(words: torch.Tensor, bc: int, n: int) -> torch.Tensor:
    """(F, NW) words -> (F, n) bool."""
    shifts = torch.arange(bc, device=words.device).to(words.dtype)
    bits = (words.unsqueeze(-1) >> shifts) & 1
    return bits.reshape(words.shape[0], -1)[:, :n].bool()


def _gate_words(words, a, b, ops) -> torch.Tensor:
    """Hard gates on packed words, in algebraic normal form: ``f = c0 ^ cA&A ^ cB&B ^ cAB&A&B``
    with the coefficient masks of each gate's truth table (all ones or all zeros)."""
    # (G, 4) truth-table bits for (A, B) = 00, 01, 10, 11
    tt = torch.as_tensor(gates.TRUTH_TABLES, device=words.device)[ops.long()].long()
    anf = torch.stack([tt[:, 0], tt[:, 0] ^ tt[:, 2], tt[:, 0] ^ tt[:, 1],
                       tt[:, 0] ^ tt[:, 1] ^ tt[:, 2] ^ tt[:, 3]], 1)
    m = (-anf).to(words.dtype)[:, :, None]                      # 0 or all ones
    A, B = words[a.long()], words[b.long()]
    return m[:, 0] ^ (m[:, 1] & A) ^ (m[:, 2] & B) ^ (m[:, 3] & A & B)


def _group_counts(words, k: int, bc: int, n: int) -> torch.Tensor:
    """int32 (n, k) popcounts of k feature groups, one bit position of the words at a time."""
    F, nw = words.shape
    per_bit = torch.empty(k, nw, bc, dtype=torch.int32, device=words.device)
    grouped = words.view(k, F // k, nw)
    for j in range(bc):
        per_bit[:, :, j] = ((grouped >> j) & 1).sum(1, dtype=torch.int32)
    return per_bit.reshape(k, nw * bc)[:, :n].T.contiguous()


def _to_sim_words(words: torch.Tensor, bc: int) -> np.ndarray:
    """(F, NW) words of bc bits -> (F, ceil(NW * bc / 64)) uint64 in the simulator's layout
    (sample n at bit n % 64 of word n // 64): the same bit stream, read 64 bits at a time."""
    arr = words.detach().cpu().numpy()
    per = 64 // bc
    pad = (-arr.shape[1]) % per
    if pad:
        arr = np.concatenate([arr, np.zeros((arr.shape[0], pad), arr.dtype)], 1)
    return np.ascontiguousarray(arr).view(np.uint64)   # little-endian hosts (x86-64, ARM)


# ============================================================================ CompiledLogicNet
class CompiledLogicNet(nn.Module):
    """A trained network compiled to a native shared library (upstream's API, this project's
    compiler): ``compile()`` builds it, ``forward(x)`` (or calling it) takes a bool array
    (batch, features) and returns the int32 class counts (batch, k) as a torch tensor.

    ``model``: a LogicNet or an ``nn.Sequential`` of difflogic layers (upstream's dense
    stacks, conv nets, ...), or a compiled :class:`~difflogic.compiler.ir.Netlist`; ``device``
    must be ``'cpu'``; ``num_bits`` (8/16/32/64) is kept for compatibility (the generated code
    chooses its own word width); ``cpu_compiler``: the C compiler's name or path.  Models with
    a ``Thresholds`` encoder also take uint8 images.  Dense layers of at least
    :data:`difflogic.backends.c.TABLE_GATES` gates are compiled in the C back end's table form
    (gates as data), so a net of millions of gates compiles in seconds, not hours.
    """

    def __init__(self, model, device="cpu", num_bits: int = 64, cpu_compiler: str = "gcc",
                 verbose: bool = False):
        super().__init__()
        if str(device) != "cpu":
            raise ValueError(f"CompiledLogicNet runs on the CPU (device='cpu'), got device="
                             f"{device!r}; for GPU inference use PackBitsTensor or `difflogic "
                             "bench --targets cuda-packed`")
        self.device, self.num_bits = "cpu", _bit_count(num_bits, "num_bits")
        self.cpu_compiler, self.verbose, self.threads = cpu_compiler, bool(verbose), 1
        self.model, self.netlist, self.lib, self.meta = model, None, None, None
        if model is not None:
            self.netlist = _netlist_of(model)
            self.meta = _meta(self.netlist, self.num_bits)
            if verbose:
                print(f"CompiledLogicNet: {self.netlist.gate_count():,} gates after optimization, "
                      f"{self.num_inputs} input bits, {self.num_classes} classes")

    num_classes = property(lambda self: self.meta["num_classes"])
    num_inputs = property(lambda self: self.meta["num_inputs"])

    def get_c_code(self) -> str:
        """The generated C source (the library's entry points are in its header comment)."""
        self._need_model("get_c_code")
        return generate(self.netlist, header_name="dl.h")[0]

    def compile(self, opt_level: int = 1, save_lib_path=None, verbose: bool = False) -> None:
        """Build the library with ``cc -O<opt_level>`` (cached by content), load it, and with
        ``save_lib_path`` also save it there with its sidecar ``save_lib_path + '.json'``."""
        self._need_model("compile")
        verbose = verbose or self.verbose
        find_compiler(self.cpu_compiler)   # a clear error (and the package to install) first
        t0 = time.perf_counter()
        src, hdr = generate(self.netlist, header_name="dl.h")
        so = build_shared(src, hdr, opt_level=opt_level, cc=self.cpu_compiler)
        self.meta = {**self.meta, "opt_level": opt_level}
        self.lib = _Library(so, self.meta)
        if verbose:
            print(f"Compiling finished in {time.perf_counter() - t0:.3f} seconds "
                  f"({src.count(chr(10)):,} lines of C).")
        if save_lib_path is not None:
            _save(Path(save_lib_path), so.read_bytes(), self.meta)
            if verbose:
                print(f"saved {save_lib_path} and {_sidecar(Path(save_lib_path))}")

    @staticmethod
    def load(save_lib_path, num_classes: int, num_bits: int) -> CompiledLogicNet:
        """A library saved by ``compile(save_lib_path=...)``, ready to run (no model needed)."""
        path = Path(save_lib_path)
        meta = _read_sidecar(path)
        if num_classes != meta["num_classes"]:
            raise ValueError(f"{path} computes {meta['num_classes']} classes, load() was given "
                             f"num_classes={num_classes!r}; pass num_classes={meta['num_classes']}")
        self = CompiledLogicNet(None, num_bits=num_bits)
        self.meta = {**meta, "num_bits": self.num_bits}
        self.lib = _Library(path, meta)
        return self

    def forward(self, x, verbose: bool = False, threads: int | None = None) -> torch.Tensor:
        """int32 (batch, k) class counts of bool ``x`` (batch, features) (numpy or torch), or
        of uint8 images for a model with an input encoder.  ``threads``: default 1, as upstream."""
        if self.lib is None:
            raise RuntimeError("CompiledLogicNet: call compile() (or CompiledLogicNet.load) before "
                               "running it")
        data, is_bits = _inputs(x, self.meta)
        counts = self.lib.counts(data, is_bits, self.threads if threads is None else threads)
        if verbose:
            print(f"CompiledLogicNet: {len(data):,} samples -> counts {tuple(counts.shape)}")
        return torch.from_numpy(counts)

    def _need_model(self, what: str) -> None:
        if self.netlist is None:
            raise RuntimeError(f"CompiledLogicNet.{what}() needs the model; a library opened with "
                               "load() can only be run")


def _netlist_of(model):
    """The optimized netlist of ``model``, or ``model`` itself when it is a Netlist (upstream's
    ``nn.Sequential(Flatten, LogicLayer...)`` records no input shape: it is the first gate
    layer's input width)."""
    if isinstance(model, ir.Netlist):   # already compiled: taken as it is
        return model
    if not isinstance(model, nn.Module):
        raise TypeError(f"CompiledLogicNet needs a trained model (a LogicNet or nn.Sequential of "
                        f"difflogic layers), got {type(model).__name__}")
    shape = None
    if getattr(model, "input_shape", None) is None and isinstance(model, nn.Sequential):
        mods = [m for m in model if not isinstance(m, (Flatten, nn.Flatten, nn.Identity))]
        if mods and isinstance(mods[0], LogicDense):
            shape = (mods[0].in_features,)
    try:
        return compile_netlist(model, input_shape=shape)
    except (ValueError, TypeError) as e:
        raise type(e)(f"CompiledLogicNet: {str(e).removeprefix('harden: ')}") from None


def _meta(net: ir.Netlist, num_bits: int) -> dict:
    enc = net.encoder
    return {"format": SIDECAR_FORMAT, "version": 1, "difflogic_version": __version__,
            "num_classes": int(net.head.k), "tau": float(net.head.tau),
            "num_inputs": int(net.n_inputs), "input_shape": [int(s) for s in net.input_shape],
            "image_shape": None if enc is None else [int(s) for s in enc.in_shape],
            "gates": int(net.gate_count()), "num_bits": num_bits}


def _inputs(x, meta: dict) -> tuple[np.ndarray, bool]:
    """(contiguous uint8 data, is_bits) for the library, or a one-line error."""
    arr = np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x)
    image = meta["image_shape"]
    if arr.dtype == np.uint8 and image and arr.ndim == len(image) + 1 and list(arr.shape[1:]) == image:
        return np.ascontiguousarray(arr), False
    if arr.ndim < 2 or int(np.prod(arr.shape[1:])) != meta["num_inputs"]:
        raise ValueError(f"CompiledLogicNet: expected a bool array (batch, {meta['num_inputs']})"
                         f"{f' or uint8 images (batch, {tuple(image)})' if image else ''}, "
                         f"got shape {tuple(arr.shape)}")
    flat = arr.reshape(len(arr), meta["num_inputs"])
    if arr.dtype == np.bool_:   # the same bytes as uint8 0/1: no copy, no check
        return np.ascontiguousarray(flat).view(np.uint8), True
    if arr.dtype.kind not in "iu" or (arr.size and (arr.min() < 0 or arr.max() > 1)):
        raise TypeError(f"CompiledLogicNet: inputs must be bool (or 0/1 integers), got "
                        f"{arr.dtype}; e.g. x = (x > 0.5).numpy()")
    return np.ascontiguousarray(flat, dtype=np.uint8), True


class _Library:
    """A compiled network's shared library through its C entry points (see
    :mod:`difflogic.backends.c`): ``dl_scores_bits`` / ``dl_scores_u8``."""

    def __init__(self, so_path: Path, meta: dict):
        try:
            self.lib = ctypes.CDLL(str(Path(so_path).resolve()))
            self.fns = {True: self.lib.dl_scores_bits, False: self.lib.dl_scores_u8}
        except (OSError, AttributeError) as e:
            raise ValueError(f"{so_path}: not a library compiled by difflogic ({e})") from None
        for f in self.fns.values():
            f.restype = ctypes.c_int
            f.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_int]
        self.k = meta["num_classes"]

    def counts(self, data: np.ndarray, is_bits: bool, threads: int) -> np.ndarray:
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads must be a positive integer, got {threads!r}")
        out = np.zeros((len(data), self.k), np.int32)
        if len(data):
            status = self.fns[is_bits](data.ctypes.data, len(data), out.ctypes.data, threads)
            if status != 0:
                raise RuntimeError(f"compiled network failed with status {status} (-1: out of memory)")
        return out


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def _save(path: Path, library: bytes, meta: dict) -> None:
    """The library and its sidecar, written together (both complete or neither)."""
    if path.is_dir():
        raise IsADirectoryError(f"save_lib_path={str(path)!r} is a directory; give a file name "
                                "such as model.so")
    doc = {**meta, "sha256": hashlib.sha256(library).hexdigest()}
    write_files(path.parent if str(path.parent) else ".",
                {path.name: library, _sidecar(path).name: json.dumps(doc, indent=1) + "\n"})


def _read_sidecar(path: Path) -> dict:
    side = _sidecar(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such library file")
    try:
        meta = json.loads(side.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: its sidecar {side.name} is missing or unreadable ({e}); load() "
                         "opens libraries saved by CompiledLogicNet.compile(save_lib_path=...) "
                         "of this package: compile the model again") from None
    if not isinstance(meta, dict) or meta.get("format") != SIDECAR_FORMAT or meta.get("version") != 1:
        raise ValueError(f"{side}: not a CompiledLogicNet sidecar (format {SIDECAR_FORMAT}, version 1)")
    if hashlib.sha256(path.read_bytes()).hexdigest() != meta.get("sha256"):
        raise ValueError(f"{path} does not match its sidecar {side.name} (checksum differs): the "
                         "library was replaced; save both again with compile(save_lib_path=...)")
    return meta
