"""Verilog back end: synthesizable Verilog-2001 RTL from the netlist IR, plus a self-checking
testbench, simulator drivers (Icarus Verilog, Verilator) and golden-vector files.

Why a flat gate graph
---------------------
The RTL is generated from one flat graph of 2-input gates (``GateGraph``) built straight from the
structured IR: conv cells are unrolled per output position (padding reads the constant 0), OR
pools become balanced OR trees, and the GroupSum head becomes gates too: one carry-save
popcount per class (full/half adders, earliest-arriving bits first) and an argmax tournament
(log-depth comparators + muxes, ties go to the lower class, i.e. the *first* maximum like
``torch.argmax``).  With everything as gates, the logic depth is known exactly, so the
pipelined form can put a register bank after every ``pipeline`` gate levels anywhere in the
design (the popcount/argmax head, not the network, dominates depth), and the same graph can
be evaluated in numpy (:meth:`VerilogNet.evaluate`) to cross-check the emitter.

While building, the graph is simplified like an AIG (``simplify=True``): constants and
pass-through gates fold away, inverters are absorbed into the truth table of the gates that
read them (any of the 16 gates is one 2-input cell), and structurally identical gates are
shared.  ``simplify=False`` emits every IR gate as written (used by the exhaustive tests).

Interface of the generated top module ``difflogic_net``
------------------------------------------------------
* ``x[n_inputs-1:0]``: the encoded input, bit ``i`` = flattened (C, H, W) row-major input ``i``.
* ``class_idx``: predicted class (first maximum), ``max(1, ceil(log2 k))`` bits.
* ``scores`` (``scores=True``): per-class counts, class ``j`` at ``[j*SW +: SW]``.
* pipelined form only: ``clk``, ``rst`` (synchronous, clears the valid chain only), ``in_valid``
  and ``out_valid``; an input applied before rising edge ``t`` appears after edge
  ``t + latency - 1`` (``latency`` register banks, the last one registers the outputs).

With ``axis`` (``--axis W``) or ``fold`` (``--fold``) the top module has AXI4-Stream ports
instead: :mod:`.verilog_axis` (the unrolled network behind a stream interface, the interface
itself, its test bench) and :mod:`.verilog_fold` (the streamed form: conv layers computed over
positions in time); both reuse the gate graph, its renderer and the popcount of this module.
"""
from __future__ import annotations

import heapq
import json
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from .. import gates
from .._resources import template
from ..compiler import encode_input, random_inputs, simulate
from ..compiler.ir import GateBlock, Netlist, OrPool
from ..files import write_files
from . import verilog_features
from .base import COMMANDS, Backend, Option, Runner, register

TOP = "difflogic_net"
#: Refuse (before writing anything) designs whose paper gate count plus head estimate exceeds
#: this: the Python graph builder needs roughly 0.5 KB per gate and simulators/synthesis
#: become impractical well before that.  Override with ``max_gates=``.
DEFAULT_MAX_GATES = 4_000_000
#: Random test vectors of an export's self-checking testbench unless told otherwise.
DEFAULT_VECTORS = 256
#: The simulators the testbench runs in (run_sim.sh picks one by the design's size).
SIMULATORS = ("iverilog", "verilator")
APT = {"iverilog": "iverilog", "vvp": "iverilog", "verilator": "verilator", "yosys": "yosys",
       "nextpnr-ice40": "nextpnr-ice40", "icepack": "fpga-icestorm", "icetime": "fpga-icestorm"}


class ToolNotFoundError(RuntimeError):
    """A simulator or synthesis tool is not installed (the message names the apt package)."""


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ToolNotFoundError(f"{name} not found on PATH; install it with "
                                f"`apt-get install {APT.get(name, name)}`")
    return path


# --------------------------------------------------------------------------- gate graph
class GateGraph:
    """A DAG of 2-input gates over *literals* ``2*node + inverted``.

    Node 0 is constant 0 (literal 0 = FALSE, 1 = TRUE), nodes ``1..n_inputs`` are the inputs,
    then gates in topological order.  With ``simplify`` every gate is canonicalised to an op
    with output 0 on (0, 0) (the output inversion moves into the literal), operands ordered,
    and hashed, so NAND(a, b) and AND(a, b) share one node.
    """

    def __init__(self, n_inputs: int, simplify: bool = True):
        self.n_inputs = n_inputs
        self.simplify = simplify
        self.op: list[int] = []
        self.a: list[int] = []
        self.b: list[int] = []
        self.level: list[int] = [0] * (1 + n_inputs)
        self._hash: dict[tuple[int, int, int], int] = {}

    @property
    def first_gate(self) -> int:
        return 1 + self.n_inputs

    @property
    def n_nodes(self) -> int:
        return len(self.level)

    def input_lit(self, i: int) -> int:
        return 2 * (1 + i)

    def lit_level(self, lit: int) -> int:
        return self.level[lit >> 1]

    def _new(self, op: int, la: int, lb: int) -> int:
        self.op.append(op)
        self.a.append(la)
        self.b.append(lb)
        lv = self.level
        lv.append(1 + max(lv[la >> 1], lv[lb >> 1]))
        return len(lv) - 1

    @staticmethod
    def _unary(f0: int, f1: int, node: int) -> int:
        """Literal of the 1-input function (f(0), f(1)) of ``node``."""
        if f0 == f1:
            return f0  # constant literal
        return 2 * node + f0  # (0, 1): the node; (1, 0): its inverse

    def gate(self, op: int, la: int, lb: int) -> int:
        """Literal of gate ``op`` applied to literals ``la``, ``lb``."""
        if not self.simplify:
            return 2 * self._new(op, la, lb)
        if la & 1:
            op = gates.INVERT_A[op]
        if lb & 1:
            op = gates.INVERT_B[op]
        na, nb = la >> 1, lb >> 1
        out = gates.hard_gate
        if na == 0 or not gates.USES_A[op]:
            return self._unary(out(op, 0, 0), out(op, 0, 1), nb)
        if nb == 0 or not gates.USES_B[op]:
            return self._unary(out(op, 0, 0), out(op, 1, 0), na)
        if na == nb:
            return self._unary(out(op, 0, 0), out(op, 1, 1), na)
        inv = 0
        if out(op, 0, 0):  # output 1 on (0, 0): store the complement, return the inverted literal
            op = gates.INVERT_OUTPUT[op]
            inv = 1
        if na > nb:
            na, nb, op = nb, na, gates.SWAP_INPUTS[op]
        key = (op, na, nb)
        node = self._hash.get(key)
        if node is None:
            node = self._new(op, 2 * na, 2 * nb)
            self._hash[key] = node
        return 2 * node + inv

    # convenience gates
    def AND(self, x, y):
        return self.gate(gates.AND, x, y)

    def OR(self, x, y):
        return self.gate(gates.OR, x, y)

    def XOR(self, x, y):
        return self.gate(gates.XOR, x, y)

    def MUX(self, sel, if1, if0):
        return self.OR(self.AND(sel, if1), self.gate(gates.NOT_A_AND_B, sel, if0))


