"""difflogic: differentiable logic gate networks, from training to bit-exact C and Verilog.

Train networks of 2-input logic gates (Petersen et al., NeurIPS 2022 / 2024) with PyTorch,
harden them into a netlist, and compile that netlist to bit-packed C or Verilog.
"""
from . import functional, gates
from .layers import (Flatten, GroupSum, LogicConv2d, LogicDense, LogicLayer, OrPool2d,
                     Thresholds, set_gumbel_noise, set_logit_scale, set_straight_through)
from .models import LogicNet, LogicTreeNet, get_model, get_model_config, model_names

__version__ = "0.1.0"

__all__ = [
    "gates", "functional", "LogicDense", "LogicLayer", "LogicConv2d", "OrPool2d", "GroupSum",
    "Thresholds", "Flatten", "LogicNet", "LogicTreeNet", "get_model", "get_model_config",
    "model_names", "set_straight_through", "set_gumbel_noise", "set_logit_scale",
    "__version__",
]
