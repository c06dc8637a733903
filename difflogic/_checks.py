"""Argument and input validation shared by all layers (one place for the error wording)."""
from __future__ import annotations

import math

import torch

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
BINARY_DTYPES = (torch.uint8, torch.bool)


def positive_int(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def pair(name: str, value, minimum: int = 1) -> tuple[int, int]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value, value)
    if not (isinstance(value, (tuple, list)) and len(value) == 2):
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    return (positive_int(name, value[0], minimum), positive_int(name, value[1], minimum))


def finite_number(name: str, value) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return v


def is_fraction(value) -> bool:
    """True for a real number in [0, 1] (a point of a training run); False for booleans (True
    is an int to Python, but a switch, not a fraction), NaN, strings and the rest."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0.0 <= value <= 1.0


def check_input(x, layer: str, *, rank: int, size: tuple[tuple[int, int | None], ...] = (),
                allow_binary: bool = True) -> None:
    """Validate a layer input: a tensor of the given rank, float (or {0,1} uint8/bool in eval),
    finite, and with the expected sizes at the given dims (``size`` = ((dim, expected), ...))."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{layer}: expected a torch.Tensor input, got {type(x).__name__}")
    if x.dim() != rank:
        raise ValueError(f"{layer}: expected a {rank}-D input, got shape {tuple(x.shape)}")
    for dim, expected in size:
        if expected is not None and x.shape[dim] != expected:
            raise ValueError(f"{layer}: expected input size {expected} at dim {dim}, "
                             f"got shape {tuple(x.shape)}")
    if x.dtype in FLOAT_DTYPES:
        check_finite(x, layer)
    elif not (allow_binary and x.dtype in BINARY_DTYPES):
        raise TypeError(f"{layer}: expected a floating-point input"
                        f"{' (or uint8/bool 0/1 in eval mode)' if allow_binary else ''}, got {x.dtype}")


def check_finite(x: torch.Tensor, layer: str) -> None:
    """Reject NaN/inf in a CPU float tensor.

    Skipped for tensors on other devices: the check needs the result on the host, and that
    would force a device synchronisation in every layer of every forward pass."""
    # One sum in the tensor's own dtype (a single vectorised pass, ~30x cheaper than
    # isfinite().all(), which cost a quarter of a training step): NaN/inf always propagate into
    # the sum; only if it is not finite do we pay for the exact check, which also rules out a
    # false alarm from overflow of a sum of large finite values.
    if x.device.type == "cpu" and x.numel() and not math.isfinite(float(x.detach().sum())) \
            and not bool(torch.isfinite(x.detach()).all()):
        raise ValueError(f"{layer}: input contains NaN or inf; inputs must be finite "
                         "(activations in [0, 1])")
