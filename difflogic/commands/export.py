"""``difflogic export``: compile a trained checkpoint to C or Verilog source files.

Hardens the checkpoint into the netlist IR, optimizes it (unless ``--no-optimize``), prints
the gate counts per op before/after, and hands the netlist to
``difflogic.backends.<target>.export``, which writes its files atomically into ``--out``.

Verilog only: ``--pipeline N`` (a register bank every N gate levels; latency in the RTL header
and in ``difflogic_net.json``), ``--scores`` (per-class count ports), ``--max-gates`` (size
limit checked before anything is computed or written) and ``--vectors N`` random test inputs
whose golden outputs come from the PyTorch hard forward of the checkpoint itself, so
``DIR/run_sim.sh`` checks the RTL against the model, not against the compiler's own view of it.
These options are rejected with ``--target c`` rather than silently ignored.
"""
from __future__ import annotations

import importlib
import json
import os

TARGETS = ("c", "verilog")


def add_parser(subparsers):
    p = subparsers.add_parser(
        "export", help="compile a checkpoint to C or Verilog",
        description="Harden a trained network into a netlist, optimize it and emit C or Verilog.")
    p.add_argument("checkpoint", metavar="CHECKPOINT", help="RUN/model.pt (or a run directory)")
    p.add_argument("--target", choices=TARGETS, default="c", help="back end")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory (created if missing)")
    p.add_argument("--no-optimize", dest="optimize", action="store_false",
                   help="emit the hardened netlist as is (no constant folding, hashing, pruning); "
                        "without it the netlist is optimized")
    p.add_argument("--prefix", default=None, help="C symbol prefix (C target only)")
    v = p.add_argument_group("Verilog options (--target verilog only)")
    v.add_argument("--pipeline", type=int, default=None, metavar="N",
                   help="register bank every N gate levels (default: combinational, no clock)")
    v.add_argument("--scores", action="store_true",
                   help="also output the per-class counts (port `scores`)")
    v.add_argument("--vectors", type=int, default=None, metavar="N",
                   help="random test vectors for the self-checking testbench (default: 256)")
    v.add_argument("--seed", type=int, default=None, help="seed of the test vectors (default: 0)")
    v.add_argument("--max-gates", type=int, default=None, metavar="G",
                   help="refuse larger designs (estimated gates incl. the GroupSum head) before "
                        "writing anything (default: difflogic.backends.verilog.DEFAULT_MAX_GATES)")
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


def reject_options(args, target: str, names: tuple) -> None:
    """Options of another target given on the command line: a clear error, not a silent
    no-op (``args.<dest>`` is None/False when an option was not given)."""
    given = [n for n in names if getattr(args, n.lstrip("-").replace("-", "_"), None)
             not in (None, False)]
    if given:
        verb = "applies" if len(given) == 1 else "apply"
        raise ValueError(f"{', '.join(given)} only {verb} to --target verilog, not --target {target}")


def _verilog_export(backend, args, model, net) -> dict:
    """Size check first (nothing computed or written for a too-large model), then random
    test inputs, their golden counts from the PyTorch hard forward, and the export."""
    import numpy as np

    from ..compiler import encode_input, hard_counts
    from .verify import _random_inputs
    pipeline = 0 if args.pipeline is None else args.pipeline
    max_gates = backend.DEFAULT_MAX_GATES if args.max_gates is None else args.max_gates
    n_vec = 256 if args.vectors is None else args.vectors
    if n_vec < 1:
        raise ValueError(f"--vectors must be >= 1 (the testbench needs inputs), got {n_vec}")
    backend.check_size(net, pipeline, max_gates)
    x = _random_inputs(net, n_vec, 0 if args.seed is None else args.seed)
    bits = encode_input(net, x)
    expected = np.asarray(hard_counts(model, x), dtype=np.int64)
    return backend.export(net, args.out, pipeline=pipeline, scores=args.scores, vectors=bits,
                          expected=expected, max_gates=max_gates)


def run(args) -> int:
    from ..compiler.passes import report
    backend = load_backend(args.target)
    if args.target == "verilog":
        if args.prefix:
            raise ValueError("--prefix only applies to --target c (the Verilog top module is "
                             "always difflogic_net)")
    else:
        reject_options(args, args.target, ("--pipeline", "--scores", "--vectors", "--seed",
                                           "--max-gates"))
    model = _load(args)
    net = prepare_netlist(model, args.optimize)
    if args.target == "verilog":
        info = _verilog_export(backend, args, model, net)
        written = files = sorted(os.listdir(args.out))
    else:
        opts = {"prefix": args.prefix} if args.prefix else {}
        info = None
        written = backend.export(net, args.out, **opts)  # {file: path}
        files = sorted(map(str, written))
    if args.json:
        summary = {"target": args.target, "out": str(args.out), "files": written,
                   "gate_counts": [list(r) for r in net.gate_counts()], "gates": net.gate_count()}
        if info is not None:
            summary["verilog"] = info
        print(json.dumps(summary, default=str))
    else:
        print(report(net))
        if info is not None:
            form = (f"pipelined every {info['pipeline']} levels, latency {info['latency']} cycles"
                    if info["pipeline"] else "combinational")
            print(f"verilog: {info['gates']:,} gates ({info['head_gates']:,} popcount/argmax), "
                  f"{info['levels']} levels, {form}, {info['registers']:,} registers; "
                  f"{info['vectors']} golden vectors (run {os.path.join(str(args.out), 'run_sim.sh')})")
        print(f"wrote {args.target} files to {args.out}: {', '.join(files)}")
    return 0
