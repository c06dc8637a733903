"""Datasets for training and evaluation: CIFAR-10, MNIST and Fashion-MNIST, read from the files
their publishers distribute; own data (.npz arrays, image folders, CSV tables); and a resumable
batch loader.  :func:`open_dataset` is the one entry the trainer and the commands use.

Why it looks like this:

* **Nothing is ever downloaded.** Training machines are often offline, and silent downloads hide
  where data came from. A missing or damaged dataset raises :class:`DatasetError` naming the
  dataset, every path tried, the expected layout and how to get the files.
* **Official formats, read directly.** CIFAR-10 comes as the "python version" (the
  ``cifar-10-batches-py/`` directory of pickled batches, or its ``cifar-10-python.tar.gz``
  archive, read in place with :mod:`tarfile`). MNIST and Fashion-MNIST come as the four IDX files,
  gzipped or raw. The pickles are read with a restricted unpickler that only allows the few
  numpy/bytes constructors a CIFAR batch needs, so a hostile file cannot run code.
* **uint8 in memory, floats per batch.** Datasets stay ``uint8 (N, C, H, W)`` (CIFAR-10 train is
  150 MB that way, 600 MB as float32); :class:`BatchLoader` converts each batch to float32 in
  ``[0, 1]`` (``x / 255``), on the target device when one is given.
* **Exact resume.** The batch order of epoch ``e`` and the augmentation of batch ``b`` are pure
  functions of ``(seed, e, b)``, so a loader restored from :meth:`BatchLoader.state_dict` yields
  exactly the batches an uninterrupted run would have seen.

* **Own data is decoded once.** An .npz file, an image folder (Pillow: one mode, one size) or
  a CSV table (numeric columns, text columns one-hot, a label column) becomes uint8 images or
  float32 features in a memory-mapped copy under :func:`own_data_cache`, so a set larger than
  memory trains from disk.  What the model needs to read such input again (shape, classes,
  the CSV's columns and levels) is the dataset's ``input`` spec, kept in the model's config.
  Bad input is refused in one line naming the file, the line / row / key, and the fix.

Validation splits follow Petersen et al. 2024: 45,000 / 5,000 for CIFAR-10 and 50,000 / 10,000
for the MNIST-like sets (``DATASET_INFO[name].val_size``), drawn by :func:`train_val_split`;
own data holds out :data:`VAL_FRACTION` of its training split, and without a test part of its
own :data:`TEST_FRACTION` of each class as the test split (:func:`holdout_split`).
"""
from __future__ import annotations

import csv
import gzip
import hashlib
import importlib
import io
import itertools
import json
import math
import os
import pickle
import shutil
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from numpy.lib.stride_tricks import sliding_window_view

from . import functional as F
from .files import atomic_write

__all__ = [
    "DatasetError", "DatasetNotFoundError", "DatasetInfo", "DATASET_INFO", "dataset_names",
    "canonical_name", "default_data_dirs", "locate_dataset", "load_dataset", "train_val_split",
    "BatchLoader", "make_loader", "write_fake_cifar10", "write_fake_idx", "write_idx",
    "Dataset", "open_dataset", "dataset_spec", "own_data_cache", "holdout_split", "read_rows",
    "to_unit_float", "SPLIT_SEED",
]


# ---------------------------------------------------------------------------------------------
# errors and dataset descriptions
# ---------------------------------------------------------------------------------------------

class DatasetError(ValueError):
    """A dataset is missing, incomplete or malformed. The message says which dataset, where it
    looked, what layout was expected and how to fix it."""


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """No copy of the dataset was found in any of the places tried (also a FileNotFoundError,
    so callers that only care about "missing file" can catch that)."""


@dataclass(frozen=True)
class DatasetInfo:
    """Static facts about a dataset. Supports ``info.shape`` and ``info["shape"]``."""

    name: str
    title: str
    shape: tuple[int, int, int]          # (C, H, W) of one image
    num_classes: int
    classes: tuple[str, ...]
    train_size: int                      # size of the official training split
    test_size: int
    val_size: int                        # validation images held out of train (paper's split)
    layout: str                          # expected on-disk layout (for error messages)
    fix: str                             # how to obtain the files (for error messages)
    kind: str = "image"                  # "image": uint8 (C, H, W); "table": float32 (F,)

    @property
    def crop_padding(self) -> int:
        """Default zero padding of the random crops of ``augment``: the usual 4 pixels on
        32x32 images (CIFAR-10), 2 on the smaller MNIST-like ones; 0 for a table."""
        if self.kind != "image":
            return 0
        return 4 if self.shape[1] >= 32 else 2

    def val_size_for(self, n: int) -> int:
        """Validation images held out of a training file of ``n`` images: the paper's split,
        or 1/6 of a tiny file (test fixtures) that could not spare it."""
        return self.val_size if n > 2 * self.val_size else max(1, n // 6)

    def __getitem__(self, key: str):
        try:
            return getattr(self, key)
        except AttributeError:
            raise KeyError(key) from None


_CIFAR_DIR = "cifar-10-batches-py"
_CIFAR_ARCHIVE = "cifar-10-python.tar.gz"
_CIFAR_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
_CIFAR_TEST_FILES = ("test_batch",)
_CIFAR_ALL_FILES = _CIFAR_TRAIN_FILES + _CIFAR_TEST_FILES + ("batches.meta",)
_IDX_BASES = {
    ("train", "images"): "train-images-idx3-ubyte",
    ("train", "labels"): "train-labels-idx1-ubyte",
    ("test", "images"): "t10k-images-idx3-ubyte",
    ("test", "labels"): "t10k-labels-idx1-ubyte",
}
_FASHION_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")   # Debian: dataset-fashion-mnist

_IDX_LAYOUT = ("train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and "
               "t10k-labels-idx1-ubyte (raw or .gz) in one folder")


def _data_dir_fix(name: str) -> str:
    return f"then pass that folder as --data-dir DIR or put it at $DIFFLOGIC_DATA/{name}"

DATASET_INFO: dict[str, DatasetInfo] = {
    "cifar10": DatasetInfo(
        name="cifar10", title="CIFAR-10", shape=(3, 32, 32), num_classes=10,
        classes=("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                 "ship", "truck"),
        train_size=50_000, test_size=10_000, val_size=5_000,
        layout=(f"{_CIFAR_DIR}/ (data_batch_1..5, test_batch, batches.meta) or "
                f"{_CIFAR_ARCHIVE} in one folder"),
        fix=(f"download the python version ({_CIFAR_ARCHIVE}, may stay packed) from "
             "https://www.cs.toronto.edu/~kriz/cifar.html, " + _data_dir_fix("cifar10"))),
    "fashion-mnist": DatasetInfo(
        name="fashion-mnist", title="Fashion-MNIST", shape=(1, 28, 28), num_classes=10,
        classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                 "Sneaker", "Bag", "Ankle boot"),
        train_size=60_000, test_size=10_000, val_size=10_000,
        layout=_IDX_LAYOUT,
        fix=("sudo apt-get install dataset-fashion-mnist (Debian/Ubuntu), or get the files from "
             "https://github.com/zalandoresearch/fashion-mnist, "
             + _data_dir_fix("fashion-mnist"))),
    "mnist": DatasetInfo(
        name="mnist", title="MNIST", shape=(1, 28, 28), num_classes=10,
        classes=tuple(str(i) for i in range(10)),
        train_size=60_000, test_size=10_000, val_size=10_000,
        layout=_IDX_LAYOUT,
        fix=("get the files from http://yann.lecun.com/exdb/mnist/ (or a mirror), "
             + _data_dir_fix("mnist"))),
}

_ALIASES = {"cifar-10": "cifar10", "fashionmnist": "fashion-mnist"}


def dataset_names() -> list[str]:
    """The dataset names :func:`load_dataset` accepts."""
    return list(DATASET_INFO)


def canonical_name(name) -> str:
    """Normalise a dataset name ('CIFAR-10', 'fashion_mnist' ...) to a key of DATASET_INFO."""
    if not isinstance(name, str):
        raise TypeError(f"dataset name must be a string, got {type(name).__name__}")
    key = name.strip().lower().replace("_", "-")
    key = _ALIASES.get(key, key)
    if key not in DATASET_INFO:
        raise ValueError(f"unknown dataset {name!r}; expected one of {dataset_names()}")
    return key


def default_data_dirs(name: str) -> list[Path]:
    """Where a dataset is looked for when no data_dir is given: ``$DIFFLOGIC_DATA/<name>`` if that
    variable is set, else ``~/.cache/difflogic/<name>``; Fashion-MNIST also tries the Debian
    package's directory."""
    name = canonical_name(name)
    env = os.environ.get("DIFFLOGIC_DATA")
    base = Path(env).expanduser() if env else Path.home() / ".cache" / "difflogic"
    dirs = [base / name]
    if name == "fashion-mnist":
        dirs.append(_FASHION_SYSTEM_DIR)
    return dirs


def _fail(info: DatasetInfo, problem: str, tried=None, missing: bool = False):
    """The error for a missing or damaged dataset, as one line (the CLI prints it as is): the
    problem, the places looked in, the layout expected and how to get the files."""
    looked = f" Looked in: {'; '.join(tried)}." if tried else ""
    cls = DatasetNotFoundError if missing else DatasetError
    return cls(f"{info.title}: {problem.rstrip('.')}.{looked} Expected layout: {info.layout}. "
               f"To fix: {info.fix}.")


def _roots(name: str, data_dir) -> list[Path]:
    if data_dir is None:
        return default_data_dirs(name)
    if not isinstance(data_dir, (str, os.PathLike)):
        raise TypeError(f"data_dir must be a path (str or os.PathLike) or None, "
                        f"got {type(data_dir).__name__}")
    return [Path(data_dir).expanduser()]


def _check_split(split) -> str:
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r} "
                         "(draw a validation set from 'train' with train_val_split)")
    return split


# ---------------------------------------------------------------------------------------------
# CIFAR-10 (python pickle layout, directory or tar.gz)
# ---------------------------------------------------------------------------------------------

