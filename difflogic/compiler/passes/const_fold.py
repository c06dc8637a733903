"""Constant folding: FALSE/TRUE gates become constants; a gate with a constant operand is
reduced to a function of its other operand (a constant, a wire or an inverter).

Runs per cell; constants then propagate through the following gates in the same walk.
"""
from __future__ import annotations

import numpy as np

from ... import gates
from ._cell import CONST1, HARD, NOT, is_const, rewrite, unary, vrewrite, vunary

SCOPE = "block"


def _simplify(rb, op, a, b):
    if op == gates.FALSE:
        return ("node", 0)
    if op == gates.TRUE:
        return ("node", CONST1)
    ca, cb = is_const(a), is_const(b)
    if ca and cb:
        return ("node", CONST1 if gates.hard_gate(op, int(a == CONST1), int(b == CONST1)) else 0)
    if ca:
        v = int(a == CONST1)
        return unary(gates.hard_gate(op, v, 0), gates.hard_gate(op, v, 1), b)
    if cb:
        v = int(b == CONST1)
        return unary(gates.hard_gate(op, 0, v), gates.hard_gate(op, 1, v), a)
    return ("gate", op, a, b)


def _vsimplify(cell, op, a, b):
    """:func:`_simplify` over one level's gates (see :func:`._cell.vrewrite`)."""
    node = np.full(len(op), -1, np.int64)
    ca, cb = a < CONST1 + 1, b < CONST1 + 1
    va, vb = (a == CONST1).astype(np.int64), (b == CONST1).astype(np.int64)
    only_a, only_b = ca & ~cb, cb & ~ca
    ua, ub = vunary(HARD[op, va, 0], HARD[op, va, 1], b), vunary(HARD[op, 0, vb], HARD[op, 1, vb], a)
    node = np.where(only_a, ua, np.where(only_b, ub, node))
    node = np.where(ca & cb, HARD[op, va, vb], node)
    node = np.where(op == gates.FALSE, 0, np.where(op == gates.TRUE, CONST1, node))
    inv_a, inv_b = only_a & (node < 0), only_b & (node < 0)   # now the inverter of the other operand
    op = np.where(inv_a | inv_b, NOT, op)
    a = np.where(inv_a, b, a)
    b = np.where(inv_b, a, b)
    return node, op, a, b


def reference(blk):
    """:func:`run` as a walk over the gates (the slow, obviously right form)."""
    return rewrite(blk, _simplify)


def run(blk):
    """Return a copy of ``blk`` with constants folded (``blk`` itself when nothing folds)."""
    if not (np.any(blk.a <= CONST1) or np.any(blk.b <= CONST1) or np.any(blk.op == gates.FALSE)
            or np.any(blk.op == gates.TRUE)):
        return blk
    return vrewrite(blk, _vsimplify)
