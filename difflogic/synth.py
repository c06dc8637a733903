"""Synthesis of a Verilog export: a generic LUT mapping estimate, and a placed-and-routed
iCE40 design with measured timing.

:func:`synthesize` (``difflogic synth DIR``): yosys ``abc -lut K`` on the RTL; the K-input LUT
count plus the longest LUT path is the figure the literature compares (LogicNets, silogic), a
*mapping estimate* for a LUT6 FPGA whose vendor flow is not available here.  The script is the
template ``export/verilog/synth.ys``; the yosys log and the raw ``stat`` / ``ltp`` outputs are
kept next to the design, the summary goes to ``synth_report.json``.  ``fast=True`` uses ABC's
quick script for very large designs.  Its timing is *estimated* from the logic depth
(``ns_per_level`` per LUT level including local routing, plus ``ns_overhead`` for clock-to-out
and setup), not measured.

:func:`place_and_route` (``difflogic synth DIR --pnr ice40 --device hx8k|up5k``): the open
iCE40 flow, measured: yosys ``synth_ice40`` (template ``export/verilog/synth_ice40.ys``),
nextpnr-ice40 (packing first, so that a design that does not fit is refused before the
placer and router run), icepack (the bitstream) and icetime (a second, independent timing
analysis).  It reports LUT4s, flip-flops, carry cells, block RAMs, logic cells and the Fmax
of the router's timing analysis, and writes ``pnr_ice40_report.json`` and the bitstream.
"""
from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from ._resources import template
from .backends.verilog import TOP, fill_template, require_tool, synth_script
from .files import atomic_write, write_files

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
    script = synth_script(lut, names["stat"], names["ltp"], fast=fast)
    atomic_write(d / names["script"], lambda f: f.write(script.encode()))
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
    atomic_write(d / "synth_report.json",
                 lambda f: f.write((json.dumps(report, indent=2) + "\n").encode()))
    return report