class _CifarUnpickler(pickle.Unpickler):
    """Only the constructors a CIFAR batch (numpy array + lists/bytes/dicts) needs. Official
    batches were pickled by Python 2 + numpy 1 (``numpy.core``); newer ones name ``numpy._core``."""

    _ALLOWED = {("_codecs", "encode"), ("numpy", "ndarray"), ("numpy", "dtype"),
                ("numpy.core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
                ("numpy.core.numeric", "_frombuffer")}

    def find_class(self, module, name):
        generic = module.replace("numpy._core", "numpy.core", 1)
        if (generic, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} (not part of a "
                                         "CIFAR-10 batch)")
        if generic.startswith("numpy.core"):
            for mod in (module, generic.replace("numpy.core", "numpy._core", 1), generic):
                try:
                    return getattr(importlib.import_module(mod), name)
                except (ImportError, AttributeError):
                    continue
        return super().find_class(module, name)


def _parse_cifar_batch(raw: bytes, where: str, info: DatasetInfo):
    try:
        obj = _CifarUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except Exception as e:  # any unpickling failure means a damaged or foreign file
        raise _fail(info, f"{where} is not a readable CIFAR-10 batch ({type(e).__name__}: {e}); "
                          "the file is truncated, corrupt or not a CIFAR-10 pickle") from None
    if not isinstance(obj, dict):
        raise _fail(info, f"{where} holds a {type(obj).__name__}, expected a dict with "
                          "b'data' and b'labels'")
    data = obj.get(b"data", obj.get("data"))
    labels = obj.get(b"labels", obj.get("labels"))
    if data is None or labels is None:
        keys = sorted(k.decode() if isinstance(k, bytes) else str(k) for k in obj)
        raise _fail(info, f"{where} lacks b'data' or b'labels' (keys: {keys})")
    data = np.asarray(data)
    c, h, w = info.shape
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != c * h * w:
        raise _fail(info, f"{where}: b'data' is {data.dtype} with shape {data.shape}, expected "
                          f"uint8 [N, {c * h * w}]")
    try:
        labels = np.asarray(labels)
    except Exception as e:
        raise _fail(info, f"{where}: b'labels' is not a list of ints ({e})") from None
    if labels.ndim != 1 or labels.dtype.kind not in "iu" or len(labels) != len(data):
        raise _fail(info, f"{where}: b'labels' must be {len(data)} ints (one per image), got "
                          f"{labels.dtype} with shape {labels.shape}")
    _check_labels(labels, info, where)
    return data.reshape(-1, c, h, w), labels.astype(np.int64)


def _check_labels(labels: np.ndarray, info: DatasetInfo, where: str) -> None:
    if labels.size and (labels.min() < 0 or labels.max() >= info.num_classes):
        bad = labels[(labels < 0) | (labels >= info.num_classes)][0]
        raise _fail(info, f"{where}: label {int(bad)} is out of range 0..{info.num_classes - 1}")


def _find_cifar(roots: list[Path]):
    """Return (kind, path, tried) with kind 'dir' or 'tar' (path None when nothing matched)."""
    tried = []
    for root in roots:
        if root.is_file():
            if root.name.endswith((".tar.gz", ".tgz", ".tar")):
                return "tar", root, tried
            tried.append(f"{root} (a file, but not a .tar.gz archive)")
            continue
        if not root.is_dir():
            tried.append(f"{root} (no such directory)")
            continue
        for d in (root / _CIFAR_DIR, root):
            if not d.is_dir():
                tried.append(f"{d} (no such directory)")
            elif any((d / f).is_file() for f in _CIFAR_ALL_FILES):
                return "dir", d, tried
            else:
                tried.append(f"{d} (no data_batch_1..5 / test_batch inside)")
        arch = root / _CIFAR_ARCHIVE
        if arch.is_file():
            return "tar", arch, tried
        tried.append(f"{arch} (no such file)")
    return None, None, tried


def _load_cifar10(roots: list[Path], split: str):
    info = DATASET_INFO["cifar10"]
    kind, path, tried = _find_cifar(roots)
    if kind is None:
        raise _fail(info, "dataset not found.", tried, missing=True)
    files = _CIFAR_TRAIN_FILES if split == "train" else _CIFAR_TEST_FILES
    raws = {}
    if kind == "dir":
        missing = [f for f in files if not (path / f).is_file()]
        if missing:
            raise _fail(info, f"{path} is incomplete: missing {', '.join(missing)} "
                              f"(needed for the {split} split)")
        for f in files:
            raws[f] = ((path / f).read_bytes(), str(path / f))
    else:
        try:
            with tarfile.open(path, "r:*") as tar:
                for member in tar:  # one sequential pass: gzip streams are slow to seek back
                    base = member.name.rsplit("/", 1)[-1]
                    if base in files and member.isfile() and base not in raws:
                        raws[base] = (tar.extractfile(member).read(), f"{path}:{member.name}")
                        if len(raws) == len(files):
                            break
        except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
            raise _fail(info, f"{path} is not a readable tar archive ({type(e).__name__}: {e}); "
                              "it may be truncated or corrupt") from None
        missing = [f for f in files if f not in raws]
        if missing:
            raise _fail(info, f"archive {path} lacks {', '.join(missing)} (needed for the "
                              f"{split} split)")
    xs, ys = zip(*(_parse_cifar_batch(raw, where, info) for raw, where in
                   (raws[f] for f in files)))
    x = np.concatenate(xs) if len(xs) > 1 else np.ascontiguousarray(xs[0])
    y = np.concatenate(ys)
    if not x.flags.writeable:
        x = x.copy()
    return x, y


# ---------------------------------------------------------------------------------------------
# MNIST / Fashion-MNIST (IDX files)
# ---------------------------------------------------------------------------------------------

def _idx_names(base: str) -> list[str]:
    dotted = base.replace("-idx", ".idx")          # some mirrors use train-images.idx3-ubyte
    return [base + ".gz", base, dotted + ".gz", dotted]


def _find_idx_dir(roots: list[Path], name: str, split: str):
    """Return (dir, {'images': path, 'labels': path}, tried); dir None when nothing matched."""
    tried = []
    sub = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}[name]
    for root in roots:
        if not root.is_dir():
            tried.append(f"{root} ({'not a directory' if root.exists() else 'no such directory'})")
            continue
        for d in (root, root / "raw", root / sub / "raw"):   # plain, and torchvision's layout
            if not d.is_dir():  # root is one: its optional raw/ layouts are not worth a line
                continue
            found = {}
            for kind in ("images", "labels"):
                for fname in _idx_names(_IDX_BASES[(split, kind)]):
                    if (d / fname).is_file():
                        found[kind] = d / fname
                        break
            if found:
                return d, found, tried
            tried.append(f"{d} (no {_IDX_BASES[(split, 'images')]}[.gz] inside)")
    return None, {}, tried


def _read_idx(path: Path, ndim: int, info: DatasetInfo) -> np.ndarray:
    """Parse an unsigned-byte IDX file (gzip detected by content, not by name)."""
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as e:
            raise _fail(info, f"{path} is a damaged gzip file ({type(e).__name__}: {e}); it is "
                              "probably truncated, download it again") from None
    expect_magic = 0x0800 | ndim
    if len(raw) < 4:
        raise _fail(info, f"{path} is truncated: {len(raw)} bytes, too short for an IDX header")
    magic = struct.unpack(">I", raw[:4])[0]
    if magic != expect_magic:
        raise _fail(info, f"{path} has IDX magic number 0x{magic:08x}, expected "
                          f"0x{expect_magic:08x} (unsigned bytes, {ndim} dimension(s)); it is "
                          "not the right IDX file or is corrupt")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise _fail(info, f"{path} is truncated inside its IDX header")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    need = math.prod(dims)
    have = len(raw) - header
    if have != need:
        what = "truncated" if have < need else "too long"
        raise _fail(info, f"{path} is {what}: its header promises dims {list(dims)} = {need} "
                          f"bytes of data, the file holds {have}")
    return np.frombuffer(raw, dtype=np.uint8, count=need, offset=header).reshape(dims).copy()


def _load_idx_dataset(name: str, roots: list[Path], split: str):
    info = DATASET_INFO[name]
    d, found, tried = _find_idx_dir(roots, name, split)
    if d is None:
        raise _fail(info, "dataset not found.", tried, missing=True)
    if "labels" not in found or "images" not in found:
        lack = "labels" if "labels" not in found else "images"
        raise _fail(info, f"{d} is incomplete: it has {found.get('images') or found.get('labels')}"
                          f" but no {_IDX_BASES[(split, lack)]}[.gz]")
    x = _read_idx(found["images"], 3, info)
    y = _read_idx(found["labels"], 1, info)
    c, h, w = info.shape
    if x.shape[1:] != (h, w):
        raise _fail(info, f"{found['images']} holds images of {x.shape[1]}x{x.shape[2]} pixels, "
                          f"expected {h}x{w}")
    if len(x) != len(y):
        raise _fail(info, f"{found['images']} has {len(x)} images but {found['labels']} has "
                          f"{len(y)} labels")
    _check_labels(y, info, str(found["labels"]))
    return x.reshape(-1, c, h, w), y.astype(np.int64)


# ---------------------------------------------------------------------------------------------
# public loading API
# ---------------------------------------------------------------------------------------------

def locate_dataset(name: str, data_dir=None) -> Path:
    """Where the dataset's files (train split) would be read from; raises DatasetNotFoundError
    like :func:`load_dataset`. Useful for ``info``-style commands that should not load data."""
    name = canonical_name(name)
    roots = _roots(name, data_dir)
    if name == "cifar10":
        kind, path, tried = _find_cifar(roots)
    else:
        path, _, tried = _find_idx_dir(roots, name, "train")
    if path is None:
        raise _fail(DATASET_INFO[name], "dataset not found.", tried, missing=True)
    return path


