"""The reference simulator's packing and class counts against their definitions, written out
bit by bit (the simulator is the golden model every back end is checked against)."""
import numpy as np
import pytest

from difflogic.compiler import sim


@pytest.mark.parametrize("n", [1, 7, 63, 64, 65, 130, 1000])
def test_pack_puts_sample_n_at_bit_n_mod_64_of_word_n_div_64(n):
    rng = np.random.default_rng(n)
    bits = rng.integers(0, 2, (n, 2, 3, 5)).astype(np.uint8)
    words = sim.pack(bits)
    assert words.shape == (2, 3, 5, -(-n // 64)) and words.dtype == np.uint64
    want = np.zeros(words.shape, np.uint64)
    for s in range(n):
        want[..., s // 64] |= bits[s].astype(np.uint64) << np.uint64(s % 64)
    assert np.array_equal(words, want)
    assert np.array_equal(sim.unpack(words, n), bits)


def test_pack_treats_any_nonzero_value_as_one():
    bits = np.array([[0, 2, 255], [1, 0, 7]], np.uint8)
    assert np.array_equal(sim.unpack(sim.pack(bits), 2), (bits != 0).astype(np.uint8))


@pytest.mark.parametrize("n", [1, 64, 100])
def testgroup_counts_sum_each_class_group_per_sample(n):
    rng = np.random.default_rng(n)
    k, per = 3, 50
    feats = rng.integers(0, 2, (n, k * per)).astype(np.uint8)
    got = sim.group_counts(sim.pack(feats), k, n)
    want = np.array([[feats[s, c * per:(c + 1) * per].sum() for c in range(k)] for s in range(n)])
    assert got.dtype == np.int64 and np.array_equal(got, want)
