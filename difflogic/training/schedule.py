"""The optimizer and what moves over a run: the learning rate and the run's length."""
from __future__ import annotations

import math

import torch

from .options import SCHEDULES
from .runtime import log


def make_optimizer(model: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW, fused (one kernel over all parameters) where this torch supports it: a
    LogicTreeNet has few, large logit tensors, which the default multi-tensor AdamW walks a
    dozen times per step.  Same update rule and state-dict format either way."""
    params = list(model.parameters())
    try:
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, TypeError, ValueError):  # old torch, or a device/dtype without it
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


def lr_at(step: int, total: int, base: float, schedule: str) -> float:
    """Learning rate for the update that makes step ``step + 1`` (0-based ``step``)."""
    if schedule == "constant":
        return base
    if schedule == "cosine":
        return base * 0.5 * (1.0 + math.cos(math.pi * min(step, total) / max(1, total)))
    raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")


def run_length(steps: int | None, epochs: float | None, per_epoch: int) -> int:
    """Optimizer steps of a run given ``steps`` or else ``epochs`` (default 1 epoch)."""
    if steps is not None:
        return int(steps)
    return max(1, int(round((epochs if epochs is not None else 1.0) * per_epoch)))


def note_new_length(saved: dict, total: int, per_epoch: int, step: int, lr: float,
                    schedule: str, ste_fracs: list[tuple[str, float]]) -> None:
    """Say what a resume with a different length does to the trajectory.

    Extending a run is allowed, but a cosine schedule and the straight-through switch points
    are fractions of the run length: they move, and the result equals no uninterrupted run.
    ``ste_fracs``: (what, fraction) of each straight-through start."""
    old = run_length(saved.get("steps"), saved.get("epochs"), per_epoch)
    if old == total:
        return
    changes = []
    if schedule != "constant":
        before, after = (lr_at(step, n, lr, schedule) for n in (old, total))
        changes.append(f"the {schedule} learning rate at step {step:,} moves from {before:.3g} "
                       f"to {after:.3g}")
    for what, frac in ste_fracs:
        before, after = (int(round(frac * n)) for n in (old, total))
        if before != after:
            now = (", so relaxed again until then" if before <= step < after else
                   ", i.e. from this resume on" if after <= step < before else "")
            changes.append(f"{what} straight-through from step {after:,} instead of "
                           f"{before:,}{now}")
    log(f"run length changed from {old:,} to {total:,} steps" + (": " if changes else "")
        + "; ".join(changes))