def load_dataset(name: str, data_dir=None, split: str = "train"):
    """Load a whole split as ``(images uint8 (N, C, H, W), labels int64 (N,))``.

    ``name`` is one of :func:`dataset_names`; ``data_dir`` the folder holding the files (see
    ``DATASET_INFO[name].layout``; ``None`` tries :func:`default_data_dirs`). Raises
    :class:`DatasetNotFoundError` / :class:`DatasetError` with a how-to-fix message.
    """
    name = canonical_name(name)
    split = _check_split(split)
    roots = _roots(name, data_dir)
    if name == "cifar10":
        return _load_cifar10(roots, split)
    return _load_idx_dataset(name, roots, split)


#: Seed of the train/validation split that ``difflogic train`` and ``difflogic teacher`` use
#: (a teacher must never have trained on the run's validation images).
SPLIT_SEED = 0


def to_unit_float(images: np.ndarray, device=None) -> torch.Tensor:
    """uint8 images -> float32 ``images / 255`` (in [0, 1]) on ``device`` (None = CPU): the one
    conversion every loader and evaluation loop uses, so all of them feed the encoder the
    same values.  On the CPU numpy's float32 division (exact-rounded like torch's, without
    thread-pool overhead on a small tensor); elsewhere the uint8 array is moved (4x fewer bytes
    than float32) and converted on the device.  A float32 table (N, F) of features passes
    unchanged: its encoder's thresholds are in the features' own units."""
    if images.dtype == np.float32:
        x = torch.from_numpy(np.ascontiguousarray(images))
        return x if device is None else x.to(device)
    if device is None or torch.device(device).type == "cpu":
        return torch.from_numpy(np.divide(images, np.float32(255.0), dtype=np.float32))
    return F.exact_div(torch.from_numpy(images).to(device), 255.0)  # see functional.exact_div


def train_val_split(n: int, val_size: int, seed: int = 0):
    """Deterministic random split of ``range(n)`` into ``(train_idx, val_idx)``, both sorted
    int64 arrays. The paper holds out 5,000 CIFAR-10 / 10,000 MNIST training images
    (``DATASET_INFO[name].val_size``); the same seed always gives the same split."""
    n = _int_arg("n", n, 1)
    val_size = _int_arg("val_size", val_size, 0)
    seed = _int_arg("seed", seed, 0)
    if val_size >= n:
        raise ValueError(f"val_size must be smaller than n={n} so that training data remains, "
                         f"got {val_size}")
    perm = np.random.default_rng([seed, 0x5EED]).permutation(n)
    return np.sort(perm[val_size:]).astype(np.int64), np.sort(perm[:val_size]).astype(np.int64)


