"""Dataset layer: real-format round trips, clear errors, split sizes, deterministic + resumable
loader. Uses tiny fake datasets written in the official formats; the real Fashion-MNIST files
are checked when installed (Debian package dataset-fashion-mnist; CI installs it)."""
from __future__ import annotations

import gzip
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from difflogic import data
from difflogic.data import (DATASET_INFO, BatchLoader, DatasetError, DatasetNotFoundError,
                            load_dataset, make_loader, train_val_split, write_fake_cifar10,
                            write_fake_idx, write_idx)

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


def _batch(path: Path) -> dict:
    with open(path, "rb") as fh:
        return pickle.load(fh, encoding="bytes")


# ---------------------------------------------------------------------------------------------
# CIFAR-10
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fake_cifar(tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar")
    out = write_fake_cifar10(root, n_train_per_batch=12, n_test=7)
    return root, out


def test_cifar_dir_round_trip(fake_cifar):
    root, out = fake_cifar
    assert out == root / "cifar-10-batches-py"
    x, y = load_dataset("cifar10", root, "train")
    assert x.shape == (60, 3, 32, 32) and x.dtype == np.uint8 and x.flags.c_contiguous
    assert y.shape == (60,) and y.dtype == np.int64
    expect_x = np.concatenate([_batch(out / f"data_batch_{i}")[b"data"] for i in range(1, 6)])
    expect_y = sum((_batch(out / f"data_batch_{i}")[b"labels"] for i in range(1, 6)), [])
    # R, G, B planes of 32x32 row-major -> (C, H, W)
    np.testing.assert_array_equal(x, expect_x.reshape(60, 3, 32, 32))
    np.testing.assert_array_equal(y, expect_y)
    assert x[0, 1, 2, 3] == expect_x[0, 1 * 1024 + 2 * 32 + 3]
    # the batches dir itself is accepted too
    xt, yt = load_dataset("CIFAR-10", out, split="test")
    assert xt.shape == (7, 3, 32, 32)
    np.testing.assert_array_equal(yt, _batch(out / "test_batch")[b"labels"])


def test_cifar_archive_matches_dir(fake_cifar, tmp_path):
    root, _ = fake_cifar
    arch = write_fake_cifar10(tmp_path, n_train_per_batch=12, n_test=7, archive=True)
    assert arch.name == "cifar-10-python.tar.gz" and not (tmp_path / "cifar-10-batches-py").exists()
    for split in ("train", "test"):
        xa, ya = load_dataset("cifar10", tmp_path, split)
        xd, yd = load_dataset("cifar10", root, split)
        np.testing.assert_array_equal(xa, xd)
        np.testing.assert_array_equal(ya, yd)
    xf, _ = load_dataset("cifar10", arch, "test")            # the archive file itself
    assert xf.shape == (7, 3, 32, 32)


def test_cifar_numpy1_python2_style_pickle(tmp_path):
    """Official batches name numpy.core.multiarray (numpy 1); the restricted unpickler maps it."""
    out = write_fake_cifar10(tmp_path, 3, 3)
    blob = (out / "test_batch").read_bytes()
    assert b"numpy._core.multiarray" in blob
    (out / "test_batch").write_bytes(blob.replace(b"numpy._core.multiarray",
                                                  b"numpy.core.multiarray"))
    x, y = load_dataset("cifar10", tmp_path, "test")
    assert x.shape == (3, 3, 32, 32)
    np.testing.assert_array_equal(x.reshape(3, -1), pickle.loads(blob, encoding="bytes")[b"data"])


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.makedirs, (self.marker,))


def test_cifar_refuses_code_in_pickle(tmp_path):
    out = write_fake_cifar10(tmp_path, 2, 2)
    marker = tmp_path / "pwned"
    (out / "test_batch").write_bytes(pickle.dumps({b"data": _Evil(str(marker)), b"labels": [0]}))
    with pytest.raises(DatasetError, match="test_batch"):
        load_dataset("cifar10", tmp_path, "test")
    assert not marker.exists()


