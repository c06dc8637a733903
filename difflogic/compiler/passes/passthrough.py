"""Pass-through elimination: A/B gates become wires, and inverters are folded into their
consumers by rewriting the consumer's truth table (``op(~x, b)`` is just another gate).

An inverter is only kept where it drives a block output (nothing can absorb it there);
inverters left without consumers are removed by dead-gate elimination.  All one-input
gates are first canonicalised to ``(NOT_A, x, x)`` so the other passes see one form.
"""
from __future__ import annotations

import numpy as np

from ... import gates
from ._cell import NOT, inverter_input, reads, rewrite, vrewrite

_INV_A = np.asarray(gates.INVERT_A, np.int64)
_INV_B = np.asarray(gates.INVERT_B, np.int64)

SCOPE = "block"


def _not_input(rb, node):
    g = rb.gate_of(node)
    if g is not None and g[0] == NOT and g[1] == g[2]:
        return g[1]
    return None


def _simplify(rb, op, a, b):
    # fold inverters feeding this gate into its truth table
    xa = _not_input(rb, a)
    if xa is not None:
        op, a = gates.INVERT_A[op], xa
    xb = _not_input(rb, b)
    if xb is not None:
        op, b = gates.INVERT_B[op], xb
    if op == gates.A:
        return ("node", a)
    if op == gates.B:
        return ("node", b)
    if op == gates.NOT_A:
        return ("gate", NOT, a, a)
    if op == gates.NOT_B:
        return ("gate", NOT, b, b)
    return ("gate", op, a, b)


def _vsimplify(cell, op, a, b):
    """:func:`_simplify` over one level's gates (see :func:`._cell.vrewrite`)."""
    xa = inverter_input(cell, a)
    op, a = np.where(xa >= 0, _INV_A[op], op), np.where(xa >= 0, xa, a)
    xb = inverter_input(cell, b)
    op, b = np.where(xb >= 0, _INV_B[op], op), np.where(xb >= 0, xb, b)
    node = np.where(op == gates.A, a, np.where(op == gates.B, b, -1))
    a = np.where(op == gates.NOT_B, b, a)
    b = np.where(op == gates.NOT_A, a, b)
    return node, np.where((op == gates.NOT_A) | (op == gates.NOT_B), NOT, op), a, b


def reference(blk):
    """:func:`run` as a walk over the gates (the slow, obviously right form)."""
    return rewrite(blk, _simplify)


def _unchanged(blk) -> bool:
    """No wire, no inverter in a non-canonical form, and no gate reading an inverter."""
    op = blk.op
    if np.any((op == gates.A) | (op == gates.B) | (op == gates.NOT_B) | ((op == NOT) & (blk.a != blk.b))):
        return False
    inv = blk.first_gate + np.flatnonzero(op == NOT)
    ra, rb = reads(blk, inv)
    return not (ra.any() or rb.any())


def run(blk):
    """Return a copy of ``blk`` with wires bypassed and inverters folded into consumers
    (``blk`` itself when there are none)."""
    return blk if _unchanged(blk) else vrewrite(blk, _vsimplify)