def _int_arg(name: str, value, minimum: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


# ---------------------------------------------------------------------------------------------
# batch loader
# ---------------------------------------------------------------------------------------------

_STATE_VERSION = 1
_CONFIG_KEYS = ("seed", "batch_size", "shuffle", "drop_last", "augment", "crop_padding",
                "num_samples")


class BatchLoader:
    """Deterministic, resumable mini-batch iterator over uint8 numpy images (or float32 tables).

    Yields ``(x, y)``: ``x`` float32 ``(B, C, H, W)`` equal to ``images / 255`` (so in [0, 1]),
    ``y`` int64 ``(B,)``, both on ``device`` (CPU tensors when None; the uint8 batch is moved
    first, so the float conversion happens on the device).  A float32 table ``(N, F)`` (own
    data's features) is handed out as it is, without scaling or augmentation.

    The loader is a cursor ``(epoch, step)``: ``for x, y in loader`` yields the *remaining*
    batches of the current epoch and advances the cursor *before* yielding each batch, so
    ``state_dict()`` taken after processing a batch resumes with the next one (after an epoch's
    last batch it already points at step 0 of the next epoch). :meth:`steps` iterates across
    epochs for step-based training. Epoch ``e`` uses permutation ``rng([seed, 0, e])`` and batch
    ``b`` its augmentation ``rng([seed, 1, e, b])``, so nothing depends on history.

    Augmentation (``augment=True``, meant for CIFAR-10): per image a random horizontal flip and a
    random crop of the image zero-padded by ``crop_padding`` pixels (vectorised, one gather).
    ``indices`` restricts the loader to a subset (e.g. ``train_idx`` from
    :func:`train_val_split`) without copying the images. ``drop_last`` defaults to ``shuffle``
    (full batches for training, every sample for evaluation).

    Soft targets (``soft_targets``, for distillation: a teacher's class scores from
    :mod:`difflogic.teacher`): a float array ``(N, 2, classes)`` indexed like ``images``, row
    ``[i, 0]`` for image ``i`` as stored and ``[i, 1]`` for it flipped horizontally.  The loader
    then yields ``(x, y, t)``, where ``t`` is the row of the view the batch holds (a crop keeps
    the scores of its uncropped view: the teacher was trained on such crops).

    ``suspend_augment`` (an attribute, default False) makes an augmenting loader hand out the
    batches as stored, in the same order, while it is True: the training loop sets it per step
    for a straight-through polish without augmentation.  It is a switch of the moment, not a
    setting, so :meth:`state_dict` leaves it out and a resumed run's loop sets it again.

    ``shard`` (an attribute, default ``(0, 1)``) = ``(rank, ranks)`` makes each batch the
    rank's contiguous share of the batch every rank would draw (for data-parallel training:
    the ranks together see exactly the single-process batch, augmented alike).  Like
    ``suspend_augment`` it is left out of the state, so a run resumes on any number of ranks.
    """

    def __init__(self, images, labels, batch_size: int, shuffle: bool = True, seed: int = 0, *,
                 augment: bool = False, drop_last: bool | None = None, indices=None,
                 device=None, crop_padding: int = 4, soft_targets=None):
        table = isinstance(images, np.ndarray) and images.dtype == np.float32 and images.ndim == 2
        if not table and (not isinstance(images, np.ndarray) or images.dtype != np.uint8
                          or images.ndim != 4):
            raise TypeError("images must be a uint8 numpy array of shape (N, C, H, W) (or a "
                            "float32 table (N, F)), got "
                            + (f"{images.dtype} {images.shape}" if isinstance(images, np.ndarray)
                               else type(images).__name__))
        if table and augment:
            raise ValueError("augment flips and crops images; a table (N, F) of features has "
                             "nothing to flip: pass augment=False")
        labels = np.asarray(labels)
        if labels.ndim != 1 or labels.dtype.kind not in "iu" or len(labels) != len(images):
            raise ValueError(f"labels must be a 1-D integer array with one label per image "
                             f"({len(images)}), got {labels.dtype} {labels.shape}")
        self.images = images
        self.labels = labels.astype(np.int64, copy=False)
        self.batch_size = _int_arg("batch_size", batch_size, 1)
        self.seed = _int_arg("seed", seed, 0)
        for flag, value in (("shuffle", shuffle), ("augment", augment)):
            if not isinstance(value, (bool, np.bool_)):
                raise TypeError(f"{flag} must be a bool, got {value!r}")
        self.shuffle, self.augment = bool(shuffle), bool(augment)
        if drop_last is None:
            drop_last = self.shuffle
        if not isinstance(drop_last, (bool, np.bool_)):
            raise TypeError(f"drop_last must be a bool or None, got {drop_last!r}")
        self.drop_last = bool(drop_last)
        self.crop_padding = _int_arg("crop_padding", crop_padding, 0)
        self.suspend_augment = False
        self.shard = (0, 1)
        if indices is None:
            self.indices = None
            n = len(images)
        else:
            idx = np.asarray(indices)
            if idx.ndim != 1 or (idx.size and idx.dtype.kind not in "iu"):
                raise ValueError(f"indices must be a 1-D integer array, got {idx.dtype} {idx.shape}")
            idx = idx.astype(np.int64, copy=False)
            if idx.size and (idx.min() < 0 or idx.max() >= len(images)):
                raise ValueError(f"indices must lie in [0, {len(images)}), got values "
                                 f"{int(idx.min())}..{int(idx.max())}")
            self.indices = idx
            n = len(idx)
        self.num_samples = n
        if n == 0:
            raise ValueError("the loader has no samples (empty images or indices)")
        if self.drop_last and n < self.batch_size:
            raise ValueError(f"batch_size={self.batch_size} exceeds the {n} samples with "
                             "drop_last=True, so an epoch would have no batches; lower "
                             "batch_size or pass drop_last=False")
        if soft_targets is not None:
            st = soft_targets
            if not isinstance(st, np.ndarray) or st.dtype.kind != "f" or st.ndim != 3 or \
                    st.shape[:2] != (len(images), 2):
                raise ValueError(f"soft_targets must be a float array of shape ({len(images)}, 2, "
                                 f"classes) (plain and flipped view of every image), got "
                                 + (f"{st.dtype} {st.shape}" if isinstance(st, np.ndarray)
                                    else type(st).__name__))
            soft_targets = torch.from_numpy(np.ascontiguousarray(st, dtype=np.float32))
        self.soft_targets = soft_targets
        self.device = None if device is None else torch.device(device)
        self.epoch = 0
        self.step = 0

    # -- position -----------------------------------------------------------------------------
    def __len__(self) -> int:
        """Batches per epoch."""
        n, b = self.num_samples, self.batch_size
        return n // b if self.drop_last else -(-n // b)

    @property
    def global_step(self) -> int:
        """Batches handed out since epoch 0 step 0."""
        return self.epoch * len(self) + self.step

    def state_dict(self) -> dict:
        """Cursor plus the settings that determine the batches (plain ints/bools: safe for
        ``torch.load(weights_only=True)`` and JSON)."""
        state = {"version": _STATE_VERSION, "epoch": self.epoch, "step": self.step}
        state.update({k: getattr(self, k) for k in _CONFIG_KEYS})
        return state

    def load_state_dict(self, state: dict) -> None:
        """Restore the cursor. The settings must match this loader's, otherwise the resumed run
        would silently see different batches, so a mismatch raises ValueError."""
        if not isinstance(state, dict):
            raise TypeError(f"loader state must be a dict, got {type(state).__name__}")
        missing = [k for k in ("version", "epoch", "step") + _CONFIG_KEYS if k not in state]
        if missing:
            raise ValueError(f"loader state lacks {missing}; it was not made by "
                             "BatchLoader.state_dict()")
        if state["version"] != _STATE_VERSION:
            raise ValueError(f"loader state version {state['version']!r} is not supported "
                             f"(expected {_STATE_VERSION})")
        diff = [f"{k}: {state[k]!r} in the state vs {getattr(self, k)!r} here"
                for k in _CONFIG_KEYS if state[k] != getattr(self, k)]
        if diff:
            raise ValueError("loader state does not match this loader (" + "; ".join(diff) +
                             "); resume with the same data settings to see the same batches")
        epoch = _int_arg("state['epoch']", state["epoch"], 0)
        step = _int_arg("state['step']", state["step"], 0)
        if step >= len(self):
            raise ValueError(f"state['step']={step} is out of range for {len(self)} batches "
                             "per epoch")
        self.epoch, self.step = epoch, step

    # -- iteration ----------------------------------------------------------------------------
    def _order(self, epoch: int) -> np.ndarray:
        n = self.num_samples
        if self.shuffle:
            perm = np.random.default_rng([self.seed, 0, epoch]).permutation(n)
            return perm if self.indices is None else self.indices[perm]
        return np.arange(n) if self.indices is None else self.indices

    def _batch(self, order: np.ndarray, epoch: int, b: int):
        sel = order[b * self.batch_size:(b + 1) * self.batch_size]
        mine = self._my_share(len(sel))
        flip = np.zeros(len(sel), dtype=bool)[mine]
        if self.augment and not self.suspend_augment:
            rng = np.random.default_rng([self.seed, 1, epoch, b])
            flip, dy, dx = (v[mine] for v in flip_crop_params(rng, len(sel), self.crop_padding))
            xb = flip_crop(self.images[sel[mine]], flip, dy, dx, self.crop_padding)
        else:
            xb = self.images[sel[mine]]
        sel = sel[mine]
        batch = [None, torch.from_numpy(self.labels[sel])]
        if self.soft_targets is not None:
            batch.append(self.soft_targets[torch.from_numpy(sel), torch.from_numpy(flip.astype(np.int64))])
        batch[0] = to_unit_float(xb, self.device)
        if self.device is not None:
            batch = [t.to(self.device) for t in batch]
        return tuple(batch)

    def _my_share(self, n: int) -> slice:
        """The rows of an ``n``-image batch that belong to this loader's ``shard``."""
        rank, ranks = self.shard
        if ranks == 1:
            return slice(None)
        if n % ranks:
            raise ValueError(f"a batch of {n} images does not split evenly over {ranks} ranks")
        per = n // ranks
        return slice(rank * per, (rank + 1) * per)

    def __iter__(self):
        epoch = self.epoch
        order = self._order(epoch)
        nb = len(self)
        while self.epoch == epoch and self.step < nb:   # stops if load_state_dict moved us
            b = self.step
            batch = self._batch(order, epoch, b)
            if b + 1 == nb:
                self.epoch, self.step = epoch + 1, 0
            else:
                self.step = b + 1
            yield batch

    def steps(self, num_steps: int | None = None):
        """Yield ``num_steps`` batches (forever when None), continuing across epochs."""
        if num_steps is not None:
            num_steps = _int_arg("num_steps", num_steps, 0)
        done = 0
        while num_steps is None or done < num_steps:
            before = done
            for batch in self:
                yield batch
                done += 1
                if num_steps is not None and done >= num_steps:
                    return
            if done == before:  # cannot happen with a consistent cursor; never spin forever
                raise RuntimeError(f"BatchLoader produced no batch at epoch {self.epoch}, "
                                   f"step {self.step}")

    def __repr__(self) -> str:
        return (f"BatchLoader(num_samples={self.num_samples}, batch_size={self.batch_size}, "
                f"shuffle={self.shuffle}, augment={self.augment}, drop_last={self.drop_last}, "
                f"seed={self.seed}, epoch={self.epoch}, step={self.step})")


def make_loader(images, labels, batch_size: int, shuffle: bool = True, seed: int = 0,
                augment: bool = False, drop_last: bool | None = None, **kwargs) -> BatchLoader:
    """Build a :class:`BatchLoader` (keyword extras: ``indices``, ``device``, ``crop_padding``)."""
    return BatchLoader(images, labels, batch_size, shuffle, seed, augment=augment,
                       drop_last=drop_last, **kwargs)


def flip_crop_params(rng: np.random.Generator, n: int, pad: int):
    """Per image: flip or not, and the crop's offsets in the image zero-padded by ``pad``."""
    flip = rng.random(n) < 0.5
    dy = rng.integers(0, 2 * pad + 1, n)
    dx = rng.integers(0, 2 * pad + 1, n)
    return flip, dy, dx


def flip_crop(xb: np.ndarray, flip, dy, dx, pad: int) -> np.ndarray:
    """Horizontal flips + crops from a zero-padded copy (one gather over a sliding-window
    view: contiguous HxW blocks instead of per-pixel fancy indexing)."""
    n, c, h, w = xb.shape
    padded = np.zeros((n, c, h + 2 * pad, w + 2 * pad), dtype=xb.dtype)
    padded[:, :, pad:pad + h, pad:pad + w] = xb
    out = sliding_window_view(padded, (h, w), axis=(2, 3))[np.arange(n), :, dy, dx]
    out[flip] = out[flip, :, :, ::-1]
    return out


# ---------------------------------------------------------------------------------------------
# one entry for every dataset: the built-in names and own data
# ---------------------------------------------------------------------------------------------

#: What ``--dataset`` accepts besides the built-in names.
OWN_FORMS = ("a .npz file (x, y, optionally x_test, y_test), a .csv table, or a folder with "
             "one subfolder of PNG/JPEG images per class")
#: Share of each class held out as the test split when own data brings no test part.
TEST_FRACTION = 0.2
#: Share of the training split held out for validation in own data (``--val-size`` overrides).
VAL_FRACTION = 0.1
#: Splits :meth:`Dataset.load` returns ("all" = train then test).
SPLITS = ("train", "test", "all")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
IMAGE_MODES = ("RGB", "L")
#: Label columns a CSV table is searched for (in this order, any case) without --label-column.
LABEL_COLUMNS = ("label", "class", "target", "y")
#: Most distinct values a text column may hold (more looks like an identifier, not categories).
MAX_LEVELS = 256
#: CSV cells that mean "no value" (compared in lower case, stripped).
MISSING = ("", "nan", "na", "n/a", "null", "?")
_CACHE_VERSION = 1
_OWN_LAYOUT = {
    "npz": "numpy.savez(FILE, x=..., y=...) with x float features (N, F) or uint8 images "
           "(N, C, H, W) / (N, H, W), y integer labels 0..C-1; optionally x_test, y_test, "
           "classes, feature_names",
    "csv": "a header row naming the columns, then one row per example: numeric or text "
           "feature columns and a label column",
    "folder": "FOLDER/<class>/*.png|jpg (or FOLDER/train/<class>/... and FOLDER/test/<class>/...)",
}


@dataclass(frozen=True)
class Dataset:
    """A dataset opened by :func:`open_dataset`: its facts and its splits.

    ``name`` is what a run records (a built-in name, or own data's absolute path); ``input``
    (own data only) is the input spec a model keeps in its config (``config["input"]``) so
    that ``eval`` and the exports rebuild the input pipeline without the training data: the
    kind ("image": uint8 (C, H, W), "table": float32 (F,)), the shape, the class names, the
    options the data was opened with, and for a CSV table its columns and categorical levels."""

    name: str
    info: DatasetInfo
    input: dict | None
    read: Callable = field(repr=False)

    def load(self, split: str = "train"):
        """``(x, y)``: uint8 (N, C, H, W) images or float32 (N, F) features, int64 labels;
        memory-mapped for own data.  ``split``: "train", "test" or "all" (train, then test)."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
        if split != "all":
            return self.read(split)
        (x, y), (xt, yt) = self.read("train"), self.read("test")
        return np.concatenate([x, xt]), np.concatenate([y, yt])


def dataset_spec(spec) -> str:
    """The name a run records for ``--dataset``: a built-in dataset's canonical name, or own
    data's absolute path (a .npz or .csv file, or a folder; relative to the current folder).
    A built-in name wins over a folder of the same name (write ``./mnist`` for the folder)."""
    if not isinstance(spec, (str, os.PathLike)):
        raise TypeError(f"dataset must be a name or a path, got {type(spec).__name__}")
    text = str(spec)
    try:
        return canonical_name(text)
    except ValueError:
        pass
    path = Path(text).expanduser()
    if not (path.suffix.lower() in (".npz", ".csv") or path.is_dir()):
        raise ValueError(f"unknown dataset {text!r}" + ("" if path.exists() else
                         " (no such file or folder)") + f"; expected one of "
                         f"{', '.join(dataset_names())}, or {OWN_FORMS}")
    if not path.exists():
        raise DatasetNotFoundError(f"{text}: no such file; give the path of {OWN_FORMS}")
    return str(path.resolve())


def open_dataset(spec, data_dir=None, *, image_size=None, image_mode=None, label_column=None,
                 categorical=None, input_spec: dict | None = None) -> Dataset:
    """Open a built-in dataset (``data_dir`` as in :func:`load_dataset`) or own data.

    Own data is decoded once into a memory-mapped copy under :func:`own_data_cache` (images
    to uint8, tables to float32 features with categorical columns one-hot), so data larger
    than memory trains from disk and a second open costs a file listing.  Options (own data
    only): ``image_size`` "HxW" and ``image_mode`` "RGB" / "L" for image folders,
    ``label_column`` and ``categorical`` (columns to one-hot although numeric) for CSV tables.
    ``input_spec``: a model's ``config["input"]``; its options are used, and the data is
    encoded exactly as the model was trained (same columns, levels and class order)."""
    name = dataset_spec(spec)
    given = {"image_size": image_size, "image_mode": image_mode, "label_column": label_column,
             "categorical": categorical}
    if name in DATASET_INFO:
        for key, value in given.items():
            if value is not None:
                raise ValueError(f"--{key.replace('_', '-')} applies to own data (an image "
                                 f"folder or a CSV table), not to the built-in {name}")
        return Dataset(name, DATASET_INFO[name], None,
                       lambda split: load_dataset(name, data_dir, split))
    path = Path(name)
    fmt = own_format(path)
    if input_spec is not None:
        given = _options_from_spec(path, given, input_spec)
    return _open_own(path, fmt, own_options(path, fmt, **given), input_spec)


def own_format(path: Path) -> str:
    """"npz", "csv" or "folder" for an own-data path."""
    if path.is_dir():
        return "folder"
    return {".npz": "npz", ".csv": "csv"}[path.suffix.lower()]


def own_data_cache() -> Path:
    """Where own data's decoded copies live: ``$DIFFLOGIC_DATA/own-data-cache`` if that
    variable is set, else ``~/.cache/difflogic/own-data-cache`` (one folder per source and
    options; safe to delete, it is rebuilt on the next use)."""
    env = os.environ.get("DIFFLOGIC_DATA")
    base = Path(env).expanduser() if env else Path.home() / ".cache" / "difflogic"
    return base / "own-data-cache"


def _options_from_spec(path: Path, given: dict, spec: dict) -> dict:
    """A model's recorded options; a differing explicit option is refused."""
    saved = dict(spec.get("options", {}))
    for key, value in given.items():
        if value is not None and own_options(path, spec["format"], **{key: value})[key] != \
                saved.get(key):
            raise ValueError(f"--{key.replace('_', '-')} {value} differs from the model's "
                             f"({saved.get(key)}); the model reads its input as it was trained")
    return {k: saved.get(k) for k in given}


def own_options(path: Path, fmt: str, image_size=None, image_mode=None, label_column=None,
                categorical=None) -> dict:
    """The options of ``fmt`` in a canonical form (they key the decoded copy); an option that
    does not apply to the format is refused."""
    applies = {"folder": ("image_size", "image_mode"), "csv": ("label_column", "categorical"),
               "npz": ()}[fmt]
    for key, value in (("image_size", image_size), ("image_mode", image_mode),
                       ("label_column", label_column), ("categorical", categorical)):
        if value is not None and key not in applies:
            kind = {"image_size": "image folders", "image_mode": "image folders"}.get(
                key, "CSV tables")
            raise ValueError(f"--{key.replace('_', '-')} applies to {kind}, not to {path.name}")
    if fmt == "folder":
        return {"image_size": parse_image_size(image_size), "image_mode": _image_mode(image_mode)}
    if fmt == "csv":
        names = categorical.split(",") if isinstance(categorical, str) else categorical or []
        return {"label_column": label_column,
                "categorical": sorted({str(c).strip() for c in names if str(c).strip()})}
    return {}


def parse_image_size(size) -> list[int] | None:
    """"HxW" (or "N" for N x N, or a pair) -> [H, W]; None stays None."""
    if size is None:
        return None
    parts = size.lower().split("x") if isinstance(size, str) else list(size)
    try:
        hw = [int(p) for p in parts] * (2 if len(parts) == 1 else 1)
    except (TypeError, ValueError):
        hw = []
    if len(hw) != 2 or min(hw) < 1:
        raise ValueError(f"--image-size must be HxW in pixels (e.g. 32x32) or one number for a "
                         f"square, got {size!r}")
    return hw


def _image_mode(mode) -> str | None:
    if mode is not None and mode not in IMAGE_MODES:
        raise ValueError(f"--image-mode must be RGB (3 channels) or L (grey, 1 channel), "
                         f"got {mode!r}")
    return mode


# ---------------------------------------------------------------------------------------------
# own data: the decoded copy
# ---------------------------------------------------------------------------------------------

def _open_own(path: Path, fmt: str, options: dict, spec: dict | None) -> Dataset:
    """The cached copy of ``path`` (built when missing): the plain one, or with ``spec`` the
    plain one when its schema is the model's, else one encoded by the model's schema."""
    if fmt == "csv" and options["label_column"] is None and spec is None:
        options = {**options, "label_column": find_label_column(path, _csv_header(path))}
    key = {"version": _CACHE_VERSION, "source": str(path), "id": _source_identity(path, fmt),
           "options": options}
    plain = _cache_folder(path, key)
    folder = plain
    if spec is not None:
        folder = _cache_folder(path, {**key, "schema": schema_of(spec)})
        if not _complete(folder) and _complete(plain) and \
                schema_of(_read_meta(plain)["input"]) == schema_of(spec):
            folder = plain
    if not _complete(folder):
        _build_cache(folder, lambda out: _BUILDERS[fmt](path, options, spec, out))
    meta = _read_meta(folder)
    inp = meta["input"]
    n = meta["train_size"]
    info = DatasetInfo(name=str(path), title=path.name, shape=tuple(inp["shape"]),
                       num_classes=len(inp["classes"]), classes=tuple(inp["classes"]),
                       train_size=n, test_size=meta["test_size"],
                       val_size=max(1, int(VAL_FRACTION * n + 0.5)), layout=_OWN_LAYOUT[fmt],
                       fix=f"write {path.name} in that layout", kind=inp["kind"])
    return Dataset(str(path), info, inp, lambda split: _read_split(folder, split))


def schema_of(spec: dict) -> dict:
    """The parts of an input spec that fix how data is encoded (not where it came from)."""
    keys = ("kind", "format", "shape", "classes", "mode", "columns", "features", "label",
            "options")
    return {k: spec.get(k) for k in keys}


def _source_identity(path: Path, fmt: str) -> list:
    """Size and modification time of the file, or of every image in the folder."""
    if fmt != "folder":
        st = path.stat()
        return [st.st_size, st.st_mtime_ns]
    h = hashlib.sha256()
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for f in sorted(files):
            if f.lower().endswith(IMAGE_SUFFIXES):
                st = os.stat(os.path.join(root, f))
                h.update(f"{os.path.relpath(os.path.join(root, f), path)}|{st.st_size}|"
                         f"{st.st_mtime_ns}\n".encode())
    return [h.hexdigest()]


def _cache_folder(path: Path, key: dict) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    return own_data_cache() / f"{path.stem[:40]}-{digest}"


def _complete(folder: Path) -> bool:
    return (folder / "meta.json").is_file()


def _read_meta(folder: Path) -> dict:
    return json.loads((folder / "meta.json").read_text())


def _build_cache(folder: Path, build) -> None:
    """Decode into a temporary folder beside ``folder`` and rename it into place once
    complete (``meta.json`` last), so a copy is whole or absent; a process that loses a race
    with another one building the same copy keeps the other's."""
    tmp = folder.with_name(f".{folder.name}.{os.getpid()}.tmp")
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    except OSError as e:
        raise DatasetError(f"cannot write the decoded copy of own data to {folder.parent} "
                           f"({e.strerror or e}); set DIFFLOGIC_DATA to a writable "
                           "folder") from None
    try:
        meta = build(tmp)
        atomic_write(tmp / "meta.json", lambda fh: fh.write(json.dumps(meta).encode()))
        try:
            os.replace(tmp, folder)
        except OSError:
            if not _complete(folder):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _read_split(folder: Path, split: str):
    x = np.load(folder / f"{split}_x.npy", mmap_mode="r")
    return x, np.load(folder / f"{split}_y.npy")


def _new_rows(out: Path, split: str, dtype, shape) -> np.ndarray:
    """A memory-mapped ``{split}_x.npy`` of ``shape`` in the copy being built."""
    return np.lib.format.open_memmap(out / f"{split}_x.npy", "w+", dtype, tuple(shape))


def _save_labels(out: Path, split: str, labels) -> None:
    np.save(out / f"{split}_y.npy", np.asarray(labels, dtype=np.int64))


def holdout_split(labels: np.ndarray, fraction: float = TEST_FRACTION,
                  seed: int = SPLIT_SEED) -> np.ndarray:
    """Which rows form the test split of own data without one: ``round(fraction * n_c)`` rows
    of each class c, drawn by a fixed permutation (so every run and ``eval`` see the same
    split).  Returns a bool mask."""
    labels = np.asarray(labels)
    perm = np.random.default_rng([seed, 0x7E57]).permutation(len(labels))
    is_test = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        rows = perm[labels[perm] == c]
        is_test[rows[:int(fraction * len(rows) + 0.5)]] = True
    return is_test


def _split_or_refuse(path: Path, labels: np.ndarray, spec: dict | None) -> np.ndarray:
    """The held-out test rows; training needs some (a model's own reading, ``spec``, not)."""
    is_test = holdout_split(labels)
    if spec is None and not is_test.any():
        raise DatasetError(f"{path}: too few examples ({len(labels)}) to hold out a test split "
                           f"({TEST_FRACTION:.0%} of each class); add examples, or bring a test "
                           "part (npz x_test/y_test, a folder's test/ subfolder)")
    return is_test


def _classes_present(path: Path, labels: np.ndarray, classes, where: str) -> None:
    """Every class needs training examples: a class without any cannot be learnt."""
    counts = np.bincount(labels, minlength=len(classes))
    if (counts == 0).any():
        c = int(np.argmin(counts))
        raise DatasetError(f"{path}: class {c} ({classes[c]!r}) has no examples in {where}; "
                           f"labels must be 0..{len(classes) - 1} with every class present "
                           "(relabel the classes, or drop the empty one)")


# ---------------------------------------------------------------------------------------------
# own data: .npz arrays
# ---------------------------------------------------------------------------------------------

def npz_arrays(path: Path) -> dict:
    """The arrays of an .npz file by name: members stored uncompressed (``numpy.savez``) are
    memory-mapped in place, compressed ones (``savez_compressed``) read into memory."""
    fix = f"write it with numpy.savez({path.name!r}, x=..., y=...)"
    try:
        with zipfile.ZipFile(path) as zf:
            infos = [i for i in zf.infolist() if i.filename.endswith(".npy")]
        return {i.filename[:-4]: _npz_member(path, i) for i in infos}
    except DatasetError:
        raise
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise DatasetError(f"{path} is not a readable .npz file ({e}); {fix}") from None


def _npz_member(path: Path, info: zipfile.ZipInfo) -> np.ndarray:
    name = info.filename[:-4]
    if info.compress_type != zipfile.ZIP_STORED:
        with np.load(path, allow_pickle=False) as z:
            return z[name]
    with open(path, "rb") as fh:
        fh.seek(info.header_offset)
        local = fh.read(30)
        if len(local) < 30 or local[:4] != b"PK\x03\x04":
            raise ValueError(f"damaged zip entry {info.filename}")
        name_len, extra_len = struct.unpack("<HH", local[26:30])
        fh.seek(info.header_offset + 30 + name_len + extra_len)
        major, _ = np.lib.format.read_magic(fh)
        read = (np.lib.format.read_array_header_1_0 if major == 1
                else np.lib.format.read_array_header_2_0)
        shape, fortran, dtype = read(fh)
        offset = fh.tell()
    if dtype.hasobject:
        raise DatasetError(f"{path}: array {name!r} holds Python objects; save plain numeric "
                           "arrays (numpy.savez with numbers and strings only)")
    if not math.prod(shape):
        return np.zeros(shape, dtype)
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape,
                     order="F" if fortran else "C")


