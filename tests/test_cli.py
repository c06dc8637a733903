"""The ``difflogic`` command line: parsing, dispatch, one-line errors with exit status 2."""
import os
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


def exit_status(capsys, *argv):
    """(status, stderr) of the CLI, whether argparse exits (SystemExit) or main returns."""
    try:
        rc = cli.main([str(a) for a in argv])
    except SystemExit as e:
        rc = e.code
    return rc, capsys.readouterr().err


@pytest.mark.parametrize("argv, named", [(["--epochs", "1", "--steps", "3"], "--steps"),
                                         (["--dataset", "svhn"], "svhn"),
                                         (["--steps", "many"], "many")])
def test_bad_option_values_exit_2(argv, named, tmp_path, capsys):
    rc, err = exit_status(capsys, "train", "--dataset", "mnist", "--model", "mnist-tiny",
                          "--out", tmp_path / "r", *argv)
    assert rc == 2 and named in err and "Traceback" not in err


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


# ----------------------------------------------------------------------------- start-up cost
def _modules_after(tmp_path, code):
    """The torch / difflogic modules a fresh interpreter holds after running ``code``."""
    import difflogic
    env = dict(os.environ, PYTHONPATH=str(Path(difflogic.__file__).resolve().parents[1]))
    probe = code + ("\nimport sys\nprint('MODULES', *sorted(m for m in sys.modules "
                    "if m.split('.')[0] in ('torch', 'difflogic')))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         cwd=tmp_path, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.rsplit("MODULES", 1)[1].split()


HELP = ("from difflogic.cli import main\ntry:\n    main({argv!r})\nexcept SystemExit as e:\n"
        "    assert e.code == 0, e.code\n")


def test_help_imports_neither_torch_nor_the_commands(tmp_path):
    mods = _modules_after(tmp_path, HELP.format(argv=["--help"]))
    assert "torch" not in mods and not [m for m in mods if m.startswith("difflogic.commands.")]
    mods = _modules_after(tmp_path, HELP.format(argv=["info", "--help"]))
    assert [m for m in mods if m.startswith("difflogic.commands.")] == ["difflogic.commands.info"]


def test_top_level_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0
    for name, (_, summary) in cli.COMMANDS.items():
        assert name in out and summary.split()[0] in out


def test_import_difflogic_is_lazy(tmp_path):
    mods = _modules_after(tmp_path, "import difflogic\nassert difflogic.__version__")
    assert mods == ["difflogic"]
    import difflogic
    assert set(difflogic.__all__) <= set(dir(difflogic))
    from difflogic import LogicDense, gates
    assert LogicDense is difflogic.layers.LogicDense and gates is difflogic.gates
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        difflogic.no_such_name


# ----------------------------------------------------------------------------- errors -> exit status
ERRORS = {"value": ValueError("bad value"), "os": FileNotFoundError(2, "No such file", "/x/y"),
          "runtime": RuntimeError("no compiler"), "import": ImportError("no cupy"),
          "interrupt": KeyboardInterrupt()}


@pytest.fixture
def fake_command(monkeypatch):
    """Adds a command `boom KIND` (one entry in cli.COMMANDS) that raises ERRORS[KIND]."""
    import types
    module = types.ModuleType("fake_boom_command")

    def run(args):
        raise ERRORS[args.kind]

    def add_parser(sub):
        sub.add_parser("boom").set_defaults(func=run)
        sub.choices["boom"].add_argument("kind", choices=ERRORS)

    module.add_parser = add_parser
    monkeypatch.setitem(sys.modules, "fake_boom_command", module)
    monkeypatch.setitem(cli.COMMANDS, "boom", ("fake_boom_command", "raise an exception"))


@pytest.mark.parametrize("kind, status, text", [
    ("value", 2, "difflogic boom: error: bad value\n"),
    ("os", 2, "difflogic boom: error: [Errno 2] No such file: '/x/y'\n"),
    ("runtime", 1, "difflogic boom: error: no compiler (run with --debug"),
    ("import", 1, "difflogic boom: error: no cupy (run with --debug"),
    ("interrupt", 130, "difflogic boom: interrupted\n"),
])
def test_exceptions_map_to_one_line_and_exit_status(fake_command, capsys, kind, status, text):
    rc, _, err = run_cli(capsys, "boom", kind)
    assert rc == status and err.startswith(text) and err.count("\n") == 1
    if status != 130:
        with pytest.raises(type(ERRORS[kind])):
            cli.main(["boom", kind, "--debug"])


def test_command_failing_after_registering_is_listed_once(monkeypatch, capsys):
    import types
    module = types.ModuleType("fake_half_command")

    def add_parser(sub):
        sub.add_parser("half")
        raise ValueError("broken after registering (simulated)")

    module.add_parser = add_parser
    monkeypatch.setitem(sys.modules, "fake_half_command", module)
    monkeypatch.setitem(cli.COMMANDS, "half", ("fake_half_command", "a half-broken command"))
    rc, _, err = run_cli(capsys, "half", "--help")
    assert rc == 1 and "not available" in err and "simulated" in err
    cli.build_parser().print_help()
    assert capsys.readouterr().out.count("a half-broken command") == 1


# ----------------------------------------------------------------------------- tests/run.sh
RUN_SH = Path(__file__).with_name("run.sh")


def test_run_sh_runs_only_the_given_file():
    out = subprocess.run(["bash", str(RUN_SH), "tests/test_platform.py", "--collect-only"],
                         capture_output=True, text=True, cwd=RUN_SH.parents[1], timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    ids = [line for line in out.stdout.splitlines() if "::" in line]
    assert ids and all(i.split("::")[0].endswith("test_platform.py") for i in ids), ids


def test_run_sh_rejects_a_missing_file():
    out = subprocess.run(["bash", str(RUN_SH), "test_no_such_file.py"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert "test_no_such_file.py" in out.stderr


# ----------------------------------------------------------------------------- benches/main_job.sh
def test_main_job_stops_before_training_without_the_dataset(tmp_path):
    import difflogic
    env = dict(os.environ, DATA_DIR=str(tmp_path / "nowhere"),
               DIFFLOGIC=f"{sys.executable} -m difflogic",
               PYTHONPATH=str(Path(difflogic.__file__).resolve().parents[1]))
    out = subprocess.run(["bash", str(RUN_SH.parents[1] / "benches" / "main_job.sh"),
                          str(tmp_path / "run")], capture_output=True, text=True, env=env,
                         cwd=tmp_path, timeout=300)
    assert out.returncode == 2, out.stdout + out.stderr
    assert f"Fashion-MNIST not found in DATA_DIR={tmp_path / 'nowhere'}" in out.stderr
    assert "sudo apt-get install dataset-fashion-mnist" in out.stderr
    assert "=== train" not in out.stdout and not (tmp_path / "run").exists()
