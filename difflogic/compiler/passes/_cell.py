"""Shared helpers of the optimization passes: cell rebuilding.

A gate's op id *is* its truth table, so rewriting a gate when an operand is negated, swapped
or constant is a table lookup in :mod:`difflogic.gates`.  Every per-cell pass walks
the gates once in topological order, maps each gate to either an existing node (a wire or a
constant) or a new gate over already-mapped operands, and the :class:`Rebuilder` assembles
the new cell.  New node ids never exceed old ones, so topological order is preserved.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from .. import ir
from ... import gates

CONST0, CONST1 = ir.CONST0, ir.CONST1
NOT = gates.NOT_A          # canonical inverter: (NOT_A, x, x)


def unary(f0: int, f1: int, x: int):
    """A one-input function given by its outputs for x=0 / x=1, as ('node', id) or ('gate', op, a, b)."""
    if f0 == f1:
        return ("node", CONST1 if f0 else CONST0)
    if f1:
        return ("node", x)
    return ("gate", NOT, x, x)


def is_const(n: int) -> bool:
    return n < ir.FIRST_LEAF


class Rebuilder:
    """Collects the gates of a rebuilt cell; leaves (and so node ids below first_gate) are kept."""

    def __init__(self, blk: ir.GateBlock):
        self.blk = blk
        self.first = blk.first_gate
        self.op: list[int] = []
        self.a: list[int] = []
        self.b: list[int] = []
        self.remap = np.arange(blk.first_gate + blk.n_gates, dtype=np.int64).tolist()

    def gate_of(self, node: int):
        """(op, a, b) of a node of the *new* cell, or None for a constant/leaf."""
        g = node - self.first
        return (self.op[g], self.a[g], self.b[g]) if g >= 0 else None

    def add(self, op: int, a: int, b: int) -> int:
        self.op.append(op)
        self.a.append(a)
        self.b.append(b)
        return self.first + len(self.op) - 1

    def emit(self, res) -> int:
        return res[1] if res[0] == "node" else self.add(*res[1:])

    def finish(self) -> ir.GateBlock:
        outs = np.asarray([self.remap[o] for o in self.blk.outputs.tolist()], np.int64)
        return dataclasses.replace(self.blk, op=np.asarray(self.op, np.uint8),
                                   a=np.asarray(self.a, np.int64), b=np.asarray(self.b, np.int64),
                                   outputs=outs)


def rewrite(blk: ir.GateBlock, simplify, state_factory=None) -> ir.GateBlock:
    """Rebuild ``blk`` calling ``simplify(rb, op, a, b) -> ('node', id) | ('gate', op, a, b)`` per gate
    (operands already remapped); returns the new block."""
    rb = Rebuilder(blk)
    first = rb.first
    remap = rb.remap
    ops, aa, bb = blk.op.tolist(), blk.a.tolist(), blk.b.tolist()
    for g in range(len(ops)):
        remap[first + g] = rb.emit(simplify(rb, ops[g], remap[aa[g]], remap[bb[g]]))
    return rb.finish()


def signature(blk: ir.GateBlock) -> tuple:
    return (blk.n_leaves, blk.n_gates, blk.leaves.tobytes(), blk.op.tobytes(), blk.a.tobytes(),
            blk.b.tobytes(), blk.outputs.tobytes())
