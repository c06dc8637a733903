"""Bad input across the project: every case must end in a clear, typed error (naming the
argument or file and what was expected), never a traceback from deep inside torch, and must
leave no half-written file behind.

Complements the per-module tests (test_layers, test_checkpoint, test_data, test_compiler,
test_c_backend, test_cli), covering the cases those do not."""
import os
import pickle

import numpy as np
import pytest

from conftest import disk_full_at
import torch
from torch import nn

import difflogic as dl
from difflogic import _checks, cli
from difflogic.backends import c as cbe
from difflogic.checkpoint import CheckpointError, _digest, load_model, save_checkpoint
from difflogic.compiler import harden
from difflogic.data import DatasetError, load_dataset, write_fake_idx

DENSE_CFG = {"name": "bad-input-tiny", "input_shape": [8], "num_classes": 2,
             "layers": [{"type": "dense", "out_features": 8},
                        {"type": "group_sum", "k": 2, "tau": 1.0}]}
CONV_CFG = {"name": "bad-input-conv", "input_shape": [1, 6, 6], "num_classes": 2,
            "layers": [{"type": "thresholds", "thresholds": [0.5]},
                       {"type": "conv", "out_channels": 2, "kernel_size": 3, "depth": 2,
                        "padding": 1, "or_pool": 2},
                       {"type": "flatten"}, {"type": "group_sum", "k": 2, "tau": 1.0}]}


