"""``difflogic synth DIR``: yosys LUT synthesis of a Verilog export (LUTs, flip-flops, logic
depth, synthesis time, a stated timing estimate: a mapping estimate), as text or JSON (also
written to ``DIR/synth_report.json``; the yosys log stays in DIR).  ``--pnr ice40 --device
hx8k|up5k``: the measured figures instead, placed and routed for an iCE40 (LUT4s, flip-flops,
block RAMs, the router's Fmax, images/s at that clock), and the bitstream
(``DIR/pnr_ice40_report.json``, ``DIR/ice40.bin``)."""
from __future__ import annotations

import json


def add_parser(subparsers):
    from ..synth import ICE40, ICE40_TARGET_MHZ, NS_PER_LEVEL
    p = subparsers.add_parser(
        "synth", help="synthesize a Verilog export with yosys (LUT estimate), or place and "
                      "route it for an iCE40 (--pnr ice40)",
        description="Run yosys generic LUT mapping (abc -lut K) on DIR/difflogic_net.v, written by "
                    "`difflogic export --target verilog`, and report LUTs, flip-flops, logic depth "
                    "in LUT levels, synthesis time and an estimated clock/latency (a mapping "
                    "estimate); with --pnr ice40: synthesize, place and route it for an iCE40 with "
                    "yosys, nextpnr-ice40 and icestorm, and report the measured LUT4s, flip-flops, "
                    "block RAMs and Fmax, and write the bitstream.")
    p.add_argument("dir", metavar="DIR", help="directory of a Verilog export")
    p.add_argument("--lut", type=int, default=6, help="LUT size K of the estimate")
    p.add_argument("--fast", action="store_true",
                   help="ABC's quick mapping script (much faster on big designs, more LUTs)")
    p.add_argument("--timeout", type=float, default=None, metavar="S",
                   help="give up after S seconds (per tool with --pnr)")
    p.add_argument("--ns-per-level", type=float, default=None, metavar="NS",
                   help=f"assumed delay per LUT level incl. routing for the estimate (default: "
                        f"{NS_PER_LEVEL})")
    p.add_argument("--pnr", choices=("ice40",), default=None,
                   help="place and route for this FPGA family instead of the LUT estimate")
    p.add_argument("--device", choices=tuple(ICE40), default=None,
                   help="the iCE40 part of --pnr ice40 (default: hx8k)")
    p.add_argument("--freq", type=float, default=None, metavar="MHZ",
                   help=f"the clock nextpnr optimizes for (default: {ICE40_TARGET_MHZ:g}); the "
                        "reported Fmax is what it reached")
    p.add_argument("--seed", type=int, default=None, help="nextpnr's placer seed (default: 1)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from ..synth import (ICE40_TARGET_MHZ, NS_PER_LEVEL, format_pnr_report, format_report,
                         place_and_route, synthesize)
    pnr_only = {"--device": args.device, "--freq": args.freq, "--seed": args.seed}
    if args.pnr is None:
        given = [flag for flag, v in pnr_only.items() if v is not None]
        if given:
            raise ValueError(f"{', '.join(given)} only appl{'ies' if len(given) == 1 else 'y'} "
                             "with --pnr ice40")
        ns = NS_PER_LEVEL if args.ns_per_level is None else args.ns_per_level
        if ns <= 0:
            raise ValueError(f"--ns-per-level must be > 0, got {ns}")
        report = synthesize(args.dir, lut=args.lut, fast=args.fast, timeout=args.timeout,
                            ns_per_level=ns)
        print(json.dumps(report, indent=2) if args.json else format_report(report))
        return 0
    report = place_and_route(args.dir, args.device or "hx8k",
                             freq=ICE40_TARGET_MHZ if args.freq is None else args.freq,
                             seed=1 if args.seed is None else args.seed, timeout=args.timeout)
    print(json.dumps(report, indent=2) if args.json else format_pnr_report(report))
    return 0
