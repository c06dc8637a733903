"""Class-score teachers for distillation.

Petersen et al. (2024) train LogicTreeNet-B/L/G with "a neural-network teacher that supervises
the class scores" (architecture not stated).  This module trains such a teacher -- a small
ResNet-style CNN, sized to train in tens of minutes on two CPU cores -- on exactly the training
split that ``difflogic train`` uses (never on its validation images, so model selection stays
honest, and never on the test set), and writes the teacher's class scores to a file that
``difflogic train --teacher FILE`` reads.

Why scores in a file instead of a teacher network in the loop: the scores of every training
image, as stored and flipped horizontally, are all that flips-only augmentation can ever ask
for, and a lookup costs nothing per step, where running even this small CNN would cost more
than the logic network's own training step on a CPU.  (With shifted crops the loop uses the
scores of the uncropped view, which the teacher was trained to give on such crops.)

Teacher file (``.npz``, written atomically): ``logits`` float32 ``(N, 2, classes)`` for the N
images of the dataset's training file in file order, ``[i, 0]`` plain and ``[i, 1]`` flipped,
and ``meta``, a JSON string: format tag, dataset, validation size and split seed, a SHA-256 of
the training labels (so a teacher made from another copy or ordering of the dataset is refused
instead of silently teaching the wrong images), the teacher's validation and test accuracy.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .. import __version__, _checks, checkpoint as ckpt, data
from .runtime import Progress, check_positive, log, resolve_device, where

FORMAT = "difflogic-teacher-1"
#: Channel widths of the teacher's four stages.  (24, 48, 96, 192) measured on CIFAR-10 (JPEG
#: copy, benches/RESULTS.md): 86.62% validation / 86.07% test after the default 10 epochs,
#: 32-40 min on 2 CPU cores.
WIDTHS = (24, 48, 96, 192)


class TeacherError(ValueError):
    """A teacher file that cannot teach this run: corrupt, foreign, or made for other data."""


def _conv_bn(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                         nn.GELU())


class _Residual(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(_conv_bn(channels, channels), _conv_bn(channels, channels))

    def forward(self, x):
        return x + self.body(x)


class TeacherCNN(nn.Module):
    """A small ResNet-style CNN: conv stem, then three stages of (conv, 2x2 max pool, residual
    pair of convs), global max pool, linear.  Inputs are images in [0, 1] (as the training
    loader yields them); the per-channel normalisation of the training split is a buffer."""

    def __init__(self, in_channels: int, num_classes: int, widths=WIDTHS,
                 mean=None, std=None):
        super().__init__()
        a, b, c, d = widths
        self.register_buffer("mean", torch.as_tensor(
            np.full(in_channels, 0.5) if mean is None else mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.as_tensor(
            np.full(in_channels, 0.25) if std is None else std, dtype=torch.float32).view(1, -1, 1, 1))
        self.body = nn.Sequential(
            _conv_bn(in_channels, a), _conv_bn(a, b), nn.MaxPool2d(2), _Residual(b),
            _conv_bn(b, c), nn.MaxPool2d(2), _Residual(c),
            _conv_bn(c, d), nn.MaxPool2d(2), _Residual(d),
            nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(d, num_classes))

    def forward(self, x):
        x = ((x - self.mean) / self.std).contiguous(memory_format=torch.channels_last)
        return self.body(x)


@dataclass
class TeacherOptions:
    """Everything ``difflogic teacher`` accepts."""

    dataset: str | None = None
    out: str | None = None
    data_dir: str | None = None
    epochs: int = 10
    batch_size: int = 256
    lr: float = 0.2
    seed: int = 0
    val_size: int | None = None   # None = the dataset's (the paper's split, as difflogic train)
    threads: int | None = None
    progress: str = "auto"
    device: str = "cpu"           # cpu or cuda[:N]: the CNN is plain torch, no CuPy needed


def labels_digest(labels: np.ndarray) -> str:
    """SHA-256 of the training labels in file order: identifies the copy and order of a dataset
    cheaply enough to check at every training start."""
    return hashlib.sha256(np.ascontiguousarray(labels, dtype=np.int64).tobytes()).hexdigest()


def logits_digest(logits: np.ndarray) -> str:
    """SHA-256 of a teacher's scores (a resumed run must be taught by the same teacher)."""
    return hashlib.sha256(np.ascontiguousarray(logits, dtype=np.float32).tobytes()).hexdigest()


