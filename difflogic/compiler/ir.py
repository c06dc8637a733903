"""The netlist IR: the single source every back end (simulator, C, Verilog) reads.

A hardened network is a :class:`Netlist`: an optional input encoder, then a sequence of
ops over *binary* tensors, then a GroupSum head that counts ones per class.

Gate blocks
-----------
Both logic layer kinds are a :class:`GateBlock`: a small combinational netlist (a "cell")
with one uniform node numbering:

* node ``0`` is constant FALSE and node ``1`` constant TRUE;
* nodes ``2 .. 2 + n_leaves - 1`` are the leaves (inputs of the cell);
* node ``2 + n_leaves + g`` is gate ``g``: ``op[g]`` applied to nodes ``a[g]``, ``b[g]``
  (``op`` is a gate id of :mod:`difflogic.gates`); gates are in topological order
  (operands always have smaller node ids);
* ``outputs[k]`` is the node id that drives output ``k`` (a gate, a leaf or a constant).

What a leaf reads depends on the block kind:

* ``kind == "dense"``: ``leaves[l]`` is an index into the flattened (C*H*W, row-major)
  input, and the cell is evaluated once.  Output shape ``(len(outputs),)``.
* ``kind == "conv"``: ``leaves[l] = (c, dy, dx)``; at output position ``(i, j)`` the leaf
  reads ``x[c, stride*i + dy - padding, stride*j + dx - padding]`` (0 outside the image),
  the cell is evaluated at every position (the tree is *shared*, not unrolled), and
  ``outputs[k]`` is output channel ``k``.  Output shape ``(len(outputs), Ho, Wo)``.

A LogicTreeNet conv layer hardens to one conv block holding all K trees (7 gates each for
depth 3); optimization passes then shrink, merge and share gates inside the cell.
Lowering (:func:`difflogic.compiler.lower.lower_to_flat`) unrolls everything into a single
dense block over the encoded input, for back ends that want one flat gate list.

Other ops: :class:`OrPool` (logical OR over ``size x size`` windows, stride ``size``, floor),
and the head :class:`GroupSum` (``k`` consecutive groups of the flattened final outputs; the
class score is the number of ones in the group, divided by ``tau`` for the float score).
The predicted class is the first maximum (same tie-break as ``torch.argmax``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

CONST0, CONST1 = 0, 1
FIRST_LEAF = 2


@dataclass
class GateBlock:
    kind: str                       # "dense" | "conv"
    in_shape: tuple                 # (F,) for dense, (C, H, W) for conv (dense also accepts C,H,W: flattened)
    leaves: np.ndarray              # dense: int64 (n_leaves,); conv: int64 (n_leaves, 3) = (c, dy, dx)
    op: np.ndarray                  # uint8 (n_gates,)
    a: np.ndarray                   # int64 (n_gates,) node ids
    b: np.ndarray                   # int64 (n_gates,) node ids
    outputs: np.ndarray             # int64 (n_outputs,) node ids
    kernel_size: tuple = (1, 1)     # conv only
    stride: int = 1                 # conv only
    padding: int = 0                # conv only
    name: str = ""                  # provenance, e.g. "1: LogicConv2d"

    @property
    def n_leaves(self) -> int:
        return int(len(self.leaves))

    @property
    def n_gates(self) -> int:
        return int(len(self.op))

    @property
    def first_gate(self) -> int:
        return FIRST_LEAF + self.n_leaves

    @property
    def positions(self) -> int:
        """How many times the cell is evaluated (1 for dense, Ho*Wo for conv)."""
        if self.kind == "dense":
            return 1
        _, ho, wo = self.out_shape
        return ho * wo

    @property
    def out_shape(self) -> tuple:
        if self.kind == "dense":
            return (len(self.outputs),)
        _, H, W = self.in_shape
        kh, kw = self.kernel_size
        ho = (H + 2 * self.padding - kh) // self.stride + 1
        wo = (W + 2 * self.padding - kw) // self.stride + 1
        return (len(self.outputs), ho, wo)

    def gate_count(self) -> int:
        """Gates as the paper counts them: cell gates times positions (no location pruning)."""
        return self.n_gates * self.positions

    def levels(self) -> np.ndarray:
        """Per gate: gates on the longest path from a leaf or constant to it, itself included
        (a vectorized fixed point, one pass per level)."""
        first = self.first_gate
        lv = np.zeros(first + self.n_gates, np.int64)
        lv[first:] = 1
        inner = np.flatnonzero((self.a >= first) | (self.b >= first))   # the gates reading gates
        a, b, at = self.a[inner], self.b[inner], first + inner
        while len(inner):
            new = np.maximum(lv[a], lv[b]) + 1
            if np.array_equal(new, lv[at]):
                break
            lv[at] = new
        return lv[first:]

    def level_groups(self) -> list[np.ndarray]:
        """The gate indices per level (levels 1, 2, ... of :meth:`levels`, each in gate order):
        a level reads only earlier ones, so a level's gates can be handled as one array."""
        lv = self.levels()
        top = int(lv.max(initial=0))
        if top <= 8:   # a few levels (dense layers): one scan each beats a sort
            return [np.flatnonzero(lv == level) for level in range(1, top + 1)]
        order = np.argsort(lv, kind="stable")
        cuts = np.searchsorted(lv[order], np.arange(1, top + 2))
        return [order[cuts[i]:cuts[i + 1]] for i in range(len(cuts) - 1)]

    def depth(self) -> int:
        """Gates on the longest path from a leaf to an output of the cell (0: only wires)."""
        lv = np.concatenate([np.zeros(self.first_gate, np.int64), self.levels()])
        return int(lv[self.outputs].max()) if len(self.outputs) else 0

    def validate(self) -> None:
        n = self.first_gate
        ids = np.arange(self.n_gates) + n
        if self.n_gates and (np.any(self.a >= ids) or np.any(self.b >= ids) or
                             np.any(self.a < 0) or np.any(self.b < 0)):
            raise ValueError(f"{self.name or self.kind} block: gates must read earlier nodes")
        if np.any(self.op > 15):
            raise ValueError(f"{self.name or self.kind} block: gate op out of range 0..15")
        if np.any(self.outputs < 0) or np.any(self.outputs >= n + self.n_gates):
            raise ValueError(f"{self.name or self.kind} block: output refers to a missing node")


