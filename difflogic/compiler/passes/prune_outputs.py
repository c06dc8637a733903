"""Cross-op unused-output pruning: an output nobody downstream reads becomes constant 0.

A backward sweep from the GroupSum head (which reads every final feature) computes which
elements of each op's output are read.  A dense feature or a conv output channel that is
never read is tied to CONST0, so its whole cone dies in dead-gate elimination, which in turn
may leave outputs of the op before it unread.  Conv inputs are tracked per channel (a shared
cell reads a channel at every position); dense inputs per feature; OR pools per element.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from .. import ir
from .dce import live_nodes

SCOPE = "netlist"


def _block_input_use(blk: ir.GateBlock) -> np.ndarray:
    live = live_nodes(blk)[ir.FIRST_LEAF:blk.first_gate]
    used = np.zeros(blk.in_shape, bool)
    if blk.kind == "dense":
        used.reshape(-1)[blk.leaves[live]] = True
    else:
        used[np.unique(blk.leaves[live][:, 0])] = True
    return used


def run(net: ir.Netlist) -> ir.Netlist:
    """Return a copy of ``net`` whose unread outputs are constant 0."""
    ops = list(net.ops)
    used = np.ones(net.head.in_features, bool)            # GroupSum reads every feature
    for i in range(len(ops) - 1, -1, -1):
        op = ops[i]
        used = used.reshape(op.out_shape)
        if isinstance(op, ir.GateBlock):
            per_out = used if op.kind == "dense" else used.reshape(len(op.outputs), -1).any(1)
            if not per_out.all():
                outs = op.outputs.copy()
                outs[~per_out] = ir.CONST0
                op = dataclasses.replace(op, outputs=outs)
                ops[i] = op
            used = _block_input_use(op)
        elif isinstance(op, ir.OrPool):
            C, H, W = op.in_shape
            s = op.size
            _, Ho, Wo = op.out_shape
            inner = np.repeat(np.repeat(used, s, 1), s, 2)
            used = np.zeros((C, H, W), bool)
            used[:, :Ho * s, :Wo * s] = inner
        else:
            raise TypeError(f"prune_outputs: unknown op {type(op).__name__}")
    return dataclasses.replace(net, ops=ops)