def _npz_kind(path: Path, key: str, x: np.ndarray) -> tuple[str, tuple]:
    """("table", (F,)) for 2-D numbers, ("image", (C, H, W)) for uint8 3-D / 4-D arrays."""
    if x.ndim == 2 and x.dtype.kind in "fiub":
        return "table", (x.shape[1],)
    if x.ndim == 4 and x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):
        raise DatasetError(f"{path}: {key} looks channels-last {x.shape}; store images as "
                           f"(N, C, H, W): {key}.transpose(0, 3, 1, 2)")
    if x.ndim in (3, 4) and x.dtype == np.uint8:
        return "image", ((1,) + x.shape[1:] if x.ndim == 3 else x.shape[1:])
    if x.ndim in (3, 4):
        raise DatasetError(f"{path}: {key} holds {x.dtype} images; images must be uint8 0..255 "
                           f"of shape (N, C, H, W) or (N, H, W), e.g. "
                           f"({key} * 255).round().astype(numpy.uint8)")
    raise DatasetError(f"{path}: {key} has shape {x.shape} and dtype {x.dtype}; expected float "
                       "features (N, F) or uint8 images (N, C, H, W) / (N, H, W)")


def _npz_labels(path: Path, key: str, y: np.ndarray, n: int, num_classes=None) -> np.ndarray:
    """1-D integer labels 0..C-1, one per row of x."""
    if y.ndim != 1 or len(y) != n:
        raise DatasetError(f"{path}: {key} has shape {y.shape}, expected ({n},): one label per "
                           f"row of {key.replace('y', 'x', 1)}")
    if y.dtype.kind not in "iu":
        raise DatasetError(f"{path}: {key} holds {y.dtype}; labels must be integers 0..C-1 "
                           f"(e.g. {key}.astype(numpy.int64), or map class names to 0..C-1)")
    y = np.asarray(y, dtype=np.int64)
    top = num_classes if num_classes is not None else None
    bad = (y < 0) if top is None else (y < 0) | (y >= top)
    if bad.any():
        i = int(np.argmax(bad))
        raise DatasetError(f"{path}: {key}[{i}] = {int(y[i])} is not a class 0.."
                           f"{'C-1' if top is None else top - 1}; labels must be integers "
                           "0..C-1 (relabel them)")
    return y


