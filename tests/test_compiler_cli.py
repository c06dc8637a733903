"""``difflogic export`` / ``difflogic verify`` end to end on a saved checkpoint."""
import os
import shutil

import pytest
import torch

import difflogic as dl
from difflogic import cli
from difflogic.checkpoint import save_checkpoint

pytestmark = pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None,
                                reason="no C compiler")


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    torch.manual_seed(0)
    cfg = {"name": "tiny", "input_shape": [1, 8, 8], "num_classes": 3, "init": "gaussian",
           "layers": [{"type": "thresholds", "num": 2},
                      {"type": "conv", "out_channels": 6, "kernel_size": 3, "depth": 2, "padding": 1,
                       "or_pool": 2},
                      {"type": "flatten"}, {"type": "dense", "out_features": 30},
                      {"type": "group_sum", "k": 3, "tau": 2.0}]}
    path = tmp_path_factory.mktemp("run") / "model.pt"
    save_checkpoint(path, dl.LogicNet(cfg))
    return path


def test_export_c(ckpt, tmp_path, capsys):
    out = tmp_path / "c"
    assert cli.main(["export", str(ckpt), "--target", "c", "--out", str(out)]) == 0
    assert sorted(os.listdir(out)) == ["Makefile", "bench_main.c", "net.c", "net.h"]
    assert "before" in capsys.readouterr().out


def test_verify_c_passes(ckpt, capsys):
    assert cli.main(["verify", str(ckpt), "--target", "c", "--samples", "150"]) == 0
    out = capsys.readouterr().out
    assert "bit-identical" in out and out.strip().endswith("OK")


def test_verify_detects_a_broken_backend(ckpt, capsys, monkeypatch):
    from difflogic.backends import c as cbe
    real = cbe.CRunner.counts

    def broken(self, bits, threads=None):
        r = real(self, bits, threads)
        r[5, 1] += 1
        return r
    monkeypatch.setattr(cbe.CRunner, "counts", broken)
    assert cli.main(["verify", str(ckpt), "--samples", "20"]) == 1
    assert "MISMATCH torch vs target at sample 5" in capsys.readouterr().out


def test_export_errors(ckpt, tmp_path, capsys):
    assert cli.main(["export", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "o")]) == 2
    blocker = tmp_path / "f"
    blocker.write_text("")
    assert cli.main(["export", str(ckpt), "--out", str(blocker / "x")]) == 2
    assert "cannot create output directory" in capsys.readouterr().err


def test_export_and_verify_c_in_the_table_form(ckpt, tmp_path, capsys):
    out = tmp_path / "c"
    assert cli.main(["export", str(ckpt), "--target", "c", "--out", str(out), "--table-gates", "0"]) == 0
    assert "Table form: 1 of 1 dense blocks" in (out / "net.c").read_text()
    assert cli.main(["export", str(ckpt), "--target", "c", "--out", str(tmp_path / "s"), "--table-gates",
                     "never"]) == 0
    assert "Table form" not in (tmp_path / "s" / "net.c").read_text()
    capsys.readouterr()
    assert cli.main(["verify", str(ckpt), "--target", "c", "--samples", "150", "--table-gates", "0"]) == 0
    assert capsys.readouterr().out.strip().endswith("OK")
    with pytest.raises(SystemExit):
        cli.main(["export", str(ckpt), "--target", "c", "--out", str(out), "--table-gates", "-3"])
    assert "--table-gates: takes an integer >= 0 or 'never'" in capsys.readouterr().err
