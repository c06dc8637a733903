"""Structural hashing: operands in canonical order (commutative rewrite through the swapped
truth table), gates reading ``(x, x)`` reduced to a one-input function, and identical
``(op, a, b)`` gates merged into one node.

Merging is what shares work between the K trees of a conv cell: two trees that compute the
same sub-expression of the same leaves now compute it once per position.
"""
from __future__ import annotations

from ... import gates
from ._cell import rewrite, unary

SCOPE = "block"


def run(blk):
    """Return a copy of ``blk`` with duplicate gates merged."""
    table: dict = {}

    def simplify(rb, op, a, b):
        if a > b:
            op, a, b = gates.SWAP_INPUTS[op], b, a
        if a == b:
            res = unary(gates.hard_gate(op, 0, 0), gates.hard_gate(op, 1, 1), a)
            if res[0] == "node":
                return res
            op, a, b = res[1:]
        key = (op, a, b)
        node = table.get(key)
        if node is None:
            node = rb.add(op, a, b)
            table[key] = node
        return ("node", node)

    return rewrite(blk, simplify)