def format_report(r: dict) -> str:
    t = r["timing_estimate"]
    lines = [f"design:        {r['design']}",
             f"LUT{r['lut_size']}:          {r['luts']:,}" +
             (f"  ({r['luts_per_gate']:.3f} per 2-input gate, {r['gates']:,} gates)" if r.get("gates") else ""),
             f"               (a mapping estimate: yosys abc -lut {r['lut_size']}, no vendor "
             "placement; measured: --pnr ice40)",
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


# --------------------------------------------------------------------------- iCE40
#: The iCE40 parts of ``--device``: logic cells (one LUT4 + one flip-flop + carry each), 4-kbit
#: block RAMs, the package nextpnr places in by default and its user I/O pins (Lattice data
#: sheets).
ICE40 = {"hx8k": {"lcs": 7680, "brams": 32, "package": "ct256", "ios": 206},
         "up5k": {"lcs": 5280, "brams": 30, "package": "sg48", "ios": 39}}
#: The clock nextpnr optimizes for unless told (MHz); the Fmax reported is what it reached.
ICE40_TARGET_MHZ = 100.0
#: At most this many 2-input gates fit one LUT4 (a tree of three): the bound of the check
#: made before yosys runs.
GATES_PER_LUT4 = 3


def port_bits(side: dict) -> int:
    """The I/O pins the top module of an export needs, from its sidecar."""
    if side.get("interface") == "axi4-stream":
        return side["axis_width"] + 3 + side["out_width"] + 4 + 2
    outs = side["class_width"] + (side["classes"] * side["score_width"] if side.get("scores") else 0)
    return side["inputs"] + outs + (4 if side.get("pipeline") else 0)


def check_fit_before_synthesis(side: dict, device: str) -> None:
    """Refuse, before any tool runs, what cannot fit ``device``: too many I/O pins, or more
    gates than its logic cells can hold at best."""
    dev = ICE40[device]
    pins = port_bits(side)
    if pins > dev["ios"]:
        fix = ("a narrower --axis W or no --scores" if side.get("interface") == "axi4-stream"
               else "--axis W (an AXI4-Stream top)")
        raise ValueError(f"the design needs {pins:,} I/O pins, the {device} in {dev['package']} has "
                         f"{dev['ios']}: {pins - dev['ios']:,} too many; export it with {fix}")
    gates = int(side.get("gates") or 0)
    least = math.ceil(gates / GATES_PER_LUT4)
    if least > dev["lcs"]:
        fix = ("a smaller network (the streamed form keeps the dense layers unrolled)"
               if side.get("form") == "streamed" else "--fold, or a smaller network")
        raise ValueError(f"the design does not fit the {device}: {gates:,} gates need at least "
                         f"{least:,} LUT4s ({GATES_PER_LUT4} gates per LUT4 at best), the {device} "
                         f"has {dev['lcs']:,} logic cells ({least - dev['lcs']:,} too many); try "
                         f"{fix}")


def ice40_tools() -> dict:
    """The paths of yosys, nextpnr-ice40, icepack and icetime; a missing one is a one-line
    error naming its Debian package."""
    return {t: require_tool(t) for t in ("yosys", "nextpnr-ice40", "icepack", "icetime")}


def _utilization(report_json: Path) -> dict:
    util = json.loads(report_json.read_text()).get("utilization", {})
    return {k: (v["used"], v["available"]) for k, v in util.items()}


def _ice40_cells(stat_text: str) -> dict:
    cells = {m.group(1): int(m.group(2))
             for m in re.finditer(r"^\s+(SB_\w+)\s+(\d+)\s*$", stat_text, re.M)}
    pick = lambda pre: sum(n for c, n in cells.items() if c.startswith(pre))  # noqa: E731
    return {"lut4": pick("SB_LUT4"), "ffs": pick("SB_DFF"), "carry": pick("SB_CARRY"),
            "bram": pick("SB_RAM40_4K"), "cell_types": cells}


def _run_tool(cmd, cwd, timeout, what: str, log: Path):
    p = _run_group(cmd, cwd, timeout, f"{what} did not finish within {timeout} s")
    log.write_text(p.stdout + p.stderr)
    if p.returncode != 0:
        raise RuntimeError(f"{what} failed (exit {p.returncode}):\n{(p.stdout + p.stderr)[-2500:]}")
    return p


def _synth_and_pack(work: Path, tools: dict, device: str, package: str, timeout) -> dict:
    """yosys synth_ice40, then nextpnr packing only: the cells and the logic cells used."""
    script = fill_template(template("verilog/synth_ice40.ys").read_text(), VERILOG=f"{TOP}.v",
                           TOP=TOP, JSON="ice40.json", STAT="ice40_stat.txt")
    (work / "ice40.ys").write_text(script)
    _run_tool([tools["yosys"], "-q", "-l", "ice40_yosys.log", "-s", "ice40.ys"], work, timeout,
              "yosys synth_ice40", work / "ice40_yosys.out")
    cells = _ice40_cells((work / "ice40_stat.txt").read_text())
    _run_tool([tools["nextpnr-ice40"], f"--{device}", "--package", package, "--json",
               "ice40.json", "--pack-only", "--pcf-allow-unconstrained", "--report",
               "ice40_pack.json"], work, timeout, "nextpnr-ice40 (packing)", work / "ice40_pack.log")
    cells["packed"] = _utilization(work / "ice40_pack.json")
    return cells


def _check_packed(cells: dict, device: str) -> None:
    used, avail = cells["packed"].get("ICESTORM_LC", (0, 0))[0], ICE40[device]["lcs"]
    if used > avail:
        raise ValueError(f"the design does not fit the {device}: it needs {used:,} logic cells "
                         f"({cells['lut4']:,} LUT4s, {cells['ffs']:,} flip-flops), the {device} has "
                         f"{avail:,}: {used - avail:,} ({100 * (used - avail) / avail:.0f}%) too many; "
                         "nothing was placed")
    ram, ram_avail = cells["packed"].get("ICESTORM_RAM", (0, 0))[0], ICE40[device]["brams"]
    if ram > ram_avail:
        raise ValueError(f"the design needs {ram} block RAMs, the {device} has {ram_avail}; "
                         "nothing was placed")


def _route(work: Path, tools: dict, device: str, package: str, freq: float, seed: int,
           timeout, cells: dict) -> dict:
    """nextpnr place and route, icepack, icetime: Fmax and utilization."""
    try:
        _run_tool([tools["nextpnr-ice40"], f"--{device}", "--package", package, "--json",
                   "ice40.json", "--asc", "ice40.asc", "--pcf-allow-unconstrained", "--freq",
                   f"{freq:g}", "--timing-allow-fail", "--seed", str(seed), "--report",
                   "ice40_route.json"], work, timeout, "nextpnr-ice40", work / "ice40_pnr.log")
    except RuntimeError as e:   # the placer's own "too full" verdict, as one line
        if "Unable to find legal placement" not in str(e):
            raise
        used, avail = cells["packed"].get("ICESTORM_LC", (0, 0))[0], ICE40[device]["lcs"]
        raise ValueError(f"nextpnr-ice40 could not place the design on the {device}: it uses "
                         f"{used:,} of {avail:,} logic cells ({100 * used / avail:.0f}%), more "
                         "than its placer can legalize; use a smaller network; nothing was "
                         "routed") from None
    fmax = json.loads((work / "ice40_route.json").read_text()).get("fmax", {})
    _run_tool([tools["icepack"], "ice40.asc", "ice40.bin"], work, timeout, "icepack",
              work / "ice40_icepack.log")
    icetime = _run_tool([tools["icetime"], "-d", device, "-P", package, "-mt", "ice40.asc"],
                        work, timeout, "icetime", work / "ice40_icetime.txt")
    m = re.search(r"Total path delay: ([0-9.]+) ns \(([0-9.]+) MHz\)", icetime.stdout)
    clocks = {name: round(v["achieved"], 2) for name, v in fmax.items()}
    return {"fmax_mhz": min(clocks.values()) if clocks else None, "clocks": clocks,
            "target_mhz": freq, "utilization": _utilization(work / "ice40_route.json"),
            "icetime_mhz": float(m.group(2)) if m else None}


#: What place_and_route keeps in the design folder (besides its report).
ICE40_OUTPUTS = ("ice40.ys", "ice40.json", "ice40_stat.txt", "ice40_yosys.log", "ice40_pnr.log",
                 "ice40.asc", "ice40.bin", "ice40_icetime.txt")


def place_and_route(design_dir, device: str = "hx8k", *, package: str | None = None,
                    freq: float = ICE40_TARGET_MHZ, seed: int = 1,
                    timeout: float | None = None) -> dict:
    """Synthesize, place and route a Verilog export for an iCE40 ``device`` (hx8k, up5k) and
    write its bitstream; returns (and writes ``pnr_ice40_report.json``) LUT4s, flip-flops,
    carry cells, block RAMs, logic cells, the router's Fmax, and images/s at that clock.
    Refused before the placer runs: too many pins or cells for the device.  The tools run in a
    scratch folder; their outputs enter DIR together at the end (on failure, only the logs)."""
    if device not in ICE40:
        raise ValueError(f"--device must be one of {', '.join(ICE40)}, got {device!r}")
    if isinstance(freq, bool) or not isinstance(freq, (int, float)) or not freq > 0:
        raise ValueError(f"the target clock must be > 0 MHz, got {freq!r}")
    d = Path(design_dir)
    side_path = d / f"{TOP}.json"
    if not (d / f"{TOP}.v").is_file() or not side_path.is_file():
        raise FileNotFoundError(f"{d} is not a Verilog export ({TOP}.v and {TOP}.json are needed; "
                                "create one with `difflogic export --target verilog --axis W`)")
    side = json.loads(side_path.read_text())
    package = package or ICE40[device]["package"]
    tools = ice40_tools()
    check_fit_before_synthesis(side, device)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=".difflogic-ice40-", dir=d) as tmp:
        work = Path(tmp)
        shutil.copyfile(d / f"{TOP}.v", work / f"{TOP}.v")
        try:
            cells = _synth_and_pack(work, tools, device, package, timeout)
            _check_packed(cells, device)
            routed = _route(work, tools, device, package, freq, seed, timeout, cells)
        except BaseException:
            logs = {p.name: p.read_bytes() for p in work.glob("*.log")}
            if logs:
                write_files(d, logs)
            raise
        outputs = {n: (work / n).read_bytes() for n in ICE40_OUTPUTS if (work / n).is_file()}
        report = _pnr_report(d, side, device, package, cells, routed, time.perf_counter() - t0,
                             tools)
        outputs["pnr_ice40_report.json"] = json.dumps(report, indent=2) + "\n"
        write_files(d, outputs)
    return report