def test_cifar_missing_lists_every_path(tmp_path, monkeypatch):
    missing = tmp_path / "nowhere"
    with pytest.raises(DatasetNotFoundError) as ei:
        load_dataset("cifar10", missing)
    msg = str(ei.value)
    assert isinstance(ei.value, FileNotFoundError) and isinstance(ei.value, ValueError)
    assert "CIFAR-10" in msg and str(missing) in msg
    assert "cifar-10-batches-py" in msg and "https://www.cs.toronto.edu/~kriz/cifar.html" in msg
    assert "/work" not in msg.replace(str(tmp_path), "")
    # an existing but empty dir: its batches dir, itself and the archive are all listed
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetNotFoundError) as ei:
        load_dataset("cifar10", empty)
    for p in (empty / "cifar-10-batches-py", empty, empty / "cifar-10-python.tar.gz"):
        assert f"{p} (" in str(ei.value)
    # default location comes from $DIFFLOGIC_DATA
    monkeypatch.setenv("DIFFLOGIC_DATA", str(tmp_path / "envdata"))
    with pytest.raises(DatasetNotFoundError, match=str(tmp_path / "envdata" / "cifar10")):
        load_dataset("cifar10")


def test_cifar_default_dir_from_env(tmp_path, monkeypatch):
    write_fake_cifar10(tmp_path / "cifar10", 2, 3)
    monkeypatch.setenv("DIFFLOGIC_DATA", str(tmp_path))
    x, _ = load_dataset("cifar10", split="test")
    assert x.shape == (3, 3, 32, 32)


def _corrupt(out: Path, name: str, obj) -> None:
    (out / name).write_bytes(pickle.dumps(obj, protocol=2))


@pytest.mark.parametrize("case, pattern", [
    ("truncated", "data_batch_3.*truncated"),
    ("missing", "incomplete: missing data_batch_4"),
    ("not_dict", "holds a list"),
    ("no_labels", "lacks b'data' or b'labels'"),
    ("wide", r"shape \(2, 1000\), expected uint8 \[N, 3072\]"),
    ("float", "float32"),
    ("label_range", "label 10 is out of range 0..9"),
    ("label_count", "must be 2 ints"),
])
def test_cifar_malformed(tmp_path, case, pattern):
    out = write_fake_cifar10(tmp_path, 2, 2)
    good = np.zeros((2, 3072), np.uint8)
    if case == "truncated":
        blob = (out / "data_batch_3").read_bytes()
        (out / "data_batch_3").write_bytes(blob[: len(blob) // 2])
    elif case == "missing":
        (out / "data_batch_4").unlink()
    elif case == "not_dict":
        _corrupt(out, "data_batch_2", [1, 2])
    elif case == "no_labels":
        _corrupt(out, "data_batch_2", {b"data": good})
    elif case == "wide":
        _corrupt(out, "data_batch_2", {b"data": np.zeros((2, 1000), np.uint8), b"labels": [0, 1]})
    elif case == "float":
        _corrupt(out, "data_batch_2", {b"data": good.astype(np.float32), b"labels": [0, 1]})
    elif case == "label_range":
        _corrupt(out, "data_batch_2", {b"data": good, b"labels": [3, 10]})
    elif case == "label_count":
        _corrupt(out, "data_batch_2", {b"data": good, b"labels": [3]})
    with pytest.raises(DatasetError, match=pattern) as ei:
        load_dataset("cifar10", tmp_path, "train")
    assert "To fix:" in str(ei.value) and "Expected layout:" in str(ei.value)
    assert not isinstance(ei.value, FileNotFoundError)


def test_cifar_bad_archives(tmp_path):
    arch = write_fake_cifar10(tmp_path, 2, 2, archive=True)
    blob = arch.read_bytes()
    arch.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DatasetError, match="cifar-10-python.tar.gz.*(truncated|corrupt)"):
        load_dataset("cifar10", tmp_path, "train")
    # an archive without the test batch
    with tarfile.open(arch, "w:gz") as tar:
        tar.add(write_fake_cifar10(tmp_path / "src", 2, 2) / "data_batch_1",
                arcname="cifar-10-batches-py/data_batch_1")
    with pytest.raises(DatasetError, match="lacks test_batch"):
        load_dataset("cifar10", tmp_path, "test")


# ---------------------------------------------------------------------------------------------
# MNIST / Fashion-MNIST IDX
# ---------------------------------------------------------------------------------------------

def _read_written(path: Path) -> np.ndarray:
    raw = path.read_bytes()
    if path.name.endswith(".gz"):
        raw = gzip.decompress(raw)
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw[4 + 4 * ndim:], np.uint8).reshape(dims)


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_idx_round_trip(tmp_path, gz, name):
    write_fake_idx(tmp_path, n_train=30, n_test=11, gz=gz)
    sfx = ".gz" if gz else ""
    assert (tmp_path / f"train-images-idx3-ubyte{sfx}").is_file()
    x, y = load_dataset(name, tmp_path, "train")
    assert x.shape == (30, 1, 28, 28) and x.dtype == np.uint8
    assert y.shape == (30,) and y.dtype == np.int64
    np.testing.assert_array_equal(x[:, 0], _read_written(tmp_path / f"train-images-idx3-ubyte{sfx}"))
    np.testing.assert_array_equal(y, _read_written(tmp_path / f"train-labels-idx1-ubyte{sfx}"))
    xt, yt = load_dataset(name, tmp_path, "test")
    assert xt.shape == (11, 1, 28, 28) and set(yt.tolist()) <= set(range(10))
    x[0, 0, 0, 0] = 7                                        # returned arrays are writable