# --------------------------------------------------------------------------- IR -> graph
def flatten_ops(g: GateGraph, netlist: Netlist) -> np.ndarray:
    """Unroll every op of the netlist into ``g``; returns the literals of the final outputs
    (flattened C, H, W order)."""
    cur = np.array([g.input_lit(i) for i in range(netlist.n_inputs)], dtype=np.int64)
    shape = tuple(netlist.input_shape)
    for op in netlist.ops:
        if isinstance(op, GateBlock):
            op.validate()
            if int(np.prod(op.in_shape)) != cur.size:
                raise ValueError(f"{op.name or op.kind} block expects in_shape {op.in_shape}, "
                                 f"but the previous op produces {shape}")
            cur = _conv_block(g, op, cur) if op.kind == "conv" else _dense_block(g, op, cur)
            shape = op.out_shape
        elif isinstance(op, OrPool):
            if int(np.prod(op.in_shape)) != cur.size:
                raise ValueError(f"OrPool expects in_shape {op.in_shape}, but the previous op "
                                 f"produces {shape}")
            cur = _or_pool(g, op, cur.reshape(op.in_shape))
            shape = op.out_shape
        else:
            raise TypeError(f"netlist op must be a GateBlock or OrPool, got {type(op).__name__}")
    return cur.reshape(-1)


def cell_lists(blk: GateBlock) -> tuple:
    """The cell as plain int lists (fast to walk in Python)."""
    return (list(zip(np.asarray(blk.op).tolist(), np.asarray(blk.a).tolist(),
                     np.asarray(blk.b).tolist())), np.asarray(blk.outputs).tolist())


def eval_cell(g: GateGraph, cell: tuple, leaf_lits) -> list[int]:
    """Instantiate the cell once: node ids as in the IR (0, 1 constants, then leaves, gates)."""
    m = [0, 1, *leaf_lits]
    gate = g.gate
    for o, x, y in cell[0]:
        m.append(gate(o, m[x], m[y]))
    return [m[o] for o in cell[1]]


def _dense_block(g: GateGraph, blk: GateBlock, cur: np.ndarray) -> np.ndarray:
    if blk.n_leaves and (blk.leaves.min() < 0 or blk.leaves.max() >= cur.size):
        raise ValueError(f"{blk.name or 'dense'} block: leaf index out of range 0..{cur.size - 1}")
    leaves = cur[np.asarray(blk.leaves, dtype=np.int64)].tolist()
    return np.array(eval_cell(g, cell_lists(blk), leaves), dtype=np.int64)


def _conv_block(g: GateGraph, blk: GateBlock, cur: np.ndarray) -> np.ndarray:
    C, H, W = blk.in_shape
    K, Ho, Wo = blk.out_shape
    s, p = blk.stride, blk.padding
    lv = np.asarray(blk.leaves, dtype=np.int64).reshape(-1, 3)
    if len(lv) and (lv[:, 0].min() < 0 or lv[:, 0].max() >= C):
        raise ValueError(f"{blk.name or 'conv'} block: leaf channel out of range 0..{C - 1}")
    padded = np.zeros((C, H + 2 * p, W + 2 * p), dtype=np.int64)  # literal 0 = constant FALSE
    padded[:, p:p + H, p:p + W] = cur.reshape(C, H, W)
    rows = lv[:, 1][:, None] + s * np.arange(Ho)  # (L, Ho)
    cols = lv[:, 2][:, None] + s * np.arange(Wo)  # (L, Wo)
    if len(lv) and (rows.max() >= padded.shape[1] or cols.max() >= padded.shape[2]
                    or rows.min() < 0 or cols.min() < 0):
        raise ValueError(f"{blk.name or 'conv'} block: leaf offset outside the padded input")
    leaves = padded[lv[:, 0][:, None, None], rows[:, :, None], cols[:, None, :]]  # (L, Ho, Wo)
    leaves = leaves.reshape(len(lv), Ho * Wo).T.tolist()
    cell = cell_lists(blk)
    out = np.empty((K, Ho * Wo), dtype=np.int64)
    for pos, leaf_lits in enumerate(leaves):
        out[:, pos] = eval_cell(g, cell, leaf_lits)
    return out.reshape(-1)


def reduce_tree(g: GateGraph, lits: list[int], fn) -> int:
    """Balanced reduction (depth ceil(log2 n)), order preserved."""
    while len(lits) > 1:
        nxt = [fn(lits[i], lits[i + 1]) for i in range(0, len(lits) - 1, 2)]
        if len(lits) % 2:
            nxt.append(lits[-1])
        lits = nxt
    return lits[0]


def _or_pool(g: GateGraph, op: OrPool, x: np.ndarray) -> np.ndarray:
    k = op.size
    C, Hp, Wp = op.out_shape
    x = x[:, :Hp * k, :Wp * k].reshape(C, Hp, k, Wp, k).transpose(0, 1, 3, 2, 4)
    win = x.reshape(C * Hp * Wp, k * k).tolist()
    return np.array([reduce_tree(g, w, g.OR) for w in win], dtype=np.int64)


# --------------------------------------------------------------------------- head as gates
def popcount(g: GateGraph, bits: list[int], width: int) -> list[int]:
    """Carry-save popcount: per weight column, compress the three earliest-arriving bits with
    a full adder (two with a half adder) until one bit is left.  Returns ``width`` literals,
    LSB first (weights >= width are provably 0 because the count fits in ``width`` bits)."""
    cols: list[list[tuple[int, int, int]]] = [[] for _ in range(width + 1)]
    seq = 0
    for b in bits:
        if g.simplify and b == 0:
            continue  # constant 0 contributes nothing
        cols[0].append((g.lit_level(b), seq, b))
        seq += 1
    out = []
    for w in range(width):
        col = cols[w]
        heapq.heapify(col)
        while len(col) > 1:
            if len(col) >= 3:
                x, y, z = (heapq.heappop(col)[2] for _ in range(3))
                xy = g.XOR(x, y)
                s, c = g.XOR(xy, z), g.OR(g.AND(x, y), g.AND(z, xy))
            else:
                x, y = (heapq.heappop(col)[2] for _ in range(2))
                s, c = g.XOR(x, y), g.AND(x, y)
            heapq.heappush(col, (g.lit_level(s), seq, s))
            cols[w + 1].append((g.lit_level(c), seq + 1, c))
            seq += 2
        out.append(col[0][2] if col else 0)
    return out