def _npz_names(path: Path, arrays: dict, key: str, n: int, default) -> list[str]:
    if key not in arrays:
        return default
    names = [str(v) for v in np.asarray(arrays[key]).reshape(-1).tolist()]
    if len(names) != n:
        raise DatasetError(f"{path}: {key} names {len(names)} entries, expected {n}")
    return names


def _npz_classes(path: Path, arrays: dict, parts: dict, spec: dict | None) -> tuple:
    """({split: labels}, class names): the model's classes, else ``classes`` or 0..C-1 with
    every class among the training labels."""
    names = (spec or {}).get("classes")
    ys = {s: _npz_labels(path, ky, y, len(x), None if names is None else len(names))
          for s, (x, y, _, ky) in parts.items()}
    if names is None:
        count = 1 + max(int(y.max(initial=-1)) for y in ys.values())
        names = _npz_names(path, arrays, "classes", count, [str(c) for c in range(count)])
        _classes_present(path, ys["train"], names, "y")
    return ys, names


def _build_npz(path: Path, options: dict, spec: dict | None, out: Path) -> dict:
    a = npz_arrays(path)
    for key in ("x", "y"):
        if key not in a:
            raise DatasetError(f"{path} has no array {key!r} (it holds "
                               f"{', '.join(sorted(a)) or 'no arrays'}); "
                               f"save it with numpy.savez({path.name!r}, x=features_or_images, "
                               "y=labels)")
    if ("x_test" in a) != ("y_test" in a):
        raise DatasetError(f"{path} holds only one of x_test / y_test; give both or neither "
                           f"(without them {TEST_FRACTION:.0%} of each class is the test split)")
    kind, shape = _npz_kind(path, "x", a["x"])
    parts = {"train": (a["x"], a["y"], "x", "y")}
    if "x_test" in a:
        parts["test"] = (a["x_test"], a["y_test"], "x_test", "y_test")
    ys, names = _npz_classes(path, a, parts, spec)
    for s, (x, _, kx, _) in parts.items():
        if _npz_kind(path, kx, x) != (kind, shape) or (spec and list(shape) != spec["shape"]):
            want = spec["shape"] if spec else list(shape)
            raise DatasetError(f"{path}: {kx} has rows of shape {x.shape[1:]}, expected "
                               f"{tuple(want)} (as x / as the model was trained)")
    rows = {s: np.arange(len(y)) for s, y in ys.items()}
    if "test" not in parts:
        is_test = _split_or_refuse(path, ys["train"], spec)
        rows = {"train": np.flatnonzero(~is_test), "test": np.flatnonzero(is_test)}
        parts["test"] = parts["train"]
        ys["test"] = ys["train"]
    for s in ("train", "test"):
        _copy_rows(path, parts[s][2], parts[s][0], rows[s], kind, shape, out, s)
        _save_labels(out, s, ys[s][rows[s]])
    features = _npz_names(path, a, "feature_names", shape[0], [f"x{i}" for i in range(shape[0])]) \
        if kind == "table" else None
    inp = {"kind": kind, "format": "npz", "source": path.name, "shape": list(shape),
           "classes": names, "options": options}
    if kind == "table":
        inp.update(columns=[{"name": f} for f in features], features=features, label=None)
    return {"input": inp, "train_size": len(rows["train"]), "test_size": len(rows["test"])}


def _copy_rows(path: Path, key: str, x: np.ndarray, rows: np.ndarray, kind: str, shape,
               out: Path, split: str, chunk: int = 4096) -> None:
    """x[rows] into the copy, a chunk at a time (x may be larger than memory); features to
    float32, checked finite."""
    dest = _new_rows(out, split, np.float32 if kind == "table" else np.uint8,
                     (len(rows), *shape))
    for i in range(0, len(rows), chunk):
        sel = rows[i:i + chunk]
        block = np.asarray(x[sel])
        if kind == "table":
            block = block.astype(np.float32)
            bad = ~np.isfinite(block).all(1)
            if bad.any():
                j = int(sel[np.argmax(bad)])
                raise DatasetError(f"{path}: {key}[{j}] holds NaN or inf (or a number too large "
                                   "for float32); fill in or drop that row")
        dest[i:i + len(sel)] = block.reshape(len(sel), *shape)
    dest.flush()
    del dest


# ---------------------------------------------------------------------------------------------
# own data: CSV tables
# ---------------------------------------------------------------------------------------------