def test_idx_alternative_layouts(tmp_path):
    """Dotted names (train-images.idx3-ubyte) and torchvision's <root>/MNIST/raw/ both load."""
    raw = tmp_path / "tv" / "MNIST" / "raw"
    write_fake_idx(raw, 5, 4, gz=False)
    for f in raw.iterdir():
        f.rename(f.with_name(f.name.replace("-idx", ".idx")))
    x, _ = load_dataset("mnist", tmp_path / "tv", "test")
    assert x.shape == (4, 1, 28, 28)


def test_idx_missing_lists_paths(tmp_path, monkeypatch):
    monkeypatch.setenv("DIFFLOGIC_DATA", str(tmp_path / "env"))
    monkeypatch.setattr(data, "_FASHION_SYSTEM_DIR", tmp_path / "system")   # pretend not installed
    with pytest.raises(DatasetNotFoundError) as ei:
        load_dataset("fashion-mnist")
    msg = str(ei.value)
    assert f"{tmp_path / 'env' / 'fashion-mnist'} (no such directory)" in msg
    assert f"{tmp_path / 'system'} (no such directory)" in msg
    assert "apt-get install dataset-fashion-mnist" in msg and "t10k-images-idx3-ubyte" in msg
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetNotFoundError, match=r"empty \(no train-images-idx3-ubyte"):
        load_dataset("mnist", tmp_path / "empty")


@pytest.mark.parametrize("case, pattern", [
    ("truncated_raw", r"truncated: its header promises dims \[20, 28, 28\]"),
    ("truncated_gz", "damaged gzip"),
    ("wrong_magic", "magic number 0x00000801, expected 0x00000803"),
    ("long", "too long"),
    ("size", "32x32 pixels, expected 28x28"),
    ("count", "20 images but .* 19 labels"),
    ("label_range", "label 12 is out of range"),
    ("no_labels", "incomplete.*train-labels-idx1-ubyte"),
    ("tiny", "too short for an IDX header"),
])
def test_idx_malformed(tmp_path, case, pattern):
    write_fake_idx(tmp_path, 20, 5, gz=case == "truncated_gz")
    sfx = ".gz" if case == "truncated_gz" else ""
    img = tmp_path / f"train-images-idx3-ubyte{sfx}"
    lab = tmp_path / f"train-labels-idx1-ubyte{sfx}"
    if case == "truncated_raw":
        img.write_bytes(img.read_bytes()[:-100])
    elif case == "truncated_gz":
        img.write_bytes(img.read_bytes()[:-50])
    elif case == "wrong_magic":
        img.write_bytes(lab.read_bytes())
    elif case == "long":
        img.write_bytes(img.read_bytes() + b"\0")
    elif case == "size":
        write_idx(img, np.zeros((20, 32, 32), np.uint8))
    elif case == "count":
        write_idx(lab, np.zeros(19, np.uint8))
    elif case == "label_range":
        write_idx(lab, np.full(20, 12, np.uint8))
    elif case == "no_labels":
        lab.unlink()
    elif case == "tiny":
        img.write_bytes(b"\0\0")
    with pytest.raises(DatasetError, match=pattern) as ei:
        load_dataset("mnist", tmp_path, "train")
    assert "To fix:" in str(ei.value) and "MNIST" in str(ei.value)


