"""Netlist optimization passes and the fixed-point driver :func:`optimize`.

Per-cell passes (same code for dense and conv cells, they only see the cell):
``const_fold``, ``passthrough``, ``output_polarity``, ``strash``, ``dce``.  Cross-op passes
(see the whole netlist): ``propagate_constants``, ``prune_outputs``, ``push_inverters``.
:func:`optimize` runs them in that order until nothing changes; every pass returns a new
object, so the input is never mutated.

``abc`` (:mod:`.abc`, Berkeley ABC resynthesis of every cell, each result proven equal) is
optional and not in :data:`DEFAULT`: :data:`WITH_ABC` adds it.  A pass that declares
``ONCE = True`` runs once after the others reach their fixed point, and they run to a fixed
point again after it.
"""
from __future__ import annotations

import copy
import dataclasses
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .. import ir
from ...platform import cpu_count
from . import (abc, const_fold, dce, output_polarity, passthrough, propagate_constants, prune_outputs,
               push_inverters, strash)

PASSES = {
    "const_fold": const_fold,
    "passthrough": passthrough,
    "output_polarity": output_polarity,
    "strash": strash,
    "dce": dce,
    "propagate_constants": propagate_constants,
    "prune_outputs": prune_outputs,
    "push_inverters": push_inverters,
    "abc": abc,
}
DEFAULT = tuple(n for n in PASSES if n != "abc")
WITH_ABC = DEFAULT + ("abc",)
MAX_ROUNDS = 64
PARALLEL_GATES = 20_000   # block passes run in threads when two or more blocks are this big


def _resolve(passes):
    if passes is None:
        passes = DEFAULT
    out = []
    for p in passes:
        if isinstance(p, str):
            if p not in PASSES:
                raise ValueError(f"unknown pass {p!r}; available: {', '.join(PASSES)}")
            out.append(PASSES[p])
        elif hasattr(p, "run") and getattr(p, "SCOPE", None) in ("block", "netlist"):
            out.append(p)
        else:
            raise TypeError(f"passes must be names or pass modules, got {p!r}")
    return out


def apply_pass(net: ir.Netlist, p) -> ir.Netlist:
    """Apply one pass (module or name) once and return the new netlist."""
    (p,) = _resolve([p])
    if p.SCOPE == "netlist":
        return p.run(net)
    ops = [p.run(op) if isinstance(op, ir.GateBlock) else op for op in net.ops]
    return dataclasses.replace(net, ops=ops)


def _name(p) -> str:
    return getattr(p, "__name__", type(p).__name__).rsplit(".", 1)[-1]


def _same(x: ir.GateBlock, y: ir.GateBlock) -> bool:
    """Whether two blocks are equal field by field (arrays by value)."""
    if x is y:
        return True
    for f in dataclasses.fields(x):
        u, v = getattr(x, f.name), getattr(y, f.name)
        if isinstance(u, np.ndarray):
            if u.dtype != v.dtype or u.shape != v.shape or not np.array_equal(u, v):
                return False
        elif u != v:
            return False
    return True


def _apply_memo(net: ir.Netlist, p, memo: dict, pool) -> ir.Netlist:
    """:func:`apply_pass`, except that a block pass given the same block as last time at that
    op returns last time's result without running (passes are pure functions of the block),
    so the rounds of the fixed point only redo the blocks that changed; big blocks run in
    ``pool`` side by side (numpy releases the GIL)."""
    if p.SCOPE == "netlist":
        return p.run(net)
    ops, todo = list(net.ops), []
    for i, op in enumerate(ops):
        if isinstance(op, ir.GateBlock):
            hit = memo.get((_name(p), i))
            if hit is not None and _same(hit[0], op):
                ops[i] = hit[1]
            else:
                todo.append(i)
    big = sum(ops[i].n_gates >= PARALLEL_GATES for i in todo) > 1
    for i, new in zip(todo, (pool.map if big else map)(p.run, [ops[i] for i in todo])):
        memo[(_name(p), i)] = (ops[i], new)
        ops[i] = new
    return dataclasses.replace(net, ops=ops)


def _fixed_point(cur: ir.Netlist, mods, seconds: dict) -> ir.Netlist:
    with ThreadPoolExecutor(max_workers=cpu_count()) as pool:
        return _rounds(cur, mods, seconds, pool)


def _unchanged(old: list, new: list) -> bool:
    """Whether two op lists are equal (gate blocks by value, other ops by kind)."""
    return len(old) == len(new) and all(
        _same(x, y) if isinstance(x, ir.GateBlock) and isinstance(y, ir.GateBlock) else type(x) is type(y)
        for x, y in zip(old, new))


def _rounds(cur: ir.Netlist, mods, seconds: dict, pool) -> ir.Netlist:
    memo: dict = {}
    for _ in range(MAX_ROUNDS):
        before = cur.ops
        for p in mods:
            t0 = time.perf_counter()
            cur = _apply_memo(cur, p, memo, pool)
            seconds[_name(p)] = seconds.get(_name(p), 0.0) + time.perf_counter() - t0
        if _unchanged(before, cur.ops):
            break
    return cur


def optimize(net: ir.Netlist, passes=None) -> ir.Netlist:
    """Run the passes to a fixed point; returns a new netlist (the input is left untouched).

    ``net.meta["optimize"]`` of the result records the gate counts per op before and after
    and the seconds each pass took.
    """
    mods = _resolve(passes)
    loop = [p for p in mods if not getattr(p, "ONCE", False)]
    once = [p for p in mods if getattr(p, "ONCE", False)]
    before = net.gate_counts()
    cur = dataclasses.replace(net, ops=[copy.deepcopy(op) for op in net.ops], meta=dict(net.meta))
    seconds: dict = {}
    cur = _fixed_point(cur, loop, seconds)
    for p in once:
        t0 = time.perf_counter()
        cur = apply_pass(cur, p)
        seconds[_name(p)] = seconds.get(_name(p), 0.0) + time.perf_counter() - t0
        cur = _fixed_point(cur, loop, seconds)
    for op in cur.ops:
        if isinstance(op, ir.GateBlock):
            op.validate()
    cur.meta["optimize"] = {"passes": [_name(m) for m in mods], "before": before,
                            "after": cur.gate_counts(),
                            "seconds": {k: round(v, 3) for k, v in seconds.items()}}
    return cur


def report(net: ir.Netlist) -> str:
    """A small table of gate counts per op before/after optimization (from ``meta``)."""
    info = net.meta.get("optimize")
    rows = net.gate_counts()
    if not info:
        return "\n".join(f"{name:<50} {n:>12,}" for name, n in rows)
    lines = [f"{'op':<50} {'before':>12} {'after':>12}"]
    for (name, b), (_, a) in zip(info["before"], info["after"]):
        lines.append(f"{name:<50} {b:>12,} {a:>12,}")
    tb = sum(n for _, n in info["before"][:-1])
    ta = sum(n for _, n in info["after"][:-1])
    lines.append(f"{'total logic gates (excl. GroupSum)':<50} {tb:>12,} {ta:>12,}")
    return "\n".join(lines)
