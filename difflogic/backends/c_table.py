"""The table form of big dense blocks in the C back end: gates as data read by one small loop.

Straight-line C (one statement per gate) costs the C compiler minutes per million gates.  A dense block of at least ``table_gates`` gates is emitted
instead as *data*: per gate an int32 triple (destination word, word of operand a, word of
operand b), grouped by level inside the block (a level only reads earlier levels) and, inside a
level, sorted by op into runs (then by the words read, so reads stream), so the loop of
``export/c/runtime_table.h`` has one ``switch`` per run, not per gate.  Every gate value gets a
workspace word from the same liveness arena as the straight-line form's words; constants read
two reserved words the block function sets.

The triples of every table block (and, beside them, the back end's other long int32 arrays)
are one base64 string literal, decoded once per process on
first use: C compilers read one big literal in well under a second, while array initializers of
millions of entries take minutes (the dated note benches/notes/2026-12-08-big-net-compile.md).
"""
from __future__ import annotations

import base64

import numpy as np

from .. import gates
from .._resources import template
from ..compiler import ir


def plan(blk: ir.GateBlock, node_loc: np.ndarray, last: np.ndarray, alloc_many) -> tuple:
    """Lay out ``blk``'s gates as table rows.

    ``node_loc``: int64 (first_gate + n_gates,) word of every node; the constants and leaves
    filled in, the gates' entries are filled here with the words ``alloc_many(lasts)`` returns
    (``last[g]``: the last step reading gate ``g``).  Returns (triples int32 (n, 3), runs int32
    (r, 2) of (op, count))."""
    first = blk.first_gate
    triples, runs = [], []
    for g in blk.level_groups():
        wa, wb = node_loc[blk.a[g]], node_loc[blk.b[g]]
        order = np.lexsort((np.maximum(wa, wb), np.minimum(wa, wb), blk.op[g]))
        g, wa, wb = g[order], wa[order], wb[order]
        words = alloc_many(last[g])
        node_loc[first + g] = words
        triples.append(np.stack([words, wa, wb], 1))
        op = blk.op[g].astype(np.int32)
        starts = np.concatenate([[0], np.flatnonzero(np.diff(op)) + 1])
        runs.append(np.stack([op[starts], np.diff(np.append(starts, len(op)))], 1))
    if not triples:
        return np.zeros((0, 3), np.int32), np.zeros((0, 2), np.int32)
    return (np.concatenate(triples).astype(np.int32),
            np.concatenate(runs).astype(np.int32))


def literal(triples: list) -> tuple[str, int]:
    """(C definitions of ``dl_tab_b64`` and ``DL_TAB_INTS``, the int count) of the
    concatenated little-endian int32 ``triples``; the bytes are padded to whole base64 quads."""
    data = np.concatenate([t.reshape(-1) for t in triples]).astype("<i4").tobytes()
    n_ints = len(data) // 4
    data += b"\0" * (-len(data) % 3)
    text = base64.b64encode(data).decode("ascii")
    return (f"#define DL_TAB_INTS {n_ints}\n#define DL_TAB_BYTES {len(data)}\n"
            f'static const char dl_tab_b64[] = "{text}";'), n_ints


def runtime() -> str:
    """The table decoder and loop, with one ``case`` per gate (rendered by :mod:`difflogic.gates`)."""
    cases = "".join(
        f"        case {op}: DL_TABLE_LOOP({gates.render(op, 'x', 'y', zero='DL_ZERO', one='DL_ONES')}); break;\n"
        for op in range(gates.NUM_GATES))
    return template("c/runtime_table.h").read_text().replace("@CASES@\n", cases)