def test_real_fashion_mnist():
    if not (FASHION_DIR / "train-images-idx3-ubyte.gz").is_file():
        if os.environ.get("CI", "").lower() in ("1", "true"):
            pytest.fail(f"{FASHION_DIR} missing in CI (apt-get install dataset-fashion-mnist)")
        pytest.skip(f"Fashion-MNIST not installed at {FASHION_DIR} "
                    "(apt-get install dataset-fashion-mnist)")
    x, y = load_dataset("fashion-mnist", FASHION_DIR, "train")
    assert x.shape == (60000, 1, 28, 28) and y.shape == (60000,)
    np.testing.assert_array_equal(np.bincount(y), [6000] * 10)
    assert y[:4].tolist() == [9, 0, 0, 3]                    # the published first labels
    xt, yt = load_dataset("fashion-mnist", split="test")      # default dir finds the package
    assert xt.shape == (10000, 1, 28, 28)
    np.testing.assert_array_equal(np.bincount(yt), [1000] * 10)
    assert 0 < x.mean() < 255


# ---------------------------------------------------------------------------------------------
# metadata, names, splits
# ---------------------------------------------------------------------------------------------

def test_dataset_info():
    assert set(DATASET_INFO) == {"cifar10", "fashion-mnist", "mnist"}
    c = DATASET_INFO["cifar10"]
    assert c.shape == (3, 32, 32) and c["num_classes"] == 10 and c.classes[0] == "airplane"
    assert c.train_size - c.val_size == 45_000
    for name in ("mnist", "fashion-mnist"):
        info = DATASET_INFO[name]
        assert info.shape == (1, 28, 28) and len(info.classes) == 10
        assert info.train_size - info.val_size == 50_000
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("imagenet", "/tmp")
    with pytest.raises(ValueError, match="split must be 'train' or 'test'"):
        load_dataset("mnist", "/tmp", split="val")
    with pytest.raises(TypeError, match="data_dir"):
        load_dataset("mnist", 3)
    assert data.canonical_name("Fashion_MNIST") == "fashion-mnist"


def test_train_val_split():
    for name in DATASET_INFO:
        info = DATASET_INFO[name]
        tr, va = train_val_split(info.train_size, info.val_size, seed=0)
        assert len(va) == info.val_size and len(tr) == info.train_size - info.val_size
        assert tr.dtype == va.dtype == np.int64
        assert np.all(np.diff(tr) > 0) and np.all(np.diff(va) > 0)
        np.testing.assert_array_equal(np.sort(np.concatenate([tr, va])),
                                      np.arange(info.train_size))
    a = train_val_split(100, 10, seed=3)
    b = train_val_split(100, 10, seed=3)
    c = train_val_split(100, 10, seed=4)
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])
    assert len(train_val_split(5, 0, 0)[1]) == 0
    with pytest.raises(ValueError, match="val_size must be smaller than n=5"):
        train_val_split(5, 5, 0)
    with pytest.raises(TypeError, match="val_size"):
        train_val_split(5, 0.5, 0)


# ---------------------------------------------------------------------------------------------
# loader
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def arrays():
    rng = np.random.default_rng(1)
    return rng.integers(0, 256, (103, 3, 8, 8), dtype=np.uint8), rng.integers(0, 10, 103)


def x_u8(t):
    return (t.numpy() * 255).round().astype(np.uint8)


def _collect(it):
    return [(x.clone(), y.clone()) for x, y in it]


def _same(a, b):
    return len(a) == len(b) and all(torch.equal(x1, x2) and torch.equal(y1, y2)
                                    for (x1, y1), (x2, y2) in zip(a, b))