# ----------------------------------------------------------------------------- layer arguments
@pytest.mark.parametrize("make, exc, match", [
    (lambda: dl.LogicDense(4, 0), ValueError, r"out_features must be an integer >= 1, got 0"),
    (lambda: dl.LogicDense(4, 2.5), ValueError, r"out_features must be an integer >= 1, got 2.5"),
    (lambda: dl.LogicDense(4, 3, backend="gpu"), ValueError, r"backend must be one of"),
    (lambda: dl.LogicDense(4, 3, residual_logit=float("nan")), ValueError, r"residual_logit must be finite"),
    (lambda: dl.LogicConv2d(2, 2, 3, depth=0), ValueError, r"depth must be an integer >= 1, got 0"),
    (lambda: dl.LogicConv2d(2, 2, 3, depth=6), ValueError, r"depth must be between 1 and 5.*got 6"),
    (lambda: dl.LogicConv2d(2, 2, 3, stride=0), ValueError, r"stride must be an integer >= 1"),
    (lambda: dl.LogicConv2d(2, 2, 3, padding=-1), ValueError, r"padding must be an integer >= 0, got -1"),
    (lambda: dl.LogicConv2d(2, 2, (3, 3, 3)), ValueError, r"kernel_size must be an int or a pair"),
    (lambda: dl.LogicConv2d(2, 2, 3, or_pool=0), ValueError, r"or_pool must be an integer >= 1"),
    (lambda: dl.LogicConv2d(0, 2, 3), ValueError, r"in_channels must be an integer >= 1, got 0"),
    (lambda: dl.OrPool2d(0), ValueError, r"kernel_size must be an integer >= 1, got 0"),
    (lambda: dl.GroupSum(2, tau="x"), TypeError, r"tau must be a number, got 'x'"),
    (lambda: dl.Thresholds([[0.1], [0.2, 0.3]]), TypeError, r"thresholds must be a list of numbers in \[0, 1\)"),
    (lambda: dl.Thresholds("abc"), TypeError, r"thresholds must be a list of numbers.*'abc'"),
    (lambda: dl.Thresholds(None), TypeError, r"thresholds must be a list of numbers.*None"),
    (lambda: dl.Thresholds([-0.1]), ValueError, r"thresholds must be finite and in \[0, 1\)"),
    (lambda: dl.Thresholds([float("inf")]), ValueError, r"thresholds must be finite and in \[0, 1\)"),
    (lambda: dl.Thresholds([0.5], channels=0), ValueError, r"channels must be an integer >= 1, got 0"),
    (lambda: dl.Thresholds.uniform(0), ValueError, r"num_thresholds must be an integer >= 1, got 0"),
    (lambda: dl.LogicLayer(4, 3, device="cpu", connections="x"), ValueError, r"connections must be"),
])
def test_invalid_layer_arguments(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


def test_kernel_larger_than_input_without_padding_in_a_model_config():
    cfg = {"input_shape": [1, 4, 4],
           "layers": [{"type": "conv", "out_channels": 2, "kernel_size": 5}]}
    with pytest.raises(ValueError, match=r"kernel_size=\(5, 5\) with padding=0.*does not fit a 4x4 input"):
        dl.LogicNet(cfg)


# ----------------------------------------------------------------------------- layer inputs
@pytest.mark.parametrize("make, x, exc, match", [
    (lambda: dl.LogicDense(4, 3), [[0.0, 1.0, 0.0, 1.0]], TypeError, r"LogicDense: expected a torch.Tensor input, got list"),
    (lambda: dl.LogicDense(4, 3), torch.tensor([[0.0, float("inf"), 0.0, 1.0]]), ValueError, r"LogicDense: input contains NaN or inf"),
    (lambda: dl.LogicDense(4, 3), torch.ones(2, 4, dtype=torch.int32), TypeError, r"floating-point input.*int32"),
    (lambda: dl.LogicConv2d(2, 2, 3), torch.full((1, 2, 5, 5), float("nan")), ValueError, r"LogicConv2d: input contains NaN"),
    (lambda: dl.LogicConv2d(2, 2, 3), torch.ones(1, 2, 5, 5, dtype=torch.int64), TypeError, r"LogicConv2d: expected a floating-point"),
    (lambda: dl.OrPool2d(2), torch.rand(2, 4, 4), ValueError, r"OrPool2d: expected a 4-D input, got shape \(2, 4, 4\)"),
    (lambda: dl.OrPool2d(5), torch.rand(1, 2, 4, 4), ValueError, r"OrPool2d: kernel_size=5 is larger than the 4x4 input"),
    (lambda: dl.OrPool2d(2), torch.full((1, 1, 4, 4), float("-inf")), ValueError, r"OrPool2d: input contains NaN or inf"),
    (lambda: dl.GroupSum(2), torch.tensor([[float("nan"), 1.0, 1.0, 1.0]]), ValueError, r"GroupSum: input contains NaN or inf"),
    (lambda: dl.GroupSum(3), torch.rand(2, 4), ValueError, r"GroupSum: .*divisible by k=3"),
    (lambda: dl.GroupSum(2), "x", TypeError, r"GroupSum: expected a torch.Tensor"),
    (lambda: dl.Thresholds([0.5], channels=3), torch.rand(2, 2, 4, 4), ValueError, r"Thresholds: expected input size 3 at dim 1"),
    (lambda: dl.Thresholds([0.5]), torch.tensor([[float("nan")]]), ValueError, r"Thresholds: input contains NaN"),
    (lambda: dl.Thresholds([0.5]), torch.ones(2, 1, dtype=torch.int64), TypeError, r"Thresholds: expected a floating-point input, got torch.int64"),
    (lambda: dl.Thresholds([0.5]), torch.ones(2, 1, dtype=torch.uint8), TypeError, r"got torch.uint8; convert images with x.float\(\) / 255"),
])
def test_invalid_layer_inputs(make, x, exc, match):
    with pytest.raises(exc, match=match):
        make()(x)


def test_model_input_shape_is_named():
    torch.manual_seed(0)
    model = dl.LogicNet(CONV_CFG)
    with pytest.raises(ValueError, match=r"bad-input-conv: expected input of shape \(N, 1, 6, 6\), got \(2, 1, 5, 6\)"):
        model(torch.rand(2, 1, 5, 6))
    with pytest.raises(ValueError, match="NaN"):
        model(torch.full((2, 1, 6, 6), float("nan")))


def test_finite_check_runs_on_cpu_and_is_skipped_off_cpu():
    """Checking NaN/inf needs the answer on the host (a device sync on CUDA), so it runs only for
    CPU tensors.  A 'meta' tensor stands in for a device tensor: it has no data, so
    bool(isfinite(x).all()) on it would raise."""
    _checks.check_input(torch.empty(3, 4, device="meta"), "L", rank=2, size=((1, 4),))
    _checks.check_finite(torch.empty(3, 4, device="meta"), "L")
    with pytest.raises(ValueError, match="L: input contains NaN"):
        _checks.check_input(torch.full((3, 4), float("nan")), "L", rank=2)
    # the shape and dtype checks still apply off the CPU
    with pytest.raises(ValueError, match="expected input size 5"):
        _checks.check_input(torch.empty(3, 4, device="meta"), "L", rank=2, size=((1, 5),))
    with pytest.raises(TypeError, match="floating-point"):
        _checks.check_input(torch.empty(3, 4, device="meta", dtype=torch.int64), "L", rank=2)


# ----------------------------------------------------------------------------- checkpoints
@pytest.fixture
def model():
    torch.manual_seed(0)
    return dl.LogicNet(DENSE_CFG)


def _load_error(path) -> str:
    with pytest.raises(CheckpointError) as ei:
        load_model(path)
    msg = str(ei.value)
    assert str(path) in msg and "\n" not in msg, msg
    return msg


def test_foreign_files_say_what_they_are(tmp_path):
    text = tmp_path / "notes.pt"
    text.write_text("hello, I am not a checkpoint\n")
    assert "a text file" in _load_error(text)
    npy = tmp_path / "arr.pt"
    with open(npy, "wb") as fh:
        np.save(fh, np.ones(3))
    assert "NumPy .npy" in _load_error(npy)
    pkl = tmp_path / "plain.pkl"
    with open(pkl, "wb") as fh:
        pickle.dump({"weights": [1, 2, 3]}, fh)
    assert "Python pickle" in _load_error(pkl)
    module = tmp_path / "module.pt"
    torch.save(nn.Linear(2, 2), module)
    msg = _load_error(module)
    assert "torch.nn.modules.linear.Linear" in msg and "difflogic train" in msg
    foreign_sd = tmp_path / "resnet_like.pt"
    torch.save({"conv1.weight": torch.zeros(2, 2), "fc.bias": torch.zeros(2)}, foreign_sd)
    msg = _load_error(foreign_sd)
    assert "not a difflogic checkpoint" in msg and "conv1.weight" in msg
    rnd = tmp_path / "random.pt"
    rnd.write_bytes(bytes(range(1, 256)) * 4)
    assert "unrecognised binary content" in _load_error(rnd)


def _handmade(path, model, **sd_changes):
    """A checkpoint with a valid checksum but a damaged state dict (as a buggy writer makes)."""
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    sd.update(sd_changes)
    import json
    payload = {"format": "difflogic-checkpoint", "version": 1, "kind": "model",
               "library_version": dl.__version__, "config": json.dumps(model.config),
               "state_dict": sd}
    payload["sha256"] = _digest(payload)
    torch.save(payload, path)
    return path


def test_out_of_range_wiring_and_nan_logits_fail_at_load(tmp_path, model):
    wires = _handmade(tmp_path / "wires.pt", model, **{"0.wire_a": model[0].wire_a + 100})
    assert "0 has wire_a indices outside [0, 8)" in _load_error(wires)
    nan = _handmade(tmp_path / "nan.pt", model,
                    **{"0.weight": torch.full_like(model[0].weight, float("nan"))})
    assert "NaN/inf gate logits" in _load_error(nan)
    torch.manual_seed(0)
    conv = dl.LogicNet(CONV_CFG)
    leaves = _handmade(tmp_path / "leaves.pt", conv, **{"1.leaf_dy": conv[1].leaf_dy + 3})
    assert "leaf_dy indices outside [0, 3)" in _load_error(leaves)
    ok = _handmade(tmp_path / "ok.pt", model)
    load_model(ok)


def test_save_into_unwritable_places_is_clear_and_leaves_nothing(tmp_path, model):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    with pytest.raises(OSError) as ei:
        save_checkpoint(blocker / "model.pt", model)
    msg = str(ei.value)
    assert msg.startswith(f"cannot write {blocker / 'model.pt'}: cannot create the directory") and ".tmp" not in msg
    folder = tmp_path / "run"
    folder.mkdir()
    with pytest.raises(IsADirectoryError, match="it is an existing directory"):
        save_checkpoint(folder, model)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "run"]
    assert list(folder.iterdir()) == [] and blocker.read_text() == "x"


