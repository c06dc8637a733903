"""``--target cuda-packed``: bit-packed inference of a netlist on an NVIDIA GPU.

Samples are packed 32 (or 64) per machine word, so every gate is one word operation, and each
op of the netlist runs on the packed kernels of :mod:`difflogic.kernels.cuda`:

* a dense block as hardening leaves it (one level of gates on its leaves, outputs = gates):
  one ``dense_packed`` launch;
* a conv block of complete binary trees (as hardened): ``tree_conv_pool_packed``, fused with
  the OR pool that follows it;
* any other cell (optimized: shared gates, wires, constants; trees deeper than the kernel's
  limit) is *levelled*: its gates sorted by depth into a node buffer ``[leaves | 0 | 1 |
  gates]``, one ``dense_packed`` launch per level; a conv cell is evaluated at every output
  position at once, the positions laid out along the word axis;
* ``OrPool``: ``or_pool_packed``; the GroupSum head: ``group_sum_packed``.

:func:`plan` is that mapping as plain arrays (no GPU needed); :class:`CudaPackedRunner` uploads
and runs it; ``export`` writes it (``packed_program.json`` + ``.npz``) for :func:`load_program`.
"""
from __future__ import annotations

import io
import json
import time
from pathlib import Path

import numpy as np
import torch

from .. import functional as F
from .. import kernels
from ..compiler import check_bits, ir
from ..compiler import compile as compile_netlist
from ..files import write_files
from .base import Backend, Option, Runner, register

WORD_BITS = (32, 64)
PROGRAM = "packed_program"
_ARRAYS = ("a", "b", "op", "out", "leaves", "levels")


# --------------------------------------------------------------------------- the plan
def _simple_dense(blk: ir.GateBlock) -> dict | None:
    """A dense block whose gates all read leaves and whose outputs are its gates in order."""
    first, G = blk.first_gate, blk.n_gates
    if not G or not np.array_equal(blk.outputs, first + np.arange(G)):
        return None
    if (blk.a >= first).any() or (blk.b >= first).any() or (blk.a < ir.FIRST_LEAF).any() \
            or (blk.b < ir.FIRST_LEAF).any():
        return None
    return {"kind": "dense", "a": blk.leaves[blk.a - ir.FIRST_LEAF], "op": blk.op,
            "b": blk.leaves[blk.b - ir.FIRST_LEAF]}


def _tree_leaves(blk: ir.GateBlock) -> np.ndarray | None:
    """(K, L) leaf indices when the cell is K complete binary trees in the hardened order
    (per tree, level by level, each gate reading two neighbours of the level below), else None."""
    K = len(blk.outputs)
    if not K or blk.n_gates % K:
        return None
    G, first = blk.n_gates // K, blk.first_gate
    L = G + 1
    if L < 2 or L & (L - 1) or L.bit_length() - 1 > kernels.CUDA_MAX_TREE_DEPTH:
        return None
    a, b = blk.a.reshape(K, G), blk.b.reshape(K, G)
    base = first + np.arange(K)[:, None] * G
    if not np.array_equal(blk.outputs, base[:, 0] + G - 1):
        return None
    start, width = 0, L // 2
    leaf = np.stack([a[:, :width], b[:, :width]], 2).reshape(K, L)
    if ((leaf < ir.FIRST_LEAF) | (leaf >= first)).any():
        return None
    while width > 1:   # level above: gate j reads gates 2j and 2j+1 of this level
        prev = base + start + np.arange(width)
        nxt = start + width
        width //= 2
        if not (np.array_equal(a[:, nxt:nxt + width], prev[:, 0::2])
                and np.array_equal(b[:, nxt:nxt + width], prev[:, 1::2])):
            return None
        start = nxt
    return leaf - ir.FIRST_LEAF


def _tree(blk: ir.GateBlock, leaf: np.ndarray, pool: int) -> dict:
    K, L = leaf.shape
    return {"kind": "tree", "leaves": blk.leaves[leaf].reshape(K, L, 3), "op": blk.op.reshape(K, L - 1),
            "in_shape": list(blk.in_shape), "kernel_size": list(blk.kernel_size),
            "stride": blk.stride, "padding": blk.padding, "pool": pool}


