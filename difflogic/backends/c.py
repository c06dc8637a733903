"""C back end: emit self-contained, bit-packed C99 (+ GCC vector extensions) from the IR.

Layout of the generated code
----------------------------
* The batch is bit-sliced: one ``dl_word`` holds ``64 * DL_LANES`` samples (default: 8 lanes =
  512 samples, one AVX-512 register, where the target has AVX-512, else 4 lanes = 256 samples,
  one AVX2 register), so every gate is one bitwise word operation.
* Dense blocks are emitted straight onto workspace words: only gates read outside their chunk
  get a word, outputs wired to a leaf / constant cost nothing (consumers read the source),
  words are reused after their last reader (liveness), and gates are ordered by the words
  they read, so the working set is about two layers and reads stream.
* Each GateBlock's *cell* becomes straight-line code split into small functions ("chunks")
  so the C compiler's time stays linear in the gate count; values needed by a later chunk
  go through a small scratch array.
* Conv blocks are **not** unrolled: a loop over output positions calls the cell with a pointer
  to the position's receptive field, leaves are constant offsets from it.  Activations are
  stored with the zero border the next conv needs, so there is no bounds check anywhere.
  An OR pool that follows a conv is fused: the cell ORs its outputs into the pooled buffer
  (``y = (y & keep) | v``, keep = 0 for the first window position), so no buffer is ever
  cleared; outputs that are constant 0 are never stored (the workspace is zeroed once).
* Input packing transposes 16x16 byte tiles (SSE2) and builds each thermometer bit-word
  32 samples at a time with compare + movemask (AVX2) from uint8 images; pre-encoded 0/1 bytes
  are first OR-ed 8 samples per byte (64 features per vector op), then transposed.
* GroupSum counts only the non-constant features of each class, bit-sliced with
  Harley-Seal carry-save adders, read back with masked vector adds (AVX-512) or 8-wide vector
  ops; argmax (first maximum) is done by the caller / predict.
* Every call allocates its own workspace: thread-safe, no global mutable state; any batch
  size works (the last partial block is zero-padded and only valid samples are written);
  ``n_threads`` > 1 splits the blocks over pthreads.

Entry points (``<prefix>`` defaults to ``dl``)::

    int dl_scores_u8(const uint8_t* images, size_t n, int32_t* counts, int n_threads);
    int dl_scores_bits(const uint8_t* bits, size_t n, int32_t* counts, int n_threads);
    int dl_predict_u8(const uint8_t* images, size_t n, int32_t* classes, int n_threads);

``counts`` is (n, k) int32 class counts (divide by tau for the float scores).  Return 0 on
success, -1 out of memory, -2 null pointer, -3 no input encoder (use ``_bits``).
"""
from __future__ import annotations

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
from .base import Backend, Option, Runner, register

DEFAULT_LANES = None   # None: chosen by the compiled code, 8 (one 512-bit word) with AVX-512, else 4
CHUNK_GATES = 64
LOC0, LOC1 = -1, -2   # locations of the constant words (see _Emitter.dense)
_PREFIX_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,30}$")


