"""Generic FPGA-style synthesis of a Verilog export with yosys: LUT count, flip-flops, depth.

Why generic LUTs: vendor flows are not available here, and a K-input LUT count after
``abc -lut K`` plus the longest LUT path is the figure the literature compares (LogicNets,
silogic).  The script is the template ``export/verilog/synth.ys``; the yosys log and the raw
``stat`` / ``ltp`` outputs are kept next to the design, the summary goes to
``synth_report.json``.  ``fast=True`` uses ABC's quick script for very large designs.

Timing is *estimated* from the logic depth (``ns_per_level`` per LUT level including local
routing, plus ``ns_overhead`` for clock-to-out and setup), not measured: it is a rough
FPGA-class figure that lets pipelined and combinational forms be compared.
"""
from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

from .backends.verilog import TOP, require_tool, synth_script

#: Rough delay of one LUT level plus local routing on a mid-range FPGA (ns), and the fixed
#: register overhead (clock-to-out + setup) per cycle.  Assumptions, stated in every report.
NS_PER_LEVEL = 0.5
NS_OVERHEAD = 0.5
#: Clock ceiling of the estimate (global clock network / flip-flop limits of FPGA fabric).
MAX_MHZ = 600.0


def _parse_stat(text: str) -> dict:
    cells = {}
    for m in re.finditer(r"^\s+(\$\S+)\s+(\d+)\s*$", text, re.M):
        cells[m.group(1)] = int(m.group(2))
    total = re.search(r"Number of cells:\s+(\d+)", text)
    luts = sum(n for c, n in cells.items() if c == "$lut" or c.startswith("$_LUT"))
    ffs = sum(n for c, n in cells.items() if "DFF" in c.upper() or c.upper().endswith("FF_"))
    return {"cells": int(total.group(1)) if total else sum(cells.values()), "luts": luts,
            "ffs": ffs, "cell_types": cells}


def _parse_ltp(text: str) -> int:
    m = re.search(r"Longest topological path in \S+ \(length=(\d+)\)", text)
    if m is None:
        raise RuntimeError(f"could not read the longest path from yosys' ltp output:\n{text[-2000:]}")
    return int(m.group(1))


def estimate_timing(depth: int, latency: int, *, ns_per_level: float = NS_PER_LEVEL,
                    ns_overhead: float = NS_OVERHEAD) -> dict:
    """Clock and latency estimate from the LUT depth of the longest register-to-register (or
    port-to-port) path.  Combinational designs (latency 0) report the propagation delay."""
    path_ns = depth * ns_per_level + ns_overhead
    out = {"ns_per_level": ns_per_level, "ns_overhead": ns_overhead, "critical_path_ns": path_ns}
    if latency:
        period = max(path_ns, 1000.0 / MAX_MHZ)
        out.update(fmax_mhz=1000.0 / period, max_mhz=MAX_MHZ, latency_cycles=latency,
                   latency_ns=latency * period, throughput_per_s=1e9 / period)
    else:
        out.update(latency_ns=path_ns, throughput_per_s=1e9 / path_ns)
    return out


def _run_group(cmd, cwd, timeout, timeout_message):
    """Run ``cmd`` in its own process group and kill the whole group on timeout: yosys runs
    ABC as a child that inherits the output pipes, so killing yosys alone would leave ABC
    running and ``subprocess.run`` waiting on the pipes forever."""
    import os
    import signal
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except BaseException as e:  # the timeout, or Ctrl-C: do not leave ABC behind
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        if isinstance(e, subprocess.TimeoutExpired):
            raise RuntimeError(timeout_message) from None
        raise
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def synthesize(design_dir, *, lut: int = 6, fast: bool = False, timeout: float | None = None,
               ns_per_level: float = NS_PER_LEVEL, ns_overhead: float = NS_OVERHEAD) -> dict:
    """Run yosys on ``design_dir/difflogic_net.v``; returns (and writes ``synth_report.json``)
    LUT count, flip-flops, depth in LUT levels, synthesis seconds and a timing estimate."""
    if isinstance(lut, bool) or not isinstance(lut, int) or not 2 <= lut <= 8:
        raise ValueError(f"lut must be an integer LUT size between 2 and 8, got {lut!r}")
    d = Path(design_dir)
    rtl = d / f"{TOP}.v"
    if not rtl.is_file():
        raise FileNotFoundError(f"{d} is not a Verilog export: {rtl.name} is missing "
                                "(create one with `difflogic export --target verilog`)")
    yosys = require_tool("yosys")
    side_path = d / f"{TOP}.json"
    side = json.loads(side_path.read_text()) if side_path.is_file() else {}
    tag = f"synth_lut{lut}{'_fast' if fast else ''}"
    names = {"script": f"{tag}.ys", "log": f"{tag}.log", "stat": f"{tag}_stat.txt",
             "ltp": f"{tag}_ltp.txt"}
    (d / names["script"]).write_text(synth_script(lut, names["stat"], names["ltp"], fast=fast))
    for k in ("stat", "ltp"):
        (d / names[k]).unlink(missing_ok=True)
    t0 = time.perf_counter()
    p = _run_group([yosys, "-q", "-l", names["log"], "-s", names["script"]], d, timeout,
                   f"yosys did not finish within {timeout} s (log: {d / names['log']})")
    seconds = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError(f"yosys failed (exit {p.returncode}); log: {d / names['log']}\n"
                           f"{(p.stdout + p.stderr)[-3000:]}")
    stat = _parse_stat((d / names["stat"]).read_text())
    depth = _parse_ltp((d / names["ltp"]).read_text())
    version = subprocess.run([yosys, "-V"], capture_output=True, text=True).stdout.strip()
    latency = int(side.get("latency", 0))
    gates = side.get("gates")
    report = {
        "design": str(d), "lut_size": lut, "abc": "fast" if fast else "default", "luts": stat["luts"], "ffs": stat["ffs"],
        "cells": stat["cells"], "depth_luts": depth, "synth_seconds": round(seconds, 3),
        "gates": gates, "network_gates": side.get("network_gates"),
        "luts_per_gate": (stat["luts"] / gates) if gates else None,
        "pipeline": side.get("pipeline", 0), "latency_cycles": latency,
        "timing_estimate": estimate_timing(depth, latency, ns_per_level=ns_per_level,
                                           ns_overhead=ns_overhead),
        "cell_types": stat["cell_types"], "yosys": version, "log": str(d / names["log"]),
        "script": str(d / names["script"]),
    }
    (d / "synth_report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def format_report(r: dict) -> str:
    t = r["timing_estimate"]
    lines = [f"design:        {r['design']}",
             f"LUT{r['lut_size']}:          {r['luts']:,}" +
             (f"  ({r['luts_per_gate']:.3f} per 2-input gate, {r['gates']:,} gates)" if r.get("gates") else ""),
             f"flip-flops:    {r['ffs']:,}",
             f"logic depth:   {r['depth_luts']} LUT levels (longest path between registers/ports)",
             f"synthesis:     {r['synth_seconds']:.1f} s ({r['yosys']})"]
    if r["latency_cycles"]:
        lines.append(f"timing (est.): {t['fmax_mhz']:.0f} MHz, latency {r['latency_cycles']} cycles = "
                     f"{t['latency_ns']:.1f} ns")
    else:
        lines.append(f"timing (est.): combinational, {t['latency_ns']:.1f} ns per input")
    lines.append(f"               (assumes {t['ns_per_level']} ns per LUT level + {t['ns_overhead']} ns "
                 "register overhead; not a timing report)")
    lines.append(f"log:           {r['log']}")
    return "\n".join(lines)
