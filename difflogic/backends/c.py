"""C back end: emit self-contained, bit-packed C99 (+ GCC vector extensions) from the IR.

Layout of the generated code
----------------------------
* The batch is bit-sliced: one ``dl_word`` holds ``64 * DL_LANES`` samples (default 4 lanes =
  256 samples, one AVX2 register, also where AVX-512 is present), so every gate is one
  bitwise word operation.  Flags (-O level, word width) are chosen by measurement: see
  ``export/c/Makefile``.
* Dense blocks are emitted straight onto workspace words: only gates read outside their chunk
  get a word, outputs wired to a leaf / constant cost nothing (consumers read the source),
  words are reused after their last reader (liveness), and gates are ordered by the words
  they read, so the working set is about two layers and reads stream.
* Each GateBlock's *cell* becomes straight-line code split into small functions ("chunks")
  so the C compiler's time stays linear in the gate count; values needed by a later chunk
  go through a small scratch array.
* A dense block of at least ``table_gates`` gates (:data:`TABLE_GATES`) is instead *data*, read
  by one loop (:mod:`.c_table`): it compiles in seconds where straight-line code of millions
  of gates takes the C compiler minutes to hours, and runs a few percent slower
  (benches/notes/2026-12-08-big-net-compile.md).
* Conv blocks are **not** unrolled: a loop over output positions calls the cell with a pointer
  to the position's receptive field, leaves are constant offsets from it.  Activations are
  stored with the zero border the next conv needs, so there is no bounds check anywhere.
  An OR pool that follows a conv is fused: one cell call covers a pooled position's whole
  window (every chunk evaluates its gates at each window offset and ORs its outputs in
  registers), so each pooled output is stored once and never read back or cleared; outputs
  wired to a leaf become an OR of loads; outputs that are constant 0 are never stored (the
  workspace is zeroed once).
* Input packing (``export/c/runtime_bits.h``, ``runtime_tail.h``): a block's sample-major rows
  are transposed 16 x 16 bytes at a time into a tile of columns (one cache line of each row
  per step, the rows two steps ahead prefetched into L2), and a column becomes a word with
  one vector operation per 32 samples (AVX2) or 64 (AVX-512BW).  uint8 images: per channel,
  the thermometer bits come from the pixel's bit planes and a few comparator gates
  (``pixel >= cutoff`` over the planes the cutoffs need), or from one compare per threshold,
  whichever the generator counts cheaper; thresholds nothing reads are never computed.
  0/1 bytes: 8 samples' rows are OR-ed into one row of bytes (shifts inside 64-bit lanes),
  then transposed.  Packed bits: the bytes are transposed and each bit plane is a feature.
  float32: 8 x 8 float transposes, then one IEEE compare per threshold.
* GroupSum counts only the non-constant features of each class, bit-sliced with
  Harley-Seal carry-save adders, read back with masked vector adds (AVX-512) or 8-wide vector
  ops; argmax (first maximum) is done by the caller / predict.
* Every call allocates its own workspace: thread-safe, no global mutable state; any batch
  size works (the last partial block is zero-padded and only valid samples are written);
  ``n_threads`` > 1 splits the blocks over pthreads.

Entry points (``<prefix>`` defaults to ``dl``), one per input form::

    int dl_scores_u8(const uint8_t* images, size_t n, int32_t* counts, int n_threads);
    int dl_scores_f32(const float* x, size_t n, int32_t* counts, int n_threads);
    int dl_scores_bits(const uint8_t* bits, size_t n, int32_t* counts, int n_threads);
    int dl_scores_packed(const uint8_t* packed, size_t n, int32_t* counts, int n_threads);
    int dl_predict_u8(const uint8_t* images, size_t n, int32_t* classes, int n_threads);

``counts`` is (n, k) int32 class counts (divide by tau for the float scores).  Return 0 on
success, -1 out of memory, -2 null pointer, -3 no input encoder (``_u8`` / ``_f32``; use
``_bits``), -4 a bad input value (a 0/1 byte that is neither, in a feature the network reads;
a NaN or infinite float).
"""
from __future__ import annotations

import argparse
import ctypes
import hashlib
import heapq
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from .. import gates
from .._resources import template
from ..compiler import check_bits, encode_input, ir
from ..compiler import compile as compile_netlist
from ..files import write_files
from . import c_table
from .base import Backend, Option, Runner, register

DEFAULT_LANES = None   # None: the compiled code's default, 4 (256-bit words; see export/c/Makefile)
DEFAULT_OPT_LEVEL = 1  # -O level of CompiledNet, as the exported Makefile's (chosen there by measurement)
CHUNK_GATES = 64
LOC0, LOC1 = -1, -2   # locations of the constant words (see _Emitter.dense)
_FOREVER = 1 << 62    # the last step of a word that is never freed
#: Dense blocks of at least this many gates are emitted in the table form (gates as data, one
#: loop; :mod:`.c_table`), smaller ones as straight-line C.  Chosen by measurement: the
#: dated note benches/notes/2026-12-08-big-net-compile.md.
TABLE_GATES = 50_000
FORMS = ("u8", "f32", "bits", "packed")   # the input forms: dl_scores_<form>
BAD_INPUT = -4        # status of a 0/1 byte that is not 0 or 1, or a NaN / infinite float
_PREFIX_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,30}$")


# --------------------------------------------------------------------------- geometry
def _shape3(shape) -> tuple:
    shape = tuple(int(s) for s in shape)
    if len(shape) == 3:
        return shape
    if len(shape) == 1:
        return (shape[0], 1, 1)
    if len(shape) == 2:   # (C, W): channel-major like an image, so the u8 encoder's planes fit
        return (shape[0], 1, shape[1])
    return (int(np.prod(shape)), 1, 1)


class _Buf:
    """An activation buffer: logical (C, H, W) stored as (C, H+2p, W+2p) words at ``off``."""

    def __init__(self, shape, pad, off):
        self.C, self.H, self.W = _shape3(shape)
        self.pad = pad
        self.off = off
        self.Hp, self.Wp = self.H + 2 * pad, self.W + 2 * pad
        self.plane = self.Hp * self.Wp
        self.words = self.C * self.plane

    def index(self, c, y, x):
        return c * self.plane + (y + self.pad) * self.Wp + (x + self.pad)