# --------------------------------------------------------------------------- geometry
def _shape3(shape) -> tuple:
    shape = tuple(int(s) for s in shape)
    if len(shape) == 3:
        return shape
    if len(shape) == 1:
        return (shape[0], 1, 1)
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
    def __init__(self, prefix: str, chunk: int):
        self.prefix = prefix
        self.chunk = chunk
        self.out: list[str] = []
        self.max_tmp = 1

    def cell(self, name, blk: ir.GateBlock, leaf_off, ys: int, pooled: bool = False) -> str:
        """Emit the cell of ``blk`` as chunk functions + a driver; returns the driver's name.

        Leaf ``l`` reads ``x[leaf_off[l]]``; output ``k`` is stored as
        ``y[k*ys] = (y[k*ys] & keep) | value``: ``keep`` = 0 overwrites, all-ones ORs into a
        fused pool's output (so no buffer ever needs clearing).  Cells without a fused pool
        store plainly (``y[k*ys] = value``)."""
        first = blk.first_gate
        n = blk.n_gates
        op, a, b = blk.op.tolist(), blk.a.tolist(), blk.b.tolist()
        CH = self.chunk
        nch = max(1, -(-n // CH))
        chunk_of = lambda node: (node - first) // CH  # noqa: E731
        # gates used by a later chunk get a scratch slot
        needs_slot = np.zeros(n, bool)
        for g in range(n):
            cg = g // CH
            for src in (a[g], b[g]):
                if src >= first and chunk_of(src) != cg:
                    needs_slot[src - first] = True
        slot = np.cumsum(needs_slot) - 1
        self.max_tmp = max(self.max_tmp, int(needs_slot.sum()))
        outs_of_gate: dict[int, list] = {}
        const_outs = []
        for k, node in enumerate(blk.outputs.tolist()):
            if node >= first:
                outs_of_gate.setdefault(node - first, []).append(k)
            else:
                const_outs.append((k, node))
        leaf_off = [int(v) for v in leaf_off]

        def ref(node, cg):
            if node == ir.CONST0:
                return "DL_ZERO"
            if node == ir.CONST1:
                return "DL_ONES"
            if node < first:
                return f"x[{leaf_off[node - ir.FIRST_LEAF]}]"
            g = node - first
            return f"v{g}" if g // CH == cg else f"t[{slot[g]}]"

        def stores(g):
            if needs_slot[g]:
                yield f"  t[{slot[g]}] = v{g};"
            for k in outs_of_gate.get(g, ()):
                yield f"  y[{k * ys}] = (y[{k * ys}] & keep) | v{g};" if pooled else f"  y[{k * ys}] = v{g};"

        fns = []
        for cg in range(nch):
            fn = f"{name}_{cg}"
            fns.append(fn)
            body = _chunk_body(op, a, b, range(cg * CH, min(n, (cg + 1) * CH)), lambda node: ref(node, cg),
                               stores)
            self.out.append(f"static DL_NOINLINE void {fn}(const dl_word* restrict x, dl_word* restrict y, "
                            f"dl_word* restrict t, const dl_word keep) {{\n  (void)x; (void)y; (void)t; (void)keep;\n"
                            + "\n".join(body) + "\n}\n")
        calls = "\n".join(f"  {fn}(x, y, t, keep);" for fn in fns)
        # outputs wired straight to a leaf or to TRUE: a table-driven copy loop.  CONST0
        # outputs are never stored: the workspace is zeroed once when it is allocated and
        # nothing else ever writes their words, so they stay 0 (also under a fused OR pool).
        direct = [(k, node) for k, node in const_outs if node != ir.CONST0]
        if direct:
            dst = ",".join(str(k * ys) for k, _ in direct)
            srcs = ",".join(str(-1 if node == ir.CONST1 else -2 if node == ir.CONST0 else leaf_off[node - ir.FIRST_LEAF])
                            for _, node in direct)
            self.out.append(f"static const int32_t {name}_ddst[] = {{{dst}}};\n"
                            f"static const int32_t {name}_dsrc[] = {{{srcs}}};\n")
            calls += (f"\n  for (int i = 0; i < {len(direct)}; i++)\n"
                      f"    y[{name}_ddst[i]] = (y[{name}_ddst[i]] & keep) | ({name}_dsrc[i] >= 0 ? x[{name}_dsrc[i]] "
                      f": {name}_dsrc[i] == -1 ? DL_ONES : DL_ZERO);")
        self.out.append(f"static inline void {name}(const dl_word* restrict x, dl_word* restrict y, "
                        f"dl_word* restrict t, const dl_word keep) {{\n{calls}\n}}\n")
        return name


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
        calls = [f"  {fn}(ws);" for fn in fns]
        if dst is not None:
            # CONST0 outputs are never stored: the workspace is zeroed once and nothing else
            # writes those words
            pairs = [(int(d), l) for d, l in zip(dst, out_loc) if l != LOC0]
            if pairs:
                self.out.append(f"static const int32_t {name}_mdst[] = {{{','.join(str(d) for d, _ in pairs)}}};\n"
                                f"static const int32_t {name}_msrc[] = {{{','.join(str(l) for _, l in pairs)}}};\n")
                calls.append(f"  for (int i = 0; i < {len(pairs)}; i++)\n"
                             f"    ws[{name}_mdst[i]] = {name}_msrc[i] >= 0 ? ws[{name}_msrc[i]] : DL_ONES;")
        self.out.append(f"static void {name}(dl_word* ws) {{\n  (void)ws;\n" + "\n".join(calls) + "\n}\n")
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
    is the live values (about two layers), not every gate of the network."""

    def __init__(self, first: int):
        self.size = first
        self.free: list[int] = []
        self.pending: list[tuple[int, int]] = []   # (last step reading it, word)
        self.step = 0

    def alloc(self, last: int) -> int:
        while self.pending and self.pending[0][0] < self.step:
            heapq.heappush(self.free, heapq.heappop(self.pending)[1])
        if self.free:
            w = heapq.heappop(self.free)
        else:
            w = self.size
            self.size += 1
        heapq.heappush(self.pending, (last, w))
        return w


def _identity_loc(buf: _Buf) -> list:
    """Word index of every feature of a real buffer, in (C, H, W) order."""
    return [buf.off + buf.index(*np.unravel_index(f, (buf.C, buf.H, buf.W)))
            for f in range(buf.C * buf.H * buf.W)]


def _conv_op(em: _Emitter, i: int, op: ir.GateBlock, p: int, src: _Buf, dst: _Buf) -> None:
    """Step function ``op<i>``: the conv cell at every output position (fused OR pool p > 1)."""
    s = op.stride
    offs = [c * src.plane + dy * src.Wp + dx for c, dy, dx in op.leaves.tolist()]
    cell = em.cell(f"cell{i}", op, offs, dst.plane, pooled=p > 1)
    if p > 1:
        loop = (f"  for (int i = 0; i < {dst.H}; i++)\n"
                f"    for (int j = 0; j < {dst.W}; j++) {{\n"
                f"      dl_word* y = out + {dst.pad * dst.Wp + dst.pad} + i * {dst.Wp} + j;\n"
                f"      for (int u = 0; u < {p}; u++)\n"
                f"        for (int v = 0; v < {p}; v++)\n"
                f"          {cell}(in + (i * {p} + u) * {s * src.Wp} + (j * {p} + v) * {s}, y, t, "
                f"(u | v) ? DL_ONES : DL_ZERO);\n"
                f"    }}\n")
    else:
        loop = (f"  for (int i = 0; i < {dst.H}; i++)\n"
                f"    for (int j = 0; j < {dst.W}; j++)\n"
                f"      {cell}(in + i * {s * src.Wp} + j * {s}, "
                f"out + {dst.pad * dst.Wp + dst.pad} + i * {dst.Wp} + j, t, DL_ZERO);\n")
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
    """The network's constants: sizes, the GroupSum layout and the input encoder's cutoffs."""
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
                  "static const int16_t dl_cut[] = {" + ",".join(map(str, enc.u8_cutoffs.reshape(-1).tolist())) + "};"]
    return lines


def _tables(net: ir.Netlist, ib: _Buf, group: int, loc) -> list:
    """GroupSum word tables and the input layout (flat input feature -> word of buffer 0)."""
    gs_idx, gs_start, gs_ones = _group_sum_tables(net, net.head.k, group, loc)
    cc, yy, xx = np.meshgrid(np.arange(ib.C), np.arange(ib.H), np.arange(ib.W), indexing="ij")
    in_off = (cc * ib.plane + (yy + ib.pad) * ib.Wp + (xx + ib.pad)).reshape(-1)
    return ["static const int32_t dl_gs_idx[] = {" + ",".join(map(str, gs_idx)) + "};",
            "static const int32_t dl_gs_start[] = {" + ",".join(map(str, gs_start)) + "};",
            "static const int32_t dl_gs_ones[] = {" + ",".join(map(str, gs_ones)) + "};",
            "static const int32_t dl_in_off[] = {" + ",".join(map(str, in_off.tolist())) + "};"]


def _entry_points(P: str) -> str:
    return f"""
int {P}_scores_bits(const uint8_t* bits, size_t n, int32_t* counts, int n_threads) {{
  return dl_run(bits, n, counts, n_threads, 1);
}}
int {P}_scores_u8(const uint8_t* images, size_t n, int32_t* counts, int n_threads) {{
#if DL_HAS_ENCODER
  return dl_run(images, n, counts, n_threads, 0);
#else
  (void)images; (void)n; (void)counts; (void)n_threads;
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
#define {P.upper()}_HAS_ENCODER {1 if enc is not None else 0}
#define {P.upper()}_IMAGE_BYTES {int(np.prod(enc.in_shape)) if enc is not None else 0}   /* uint8 image ({ishape}) */
#define {P.upper()}_TAU {net.head.tau!r}   /* float score = count / tau */
/* counts: (n, NUM_CLASSES) int32.  0 = ok, -1 out of memory, -2 null pointer, -3 no encoder. */
int {P}_scores_u8(const uint8_t* images, size_t n, int32_t* counts, int n_threads);
int {P}_scores_bits(const uint8_t* bits, size_t n, int32_t* counts, int n_threads);
int {P}_predict_u8(const uint8_t* images, size_t n, int32_t* classes, int n_threads);
int {P}_block_size(void);
#ifdef __cplusplus
}}
#endif
#endif
"""


def generate(net: ir.Netlist, prefix: str = "dl", chunk_gates: int = CHUNK_GATES,
             header_name: str | None = None) -> tuple[str, str]:
    """Return (C source, header) text for ``net``."""
    if not _PREFIX_RE.match(prefix):
        raise ValueError(f"prefix must be a C identifier of at most 31 characters, got {prefix!r}")
    if not isinstance(chunk_gates, int) or chunk_gates < 1:
        raise ValueError(f"chunk_gates must be a positive integer, got {chunk_gates!r}")
    for op in net.ops:
        if isinstance(op, ir.GateBlock):
            op.validate()
    steps, bufs, real_words = _plan(net)
    em = _Emitter(prefix, chunk_gates)
    arena = _WordArena(real_words)
    calls, loc = _emit_steps(em, steps, bufs, arena)
    if bufs[-1].pad:
        raise AssertionError("final buffer must not be padded")
    if len(loc) != net.head.in_features:
        raise ValueError(f"netlist produces {bufs[-1].words} features but GroupSum expects {net.head.in_features}")
    group = net.head.in_features // net.head.k
    lines = [
        f"/* Generated by difflogic {net.meta.get('difflogic_version', '')} from "
        f"{net.meta.get('model', 'a netlist')}: {net.gate_count():,} gates (paper counting).",
        " * Do not edit: regenerate with `difflogic export`. */",
        "#if !defined(_POSIX_C_SOURCE) || _POSIX_C_SOURCE < 200112L",
        "#undef _POSIX_C_SOURCE",
        "#define _POSIX_C_SOURCE 200112L",
        "#endif",
        "#include <stdint.h>", "#include <stddef.h>", "#include <stdlib.h>", "#include <string.h>",
        "#include <pthread.h>",
        f'#include "{header_name or prefix + ".h"}"',
        template("c/runtime_head.h").read_text(),
        *_defines(net, bufs[0], arena.size + em.max_tmp, real_words, group),
        *_tables(net, bufs[0], group, loc),
        *em.out,
        "static void dl_run_ops(dl_word* ws) {\n"
        f"  dl_word* t = ws + {arena.size};\n  (void)t;\n" + "\n".join(calls) + "\n}\n",
        template("c/runtime_tail.h").read_text(),
        _entry_points(prefix),
    ]
    return "\n".join(lines), _header(net, prefix)


# --------------------------------------------------------------------------- files
def _bench_main(prefix: str, header: str) -> str:
    return (template("c/bench_main.c").read_text().replace("@PREFIX_UPPER@", prefix.upper())
            .replace("@PREFIX@", prefix)
            .replace("@HEADER@", header))


def export(netlist: ir.Netlist, out_dir, prefix: str = "dl", name: str = "net",
           chunk_gates: int = CHUNK_GATES) -> dict:
    """Write ``<name>.c``, ``<name>.h``, ``bench_main.c`` and a ``Makefile`` into ``out_dir``
    (each complete or not at all, other files there untouched: :func:`difflogic.files.write_files`).
    Returns {file name: path}.
    """
    if not re.match(r"^[A-Za-z0-9_.-]+$", name):
        raise ValueError(f"name must be a plain file stem, got {name!r}")
    src, hdr = generate(netlist, prefix=prefix, chunk_gates=chunk_gates, header_name=f"{name}.h")
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


def build_shared(src: str, hdr: str, *, opt_level: int = 2, cc: str | None = None,
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

    def __init__(self, netlist_or_model, opt_level: int = 2, cc: str | None = None,
                 threads: int | None = None, lanes: int | None = DEFAULT_LANES, optimize: bool | None = None,
                 native: bool = True, chunk_gates: int = CHUNK_GATES, extra_flags=()):
        if optimize is None:   # a model is optimized, a netlist taken as given, unless told
            optimize = not isinstance(netlist_or_model, ir.Netlist)
        net = compile_netlist(netlist_or_model, optimize=optimize)
        self.netlist = net
        self.threads = int(threads) if threads else 1
        if self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads!r}")
        self.source, self.header = generate(net, chunk_gates=chunk_gates, header_name="dl.h")
        self.so_path = build_shared(self.source, self.header, opt_level=opt_level, cc=cc, lanes=lanes,
                                    native=native, extra_flags=tuple(extra_flags))
        self._lib = ctypes.CDLL(str(self.so_path))
        for fn in ("dl_scores_u8", "dl_scores_bits", "dl_predict_u8"):
            f = getattr(self._lib, fn)
            f.restype = ctypes.c_int
            f.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_int]
        self.block_size = int(self._lib.dl_block_size())

    # ---- input handling
    def _prepare(self, x, encoded: bool):
        x = np.asarray(x.detach().cpu() if hasattr(x, "detach") else x)
        net = self.netlist
        if encoded or x.dtype == np.bool_ or net.encoder is None:
            return np.ascontiguousarray(check_bits(net, x), dtype=np.uint8), True
        if x.dtype == np.uint8:
            shape = tuple(net.encoder.in_shape)
            if tuple(x.shape[1:]) != shape:
                raise ValueError(f"x must have shape (N, {', '.join(map(str, shape))}), got {tuple(x.shape)}")
            return np.ascontiguousarray(x), False
        return np.ascontiguousarray(encode_input(net, x)), True

    def counts(self, x, encoded: bool = False, threads: int | None = None) -> np.ndarray:
        data, is_bits = self._prepare(x, encoded)
        n = data.shape[0]
        out = np.zeros((n, self.netlist.head.k), np.int32)
        if n:
            fn = self._lib.dl_scores_bits if is_bits else self._lib.dl_scores_u8
            r = fn(data.ctypes.data, n, out.ctypes.data, int(threads or self.threads))
            if r != 0:
                raise RuntimeError(f"compiled network failed with status {r}")
        return out

    def scores(self, x, encoded: bool = False, threads: int | None = None) -> np.ndarray:
        return self.counts(x, encoded, threads).astype(np.float32) / np.float32(self.netlist.head.tau)

    def predict(self, x, encoded: bool = False, threads: int | None = None) -> np.ndarray:
        return self.counts(x, encoded, threads).argmax(1)


# --------------------------------------------------------------------------- the back end
class CRunner(Runner):
    """A netlist compiled to a shared library (:class:`CompiledNet`), counting encoded bits."""

    def __init__(self, netlist: ir.Netlist, **opts):
        t0 = time.perf_counter()
        self.net = CompiledNet(netlist, optimize=False, **opts)
        self.compile_seconds = time.perf_counter() - t0

    def counts(self, bits, threads: int | None = None) -> np.ndarray:
        return self.net.counts(bits, encoded=True, threads=threads).astype(np.int64)


class CBackend(Backend):
    """``--target c``: bit-packed C99 sources (export) or a compiled, loaded library (verify)."""

    name = "c"
    help = "bit-packed C99, built with the system C compiler"
    cli_options = (Option("--prefix", "prefix", ("export",),
                          {"metavar": "NAME", "help": "C symbol prefix of the entry points "
                                                      "(default: dl)"}),)

    def unavailable_reason(self, cc: str | None = None, **_) -> str | None:
        try:
            find_compiler(cc)
        except RuntimeError as e:
            return str(e)
        return None

    def emit(self, netlist, out_dir, *, reference=None, **opts) -> dict:
        """The C sources; ``reference`` is not used (the C export ships no test vectors)."""
        return {"files": export(netlist, out_dir, **opts), "info": {}, "summary": ""}

    def load(self, netlist, **opts) -> CRunner:
        return CRunner(netlist, **opts)


BACKEND = register(CBackend())
