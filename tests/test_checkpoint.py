"""Checkpoints: exact round trip, clear errors for corrupt / truncated / foreign files, atomic
writes that never leave a partial file."""
import os
import pickle
import stat

import pytest
import torch

from difflogic import LogicNet
from difflogic.checkpoint import (CheckpointError, _digest, atomic_write, load_checkpoint,
                                  load_model, model_from_checkpoint, save_checkpoint)

CONFIG = {
    "name": "ckpt-tiny", "input_shape": [1, 12, 12], "num_classes": 10, "init": "residual",
    "layers": [{"type": "thresholds", "thresholds": [0.3, 0.6]},
               {"type": "conv", "out_channels": 6, "kernel_size": 3, "depth": 2, "padding": 1,
                "channels_per_tree": 2, "or_pool": 2},
               {"type": "flatten"}, {"type": "dense", "out_features": 60},
               {"type": "dense", "out_features": 40}, {"type": "group_sum", "k": 10, "tau": 2.0}],
    "train": {"lr": 0.05, "weight_decay": 0.0, "batch_size": 8},
}


def trained_like_model(seed=0):
    """A model whose logits are random (so every gate type occurs), as after training."""
    torch.manual_seed(seed)
    model = LogicNet(CONFIG)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 3)
    return model


@pytest.fixture
def saved(tmp_path):
    model = trained_like_model()
    path = save_checkpoint(tmp_path / "model.pt", model)
    return model, path


def test_round_trip_rebuilds_exact_network(saved):
    model, path = saved
    # a different global seed: rebuilding must not depend on the RNG
    torch.manual_seed(1234)
    loaded = load_model(path)
    assert not loaded.training
    assert loaded.config == model.config
    sd_a, sd_b = model.state_dict(), loaded.state_dict()
    assert sd_a.keys() == sd_b.keys()
    for k in sd_a:  # logits and wiring buffers (wire_a/b, leaf_c/dy/dx, thresholds)
        assert torch.equal(sd_a[k], sd_b[k]), k
    assert any("wire_a" in k for k in sd_a) and any("leaf_c" in k for k in sd_a)
    x = torch.rand(16, 1, 12, 12)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
        model.train(), loaded.train()
        assert torch.equal(model(x), loaded(x))


def test_loading_does_not_disturb_global_rng(saved):
    _, path = saved
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    load_model(path)
    assert torch.equal(torch.rand(3), expected)


def test_training_checkpoint_extras_round_trip(tmp_path):
    model = trained_like_model()
    opt = torch.optim.AdamW(model.parameters(), lr=0.01)
    model(torch.rand(4, 1, 12, 12)).sum().backward()
    opt.step()
    save_checkpoint(tmp_path / "last.pt", model, kind="training", step=17,
                    optimizer=opt.state_dict(), rng={"torch": torch.get_rng_state()},
                    loader={"epoch": 1, "step": 3})
    ck = load_checkpoint(tmp_path / "last.pt")  # weights_only=True inside
    assert ck["kind"] == "training" and ck["step"] == 17 and ck["loader"]["step"] == 3
    opt2 = torch.optim.AdamW(model_from_checkpoint(ck).parameters(), lr=0.01)
    opt2.load_state_dict(ck["optimizer"])
    for a, b in zip(opt.state.values(), opt2.state.values()):
        assert torch.equal(a["exp_avg"], b["exp_avg"]) and torch.equal(a["exp_avg_sq"], b["exp_avg_sq"])


def test_save_rejects_non_logicnet_and_reserved_keys(tmp_path):
    with pytest.raises(TypeError, match="LogicNet"):
        save_checkpoint(tmp_path / "x.pt", torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="reserved"):
        save_checkpoint(tmp_path / "x.pt", trained_like_model(), config="x")
    with pytest.raises(ValueError, match="kind"):
        save_checkpoint(tmp_path / "x.pt", trained_like_model(), kind="weird")


# ----------------------------------------------------------------------------- bad files
def _expect_error(path, *needles):
    with pytest.raises(CheckpointError) as exc:
        load_model(path)
    msg = str(exc.value)
    assert str(path) in msg
    for n in needles:
        assert n in msg, msg
    assert isinstance(exc.value, ValueError)
    return msg