def test_loader_values_and_epochs(arrays):
    x, y = arrays
    loader = make_loader(x, y, 16, shuffle=True, seed=5, drop_last=False)
    assert len(loader) == 7
    batches = _collect(loader)
    assert [len(b[1]) for b in batches] == [16] * 6 + [7]
    xb, yb = batches[0]
    assert xb.dtype == torch.float32 and xb.shape == (16, 3, 8, 8) and yb.dtype == torch.int64
    assert 0.0 <= float(xb.min()) and float(xb.max()) <= 1.0
    # every sample exactly once, and x is exactly uint8 / 255
    allx = torch.cat([b[0] for b in batches])
    ally = torch.cat([b[1] for b in batches])
    got = np.c_[ally.numpy(), x_u8(allx).reshape(103, -1)]
    want = np.c_[y, x.reshape(103, -1)]
    np.testing.assert_array_equal(got[np.lexsort(got.T)], want[np.lexsort(want.T)])
    src = np.flatnonzero((x.reshape(103, -1) == x_u8(allx[0]).reshape(-1)).all(1))[0]
    np.testing.assert_array_equal(allx[0].numpy(), x[src].astype(np.float32) / 255)
    assert ally[0] == y[src]
    assert loader.epoch == 1 and loader.step == 0
    # next epoch: a different order, same content
    batches2 = _collect(loader)
    assert not _same(batches, batches2)
    # without shuffle: the stored order, last partial batch kept by default
    plain = _collect(make_loader(x, y, 50, shuffle=False))
    assert [len(b[1]) for b in plain] == [50, 50, 3]
    np.testing.assert_array_equal(torch.cat([b[1] for b in plain]).numpy(), y)
    np.testing.assert_array_equal(plain[0][0].numpy(), x[:50].astype(np.float32) / 255)


def test_loader_deterministic(arrays):
    x, y = arrays
    for augment in (False, True):
        a = _collect(make_loader(x, y, 10, True, 7, augment=augment).steps(25))
        b = _collect(make_loader(x, y, 10, True, 7, augment=augment).steps(25))
        c = _collect(make_loader(x, y, 10, True, 8, augment=augment).steps(25))
        assert len(a) == 25 and _same(a, b) and not _same(a, c)
    on_cpu = _collect(make_loader(x, y, 10, True, 7, augment=True, device="cpu").steps(25))
    assert _same(a, on_cpu) and on_cpu[0][0].device.type == "cpu"


@pytest.mark.parametrize("augment", [False, True])
@pytest.mark.parametrize("stop", [3, 10, 11, 23])     # mid-epoch, last batch, epoch start
def test_loader_exact_resume(arrays, augment, stop):
    x, y = arrays
    tr, _ = train_val_split(len(y), 13, seed=0)
    kw = dict(augment=augment, indices=tr)
    ref = _collect(make_loader(x, y, 9, True, 11, **kw).steps(35))   # 90 samples -> 10/epoch
    first = make_loader(x, y, 9, True, 11, **kw)
    got = []
    for xb, yb in first.steps(stop):
        got.append((xb.clone(), yb.clone()))
    state = first.state_dict()
    assert first.global_step == stop
    state = torch.load(_roundtrip(state), weights_only=True)      # survives a checkpoint
    second = make_loader(x, y, 9, True, 11, **kw)
    second.load_state_dict(state)
    got += _collect(second.steps(35 - stop))
    assert _same(ref, got)


def _roundtrip(obj):
    import io
    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return buf


def test_loader_resume_via_epoch_loop(arrays):
    """The cursor already points at the next epoch after an epoch's last batch, so a resumed
    epoch-based loop does not see an empty epoch."""
    x, y = arrays
    loader = make_loader(x, y, 20, True, 0)
    ref = [_collect(loader) for _ in range(3)]
    a = make_loader(x, y, 20, True, 0)
    _collect(a)
    b = make_loader(x, y, 20, True, 0)
    b.load_state_dict(a.state_dict())
    assert b.epoch == 1 and b.step == 0
    assert _same(_collect(b), ref[1])
    # abandoning an epoch mid-way and iterating again continues where it stopped
    c = make_loader(x, y, 20, True, 0)
    it = iter(c)
    next(it), next(it)
    assert _same(_collect(c), ref[0][2:])


