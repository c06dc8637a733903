"""Where a model computes: ``--device`` strings checked into a torch.device, and the words a
log line uses for it.  Shared by training, evaluation and the commands."""
from __future__ import annotations

import torch


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
        raise RuntimeError(f"--device {name}: no CUDA device is visible to PyTorch (torch "
                           f"{torch.__version__}, CUDA build: {torch.version.cuda or 'no'}); "
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
