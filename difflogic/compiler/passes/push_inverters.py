"""Cross-op inverter pushing: an output ``NOT(x)`` of one gate block that only the next gate
block reads becomes ``x``, and the next block's gates read it through inverted truth tables.

Inside a cell, output inverters are absorbed by their drivers (``output_polarity``); what is
left are inverters of leaves and of gates that are outputs in both polarities.  Across two
adjacent blocks, the reader can absorb them instead: the producer stores ``x`` and every
gate of the consumer reading that feature flips the operand.  Not done when the consumer
passes the feature straight to its own outputs (it would pass the wrong polarity), when a
pool lies between (OR of inverted bits is not an inverted OR), when a conv consumer pads
(the padding reads constant 0, not the inverse), or into GroupSum (which counts ones).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ... import gates
from .. import ir
from ._cell import NOT, reads

SCOPE = "netlist"
_INV_A = np.asarray(gates.INVERT_A, np.uint8)
_INV_B = np.asarray(gates.INVERT_B, np.uint8)


def _leaf_sources(prod: ir.GateBlock, cons: ir.GateBlock) -> np.ndarray | None:
    """Per leaf of ``cons``: the output index of ``prod`` it reads (None: pair not handled)."""
    if cons.kind == "dense":
        per_out = 1 if prod.kind == "dense" else int(np.prod(prod.out_shape[1:]))
        return cons.leaves // per_out
    if prod.kind == "conv" and cons.padding == 0:
        return cons.leaves[:, 0]
    return None


def _push(prod: ir.GateBlock, cons: ir.GateBlock):
    src = _leaf_sources(prod, cons)
    if src is None:
        return None
    first = prod.first_gate
    outs = prod.outputs
    is_inv = np.zeros(len(outs), bool)
    g = outs - first
    gate = outs >= first
    is_inv[gate] = (prod.op[g[gate]] == NOT) & (prod.a[g[gate]] == prod.b[g[gate]])
    if not is_inv.any():
        return None
    passed = cons.outputs[(cons.outputs >= ir.FIRST_LEAF) & (cons.outputs < cons.first_gate)] - ir.FIRST_LEAF
    is_inv[src[passed]] = False
    if not is_inv.any():
        return None
    new_outs = outs.copy()
    new_outs[is_inv] = prod.a[g[is_inv]]
    flip = ir.FIRST_LEAF + np.flatnonzero(is_inv[src])      # leaf nodes of cons to flip
    op = cons.op.copy()
    ra, rb = reads(cons, flip)
    op[ra] = _INV_A[op[ra]]
    op[rb] = _INV_B[op[rb]]
    return dataclasses.replace(prod, outputs=new_outs), dataclasses.replace(cons, op=op)


def run(net: ir.Netlist) -> ir.Netlist:
    """Return a copy of ``net`` with output inverters pushed into the block that reads them."""
    ops = list(net.ops)
    for i in range(len(ops) - 1):
        if isinstance(ops[i], ir.GateBlock) and isinstance(ops[i + 1], ir.GateBlock):
            res = _push(ops[i], ops[i + 1])
            if res is not None:
                ops[i], ops[i + 1] = res
    return dataclasses.replace(net, ops=ops)