def greater(g: GateGraph, r: list[int], l: list[int]) -> int:
    """Literal of ``r > l`` (unsigned, LSB-first bit lists) with a log-depth (gt, eq) tree."""
    parts = [(g.gate(gates.A_AND_NOT_B, ri, li), g.gate(gates.XNOR, ri, li)) for ri, li in zip(r, l)]
    while len(parts) > 1:  # parts are LSB first; combine (lo, hi) neighbours
        nxt = []
        for i in range(0, len(parts) - 1, 2):
            (gl, el), (gh, eh) = parts[i], parts[i + 1]
            nxt.append((g.OR(gh, g.AND(eh, gl)), g.AND(eh, el)))
        if len(parts) % 2:
            nxt.append(parts[-1])
        parts = nxt
    return parts[0][0]


def argmax_tournament(g: GateGraph, counts: list[list[int]], idx_width: int) -> list[int]:
    """Tournament: neighbours (lower, higher class) -> the higher one only if strictly
    greater, so the first maximum wins (torch.argmax tie-break)."""
    cands = [(c, [(j >> i) & 1 for i in range(idx_width)]) for j, c in enumerate(counts)]
    while len(cands) > 1:
        nxt = []
        for i in range(0, len(cands) - 1, 2):
            (lv, li), (rv, ri) = cands[i], cands[i + 1]
            sel = greater(g, rv, lv)
            nxt.append(([g.MUX(sel, a, b) for a, b in zip(rv, lv)],
                        [g.MUX(sel, a, b) for a, b in zip(ri, li)]))
        if len(cands) % 2:
            nxt.append(cands[-1])
        cands = nxt
    return cands[0][1]


