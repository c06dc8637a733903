"""The ``difflogic`` command line: parsing, dispatch, one-line errors with exit status 2."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from difflogic import cli

def run_cli(capsys, *argv):
    rc = cli.main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_parser_has_every_subcommand():
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(cli.COMMANDS) <= set(sub.choices)
    args = parser.parse_args(["train", "--dataset", "cifar10", "--model", "cifar10-s", "--steps",
                              "10", "--batch-size", "4", "--lr", "0.1", "--weight-decay", "0",
                              "--seed", "3", "--eval-every", "5", "--augment", "--threads", "2",
                              "--out", "r"])
    assert (args.dataset, args.model, args.steps, args.batch_size, args.lr, args.weight_decay,
            args.seed, args.eval_every, args.augment, args.threads, args.out) == \
        ("cifar10", "cifar10-s", 10, 4, 0.1, 0.0, 3, 5, True, 2, "r")
    assert args.func.__module__ == "difflogic.commands.train"
    for argv in (["eval", "x.pt"], ["info", "x.pt"]):
        assert callable(parser.parse_args(argv).func)
    # --debug works before and after the subcommand
    assert parser.parse_args(["--debug", "info", "x.pt"]).debug
    assert parser.parse_args(["info", "x.pt", "--debug"]).debug
    assert not parser.parse_args(["info", "x.pt"]).debug


def test_no_command_prints_help_and_exits_2(capsys):
    rc, _, err = run_cli(capsys)
    assert rc == 2 and "usage" in err


@pytest.mark.parametrize("argv", [["train", "--epochs", "1", "--steps", "3"],
                                  ["train", "--dataset", "svhn"],
                                  ["train", "--steps", "many"]])
def test_argparse_errors_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    assert e.value.code == 2


def test_missing_required_options_one_line(capsys):
    rc, _, err = run_cli(capsys, "train", "--dataset", "mnist")
    assert rc == 2
    assert err.count("\n") == 1 and "--model" in err and "--out" in err
    assert "Traceback" not in err


def test_missing_dataset_message(tmp_path, capsys):
    rc, _, err = run_cli(capsys, "train", "--dataset", "fashion-mnist", "--data-dir",
                         str(tmp_path / "nowhere"), "--model", "mnist-tiny", "--steps", "1",
                         "--out", str(tmp_path / "run"))
    assert rc == 2
    assert err.startswith("difflogic train: error: Fashion-MNIST: dataset not found")
    assert "nowhere" in err and "Traceback" not in err and err.count("\n") == 1


def test_unknown_model_and_bad_values(tmp_path, capsys):
    rc, _, err = run_cli(capsys, "train", "--dataset", "mnist", "--model", "no-such-net",
                         "--out", str(tmp_path / "r"))
    assert rc == 2 and "unknown model 'no-such-net'" in err and "mnist-tiny" in err
    rc, _, err = run_cli(capsys, "train", "--dataset", "mnist", "--model", "mnist-tiny",
                         "--steps", "0", "--out", str(tmp_path / "r"))
    assert rc == 2 and "--steps" in err
    rc, _, err = run_cli(capsys, "train", "--dataset", "mnist", "--model", "mnist-tiny",
                         "--lr", "-1", "--out", str(tmp_path / "r"))
    assert rc == 2 and "--lr" in err


def test_corrupt_checkpoint_errors(tmp_path, capsys):
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"\x00garbage" * 100)
    for cmd in ("eval", "info"):
        rc, _, err = run_cli(capsys, cmd, str(bad), "--dataset", "mnist") if cmd == "eval" \
            else run_cli(capsys, cmd, str(bad))
        assert rc == 2, err
        assert str(bad) in err and "Traceback" not in err and err.count("\n") == 1
    rc, _, err = run_cli(capsys, "eval", str(tmp_path / "missing.pt"))
    assert rc == 2 and "no such checkpoint" in err


def test_debug_shows_the_traceback(tmp_path):
    bad = tmp_path / "model.pt"
    torch.save(torch.zeros(3), bad)
    from difflogic.checkpoint import CheckpointError
    with pytest.raises(CheckpointError):
        cli.main(["--debug", "info", str(bad)])


def test_info_named_model_and_model_list(capsys):
    rc, out, _ = run_cli(capsys, "info", "--models")
    assert rc == 0 and "cifar10-s" in out and "mnist-tiny" in out
    rc, out, _ = run_cli(capsys, "info", "--model", "mnist-tiny", "--no-compile")
    assert rc == 0 and "LogicConv2d" in out and "total training gates: 183,088" in out


def test_broken_command_module_does_not_break_the_others(monkeypatch, capsys):
    import importlib
    real = importlib.import_module

    def fake(name, *a, **k):
        if name == "difflogic.commands.synth":
            raise ImportError("yosys bindings missing (simulated)")
        return real(name, *a, **k)

    monkeypatch.setattr(importlib, "import_module", fake)
    rc, out, _ = run_cli(capsys, "info", "--models")
    assert rc == 0 and "cifar10-s" in out
    rc, _, err = run_cli(capsys, "synth", "anything")
    assert rc == 1 and "synth" in err and "simulated" in err


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.startswith("difflogic ")


def test_python_dash_m_entry_point(tmp_path):
    import os

    import difflogic
    env = dict(os.environ, PYTHONPATH=str(Path(difflogic.__file__).resolve().parents[1]))
    out = subprocess.run([sys.executable, "-m", "difflogic", "eval", "/nonexistent/model.pt"],
                         capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.startswith("difflogic eval: error: /nonexistent/model.pt: no such checkpoint")
