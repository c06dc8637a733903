"""Optional pass: resynthesize every cell with Berkeley ABC, accepted only when proven equal.

Each :class:`~difflogic.compiler.ir.GateBlock` cell (a dense block, or a conv cell that is
shared by every position) is written as BLIF, optimized by ABC's AIG scripts, mapped to
2-input look-up tables (``if -K 2``: any of the 16 gates is one LUT, inverters are absorbed)
and read back as gates.  A result is kept only when it is smaller than the cell and proven
equal to it twice: ABC's SAT-based ``cec`` between the cell and the rebuilt cell (written
back by us, so our reading is checked too), and our own simulator on random (or, for at most
:data:`EXHAUSTIVE_LEAVES` leaves, all) input patterns.  A missing ABC, a failed or timed-out
run or a failed check keeps the cell as it was, with a one-line notice on stderr, so a
wrong netlist is never returned.

A run of consecutive dense blocks of at most :data:`MERGE_MAX_GATES` gates in all is also
tried as one block (the layers unrolled into one cell, :func:`~difflogic.compiler.lower_to_flat`
style): ABC then sees across the layer boundaries, which a per-layer run cannot (on the
6 x 8,000 dense MNIST net that is 10% fewer gates; benches/RESULTS.md).  The merged cell is
kept when it is smaller than the run's cells resynthesized one by one.

The pass is not in the default pipeline (the default compile must not depend on what is
installed); ask for it by name, ``compile(model, passes=passes.WITH_ABC)``.  It runs once,
after the other passes reach their fixed point, which then run again on its result.
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ... import gates
from .. import ir
from ..sim import pack, run_block

SCOPE = "netlist"
MERGE_MAX_GATES = 50_000    # dense runs up to this size are also resynthesized as one cell
ONCE = True                 # not part of the fixed-point loop: run once, then the others again
TIMEOUT_S = 120.0           # per ABC call (one cell)
EXHAUSTIVE_LEAVES = 16      # cells with at most this many leaves are simulated on every input
RANDOM_WORDS = 64           # else: 64 x 64 random patterns
#: ABC's classic scripts, defined here as its abc.rc defines them (a packaged ABC may not ship
#: abc.rc, and ``&deepsyn`` calls ``compress2rs`` by name).
ALIASES = "; ".join(f'alias {name} "{body}"' for name, body in (
    ("b", "balance"), ("rw", "rewrite"), ("rwz", "rewrite -z"), ("rf", "refactor"), ("rfz", "refactor -z"),
    ("rs", "resub"), ("resyn2", "b; rw; rf; b; rw; rwz; b; rfz; rwz; b"),
    ("compress2rs", "b -l; rs -K 6 -l; rw -l; rs -K 6 -N 2 -l; rf -l; rs -K 8 -l; b -l; rs -K 8 -N 2 -l; "
                    "rw -l; rs -K 10 -l; rwz -l; rs -K 10 -N 2 -l; b -l; rs -K 12 -l; rfz -l; rs -K 12 -N 2 -l; "
                    "rwz -l; b -l")))
#: The default script: structural choices (``dch``: several rewritings of the AIG kept side by
#: side) and an area-oriented 2-input LUT mapping over them.  On our cells it gave the fewest
#: gates of the scripts tried (``resyn2`` / ``compress2rs`` / ``fraig`` / ``&deepsyn`` before the
#: mapping break up the XORs; see benches/bench_optimizer_vs_abc.py).
SCRIPT = "strash; dch -f; if -a -K 2"


def find_abc() -> str | None:
    """The ABC executable: $DIFFLOGIC_ABC, else ``berkeley-abc``, ``abc`` or ``yosys-abc`` on PATH."""
    env = os.environ.get("DIFFLOGIC_ABC")
    for cand in ([env] if env else ["berkeley-abc", "abc", "yosys-abc"]):
        path = shutil.which(cand)
        if path:
            return path
    return None


# --------------------------------------------------------------------------- BLIF
def _names(blk: ir.GateBlock) -> list[str]:
    """BLIF net name of every node: constants, leaves ``i<l>``, gates ``g<g>``."""
    return (["$false", "$true"] + [f"i{l}" for l in range(blk.n_leaves)]
            + [f"g{g}" for g in range(blk.n_gates)])


def to_blif(blk: ir.GateBlock) -> str:
    """The cell as a BLIF model: inputs ``i<l>`` (the leaves), outputs ``o<k>``."""
    name = _names(blk)
    lines = [".model cell", ".inputs " + " ".join(name[2:blk.first_gate]) if blk.n_leaves else ".inputs",
             ".outputs " + " ".join(f"o{k}" for k in range(len(blk.outputs))),
             ".names $false", ".names $true", "1"]
    first = blk.first_gate
    for g, (op, a, b) in enumerate(zip(blk.op.tolist(), blk.a.tolist(), blk.b.tolist())):
        if gates.is_constant(op):   # an empty 2-input cover is not valid BLIF
            lines += [f".names {name[first + g]}"] + (["1"] if op == gates.TRUE else [])
            continue
        lines.append(f".names {name[a]} {name[b]} {name[first + g]}")
        lines += [f"{x}{y} 1" for x in (0, 1) for y in (0, 1) if gates.hard_gate(op, x, y)]
    for k, node in enumerate(blk.outputs.tolist()):
        lines += [f".names {name[node]} o{k}", "1 1"]
    lines.append(".end")
    return "\n".join(lines) + "\n"


def _cover_table(cubes: list[tuple[str, str]], k: int) -> list[int]:
    """Truth table (index: inputs as bits, input 0 most significant) of a BLIF cover."""
    if not cubes:
        return [0] * (1 << k)
    on = cubes[0][1] == "1"
    table = [0 if on else 1] * (1 << k)
    for m in range(1 << k):
        bits = [(m >> (k - 1 - i)) & 1 for i in range(k)]
        if any(all(c == "-" or int(c) == v for c, v in zip(cube, bits)) for cube, _ in cubes):
            table[m] = 1 if on else 0
    return table


def _parse_blif(text: str) -> tuple[list, list, list]:
    """(inputs, outputs, [(input names, output name, cubes)]) of a flat combinational BLIF."""
    joined = text.replace("\\\n", " ")
    ins, outs, nodes, cur = [], [], [], None
    for raw in joined.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        tok = line.split()
        if tok[0] == ".inputs":
            ins += tok[1:]
        elif tok[0] == ".outputs":
            outs += tok[1:]
        elif tok[0] == ".names":
            cur = (tok[1:-1], tok[-1], [])
            nodes.append(cur)
        elif tok[0] in (".model", ".end"):
            cur = None
        elif tok[0].startswith("."):
            raise ValueError(f"unexpected BLIF construct {tok[0]} in ABC's output")
        elif cur is not None:
            cube, val = (tok[0], tok[1]) if len(tok) == 2 else ("", tok[0])
            cur[2].append((cube, val))
        else:
            raise ValueError(f"stray BLIF line {line!r} in ABC's output")
    return ins, outs, nodes


def from_blif(text: str, blk: ir.GateBlock) -> ir.GateBlock:
    """Rebuild ``blk``'s cell from ABC's mapped BLIF (covers of at most 2 inputs): same
    leaves and outputs, new gates in topological order."""
    ins, outs, nodes = _parse_blif(text)
    leaf_names = _names(blk)[2:blk.first_gate]
    if sorted(ins) != sorted(leaf_names) or outs != [f"o{k}" for k in range(len(blk.outputs))]:
        raise ValueError("ABC's output has different inputs or outputs than the cell")
    node_of = {nm: ir.FIRST_LEAF + l for l, nm in enumerate(leaf_names)}
    defs = {out: (fan, cubes) for fan, out, cubes in nodes}
    op, a, b = [], [], []
    first = blk.first_gate

    def add(o, x, y):
        op.append(o), a.append(x), b.append(y)
        return first + len(op) - 1

    def build(name, stack=()):
        if name in node_of:
            return node_of[name]
        if name not in defs or name in stack:
            raise ValueError(f"ABC's output: net {name} is undefined or cyclic")
        fan, cubes = defs[name]
        if len(fan) > 2:
            raise ValueError(f"ABC's output: {name} has {len(fan)} inputs; expected a 2-input mapping")
        src = [build(f, stack + (name,)) for f in fan]
        t = _cover_table(cubes, len(fan))
        if len(fan) == 0:
            node = ir.CONST1 if t[0] else ir.CONST0
        elif len(fan) == 1:
            node = src[0] if t == [0, 1] else add(gates.NOT_A, src[0], src[0]) if t == [1, 0] \
                else (ir.CONST1 if t[0] else ir.CONST0)
        else:
            node = add(gates.from_truth_table(t), src[0], src[1])
        node_of[name] = node
        return node

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(defs) + 1000))
    outputs = [build(f"o{k}") for k in range(len(blk.outputs))]
    new = dataclasses.replace(blk, op=np.asarray(op, np.uint8), a=np.asarray(a, np.int64),
                              b=np.asarray(b, np.int64), outputs=np.asarray(outputs, np.int64))
    new.validate()
    return new


# --------------------------------------------------------------------------- checks
def _patterns(n_leaves: int, seed: int) -> np.ndarray:
    """Packed leaf patterns (n_leaves, words): every input when small, else random."""
    if n_leaves <= EXHAUSTIVE_LEAVES:
        m = np.arange(1 << n_leaves, dtype=np.int64)
        return pack((m[:, None] >> np.arange(n_leaves)[None, :]) & 1)
    rng = np.random.default_rng(seed)
    return np.frombuffer(rng.bytes(8 * n_leaves * RANDOM_WORDS), "<u8").astype(np.uint64).reshape(
        n_leaves, RANDOM_WORDS)


def _as_dense(blk: ir.GateBlock) -> ir.GateBlock:
    """The cell alone, as a dense block whose leaf ``l`` reads input feature ``l``."""
    return dataclasses.replace(blk, kind="dense", in_shape=(blk.n_leaves,),
                               leaves=np.arange(blk.n_leaves, dtype=np.int64))


def simulate_equal(old: ir.GateBlock, new: ir.GateBlock, seed: int = 0) -> bool:
    """Whether two cells over the same leaves agree on every output (exhaustively for small
    cells, else on random patterns)."""
    x = _patterns(old.n_leaves, seed)
    return bool(np.array_equal(run_block(_as_dense(old), x), run_block(_as_dense(new), x)))


# --------------------------------------------------------------------------- running ABC
class AbcError(RuntimeError):
    """ABC failed, timed out or produced a cell that did not check out."""


def _abc(exe: str, commands: str, cwd: Path, timeout: float, errors: bool = True) -> str:
    """ABC's output of ``commands``; ``errors``: refuse output that reports an error."""
    try:
        r = subprocess.run([exe, "-q", f"{ALIASES}; {commands}"], cwd=cwd, capture_output=True, text=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AbcError(f"timed out after {timeout:g} s") from None
    out = r.stdout + r.stderr
    if r.returncode != 0 or (errors and ("error" in out.lower() or "failed" in out.lower())):
        raise AbcError(f"exit {r.returncode}: {out.strip().splitlines()[-1] if out.strip() else 'no output'}")
    return out


def resynthesize(blk: ir.GateBlock, exe: str, script: str = SCRIPT, timeout: float = TIMEOUT_S) -> ir.GateBlock:
    """``blk``'s cell through ABC, proven equal (``cec`` + simulation); raises :class:`AbcError`."""
    with tempfile.TemporaryDirectory(prefix="difflogic-abc-") as d:
        work = Path(d)
        (work / "cell.blif").write_text(to_blif(blk))
        t0 = time.monotonic()
        _abc(exe, f"read_blif cell.blif; {script}; write_blif mapped.blif", work, timeout)
        try:
            new = from_blif((work / "mapped.blif").read_text(), blk)
        except (OSError, ValueError) as e:
            raise AbcError(f"unreadable result: {e}") from None
        (work / "rebuilt.blif").write_text(to_blif(new))
        left = max(1.0, timeout - (time.monotonic() - t0))
        out = _abc(exe, "cec cell.blif rebuilt.blif", work, left, errors=False)
        if "Networks are equivalent" not in out:
            raise AbcError("cec did not prove the result equal to the cell")
    if not simulate_equal(blk, new):
        raise AbcError("the result differs from the cell in simulation")
    return new


def _notice(msg: str) -> None:
    print(f"difflogic: abc pass: {msg}", file=sys.stderr)


def dense_runs(net: ir.Netlist, max_gates: int) -> list[tuple[int, int]]:
    """[start, stop) op ranges of 2 or more consecutive dense blocks of at most ``max_gates``."""
    runs, i, ops = [], 0, net.ops
    while i < len(ops):
        j, total = i, 0
        while (j < len(ops) and isinstance(ops[j], ir.GateBlock) and ops[j].kind == "dense"
               and total + ops[j].n_gates <= max_gates):
            total += ops[j].n_gates
            j += 1
        if j - i >= 2:
            runs.append((i, j))
        i = max(j, i + 1)
    return runs


def merge_dense(blocks: list) -> ir.GateBlock:
    """Consecutive dense blocks as one dense block over the first one's input features."""
    from ..lower import lower_to_flat
    sub = ir.Netlist(tuple(blocks[0].in_shape), list(blocks), ir.GroupSum(1, 1.0, 1))
    merged = lower_to_flat(sub).ops[0]
    return dataclasses.replace(merged, name=f"{blocks[0].name or 'dense'} .. {blocks[-1].name or 'dense'} (merged)")


@dataclasses.dataclass(frozen=True)
class Abc:
    """The pass with its settings: ``script`` (ABC commands between reading and writing a
    cell; must end in a 2-input mapping), ``timeout`` seconds per cell, ``jobs`` cells at
    once (default: the CPUs), ``merge_max_gates`` (dense runs tried as one cell; 0: never)."""
    script: str = SCRIPT
    timeout: float = TIMEOUT_S
    jobs: int | None = None
    merge_max_gates: int = MERGE_MAX_GATES
    SCOPE = SCOPE
    ONCE = ONCE
    __name__ = "abc"

    def _one(self, blk: ir.GateBlock, exe: str, label: str) -> ir.GateBlock:
        """``blk`` resynthesized where that is smaller and proven equal, else ``blk``."""
        try:
            new = resynthesize(blk, exe, self.script, self.timeout)
        except AbcError as e:
            _notice(f"{label}: {e}; kept this cell as the other passes left it")
            return blk
        return new if new.n_gates < blk.n_gates else blk

    def run(self, net: ir.Netlist) -> ir.Netlist:
        exe = find_abc()
        if exe is None:
            _notice("ABC is not installed (apt-get install berkeley-abc, or set DIFFLOGIC_ABC); "
                    "kept the netlist of the other passes")
            return net
        idx = [i for i, op in enumerate(net.ops) if isinstance(op, ir.GateBlock) and op.n_gates]
        runs = dense_runs(net, self.merge_max_gates) if self.merge_max_gates else []
        tasks = [("cell", i) for i in idx] + [("run", r) for r in runs]

        def one(task):
            kind, arg = task
            if kind == "cell":
                blk = net.ops[arg]
                return self._one(blk, exe, blk.name or f"op {arg}")
            merged = merge_dense(net.ops[arg[0]:arg[1]])
            return self._one(merged, exe, merged.name)

        with ThreadPoolExecutor(max_workers=self.jobs or os.cpu_count() or 1) as pool:
            done = dict(zip(tasks, pool.map(one, tasks)))
        ops = [done.get(("cell", i), op) for i, op in enumerate(net.ops)]
        for start, stop in sorted(runs, reverse=True):   # later runs first: indices stay valid
            merged = done[("run", (start, stop))]
            if merged.n_gates < sum(op.n_gates for op in ops[start:stop]):   # else: ABC failed or lost
                ops[start:stop] = [merged]
        return dataclasses.replace(net, ops=ops)


_DEFAULT = Abc()


def run(net: ir.Netlist) -> ir.Netlist:
    """Every cell of ``net`` resynthesized by ABC where that is smaller and proven equal."""
    return _DEFAULT.run(net)