def test_failed_rename_names_the_target_and_removes_the_temp_file(tmp_path, model, monkeypatch):
    def no_rename(src, dst):
        raise PermissionError(13, "Permission denied", src)

    monkeypatch.setattr(os, "replace", no_rename)
    with pytest.raises(PermissionError, match=r"cannot write .*model.pt \(Permission denied\)"):
        save_checkpoint(tmp_path / "model.pt", model)
    assert list(tmp_path.iterdir()) == []


def run_cli(capsys, *argv):
    rc = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def _one_line_error(rc, err, cmd):
    assert rc != 0
    assert err.startswith(f"difflogic {cmd}: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err


@pytest.mark.parametrize("make", ["text", "tensor", "state_dict", "empty", "truncated"])
def test_cli_prints_checkpoint_problems_as_one_line(make, tmp_path, model, capsys):
    path = tmp_path / "model.pt"
    if make == "text":
        path.write_text("not a checkpoint\n")
    elif make == "tensor":
        torch.save(torch.arange(4), path)
    elif make == "state_dict":
        torch.save(model.state_dict(), path)
    elif make == "empty":
        path.write_bytes(b"")
    else:
        save_checkpoint(path, model)
        path.write_bytes(path.read_bytes()[:300])
    for argv in (["info", path], ["export", path, "--out", tmp_path / "out"]):
        rc, _, err = run_cli(capsys, *argv)
        _one_line_error(rc, err, argv[0])
        assert rc == 2 and str(path) in err
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------- datasets
def test_malformed_dataset_names_file_and_layout(tmp_path, capsys):
    root = write_fake_idx(tmp_path / "mnist", n_train=20, n_test=10, gz=False)
    images = root / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:-100])         # truncated
    with pytest.raises(DatasetError) as ei:
        load_dataset("mnist", root, "train")
    msg = str(ei.value)
    assert str(images) in msg and "truncated" in msg and "Expected layout:" in msg
    rc, _, err = run_cli(capsys, "train", "--dataset", "mnist", "--data-dir", root, "--model",
                         "mnist-tiny", "--steps", "1", "--out", tmp_path / "run")
    _one_line_error(rc, err, "train")
    assert rc == 2 and str(images) in err and "Expected layout:" in err