def _depths(blk: ir.GateBlock) -> np.ndarray:
    """Per gate: 1 + the deeper of its operands (leaves and constants: 0)."""
    first = blk.first_gate
    depth = np.zeros(first + blk.n_gates, np.int64)
    a, b = blk.a.tolist(), blk.b.tolist()
    for g in range(blk.n_gates):
        depth[first + g] = 1 + max(depth[a[g]], depth[b[g]])
    return depth[first:]


def _cell(blk: ir.GateBlock) -> dict:
    """The levelled cell: buffer rows [leaves | 0 | 1 | gates by level]; ``levels[j]:levels[j+1]``
    are the gates of level j + 1 (offsets from the first gate row)."""
    L, first, G = blk.n_leaves, blk.first_gate, blk.n_gates
    depth = _depths(blk)
    order = np.argsort(depth, kind="stable")
    row = np.empty(first + G, np.int64)
    row[ir.CONST0], row[ir.CONST1] = L, L + 1
    row[ir.FIRST_LEAF:first] = np.arange(L)
    row[first + order] = L + 2 + np.arange(G)
    levels = np.searchsorted(depth[order], np.arange(1, int(depth.max(initial=0)) + 2))
    step = {"kind": "cell", "conv": blk.kind == "conv", "leaves": blk.leaves, "op": blk.op[order],
            "a": row[blk.a[order]], "b": row[blk.b[order]], "out": row[blk.outputs],
            "levels": levels.astype(np.int64), "in_shape": list(blk.in_shape)}
    if blk.kind == "conv":
        step.update(kernel_size=list(blk.kernel_size), stride=blk.stride, padding=blk.padding,
                    out_shape=list(blk.out_shape))
    return step


def plan(netlist: ir.Netlist) -> dict:
    """The netlist as a list of packed-kernel steps (plain numpy arrays and numbers)."""
    if not isinstance(netlist, ir.Netlist):
        raise TypeError(f"netlist must be a difflogic.compiler.ir.Netlist, got {type(netlist).__name__}")
    ops, steps, i = list(netlist.ops), [], 0
    while i < len(ops):
        op = ops[i]
        nxt = ops[i + 1] if i + 1 < len(ops) else None
        leaf = _tree_leaves(op) if isinstance(op, ir.GateBlock) and op.kind == "conv" else None
        if leaf is not None:
            pool = nxt.size if isinstance(nxt, ir.OrPool) and nxt.size <= kernels.CUDA_MAX_POOL else 1
            steps.append(_tree(op, leaf, pool))
            i += 2 if pool > 1 else 1
            continue
        if isinstance(op, ir.GateBlock):
            steps.append((_simple_dense(op) if op.kind == "dense" else None) or _cell(op))
        elif isinstance(op, ir.OrPool):
            steps.append({"kind": "pool", "in_shape": list(op.in_shape), "size": op.size})
        else:
            raise TypeError(f"cuda-packed: unknown netlist op {type(op).__name__}")
        i += 1
    head = netlist.head
    return {"input_shape": list(netlist.input_shape), "k": head.k, "tau": head.tau,
            "features": head.in_features, "steps": steps}


# --------------------------------------------------------------------------- running it
def _cuda_kernels():
    try:
        from ..kernels import cuda
    except ImportError as e:
        raise RuntimeError(f"--target cuda-packed cannot run here: {e}") from None
    return cuda


def _word_dtype(word_bits: int):
    if word_bits not in WORD_BITS:
        raise ValueError(f"word_bits must be 32 or 64, got {word_bits!r}")
    return torch.int32 if word_bits == 32 else torch.int64


