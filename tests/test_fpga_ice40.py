"""``difflogic synth DIR --pnr ice40``: yosys synth_ice40, nextpnr-ice40 and icestorm on a small
streamed design; what does not fit is refused, with by how much, before the placer runs.

The design is the streamed form (``--fold``) of a small conv net with 8-bit beats: about a
thousand logic cells, placed and routed in well under a minute.  Tools missing: skipped, or
failed under CI=true.
"""
from __future__ import annotations

import json
import os
import re
import shutil

import pytest
import torch

from difflogic import cli
from difflogic import synth as S
from difflogic.backends import verilog as V
from difflogic.compiler import compile
from difflogic.models import LogicNet
from conftest import need, two_input_gates

CONFIG = {"name": "ice40-test", "input_shape": [1, 10, 10], "num_classes": 4, "init": "gaussian",
          "layers": [{"type": "thresholds", "num": 2},
                     {"type": "conv", "out_channels": 6, "kernel_size": 3, "depth": 2,
                      "padding": 1, "or_pool": 2},
                     {"type": "flatten"}, {"type": "dense", "out_features": 60},
                     {"type": "group_sum", "k": 4, "tau": 1.0}]}


@pytest.fixture(scope="module")
def netlist():
    torch.manual_seed(2)   # every gate a gate of both inputs: nothing hardens to wires
    return compile(two_input_gates(LogicNet(CONFIG), 2))


