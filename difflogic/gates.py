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
        t00, t01, t10, t11 = self.truth_table
        return (t00, t01) != (t10, t11)

    @property
    def uses_b(self) -> bool:
        t00, t01, t10, t11 = self.truth_table
        return (t00, t10) != (t01, t11)

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
    """Gate ``op`` on 0/1 values (ints or integer arrays), returns 0/1 of the same kind.

    Uses the truth-table-as-id identity; ``op`` may be an array broadcast against a, b.
    """
    return (np.right_shift(op, 3 - 2 * np.asarray(a) - np.asarray(b))) & 1


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
