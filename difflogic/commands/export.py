"""``difflogic export``: compile a trained checkpoint and write a back end's files.

Compiles the checkpoint into the netlist IR (:func:`difflogic.compiler.compile`: hardened, and
optimized unless ``--no-optimize``), prints the gate counts per op before/after, and hands
the netlist to the ``--target`` back end (:mod:`difflogic.backends`), which writes its files
into ``--out`` (each complete or not at all; other files there are left alone).  Each back
end brings its own options (``difflogic export --help`` lists them per target); an option of
another target is an error rather than silently ignored.  Back ends that ship test vectors
(Verilog) get their golden outputs from the PyTorch hard forward of the checkpoint itself,
so the exported test bench checks the RTL against the model, not against the compiler's own
view of it.
"""
from __future__ import annotations

import json

from ..backends import base


def add_parser(subparsers):
    p = subparsers.add_parser(
        "export", help="compile a checkpoint to C or Verilog",
        description="Harden a trained network into a netlist, optimize it and write a back "
                    "end's files (C sources, Verilog RTL and test bench, a GPU program).")
    p.add_argument("checkpoint", metavar="CHECKPOINT", help="RUN/model.pt (or a run directory)")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory (created if missing)")
    p.add_argument("--no-optimize", dest="optimize", action="store_false",
                   help="emit the hardened netlist as is (no constant folding, hashing, pruning); "
                        "without it the netlist is optimized")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    base.add_target_arguments(p, "export")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from ..checkpoint import load_model
    from ..compiler import compile, hard_counts
    from ..compiler.passes import report
    backend, opts = base.target_options(args, "export")
    model = load_model(args.checkpoint)
    net = compile(model, optimize=args.optimize)
    result = backend.emit(net, args.out, reference=lambda x: hard_counts(model, x), **opts)
    files = result["files"]
    if args.json:
        summary = {"target": backend.name, "out": str(args.out), "files": files,
                   "gate_counts": [list(r) for r in net.gate_counts()], "gates": net.gate_count()}
        if result.get("info"):
            summary[backend.name] = result["info"]
        print(json.dumps(summary, default=str))
        return 0
    print(report(net))
    if result.get("summary"):
        print(result["summary"])
    print(f"wrote {backend.name} files to {args.out}: {', '.join(sorted(files))}")
    return 0
