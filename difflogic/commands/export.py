"""``difflogic export``: compile a trained checkpoint to C or Verilog source files.

Hardens the checkpoint into the netlist IR, optimizes it (unless ``--no-optimize``), prints
the gate counts per op before/after, and hands the netlist to
``difflogic.backends.<target>.export``, which writes its files atomically into ``--out``.
"""
from __future__ import annotations

import importlib
import json

TARGETS = ("c", "verilog")


def add_parser(subparsers):
    p = subparsers.add_parser(
        "export", help="compile a checkpoint to C or Verilog",
        description="Harden a trained network into a netlist, optimize it and emit C or Verilog.")
    p.add_argument("checkpoint", metavar="CHECKPOINT", help="RUN/model.pt (or a run directory)")
    p.add_argument("--target", choices=TARGETS, default="c", help="back end")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory (created if missing)")
    p.add_argument("--no-optimize", dest="optimize", action="store_false",
                   help="emit the hardened netlist as is (no constant folding, hashing, pruning)")
    p.add_argument("--prefix", default=None, help="C symbol prefix / Verilog module name prefix")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run)
    return p


def load_backend(target: str):
    if target not in TARGETS:
        raise ValueError(f"--target must be one of {', '.join(TARGETS)}, got {target!r}")
    return importlib.import_module(f"difflogic.backends.{target}")


def prepare_netlist(model, optimize: bool = True):
    from ..compiler import harden
    from ..compiler.passes import optimize as _optimize
    net = harden(model)
    return _optimize(net) if optimize else net


def _load(args):
    model = getattr(args, "model_obj", None)    # tests / library callers may pass a model
    if model is None:
        from ..checkpoint import load_model
        model = load_model(args.checkpoint)
    return model


def run(args) -> int:
    from ..compiler.passes import report
    backend = load_backend(args.target)
    net = prepare_netlist(_load(args), args.optimize)
    opts = {}
    if args.prefix:
        opts["prefix"] = args.prefix
    files = backend.export(net, args.out, **opts)
    if args.json:
        print(json.dumps({"target": args.target, "out": str(args.out), "files": files,
                          "gate_counts": [list(r) for r in net.gate_counts()],
                          "gates": net.gate_count()}))
    else:
        print(report(net))
        print(f"wrote {args.target} files to {args.out}: {', '.join(sorted(map(str, files)))}")
    return 0
