"""Golden exports: a fixed checkpoint exports to exactly the committed bytes.

``tests/golden/tiny_conv.pt`` is a fixed trained checkpoint; ``tests/golden/export_hashes.json``
holds the sha256 of every file of three exports of it (C optimized, C ``--no-optimize``,
Verilog ``--pipeline 2 --scores --vectors 32``), made before the back ends were redesigned
around one interface and one file writer.  Any change to a generated C source, RTL or test
vector file fails here: such a change must be deliberate and explained below.

Deliberate changes since the redesign (``difflogic_net.v``, ``synth.ys`` and the vectors are
byte-identical):

* ``run_sim.sh``: picks the simulator by the design's size when none is given, states gates,
  vectors and an expected time first, reports long steps' elapsed time (Icarus Verilog ran
  silently for over 10 minutes on a ~700k-gate network); builds Verilator without its
  bit-op-tree rewrite, which miscomputed a ~100k-gate export.
* ``tb.v``: prints its progress every tenth of the vectors (with 100 or more).
* ``difflogic_net.json``: gained ``"files"``, the export's own manifest, so that a re-export
  into the folder removes only its own stale files and never a file it did not write.
* ``difflogic_net.json``: its ``meta.optimize`` names the two passes added to the default
  pipeline (``output_polarity``, ``push_inverters``); ``difflogic_net.v`` is unchanged.  The
  passes' run times stay out of the export (the same model exports to the same bytes).
* The C files: -O1 and 256-bit words chosen by measurement, the input forms' packers, and the
  0/1-byte and packed-bit packers skip the 64-feature chunks the first layer never reads
  (``dl_chunk_read[]``), all bit-exact (issue 48).
"""
import hashlib
import json
import shutil
from pathlib import Path

import pytest

from difflogic import cli
from conftest import need

GOLDEN = Path(__file__).resolve().parent / "golden"
CKPT = GOLDEN / "tiny_conv.pt"
EXPORTS = {"c": ["--target", "c"],
           "verilog": ["--target", "verilog", "--pipeline", "2", "--scores", "--vectors", "32"],
           "c_noopt": ["--target", "c", "--no-optimize"]}

pytestmark = pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None,
                                reason="no C compiler")


def _hashes(folder: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("golden")
    for name, args in EXPORTS.items():
        assert cli.main(["export", str(CKPT), *args, "--out", str(root / name)]) == 0, name
    return root


@pytest.mark.parametrize("name", list(EXPORTS))
def test_exports_are_byte_identical_to_the_golden_ones(exported, name):
    want = json.loads((GOLDEN / "export_hashes.json").read_text())[name]
    got = _hashes(exported / name)
    assert sorted(got) == sorted(want), name
    changed = [f for f in want if got[f] != want[f]]
    assert not changed, f"{name}: {', '.join(changed)} differ from the golden export"


def test_golden_export_is_bit_exact_against_the_hard_forward(exported, capsys):
    """The compiled C on random and encoded inputs == the PyTorch hard forward (verify), and
    the exported Verilog bench passes against the model's own golden vectors."""
    capsys.readouterr()
    assert cli.main(["verify", str(CKPT), "--target", "c", "--samples", "300"]) == 0
    out = capsys.readouterr().out
    assert "torch == ir == ir-optimized == c  (bit-identical" in out and out.strip().endswith("OK")
    need("iverilog", "vvp")
    import subprocess
    r = subprocess.run(["bash", str(exported / "verilog" / "run_sim.sh"), "iverilog"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "PASS: 32 vectors" in r.stdout, r.stdout + r.stderr
