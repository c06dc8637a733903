"""Self-contained, atomically written checkpoints.

A checkpoint is one ``torch.save`` file holding a plain dict::

    {"format": "difflogic-checkpoint", "version": 1, "kind": "model" | "training",
     "library_version": "0.1.0", "config": "<model config as a JSON string>",
     "state_dict": {...}, ...extra}

The config travels as a JSON *string* and the state dict holds only tensors (logits *and*
the wiring buffers), so a checkpoint rebuilds the exact network without this process's RNG,
and it loads with ``torch.load(weights_only=True)``: opening a checkpoint never executes
pickled code.  Training checkpoints (``last.pt``) add the optimizer, data loader and RNG
states and the step, which is what makes ``difflogic train --resume`` bit-exact.

Writes go to a temporary file in the destination folder, are fsync'ed and then renamed
over the target with :func:`os.replace`, so a crash (or a full disk) mid-write never leaves
a truncated checkpoint where a good one was.  Reading a corrupt, truncated or foreign file
raises :class:`CheckpointError` naming the file and the problem.
"""
from __future__ import annotations

import hashlib
import json
import pickle
import warnings
import zipfile
from pathlib import Path

import torch

from .files import atomic_write

FORMAT = "difflogic-checkpoint"
VERSION = 1
KINDS = ("model", "training")


class CheckpointError(ValueError):
    """A file that is not a usable difflogic checkpoint (missing, corrupt, foreign, too new)."""


def _digest(obj) -> str:
    """SHA-256 over the payload's structure and every tensor's bytes.

    torch's zip container does not verify its CRCs on load, so flipped bytes inside tensor data
    would load silently; this digest (stored in the file, recomputed on load) catches them.
    """
    h = hashlib.sha256()

    def walk(o):
        if isinstance(o, torch.Tensor):
            t = o.detach().cpu().contiguous()
            h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
            if t.numel():
                h.update(t.reshape(-1).view(torch.uint8).numpy())
        elif isinstance(o, dict):
            h.update(b"{")
            for k in sorted(o, key=str):
                h.update(f"{k!r}:".encode())
                walk(o[k])
            h.update(b"}")
        elif isinstance(o, (list, tuple)):
            h.update(b"[" if isinstance(o, list) else b"(")
            for v in o:
                walk(v)
            h.update(b"]")
        else:
            h.update(f"{type(o).__name__}:{o!r};".encode())

    walk(obj)
    return h.hexdigest()


def _library_version() -> str:
    from . import __version__
    return __version__


def save_checkpoint(path, model, *, kind: str = "model", **extra) -> Path:
    """Write ``model`` (a :class:`~difflogic.models.LogicNet`) and ``extra`` entries to ``path``.

    ``extra`` values must be made of tensors, numbers, strings, lists, tuples and dicts (the
    types ``torch.load(weights_only=True)`` accepts), e.g. ``optimizer=opt.state_dict()``.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    config = getattr(model, "config", None)
    if not isinstance(config, dict):
        raise TypeError(f"save_checkpoint needs a LogicNet (a model with a .config dict), "
                        f"got {type(model).__name__}")
    reserved = {"format", "version", "kind", "library_version", "config", "state_dict", "sha256"}
    clash = reserved & set(extra)
    if clash:
        raise ValueError(f"save_checkpoint: extra keys {sorted(clash)} are reserved")
    payload = {
        "format": FORMAT, "version": VERSION, "kind": kind,
        "library_version": _library_version(),
        "config": json.dumps(config, sort_keys=True),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        **extra,
    }
    payload["sha256"] = _digest(payload)
    atomic_write(path, lambda fh: torch.save(payload, fh))
    return Path(path)


_EXPECTED = "expected a model.pt / last.pt written by `difflogic train` or save_checkpoint()"


def _load_failure(path: Path, e: BaseException) -> str:
    """Why ``torch.load`` rejected ``path``, in words: the file's kind is sniffed from its first
    bytes, since torch's own messages (pickle opcodes, zip internals) do not say it."""
    text = str(e)
    if "Unsupported global" in text:  # a torch file holding arbitrary pickled objects
        glob = text.split("GLOBAL", 1)[1].split()[0] if "GLOBAL" in text else "a Python class"
        return (f"{path}: not a difflogic checkpoint (it holds pickled Python objects such as "
                f"{glob}, which a difflogic checkpoint never contains; {_EXPECTED})")
    try:
        with open(path, "rb") as fh:
            head = fh.read(1024)
    except OSError:
        head = b""
    if head.startswith(b"PK\x03\x04"):  # torch's zip container, damaged
        return (f"{path}: unreadable, truncated or corrupt checkpoint (torch: "
                f"{_first_sentence(text) or type(e).__name__}); restore it from a backup or "
                "re-run training")
    if head.startswith(b"\x93NUMPY"):
        kind = "a NumPy .npy array file"
    elif head[:1] == b"\x80":
        kind = "a Python pickle that torch.load cannot read as weights (not made by torch.save)"
    elif b"\0" not in head and _is_text(head):
        kind = "a text file"
    else:
        kind = "unrecognised binary content (neither a torch.save zip file nor a legacy torch file)"
    return f"{path}: not a difflogic checkpoint ({kind}; {_EXPECTED})"