def test_missing_dataset_lists_the_places_looked_in(tmp_path):
    with pytest.raises(DatasetError) as ei:
        load_dataset("fashion-mnist", tmp_path / "nowhere", "test")
    msg = str(ei.value)
    assert "Looked in:" in msg and str(tmp_path / "nowhere") in msg and "Expected layout:" in msg
    assert isinstance(ei.value, FileNotFoundError)


# ----------------------------------------------------------------------------- export
class _Custom(nn.Module):
    def forward(self, x):
        return x


@pytest.mark.parametrize("bad, name", [(_Custom(), "_Custom"), (nn.ReLU(), "ReLU"),
                                       (nn.Linear(8, 8), "Linear"),
                                       (nn.Sequential(nn.Identity()), "Sequential")])
def test_unknown_layer_is_named(bad, name):
    seq = nn.Sequential(dl.LogicDense(8, 8), bad, dl.GroupSum(2))
    with pytest.raises(ValueError, match=rf"harden: layer 1: {name} is not supported by the compiler; "
                                         r"supported layers: Thresholds"):
        harden(seq)


def test_missing_c_compiler(monkeypatch, model, tmp_path, capsys):
    net = harden(model)
    with pytest.raises(RuntimeError, match=r"no C compiler found \(tried no-such-cc\)"):
        cbe.CompiledNet(net, cc="no-such-cc")
    monkeypatch.setenv("CC", "/nonexistent")
    with pytest.raises(RuntimeError, match=r"no C compiler found \(tried /nonexistent\).*set CC"):
        cbe.CompiledNet(net)
    path = save_checkpoint(tmp_path / "model.pt", model)
    rc, _, err = run_cli(capsys, "verify", path, "--samples", "8")
    _one_line_error(rc, err, "verify")
    assert "no C compiler found" in err


def test_export_onto_a_directory_entry_replaces_nothing(tmp_path, model):
    out = tmp_path / "out"
    out.mkdir()
    (out / "net.c").write_text("old")
    (out / "Makefile").mkdir()                     # the last file of the set cannot be written
    with pytest.raises(IsADirectoryError, match="Makefile exist"):
        cbe.export(harden(model), out)
    assert sorted(os.listdir(out)) == ["Makefile", "net.c"] and (out / "net.c").read_text() == "old"


def test_failed_export_leaves_no_files_and_no_new_directories(tmp_path, model, monkeypatch):
    net = harden(model)
    real = os.replace
    calls = disk_full_at(monkeypatch, 2)
    with pytest.raises(OSError, match=r"failed writing into .*No space left on device"):
        cbe.export(net, tmp_path / "a" / "b")
    # neither the file renamed before the failure, nor the temp folder, nor the new folders stay
    assert len(calls) == 2 and list(tmp_path.iterdir()) == []
    monkeypatch.setattr(os, "replace", real)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OSError, match="cannot create output directory"):
        cbe.export(net, blocker / "sub")
    assert blocker.read_text() == "x"


def test_export_to_a_file_path_via_cli(tmp_path, model, capsys):
    path = save_checkpoint(tmp_path / "model.pt", model)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    rc, _, err = run_cli(capsys, "export", path, "--out", blocker / "c")
    _one_line_error(rc, err, "export")
    assert "cannot create output directory" in err and str(blocker / "c") in err
