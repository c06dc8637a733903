"""What the two training commands (``difflogic train`` and ``difflogic teacher``) share about
*running*, as opposed to what they train: the device they compute on and how it is named in the
log, the progress bar or plain progress lines, and the checks of their numeric options.

One module so that the two commands word their errors and log lines the same way, and so that
:mod:`difflogic.teacher` need not import from :mod:`difflogic.train` (which imports it).
"""
from __future__ import annotations

import math
import sys

import torch


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class Progress:
    """tqdm bar on a terminal; plain periodic lines otherwise (logs, CI, nohup)."""

    def __init__(self, mode: str, total: int, initial: int, every: int):
        if mode == "auto":
            mode = "bar" if sys.stderr.isatty() else "lines"
        self.mode, self.total, self.every = mode, total, max(1, every)
        self.bar = None
        if mode == "bar":
            from tqdm import tqdm
            self.bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True,
                            file=sys.stderr)

    def update(self, step: int, loss: float, acc: float, ips: float, kind: str = "relaxed") -> None:
        if self.bar is not None:
            self.bar.update(step - self.bar.n)
            self.bar.set_postfix(loss=f"{loss:.3f}", acc=f"{100 * acc:.1f}%", img_s=f"{ips:.0f}",
                                 refresh=False)
        elif self.mode == "lines" and (step % self.every == 0 or step == self.total):
            log(f"step {step}/{self.total}  loss {loss:.4f}  train acc {100 * acc:.2f}% "
                f"({kind})  {ips:.0f} img/s")

    def write(self, msg: str) -> None:
        if self.bar is not None:
            self.bar.write(msg, file=sys.stderr)
        elif self.mode != "none":
            log(msg)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def check_positive(name, value, kind=int, allow_zero=False):
    if value is None:
        return None
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or \
            value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")
    return value


def resolve_device(name) -> torch.device:
    """``--device`` -> torch.device, with a clear error when it cannot train there."""
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"--device must be cpu, cuda or cuda:N, got {name!r}") from None
    if device.type == "cpu":
        return device
    if device.type != "cuda":
        raise ValueError(f"--device {name}: training runs on cpu or cuda, not {device.type}")
    if not torch.cuda.is_available():
        raise RuntimeError(f"--device {name}: no CUDA device is visible to PyTorch "
                           f"(torch {torch.__version__}, CUDA build: {torch.version.cuda or 'no'}); "
                           "install a CUDA build of torch on a machine with an NVIDIA GPU, or "
                           "train with --device cpu")
    index = 0 if device.index is None else device.index
    if index >= torch.cuda.device_count():
        raise ValueError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA "
                         f"device(s), numbered from 0")
    return torch.device("cuda", index)


def where(device: torch.device) -> str:
    """Where a run computes, for its first log line: "2 thread(s)" or "on cuda:0 (<GPU name>)"."""
    if device.type == "cpu":
        return f"{torch.get_num_threads()} thread(s)"
    return f"on {device} ({torch.cuda.get_device_name(device)})"
