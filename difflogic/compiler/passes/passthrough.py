"""Pass-through elimination: A/B gates become wires, and inverters are folded into their
consumers by rewriting the consumer's truth table (``op(~x, b)`` is just another gate).

An inverter is only kept where it drives a block output (nothing can absorb it there);
inverters left without consumers are removed by dead-gate elimination.  All one-input
gates are first canonicalised to ``(NOT_A, x, x)`` so the other passes see one form.
"""
from __future__ import annotations

from ... import gates
from ._cell import NOT, rewrite

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


def run(blk):
    """Return a copy of ``blk`` with wires bypassed and inverters folded into consumers."""
    return rewrite(blk, _simplify)
