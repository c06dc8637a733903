"""Netlist compiler: harden a trained network into the IR, optimize it, lower it, simulate it.

:func:`compile` is the one entry from a model to the netlist every back end reads
(:mod:`difflogic.backends`); :mod:`.sim` is the golden reference they are checked against.
"""
from .harden import harden, hard_counts, u8_cutoffs
from .ir import Encoder, GateBlock, GroupSum, Netlist, OrPool
from .lower import lower_to_flat
from . import passes as _pass_driver
from .passes import optimize
from .sim import check_bits, encode_input, predict, random_inputs, simulate

__all__ = ["compile", "harden", "hard_counts", "u8_cutoffs", "optimize", "lower_to_flat",
           "simulate", "encode_input", "check_bits", "random_inputs", "predict", "Netlist",
           "GateBlock", "OrPool", "GroupSum", "Encoder"]


def compile(model, optimize: bool = True, passes=None, input_shape=None) -> Netlist:  # noqa: A001
    """A trained network (or a :class:`Netlist`) as the netlist a back end reads.

    A model is hardened (argmax gates, see :func:`harden`; ``input_shape`` only for a plain
    ``nn.Sequential`` that does not record it); a netlist is taken as it is.  Then, with
    ``optimize``, the optimization ``passes`` (names, default: all) run to a fixed point.
    """
    if passes is not None and not optimize:
        raise ValueError("passes= only applies with optimize=True; drop passes= or set optimize=True")
    if isinstance(model, Netlist):
        if input_shape is not None:
            raise ValueError("input_shape= only applies to a model; a Netlist records its own")
        net = model
    else:
        net = harden(model, input_shape=input_shape)
    return _pass_driver.optimize(net, passes) if optimize else net
