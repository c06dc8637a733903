"""The back-end layer: the registry and its command-line options, the one compile entry, and
the crash-safe file writer every export goes through."""
import json
import os

import numpy as np
import pytest
import torch

import difflogic as dl
from difflogic import cli
from difflogic.backends import base, get_backend
from difflogic.checkpoint import save_checkpoint
from difflogic.compiler import compile, harden, optimize, simulate
from difflogic.files import write_files
from conftest import disk_full_at, random_input, random_model


# ----------------------------------------------------------------------------- registry
def test_builtin_targets_and_unknown_target_error():
    assert base.backend_names()[:3] == ("c", "verilog", "cuda-packed")
    for name in base.backend_names():
        assert get_backend(name).name == name and get_backend(name).help
    with pytest.raises(ValueError) as ei:
        get_backend("vhdl")
    msg = str(ei.value)
    assert msg == "unknown target 'vhdl'; available targets: " + ", ".join(base.backend_names())
    assert "\n" not in msg


class _Recorder(base.Backend):
    """A back end that writes the counts of the reference simulator: shows that a back end
    registered by name is a --target of export and verify, with its own options."""

    name = "recorder"
    help = "test back end"
    cli_options = (base.Option("--tag", "tag", ("export",), {"metavar": "T", "help": "a tag"}),
                   base.Option("--flip", "flip", ("verify",), {"action": "store_true",
                                                               "help": "corrupt one count"}))

    class _Runner(base.Runner):
        def __init__(self, net, flip):
            self.net, self.flip = net, flip

        def counts(self, bits, threads=None):
            c = simulate(self.net, bits)
            if self.flip:
                c[0, 0] += 1
            return c

    def emit(self, netlist, out_dir, *, reference=None, tag="none"):
        x = np.zeros((1, *netlist.encoder.in_shape), np.uint8)
        text = json.dumps({"tag": tag, "reference": reference(x).tolist()})
        files = write_files(out_dir, {"recorded.json": text})
        return {"files": {k: str(v) for k, v in files.items()}, "info": {"tag": tag},
                "summary": f"recorded with tag {tag}"}

    def load(self, netlist, flip=False):
        return self._Runner(netlist, flip)


@pytest.fixture
def recorder():
    backend = base.register(_Recorder())
    yield backend
    base.unregister("recorder")
    assert "recorder" not in base.backend_names()


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    torch.manual_seed(1)
    cfg = {"name": "registry-tiny", "input_shape": [1, 6, 6], "num_classes": 2, "init": "gaussian",
           "layers": [{"type": "thresholds", "num": 2},
                      {"type": "conv", "out_channels": 4, "kernel_size": 3, "depth": 2,
                       "padding": 1, "or_pool": 2},
                      {"type": "flatten"}, {"type": "dense", "out_features": 20},
                      {"type": "group_sum", "k": 2, "tau": 1.0}]}
    return save_checkpoint(tmp_path_factory.mktemp("run") / "model.pt", dl.LogicNet(cfg))


def _run(capsys, *argv):
    rc = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_a_registered_backend_is_a_target_of_export_and_verify(recorder, ckpt, tmp_path, capsys):
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert "recorder" in sub.choices["export"].format_help()
    assert "--tag T" in sub.choices["export"].format_help()
    assert "--flip" in sub.choices["verify"].format_help()
    assert "--tag" not in sub.choices["verify"].format_help()
    rc, out, _ = _run(capsys, "export", ckpt, "--target", "recorder", "--tag", "x7", "--out", tmp_path / "r")
    assert rc == 0 and "recorded with tag x7" in out
    rec = json.loads((tmp_path / "r" / "recorded.json").read_text())
    assert rec["tag"] == "x7" and len(rec["reference"][0]) == 2   # the hard forward's counts
    rc, out, _ = _run(capsys, "verify", ckpt, "--target", "recorder", "--samples", "9")
    assert rc == 0 and "== recorder  (bit-identical" in out
    rc, out, _ = _run(capsys, "verify", ckpt, "--target", "recorder", "--samples", "9", "--flip")
    assert rc == 1 and "MISMATCH torch vs target at sample 0" in out


def test_options_of_another_target_are_rejected_generically(recorder, ckpt, tmp_path, capsys):
    for argv, msg in (
            (["export", ckpt, "--out", tmp_path / "c", "--tag", "a"],
             "--tag only applies to --target recorder, not --target c"),
            (["export", ckpt, "--target", "recorder", "--out", tmp_path / "c", "--prefix", "p",
              "--scores"], "--prefix only applies to --target c; --scores only applies to "
                           "--target verilog, not --target recorder"),
            (["verify", ckpt, "--flip", "--pipeline", "2"],
             "--pipeline only applies to --target verilog; --flip only applies to --target "
             "recorder, not --target c")):
        rc, _, err = _run(capsys, *argv)
        assert rc == 2 and msg in err and err.count("\n") == 1, err
    assert list(tmp_path.iterdir()) == []


def test_register_rejects_bad_backends(recorder):
    with pytest.raises(ValueError, match="already registered"):
        base.register(_Recorder())
    with pytest.raises(TypeError, match="Backend instance"):
        base.register(object())
    bad = _Recorder()
    bad.name = "no spaces"
    with pytest.raises(ValueError, match="letters, digits"):
        base.register(bad)
    with pytest.raises(ValueError, match="unknown target 'gone'"):
        base.unregister("gone")


