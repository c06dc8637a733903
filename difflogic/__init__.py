"""difflogic: differentiable logic gate networks, from training to bit-exact C and Verilog.

Train networks of 2-input logic gates (Petersen et al., NeurIPS 2022 / 2024) with PyTorch,
harden them into a netlist, and compile that netlist to bit-packed C or Verilog.  Scripts
written for the upstream package run unchanged: ``LogicLayer``, ``GroupSum``,
``PackBitsTensor`` and ``CompiledLogicNet`` keep its signatures (:mod:`difflogic.upstream`).

The public names below are imported on first use (PEP 562), so ``import difflogic`` and the
command line's ``--help`` do not pay for importing torch.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

# public name -> the submodule that defines it (a submodule itself where the name is one)
_EXPORTS = {
    "gates": "gates", "functional": "functional",
    **dict.fromkeys(("Flatten", "GroupSum", "LogicConv2d", "LogicDense", "LogicLayer", "OrPool2d",
                     "Thresholds", "set_gumbel_noise",
                     "set_straight_through"), "layers"),
    **dict.fromkeys(("LogicNet", "LogicTreeNet", "get_model", "get_model_config",
                     "model_names"), "models"),
    **dict.fromkeys(("CompiledLogicNet", "PackBitsTensor"), "upstream"),
}

__all__ = [*_EXPORTS, "__version__"]

if TYPE_CHECKING:  # what static tools see; at run time __getattr__ imports these on demand
    from . import functional, gates
    from .layers import (Flatten, GroupSum, LogicConv2d, LogicDense, LogicLayer, OrPool2d,
                         Thresholds, set_gumbel_noise, set_straight_through)
    from .models import LogicNet, LogicTreeNet, get_model, get_model_config, model_names
    from .upstream import CompiledLogicNet, PackBitsTensor


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'difflogic' has no attribute {name!r}")
    sub = importlib.import_module(f".{module}", __name__)
    value = sub if module == name else getattr(sub, name)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