class _Level:
    """One launch of a levelled cell: its gates' operand rows and ops, on the device (kept
    alive, so that the kernels' per-tensor wiring tables stay cached)."""

    def __init__(self, step: dict, lo: int, hi: int, dev):
        self.a = torch.as_tensor(step["a"][lo:hi], device=dev)
        self.b = torch.as_tensor(step["b"][lo:hi], device=dev)
        self.op = torch.as_tensor(step["op"][lo:hi], dtype=torch.uint8, device=dev)


def _upload(step: dict, dev) -> dict:
    """The step's arrays as device tensors (cells: one :class:`_Level` per level)."""
    out = dict(step)
    if step["kind"] == "cell":
        lv = step["levels"].tolist()
        out["launches"] = [_Level(step, lo, hi, dev) for lo, hi in zip(lv[:-1], lv[1:])]
        out["out"] = torch.as_tensor(step["out"], device=dev)
        if step["conv"]:
            out["gather"] = _conv_gather(step, dev)
        else:
            out["leaves"] = torch.as_tensor(step["leaves"], device=dev)
        return out
    for key in ("a", "b"):
        if key in step:
            out[key] = torch.as_tensor(step[key], device=dev)
    if "op" in step:
        out["op"] = torch.as_tensor(step["op"], dtype=torch.uint8, device=dev)
    if step["kind"] == "tree":
        out["leaves"] = [torch.as_tensor(step["leaves"][..., j], device=dev) for j in range(3)]
    return out


def _conv_gather(step: dict, dev) -> tuple:
    """Index tensors reading every leaf at every output position from the padded input."""
    lv = np.asarray(step["leaves"], np.int64).reshape(-1, 3)
    _, Ho, Wo = step["out_shape"]
    s = step["stride"]
    rows = lv[:, 1][:, None, None] + s * np.arange(Ho)[None, :, None]
    cols = lv[:, 2][:, None, None] + s * np.arange(Wo)[None, None, :]
    return tuple(torch.as_tensor(t, device=dev) for t in (lv[:, 0][:, None, None], rows, cols))


def _leaf_words(step: dict, words: torch.Tensor) -> torch.Tensor:
    """(n_leaves, positions * NW) words of the cell's leaves."""
    if not step["conv"]:
        return words.index_select(0, step["leaves"])
    C, H, W = step["in_shape"]
    p, NW = step["padding"], words.shape[1]
    padded = words.new_zeros(C, H + 2 * p, W + 2 * p, NW)
    padded[:, p:p + H, p:p + W] = words.view(C, H, W, NW)
    c, rows, cols = step["gather"]
    return padded[c, rows, cols].reshape(c.shape[0], -1)


def _run_cell(cu, step: dict, words: torch.Tensor) -> torch.Tensor:
    leaves = _leaf_words(step, words)
    L = leaves.shape[0]
    buf = words.new_empty(L + 2 + int(step["levels"][-1]), leaves.shape[1])
    buf[:L] = leaves
    buf[L] = 0
    buf[L + 1] = -1   # all ones
    row = L + 2
    for lv in step["launches"]:
        n = lv.op.shape[0]
        buf[row:row + n] = cu.dense_packed(buf, lv.a, lv.b, lv.op)
        row += n
    out = buf.index_select(0, step["out"])
    return out.reshape(-1, words.shape[1])   # conv: (K, Ho*Wo*NW) -> (K*Ho*Wo, NW)


def _run_step(cu, step: dict, words: torch.Tensor) -> torch.Tensor:
    kind = step["kind"]
    if kind == "dense":
        return cu.dense_packed(words, step["a"], step["b"], step["op"])
    if kind == "tree":
        return cu.tree_conv_pool_packed(words, tuple(step["in_shape"]), *step["leaves"], step["op"],
                                        tuple(step["kernel_size"]), step["stride"], step["padding"],
                                        step["pool"])
    if kind == "pool":
        return cu.or_pool_packed(words, tuple(step["in_shape"]), step["size"])
    return _run_cell(cu, step, words)


