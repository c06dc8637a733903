"""Cross-op constant propagation: an output that is constant in one op makes the leaves
that read it constant in the next.

A forward sweep tracks, per element of each op's output, whether it is a known constant.
Dense leaves reading a constant become that constant.  A conv leaf becomes constant only if
every element it reads (at every position, including the zero padding) has the same known
value.  OR pools pass constants through (a window containing a 1 is 1).  The per-cell
constant folding then simplifies the gates that now read constants.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from .. import ir

SCOPE = "netlist"
UNKNOWN = -1


def _substitute(blk: ir.GateBlock, leaf_const: np.ndarray) -> ir.GateBlock:
    """Replace references to leaves with a known constant (0/1) by that constant node."""
    if not (leaf_const >= 0).any():
        return blk
    n = blk.first_gate + blk.n_gates
    m = np.arange(n, dtype=np.int64)
    sel = leaf_const >= 0
    m[ir.FIRST_LEAF:blk.first_gate][sel] = leaf_const[sel]
    return dataclasses.replace(blk, a=m[blk.a], b=m[blk.b], outputs=m[blk.outputs])


def _out_const(blk: ir.GateBlock) -> np.ndarray:
    o = blk.outputs
    v = np.where(o == ir.CONST0, 0, np.where(o == ir.CONST1, 1, UNKNOWN)).astype(np.int8)
    if blk.kind == "dense":
        return v
    K, Ho, Wo = blk.out_shape
    return np.broadcast_to(v[:, None, None], (K, Ho, Wo)).copy()


def _conv_leaf_const(blk: ir.GateBlock, c_in: np.ndarray) -> np.ndarray:
    C, H, W = blk.in_shape
    p, s = blk.padding, blk.stride
    _, Ho, Wo = blk.out_shape
    cp = np.zeros((C, H + 2 * p, W + 2 * p), np.int8)   # padding reads constant 0
    cp[:, p:p + H, p:p + W] = c_in
    out = np.full(blk.n_leaves, UNKNOWN, np.int8)
    for l, (c, dy, dx) in enumerate(blk.leaves.tolist()):
        win = cp[c, dy:dy + s * (Ho - 1) + 1:s, dx:dx + s * (Wo - 1) + 1:s]
        v = win.flat[0]
        if v >= 0 and (win == v).all():
            out[l] = v
    return out


def run(net: ir.Netlist) -> ir.Netlist:
    """Return a copy of ``net`` with constants propagated across ops."""
    const = np.full(net.input_shape, UNKNOWN, np.int8)   # inputs are never constant
    ops = list(net.ops)
    for i, op in enumerate(ops):
        if isinstance(op, ir.GateBlock):
            if (const >= 0).any():
                if op.kind == "dense":
                    lc = const.reshape(-1)[op.leaves]
                else:
                    lc = _conv_leaf_const(op, const.reshape(op.in_shape))
                op = _substitute(op, lc)
                ops[i] = op
            const = _out_const(op)
        elif isinstance(op, ir.OrPool):
            C, H, W = op.in_shape
            s = op.size
            _, Ho, Wo = op.out_shape
            v = const.reshape(C, H, W)[:, :Ho * s, :Wo * s].reshape(C, Ho, s, Wo, s)
            one = (v == 1).any((2, 4))
            zero = (v == 0).all((2, 4))
            const = np.where(one, 1, np.where(zero, 0, UNKNOWN)).astype(np.int8)
        else:
            raise TypeError(f"propagate_constants: unknown op {type(op).__name__}")
    return dataclasses.replace(net, ops=ops)
