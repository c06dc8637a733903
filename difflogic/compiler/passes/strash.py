"""Structural hashing: operands in canonical order (commutative rewrite through the swapped
truth table), gates reading ``(x, x)`` reduced to a one-input function, and identical
``(op, a, b)`` gates merged into one node.

Merging is what shares work between the K trees of a conv cell: two trees that compute the
same sub-expression of the same leaves now compute it once per position.
"""
from __future__ import annotations

import numpy as np

from ... import gates
from .. import ir
from ._cell import HARD, NOT, assemble, rewrite, unary, vunary

_SWAP = np.asarray(gates.SWAP_INPUTS, np.int64)

SCOPE = "block"


def reference(blk):
    """:func:`run` as a walk over the gates (the slow, obviously right form)."""
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


def _repeats(codes: np.ndarray) -> bool:
    """Whether a value occurs twice (a sort: faster here than a hashed np.unique)."""
    s = np.sort(codes)
    return bool(np.any(s[1:] == s[:-1]))


def _canonical(op, a, b):
    """Operands in order (``a <= b``) and ``(x, x)`` gates reduced: (node or -1, op, a, b)."""
    sw = a > b
    op, a, b = np.where(sw, _SWAP[op], op), np.where(sw, b, a), np.where(sw, a, b)
    same = a == b
    node = np.where(same, vunary(HARD[op, 0, 0], HARD[op, 1, 1], a), -1)
    return node, np.where(same & (node < 0), NOT, op), a, b


def run(blk):
    """Return a copy of ``blk`` with duplicate gates merged.

    The walk's result computed a level at a time: gates with the same key (op and operands'
    classes, in canonical order) form a class; its first gate in the walk's order (the lowest
    index, possibly on a higher level than the class's first member seen) is the one kept."""
    first, n = blk.first_gate, blk.n_gates
    span = np.int64(first + n)
    if not (np.any(blk.a > blk.b) or np.any((blk.a == blk.b) & (blk.op != NOT)) or _repeats(
            (blk.op * span + blk.a) * span + blk.b)):
        return blk                                       # canonical already and no duplicates
    cls = np.arange(first + n, dtype=np.int64)          # node -> class label (a node id)
    key = np.zeros((3, first + n), np.int64)            # per class label: op, a, b (labels)
    reg_code, reg_cls = np.zeros(0, np.int64), np.zeros(0, np.int64)
    member = np.zeros(n, bool)
    for g in blk.level_groups():
        node, op, a, b = _canonical(blk.op[g].astype(np.int64), cls[blk.a[g]], cls[blk.b[g]])
        cls[first + g[node >= 0]] = node[node >= 0]
        g, op, a, b = g[node < 0], op[node < 0], a[node < 0], b[node < 0]
        member[g] = True
        uniq, idx, inv = np.unique((op * span + a) * span + b, return_index=True, return_inverse=True)
        pos = np.minimum(np.searchsorted(reg_code, uniq), max(len(reg_code) - 1, 0))
        found = (reg_code[pos] == uniq) if len(reg_code) else np.zeros(len(uniq), bool)
        label = np.where(found, reg_cls[pos] if len(reg_code) else 0, first + g[idx])
        new = label[~found]
        key[:, new] = op[idx][~found], a[idx][~found], b[idx][~found]
        at = np.searchsorted(reg_code, uniq[~found])     # both sorted: insert keeps it sorted
        reg_code, reg_cls = np.insert(reg_code, at, uniq[~found]), np.insert(reg_cls, at, new)
        cls[first + g] = label[inv.reshape(-1)]
    rep = np.arange(first + n, dtype=np.int64)          # class label -> its lowest-index member
    m = np.flatnonzero(member)
    rep[cls[first + m]] = first + n
    np.minimum.at(rep, cls[first + m], first + m)
    rep = rep[cls]
    c = cls[first:]
    op, a, b = key[0][c], rep[key[1][c]], rep[key[2][c]]
    sw = a > b                                           # canonical order of the kept gates' ids
    return assemble(blk, rep, np.where(sw, _SWAP[op], op), np.where(sw, b, a), np.where(sw, a, b))
