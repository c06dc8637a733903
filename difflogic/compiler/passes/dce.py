"""Dead-gate elimination: keep only the gates and leaves that some block output depends on.

Unused leaves are dropped too, so an input that nothing reads is not even loaded by the
back ends (and the cross-op pruning can see that the producer's output is unused).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from .. import ir

SCOPE = "block"


def live_nodes_reference(blk: ir.GateBlock) -> np.ndarray:
    """:func:`live_nodes` as a walk over the gates, last first (the slow, obviously right form)."""
    n = blk.first_gate + blk.n_gates
    live = np.zeros(n, bool)
    live[blk.outputs] = True
    first = blk.first_gate
    a, b = blk.a.tolist(), blk.b.tolist()
    for g in range(blk.n_gates - 1, -1, -1):
        if live[first + g]:
            live[a[g]] = True
            live[b[g]] = True
    return live


def live_nodes(blk: ir.GateBlock) -> np.ndarray:
    """Boolean (n_nodes,) mask of the nodes the outputs depend on (a level at a time, highest
    first: a gate's readers are all on higher levels)."""
    live = np.zeros(blk.first_gate + blk.n_gates, bool)
    live[blk.outputs] = True
    for g in reversed(blk.level_groups()):
        g = g[live[blk.first_gate + g]]
        live[blk.a[g]] = True
        live[blk.b[g]] = True
    return live


def run(blk: ir.GateBlock) -> ir.GateBlock:
    """Return a copy of ``blk`` without dead gates and unused leaves."""
    live = live_nodes(blk)
    live[: ir.FIRST_LEAF] = True
    new_id = np.cumsum(live) - 1
    first = blk.first_gate
    keep_leaf = live[ir.FIRST_LEAF:first]
    keep_gate = live[first:]
    return dataclasses.replace(
        blk, leaves=blk.leaves[keep_leaf], op=blk.op[keep_gate],
        a=new_id[blk.a[keep_gate]].astype(np.int64), b=new_id[blk.b[keep_gate]].astype(np.int64),
        outputs=new_id[blk.outputs].astype(np.int64))
