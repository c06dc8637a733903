"""Back ends: what runs a compiled netlist, registered by name (``--target NAME``).

:mod:`.base` holds the interface (:class:`~.base.Backend`, :class:`~.base.Runner`) and the
registry; the built-in back ends register themselves when imported here: ``c`` (bit-packed
C), ``verilog`` (RTL + testbench, simulated with iverilog / verilator) and ``cuda-packed``
(bit-packed GPU inference).
"""
# importing a back end registers it; the order here is the order of the --target choices
from . import c  # noqa: F401,I001
from . import verilog  # noqa: F401
from . import cuda_packed  # noqa: F401
from .base import Backend, Option, Runner, backend_names, get_backend, register, unregister

__all__ = ["Backend", "Option", "Runner", "backend_names", "get_backend", "register", "unregister"]