@dataclass
class OrPool:
    size: int
    in_shape: tuple                 # (C, H, W)
    name: str = ""

    @property
    def out_shape(self) -> tuple:
        C, H, W = self.in_shape
        return (C, H // self.size, W // self.size)

    def gate_count(self) -> int:
        C, H, W = self.out_shape
        return (self.size * self.size - 1) * C * H * W

    def depth(self) -> int:
        """Levels of a balanced OR tree over the window."""
        return int(np.ceil(np.log2(self.size * self.size))) if self.size > 1 else 0


@dataclass
class GroupSum:
    k: int
    tau: float
    in_features: int

    def adder_gate_estimate(self) -> int:
        """The paper's hardware estimate: a tree adder of about 7 gates per output neuron."""
        return 7 * self.in_features


@dataclass
class Encoder:
    """Thermometer input encoding (the model's ``Thresholds`` layer).

    Real input ``x[c]`` in [0, 1] gives bit ``c*T + t`` = ``x[c] > thresholds[c, t]``.
    For uint8 images (``x = pixel / 255`` in float32, as the data loaders do) the exact
    integer equivalent is ``pixel >= u8_cutoffs[c, t]`` (256 means never), computed once in
    float32 so that C and Verilog test benches match PyTorch bit for bit.
    """
    thresholds: np.ndarray          # float32 (C, T)
    u8_cutoffs: np.ndarray          # int32 (C, T), in 0..256
    in_shape: tuple                 # (C, H, W) or (C,) real-valued input

    @property
    def out_shape(self) -> tuple:
        C, T = self.thresholds.shape
        return (C * T, *self.in_shape[1:])


@dataclass
class Netlist:
    input_shape: tuple              # shape of the binary input of the first op
    ops: list                       # GateBlock | OrPool, in order
    head: GroupSum
    encoder: Encoder | None = None
    meta: dict = field(default_factory=dict)   # model name, source config, library version

    @property
    def num_classes(self) -> int:
        return self.head.k

    @property
    def n_inputs(self) -> int:
        return int(np.prod(self.input_shape))

    def gate_counts(self) -> list[tuple[str, int]]:
        """Per op (name, gates), paper counting; GroupSum adder estimate last."""
        rows = [(op.name or type(op).__name__, op.gate_count()) for op in self.ops]
        rows.append(("GroupSum adders (7 per output, paper estimate)", self.head.adder_gate_estimate()))
        return rows

    def gate_count(self, include_head: bool = False) -> int:
        rows = self.gate_counts()
        return sum(n for _, n in (rows if include_head else rows[:-1]))

    def depth(self) -> int:
        """Logic depth with the ops chained: the sum of each op's depth (an upper bound of the
        network's longest path, and the measure to compare two optimizations by)."""
        return sum(op.depth() for op in self.ops)
