"""``difflogic synth DIR``: yosys LUT synthesis of a Verilog export (LUTs, flip-flops, logic
depth, synthesis time, a stated timing estimate), as text or JSON (also written to
``DIR/synth_report.json``; the yosys log stays in DIR)."""
from __future__ import annotations

import json


def add_parser(subparsers):
    from ..synth import NS_PER_LEVEL
    p = subparsers.add_parser(
        "synth", help="synthesize a Verilog export with yosys (LUT count, FFs, depth)",
        description="Run yosys generic LUT mapping (abc -lut K) on DIR/difflogic_net.v, written by "
                    "`difflogic export --target verilog`, and report LUTs, flip-flops, logic depth "
                    "in LUT levels, synthesis time and an estimated clock/latency.")
    p.add_argument("dir", metavar="DIR", help="directory of a Verilog export")
    p.add_argument("--lut", type=int, default=6, help="LUT size K")
    p.add_argument("--fast", action="store_true",
                   help="ABC's quick mapping script (much faster on big designs, more LUTs)")
    p.add_argument("--timeout", type=float, default=None, metavar="S",
                   help="give up after S seconds")
    p.add_argument("--ns-per-level", type=float, default=None, metavar="NS",
                   help=f"assumed delay per LUT level incl. routing for the estimate (default: "
                        f"{NS_PER_LEVEL})")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from ..synth import NS_PER_LEVEL, format_report, synthesize
    ns = NS_PER_LEVEL if args.ns_per_level is None else args.ns_per_level
    if ns <= 0:
        raise ValueError(f"--ns-per-level must be > 0, got {ns}")
    report = synthesize(args.dir, lut=args.lut, fast=args.fast, timeout=args.timeout,
                        ns_per_level=ns)
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0
