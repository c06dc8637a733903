"""Datasets for training and evaluation: CIFAR-10, MNIST and Fashion-MNIST, read from the files
their publishers distribute, plus a resumable batch loader.

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

Validation splits follow Petersen et al. 2024: 45,000 / 5,000 for CIFAR-10 and 50,000 / 10,000
for the MNIST-like sets (``DATASET_INFO[name].val_size``), drawn by :func:`train_val_split`.
"""
from __future__ import annotations

import gzip
import importlib
import io
import math
import os
import pickle
import struct
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from numpy.lib.stride_tricks import sliding_window_view

from . import functional as F

__all__ = [
    "DatasetError", "DatasetNotFoundError", "DatasetInfo", "DATASET_INFO", "dataset_names",
    "canonical_name", "default_data_dirs", "locate_dataset", "load_dataset", "train_val_split",
    "BatchLoader", "make_loader", "write_fake_cifar10", "write_fake_idx", "write_idx",
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

    @property
    def crop_padding(self) -> int:
        """Default zero padding of the random crops of ``augment``: the usual 4 pixels on
        32x32 images (CIFAR-10), 2 on the smaller MNIST-like ones."""
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
    than float32) and converted on the device."""
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
    """Deterministic, resumable mini-batch iterator over uint8 numpy images.

    Yields ``(x, y)``: ``x`` float32 ``(B, C, H, W)`` equal to ``images / 255`` (so in [0, 1]),
    ``y`` int64 ``(B,)``, both on ``device`` (CPU tensors when None; the uint8 batch is moved
    first, so the float conversion happens on the device).

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
        if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4:
            raise TypeError("images must be a uint8 numpy array of shape (N, C, H, W), got "
                            + (f"{images.dtype} {images.shape}" if isinstance(images, np.ndarray)
                               else type(images).__name__))
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
