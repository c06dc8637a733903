"""The vectorized per-cell passes (a level of the cell at a time, numpy) return exactly the cell
their gate-by-gate walks (``reference``) return, on random cells full of constants, wires,
inverters and duplicates and on hardened random networks; the fixed-point driver's reuse of
unchanged blocks gives the netlist of plain rounds."""
import types

import numpy as np
import pytest

from difflogic.compiler import harden, ir
from difflogic.compiler.passes import DEFAULT, PASSES, apply_pass, const_fold, dce, optimize, passthrough, strash
from difflogic.compiler.passes._cell import signature
from conftest import random_model

VECTORIZED = (const_fold, passthrough, strash)
FIELDS = ("leaves", "op", "a", "b", "outputs")


def _random_block(rng, n_leaves, n_gates):
    """Operands often constant, equal or repeated, so every rule of every pass fires."""
    first = 2 + n_leaves
    op = rng.integers(0, 16, n_gates).astype(np.uint8)
    a = np.array([rng.integers(0, 2) if rng.random() < 0.1 else rng.integers(0, first + g)
                  for g in range(n_gates)], np.int64)
    b = np.array([a[g] if rng.random() < 0.15 else rng.integers(0, first + g) for g in range(n_gates)], np.int64)
    outs = rng.integers(0, first + n_gates, int(rng.integers(1, 8))).astype(np.int64)
    return ir.GateBlock("dense", (n_leaves,), np.arange(n_leaves), op, a, b, outs)


def _same(x, y) -> bool:
    return all(getattr(x, f).dtype == getattr(y, f).dtype and np.array_equal(getattr(x, f), getattr(y, f))
               for f in FIELDS)


def test_vectorized_passes_equal_their_walks_on_random_cells():
    rng = np.random.default_rng(0)
    changed = dict.fromkeys(VECTORIZED, 0)
    for _ in range(600):
        blk = _random_block(rng, int(rng.integers(0, 5)), int(rng.integers(0, 25)))
        for mod in VECTORIZED:
            ref = mod.reference(blk)
            assert _same(mod.run(blk), ref), (mod.__name__, blk)
            changed[mod] += not _same(ref, blk)
        assert np.array_equal(dce.live_nodes(blk), dce.live_nodes_reference(blk))
        for _ in range(2):   # and on each other's results
            for mod in VECTORIZED:
                ref = mod.reference(blk)
                assert _same(mod.run(blk), ref), (mod.__name__, blk)
                blk = dce.run(ref)
    assert min(changed.values()) > 100, changed   # every pass really rewrote many cells


@pytest.mark.parametrize("seed", (1, 2, 5, 8, 13))
def test_vectorized_passes_equal_their_walks_on_hardened_networks(seed):
    net = harden(random_model(seed))
    for _ in range(2):
        for op in net.ops:
            if isinstance(op, ir.GateBlock):
                for mod in VECTORIZED:
                    assert _same(mod.run(op), mod.reference(op)), (mod.__name__, op.name)
                assert np.array_equal(dce.live_nodes(op), dce.live_nodes_reference(op))
        net = optimize(net)


def _plain_rounds(net):
    """The driver without reuse: every pass on every block each round, to a fixed point."""
    sig = None
    while True:
        for name in DEFAULT:
            net = apply_pass(net, name)
        new = tuple(signature(op) for op in net.ops if isinstance(op, ir.GateBlock))
        if new == sig:
            return net
        sig = new


@pytest.mark.parametrize("seed", (1, 5, 21))
def test_driver_reuse_gives_the_netlist_of_plain_rounds_and_of_the_walks(seed):
    net = harden(random_model(seed))
    got = optimize(net)
    walks = [types.SimpleNamespace(SCOPE="block", run=m.reference, __name__=m.__name__) if m in VECTORIZED
             else PASSES[n] for n, m in ((n, PASSES[n]) for n in DEFAULT)]
    for want in (_plain_rounds(net), optimize(net, passes=walks)):
        assert len(got.ops) == len(want.ops)
        for x, y in zip(got.ops, want.ops):
            if isinstance(x, ir.GateBlock):
                assert _same(x, y)