def _pnr_report(d: Path, side: dict, device: str, package: str, cells: dict, routed: dict,
                seconds: float, tools: dict) -> dict:
    cycles = side.get("cycles_per_image")
    fmax = routed["fmax_mhz"]
    lut6 = None
    if (d / "synth_report.json").is_file():
        lut6 = json.loads((d / "synth_report.json").read_text()).get("luts")
    version = subprocess.run([tools["nextpnr-ice40"], "--version"], capture_output=True,
                             text=True)
    return {
        "design": str(d), "device": device, "package": package, "lut4": cells["lut4"],
        "ffs": cells["ffs"], "carry": cells["carry"], "bram": cells["bram"],
        "logic_cells": routed["utilization"].get("ICESTORM_LC", (None, None))[0],
        "logic_cells_available": ICE40[device]["lcs"], "io": port_bits(side),
        "fmax_mhz": fmax, "clocks": routed["clocks"], "target_mhz": routed["target_mhz"],
        "icetime_mhz": routed["icetime_mhz"], "cycles_per_image": cycles,
        "images_per_s": (fmax * 1e6 / cycles) if fmax and cycles else None,
        "latency_cycles": side.get("latency_cycles"), "gates": side.get("gates"),
        "lut6_estimate": lut6, "seconds": round(seconds, 1), "bitstream": str(d / "ice40.bin"),
        "nextpnr": (version.stdout + version.stderr).strip().splitlines()[0],
        "cell_types": cells["cell_types"],
    }