def _first_sentence(text: str, limit: int = 200) -> str:
    """The first line of an error text, shortened at a sentence or clause end (never inside
    a word) when it is longer than ``limit``."""
    line = (text.strip().splitlines() or [""])[0].strip()
    if len(line) <= limit:
        return line
    for sep in (". ", "; ", ": ", ", "):
        cut = line.rfind(sep, 0, limit)
        if cut > limit // 3:
            return line[:cut + 1].rstrip(":;, ") + " ..."
    return line[:line.rfind(" ", 0, limit)] + " ..."


def _is_text(head: bytes) -> bool:
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as e:  # a multi-byte character cut at the end is still text
        return e.start >= len(head) - 3
    return True


def load_checkpoint(path) -> dict:
    """Read and validate a checkpoint; the ``config`` entry comes back as a dict.

    ``path`` may also be a run folder, meaning its ``model.pt``."""
    path = Path(path)
    if path.is_dir() and (path / "model.pt").is_file():  # a run folder: its best model
        path = path / "model.pt"
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if path.is_dir():
        raise CheckpointError(f"{path}: is a directory without a model.pt, not a checkpoint file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: empty file, not a checkpoint")
    try:
        with warnings.catch_warnings():  # e.g. "pickle protocol 4" notes on foreign files
            warnings.simplefilter("ignore")
            ck = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError,
            zipfile.BadZipFile, KeyError, AttributeError, IndexError, TypeError,
            UnicodeDecodeError, MemoryError) as e:
        raise CheckpointError(_load_failure(path, e)) from None
    if not isinstance(ck, dict) or ck.get("format") != FORMAT:
        what = type(ck).__name__ if not isinstance(ck, dict) else \
            f"a dict with keys {sorted(map(str, ck))[:6]}"
        raise CheckpointError(f"{path}: not a difflogic checkpoint (found {what}; {_EXPECTED})")
    version = ck.get("version")
    if not isinstance(version, int) or version < 1:
        raise CheckpointError(f"{path}: invalid checkpoint version {version!r}")
    if version > VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {version} was written by a newer "
                              f"difflogic ({ck.get('library_version')}); this one reads up to "
                              f"version {VERSION}")
    stored = ck.pop("sha256", None)
    if stored is not None and stored != _digest(ck):
        raise CheckpointError(f"{path}: corrupt checkpoint (content checksum mismatch: the file "
                              "was damaged after it was written)")
    if ck.get("kind") not in KINDS:
        raise CheckpointError(f"{path}: invalid checkpoint kind {ck.get('kind')!r}")
    try:
        config = json.loads(ck["config"])
        if not isinstance(config, dict):
            raise TypeError("not a JSON object")
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: checkpoint has no valid model config ({e})") from None
    sd = ck.get("state_dict")
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise CheckpointError(f"{path}: checkpoint has no valid state_dict")
    ck["config"] = config
    return ck


def model_from_checkpoint(ck: dict, path="<checkpoint>"):
    """Rebuild the exact LogicNet of a loaded checkpoint dict (training mode, like a new model)."""
    from .models import LogicNet
    try:
        with torch.random.fork_rng(devices=[]):  # building draws wiring: keep the caller's RNG
            model = LogicNet(ck["config"])
    except (ValueError, TypeError, KeyError) as e:
        raise CheckpointError(f"{path}: model config in checkpoint is invalid: {e}") from None
    try:
        model.load_state_dict(ck["state_dict"], strict=True)
    except RuntimeError as e:
        first = str(e).strip().splitlines()
        detail = " ".join(s.strip() for s in first[:3])[:300]
        raise CheckpointError(f"{path}: state_dict does not match its model config ({detail})") from None
    _check_loaded(model, path)
    return model


def _check_loaded(model, path) -> None:
    """Wiring indices inside their layer's input and finite logits.

    A file without a checksum (hand-made or from a buggy writer) could otherwise load fine and
    fail much later, deep inside a kernel or the compiler, with no hint that the file is at fault."""
    from .layers import LogicConv2d, LogicDense
    for name, m in model.named_modules():
        if isinstance(m, LogicDense):
            bounds = {"wire_a": m.in_features, "wire_b": m.in_features}
        elif isinstance(m, LogicConv2d):
            bounds = {"leaf_c": m.in_channels, "leaf_dy": m.kernel_size[0], "leaf_dx": m.kernel_size[1]}
        else:
            continue
        for buf, hi in bounds.items():
            t = getattr(m, buf)
            if t.numel() and (int(t.min()) < 0 or int(t.max()) >= hi):
                raise CheckpointError(f"{path}: corrupt checkpoint: layer {name} has {buf} indices "
                                      f"outside [0, {hi})")
        if not bool(torch.isfinite(m.weight).all()):
            raise CheckpointError(f"{path}: layer {name} has NaN/inf gate logits (did training "
                                  "diverge?); use an earlier checkpoint")


def load_model(path):
    """The network stored in a checkpoint (model.pt or last.pt, or a run folder), in eval
    (hard) mode."""
    ck = load_checkpoint(path)
    return model_from_checkpoint(ck, path).eval()
