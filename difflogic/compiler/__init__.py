"""Netlist compiler: harden a trained network into the IR, optimize it, lower it, simulate it.

Back ends (:mod:`difflogic.backends`) read the IR; :mod:`.sim` is the golden reference.
"""
from .harden import harden, hard_counts, u8_cutoffs
from .ir import Encoder, GateBlock, GroupSum, Netlist, OrPool
from .lower import lower_to_flat
from .passes import optimize
from .sim import encode_input, predict, simulate

__all__ = ["harden", "hard_counts", "u8_cutoffs", "optimize", "lower_to_flat", "simulate",
           "encode_input", "predict", "Netlist", "GateBlock", "OrPool", "GroupSum", "Encoder"]