def format_pnr_report(r: dict) -> str:
    lc, lca = r["logic_cells"], r["logic_cells_available"]
    lines = [f"design:        {r['design']}",
             f"device:        iCE40 {r['device'].upper()} ({r['package']}), placed and routed "
             f"by {r['nextpnr']}",
             f"logic cells:   {lc:,} of {lca:,} ({100 * lc / lca:.0f}%)",
             f"LUT4:          {r['lut4']:,}  (measured: yosys synth_ice40)",
             f"flip-flops:    {r['ffs']:,}",
             f"carry cells:   {r['carry']:,}",
             f"block RAMs:    {r['bram']}",
             f"I/O pins:      {r['io']}"]
    if r.get("lut6_estimate") is not None:
        lines.append(f"LUT6:          {r['lut6_estimate']:,}  (mapping estimate of `difflogic synth`)")
    if r["fmax_mhz"] is not None:
        lines.append(f"Fmax:          {r['fmax_mhz']:.1f} MHz (nextpnr's timing analysis after "
                     f"routing, target {r['target_mhz']:g} MHz; icetime: "
                     f"{r['icetime_mhz'] if r['icetime_mhz'] is not None else '-'} MHz)")
    else:
        lines.append("Fmax:          - (no clock: a combinational design)")
    if r.get("images_per_s"):
        lines.append(f"throughput:    {r['images_per_s']:,.0f} images/s at Fmax "
                     f"({r['cycles_per_image']:,} cycles per image)")
    lines += [f"time:          {r['seconds']:.1f} s", f"bitstream:     {r['bitstream']}"]
    return "\n".join(lines)