def test_verify_refuses_a_target_that_cannot_run_here(ckpt, capsys, monkeypatch):
    from difflogic import kernels
    monkeypatch.setattr(kernels, "cuda_unavailable_reason", lambda: "no CUDA device (test)")
    rc, _, err = _run(capsys, "verify", ckpt, "--target", "cuda-packed", "--samples", "4")
    assert rc == 1 and "--target cuda-packed cannot run here: no CUDA device (test)" in err


# ----------------------------------------------------------------------------- compile
def test_compile_is_harden_then_optimize():
    model = random_model(4)
    x = random_input(model, 40, 4)
    hard = compile(model, optimize=False)
    ref = harden(model)
    assert [type(op) for op in hard.ops] == [type(op) for op in ref.ops]
    for a, b in zip(hard.ops, ref.ops):
        for field in ("leaves", "op", "a", "b", "outputs"):
            assert np.array_equal(getattr(a, field, 0), getattr(b, field, 0)), field
    opt = compile(model)
    assert opt.gate_counts() == optimize(ref).gate_counts()
    assert compile(hard).gate_counts() == opt.gate_counts()     # a netlist is only optimized
    assert compile(hard, optimize=False) is hard
    one = compile(model, passes=["const_fold"])
    assert one.meta["optimize"]["passes"] == ["const_fold"]
    bits = dl.compiler.encode_input(hard, x)
    assert np.array_equal(simulate(opt, bits), simulate(hard, bits))
    with pytest.raises(ValueError, match="passes= only applies with optimize=True"):
        compile(model, optimize=False, passes=["dce"])
    with pytest.raises(ValueError, match="unknown pass 'nope'"):
        compile(model, passes=["nope"])


def test_commands_compile_through_the_one_entry(ckpt, tmp_path, capsys, monkeypatch):
    """export, verify and info build their netlists with difflogic.compiler.compile."""
    import difflogic.compiler as comp
    calls = []
    real = comp.compile

    def spy(model, optimize=True, passes=None, input_shape=None):
        calls.append(optimize)
        return real(model, optimize, passes, input_shape)
    monkeypatch.setattr(comp, "compile", spy)
    assert _run(capsys, "export", ckpt, "--out", tmp_path / "c", "--no-optimize")[0] == 0
    assert calls == [False]
    assert _run(capsys, "verify", ckpt, "--samples", "5")[0] == 0
    assert calls[1:] == [False, True]
    assert _run(capsys, "info", ckpt)[0] == 0
    assert calls[3:] == [False, True]


# ----------------------------------------------------------------------------- write_files
def test_write_files_keeps_foreign_files_and_marks_executables(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("user data")
    (out / "a.txt").write_text("old a")
    paths = write_files(out, {"a.txt": "new a", "b.bin": b"\x00\x01", "run.sh": "echo"},
                        executable=("run.sh",))
    assert paths == {n: out / n for n in ("a.txt", "b.bin", "run.sh")}
    assert (out / "mine.txt").read_text() == "user data"
    assert (out / "a.txt").read_text() == "new a" and (out / "b.bin").read_bytes() == b"\x00\x01"
    assert os.access(out / "run.sh", os.X_OK) and not os.access(out / "a.txt", os.X_OK)
    write_files(out, {"a.txt": "newer"}, stale=("b.bin", "a.txt", "gone.txt"))
    assert sorted(p.name for p in out.iterdir()) == ["a.txt", "mine.txt", "run.sh"]
    assert (out / "a.txt").read_text() == "newer"
    with pytest.raises(ValueError, match="plain names"):
        write_files(out, {"../escape.txt": "x"})
    with pytest.raises(ValueError, match="plain names"):
        write_files(out, {"ok.txt": "x"}, stale=("sub/x",))


def test_write_files_failure_restores_the_previous_set(tmp_path, monkeypatch):
    """A failure part-way (the disk fills up at the third rename) leaves every file as it was:
    replaced ones restored, new ones gone, no temp folder, and the user's files untouched."""
    out = tmp_path / "out"
    out.mkdir()
    for name, text in (("one.c", "old one"), ("two.c", "old two"), ("keep", "user")):
        (out / name).write_text(text)
    real = os.replace
    disk_full_at(monkeypatch, 3)
    with pytest.raises(OSError, match=r"failed writing into .*No space left on device"):
        write_files(out, {"one.c": "new one", "new.h": "new", "two.c": "new two"})
    monkeypatch.setattr(os, "replace", real)
    assert sorted(p.name for p in out.iterdir()) == ["keep", "one.c", "two.c"]
    assert [(out / n).read_text() for n in ("one.c", "two.c", "keep")] == ["old one", "old two", "user"]


def test_write_files_interrupted_while_writing_leaves_nothing(tmp_path, monkeypatch):
    """Ctrl-C while the second file is being written: no file, no temp or new folder stays."""
    real, synced = os.fsync, []

    def interrupted(fd):
        synced.append(fd)
        if len(synced) == 2:
            raise KeyboardInterrupt
        return real(fd)
    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_files(tmp_path / "new" / "dir", {"a": "1", "b": "2"})
    assert len(synced) == 2 and list(tmp_path.iterdir()) == []
