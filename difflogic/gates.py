"""The 16 two-input logic gates: the one place they are defined.

Every layer, kernel, simulator and back end reads its gate knowledge from here.

Numbering follows upstream difflogic (NeurIPS 2022): the id of a gate *is* its truth
table read as a 4-bit number, with the output for inputs (A, B) = (0, 0) as the most
significant bit and (1, 1) as the least.  So AND = 0b0001 = 1, XOR = 0b0110 = 6,
NAND = 0b1110 = 14, and the hard output of gate ``op`` on bits ``a, b`` is::

    (op >> (3 - 2*a - b)) & 1

Relaxation: with independent Bernoulli inputs of means ``a`` and ``b``, every gate's
expected output is affine in the basis ``{1, a, b, a*b}``::

    g(a, b) = c0 + c1*a + c2*b + c3*a*b

``COEFFS`` is the fixed 16x4 matrix of those coefficients.  A relaxed neuron with gate
distribution ``p = softmax(logits)`` is therefore ``(p @ COEFFS) . (1, a, b, ab)``: kernels
receive 4 floats per neuron instead of 16, and the backward pass only needs the gradient
with respect to these 4 numbers (autograd carries it through softmax to the logits).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NUM_GATES = 16


@dataclass(frozen=True)
class Gate:
    id: int
    name: str
    #: bitwise expression over operands ``a`` and ``b`` using ``~ & | ^`` and the
    #: constants ``0`` / ``1`` (all-zeros / all-ones word).  C and Verilog back ends
    #: substitute their own operand and constant spellings.
    expr: str

    @property
    def truth_table(self) -> tuple[int, int, int, int]:
        """Outputs for (a, b) = (0,0), (0,1), (1,0), (1,1)."""
        return tuple((self.id >> (3 - i)) & 1 for i in range(4))  # type: ignore[return-value]

    @property
    def coeffs(self) -> tuple[int, int, int, int]:
        """(c0, c1, c2, c3) with g(a, b) = c0 + c1 a + c2 b + c3 a b (exact on {0,1})."""
        t00, t01, t10, t11 = self.truth_table
        return (t00, t10 - t00, t01 - t00, t11 - t10 - t01 + t00)

    @property
    def uses_a(self) -> bool:
        """The output depends on input a (some b gives different outputs for a = 0 and 1)."""
        t00, t01, t10, t11 = self.truth_table
        return (t00, t01) != (t10, t11)

    @property
    def uses_b(self) -> bool:
        """The output depends on input b."""
        t00, t01, t10, t11 = self.truth_table
        return (t00, t10) != (t01, t11)

    @property
    def is_constant(self) -> bool:
        """FALSE or TRUE: the output depends on neither input."""
        return not (self.uses_a or self.uses_b)

    def __call__(self, a, b):
        """Hard evaluation on ints / bools / numpy integer arrays (bitwise on words)."""
        return eval_expr(self.id, a, b)


GATES: tuple[Gate, ...] = (
    Gate(0, "FALSE", "0"),
    Gate(1, "AND", "a & b"),
    Gate(2, "A_AND_NOT_B", "a & ~b"),
    Gate(3, "A", "a"),
    Gate(4, "NOT_A_AND_B", "~a & b"),
    Gate(5, "B", "b"),
    Gate(6, "XOR", "a ^ b"),
    Gate(7, "OR", "a | b"),
    Gate(8, "NOR", "~(a | b)"),
    Gate(9, "XNOR", "~(a ^ b)"),
    Gate(10, "NOT_B", "~b"),
    Gate(11, "A_OR_NOT_B", "a | ~b"),
    Gate(12, "NOT_A", "~a"),
    Gate(13, "NOT_A_OR_B", "~a | b"),
    Gate(14, "NAND", "~(a & b)"),
    Gate(15, "TRUE", "1"),
)

#: Symbolic ids for readability elsewhere (``gates.AND``, ``gates.A`` ...).
FALSE, AND, A_AND_NOT_B, A, NOT_A_AND_B, B, XOR, OR, NOR, XNOR, NOT_B, A_OR_NOT_B, NOT_A, \
    NOT_A_OR_B, NAND, TRUE = range(16)

#: Gate "A" (pass-through of the first input): the residual-initialization target.
PASS_THROUGH_A = A

NAMES: tuple[str, ...] = tuple(g.name for g in GATES)

#: (16, 4) float64 matrix: row i holds (c0, c1, c2, c3) of gate i.
COEFFS = np.array([g.coeffs for g in GATES], dtype=np.float64)

#: (16, 4) uint8 matrix: row i holds the truth table of gate i.
TRUTH_TABLES = np.array([g.truth_table for g in GATES], dtype=np.uint8)

#: (4, 4) float64 matrix taking a truth table (t00, t01, t10, t11), 0/1 or relaxed to
#: probabilities in [0, 1], to the basis coefficients (c0, c1, c2, c3):
#: ``COEFFS == TRUTH_TABLES @ TRUTH_TO_COEFFS``.  The input-wise parametrization
#: (:func:`difflogic.functional.input_wise_coefficients`) learns the 4 truth-table entries
#: directly and maps them through this matrix.
TRUTH_TO_COEFFS = np.array([[1, -1, -1, 1],    # t00 -> c0 + (-1) c1 + (-1) c2 + c3
                            [0, 0, 1, -1],     # t01
                            [0, 1, 0, -1],     # t10
                            [0, 0, 0, 1]],     # t11
                           dtype=np.float64)

#: Weights that read a 0/1 truth table (t00, t01, t10, t11) as its gate id (t00 the MSB).
TRUTH_BIT_WEIGHTS = np.array([8, 4, 2, 1], dtype=np.int64)


def hard_gate(op, a, b):
    """Output of gate ``op`` on 0/1 inputs ``a``, ``b``: bit ``3 - 2a - b`` of the id.

    Works on Python ints/bools, numpy integer arrays and torch integer tensors alike (``op``
    may be an array broadcast against ``a`` and ``b``); returns 0/1 of the same kind.
    """
    if isinstance(a, (list, tuple)) or isinstance(b, (list, tuple)):
        a, b = np.asarray(a), np.asarray(b)
    return (op >> (3 - 2 * a - b)) & 1


def from_function(f) -> int:
    """The gate id computing ``f(a, b)`` (a function of two 0/1 ints returning 0/1)."""
    return sum(int(f(a, b)) << (3 - 2 * a - b) for a in (0, 1) for b in (0, 1))


def from_truth_table(table) -> int:
    """The gate id of the truth table (t00, t01, t10, t11) (outputs for (a, b) = 00 .. 11)."""
    bits = [int(t) for t in table]
    if len(bits) != 4 or any(t not in (0, 1) for t in bits):
        raise ValueError(f"a truth table is 4 values of 0/1 for (a, b) = 00, 01, 10, 11, got {table!r}")
    return int(np.dot(bits, TRUTH_BIT_WEIGHTS))


#: Gate rewrites as lookup tables (index: gate id): the same function with the inputs swapped
#: (``op(b, a)`` as a gate of ``(a, b)``), with input a or b inverted (``op(~a, b)``,
#: ``op(a, ~b)``), and with the output inverted (``~op(a, b)``).
SWAP_INPUTS = tuple(from_function(lambda a, b, o=o: hard_gate(o, b, a)) for o in range(NUM_GATES))
INVERT_A = tuple(from_function(lambda a, b, o=o: hard_gate(o, 1 - a, b)) for o in range(NUM_GATES))
INVERT_B = tuple(from_function(lambda a, b, o=o: hard_gate(o, a, 1 - b)) for o in range(NUM_GATES))
INVERT_OUTPUT = tuple(from_function(lambda a, b, o=o: 1 - hard_gate(o, a, b)) for o in range(NUM_GATES))
#: Which inputs each gate reads (index: gate id); both False for FALSE / TRUE.
USES_A = tuple(g.uses_a for g in GATES)
USES_B = tuple(g.uses_b for g in GATES)


def is_constant(op: int) -> bool:
    """True for FALSE and TRUE, the two gates that read neither input."""
    return GATES[op].is_constant


def eval_expr(op: int, a, b, ones=None):
    """Evaluate gate ``op`` bitwise on words (Python ints or numpy unsigned arrays).

    The gate is the OR of the minterms its truth table selects, so this works for any
    word width.  ``ones`` is the all-ones word; by default ``~0`` of the operand's numpy
    dtype, or ``1`` for Python 0/1 ints.
    """
    if ones is None:
        arr = a if isinstance(a, np.ndarray) else b if isinstance(b, np.ndarray) else None
        ones = np.invert(np.zeros_like(arr)) if arr is not None else 1
    na, nb = a ^ ones, b ^ ones
    minterms = (na & nb, na & b, a & nb, a & b)
    r = a & (ones ^ ones)  # zero word of the right type
    for bit, term in zip(GATES[op].truth_table, minterms):
        if bit:
            r = r | term
    return r


def render(op: int, a: str, b: str, *, not_: str = "~", zero: str = "0", one: str = "~0") -> str:
    """Render gate ``op`` as an expression in a C-like language (C, Verilog).

    ``a``/``b`` are operand spellings; ``zero``/``one`` the constant words.  The result
    is fully parenthesised so it can be embedded anywhere.
    """
    expr = GATES[op].expr
    if expr == "0":
        return zero
    if expr == "1":
        return one
    # operand names are single letters in GATES; substitute via placeholders
    out = expr.replace("~", "\x00").replace("a", "\x01").replace("b", "\x02")
    out = out.replace("\x00", not_).replace("\x01", a).replace("\x02", b)
    return f"({out})"