# --------------------------------------------------------------------------- compiled form
@dataclass
class VerilogNet:
    """The flat gate graph of a netlist, compacted to the live gates, ready to emit."""
    n_inputs: int
    num_classes: int
    score_width: int
    class_width: int
    op: np.ndarray          # uint8 (G,)
    a: np.ndarray           # int64 (G,) literals over compact nodes (0 const, 1..n_in inputs)
    b: np.ndarray
    level: np.ndarray       # int64 (1 + n_in + G,)
    class_lits: list
    score_lits: list        # k lists of score_width literals, LSB first
    n_network_gates: int    # live gates of the network proper (the rest is the GroupSum head)
    meta: dict

    @property
    def n_gates(self) -> int:
        return int(len(self.op))

    @property
    def first_gate(self) -> int:
        return 1 + self.n_inputs

    @property
    def depth(self) -> int:
        lits = self.class_lits + [l for s in self.score_lits for l in s]
        return int(max([self.level[l >> 1] for l in lits], default=0))

    @property
    def network_depth(self) -> int:
        n = self.first_gate + self.n_network_gates
        return int(self.level[:n].max(initial=0))

    def evaluate(self, bits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """numpy evaluation of exactly the emitted logic: bits (N, n_inputs) -> (counts (N, k),
        class (N,)).  Used to cross-check the emitter; golden vectors come from the compiler's
        simulator instead."""
        bits = check_input_bits(bits, self.n_inputs)
        n = bits.shape[0]
        val = np.zeros((self.first_gate + self.n_gates, n), dtype=np.uint8)
        val[1:self.first_gate] = bits.T
        lv = self.level[self.first_gate:]
        order = np.argsort(lv, kind="stable")
        bounds = np.searchsorted(lv[order], np.arange(1, lv.max(initial=0) + 2))
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            idx = order[lo:hi]
            av = val[self.a[idx] >> 1] ^ (self.a[idx] & 1)[:, None].astype(np.uint8)
            bv = val[self.b[idx] >> 1] ^ (self.b[idx] & 1)[:, None].astype(np.uint8)
            val[self.first_gate + idx] = gates.hard_gate(self.op[idx, None].astype(np.int64), av, bv)

        def lit(l):
            return val[l >> 1] ^ np.uint8(l & 1)

        counts = np.stack([sum(lit(l).astype(np.int64) << i for i, l in enumerate(s))
                           for s in self.score_lits], 1)
        cls = sum(lit(l).astype(np.int64) << i for i, l in enumerate(self.class_lits))
        return counts, cls


def check_input_bits(bits, n_inputs: int) -> np.ndarray:
    arr = np.asarray(bits)
    if arr.ndim < 2 or int(np.prod(arr.shape[1:])) != n_inputs:
        raise ValueError(f"bits must be an array of shape (N, {n_inputs}) (or (N, *input_shape)), "
                         f"got shape {arr.shape}")
    arr = arr.reshape(arr.shape[0], n_inputs)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    if not np.issubdtype(arr.dtype, np.integer) or (arr.size and (arr.min() < 0 or arr.max() > 1)):
        raise ValueError("bits must hold only 0/1 integers (the encoded binary input)")
    if arr.shape[0] < 1:
        raise ValueError("bits must hold at least one vector")
    return arr.astype(np.uint8)


def estimate_gates(netlist: Netlist, folded: bool = False) -> int:
    """Paper gate count plus the GroupSum adder estimate: what :func:`export` checks against
    ``max_gates`` before doing any work; ``folded``: the streamed form, whose conv layers are
    one cell each (cell gates, not times the positions)."""
    if not folded:
        return int(netlist.gate_count(include_head=True))
    return int(sum(op.n_gates if isinstance(op, GateBlock) else 0 for op in netlist.ops)
               + netlist.head.adder_gate_estimate())


def build(netlist: Netlist, *, simplify: bool = True) -> VerilogNet:
    """Flatten the netlist (network + popcount/argmax head) into a compact gate graph."""
    if not isinstance(netlist, Netlist):
        raise TypeError(f"netlist must be a difflogic.compiler.ir.Netlist, got {type(netlist).__name__}")
    g = GateGraph(netlist.n_inputs, simplify=simplify)
    outs = flatten_ops(g, netlist)
    n_net_nodes = g.n_nodes
    k = netlist.head.k
    if k < 1 or outs.size % k or outs.size != netlist.head.in_features:
        raise ValueError(f"GroupSum(k={k}, in_features={netlist.head.in_features}) does not match "
                         f"the {outs.size} outputs of the last op")
    group = outs.size // k
    sw = max(1, group.bit_length())
    cw = max(1, (k - 1).bit_length())
    counts = [popcount(g, outs[j * group:(j + 1) * group].tolist(), sw) for j in range(k)]
    cls = argmax_tournament(g, counts, cw)

    return compact(g, cls, counts, n_network_nodes=n_net_nodes, num_classes=k, score_width=sw,
                   class_width=cw, meta=dict(netlist.meta or {}))


def compact(g: GateGraph, class_lits: list, score_lits: list, *, n_network_nodes: int,
            num_classes: int, score_width: int, class_width: int, meta: dict) -> VerilogNet:
    """Dead-gate elimination and compaction of ``g`` to the gates its outputs (``class_lits``
    and the lists of ``score_lits``) read; ``n_network_nodes``: the graph's node count before
    the head was added (the gates below it count as network gates)."""
    fg = g.first_gate
    live = np.zeros(g.n_nodes, dtype=bool)
    live[:fg] = True
    stack = [l >> 1 for l in list(class_lits) + [l for c in score_lits for l in c]]
    ga, gb = g.a, g.b
    while stack:
        nd = stack.pop()
        if live[nd]:
            continue
        live[nd] = True
        stack.append(ga[nd - fg] >> 1)
        stack.append(gb[nd - fg] >> 1)
    new_id = np.cumsum(live) - 1
    keep = np.nonzero(live[fg:])[0]

    def remap(lits):
        lits = np.asarray(lits, dtype=np.int64)
        return 2 * new_id[lits >> 1] + (lits & 1)

    level = np.asarray(g.level, dtype=np.int64)[live]
    return VerilogNet(
        n_inputs=g.n_inputs, num_classes=num_classes, score_width=score_width,
        class_width=class_width, op=np.asarray(g.op, dtype=np.uint8)[keep],
        a=remap(np.asarray(ga, dtype=np.int64)[keep]), b=remap(np.asarray(gb, dtype=np.int64)[keep]),
        level=level, class_lits=remap(class_lits).tolist(),
        score_lits=[remap(c).tolist() for c in score_lits],
        n_network_gates=int(live[fg:n_network_nodes].sum()), meta=meta)


# --------------------------------------------------------------------------- emission
def _names(net: VerilogNet):
    fg = net.first_gate

    def name(node: int) -> str:
        if node >= fg:
            return f"g{node - fg}"
        return f"x[{node - 1}]"
    return name


def const_bit(v: int) -> str:
    return "1'b1" if v else "1'b0"


class Pipeline:
    """Register placement: gate at level L is in stage (L-1)//N; a value produced in stage s
    and read in stage t > s travels through register banks s .. t-1; outputs are read in stage
    B = latency (so bank B-1 is the output register)."""

    def __init__(self, net: VerilogNet, n: int):
        fg = net.first_gate
        self.fg = fg
        lv = net.level
        self.latency = max(1, -(-net.depth // n))
        stage = np.zeros(len(lv), dtype=np.int64)
        stage[fg:] = (lv[fg:] - 1) // n
        self.stage = stage
        last = stage.copy()  # last stage that reads the node (>= own stage)
        gs = stage[fg:]
        for lits in (net.a, net.b):
            np.maximum.at(last, lits >> 1, gs)
        out_nodes = [l >> 1 for l in net.class_lits + [l for s in net.score_lits for l in s]]
        last[out_nodes] = self.latency
        last[0] = 0  # constants are never registered
        self.last = last
        self.n_registers = int(np.maximum(last - stage, 0).sum())


def register_banks(pipe: Pipeline, ref) -> list[str]:
    """The pipeline's register banks (``ref(node, stage)`` names a value read in a stage) and
    the valid chain that follows the data through them."""
    lines = []
    last, stage = pipe.last.tolist(), pipe.stage.tolist()
    banks: list[list[int]] = [[] for _ in range(pipe.latency)]
    for node in range(1, len(last)):
        for bk in range(stage[node], last[node]):
            banks[bk].append(node)
    for bk, nodes in enumerate(banks):
        regs = [ref(nd, bk + 1) for nd in nodes]
        lines.append(f"  // register bank {bk}: {len(nodes)} flip-flops")
        for i in range(0, len(regs), 16):
            lines.append("  reg " + ", ".join(regs[i:i + 16]) + ";")
        lines.append("  always @(posedge clk) begin")
        lines += [f"    {r} <= {ref(nd, bk)};" for r, nd in zip(regs, nodes)]
        lines.append("  end")
    lines.append(f"  reg [{pipe.latency - 1}:0] valid_q;")
    shift = "in_valid" if pipe.latency == 1 else f"{{valid_q[{pipe.latency - 2}:0], in_valid}}"
    return lines + ["  always @(posedge clk) begin",
                    f"    if (rst) valid_q <= {pipe.latency}'d0;",
                    f"    else valid_q <= {shift};", "  end",
                    f"  assign out_valid = valid_q[{pipe.latency - 1}];"]


@dataclass
class GateBody:
    """The Verilog of a compacted gate graph: ``lines`` (a comment, one wire per gate and,
    pipelined, the register banks and the valid chain ``in_valid`` -> ``out_valid`` on ``clk``
    / ``rst``), ``out(lit)``: the expression of a literal at the output stage."""
    lines: list
    out: object
    latency: int
    registers: int


def render_gates(net: VerilogNet, pipeline: int, comment: str) -> GateBody:
    """Gates of ``net`` reading input bus ``x``; ``pipeline`` N > 0: a register bank every N
    levels (outputs registered, ``latency`` banks)."""
    name = _names(net)
    fg = net.first_gate
    pipe = Pipeline(net, pipeline) if pipeline else None

    def ref(node: int, stage: int) -> str:
        if pipe is None or stage <= pipe.stage[node]:
            return name(node)
        return f"r{stage - 1}_{name(node).replace('[', '').replace(']', '')}"

    def operand(lit: int, stage: int) -> tuple[int, str]:
        """(inversion, spelling) of a literal read in ``stage``."""
        node = lit >> 1
        if node == 0:
            return 0, const_bit(lit & 1)
        return lit & 1, ref(node, stage)

    out_stage = pipe.latency if pipe else 0

    def out_expr(lit: int) -> str:
        inv, s = operand(lit, out_stage)
        return gates.render(gates.NOT_A, s, "", not_="~") if inv else s

    lines = [comment]
    ops, A, B = net.op.tolist(), net.a.tolist(), net.b.tolist()
    stage_of = pipe.stage.tolist() if pipe else None
    for i in range(net.n_gates):
        st = stage_of[fg + i] if pipe else 0
        ia, sa = operand(A[i], st)
        ib, sb = operand(B[i], st)
        op = ops[i]
        if ia:
            op = gates.INVERT_A[op]
        if ib:
            op = gates.INVERT_B[op]
        lines.append(f"  wire g{i} = {gates.render(op, sa, sb, not_='~', zero=const_bit(0), one=const_bit(1))};")
    if pipe:
        lines += register_banks(pipe, ref)
    return GateBody(lines, out_expr, pipe.latency if pipe else 0, pipe.n_registers if pipe else 0)


def _render_netlist(net: VerilogNet, pipeline: int, scores: bool, header: str) -> tuple[str, dict]:
    cls_w, sw, k = net.class_width, net.score_width, net.num_classes
    lines = [header, "`timescale 1ns/1ps", f"module {TOP} ("]
    ports = []
    if pipeline:
        ports += ["    input  wire clk,", "    input  wire rst,", "    input  wire in_valid,",
                  "    output wire out_valid,"]
    ports.append(f"    input  wire [{net.n_inputs - 1}:0] x,")
    if scores:
        ports.append(f"    output wire [{k * sw - 1}:0] scores,")
    ports.append(f"    output wire [{cls_w - 1}:0] class_idx")
    lines += ports + [");"]
    body = render_gates(net, pipeline, f"  // {net.n_gates} gates ({net.n_network_gates} network, "
                                       f"{net.n_gates - net.n_network_gates} popcount/argmax head)")
    lines += body.lines
    cls_bits = [body.out(l) for l in reversed(net.class_lits)]
    lines.append(f"  assign class_idx = {{{', '.join(cls_bits)}}};")
    if scores:
        bits = [body.out(l) for s in reversed(net.score_lits) for l in reversed(s)]
        lines.append(f"  assign scores = {{{', '.join(bits)}}};")
    lines += ["endmodule", ""]
    return "\n".join(lines), {"latency": body.latency, "registers": body.registers}


# --------------------------------------------------------------------------- vectors
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def hex_lines(bits: np.ndarray) -> str:
    """(N, W) 0/1 -> one hex number per line, bit i of the row = bit i of the number."""
    n, w = bits.shape
    w4 = -(-w // 4) * 4
    padded = np.zeros((n, w4), dtype=np.uint8)
    padded[:, :w] = bits
    nib = padded[:, ::-1].reshape(n, w4 // 4, 4)
    vals = nib[..., 0] * 8 + nib[..., 1] * 4 + nib[..., 2] * 2 + nib[..., 3]
    chars = np.concatenate([_HEX[vals], np.full((n, 1), ord("\n"), dtype=np.uint8)], 1)
    return chars.tobytes().decode()


def output_bits(counts: np.ndarray, cls: np.ndarray, cls_w: int, sw: int, scores: bool) -> np.ndarray:
    cols = [(cls >> i) & 1 for i in range(cls_w)]
    if scores:
        cols += [(counts[:, j] >> i) & 1 for j in range(counts.shape[1]) for i in range(sw)]
    return np.stack(cols, 1).astype(np.uint8)


def golden_counts(netlist: Netlist, bits: np.ndarray) -> np.ndarray:
    return np.asarray(simulate(netlist, bits.reshape(bits.shape[0], *netlist.input_shape)),
                      dtype=np.int64)


# --------------------------------------------------------------------------- export
def fill_template(text: str, **subs) -> str:
    for key, val in subs.items():
        text = text.replace("{{" + key + "}}", str(val))
    if "{{" in text:
        start = text.index("{{")
        raise RuntimeError(f"template placeholder {text[start:start + 40]!r} left unfilled")
    return text


def _dut_instance(pipelined: bool, scores: bool) -> str:
    conns = ["    .x(x)", "    .class_idx(got_class)"]
    if scores:
        conns.append("    .scores(got_scores)")
    else:
        conns.insert(0, "    // exported without scores")
    if pipelined:
        conns = ["    .clk(clk)", "    .rst(rst)", "    .in_valid(in_valid)", "    .out_valid(out_valid)"] + conns
        pre = ""
    else:
        pre = "  assign out_valid = 1'b1;  // combinational: every input is answered at once\n"
    conns = [c for c in conns if not c.strip().startswith("//")]
    return pre + f"  {TOP} dut (\n" + ",\n".join(conns) + "\n  );"


def synth_script(lut: int = 6, stat: str = "synth_stat.txt", ltp: str = "synth_ltp.txt",
                 fast: bool = False) -> str:
    """The yosys script (template export/verilog/synth.ys) for generic ``lut``-input LUTs;
    ``fast`` runs ABC's quick mapping script (much faster on big designs, somewhat more LUTs)."""
    return fill_template(template("verilog/synth.ys").read_text(), VERILOG=f"{TOP}.v", TOP=TOP, LUT=lut,
                 STAT=stat, LTP=ltp, ABC_OPTS="-fast" if fast else "")


def _check_pipeline(pipeline) -> int:
    if isinstance(pipeline, bool) or not isinstance(pipeline, int) or pipeline < 0:
        raise ValueError(f"pipeline must be an integer >= 0 (0 = combinational, N = a register "
                         f"bank every N gate levels), got {pipeline!r}")
    return pipeline


def check_size(netlist: Netlist, pipeline: int = 0, max_gates: int = DEFAULT_MAX_GATES,
               folded: bool = False) -> int:
    """Refuse a design larger than ``max_gates`` (estimated with :func:`estimate_gates`) with
    an error stating its gate count.  Cheap (no graph is built), so callers run it before
    any work or file output; returns the validated ``pipeline``."""
    pipeline = _check_pipeline(pipeline)
    if isinstance(max_gates, bool) or not isinstance(max_gates, int) or max_gates < 1:
        raise ValueError(f"max_gates must be a positive integer, got {max_gates!r}")
    est = estimate_gates(netlist, folded)
    form = f"pipelined (pipeline={pipeline})" if pipeline else "combinational"
    form = f"streamed, {form}" if folded else form
    if est > max_gates:
        raise ValueError(f"model too large for the {form} Verilog form: {est:,} gates (paper count "
                         f"+ GroupSum adder estimate) > max_gates={max_gates:,}; nothing was "
                         "written; raise the limit (max_gates= / --max-gates) if you really want it")
    return pipeline


def export(netlist: Netlist, out_dir, *, pipeline: int = 0, scores: bool = False, vectors=None,
           expected=None, max_gates: int = DEFAULT_MAX_GATES, simplify: bool = True,
           axis: int | None = None, fold=None) -> dict:
    """Write ``difflogic_net.v`` (+ ``difflogic_net.json`` sidecar, ``tb.v``, ``run_sim.sh``,
    ``synth.ys`` and, with ``vectors``, the golden ``vectors_in.hex`` / ``vectors_out.hex``).

    ``pipeline``: 0 = purely combinational; N = a register bank every N gate levels (latency in
    the header and sidecar).  ``axis`` W: AXI4-Stream ports, W-bit input beats
    (:mod:`.verilog_axis`); ``fold`` "auto" or F: the streamed form (:mod:`.verilog_fold`, F =
    cycles of the class count).  ``vectors``: encoded input bits (N, n_inputs); their expected
    outputs come from ``expected`` (counts (N, k)) or else the compiler's reference simulator.
    Each file appears complete or not at all and other files in ``out_dir`` are kept; of an
    earlier export there, the files its sidecar lists and this one does not rewrite (its test
    vectors) are removed.  Returns the sidecar dict (+ ``dir``).
    """
    if not isinstance(netlist, Netlist):
        raise TypeError(f"netlist must be a difflogic.compiler.ir.Netlist, got {type(netlist).__name__}")
    pipeline = check_size(netlist, pipeline, max_gates, folded=fold is not None)
    bits = None
    if vectors is not None:
        bits = check_input_bits(vectors, netlist.n_inputs)
        if expected is None:
            expected = golden_counts(netlist, bits)
        expected = np.asarray(expected, dtype=np.int64)
        if expected.shape != (bits.shape[0], netlist.num_classes):
            raise ValueError(f"expected must be counts of shape ({bits.shape[0]}, "
                             f"{netlist.num_classes}), got {expected.shape}")
    elif expected is not None:
        raise ValueError("expected= needs vectors=")
    if axis is not None or fold is not None:
        from . import verilog_axis
        fmt, rtl, side = verilog_axis.stream_design(netlist, axis=axis, fold=fold, pipeline=pipeline,
                                                    scores=scores, simplify=simplify)
        values = None if bits is None else verilog_axis.stream_values(fmt, netlist.n_inputs, bits)
        return verilog_axis.write_stream(Path(out_dir), rtl, side, fmt, values=values,
                                         expected=expected, scores=scores)
    net = build(netlist, simplify=simplify)
    return _write(net, Path(out_dir), pipeline=pipeline, scores=scores, bits=bits, expected=expected,
                  extra=verilog_features.extra_files(netlist))   # a table model's encoder


def sidecar_fields(net: VerilogNet, pipeline: int, scores: bool) -> dict:
    return {
        "top": TOP, "inputs": net.n_inputs, "classes": net.num_classes,
        "gates": net.n_gates, "network_gates": net.n_network_gates,
        "head_gates": net.n_gates - net.n_network_gates,
        "levels": net.depth, "network_levels": net.network_depth,
        "pipeline": pipeline, "latency": 0, "registers": 0,
        "class_width": net.class_width, "score_width": net.score_width, "scores": bool(scores),
        "input_bit_order": "bit i = input i of the flattened (C, H, W) row-major encoded input",
        "tie_break": "first maximum (torch.argmax)", "vectors": 0, "meta": export_meta(net.meta),
    }


def export_meta(meta: dict) -> dict:
    """The netlist's meta as an export records it: without the passes' run times, so that the
    same model always exports to the same bytes."""
    opt = meta.get("optimize")
    if not isinstance(opt, dict) or "seconds" not in opt:
        return meta
    return {**meta, "optimize": {k: v for k, v in opt.items() if k != "seconds"}}


def _rtl(net: VerilogNet, pipeline: int, scores: bool) -> tuple[str, dict]:
    """The RTL text with its header, and the pipeline figures (latency, registers)."""
    latency_doc = ("combinational (no clock)" if not pipeline else
                   "{lat} cycles: a register bank every {p} gate levels, the last bank registers "
                   "the outputs")
    header = "\n".join([
        f"// {TOP}: difflogic gate network, generated by difflogic.backends.verilog (do not edit).",
        f"// model: {net.meta.get('name', net.meta.get('model', 'unnamed'))}",
        f"// inputs: {net.n_inputs} bits (bit i = input i of the flattened (C,H,W) encoded input)",
        f"// classes: {net.num_classes}; class_idx = first maximum of the per-class counts",
        f"// gates: {net.n_gates} ({net.n_network_gates} network + "
        f"{net.n_gates - net.n_network_gates} popcount/argmax head); logic depth {net.depth} gate levels",
        "// latency: {LATENCY}"])
    rtl, info = _render_netlist(net, pipeline, scores, header)
    rtl = rtl.replace("{LATENCY}", latency_doc.format(lat=info["latency"], p=pipeline), 1)
    return rtl, info


def _testbench(net: VerilogNet, scores: bool, n_vec: int, latency: int, pipelined: bool) -> str:
    out_bits_w = net.class_width + (net.num_classes * net.score_width if scores else 0)
    return fill_template(template("verilog/tb.v.in").read_text(), TOP=TOP, N_INPUTS=net.n_inputs,
                 N_VECTORS=max(n_vec, 1), OUT_WIDTH=out_bits_w, CLASS_WIDTH=net.class_width,
                 LATENCY=latency, DUT=_dut_instance(pipelined, scores),
                 GOT_EXPR="{got_scores, got_class}" if scores else "got_class",
                 SCORES_DECL=(f"  wire [{net.num_classes * net.score_width - 1}:0] got_scores;"
                              if scores else ""))


def _write(net: VerilogNet, out_dir: Path, *, pipeline: int, scores: bool, bits, expected,
           extra: dict | None = None) -> dict:
    side = sidecar_fields(net, pipeline, scores)
    rtl, info = _rtl(net, pipeline, scores)
    side.update(info)
    files = {f"{TOP}.v": rtl, **(extra or {})}
    if bits is not None:
        side["vectors"] = bits.shape[0]
        files["vectors_in.hex"] = hex_lines(bits)
        if expected is not None:
            cls = np.argmax(expected, axis=1)
            files["vectors_out.hex"] = hex_lines(output_bits(expected, cls, net.class_width,
                                                            net.score_width, scores))
    files["tb.v"] = _testbench(net, scores, side["vectors"], info["latency"], bool(pipeline))
    files["run_sim.sh"] = template("verilog/run_sim.sh").read_text()
    files["synth.ys"] = synth_script(lut=6)
    side["files"] = sorted([*files, f"{TOP}.json"])   # the manifest a later export reads
    files[f"{TOP}.json"] = json.dumps(side, indent=2, default=str) + "\n"
    write_files(out_dir, files, executable=("run_sim.sh",), stale=previous_files(out_dir))
    return dict(side, dir=str(out_dir))


#: Every file a Verilog export can write: a manifest naming anything else is not trusted.
EXPORT_FILES = (f"{TOP}.v", f"{TOP}.json", "tb.v", "run_sim.sh", "synth.ys", "vectors_in.hex",
                "vectors_out.hex", "difflogic_features.v")


def previous_files(out_dir) -> tuple:
    """The files an earlier Verilog export in ``out_dir`` wrote, from its sidecar's manifest
    (none when there is no readable sidecar of one; only names an export can write)."""
    try:
        side = json.loads((Path(out_dir) / f"{TOP}.json").read_text())
    except (OSError, ValueError):
        return ()
    names = side.get("files") if isinstance(side, dict) and side.get("top") == TOP else None
    if not isinstance(names, list):
        return ()
    return tuple(n for n in names if n in EXPORT_FILES)


# --------------------------------------------------------------------------- simulation
@dataclass
class SimResult:
    passed: bool
    returncode: int
    output: str
    seconds: float


def check_simulator(simulator: str | None) -> None:
    """Unknown simulator: ValueError; not installed: ToolNotFoundError naming the apt package.
    ``None`` (run_sim.sh picks by the design's size) needs one of them installed."""
    if simulator is None:
        have = shutil.which
        if (have("iverilog") and have("vvp")) or (have("verilator") and have("make")):
            return
        raise ToolNotFoundError("no Verilog simulator found on PATH; install one with "
                                "`apt-get install iverilog` (or `apt-get install verilator`)")
    if simulator not in SIMULATORS:
        raise ValueError(f"simulator must be one of {SIMULATORS}, got {simulator!r}")
    if simulator == "iverilog":
        require_tool("iverilog")
        require_tool("vvp")
    else:
        require_tool("verilator")


def run_testbench(out_dir, simulator: str | None = "iverilog", *, plusargs=(),
                  timeout: float | None = None) -> SimResult:
    """Build (if needed) and run the exported self-checking bench with one simulator
    (``None``: the one run_sim.sh picks for the design's size).

    ``passed`` is True only when the simulator exited 0 *and* printed PASS (or DONE with
    ``+nocheck``); the full output is kept for error messages.
    """
    check_simulator(simulator)
    out_dir = Path(out_dir)
    if not (out_dir / "tb.v").is_file():
        raise FileNotFoundError(f"{out_dir} has no tb.v; export with vectors= first")
    t0 = time.perf_counter()
    try:
        p = subprocess.run(["bash", str(out_dir / "run_sim.sh"), simulator or "auto", *plusargs],
                           capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        return SimResult(False, -1, out + f"\n{simulator or 'the simulator'} timed out after "
                                          f"{timeout} s", timeout or 0.0)
    out = p.stdout + p.stderr
    ok = p.returncode == 0 and any(l.startswith(("PASS", "DONE")) for l in out.splitlines())
    return SimResult(ok, p.returncode, out, time.perf_counter() - t0)


def read_dump(dump: Path, net, n: int, who: str) -> np.ndarray:
    """The per-class counts (n, k) of a +dump= file ({scores, class_idx} in hex per line; ``net``
    gives class_width, score_width, num_classes); checks that every output is defined and that
    class_idx is the first maximum of the RTL's own counts."""
    lines = [l for l in dump.read_text().split() if l]
    if len(lines) != n:
        raise RuntimeError(f"{who} wrote {len(lines)} results for {n} vectors")
    bad = next((l for l in lines if set(l) - set("0123456789abcdefABCDEF")), None)
    if bad is not None:
        raise RuntimeError(f"{who} produced X/Z outputs, e.g. {bad!r}")
    vals = [int(l, 16) for l in lines]
    cw, sw, k = net.class_width, net.score_width, net.num_classes
    counts = np.array([[(v >> (cw + j * sw)) & ((1 << sw) - 1) for j in range(k)] for v in vals],
                      dtype=np.int64).reshape(n, k)
    cls = np.array([v & ((1 << cw) - 1) for v in vals], dtype=np.int64)
    if not np.array_equal(cls, np.argmax(counts, 1)):
        i = int(np.nonzero(cls != np.argmax(counts, 1))[0][0])
        raise RuntimeError(f"{who}: RTL class_idx {cls[i]} is not the first maximum "
                           f"of its own counts {counts[i].tolist()} (vector {i})")
    return counts


# --------------------------------------------------------------------------- the back end
class VerilogRunner(Runner):
    """The RTL of a netlist (combinational, pipelined, or an AXI4-Stream form) in a simulator,
    its testbench in dump mode: the counts are the RTL's own outputs, an answer independent of
    the reference simulator.  ``compile_seconds`` covers generating the RTL; the simulator
    compiles it inside counts(), because the testbench is sized to the vectors it is given."""

    def __init__(self, netlist: Netlist, *, simulator: str | None = None, pipeline: int = 0,
                 max_gates: int = DEFAULT_MAX_GATES, simplify: bool = True, workdir=None,
                 timeout: float | None = None, axis: int | None = None, fold=None):
        if not isinstance(netlist, Netlist):
            raise TypeError(f"netlist must be a difflogic.compiler.ir.Netlist, got {type(netlist).__name__}")
        check_simulator(simulator)
        self.pipeline = check_size(netlist, pipeline, max_gates, folded=fold is not None)
        self.simulator, self.workdir, self.timeout = simulator, workdir, timeout
        self.n_inputs = netlist.n_inputs
        t0 = time.perf_counter()
        self.stream = None
        if axis is not None or fold is not None:
            from . import verilog_axis
            self.stream = verilog_axis.stream_design(netlist, axis=axis, fold=fold,
                                                     pipeline=self.pipeline, scores=True,
                                                     simplify=simplify)
            side = self.stream[2]
            self.net = SimpleNamespace(class_width=side["class_width"], num_classes=side["classes"],
                                       score_width=side["score_width"])
        else:
            self.net = build(netlist, simplify=simplify)
        self.compile_seconds = time.perf_counter() - t0

    def _write(self, d: Path, bits: np.ndarray) -> None:
        if self.stream is None:
            _write(self.net, d, pipeline=self.pipeline, scores=True, bits=bits, expected=None)
            return
        from . import verilog_axis
        fmt, rtl, side = self.stream
        verilog_axis.write_stream(d, rtl, dict(side), fmt, expected=None, scores=True,
                                  values=verilog_axis.stream_values(fmt, self.n_inputs, bits))

    def counts(self, bits, threads: int | None = None) -> np.ndarray:
        """Class counts int64 (N, k) of the simulated RTL (``threads`` is not used)."""
        bits = check_input_bits(bits, self.n_inputs)
        who = self.simulator or "the Verilog simulator"
        with tempfile.TemporaryDirectory(prefix="difflogic_verilog_", dir=self.workdir) as tmp:
            d = Path(tmp) / "rtl"
            self._write(d, bits)
            dump = d / "sim_out.hex"
            res = run_testbench(d, self.simulator, plusargs=("+nocheck", f"+dump={dump}"),
                                timeout=self.timeout)
            if not res.passed:
                raise RuntimeError(f"{who} simulation failed (exit {res.returncode}):\n"
                                   f"{res.output[-4000:]}")
            return read_dump(dump, self.net, bits.shape[0], who)


def fold_factor(text: str):
    """``--fold`` on the command line: "auto" (also what ``--fold`` alone gives) or an integer."""
    return "auto" if text == "auto" else int(text)


def _options() -> tuple:
    return (
        Option("--pipeline", "pipeline", COMMANDS, dict(
            type=int, metavar="N", help="a register bank every N gate levels (default: "
                                        "combinational, no clock); with --fold: in the dense "
                                        "head")),
        Option("--axis", "axis", COMMANDS, dict(
            type=int, metavar="W", help="AXI4-Stream top: the image arrives W bits per beat "
                                        "(a multiple of 8: whole 8-bit pixel values, or input "
                                        "bits), the class (and --scores) leave on a master "
                                        "stream")),
        Option("--fold", "fold", COMMANDS, dict(
            nargs="?", const="auto", type=fold_factor, metavar="F",
            help="streamed form behind AXI4-Stream ports (--axis default: one pixel per beat): "
                 "conv layers over positions (one cell per layer, line buffers, OR pooling in "
                 "the stream), the class counts over F cycles (F divides the outputs per class; "
                 "default: the largest that keeps up with the stream)")),
        Option("--scores", "scores", ("export",), dict(
            action="store_true", help="also output the per-class counts (port `scores`)")),
        Option("--vectors", "vectors", ("export",), dict(
            type=int, metavar="N", help=f"random test vectors for the self-checking testbench "
                                        f"(default: {DEFAULT_VECTORS})")),
        Option("--seed", "seed", ("export",), dict(
            type=int, help="seed of the test vectors (default: 0)")),
        Option("--max-gates", "max_gates", COMMANDS, dict(
            type=int, metavar="G", help=f"refuse larger designs (estimated gates incl. the "
                                        f"GroupSum head) before any work (default: "
                                        f"{DEFAULT_MAX_GATES:,})")),
        Option("--simulator", "simulator", ("verify",), dict(
            choices=SIMULATORS, help="Verilog simulator (default: the faster one for the "
                                     "design's size, as run_sim.sh picks it)")),
    )


class VerilogBackend(Backend):
    """``--target verilog``: RTL + self-checking testbench (export), simulated RTL (verify)."""

    name = "verilog"
    help = "Verilog-2001 RTL and a self-checking testbench"
    cli_options = _options()

    def describe(self, simulator: str | None = None, pipeline: int = 0, axis=None, fold=None,
                 **_) -> str:
        form = f"pipeline={pipeline}" if pipeline else "combinational"
        if fold is not None:
            form = f"streamed fold={fold}" + (f", pipeline={pipeline}" if pipeline else "")
        if axis is not None:
            form = f"axis={axis}, {form}"
        return f"verilog ({simulator or 'simulator chosen by size'}, {form})"

    def unavailable_reason(self, simulator: str | None = None, **_) -> str | None:
        try:
            check_simulator(simulator)
        except ToolNotFoundError as e:
            return str(e)
        return None

    def check(self, netlist, command: str = "export", **opts) -> None:
        """Too large, a stream width or fold the network cannot take, or (verify) the
        simulator missing: an error before any work."""
        fold = opts.get("fold")
        check_size(netlist, opts.get("pipeline", 0), opts.get("max_gates", DEFAULT_MAX_GATES),
                   folded=fold is not None)
        if opts.get("axis") is not None or fold is not None:
            from . import verilog_axis
            verilog_axis.check_stream(netlist, opts.get("axis"), fold)
        if command == "verify":
            check_simulator(opts.get("simulator"))

    def emit(self, netlist, out_dir, *, reference=None, pipeline: int = 0, scores: bool = False,
             vectors: int = DEFAULT_VECTORS, seed: int = 0, max_gates: int = DEFAULT_MAX_GATES,
             simplify: bool = True, axis: int | None = None, fold=None) -> dict:
        """The RTL and its testbench on ``vectors`` random inputs; their golden outputs are
        ``reference(inputs)`` (the model's own hard forward) or else the reference simulator's."""
        self.check(netlist, "export", pipeline=pipeline, max_gates=max_gates, axis=axis,
                   fold=fold)   # nothing computed or written when too large or ill-shaped
        if isinstance(vectors, bool) or not isinstance(vectors, int) or vectors < 1:
            raise ValueError(f"--vectors must be >= 1 (the testbench needs inputs), got {vectors}")
        x = random_inputs(netlist, vectors, seed)
        expected = None if reference is None else np.asarray(reference(x), dtype=np.int64)
        side = export(netlist, out_dir, pipeline=pipeline, scores=scores,
                      vectors=encode_input(netlist, x), expected=expected, max_gates=max_gates,
                      simplify=simplify, axis=axis, fold=fold)
        files = {n: str(Path(out_dir) / n) for n in side["files"]}
        return {"files": files, "info": side, "summary": _summary(side, out_dir)}

    def load(self, netlist, **opts) -> VerilogRunner:
        return VerilogRunner(netlist, **opts)


def _summary(side: dict, out_dir) -> str:
    """One line for people about an export."""
    run = f"{side['vectors']} golden vectors (run {Path(out_dir) / 'run_sim.sh'})"
    if side.get("interface") == "axi4-stream":
        return (f"verilog: AXI4-Stream, {side['form']}, {side['gates']:,} gates; "
                f"{side['axis_width']}-bit beats, {side['beats_per_image']} per image; one image "
                f"every {side['cycles_per_image']:,} cycles, latency {side['latency_cycles']:,} "
                f"cycles; {run}")
    pipeline = side["pipeline"]
    form = (f"pipelined every {pipeline} levels, latency {side['latency']} cycles"
            if pipeline else "combinational")
    return (f"verilog: {side['gates']:,} gates ({side['head_gates']:,} popcount/argmax), "
            f"{side['levels']} levels, {form}, {side['registers']:,} registers; {run}")


BACKEND = register(VerilogBackend())