def test_loader_state_mismatch(arrays):
    x, y = arrays
    state = make_loader(x, y, 10, True, 1).state_dict()
    with pytest.raises(ValueError, match="batch_size: 10 in the state vs 12 here"):
        make_loader(x, y, 12, True, 1).load_state_dict(state)
    with pytest.raises(ValueError, match="seed"):
        make_loader(x, y, 10, True, 2).load_state_dict(state)
    with pytest.raises(ValueError, match="lacks"):
        make_loader(x, y, 10, True, 1).load_state_dict({"epoch": 0})
    bad = dict(state, step=99)
    with pytest.raises(ValueError, match="out of range"):
        make_loader(x, y, 10, True, 1).load_state_dict(bad)


def _reference_flip_crop(img, flip, dy, dx, pad):
    c, h, w = img.shape
    p = np.zeros((c, h + 2 * pad, w + 2 * pad), np.uint8)
    p[:, pad:pad + h, pad:pad + w] = img
    out = p[:, dy:dy + h, dx:dx + w]
    return out[:, :, ::-1] if flip else out


def test_augment_is_flip_and_crop():
    rng = np.random.default_rng(0)
    x = rng.integers(1, 256, (40, 3, 6, 6), dtype=np.uint8)     # nonzero: padding is visible
    flipped, dy0, dx0 = data.flip_crop_params(np.random.default_rng(3), 40, 2)
    out = data.flip_crop(x, flipped, dy0, dx0, 2)
    assert out.shape == x.shape and out.dtype == np.uint8
    g = np.random.default_rng(3)
    flip, dy, dx = g.random(40) < 0.5, g.integers(0, 5, 40), g.integers(0, 5, 40)
    np.testing.assert_array_equal(flipped, flip)
    np.testing.assert_array_equal(dy0, dy)
    for i in range(40):
        np.testing.assert_array_equal(out[i], _reference_flip_crop(x[i], flip[i], dy[i], dx[i], 2))
    assert flip.any() and (~flip).any() and len(set(zip(dy, dx))) > 5
    # through the loader: labels untouched, images are augmented views of their source
    y = np.arange(40) % 10
    xb, yb = next(iter(make_loader(x, y, 40, shuffle=False, augment=True, crop_padding=2)))
    np.testing.assert_array_equal(yb.numpy(), y)
    assert not torch.equal(xb, torch.from_numpy(x).float() / 255)


def test_augment_differs_per_batch_and_epoch():
    """Each batch draws its own flips/crops (not one draw reused), and epochs differ too."""
    x = np.repeat(np.random.default_rng(0).integers(1, 256, (1, 3, 8, 8), dtype=np.uint8), 20, 0)
    loader = make_loader(x, np.zeros(20, np.int64), 10, shuffle=False, augment=True)
    e0 = _collect(loader)
    e1 = _collect(loader)
    assert not torch.equal(e0[0][0], e0[1][0]) and not torch.equal(e0[0][0], e1[0][0])


def test_loader_arg_errors(arrays):
    x, y = arrays
    with pytest.raises(TypeError, match="uint8"):
        make_loader(x.astype(np.float32), y, 4)
    with pytest.raises(ValueError, match="one label per image"):
        make_loader(x, y[:-1], 4)
    with pytest.raises(ValueError, match="batch_size"):
        make_loader(x, y, 0)
    with pytest.raises(ValueError, match="no batches"):
        make_loader(x, y, 200, shuffle=True)
    assert len(make_loader(x, y, 200, shuffle=True, drop_last=False)) == 1
    with pytest.raises(ValueError, match="indices must lie in"):
        make_loader(x, y, 4, indices=[0, 103])
    assert isinstance(make_loader(x, y, 4), BatchLoader)


def test_fake_datasets_are_learnable(tmp_path):
    """The fixtures encode the label in a bright band, so CLI smoke tests can expect learning."""
    write_fake_idx(tmp_path, 50, 10)
    x, y = load_dataset("mnist", tmp_path)
    band = x[:, 0, :20].reshape(50, 10, 2 * 28).mean(axis=2)   # rows 2k..2k+1 per class
    assert (band[np.arange(50), y] == 255).all()
    assert np.bincount(y, minlength=10).min() == 5