def test_truncated_checkpoint(saved, tmp_path):
    _, path = saved
    blob = path.read_bytes()
    for cut in (len(blob) // 2, len(blob) - 10, 100):
        bad = tmp_path / f"cut{cut}.pt"
        bad.write_bytes(blob[:cut])
        _expect_error(bad, "corrupt")


def test_corrupted_bytes(saved, tmp_path):
    _, path = saved
    blob = bytearray(path.read_bytes())
    bad = tmp_path / "flipped.pt"
    blob[len(blob) // 3: len(blob) // 3 + 64] = os.urandom(64)
    bad.write_bytes(bytes(blob))
    with pytest.raises(CheckpointError, match="flipped.pt"):
        load_model(bad)


def test_random_and_empty_files(tmp_path):
    rnd = tmp_path / "random.pt"
    rnd.write_bytes(os.urandom(4096))
    _expect_error(rnd)
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    _expect_error(empty, "empty")
    text = tmp_path / "notes.pt"
    text.write_text("hello, I am not a checkpoint\n")
    _expect_error(text)


def test_foreign_torch_files(tmp_path):
    t = tmp_path / "tensor.pt"
    torch.save(torch.arange(5), t)
    _expect_error(t, "not a difflogic checkpoint", "Tensor")
    other = tmp_path / "other.pt"
    torch.save({"format": "someone-else", "state_dict": {}}, other)
    _expect_error(other, "not a difflogic checkpoint")
    sd = tmp_path / "plain_state_dict.pt"
    torch.save(trained_like_model().state_dict(), sd)
    _expect_error(sd, "not a difflogic checkpoint")


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_pickled_objects_are_refused_not_executed(tmp_path):
    p = tmp_path / "module.pt"
    torch.save(torch.nn.Linear(2, 2), p)  # a whole module: needs arbitrary unpickling
    _expect_error(p, "not a difflogic checkpoint")
    evil = tmp_path / "evil.pt"
    with open(evil, "wb") as fh:
        pickle.dump({"format": "difflogic-checkpoint", "x": _Evil()}, fh)
    _expect_error(evil)


def _resave(ck, path, **changes):
    """Write a modified checkpoint with a valid checksum (as a buggy/newer writer would)."""
    new = {k: v for k, v in ck.items() if k != "sha256"}
    new.update(changes)
    new["sha256"] = _digest(new)
    torch.save(new, path)
    return path


def test_newer_version_invalid_config_and_mismatched_state(saved, tmp_path):
    _, path = saved
    ck = torch.load(path, weights_only=True)
    _expect_error(_resave(ck, tmp_path / "newer.pt", version=99), "newer")
    _expect_error(_resave(ck, tmp_path / "badcfg.pt", config="{not json"), "config")
    sd = dict(ck["state_dict"])
    sd.pop(next(k for k in sd if "wire_a" in k))
    _expect_error(_resave(ck, tmp_path / "badsd.pt", state_dict=sd), "state_dict")
    # tampering without fixing the checksum is caught as corruption
    torch.save(dict(ck, version=1, kind="model", step=3), tmp_path / "tampered.pt")
    _expect_error(tmp_path / "tampered.pt", "checksum")


def test_missing_file_and_directory(tmp_path):
    _expect_error(tmp_path / "nope.pt", "no such")
    _expect_error(tmp_path, "directory")


# ----------------------------------------------------------------------------- atomic writes
def test_atomic_write_failure_leaves_old_file_and_no_temp(saved, tmp_path):
    _, path = saved
    before = path.read_bytes()

    def half_then_fail(fh):
        fh.write(b"partial data" * 1000)
        raise OSError("disk full (simulated)")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, half_then_fail)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]
    load_model(path)  # still a good checkpoint


def test_atomic_write_gives_the_permissions_of_a_plain_write(tmp_path):
    """mkstemp's 0600 must not leak into run directories: a new file gets 0666 less the umask,
    a replaced file keeps its mode."""
    old = os.umask(0o022)
    try:
        atomic_write(tmp_path / "new.bin", lambda fh: fh.write(b"x"))
        assert stat.S_IMODE((tmp_path / "new.bin").stat().st_mode) == 0o644
        os.umask(0o077)
        atomic_write(tmp_path / "private.bin", lambda fh: fh.write(b"x"))
        assert stat.S_IMODE((tmp_path / "private.bin").stat().st_mode) == 0o600
        (tmp_path / "new.bin").chmod(0o640)
        atomic_write(tmp_path / "new.bin", lambda fh: fh.write(b"y"))
        assert stat.S_IMODE((tmp_path / "new.bin").stat().st_mode) == 0o640
        assert (tmp_path / "new.bin").read_bytes() == b"y"
    finally:
        os.umask(old)


def test_atomic_save_failure_creates_nothing(tmp_path, monkeypatch):
    model = trained_like_model()

    def boom(*a, **k):
        raise RuntimeError("serialization failed (simulated)")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(RuntimeError):
        save_checkpoint(tmp_path / "new.pt", model)
    assert list(tmp_path.iterdir()) == []