@torch.no_grad()
def class_scores(model: nn.Module, images: np.ndarray, batch_size: int = 1000) -> np.ndarray:
    """The model's class scores for uint8 images, as stored and flipped: ``(N, 2, classes)``
    (float32 on the CPU, whatever device the model is on)."""
    model.eval()
    device = next(model.parameters()).device
    out = None
    for i in range(0, len(images), batch_size):
        x = data.to_unit_float(images[i:i + batch_size], device)
        pair = torch.stack([model(x), model(torch.flip(x, dims=[3]))], 1).float().cpu().numpy()
        if out is None:
            out = np.empty((len(images), 2, pair.shape[2]), np.float32)
        out[i:i + len(pair)] = pair
    return out


@torch.no_grad()
def _accuracy(model: nn.Module, images: np.ndarray, labels: np.ndarray) -> float:
    model.eval()
    device = next(model.parameters()).device
    correct = 0
    for i in range(0, len(images), 1000):
        x = data.to_unit_float(images[i:i + 1000], device)
        correct += int((model(x).argmax(1).cpu().numpy() == labels[i:i + 1000]).sum())
    return correct / max(1, len(images))


def train_teacher(opts: TeacherOptions) -> dict:
    """Train a :class:`TeacherCNN` on the training split and write its scores to ``opts.out``.

    Recipe: SGD with Nesterov momentum 0.9 and weight decay
    5e-4, one-cycle learning rate (linear warm-up over 15% of the steps to ``lr``, linear decay
    to 0), label smoothing 0.1, random flips and shifted crops (``difflogic train --augment``'s
    loader).  Returns a summary (validation / test accuracy, time)."""
    if not opts.dataset:
        raise ValueError("--dataset is required (one of " + ", ".join(data.dataset_names()) +
                         ", or an .npz file or folder of images)")
    opts.dataset = data.dataset_spec(opts.dataset)
    if not opts.out:
        raise ValueError("--out FILE is required (the teacher file to write, e.g. teacher.npz)")
    for name in ("epochs", "batch_size", "threads", "val_size"):
        check_positive(f"--{name.replace('_', '-')}", getattr(opts, name), int)
    check_positive("--lr", opts.lr, float)
    _checks.positive_int("--seed", opts.seed, minimum=0)
    if Path(opts.out).is_dir():
        raise ValueError(f"--out {opts.out} is a directory; give a file name such as teacher.npz")
    device = resolve_device(opts.device or "cpu")
    if opts.threads:
        torch.set_num_threads(opts.threads)

    dataset = data.open_dataset(opts.dataset, opts.data_dir)
    info = dataset.info
    if info.kind != "image":
        raise ValueError(f"the teacher is a CNN over images; {info.title} is a table of "
                         "features (train the logic network without --teacher)")
    (x, y), (x_test, y_test) = dataset.load("train"), dataset.load("test")
    n = len(y)
    val_size = info.val_size_for(n) if opts.val_size is None else opts.val_size
    train_idx, val_idx = data.train_val_split(n, val_size, seed=data.SPLIT_SEED)
    bs = min(opts.batch_size, len(train_idx))
    loader = data.BatchLoader(x, y, bs, shuffle=True, seed=opts.seed, augment=True,
                              indices=train_idx, crop_padding=info.crop_padding, device=device)
    total = opts.epochs * len(loader)

    torch.manual_seed(opts.seed)
    pixels = x[train_idx].astype(np.float32).transpose(1, 0, 2, 3).reshape(info.shape[0], -1) / 255
    model = TeacherCNN(info.shape[0], info.num_classes, mean=pixels.mean(1),
                       std=np.maximum(pixels.std(1), 1e-3)).to(device)
    del pixels
    optimizer = torch.optim.SGD(model.parameters(), lr=opts.lr, momentum=0.9, nesterov=True,
                                weight_decay=5e-4)
    warm = max(1, int(0.15 * total))

    def lr_at(step):
        return opts.lr * (step + 1) / warm if step < warm else \
            opts.lr * max(0.0, (total - step) / max(1, total - warm))

    log(f"difflogic teacher: CNN {WIDTHS} ({sum(p.numel() for p in model.parameters()):,} "
        f"parameters) on {info.title} ({len(train_idx):,} train / {len(val_idx):,} val), batch "
        f"{bs}, {opts.epochs} epochs ({total:,} steps), {where(device)}")
    progress = Progress(opts.progress, total, 0, every=max(1, len(loader) // 4))
    t0 = time.perf_counter()
    val_acc = float("nan")
    try:
        for step, (xb, yb) in enumerate(loader.steps(total)):
            model.train()
            for g in optimizer.param_groups:
                g["lr"] = lr_at(step)
            t_step = time.perf_counter()
            scores = model(xb)
            loss = nn.functional.cross_entropy(scores, yb, label_smoothing=0.1)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            last_loss = float(loss.detach())
            if not math.isfinite(last_loss):
                raise RuntimeError(f"teacher training diverged at step {step + 1}; lower --lr")
            progress.update(step + 1, last_loss, float((scores.argmax(1) == yb).float().mean()),
                            time.perf_counter() - t_step, len(yb), "teacher, augmented batch")
            if (step + 1) % len(loader) == 0 or step + 1 == total:
                val_acc = _accuracy(model, x[val_idx], y[val_idx])
                progress.write(f"[teacher epoch {(step + 1) / len(loader):.0f}] loss {last_loss:.4f}"
                               f"  val {100 * val_acc:.2f}%  ({time.perf_counter() - t0:.0f}s)")
    finally:
        progress.close()
    train_s = time.perf_counter() - t0
    test_acc = _accuracy(model, x_test, y_test)
    logits = class_scores(model, x)
    meta = {"format": FORMAT, "dataset": opts.dataset, "num_images": n,
            "num_classes": info.num_classes, "val_size": val_size, "split_seed": data.SPLIT_SEED,
            "labels_sha256": labels_digest(y), "val_acc": val_acc, "test_acc": test_acc,
            "epochs": opts.epochs, "seed": opts.seed, "widths": list(WIDTHS), "device": device.type,
            "train_time_s": round(train_s, 1), "library_version": __version__}
    save_teacher(opts.out, logits, meta)
    log(f"teacher: val {100 * val_acc:.2f}%, test {100 * test_acc:.2f}% ({info.title}, "
        f"{len(y_test):,} images), trained in {train_s:.0f}s; wrote {opts.out}")
    return meta


def save_teacher(path, logits: np.ndarray, meta: dict) -> None:
    """Write a teacher file atomically (temp file + rename: never half-written)."""
    def write(fh):
        np.savez(fh, logits=np.ascontiguousarray(logits, dtype=np.float32),
                 meta=np.array(json.dumps(meta)))
    ckpt.atomic_write(Path(path), write)


def load_teacher(path, *, dataset: str, labels: np.ndarray, val_size: int) -> tuple[np.ndarray, dict]:
    """Read a teacher file for a run on ``dataset`` whose training file has ``labels`` and
    which validates on ``val_size`` held-out images -> ``(logits (N, 2, classes), meta)``.

    Refuses, with the reason and the fix, a file that is missing, corrupt or not a teacher file,
    one made for another dataset or another copy / ordering of it, one whose teacher trained on
    this run's validation images (another split), and non-finite scores."""
    path = Path(path)
    fix = (f"make one with `difflogic teacher --dataset {dataset} --out {path.name}` "
           "(same --data-dir and --val-size as the training run)")
    if not path.is_file():
        raise TeacherError(f"teacher file {path} does not exist; {fix}")
    try:
        with np.load(path, allow_pickle=False) as z:
            if not {"logits", "meta"} <= set(z.files):
                raise TeacherError(f"{path} is an .npz file but not a difflogic teacher file "
                                   f"(arrays {sorted(z.files)}); {fix}")
            logits, meta = z["logits"], json.loads(str(z["meta"]))
    except TeacherError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError, io.UnsupportedOperation) as e:
        raise TeacherError(f"{path} is not a readable teacher file (corrupt or truncated: {e}); "
                           f"{fix}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise TeacherError(f"{path}: not a {FORMAT} file (format "
                           f"{meta.get('format') if isinstance(meta, dict) else meta!r}); {fix}")
    if meta.get("dataset") != dataset:
        raise TeacherError(f"{path} is a teacher for {meta.get('dataset')!r}, not {dataset!r}; {fix}")
    n = len(labels)
    if logits.ndim != 3 or logits.shape[:2] != (n, 2) or logits.dtype != np.float32:
        raise TeacherError(f"{path}: expected float32 scores of shape ({n}, 2, classes) for the "
                           f"{n:,} training images, got {logits.dtype} {logits.shape}; {fix}")
    if meta.get("labels_sha256") != labels_digest(labels):
        raise TeacherError(f"{path} was made from another copy or ordering of {dataset} (its "
                           f"training labels differ from those in this --data-dir); {fix}")
    if meta.get("val_size") != val_size or meta.get("split_seed") != data.SPLIT_SEED:
        raise TeacherError(f"{path}: the teacher held out {meta.get('val_size')} validation images, "
                           f"this run validates on {val_size}, so the teacher has seen some of "
                           f"this run's validation images; {fix}")
    if not np.isfinite(logits).all():
        raise TeacherError(f"{path}: the teacher's scores contain NaN or inf; {fix}")
    return logits, meta
