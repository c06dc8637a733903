"""Lowering: unroll a netlist into one flat dense GateBlock over the encoded input.

Back ends that want a single gate list (Verilog: one ``assign`` per gate) use this.  Conv
cells are instantiated once per output position (leaves in the zero padding become CONST0),
OR pools become chains of OR gates, and dense cells are copied with their leaves resolved to
the producing nodes.  The result has one leaf per input bit and its outputs are the final
features in GroupSum order, so it simulates bit-identically to the original.
"""
from __future__ import annotations

import numpy as np

from .. import gates
from . import ir


class _Flat:
    def __init__(self, n_inputs: int):
        self.first = ir.FIRST_LEAF + n_inputs
        self.op: list[np.ndarray] = []
        self.a: list[np.ndarray] = []
        self.b: list[np.ndarray] = []
        self.n = 0

    def next_id(self) -> int:
        return self.first + self.n

    def add(self, op, a, b) -> None:
        self.op.append(np.asarray(op, np.uint8).reshape(-1))
        self.a.append(np.asarray(a, np.int64).reshape(-1))
        self.b.append(np.asarray(b, np.int64).reshape(-1))
        self.n += self.op[-1].size


def _instantiate(flat: _Flat, blk: ir.GateBlock, leaf_nodes: np.ndarray) -> np.ndarray:
    """Append ``P`` copies of ``blk``'s cell; ``leaf_nodes`` (P, n_leaves) are the global node
    ids of each copy's leaves.  Returns (P, n_outputs) global ids of the outputs."""
    P = leaf_nodes.shape[0]
    G = blk.n_gates
    local = np.empty((P, blk.first_gate + G), np.int64)
    local[:, ir.CONST0] = ir.CONST0
    local[:, ir.CONST1] = ir.CONST1
    local[:, ir.FIRST_LEAF:blk.first_gate] = leaf_nodes
    base = flat.next_id()
    local[:, blk.first_gate:] = base + np.arange(P)[:, None] * G + np.arange(G)[None, :]
    if G:
        flat.add(np.broadcast_to(blk.op, (P, G)), local[:, blk.a], local[:, blk.b])
    return local[:, blk.outputs]


def lower_to_flat(net: ir.Netlist) -> ir.Netlist:
    """Return an equivalent netlist with a single dense GateBlock (and the same head/encoder)."""
    n_in = net.n_inputs
    flat = _Flat(n_in)
    cur = (ir.FIRST_LEAF + np.arange(n_in, dtype=np.int64)).reshape(net.input_shape)
    for op in net.ops:
        if isinstance(op, ir.GateBlock) and op.kind == "dense":
            leaf_nodes = cur.reshape(-1)[op.leaves][None, :]
            cur = _instantiate(flat, op, leaf_nodes)[0]
        elif isinstance(op, ir.GateBlock) and op.kind == "conv":
            C, H, W = op.in_shape
            p, s = op.padding, op.stride
            K, Ho, Wo = op.out_shape
            xp = np.full((C, H + 2 * p, W + 2 * p), ir.CONST0, np.int64)
            xp[:, p:p + H, p:p + W] = cur.reshape(C, H, W)
            c, dy, dx = op.leaves[:, 0], op.leaves[:, 1], op.leaves[:, 2]
            ii = (np.arange(Ho) * s)[:, None, None]
            jj = (np.arange(Wo) * s)[None, :, None]
            leaf_nodes = xp[c[None, None, :], ii + dy[None, None, :], jj + dx[None, None, :]]
            outs = _instantiate(flat, op, leaf_nodes.reshape(Ho * Wo, -1))   # (P, K)
            cur = outs.T.reshape(K, Ho, Wo)
        elif isinstance(op, ir.OrPool):
            C, H, W = op.in_shape
            sz = op.size
            _, Ho, Wo = op.out_shape
            win = cur.reshape(C, H, W)[:, :Ho * sz, :Wo * sz].reshape(C, Ho, sz, Wo, sz)
            win = win.transpose(0, 1, 3, 2, 4).reshape(-1, sz * sz)
            acc = win[:, 0]
            for t in range(1, sz * sz):
                ids = flat.next_id() + np.arange(acc.size)
                flat.add(np.full(acc.size, gates.OR), acc, win[:, t])
                acc = ids
            cur = acc.reshape(C, Ho, Wo)
        else:
            raise TypeError(f"lower_to_flat: unknown op {type(op).__name__}")
    cat = (lambda xs, dt: np.concatenate(xs).astype(dt) if xs else np.zeros(0, dt))
    blk = ir.GateBlock(kind="dense", in_shape=tuple(net.input_shape),
                       leaves=np.arange(n_in, dtype=np.int64), op=cat(flat.op, np.uint8),
                       a=cat(flat.a, np.int64), b=cat(flat.b, np.int64),
                       outputs=cur.reshape(-1).astype(np.int64), name="flat")
    blk.validate()
    meta = dict(net.meta)
    meta["lowered"] = True
    return ir.Netlist(input_shape=tuple(net.input_shape), ops=[blk], head=net.head,
                      encoder=net.encoder, meta=meta)