class CudaPackedRunner(Runner):
    """A :func:`plan` on the GPU.  ``kernels``: the module of packed kernels (default
    :mod:`difflogic.kernels.cuda`; tests pass its CPU emulation), ``device`` where to run."""

    def __init__(self, program: dict, word_bits: int = 32, device=None, kernels_module=None):
        t0 = time.perf_counter()
        self.word_dtype = _word_dtype(word_bits)
        self.word_bits = word_bits
        self.cu = kernels_module if kernels_module is not None else _cuda_kernels()
        self.device = torch.device(device if device is not None else "cuda")
        self.program = program
        self.steps = [_upload(s, self.device) for s in program["steps"]]
        self.input_shape = tuple(program["input_shape"])
        zero = torch.zeros(1, *self.input_shape, dtype=torch.uint8, device=self.device)
        self.counts_tensor(zero)   # compiles (NVRTC) and loads every kernel it uses
        self.compile_seconds = time.perf_counter() - t0

    @torch.no_grad()
    def counts_tensor(self, bits: torch.Tensor) -> torch.Tensor:
        """int32 (N, k) class counts on the device of uint8 0/1 ``bits`` (N, *input_shape)."""
        words = self.cu.pack_bits(bits, self.word_bits)
        for step in self.steps:
            words = _run_step(self.cu, step, words)
        if words.shape[0] != self.program["features"]:
            raise ValueError(f"cuda-packed: the netlist produces {words.shape[0]} features but "
                             f"GroupSum expects {self.program['features']}")
        return self.cu.group_sum_packed(words, self.program["k"], bits.shape[0])

    def counts(self, bits, threads: int | None = None) -> np.ndarray:
        """Class counts int64 (N, k) of encoded ``bits`` (``threads`` is not used)."""
        arr = np.ascontiguousarray(check_bits(self.input_shape, bits), dtype=np.uint8)
        if not arr.shape[0]:
            return np.zeros((0, self.program["k"]), np.int64)
        x = torch.from_numpy(arr).to(self.device)
        return self.counts_tensor(x).cpu().numpy().astype(np.int64)


# --------------------------------------------------------------------------- files
def _program_files(program: dict) -> dict:
    """The plan as ``packed_program.json`` (steps, shapes) + ``packed_program.npz`` (arrays)."""
    arrays, steps = {}, []
    for i, step in enumerate(program["steps"]):
        meta = {}
        for key, val in step.items():
            if key in _ARRAYS:
                arrays[f"{i}.{key}"] = np.asarray(val)
            else:
                meta[key] = val
        steps.append(meta)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    doc = {"format": "difflogic-cuda-packed", "version": 1, **{k: v for k, v in program.items()
                                                               if k != "steps"}, "steps": steps}
    return {f"{PROGRAM}.json": json.dumps(doc, indent=1) + "\n", f"{PROGRAM}.npz": buf.getvalue()}


def read_program(folder) -> dict:
    """The plan an export wrote into ``folder`` (see :func:`load_program`)."""
    folder = Path(folder)
    try:
        doc = json.loads((folder / f"{PROGRAM}.json").read_text())
        with np.load(folder / f"{PROGRAM}.npz") as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError) as e:
        raise ValueError(f"{folder} holds no readable cuda-packed export ({e}); write one with "
                         "`difflogic export CHECKPOINT --target cuda-packed --out DIR`") from None
    if doc.get("format") != "difflogic-cuda-packed" or doc.get("version") != 1:
        raise ValueError(f"{folder / (PROGRAM + '.json')} is not a cuda-packed program (version 1)")
    steps = [dict(meta) for meta in doc.pop("steps")]
    for key, arr in arrays.items():
        i, name = key.split(".", 1)
        steps[int(i)][name] = arr
    return {**{k: v for k, v in doc.items() if k not in ("format", "version")}, "steps": steps}


def load_program(folder, word_bits: int = 32, device=None, kernels_module=None) -> CudaPackedRunner:
    """A runner of the program an export wrote into ``folder``: no model or compiler needed."""
    return CudaPackedRunner(read_program(folder), word_bits, device, kernels_module)