def _plan(net: ir.Netlist):
    """Fuse conv+pool, choose buffer paddings, lay out the workspace."""
    steps = []  # (kind, block_or_pool, pool_size)
    ops = list(net.ops)
    i = 0
    while i < len(ops):
        op = ops[i]
        if isinstance(op, ir.GateBlock) and op.kind == "conv" and i + 1 < len(ops) \
                and isinstance(ops[i + 1], ir.OrPool):
            steps.append(("conv", op, ops[i + 1].size))
            i += 2
            continue
        if isinstance(op, ir.GateBlock):
            steps.append((op.kind, op, 1))
        elif isinstance(op, ir.OrPool):
            steps.append(("pool", op, op.size))
        else:
            raise TypeError(f"C back end: unknown op {type(op).__name__}")
        i += 1

    def pad_for(k):  # padding the consumer of buffer k needs
        if k < len(steps) and steps[k][0] == "conv":
            return steps[k][1].padding
        return 0

    shapes = [tuple(net.input_shape)]
    for kind, op, p in steps:
        if kind == "conv":
            K, Ho, Wo = op.out_shape
            shapes.append((K, Ho // p, Wo // p))
        else:
            shapes.append(tuple(op.out_shape))
    for k, (kind, op, _) in enumerate(steps):   # a conv / pool reads its input as (C, H, W)
        if kind != "dense" and int(np.prod(shapes[k])) == int(np.prod(op.in_shape)):
            shapes[k] = tuple(op.in_shape)

    def real(k):  # a dense-produced buffer only exists in memory when a conv / pool reads it
        if k == 0 or steps[k - 1][0] != "dense":
            return True
        return k < len(steps) and steps[k][0] != "dense"

    bufs, off = [], 0
    for k, s in enumerate(shapes):
        b = _Buf(s, pad_for(k), off if real(k) else None)
        if real(k):
            off += b.words
        bufs.append(b)
    return steps, bufs, off


# --------------------------------------------------------------------------- cells
def _chunk_body(op, a, b, gate_range, ref, stores) -> list[str]:
    """C lines of one chunk function: ``const dl_word v<g> = <gate expr>;`` per gate (operands
    named by ``ref(node)``, the 16 gates rendered by :func:`difflogic.gates.render`), each
    followed by the store lines ``stores(g)`` yields (shared by conv cells and dense layers)."""
    body = []
    for g in gate_range:
        expr = gates.render(op[g], ref(a[g]), ref(b[g]), zero="DL_ZERO", one="DL_ONES")
        body.append(f"  const dl_word v{g} = {expr};")
        body.extend(stores(g))
    return body


class _Emitter:
    def __init__(self, prefix: str, chunk: int, table_gates: int | None = None):
        self.prefix = prefix
        self.chunk = chunk
        self.table_gates = table_gates   # dense blocks of at least this many gates: table form
        self.out: list[str] = []
        self.max_tmp = 1
        self.tables: list[np.ndarray] = []   # the table blocks' rows, in table order
        self.tab_ints = 0
        self.const_words = None              # the words table blocks read constants from

    def cell(self, name, blk: ir.GateBlock, leaf_off, ys: int, windows=(0,)) -> str:
        """Emit the cell of ``blk`` as chunk functions + a driver; returns the driver's name.

        The driver evaluates the cell at every offset of ``windows`` (the positions of a
        fused OR pool's window, ``(0,)`` without a pool): leaf ``l`` reads ``x[leaf_off[l] + w]``
        and output ``k`` is stored once, ``y[k*ys]`` = the OR of its values over the window,
        so a pooled output is neither read back nor cleared.  Each chunk function evaluates
        its gates at every window position (values read by a later chunk go through
        ``t[w * slots + slot]``) and ORs its outputs in registers."""
        first = blk.first_gate
        n = blk.n_gates
        op, a, b = blk.op.tolist(), blk.a.tolist(), blk.b.tolist()
        CH = self.chunk
        nch = -(-n // CH)
        needs_slot = np.zeros(n, bool)   # gates read by a later chunk get a scratch slot
        for g in range(n):
            for src in (a[g], b[g]):
                if src >= first and (src - first) // CH != g // CH:
                    needs_slot[src - first] = True
        slot = np.cumsum(needs_slot) - 1
        n_slots = int(needs_slot.sum())
        self.max_tmp = max(self.max_tmp, n_slots * len(windows))
        outs_of_gate: dict[int, list] = {}
        direct = []
        for k, node in enumerate(blk.outputs.tolist()):
            if node >= first:
                outs_of_gate.setdefault(node - first, []).append(k)
            elif node != ir.CONST0:   # CONST0 outputs are never stored: the workspace is zeroed once
                direct.append((k, node))
        leaf_off = [int(v) for v in leaf_off]
        fns = []
        for cg in range(nch):
            fn = f"{name}_{cg}"
            fns.append(fn)
            self.out.append(self._chunk_fn(fn, cg, op, a, b, first, leaf_off, windows, needs_slot, slot,
                                           n_slots, outs_of_gate, ys))
        calls = [f"  {fn}(x, y, t);" for fn in fns]
        for k, node in direct:   # outputs wired to a leaf (a window's OR of it) or to TRUE
            val = "DL_ONES" if node == ir.CONST1 else " | ".join(
                f"x[{leaf_off[node - ir.FIRST_LEAF] + w}]" for w in windows)
            calls.append(f"  y[{k * ys}] = {val};")
        self.out.append(f"static inline void {name}(const dl_word* restrict x, dl_word* restrict y, "
                        f"dl_word* restrict t) {{\n  (void)x; (void)y; (void)t;\n" + "\n".join(calls) + "\n}\n")
        return name

    def _chunk_fn(self, fn, cg, op, a, b, first, leaf_off, windows, needs_slot, slot, n_slots,
                  outs_of_gate, ys) -> str:
        """One chunk of a cell: its gates at every window position, outputs OR-ed over them."""
        CH = self.chunk
        gates_c = range(cg * CH, min(len(op), (cg + 1) * CH))
        acc = [g for g in gates_c if g in outs_of_gate]
        body = [f"  dl_word {', '.join(f'o{g}' for g in acc)};"] if acc else []
        for wi, w in enumerate(windows):
            def ref(node):
                if node == ir.CONST0:
                    return "DL_ZERO"
                if node == ir.CONST1:
                    return "DL_ONES"
                if node < first:
                    return f"x[{leaf_off[node - ir.FIRST_LEAF] + w}]"
                g = node - first
                return f"v{g}" if g // CH == cg else f"t[{wi * n_slots + slot[g]}]"

            def stores(g):
                if needs_slot[g]:
                    yield f"  t[{wi * n_slots + slot[g]}] = v{g};"
                if g in outs_of_gate:
                    yield f"  o{g} {'=' if wi == 0 else '|='} v{g};"
            body += ["  {"] + ["  " + line for line in _chunk_body(op, a, b, gates_c, ref, stores)] + ["  }"]
        body += [f"  y[{k * ys}] = o{g};" for g in acc for k in outs_of_gate[g]]
        return (f"static DL_NOINLINE void {fn}(const dl_word* restrict x, dl_word* restrict y, "
                f"dl_word* restrict t) {{\n  (void)x; (void)y; (void)t;\n" + "\n".join(body) + "\n}\n")

    def dense(self, name, blk: ir.GateBlock, in_loc, alloc, dst=None, step=0, out_last=None) -> list:
        """Emit dense block ``blk`` straight onto workspace words; returns its output locations.

        A *location* is a workspace word index, or ``LOC0`` / ``LOC1`` for a constant.  Leaf
        ``l`` reads ``in_loc[leaves[l]]``.  Only gates read outside their own chunk (by a later
        chunk, a later block or GroupSum) get a word, from ``alloc(last step reading it)``
        (``out_last[k]``: the last step reading output ``k``); outputs wired to a leaf
        or a constant cost nothing: the consumer reads the source word / constant directly.
        So no layer-sized buffer is written or copied, and the working set is just the gates.
        ``dst`` (output k -> word index) materializes the outputs into a real (padded) buffer
        for a conv / pool consumer."""
        first = blk.first_gate
        n = blk.n_gates
        op, a, b = blk.op.tolist(), blk.a.tolist(), blk.b.tolist()
        outs = blk.outputs.tolist()
        CH = self.chunk
        nch = max(1, -(-n // CH)) if n else 0
        leaf_loc = [in_loc[int(f)] for f in blk.leaves.tolist()]
        if n:
            op, a, b, outs = _order_by_reads(op, a, b, outs, first, leaf_loc)
        stored = [False] * n
        for g in range(n):
            for src in (a[g], b[g]):
                if src >= first and (src - first) // CH != g // CH:
                    stored[src - first] = True
        for node in outs:
            if node >= first:
                stored[node - first] = True
        # how long each stored gate's word must live: this step (read by a later chunk or
        # copied into dst), or the last step reading the output it drives
        last = [step if stored[g] else -1 for g in range(n)]
        if dst is None and out_last is not None:
            for m, node in enumerate(outs):
                if node >= first:
                    last[node - first] = max(last[node - first], int(out_last[m]))
        slot = [alloc(last[g]) if stored[g] else -1 for g in range(n)]

        def loc_of(node):
            if node == ir.CONST0:
                return LOC0
            if node == ir.CONST1:
                return LOC1
            if node < first:
                return leaf_loc[node - ir.FIRST_LEAF]
            return slot[node - first]

        def word(loc):
            return "DL_ZERO" if loc == LOC0 else "DL_ONES" if loc == LOC1 else f"w[{loc}]"

        def ref(node, cg):
            if node >= first and (node - first) // CH == cg:
                return f"v{node - first}"
            return word(loc_of(node))

        fns = []
        for cg in range(nch):
            fn = f"{name}_{cg}"
            fns.append(fn)
            body = _chunk_body(op, a, b, range(cg * CH, min(n, (cg + 1) * CH)), lambda node: ref(node, cg),
                               lambda g: [f"  w[{slot[g]}] = v{g};"] if stored[g] else [])
            self.out.append(f"static DL_NOINLINE void {fn}(dl_word* restrict w) {{\n  (void)w;\n"
                            + "\n".join(body) + "\n}\n")
        out_loc = [loc_of(node) for node in outs]
        calls = [f"  {fn}(ws);" for fn in fns] + self._copy_out(name, dst, out_loc)
        self.out.append(f"static void {name}(dl_word* ws) {{\n  (void)ws;\n" + "\n".join(calls) + "\n}\n")
        return out_loc

    def _copy_out(self, name, dst, out_loc) -> list:
        """Lines copying a dense block's outputs into the real buffer ``dst`` (none without one)."""
        if dst is None:
            return []
        # CONST0 outputs are never stored: the workspace is zeroed once and nothing else
        # writes those words
        pairs = [(int(d), l) for d, l in zip(dst, out_loc) if l != LOC0]
        if not pairs:
            return []
        self.out.append(f"static const int32_t {name}_mdst[] = {{{','.join(str(d) for d, _ in pairs)}}};\n"
                        f"static const int32_t {name}_msrc[] = {{{','.join(str(l) for _, l in pairs)}}};\n")
        return [f"  for (int i = 0; i < {len(pairs)}; i++)\n"
                f"    ws[{name}_mdst[i]] = {name}_msrc[i] >= 0 ? ws[{name}_msrc[i]] : DL_ONES;"]

    def dense_table(self, name, blk: ir.GateBlock, in_loc, arena, dst=None, step=0, out_last=None) -> list:
        """Emit dense block ``blk`` in the table form (:mod:`.c_table`); the arguments and the
        returned output locations are those of :meth:`dense`, but every gate gets a word."""
        if self.const_words is None:
            self.const_words = (arena.alloc(_FOREVER), arena.alloc(_FOREVER))
        c0, c1 = self.const_words
        first, outs = blk.first_gate, blk.outputs.astype(np.int64)
        leaf_loc = np.asarray(in_loc, np.int64)[blk.leaves.astype(np.int64)]
        node_loc = np.concatenate([[c0, c1], np.where(leaf_loc == LOC0, c0, np.where(leaf_loc == LOC1, c1, leaf_loc)),
                                   np.zeros(blk.n_gates, np.int64)])
        last = np.full(blk.n_gates, step, np.int64)
        if dst is None and out_last is not None:
            g = outs >= first
            np.maximum.at(last, outs[g] - first, np.asarray(out_last, np.int64)[g])
        triples, runs = c_table.plan(blk, node_loc, last, arena.alloc_many)
        off = self.tab_ints
        self.tables.append(triples)
        self.tab_ints += triples.size
        src = np.concatenate([[LOC0, LOC1], leaf_loc, node_loc[first:]])
        out_loc = src[outs].tolist()
        run_list = ",".join(map(str, runs.reshape(-1).tolist())) or "0"
        self.out.append(f"static const int32_t {name}_runs[] = {{{run_list}}};\n")
        calls = [f"  ws[{c0}] = DL_ZERO;\n  ws[{c1}] = DL_ONES;",
                 f"  dl_table_run(ws, {off}, {name}_runs, {len(runs)});", *self._copy_out(name, dst, out_loc)]
        self.out.append(f"static void {name}(dl_word* ws) {{\n" + "\n".join(calls) + "\n}\n")
        return out_loc


def _order_by_reads(op, a, b, outs, first: int, leaf_loc) -> tuple:
    """A dense block's gates renumbered in evaluation order: by depth inside the block (keeps
    it topological), then by the words read, so that consecutive gates read nearby words (the
    previous layer is far bigger than L1: reads in address order stream instead of missing
    at random).  Returns (op, a, b, outs) as lists."""
    n = len(op)
    level = [0] * n
    for g in range(n):
        la = level[a[g] - first] + 1 if a[g] >= first else 0
        lb = level[b[g] - first] + 1 if b[g] >= first else 0
        level[g] = max(la, lb)
    big = 1 << 40
    rank = [0] * n

    def key_of(node):
        if node >= first:
            return big + rank[node - first]
        return leaf_loc[node - ir.FIRST_LEAF] if node >= ir.FIRST_LEAF else -1

    order = []
    by_level: dict[int, list] = {}
    for g in range(n):
        by_level.setdefault(level[g], []).append(g)
    for lv in sorted(by_level):
        grp = sorted(by_level[lv], key=lambda g: (min(key_of(a[g]), key_of(b[g])), max(key_of(a[g]), key_of(b[g]))))
        for g in grp:
            rank[g] = len(order)
            order.append(g)
    if order == list(range(n)):
        return op, a, b, outs
    new_id = {first + g: first + rank[g] for g in range(n)}
    remap = lambda node: new_id.get(node, node)  # noqa: E731
    return ([op[g] for g in order], [remap(a[g]) for g in order], [remap(b[g]) for g in order],
            [remap(node) for node in outs])


def _last_use(steps, bufs) -> list:
    """Per buffer k: for every feature, the last step that reads it (``len(steps)`` =
    GroupSum), -1 if none.  A dense step reads the leaves its gates use, and passes outputs
    wired to a leaf on to the next buffer (unless that buffer is real: then it copies them)."""
    end = len(steps)
    nf = lambda buf: buf.C * buf.H * buf.W  # noqa: E731
    last = [None] * (end + 1)
    last[end] = np.full(nf(bufs[end]), end, np.int64)
    for i in reversed(range(end)):
        kind, op, _ = steps[i]
        if kind != "dense":
            last[i] = np.full(nf(bufs[i]), i, np.int64)
            continue
        lu = np.full(nf(bufs[i]), -1, np.int64)
        first = op.first_gate
        nodes = np.concatenate([op.a, op.b]).astype(np.int64)
        read = nodes[(nodes >= ir.FIRST_LEAF) & (nodes < first)] - ir.FIRST_LEAF
        lu[op.leaves[read]] = i
        outs = op.outputs.astype(np.int64)
        wire = (outs >= ir.FIRST_LEAF) & (outs < first)
        feats = op.leaves[outs[wire] - ir.FIRST_LEAF]
        later = np.full(int(wire.sum()), i, np.int64) if bufs[i + 1].off is not None else last[i + 1][wire]
        np.maximum.at(lu, feats, later)
        last[i] = lu
    return last


def _group_sum_tables(net: ir.Netlist, k: int, group: int, loc):
    """Per class: the workspace words of its features that are not constant (to be counted),
    and how many are constant one (added as a number).  Constant-zero features cost nothing.
    ``loc``: final feature -> word index or LOC0 / LOC1."""
    loc = np.asarray(loc, np.int64).copy()
    last = net.ops[-1] if net.ops else None
    if isinstance(last, ir.GateBlock) and last.kind == "conv":   # constant channels of a conv
        o = last.outputs
        v = np.repeat(np.where(o == ir.CONST0, LOC0, np.where(o == ir.CONST1, LOC1, 0)), len(loc) // len(o))
        loc = np.where(v < 0, v, loc)
    idx, start, ones = [], [0], []
    for c in range(k):
        sl = loc[c * group:(c + 1) * group]
        idx += sl[sl >= 0].tolist()
        start.append(len(idx))
        ones.append(int((sl == LOC1).sum()))
    return (idx or [0]), start, ones


class _WordArena:
    """Workspace words of dense gate values, after the real (padded) buffers.  A word is reused
    once the last step reading its value is over (lowest free word first), so the working set
    is the live values (about two layers), not every gate of the network.  Table blocks take
    their words in bulk (:meth:`alloc_many`, the same words one :meth:`alloc` per gate gives)."""

    def __init__(self, first: int):
        self.size = first
        self.free: list[int] = []
        self.pending: list[tuple[int, int]] = []   # (last step reading it, word)
        self.batches: list[tuple[int, np.ndarray, np.ndarray]] = []   # (min last, lasts, words)
        self.step = 0

    def _release(self) -> None:
        while self.pending and self.pending[0][0] < self.step:
            heapq.heappush(self.free, heapq.heappop(self.pending)[1])
        if not self.batches or min(m for m, _, _ in self.batches) >= self.step:
            return
        keep = []
        for m, lasts, words in self.batches:
            done = lasts < self.step
            if m < self.step:
                self.free.extend(words[done].tolist())
                lasts, words = lasts[~done], words[~done]
                if len(lasts):
                    keep.append((int(lasts.min()), lasts, words))
            else:
                keep.append((m, lasts, words))
        self.batches = keep
        heapq.heapify(self.free)

    def alloc(self, last: int) -> int:
        self._release()
        if self.free:
            w = heapq.heappop(self.free)
        else:
            w = self.size
            self.size += 1
        heapq.heappush(self.pending, (last, w))
        return w

    def alloc_many(self, lasts: np.ndarray) -> np.ndarray:
        """Words for len(lasts) values at once, in the order single allocs would give them."""
        self._release()
        self.free.sort()   # a sorted list is a heap
        k = min(len(lasts), len(self.free))
        words = np.concatenate([np.asarray(self.free[:k], np.int64),
                                np.arange(self.size, self.size + len(lasts) - k, dtype=np.int64)])
        del self.free[:k]
        self.size += len(lasts) - k
        if len(lasts):
            lasts = np.asarray(lasts, np.int64)
            self.batches.append((int(lasts.min()), lasts, words))
        return words


def _identity_loc(buf: _Buf) -> list:
    """Word index of every feature of a real buffer, in (C, H, W) order."""
    c, y, x = np.unravel_index(np.arange(buf.C * buf.H * buf.W), (buf.C, buf.H, buf.W))
    return (buf.off + c * buf.plane + (y + buf.pad) * buf.Wp + (x + buf.pad)).tolist()


def _conv_op(em: _Emitter, i: int, op: ir.GateBlock, p: int, src: _Buf, dst: _Buf) -> None:
    """Step function ``op<i>``: the conv cell at every output position; with a fused OR pool
    (p > 1) the cell call of a pooled position covers its p x p window."""
    s = op.stride
    offs = [c * src.plane + dy * src.Wp + dx for c, dy, dx in op.leaves.tolist()]
    windows = [u * s * src.Wp + v * s for u in range(p) for v in range(p)]
    cell = em.cell(f"cell{i}", op, offs, dst.plane, windows)
    loop = (f"  for (int i = 0; i < {dst.H}; i++)\n"
            f"    for (int j = 0; j < {dst.W}; j++)\n"
            f"      {cell}(in + i * {p * s * src.Wp} + j * {p * s}, "
            f"out + {dst.pad * dst.Wp + dst.pad} + i * {dst.Wp} + j, t);\n")
    em.out.append(f"static void op{i}(dl_word* ws, dl_word* t) {{\n"
                  f"  const dl_word* in = ws + {src.off};\n  dl_word* out = ws + {dst.off};\n"
                  f"{loop}}}\n")


def _pool_op(em: _Emitter, i: int, p: int, src: _Buf, dst: _Buf) -> None:
    """Step function ``op<i>``: a standalone OR pool of size ``p``."""
    em.out.append(
        f"static void op{i}(dl_word* ws, dl_word* t) {{\n  (void)t;\n"
        f"  const dl_word* in = ws + {src.off};\n  dl_word* out = ws + {dst.off};\n"
        f"  for (int c = 0; c < {dst.C}; c++)\n"
        f"    for (int i = 0; i < {dst.H}; i++)\n"
        f"      for (int j = 0; j < {dst.W}; j++) {{\n"
        f"        dl_word acc = DL_ZERO;\n"
        f"        for (int u = 0; u < {p}; u++)\n"
        f"          for (int v = 0; v < {p}; v++)\n"
        f"            acc |= in[c * {src.plane} + (i * {p} + u + {src.pad}) * {src.Wp} + j * {p} + v + {src.pad}];\n"
        f"        out[c * {dst.plane} + (i + {dst.pad}) * {dst.Wp} + j + {dst.pad}] = acc;\n"
        f"      }}\n}}\n")


def _emit_steps(em: _Emitter, steps, bufs, arena: _WordArena) -> tuple[list, list]:
    """Every step's C function into ``em``; returns (the calls of dl_run_ops, the final
    features' locations)."""
    last_use = _last_use(steps, bufs)
    loc = _identity_loc(bufs[0])   # feature of the current buffer -> word index / LOC0 / LOC1
    calls = []
    for i, (kind, op, p) in enumerate(steps):
        src, dst = bufs[i], bufs[i + 1]
        if kind == "dense":
            dst_idx = _identity_loc(dst) if dst.off is not None else None
            arena.step = i
            if em.table_gates is not None and op.n_gates >= em.table_gates:
                loc = em.dense_table(f"op{i}", op, loc, arena, dst_idx, step=i, out_last=last_use[i + 1])
            else:
                loc = em.dense(f"op{i}", op, loc, arena.alloc, dst_idx, step=i, out_last=last_use[i + 1])
            if dst_idx is not None:
                loc = dst_idx
            calls.append(f"  op{i}(ws);")
            continue
        if kind == "conv":
            _conv_op(em, i, op, p, src, dst)
        else:
            _pool_op(em, i, p, src, dst)
        calls.append(f"  op{i}(ws, t);")
        loc = _identity_loc(dst)
    return calls, loc


def _defines(net: ir.Netlist, ib: _Buf, ws_words: int, real_words: int, group: int) -> list:
    """The network's constants: sizes, the GroupSum layout and the input encoder."""
    k, enc = net.head.k, net.encoder
    nb = max(5, int(group).bit_length())   # planes 0..3 are the Harley-Seal ones..eights
    lines = [
        f"#define DL_N_IN {net.n_inputs}",
        f"#define DL_IN_WORDS {ib.words}",
        f"#define DL_WS_WORDS {ws_words}",
        f"#define DL_ZERO_WORDS {real_words}   /* the real buffers; every other word is written before it is read */",
        f"#define DL_K {k}", f"#define DL_GROUP {group}", f"#define DL_NB {nb}",
        f"#define DL_HAS_ENCODER {1 if enc is not None else 0}",
    ]
    if enc is not None:
        C, T = enc.thresholds.shape
        hw = int(np.prod(enc.in_shape[1:])) if len(enc.in_shape) > 1 else 1
        lines += [f"#define DL_IN_C {C}", f"#define DL_T {T}", f"#define DL_IN_HW {hw}",
                  *_encoder_code(enc, _used_channels(net), ib.plane)]
    return lines


def _used_features(net: ir.Netlist) -> np.ndarray:
    """Per encoded input feature (bit): does the first op read it anywhere?"""
    first = net.ops[0] if net.ops else None
    if not isinstance(first, ir.GateBlock):
        return np.ones(net.n_inputs, bool)
    if first.kind == "conv":
        used = np.zeros((int(net.input_shape[0]), net.n_inputs // int(net.input_shape[0])), bool)
        used[np.unique(first.leaves[:, 0])] = True
        return used.reshape(-1)
    used = np.zeros(net.n_inputs, bool)
    used[first.leaves] = True
    return used


def _used_channels(net: ir.Netlist) -> np.ndarray:
    """Per encoded input channel (C*T of them): does the first op read it anywhere?"""
    n_ch = int(net.input_shape[0]) if len(net.input_shape) > 1 else net.n_inputs
    return _used_features(net).reshape(n_ch, -1).any(1)


def _comparator(cut: int, plane: dict, gate_of) -> str:
    """C expression name of ``pixel >= cut`` (1 <= cut <= 255) over bit-plane words: from the
    lowest set bit of ``cut`` up, ``r = cut_k ? plane_k & r : plane_k | r``."""
    k0 = (cut & -cut).bit_length() - 1
    r = plane[k0]
    for k in range(k0 + 1, 8):
        r = gate_of(gates.AND if cut >> k & 1 else gates.OR, plane[k], r)
    return r


def _encoder_fn(name: str, cuts: list, stride: int) -> tuple[list, str]:
    """One channel's encoder: thermometer words ``o[t * stride]`` for ``cuts`` = [(t, cut)] of
    the thresholds read downstream.  Bit planes + comparator gates, or one compare per
    threshold, whichever costs fewer vector operations.  Returns (C functions, the table
    entry ``{planes, gates, direct}``): ``planes`` writes the bit planes ``pl[k]`` of a tile
    column, ``gates`` turns them into thermometer words, ``direct`` compares bytes."""
    ones = [f"  o[{t * stride}] = DL_ONES;" for t, c in cuts if c <= 0]   # cut >= 256: 0, never written
    varying = [(t, c) for t, c in cuts if 0 < c < 256]
    planes = sorted({k for _, c in varying for k in range((c & -c).bit_length() - 1, 8)})
    body, table = [], {}

    def gate_of(op, x, y):
        key = (op, x, y)
        if key not in table:
            table[key] = f"v{len(table)}"
            body.append(f"  const dl_word {table[key]} = {gates.render(op, x, y, zero='DL_ZERO', one='DL_ONES')};")
        return table[key]

    outs = [(t, _comparator(c, {k: f"pl[{k}]" for k in planes}, gate_of)) for t, c in varying]
    chunks = 8    # 32-sample pieces of a 256-bit word: the AVX2 costs below
    cost_planes = chunks * (1 + 3 * len(planes)) + len(table) + len(outs)
    cost_direct = chunks * 5 * len(varying)
    sig = "(const uint8_t* col, dl_word* o)"
    if cost_direct <= cost_planes:
        code = [f"  dl_ge_word(col, {c}, o + {t * stride});" for t, c in varying] + ones
        return [f"static void {name}_direct{sig} {{\n  (void)col; (void)o;\n" + "\n".join(code) + "\n}\n"], \
            f"{{NULL, NULL, {name}_direct}}"
    extract = ["  for (size_t c = 0; c < DL_BLOCK / DL_PCHUNK; c++) {", "    const dl_pvec v = DL_PLOAD(col, c);",
               *[f"    DL_PLANE_PUT(pl[{k}], v, {k}, c);" for k in reversed(planes)], "  }"]
    store = body + [f"  o[{t * stride}] = {v};" for t, v in outs] + ones
    return [f"static void {name}_planes(const uint8_t* col, dl_word* pl) {{\n" + "\n".join(extract) + "\n}\n",
            f"static void {name}_gates(const dl_word* pl, dl_word* o) {{\n  (void)pl;\n" + "\n".join(store) + "\n}\n"], \
        f"{{{name}_planes, {name}_gates, NULL}}"


def _encoder_code(enc: ir.Encoder, used: np.ndarray, stride: int) -> list:
    """The uint8 encoder (per channel ``dl_enc[c]``, one set of functions per distinct
    channel; all NULL where no threshold is read) and the float32 thresholds (``dl_thr``,
    ``dl_thr_used``)."""
    C, T = enc.thresholds.shape
    used = used.reshape(C, T)
    entries, table, lines = {}, [], []
    for c in range(C):
        cuts = tuple((t, int(enc.u8_cutoffs[c, t])) for t in range(T) if used[c, t])
        if not any(cut < 256 for _, cut in cuts):   # nothing read, or only constant-0 bits
            table.append("{NULL, NULL, NULL}")
            continue
        if cuts not in entries:
            fns, entries[cuts] = _encoder_fn(f"dl_enc{len(entries)}", list(cuts), stride)
            lines += fns
        table.append(entries[cuts])
    thr = ",".join(float(v).hex() for v in enc.thresholds.astype(np.float32).reshape(-1).tolist())
    lines += ["static const dl_encoder dl_enc[] = {" + ", ".join(table) + "};",
              f"static const float dl_thr[] = {{{thr}}};",
              "static const uint8_t dl_thr_used[] = {" + ",".join(str(int(u)) for u in used.reshape(-1)) + "};"]
    return lines


def _tables(net: ir.Netlist, ib: _Buf, group: int, loc, em: _Emitter) -> list:
    """GroupSum word tables and the input layout (flat input feature -> word of buffer 0).
    With table blocks, the two long ones go into the tables' literal too (compilers read an
    array initializer of a million entries slowly)."""
    gs_idx, gs_start, gs_ones = _group_sum_tables(net, net.head.k, group, loc)
    cc, yy, xx = np.meshgrid(np.arange(ib.C), np.arange(ib.H), np.arange(ib.W), indexing="ij")
    in_off = (cc * ib.plane + (yy + ib.pad) * ib.Wp + (xx + ib.pad)).reshape(-1)
    return [_long_table(em, "dl_gs_idx", np.asarray(gs_idx, np.int64)),
            "static const int32_t dl_gs_start[] = {" + ",".join(map(str, gs_start)) + "};",
            "static const int32_t dl_gs_ones[] = {" + ",".join(map(str, gs_ones)) + "};",
            _long_table(em, "dl_in_off", in_off), *_chunks_read(net)]


def _long_table(em: _Emitter, name: str, values: np.ndarray) -> str:
    """The int32 array ``name``: an initializer, or with table blocks a view of the literal."""
    if not em.tables:
        return f"static const int32_t {name}[] = {{" + ",".join(map(str, values.tolist())) + "};"
    em.tables.append(values)
    em.tab_ints += len(values)
    return f"#define {name} ((const int32_t*)dl_tab_mem + {em.tab_ints - len(values)})"


def _chunks_read(net: ir.Netlist) -> list:
    """``dl_chunk_read[i]``: whether any of input features 64i..64i+63 is read, so that the
    0/1-byte packer skips the bytes of thresholds (or inputs) the network never reads."""
    used = np.zeros(-(-net.n_inputs // 64) * 64, bool)
    used[:net.n_inputs] = _used_features(net)
    return ["static const uint8_t dl_chunk_read[] = {" + ",".join(str(int(u)) for u in used.reshape(-1, 64).any(1)) + "};"]


def _entry_points(P: str, tables: bool = False) -> str:
    """The exported functions; with table blocks each first makes sure the tables are decoded."""
    code = _entry_code(P)
    return code.replace("return dl_run(", "return dl_tab_ready() != 0 ? -1 : dl_run(") if tables else code


def _entry_code(P: str) -> str:
    return f"""
int {P}_scores_bits(const uint8_t* bits, size_t n, int32_t* counts, int n_threads) {{
  return dl_run(bits, n, counts, n_threads, DL_FORM_BITS);
}}
int {P}_scores_packed(const uint8_t* packed, size_t n, int32_t* counts, int n_threads) {{
  return dl_run(packed, n, counts, n_threads, DL_FORM_PACKED);
}}
int {P}_scores_u8(const uint8_t* images, size_t n, int32_t* counts, int n_threads) {{
#if DL_HAS_ENCODER
  return dl_run(images, n, counts, n_threads, DL_FORM_U8);
#else
  (void)images; (void)n; (void)counts; (void)n_threads;
  return -3;
#endif
}}
int {P}_scores_f32(const float* x, size_t n, int32_t* counts, int n_threads) {{
#if DL_HAS_ENCODER
  return dl_run(x, n, counts, n_threads, DL_FORM_F32);
#else
  (void)x; (void)n; (void)counts; (void)n_threads;
  return -3;
#endif
}}
int {P}_predict_u8(const uint8_t* images, size_t n, int32_t* classes, int n_threads) {{
  if (n == 0) return 0;
  if (!classes) return -2;
  int32_t* counts = (int32_t*)malloc(sizeof(int32_t) * n * DL_K);
  if (!counts) return -1;
  int r = {P}_scores_u8(images, n, counts, n_threads);
  if (r == 0)
    for (size_t i = 0; i < n; i++) {{
      int best = 0;
      for (int c = 1; c < DL_K; c++)
        if (counts[i * DL_K + c] > counts[i * DL_K + best]) best = c;  /* first max wins */
      classes[i] = best;
    }}
  free(counts);
  return r;
}}
int {P}_block_size(void) {{ return DL_BLOCK; }}
"""


def _header(net: ir.Netlist, P: str) -> str:
    enc = net.encoder
    guard = f"DIFFLOGIC_{P.upper()}_H"
    ishape = ", ".join(map(str, enc.in_shape)) if enc is not None else ""
    return f"""/* Generated by difflogic: bit-packed inference of {net.meta.get('model', 'a logic gate network')}. */
#ifndef {guard}
#define {guard}
#include <stddef.h>
#include <stdint.h>
#ifdef __cplusplus
extern "C" {{
#endif
#define {P.upper()}_NUM_CLASSES {net.head.k}
#define {P.upper()}_NUM_INPUT_BITS {net.n_inputs}   /* encoded input bits per sample */
#define {P.upper()}_PACKED_BYTES {(net.n_inputs + 7) // 8}   /* bytes per sample of _scores_packed */
#define {P.upper()}_HAS_ENCODER {1 if enc is not None else 0}
#define {P.upper()}_IMAGE_BYTES {int(np.prod(enc.in_shape)) if enc is not None else 0}   /* uint8 image ({ishape}) */
#define {P.upper()}_TAU {net.head.tau!r}   /* float score = count / tau */
/* Input forms, n samples each:
 *   _scores_u8      uint8 images (n, IMAGE_BYTES), thermometer-encoded inside (pixel / 255 > threshold)
 *   _scores_f32     float32 inputs (n, IMAGE_BYTES), bit c*T + t = x[c] > threshold[c][t]
 *   _scores_bits    encoded bits, one byte (0 or 1) per bit: (n, NUM_INPUT_BITS)
 *   _scores_packed  encoded bits, 8 per byte, bit f at (byte f / 8, bit f % 8): (n, PACKED_BYTES)
 * counts: (n, NUM_CLASSES) int32.  0 = ok, -1 out of memory, -2 null pointer, -3 no encoder
 * (_u8 / _f32), -4 bad input value (a byte other than 0/1 where the network reads one, a
 * float that is NaN or inf). */
int {P}_scores_u8(const uint8_t* images, size_t n, int32_t* counts, int n_threads);
int {P}_scores_f32(const float* x, size_t n, int32_t* counts, int n_threads);
int {P}_scores_bits(const uint8_t* bits, size_t n, int32_t* counts, int n_threads);
int {P}_scores_packed(const uint8_t* packed, size_t n, int32_t* counts, int n_threads);
int {P}_predict_u8(const uint8_t* images, size_t n, int32_t* classes, int n_threads);
int {P}_block_size(void);
#ifdef __cplusplus
}}
#endif
#endif
"""


def _check_table_gates(table_gates) -> None:
    if table_gates is not None and (isinstance(table_gates, bool) or not isinstance(table_gates, int)
                                    or table_gates < 0):
        raise ValueError(f"table_gates must be None (never the table form) or an integer >= 0 (dense "
                         f"blocks of at least that many gates become tables; 0: all), got {table_gates!r}")


def _table_parts(em: _Emitter, n_blocks: int, n_dense: int) -> tuple[list, list]:
    """(comment lines, code) of the table form: empty when no block took it."""
    if not em.tables:
        return [], []
    lit, _ = c_table.literal(em.tables)
    rows = sum(len(t) for t in em.tables[:n_blocks])
    note = [f" * Table form: {n_blocks} of {n_dense} dense blocks ({rows:,} gates; blocks of at least "
            f"{em.table_gates:,} gates, option table_gates) are data read by one loop, not straight-line code."]
    return note, [lit, c_table.runtime()]


def generate(net: ir.Netlist, prefix: str = "dl", chunk_gates: int = CHUNK_GATES,
             header_name: str | None = None, table_gates: int | None = TABLE_GATES) -> tuple[str, str]:
    """Return (C source, header) text for ``net``; dense blocks of at least ``table_gates``
    gates are emitted in the table form (None: never, 0: every dense block)."""
    if not _PREFIX_RE.match(prefix):
        raise ValueError(f"prefix must be a C identifier of at most 31 characters, got {prefix!r}")
    if not isinstance(chunk_gates, int) or chunk_gates < 1:
        raise ValueError(f"chunk_gates must be a positive integer, got {chunk_gates!r}")
    _check_table_gates(table_gates)
    for op in net.ops:
        if isinstance(op, ir.GateBlock):
            op.validate()
    steps, bufs, real_words = _plan(net)
    em = _Emitter(prefix, chunk_gates, table_gates)
    arena = _WordArena(real_words)
    calls, loc = _emit_steps(em, steps, bufs, arena)
    if bufs[-1].pad:
        raise AssertionError("final buffer must not be padded")
    if len(loc) != net.head.in_features:
        raise ValueError(f"netlist produces {bufs[-1].words} features but GroupSum expects {net.head.in_features}")
    group = net.head.in_features // net.head.k
    n_table_blocks = len(em.tables)
    table_lines = _tables(net, bufs[0], group, loc, em)
    table_note, table_code = _table_parts(em, n_table_blocks, sum(kind == "dense" for kind, _, _ in steps))
    lines = [
        f"/* Generated by difflogic {net.meta.get('difflogic_version', '')} from "
        f"{net.meta.get('model', 'a netlist')}: {net.gate_count():,} gates (paper counting).",
        *table_note,
        " * Do not edit: regenerate with `difflogic export`. */",
        "#if !defined(_POSIX_C_SOURCE) || _POSIX_C_SOURCE < 200112L",
        "#undef _POSIX_C_SOURCE",
        "#define _POSIX_C_SOURCE 200112L",
        "#endif",
        "#include <stdint.h>", "#include <stddef.h>", "#include <stdlib.h>", "#include <string.h>",
        "#include <pthread.h>",
        f'#include "{header_name or prefix + ".h"}"',
        template("c/runtime_head.h").read_text(),
        template("c/runtime_bits.h").read_text(),
        *_defines(net, bufs[0], arena.size + em.max_tmp, real_words, group),
        *table_lines,
        *table_code,
        *em.out,
        "static void dl_run_ops(dl_word* ws) {\n"
        f"  dl_word* t = ws + {arena.size};\n  (void)t;\n" + "\n".join(calls) + "\n}\n",
        template("c/runtime_tail.h").read_text(),
        _entry_points(prefix, bool(em.tables)),
    ]
    return "\n".join(lines), _header(net, prefix)


# --------------------------------------------------------------------------- files
def _bench_main(prefix: str, header: str) -> str:
    return (template("c/bench_main.c").read_text().replace("@PREFIX_UPPER@", prefix.upper())
            .replace("@PREFIX@", prefix)
            .replace("@HEADER@", header))


def export(netlist: ir.Netlist, out_dir, prefix: str = "dl", name: str = "net",
           chunk_gates: int = CHUNK_GATES, table_gates: int | None = TABLE_GATES) -> dict:
    """Write ``<name>.c``, ``<name>.h``, ``bench_main.c`` and a ``Makefile`` into ``out_dir``
    (each complete or not at all, other files there untouched: :func:`difflogic.files.write_files`).
    Returns {file name: path}.
    """
    if not re.match(r"^[A-Za-z0-9_.-]+$", name):
        raise ValueError(f"name must be a plain file stem, got {name!r}")
    src, hdr = generate(netlist, prefix=prefix, chunk_gates=chunk_gates, header_name=f"{name}.h",
                        table_gates=table_gates)
    mk = (template("c/Makefile").read_text().replace("@NAME@", name))
    files = {f"{name}.c": src, f"{name}.h": hdr, "bench_main.c": _bench_main(prefix, f"{name}.h"),
             "Makefile": mk}
    return {k: str(p) for k, p in write_files(out_dir, files).items()}


# --------------------------------------------------------------------------- compile + load
def find_compiler(cc: str | None = None) -> str:
    """The C compiler to use: ``cc`` argument, then $CC, then cc / gcc / clang on PATH."""
    cands = [cc] if cc else ([os.environ["CC"]] if os.environ.get("CC") else ["cc", "gcc", "clang"])
    for c in cands:
        path = shutil.which(c)
        if path:
            return path
    raise RuntimeError(f"no C compiler found (tried {', '.join(cands)}); install gcc or clang "
                       "(apt-get install gcc), or set CC / pass cc=... to the path of a C compiler")


def cache_dir() -> Path:
    d = os.environ.get("DIFFLOGIC_CACHE_DIR")
    base = Path(d) if d else Path(tempfile.gettempdir()) / f"difflogic-cache-{os.getuid() if hasattr(os, 'getuid') else 'user'}"
    base.mkdir(parents=True, exist_ok=True)
    return base


_BUILD_LOCK = threading.Lock()


def build_shared(src: str, hdr: str, *, opt_level: int = DEFAULT_OPT_LEVEL, cc: str | None = None,
                 lanes: int | None = DEFAULT_LANES, native: bool = True, extra_flags=()) -> Path:
    """Compile to a shared library, cached by content hash; returns the .so path."""
    if opt_level not in (0, 1, 2, 3):
        raise ValueError(f"opt_level must be 0, 1, 2 or 3, got {opt_level!r}")
    if lanes not in (None, 1, 2, 4, 8):
        raise ValueError(f"lanes must be None (automatic), 1, 2, 4 or 8 (x 64 samples per word), got {lanes!r}")
    compiler = find_compiler(cc)
    flags = [f"-O{opt_level}", "-std=gnu99", "-fPIC", "-shared", "-pthread",
             *([f"-DDL_LANES={lanes}"] if lanes else []), *extra_flags]
    if native:
        flags.append("-march=native")
    key = hashlib.sha256("\0".join([src, hdr, compiler, *flags]).encode()).hexdigest()[:24]
    d = cache_dir()
    so = d / f"dl_{key}.so"
    if so.exists():
        return so
    with _BUILD_LOCK:
        if so.exists():
            return so
        work = Path(tempfile.mkdtemp(prefix="build-", dir=d))
        try:
            (work / "net.c").write_text(src)
            (work / "dl.h").write_text(hdr)
            cmd = [compiler, *flags, "-o", str(work / "net.so"), str(work / "net.c")]
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode != 0 and native:   # e.g. a compiler without -march=native
                cmd.remove("-march=native")
                r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode != 0:
                raise RuntimeError(f"C compilation failed ({' '.join(cmd)}):\n{r.stderr[-4000:]}")
            os.replace(work / "net.so", so)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return so


class CompiledNet:
    """A netlist (or a model, hardened and optimized) compiled to native code and loaded via ctypes.

    ``scores(x)`` (float scores = counts / tau), ``counts(x)`` (int32 class counts) and
    ``predict(x)`` (first argmax) accept numpy arrays or torch tensors: float images in [0, 1],
    uint8 images, or pre-encoded bits (a bool array, or any array with ``encoded=True``).
    """

    def __init__(self, netlist_or_model, opt_level: int = DEFAULT_OPT_LEVEL, cc: str | None = None,
                 threads: int | None = None, lanes: int | None = DEFAULT_LANES, optimize: bool | None = None,
                 native: bool = True, chunk_gates: int = CHUNK_GATES, extra_flags=(),
                 table_gates: int | None = TABLE_GATES):
        if optimize is None:   # a model is optimized, a netlist taken as given, unless told
            optimize = not isinstance(netlist_or_model, ir.Netlist)
        net = compile_netlist(netlist_or_model, optimize=optimize)
        self.netlist = net
        self.threads = int(threads) if threads else 1
        if self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads!r}")
        self.source, self.header = generate(net, chunk_gates=chunk_gates, header_name="dl.h",
                                            table_gates=table_gates)
        self.so_path = build_shared(self.source, self.header, opt_level=opt_level, cc=cc, lanes=lanes,
                                    native=native, extra_flags=tuple(extra_flags))
        self._lib = ctypes.CDLL(str(self.so_path))
        self._fns = {}
        for form in FORMS:
            f = getattr(self._lib, f"dl_scores_{form}")
            f.restype = ctypes.c_int
            f.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_int]
            self._fns[form] = f
        self.block_size = int(self._lib.dl_block_size())

    # ---- input handling
    def _prepare(self, x, encoded: bool, packed: bool) -> tuple[np.ndarray, str]:
        """(contiguous array, input form) for the library; shapes checked here, 0/1 bytes and
        float32 values by the C code (status -4, the same errors as the numpy checks)."""
        x = np.asarray(x.detach().cpu() if hasattr(x, "detach") else x)
        net = self.netlist
        if packed:
            nbytes = (net.n_inputs + 7) // 8
            if x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != nbytes:
                raise ValueError(f"packed bits must be uint8 of shape (N, {nbytes}), e.g. np.packbits(bits"
                                 f".reshape(N, -1), axis=1, bitorder='little'); got {x.dtype} {tuple(x.shape)}")
            return np.ascontiguousarray(x), "packed"
        if encoded or x.dtype == np.bool_ or net.encoder is None:
            if x.dtype in (np.bool_, np.uint8):
                return np.ascontiguousarray(check_bits(net, x, values=False)).view(np.uint8), "bits"
            return np.ascontiguousarray(check_bits(net, x), dtype=np.uint8), "bits"
        if x.dtype in (np.uint8, np.float32):
            shape = tuple(net.encoder.in_shape)
            if tuple(x.shape[1:]) != shape:
                raise ValueError(f"x must have shape (N, {', '.join(map(str, shape))}), got {tuple(x.shape)}")
            return np.ascontiguousarray(x), "u8" if x.dtype == np.uint8 else "f32"
        return np.ascontiguousarray(encode_input(net, x)), "bits"

    def counts(self, x, encoded: bool = False, threads: int | None = None, packed: bool = False) -> np.ndarray:
        """Class counts int32 (N, k).  ``x``: uint8 images, float32 inputs (compared with the
        thresholds in C), other float inputs (encoded in numpy), or encoded bits (a bool array,
        or 0/1 integers with ``encoded=True``); ``packed=True``: bits packed 8 per byte
        (uint8 (N, ceil(bits / 8)), ``np.packbits(..., axis=1, bitorder="little")``)."""
        data, form = self._prepare(x, encoded, packed)
        n = data.shape[0]
        out = np.zeros((n, self.netlist.head.k), np.int32)
        if n:
            r = self._fns[form](data.ctypes.data, n, out.ctypes.data, int(threads or self.threads))
            if r == BAD_INPUT:
                raise ValueError("x contains NaN or inf; images must be finite values in [0, 1]" if form == "f32"
                                 else "bits must contain only 0 and 1 (encode images with encode_input first)")
            if r != 0:
                raise RuntimeError(f"compiled network failed with status {r}")
        return out

    def scores(self, x, encoded: bool = False, threads: int | None = None, packed: bool = False) -> np.ndarray:
        return self.counts(x, encoded, threads, packed).astype(np.float32) / np.float32(self.netlist.head.tau)

    def predict(self, x, encoded: bool = False, threads: int | None = None, packed: bool = False) -> np.ndarray:
        return self.counts(x, encoded, threads, packed).argmax(1)


# --------------------------------------------------------------------------- the back end
class CRunner(Runner):
    """A netlist compiled to a shared library (:class:`CompiledNet`), counting encoded bits."""

    def __init__(self, netlist: ir.Netlist, **opts):
        t0 = time.perf_counter()
        self.net = CompiledNet(netlist, optimize=False, **opts)
        self.compile_seconds = time.perf_counter() - t0

    def counts(self, bits, threads: int | None = None) -> np.ndarray:
        return self.net.counts(bits, encoded=True, threads=threads).astype(np.int64)

    def counts_images(self, images: np.ndarray, threads: int | None = None) -> np.ndarray:
        """Class counts int64 (N, k) of raw inputs (N, *input shape), encoded inside the
        library: uint8 images (``dl_scores_u8``) or float32 values such as a table's rows
        (``dl_scores_f32``), the paths a deployed caller uses."""
        enc = self.net.netlist.encoder
        if enc is None:
            raise ValueError("this netlist has no input encoder; pass encoded bits to counts() instead")
        images = np.asarray(images)
        if images.dtype not in (np.uint8, np.float32):
            raise TypeError(f"inputs must be uint8 images or float32 values (N, "
                            f"{', '.join(map(str, enc.in_shape))}), got {images.dtype}")
        return self.net.counts(images, threads=threads).astype(np.int64)


def _table_gates_arg(text: str):
    """``--table-gates``: an integer >= 0 or ``never``."""
    if text == "never":
        return -1
    try:
        value = int(text)
    except ValueError:
        value = -2
    if value < 0:
        raise argparse.ArgumentTypeError(f"takes an integer >= 0 or 'never', got {text!r}")
    return value


def _cli_opts(opts: dict) -> dict:
    """``--table-gates never`` (-1 from the parser) is ``table_gates=None``."""
    return {**opts, "table_gates": None} if opts.get("table_gates") == -1 else opts


class CBackend(Backend):
    """``--target c``: bit-packed C99 sources (export) or a compiled, loaded library (verify)."""

    name = "c"
    help = "bit-packed C99, built with the system C compiler"
    cli_options = (Option("--prefix", "prefix", ("export",),
                          {"metavar": "NAME", "help": "C symbol prefix of the entry points "
                                                      "(default: dl)"}),
                   Option("--table-gates", "table_gates", ("export", "verify"),
                          {"metavar": "N", "type": _table_gates_arg,
                           "help": f"dense blocks of at least N gates become tables read by one loop "
                                   f"(fast to compile); 0: all, 'never': straight-line C only "
                                   f"(default: {TABLE_GATES:,})"}))

    def unavailable_reason(self, cc: str | None = None, **_) -> str | None:
        try:
            find_compiler(cc)
        except RuntimeError as e:
            return str(e)
        return None

    def emit(self, netlist, out_dir, *, reference=None, **opts) -> dict:
        """The C sources; ``reference`` is not used (the C export ships no test vectors)."""
        return {"files": export(netlist, out_dir, **_cli_opts(opts)), "info": {}, "summary": ""}

    def load(self, netlist, **opts) -> CRunner:
        return CRunner(netlist, **_cli_opts(opts))


BACKEND = register(CBackend())
