"""The 16 gates: ids = truth tables, coefficients = relaxations, expressions = truth tables."""
import itertools
import math

import numpy as np
import pytest
import torch

from difflogic import functional, gates


def test_sixteen_gates_in_upstream_order():
    assert len(gates.GATES) == 16
    assert [g.id for g in gates.GATES] == list(range(16))
    assert gates.NAMES[1] == "AND" and gates.NAMES[6] == "XOR" and gates.NAMES[14] == "NAND"
    assert gates.PASS_THROUGH_A == 3  # the residual-init gate of the 2024 paper
    # every truth table appears exactly once
    assert len({g.truth_table for g in gates.GATES}) == 16


@pytest.mark.parametrize("op", range(16))
def test_every_gate_exhaustively(op):
    g = gates.GATES[op]
    for a, b in itertools.product((0, 1), repeat=2):
        expected = g.truth_table[2 * a + b]
        c0, c1, c2, c3 = g.coeffs
        assert c0 + c1 * a + c2 * b + c3 * a * b == expected
        assert gates.hard_gate(op, a, b) == expected
        assert g(a, b) == expected
        # rendered C expression agrees (evaluate as Python with 1-bit words)
        e = gates.render(op, "A", "B", zero="0", one="1")
        assert (eval(e, {"A": a, "B": b}) & 1) == expected


@pytest.mark.parametrize("op", range(16))
def test_rewrite_tables_and_predicates_exhaustively(op):
    """The helpers every pass, emitter and kernel uses, against the truth table itself."""
    tt = gates.GATES[op].truth_table
    out = {(a, b): tt[2 * a + b] for a, b in itertools.product((0, 1), repeat=2)}
    assert gates.from_truth_table(tt) == op
    assert gates.from_function(lambda a, b: out[(a, b)]) == op
    for a, b in itertools.product((0, 1), repeat=2):
        assert gates.hard_gate(gates.SWAP_INPUTS[op], a, b) == out[(b, a)]
        assert gates.hard_gate(gates.INVERT_A[op], a, b) == out[(1 - a, b)]
        assert gates.hard_gate(gates.INVERT_B[op], a, b) == out[(a, 1 - b)]
        assert gates.hard_gate(gates.INVERT_OUTPUT[op], a, b) == 1 - out[(a, b)]
    assert gates.USES_A[op] == any(out[(0, b)] != out[(1, b)] for b in (0, 1))
    assert gates.USES_B[op] == any(out[(a, 0)] != out[(a, 1)] for a in (0, 1))
    assert gates.is_constant(op) == (len(set(out.values())) == 1) == (op in (gates.FALSE, gates.TRUE))
    # the same function on every kind of operand: Python ints, numpy and torch integer arrays
    a = np.array([0, 0, 1, 1])
    b = np.array([0, 1, 0, 1])
    want = [out[(x, y)] for x, y in zip(a, b)]
    assert gates.hard_gate(op, a, b).tolist() == want
    assert gates.hard_gate(np.uint8(op), a.astype(np.uint8), b.astype(np.uint8)).tolist() == want
    assert gates.hard_gate(torch.tensor(op), torch.tensor(a), torch.tensor(b)).tolist() == want
    assert gates.hard_gate(op, [0, 0, 1, 1], [0, 1, 0, 1]).tolist() == want


def test_from_truth_table_rejects_bad_tables():
    with pytest.raises(ValueError, match="4 values of 0/1"):
        gates.from_truth_table((0, 1, 1))
    with pytest.raises(ValueError, match="4 values of 0/1"):
        gates.from_truth_table((0, 1, 2, 0))


def test_words_bitwise():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 2**63, 100, dtype=np.uint64)
    b = rng.integers(0, 2**63, 100, dtype=np.uint64)
    for op in range(16):
        r = gates.eval_expr(op, a, b)
        for bit in (0, 5, 63):
            abit = (a >> np.uint64(bit)) & np.uint64(1)
            bbit = (b >> np.uint64(bit)) & np.uint64(1)
            assert np.array_equal((r >> np.uint64(bit)) & np.uint64(1),
                                  gates.hard_gate(op, abit.astype(np.int64), bbit.astype(np.int64)).astype(np.uint64))


def test_four_coefficient_form_equals_sixteen_gate_mixture():
    torch.manual_seed(0)
    logits = torch.randn(50, 16, dtype=torch.float64)
    a = torch.rand(50, dtype=torch.float64)
    b = torch.rand(50, dtype=torch.float64)
    y4 = functional.apply_coeffs(functional.gate_coefficients(logits), a, b)
    y16 = functional.relaxed_gates_all16(torch.softmax(logits, -1), a, b)
    torch.testing.assert_close(y4, y16, rtol=0, atol=1e-14)


def test_hard_coefficients_select_argmax_gate():
    logits = torch.full((16, 16), -1.0)
    logits[torch.arange(16), torch.arange(16)] = 3.0
    c = functional.gate_coefficients(logits, hard=True)
    for op in range(16):
        for a, b in itertools.product((0.0, 1.0), repeat=2):
            v = functional.apply_coeffs(c[op], torch.tensor(a), torch.tensor(b))
            assert float(v) == gates.GATES[op].truth_table[2 * int(a) + int(b)]


def test_straight_through_coefficients_forward_hard_backward_relaxed():
    """Straight-through: the values are the argmax gate's rows, the gradient is the relaxed
    mixture's (float64, exact)."""
    torch.manual_seed(1)
    logits = torch.randn(40, 16, dtype=torch.float64)
    w = torch.randn(40, 4, dtype=torch.float64)
    l_ste = logits.clone().requires_grad_()
    l_soft = logits.clone().requires_grad_()
    c_ste = functional.gate_coefficients(l_ste, straight_through=True)
    assert torch.equal(c_ste, functional.gate_coefficients(logits, hard=True))
    (c_ste * w).sum().backward()
    (functional.gate_coefficients(l_soft) * w).sum().backward()
    torch.testing.assert_close(l_ste.grad, l_soft.grad, rtol=0, atol=1e-15)
    assert l_ste.grad.abs().sum() > 0


def test_gumbel_noise_is_gumbel_and_samples_the_softmax():
    """Noise has the Gumbel(0, 1) mean (Euler's gamma) and variance (pi^2 / 6), scales
    linearly, replays from the RNG state; argmax(logits + noise) draws gate i with
    probability softmax(logits)_i (the Gumbel-max trick the straight-through run relies on)."""
    torch.manual_seed(0)
    g = functional.gumbel_noise(torch.empty(400_000, dtype=torch.float64), 1.0)
    assert abs(float(g.mean()) - 0.5772156649) < 0.01
    assert abs(float(g.var()) - math.pi ** 2 / 6) < 0.02
    torch.manual_seed(7)
    g1 = functional.gumbel_noise(torch.empty(1000), 1.0)
    torch.manual_seed(7)
    assert torch.equal(functional.gumbel_noise(torch.empty(1000), 2.5), 2.5 * g1)
    logits = torch.tensor([2.0, 1.0, 0.0, -1.0] + [-30.0] * 12)
    n = 200_000
    torch.manual_seed(1)
    picks = (logits + functional.gumbel_noise(torch.empty(n, 16), 1.0)).argmax(-1)
    freq = torch.bincount(picks, minlength=16).double() / n
    torch.testing.assert_close(freq, torch.softmax(logits.double(), 0), rtol=0, atol=0.005)