def _marked_images(n):
    """Images whose content says which image they are and whether they were flipped: a bright
    column near the left edge (still in the left half after a 1-pixel shift), the image's
    number in row 1 to its right (values below 255)."""
    x = np.zeros((n, 1, 4, 6), np.uint8)
    x[:, 0, :, 1] = 255
    x[:, 0, 1, 3], x[:, 0, 1, 4] = np.arange(n) // 200, np.arange(n) % 200
    return x


@pytest.mark.parametrize("pad", [0, 1])
def test_soft_targets_follow_the_view_the_batch_holds(pad):
    n = 300
    x, y = _marked_images(n), np.arange(n) % 10
    soft = np.zeros((n, 2, 3), np.float32)
    soft[:, 0, 0] = np.arange(n)          # plain view: (i, 0, 0)
    soft[:, 1, 0], soft[:, 1, 1] = np.arange(n), 1.0   # flipped view: (i, 1, 0)
    soft[:, :, 2] = 7.0
    loader = make_loader(x, y, 32, shuffle=True, seed=4, augment=True, crop_padding=pad,
                         soft_targets=soft, indices=np.arange(10, n))
    seen = flips = 0
    for xb, yb, tb in loader:
        img = np.rint(xb.numpy() * 255).astype(int)[:, 0]
        assert tb.dtype == torch.float32 and tb.shape == (len(yb), 3)
        for im, lab, t in zip(img, yb.numpy(), tb.numpy()):
            i, flipped = int(t[0]), bool(t[1])
            assert lab == y[i] and t[2] == 7.0
            if pad == 0:  # no shift: the view is exactly the (flipped) image
                np.testing.assert_array_equal(im, x[i, 0, :, ::-1] if flipped else x[i, 0])
            else:         # the marker moved with the flip
                assert ((im[:, :3] == 255).sum() >= 3) != flipped
                assert ((im[:, 3:] == 255).sum() >= 3) == flipped
            seen, flips = seen + 1, flips + flipped
    assert seen == 288 and 0 < flips < seen
    # without augmentation every row is the plain view
    for _, _, tb in make_loader(x, y, 50, shuffle=False, soft_targets=soft):
        assert not tb[:, 1].any()


def test_soft_targets_must_cover_every_image_and_both_views():
    x, y = _marked_images(20), np.arange(20) % 10
    for bad in (np.zeros((19, 2, 3), np.float32), np.zeros((20, 1, 3), np.float32),
                np.zeros((20, 2, 3), np.int64), [[0.0]] * 20):
        with pytest.raises(ValueError, match=r"soft_targets must be a float array of shape \(20, 2"):
            make_loader(x, y, 4, soft_targets=bad)


# ---------------------------------------------------------------------------------------------
# one entry for every dataset (own data itself: test_own_data.py)
# ---------------------------------------------------------------------------------------------

def test_open_dataset_serves_the_built_in_sets_unchanged(tmp_path, monkeypatch):
    write_fake_idx(tmp_path, 30, 10)
    ds = data.open_dataset("MNIST", tmp_path)
    assert ds.name == "mnist" and ds.info is DATASET_INFO["mnist"] and ds.input is None
    for split in ("train", "test"):
        for got, want in zip(ds.load(split), load_dataset("mnist", tmp_path, split)):
            np.testing.assert_array_equal(got, want)
    assert len(ds.load("all")[1]) == 40
    with pytest.raises(ValueError, match="split must be one of train, test, all"):
        ds.load("val")
    with pytest.raises(ValueError, match="--image-size applies to own data"):
        data.open_dataset("mnist", tmp_path, image_size="8x8")
    # a built-in name wins over a folder of that name; ./name is the folder
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mnist").mkdir()
    assert data.dataset_spec("mnist") == "mnist"
    assert data.dataset_spec("./mnist") == str(tmp_path / "mnist")
    with pytest.raises(ValueError, match=r"unknown dataset 'imagenet' \(no such file or folder\); "
                                         "expected one of cifar10, fashion-mnist, mnist, or a .npz"):
        data.dataset_spec("imagenet")
    with pytest.raises(DatasetNotFoundError, match="nope.npz: no such file"):
        data.dataset_spec("nope.npz")
