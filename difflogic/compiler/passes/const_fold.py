"""Constant folding: FALSE/TRUE gates become constants; a gate with a constant operand is
reduced to a function of its other operand (a constant, a wire or an inverter).

Runs per cell; constants then propagate through the following gates in the same walk.
"""
from __future__ import annotations

from ... import gates
from ._cell import CONST1, is_const, rewrite, unary

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


def run(blk):
    """Return a copy of ``blk`` with constants folded."""
    return rewrite(blk, _simplify)
