"""Output-inverter absorption: a block output ``NOT(x)`` where ``x`` is a gate becomes ``x``
itself with the inverted truth table, and every gate reading ``x`` reads the new ``x``
through its own (rewritten) truth table.

Pass-through elimination folds inverters into the gates that read them, but an inverter that
drives a block output has no reader inside the cell to absorb it; its driver can, as long as
the driver is not an output itself (both polarities would then be needed).  Each absorbed
inverter saves one gate per position of the cell.  The readers of the old inverter become
pass-through gates that the pass-through pass turns into wires.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ... import gates
from .. import ir
from ._cell import NOT, reads

SCOPE = "block"
_INV_OUT = np.asarray(gates.INVERT_OUTPUT, np.uint8)
_INV_A = np.asarray(gates.INVERT_A, np.uint8)
_INV_B = np.asarray(gates.INVERT_B, np.uint8)


def flippable(blk: ir.GateBlock) -> np.ndarray:
    """Node ids of the gates whose output inverters can be absorbed."""
    first = blk.first_gate
    outs = blk.outputs
    g = outs[outs >= first] - first
    inv = g[(blk.op[g] == NOT) & (blk.a[g] == blk.b[g])]
    x = np.unique(blk.a[inv])
    x = x[x >= first]
    x = x[(blk.op[x - first] != NOT) | (blk.a[x - first] != blk.b[x - first])]
    return x[~np.isin(x, outs)]


def run(blk: ir.GateBlock) -> ir.GateBlock:
    """Return a copy of ``blk`` whose output inverters are absorbed by their drivers."""
    x = flippable(blk)
    if not len(x):
        return blk
    op = blk.op.copy()
    op[x - blk.first_gate] = _INV_OUT[op[x - blk.first_gate]]
    ra, rb = reads(blk, x)
    op[ra] = _INV_A[op[ra]]
    op[rb] = _INV_B[op[rb]]
    return dataclasses.replace(blk, op=op)