def _csv_rows(path: Path):
    """``(line number, cells)`` of every row that is not blank, header first; one-line errors
    for text that is not UTF-8 or not CSV."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            for row in reader:
                if any(c.strip() for c in row):
                    yield reader.line_num, row
    except UnicodeDecodeError as e:
        raise DatasetError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start}); save the "
                           "table as UTF-8 CSV") from None
    except csv.Error as e:
        raise DatasetError(f"{path}: not a readable CSV file ({e}); save it as plain "
                           "comma-separated text") from None


def _csv_header(path: Path) -> list[str]:
    """The column names of the first row, checked: named, unique, and not data."""
    first = next(_csv_rows(path), None)
    if first is None:
        raise DatasetError(f"{path} is empty; expected a header row naming the columns, then "
                           "one row per example")
    names = [c.strip() for c in first[1]]
    if all(_number(c) is not None for c in names):
        raise DatasetError(f"{path}: the first row holds numbers ({', '.join(names[:4])}...), "
                           "not column names; add a header row with one name per column")
    for i, name in enumerate(names):
        if not name:
            raise DatasetError(f"{path}: column {i + 1} of the header has no name; name every "
                               "column")
        if name in names[:i]:
            raise DatasetError(f"{path}: two columns are named {name!r}; rename one")
    return names


def find_label_column(path: Path, header: list[str], label_column=None) -> str:
    """``label_column`` if the header has it, else the first of :data:`LABEL_COLUMNS`."""
    if label_column is not None:
        if label_column not in header:
            raise DatasetError(f"{path}: no column {label_column!r} for --label-column; the "
                               f"header names {', '.join(header)}")
        return label_column
    lower = {h.lower(): h for h in header}
    for name in LABEL_COLUMNS:
        if name in lower:
            return lower[name]
    raise DatasetError(f"{path}: no label column (none of {', '.join(LABEL_COLUMNS)} in the "
                       f"header {', '.join(header)}); name it with --label-column NAME")


def _number(cell: str):
    """The cell as a float, or None when it is not a number."""
    try:
        return float(cell)
    except ValueError:
        return None


def _missing(cell: str) -> bool:
    return cell.strip().lower() in MISSING


def _check_width(path: Path, line: int, cells: list, n: int) -> None:
    if len(cells) != n:
        raise DatasetError(f"{path} line {line}: {len(cells)} cells, but the header has {n} "
                           "columns; give every row one cell per column (check for a missing "
                           "or extra comma, or a comma inside an unquoted text)")


class _ColumnScan:
    """What one pass learns about a feature column: numbers or text, and its text values."""

    def __init__(self):
        self.numbers, self.texts = 0, 0
        self.first_text = None
        self.levels: set = set()

    def add(self, line: int, cell: str) -> None:
        if len(self.levels) <= MAX_LEVELS:
            self.levels.add(cell.strip())
        if _number(cell) is None:
            self.texts += 1
            self.first_text = self.first_text or (line, cell)
        else:
            self.numbers += 1


def _scan_csv(path: Path, header: list[str], label: str | None, scan_columns: bool):
    """Pass 1: row widths, labels (``label``: the label column, or None when the file has
    none) and, with ``scan_columns``, missing cells and what each feature column holds ->
    (labels as text, the rows' line numbers, {column: _ColumnScan})."""
    li = None if label is None else header.index(label)
    scans = {name: _ColumnScan() for name in header if name != label} if scan_columns else {}
    where = [(i, scans[name]) for i, name in enumerate(header) if name in scans]
    labels, lines = [], []
    for line, cells in itertools.islice(_csv_rows(path), 1, None):
        _check_width(path, line, cells, len(header))
        lines.append(line)
        if li is not None:
            if _missing(cells[li]):
                raise DatasetError(f"{path} line {line}: no label in column {label!r}; give "
                                   "every row a label or drop the row")
            labels.append(cells[li].strip())
        for i, scan in where:
            if _missing(cells[i]):
                raise DatasetError(f"{path} line {line}, column {header[i]!r}: no value "
                                   f"({cells[i].strip() or 'empty'}); fill it in or drop the row")
            scan.add(line, cells[i])
    return labels, lines, scans


def _column_plan(path: Path, scans: dict, categorical: list) -> list[dict]:
    """Numeric or categorical per column: text columns (and ``categorical`` ones) one-hot over
    their sorted values; a column mixing numbers and text is refused."""
    unknown = [c for c in categorical if c not in scans]
    if unknown:
        raise DatasetError(f"{path}: --categorical names {', '.join(unknown)}, which the table "
                           f"has no feature column for (columns: {', '.join(scans)})")
    columns = []
    for name, s in scans.items():
        if name in categorical or (s.texts and not s.numbers):
            if len(s.levels) > MAX_LEVELS:
                raise DatasetError(f"{path}: column {name!r} holds more than {MAX_LEVELS} "
                                   "different values; an identifier or free text is not a "
                                   "feature: drop the column, or map it to numbers")
            columns.append({"name": name, "levels": sorted(s.levels)})
        elif s.texts:
            line, cell = s.first_text
            raise DatasetError(f"{path} line {line}, column {name!r}: {cell.strip()!r} is not a "
                               f"number, but {s.numbers} other cells of the column are; fix the "
                               f"cell, or one-hot the column with --categorical {name}")
        else:
            columns.append({"name": name})
    return columns


def _features(columns: list[dict]) -> list[str]:
    """Feature names in input order: a numeric column, or ``column=level`` per level."""
    out = []
    for c in columns:
        out += [f"{c['name']}={v}" for v in c["levels"]] if "levels" in c else [c["name"]]
    return out


def _csv_classes(path: Path, labels: list, lines: list, classes=None) -> tuple:
    """(int64 codes, class names): integer labels must be 0..C-1 with every class present;
    text labels name the classes (sorted); with ``classes`` (a model's) each must be one."""
    if classes is None:
        values = sorted(set(labels))
        nums = [_number(v) for v in values]
        if all(v is not None for v in nums):
            bad = [v for v, f in zip(values, nums) if not f.is_integer() or f < 0]
            if bad:
                line = lines[labels.index(bad[0])]
                raise DatasetError(f"{path} line {line}: label {bad[0]!r} is not a class "
                                   "number 0..C-1; number the classes 0..C-1 or name them")
            ints = sorted({int(f) for f in nums})
            if ints != list(range(len(ints))):
                gap = next(c for c in range(len(ints) + 1) if c not in ints)
                raise DatasetError(f"{path}: class {gap} has no rows (the labels run "
                                   f"0..{ints[-1]}); labels must be 0..C-1 with every class "
                                   "present (relabel them, or drop the empty class)")
            classes = [str(c) for c in ints]
            labels = [str(int(float(v))) for v in labels]
        else:
            classes = values
    index = {c: i for i, c in enumerate(classes)}
    codes = np.empty(len(labels), dtype=np.int64)
    for k, v in enumerate(labels):
        f = _number(v)
        if v not in index and f is not None and f.is_integer() and str(int(f)) in index:
            v = str(int(f))   # 1.0 for class "1"
        if v not in index:
            raise DatasetError(f"{path} line {lines[k]}: label {v!r} is not one of the model's "
                               f"classes ({', '.join(classes)})")
        codes[k] = index[v]
    return codes, list(classes)


def _encode_csv(path: Path, header: list[str], columns: list[dict], dest) -> None:
    """Pass 2: every row's features into ``dest(k)`` (the k-th row's target row array),
    numeric cells as float32 (finite), categorical cells one-hot."""
    plan, offset = [], 0
    for c in columns:
        if c["name"] not in header:
            raise DatasetError(f"{path}: no column {c['name']!r}, which the model reads; the "
                               f"header names {', '.join(header)}")
        levels = {v: offset + j for j, v in enumerate(c["levels"])} if "levels" in c else None
        plan.append((header.index(c["name"]), c["name"], offset, levels))
        offset += len(levels) if levels is not None else 1
    for k, (line, cells) in enumerate(itertools.islice(_csv_rows(path), 1, None)):
        _check_width(path, line, cells, len(header))
        row = dest(k)
        row[:] = 0
        for i, name, at, levels in plan:
            cell = cells[i].strip()
            if levels is not None:
                if cell not in levels:
                    raise DatasetError(f"{path} line {line}, column {name!r}: {cell!r} is not one "
                                       f"of the values the model knows ({', '.join(levels)})")
                row[levels[cell]] = 1
                continue
            value = _number(cell)
            if value is None or not math.isfinite(np.float32(value)):
                raise DatasetError(f"{path} line {line}, column {name!r}: {cell!r} is not a "
                                   "finite number; fix the cell or drop the row")
            row[at] = value


def _build_csv(path: Path, options: dict, spec: dict | None, out: Path) -> dict:
    header = _csv_header(path)
    want = (spec or {}).get("label") or options["label_column"]
    if spec and want is not None and want not in header:
        raise DatasetError(f"{path} has no label column {want!r} to score the model against; "
                           "classify its rows with difflogic eval MODEL --rows FILE")
    label = find_label_column(path, header, want)
    labels, lines, scans = _scan_csv(path, header, label, spec is None)
    if not labels:
        raise DatasetError(f"{path} has a header but no rows; add one row per example")
    columns = spec["columns"] if spec else _column_plan(path, scans, options["categorical"])
    if not columns:
        raise DatasetError(f"{path}: no feature columns besides the label {label!r}")
    y, classes = _csv_classes(path, labels, lines, (spec or {}).get("classes"))
    if spec is None:
        _classes_present(path, y, classes, f"column {label!r}")
    is_test = _split_or_refuse(path, y, spec)
    features = _features(columns)
    where = np.where(is_test, np.cumsum(is_test) - 1, np.cumsum(~is_test) - 1)
    dests = {s: _new_rows(out, s, np.float32, (int(n), len(features)))
             for s, n in (("train", (~is_test).sum()), ("test", is_test.sum()))}
    _encode_csv(path, header, columns,
                lambda k: dests["test" if is_test[k] else "train"][where[k]])
    for s, mask in (("train", ~is_test), ("test", is_test)):
        dests[s].flush()
        _save_labels(out, s, y[mask])
    inp = {"kind": "table", "format": "csv", "source": path.name, "shape": [len(features)],
           "classes": classes, "label": label, "columns": columns, "features": features,
           "options": {**options, "label_column": label}}
    return {"input": inp, "train_size": int((~is_test).sum()), "test_size": int(is_test.sum())}


def read_rows(path, input_spec: dict):
    """The rows of a CSV file as a table model reads them: ``(features float32 (N, F), labels
    int64 (N,) or None, line numbers)``, encoded by the model's ``config["input"]`` (its
    columns found by name, extra columns ignored); labels when the file has the label column.
    For ``difflogic eval --rows`` and for feeding the compiled C the rows of a CSV file."""
    path = Path(path)
    if not input_spec or input_spec.get("kind") != "table":
        raise ValueError(f"{path}: rows of a CSV table need a model trained on a table (its "
                         "checkpoint records the columns); this model takes images")
    if path.suffix.lower() != ".csv" or not path.is_file():
        raise DatasetNotFoundError(f"{path}: no such CSV file (give a .csv table with a header)")
    header = _csv_header(path)
    label = input_spec.get("label")
    if label is None:   # a table from an .npz file: any usual label column
        label = next((h for h in header if h.lower() in LABEL_COLUMNS), None)
    labels, lines, _ = _scan_csv(path, header, label if label in header else None, False)
    if not lines:
        raise DatasetError(f"{path} has a header but no rows; add one row per example")
    x = np.zeros((len(lines), len(input_spec["features"])), dtype=np.float32)
    _encode_csv(path, header, input_spec["columns"], lambda k: x[k])
    y = _csv_classes(path, labels, lines, input_spec["classes"])[0] if labels else None
    return x, y, np.asarray(lines, dtype=np.int64)


# ---------------------------------------------------------------------------------------------
# own data: image folders
# ---------------------------------------------------------------------------------------------

def _class_files(root: Path) -> dict[str, list[Path]]:
    """{class name: its images, sorted} of a folder with one subfolder per class."""
    loose = [p.name for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    subs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if loose or not subs:
        raise DatasetError(f"{root}: " + (f"images such as {loose[0]} lie outside a class folder"
                                          if loose else "no class folders") +
                           "; expected one subfolder per class holding its PNG/JPEG images "
                           f"(e.g. {root}/cat/0001.png)")
    out = {}
    for sub in subs:
        files = sorted(p for p in sub.rglob("*") if p.is_file()
                       and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
        if not files:
            raise DatasetError(f"{sub}: no PNG or JPEG images in this class folder; a class "
                               "needs examples: add images or remove the folder")
        out[sub.name] = files
    return out


def _folder_parts(path: Path) -> dict[str, dict]:
    """{"train": {class: files}, "test": ...} with train/ and test/ subfolders, else
    {"all": {class: files}}."""
    if (path / "train").is_dir() and (path / "test").is_dir():
        parts = {s: _class_files(path / s) for s in ("train", "test")}
        extra = sorted(set(parts["test"]) - set(parts["train"]))
        if extra:
            raise DatasetError(f"{path}: class {extra[0]!r} has test images but no training "
                               f"images (no {path / 'train' / extra[0]}); add some or remove it")
        return parts
    return {"all": _class_files(path)}


def _open_image(path: Path):
    from PIL import Image
    try:
        return Image.open(path)
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise DatasetError(f"{path}: not a readable PNG/JPEG image ({e}); replace or remove "
                           "it") from None


def _image_format(files: list[Path], size, mode) -> tuple[str, list[int]]:
    """(mode, [H, W]) of the images: as given, else what every image shares (mixed sizes or
    modes are refused, naming two files that differ)."""
    first = {}
    for f in files if size is None or mode is None else ():
        with _open_image(f) as im:
            seen = {"size": [im.height, im.width], "mode": im.mode}
        for key, given in (("size", size), ("mode", mode)):
            if given is not None:
                continue
            other = first.setdefault(key, (f, seen[key]))
            if other[1] != seen[key]:
                what = {"size": lambda v: f"{v[0]}x{v[1]}", "mode": str}[key]
                fix = ("--image-size HxW to resize them all" if key == "size"
                       else "--image-mode RGB or L to convert them all")
                raise DatasetError(f"images of mixed {key}s: {other[0]} is {what(other[1])}, {f} "
                                   f"is {what(seen[key])}; give {fix}")
    mode = mode or first["mode"][1]
    if mode not in IMAGE_MODES:
        raise DatasetError(f"{first['mode'][0]} has image mode {mode}, not RGB or L; give "
                           "--image-mode RGB or L to convert the images")
    return mode, size or first["size"][1]


def _decode_images(files: list[Path], mode: str, size, dest: np.ndarray) -> None:
    """Each image converted to ``mode``, resized (bilinear) to ``size`` [H, W] when it differs,
    into ``dest[i]`` as (C, H, W) uint8."""
    from PIL import Image
    h, w = size
    for i, f in enumerate(files):
        with _open_image(f) as im:
            try:
                im = im.convert(mode) if im.mode != mode else im
                if (im.height, im.width) != (h, w):
                    im = im.resize((w, h), Image.Resampling.BILINEAR)
                a = np.asarray(im, dtype=np.uint8)
            except (OSError, ValueError) as e:
                raise DatasetError(f"{f}: cannot decode this image ({e}); replace or remove "
                                   "it") from None
        dest[i] = a[None] if a.ndim == 2 else a.transpose(2, 0, 1)


def _build_folder(path: Path, options: dict, spec: dict | None, out: Path) -> dict:
    parts = _folder_parts(path)
    classes = spec["classes"] if spec else sorted(next(iter(parts.values())))
    index = {c: i for i, c in enumerate(classes)}
    lists = {}
    for part, by_class in parts.items():
        unknown = sorted(set(by_class) - set(index))
        if unknown:
            raise DatasetError(f"{path}: class folder {unknown[0]!r} is not one of the model's "
                               f"classes ({', '.join(classes)})")
        files = [(f, index[c]) for c in sorted(by_class) for f in by_class[c]]
        lists[part] = ([f for f, _ in files], np.array([c for _, c in files], dtype=np.int64))
    size, mode = options["image_size"], options["image_mode"]
    if spec:
        size, mode = size or spec["shape"][1:], mode or spec["mode"]
    mode, size = _image_format([f for files, _ in lists.values() for f in files], size, mode)
    if "all" in lists:
        files, y = lists.pop("all")
        is_test = _split_or_refuse(path, y, spec)
        lists = {s: ([f for f, t in zip(files, is_test) if t == want], y[is_test == want])
                 for s, want in (("train", False), ("test", True))}
    shape = [1 if mode == "L" else 3, *size]
    for s, (files, y) in lists.items():
        dest = _new_rows(out, s, np.uint8, (len(files), *shape))
        _decode_images(files, mode, size, dest)
        dest.flush()
        del dest
        _save_labels(out, s, y)
    inp = {"kind": "image", "format": "folder", "source": path.name, "shape": shape,
           "mode": mode, "classes": classes, "options": options}
    return {"input": inp, "train_size": len(lists["train"][0]),
            "test_size": len(lists["test"][0])}


_BUILDERS = {"npz": _build_npz, "csv": _build_csv, "folder": _build_folder}


# ---------------------------------------------------------------------------------------------
# -- test fixtures: tiny datasets in the real on-disk formats (for tests and CLI smoke runs)
# ---------------------------------------------------------------------------------------------

def _fake_images(rng: np.random.Generator, labels: np.ndarray, shape) -> np.ndarray:
    """Noise in 0..99 plus a bright (255) horizontal band whose position encodes the label, so
    even a tiny logic network can learn the fake data (band k covers rows k*h//10 .. +h//10)."""
    c, h, w = shape
    x = rng.integers(0, 100, size=(len(labels), c, h, w), dtype=np.uint8)
    band = max(1, h // 10)
    for k in range(10):
        x[labels == k, :, k * band:(k + 1) * band, :] = 255
    return x


def _fake_labels(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.permutation(np.arange(n) % 10).astype(np.int64)


def write_fake_cifar10(directory, n_train_per_batch: int = 20, n_test: int = 20, *,
                       seed: int = 0, archive: bool = False) -> Path:
    """Write a tiny CIFAR-10 in the official python layout: ``directory/cifar-10-batches-py/``
    with data_batch_1..5 (``n_train_per_batch`` images each), test_batch and batches.meta,
    pickled like the originals (protocol 2, bytes keys, uint8 [N, 3072] R/G/B planes).
    With ``archive=True`` the same files go into ``directory/cifar-10-python.tar.gz`` instead
    (no directory is left). Images are learnable (see :func:`_fake_images`).
    Returns the batches directory or the archive path."""
    _int_arg("n_train_per_batch", n_train_per_batch, 1)
    _int_arg("n_test", n_test, 1)
    rng = np.random.default_rng(seed)
    info = DATASET_INFO["cifar10"]
    blobs = {}
    for i, fname in enumerate(_CIFAR_TRAIN_FILES + _CIFAR_TEST_FILES):
        n = n_test if fname == "test_batch" else n_train_per_batch
        y = _fake_labels(rng, n)
        x = _fake_images(rng, y, info.shape).reshape(n, -1)
        label = (b"testing batch 1 of 1" if fname == "test_batch"
                 else f"training batch {i + 1} of 5".encode())
        blobs[fname] = pickle.dumps({b"batch_label": label, b"labels": y.tolist(), b"data": x,
                                     b"filenames": [f"fake_{i}_{j}.png".encode()
                                                    for j in range(n)]}, protocol=2)
    blobs["batches.meta"] = pickle.dumps({b"label_names": [s.encode() for s in info.classes],
                                          b"num_cases_per_batch": n_train_per_batch,
                                          b"num_vis": 3072}, protocol=2)
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    if archive:
        path = root / _CIFAR_ARCHIVE
        with tarfile.open(path, "w:gz") as tar:
            for fname, blob in blobs.items():
                ti = tarfile.TarInfo(f"{_CIFAR_DIR}/{fname}")
                ti.size = len(blob)
                tar.addfile(ti, io.BytesIO(blob))
        return path
    out = root / _CIFAR_DIR
    out.mkdir(exist_ok=True)
    for fname, blob in blobs.items():
        (out / fname).write_bytes(blob)
    return out


def write_idx(path, array) -> Path:
    """Write a uint8 array as an IDX file (gzipped when ``path`` ends in .gz)."""
    arr = np.ascontiguousarray(array, dtype=np.uint8)
    if not 1 <= arr.ndim <= 255:
        raise ValueError(f"IDX arrays need 1..255 dimensions, got {arr.ndim}")
    blob = struct.pack(">I", 0x0800 | arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    blob += arr.tobytes()
    path = Path(path)
    if path.name.endswith(".gz"):
        blob = gzip.compress(blob, compresslevel=1, mtime=0)
    path.write_bytes(blob)
    return path


def write_fake_idx(directory, n_train: int = 60, n_test: int = 20, gz: bool = True, *,
                   seed: int = 0) -> Path:
    """Write a tiny MNIST-format dataset (the four IDX files, ``.gz`` when ``gz``) into
    ``directory``, loadable as "mnist" or "fashion-mnist" with ``data_dir=directory``.
    28x28 learnable images (see :func:`_fake_images`), labels 0..9. Returns ``directory``."""
    _int_arg("n_train", n_train, 1)
    _int_arg("n_test", n_test, 1)
    rng = np.random.default_rng(seed)
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    for split, n in (("train", n_train), ("test", n_test)):
        y = _fake_labels(rng, n)
        x = _fake_images(rng, y, (1, 28, 28))[:, 0]
        write_idx(root / (_IDX_BASES[(split, "images")] + suffix), x)
        write_idx(root / (_IDX_BASES[(split, "labels")] + suffix), y)
    return root