# --------------------------------------------------------------------------- the back end
class CudaPackedBackend(Backend):
    """``--target cuda-packed``: the packed-kernel program (export) or its run on the GPU (verify)."""

    name = "cuda-packed"
    help = "bit-packed inference on an NVIDIA GPU (CuPy)"
    cli_options = (Option("--word-bits", "word_bits", ("verify",), dict(
        type=int, choices=WORD_BITS, help="samples per machine word (default: 32)")),)

    def unavailable_reason(self, kernels_module=None, **_) -> str | None:
        return None if kernels_module is not None else kernels.cuda_unavailable_reason()

    def emit(self, netlist, out_dir, *, reference=None) -> dict:
        """Write the program (``reference`` is not used: it ships no test vectors)."""
        program = plan(netlist)
        files = write_files(out_dir, _program_files(program))
        launches = sum(len(s["levels"]) - 1 if s["kind"] == "cell" else 1 for s in program["steps"])
        summary = (f"cuda-packed: {len(program['steps'])} steps, {launches + 2} kernel launches "
                   f"per batch (run with difflogic.backends.cuda_packed.load_program)")
        return {"files": {n: str(p) for n, p in files.items()}, "info": {"steps": len(program["steps"])},
                "summary": summary}

    def load(self, netlist, word_bits: int = 32, device=None, kernels_module=None) -> CudaPackedRunner:
        return CudaPackedRunner(plan(netlist), word_bits, device, kernels_module)


BACKEND = register(CudaPackedBackend())


class PackedNet:
    """Bit-packed GPU inference of a model with eval-mode (hard) semantics, from the netlist.

    ``compile(model, optimize=False)`` keeps the conv cells complete trees, which the fused tree
    kernel runs fastest (an optimized netlist runs too, levelled).  The gates are a snapshot:
    build a new one after further training.  ``counts(x)``: int32 (N, k) on the device;
    calling it returns ``counts / tau``, what ``model.eval()(x)`` returns.  ``x``: float (or
    uint8) images when the model starts with ``Thresholds``, else {0, 1} values.
    """

    def __init__(self, model, word_bits: int = 32, device=None, kernels_module=None,
                 optimize: bool = False):
        self.netlist = compile_netlist(model, optimize=optimize)
        if device is None:   # where the model lives (default: the current CUDA device)
            params = list(model.parameters()) if isinstance(model, torch.nn.Module) else []
            device = params[0].device if params else None
        self.runner = BACKEND.load(self.netlist, word_bits, device, kernels_module)
        enc = self.netlist.encoder
        dev = self.runner.device
        self._thresholds = None if enc is None else torch.as_tensor(enc.thresholds).to(dev)
        self._cutoffs = None if enc is None else torch.as_tensor(enc.u8_cutoffs).to(dev)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 0/1 input bits (N, *input_shape) on the device, as the model's encoder makes them."""
        enc = self.netlist.encoder
        if enc is None:
            if x.dtype.is_floating_point and not bool(((x == 0) | (x == 1)).all()):
                raise ValueError("without a Thresholds layer the input must hold 0/1 values")
            return x.to(torch.uint8)
        if tuple(x.shape[1:]) != tuple(enc.in_shape):
            raise ValueError(f"x must have shape (N, {', '.join(map(str, enc.in_shape))}), got {tuple(x.shape)}")
        C, T = enc.thresholds.shape
        view = (1, C, T, *[1] * (x.dim() - 2))
        if x.dtype == torch.uint8:   # pixel >= cutoff == pixel / 255 > threshold (float32)
            bits = x.unsqueeze(2).to(torch.int32) >= self._cutoffs.view(view)
        else:
            bits = x.unsqueeze(2) > self._thresholds.to(x.dtype).view(view)
        return bits.reshape(x.shape[0], C * T, *x.shape[2:]).to(torch.uint8)

    @torch.no_grad()
    def counts(self, x: torch.Tensor) -> torch.Tensor:
        return self.runner.counts_tensor(self.encode(x.to(self.runner.device)))

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return F.exact_div(self.counts(x), self.netlist.head.tau)