def test_pnr_ice40_measures_and_writes_the_bitstream(netlist, tmp_path, capsys):
    need("yosys", "nextpnr-ice40", "icepack", "icetime")
    d = tmp_path / "f"
    side = V.export(netlist, d, fold="auto")
    assert cli.main(["synth", str(d), "--pnr", "ice40", "--device", "hx8k", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep == json.loads((d / "pnr_ice40_report.json").read_text())
    assert rep["device"] == "hx8k" and rep["package"] == "ct256"
    assert rep["lut4"] > 50 and rep["ffs"] > 100 and rep["bram"] == 0
    assert max(rep["lut4"], rep["ffs"]) <= rep["logic_cells"] <= rep["lut4"] + rep["ffs"] + rep["carry"]
    assert rep["logic_cells"] < 7680 and rep["io"] == 8 + 3 + 8 + 4 + 2
    assert 10 < rep["fmax_mhz"] < 500 and rep["icetime_mhz"] > 0
    assert rep["cycles_per_image"] == side["cycles_per_image"]
    assert rep["images_per_s"] == pytest.approx(rep["fmax_mhz"] * 1e6 / side["cycles_per_image"])
    head = (d / "ice40.bin").read_bytes()[:64]
    assert b"\x7e\xaa\x99\x7e" in head, "no iCE40 bitstream sync word"
    assert not [p for p in d.iterdir() if p.name.startswith(".")], "scratch folder left behind"
    assert cli.main(["synth", str(d), "--pnr", "ice40"]) == 0
    text = capsys.readouterr().out
    assert "Fmax:" in text and "nextpnr's timing analysis after routing" in text
    assert f"LUT4:          {rep['lut4']:,}" in text


def test_pnr_refuses_what_does_not_fit_in_one_line_before_routing(netlist, tmp_path, capsys, monkeypatch):
    need("yosys", "nextpnr-ice40", "icepack", "icetime")
    plain = tmp_path / "plain"
    V.export(netlist, plain)   # x[200] and class_idx[2] as ports
    assert cli.main(["synth", str(plain), "--pnr", "ice40", "--device", "up5k"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("the design needs 202 I/O pins, the up5k in sg48 has 39: 163 too many; "
                        "export it with --axis W (an AXI4-Stream top)"), err
    wide = tmp_path / "wide"
    V.export(netlist, wide, axis=16, scores=True)   # 16 + 3 + 24 + 4 + 2 pins
    assert cli.main(["synth", str(wide), "--pnr", "ice40", "--device", "up5k"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("the design needs 49 I/O pins, the up5k in sg48 has 39: 10 too many; "
                        "export it with a narrower --axis W or no --scores"), err
    d = tmp_path / "f"
    V.export(netlist, d, fold="auto")
    monkeypatch.setitem(S.ICE40, "up5k", dict(S.ICE40["up5k"], lcs=300))   # a smaller part
    assert cli.main(["synth", str(d), "--pnr", "ice40", "--device", "up5k"]) == 2
    err = capsys.readouterr().err.strip()
    assert "the design does not fit the up5k: it needs" in err and "logic cells" in err
    assert "the up5k has 300:" in err and "nothing was placed" in err and len(err.splitlines()) == 1
    assert not (d / "ice40.bin").exists() and not (d / "pnr_ice40_report.json").exists()
    assert (d / "ice40_yosys.log").is_file()   # the logs of the tools that ran are kept
    monkeypatch.undo()
    fake = tmp_path / "bin" / "nextpnr-ice40"   # packs for real, then fails as a full device does
    fake.parent.mkdir()
    fake.write_text(f"#!/bin/sh\ncase \"$*\" in *--pack-only*) exec {shutil.which('nextpnr-ice40')} "
                    "\"$@\";; esac\necho 'ERROR: Unable to find legal placement for all cells, "
                    "design is probably at utilisation limit.'\nexit 255\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")
    assert cli.main(["synth", str(d), "--pnr", "ice40", "--device", "hx8k"]) == 2
    err = capsys.readouterr().err.strip()
    assert re.search(r"nextpnr-ice40 could not place the design on the hx8k: it uses [\d,]+ of "
                     r"7,680 logic cells \(\d+%\), more than its placer can legalize; use a "
                     r"smaller network; nothing was routed$", err), err
    assert not (d / "ice40.bin").exists() and (d / "ice40_pnr.log").is_file()


def test_pnr_refuses_a_design_with_too_many_gates_before_yosys(tmp_path, capsys, monkeypatch):
    side = {"top": V.TOP, "interface": "axi4-stream", "axis_width": 8, "out_width": 8,
            "gates": 30_000}
    d = tmp_path / "big"
    d.mkdir()
    (d / f"{V.TOP}.v").write_text("module difflogic_net; endmodule\n")
    (d / f"{V.TOP}.json").write_text(json.dumps(side))
    monkeypatch.setattr(S, "ice40_tools", lambda: {})   # no tool may run
    assert cli.main(["synth", str(d), "--pnr", "ice40", "--device", "up5k"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("the design does not fit the up5k: 30,000 gates need at least 10,000 "
                        "LUT4s (3 gates per LUT4 at best), the up5k has 5,280 logic cells "
                        "(4,720 too many); try --fold, or a smaller network"), err
    (d / f"{V.TOP}.json").write_text(json.dumps(dict(side, form="streamed")))
    assert cli.main(["synth", str(d), "--pnr", "ice40", "--device", "up5k"]) == 2
    assert capsys.readouterr().err.strip().endswith(
        "try a smaller network (the streamed form keeps the dense layers unrolled)")


def test_missing_pnr_tools_name_the_debian_package(tmp_path, capsys, monkeypatch):
    d = tmp_path / "d"
    d.mkdir()
    (d / f"{V.TOP}.v").write_text("module difflogic_net; endmodule\n")
    (d / f"{V.TOP}.json").write_text("{}")
    real = shutil.which
    for tool, package in (("nextpnr-ice40", "nextpnr-ice40"), ("icepack", "fpga-icestorm")):
        monkeypatch.setattr(shutil, "which", lambda n, t=tool: None if n == t else real(n))
        assert cli.main(["synth", str(d), "--pnr", "ice40"]) == 1
        assert f"apt-get install {package}" in capsys.readouterr().err
    monkeypatch.setattr(shutil, "which", real)
    assert cli.main(["synth", str(d), "--device", "hx8k"]) == 2
    assert "--device only applies with --pnr ice40" in capsys.readouterr().err
