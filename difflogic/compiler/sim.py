"""Reference simulator of the netlist IR, bit-parallel over the batch.

Samples are packed 64 per ``uint64`` word (sample ``n`` is bit ``n % 64`` of word ``n // 64``),
so one word operation evaluates a gate for 64 samples.  A conv cell is evaluated for all
positions at once: every node is a row of ``positions * words`` words, and the gate loop
(numba when available, numpy otherwise) streams over those rows.  Bits past the batch in the
last word are don't-cares and are never unpacked.

This is the golden model the C and Verilog back ends are checked against, so it is written
to be obviously right: it reads the IR exactly as documented in :mod:`.ir`.
"""
from __future__ import annotations

import numpy as np

from .. import gates
from . import ir

try:  # numba pays for itself on the per-gate loop; numpy is the fallback
    import numba as _nb
except ImportError:  # pragma: no cover
    _nb = None

CHUNK = 1 << 14  # samples per simulation chunk (bounds memory)
#: True when the gate loop is compiled (numba): then the simulator outruns the PyTorch hard
#: forward, and the trainer's hard evaluations use it.
COMPILED = _nb is not None


def _eval_gates_py(op, a, b, vals, first):
    tt = gates.TRUTH_TABLES[np.asarray(op, np.int64)].astype(np.uint64)
    masks = (np.uint64(0) - tt).astype(np.uint64)  # all-ones where the truth-table bit is set
    for g in range(len(op)):
        x, y = vals[a[g]], vals[b[g]]
        nx, ny = ~x, ~y
        m = masks[g]
        vals[first + g] = (m[0] & nx & ny) | (m[1] & nx & y) | (m[2] & x & ny) | (m[3] & x & y)


if _nb is not None:
    @_nb.njit(cache=False, nogil=True)
    def _eval_gates_nb(op, a, b, vals, first):  # pragma: no cover - compiled
        M = vals.shape[1]
        zero = np.uint64(0)
        for g in range(op.shape[0]):
            o = op[g]
            m0 = zero - np.uint64((o >> 3) & 1)
            m1 = zero - np.uint64((o >> 2) & 1)
            m2 = zero - np.uint64((o >> 1) & 1)
            m3 = zero - np.uint64(o & 1)
            ia, ib, d = a[g], b[g], first + g
            for m in range(M):
                x = vals[ia, m]
                y = vals[ib, m]
                nx = ~x
                ny = ~y
                vals[d, m] = (m0 & nx & ny) | (m1 & nx & y) | (m2 & x & ny) | (m3 & x & y)


def _eval_gates(op, a, b, vals, first):
    if _nb is not None and len(op):
        _eval_gates_nb(op.astype(np.uint8), a.astype(np.int64), b.astype(np.int64), vals, int(first))
    else:
        _eval_gates_py(op, a, b, vals, first)


# --------------------------------------------------------------------------- packing
def pack(bits: np.ndarray) -> np.ndarray:
    """(N, *shape) 0/1 -> (*shape, ceil(N/64)) uint64, sample n at bit n%64 of word n//64."""
    bits = np.asarray(bits)
    N = bits.shape[0]
    shape = bits.shape[1:]
    W = max(1, -(-N // 64))
    flat = bits.reshape(N, -1)
    padded = np.zeros((W * 8, 8, flat.shape[1]), np.uint8)           # sample 8j + i at [j, i]
    padded.reshape(W * 64, -1)[:N] = flat != 0
    # byte j of feature f holds samples 8j..8j+7 (bit i = sample 8j+i), so the 8 bytes of word
    # w are samples 64w..64w+63 in little-endian order
    by = padded[:, 0].copy()                                          # (W*8, F)
    for i in range(1, 8):
        by |= padded[:, i] << i
    words = np.ascontiguousarray(by.T).view("<u8").astype(np.uint64)  # (F, W)
    return words.reshape(*shape, W)


def unpack(words: np.ndarray, n: int) -> np.ndarray:
    """Inverse of :func:`pack`: (*shape, W) uint64 -> (n, *shape) uint8."""
    shape = words.shape[:-1]
    w = np.ascontiguousarray(words.reshape(-1, words.shape[-1]).astype("<u8"))
    bits = np.unpackbits(w.view(np.uint8), axis=1, bitorder="little")[:, :n]
    return bits.T.reshape(n, *shape)


# --------------------------------------------------------------------------- ops
def _const_rows(vals):
    vals[ir.CONST0] = 0
    vals[ir.CONST1] = ~np.uint64(0)


def run_block(blk: ir.GateBlock, x: np.ndarray) -> np.ndarray:
    """Evaluate one GateBlock on packed input ``x`` (*in_shape, W) -> packed output."""
    W = x.shape[-1]
    n_nodes = blk.first_gate + blk.n_gates
    if blk.kind == "dense":
        flat = x.reshape(-1, W)
        vals = np.empty((n_nodes, W), np.uint64)
        _const_rows(vals)
        if blk.n_leaves:
            vals[ir.FIRST_LEAF:blk.first_gate] = flat[blk.leaves]
        _eval_gates(blk.op, blk.a, blk.b, vals, blk.first_gate)
        return vals[blk.outputs].copy()
    if blk.kind != "conv":
        raise ValueError(f"unknown GateBlock kind {blk.kind!r}")
    C, H, Wd = blk.in_shape
    p, s = blk.padding, blk.stride
    K, Ho, Wo = blk.out_shape
    xp = np.zeros((C, H + 2 * p, Wd + 2 * p, W), np.uint64)
    xp[:, p:p + H, p:p + Wd] = x.reshape(C, H, Wd, W)
    M = Ho * Wo * W
    vals = np.empty((n_nodes, M), np.uint64)
    _const_rows(vals)
    for l, (c, dy, dx) in enumerate(blk.leaves):
        vals[ir.FIRST_LEAF + l] = xp[c, dy:dy + s * (Ho - 1) + 1:s, dx:dx + s * (Wo - 1) + 1:s].reshape(-1)
    _eval_gates(blk.op, blk.a, blk.b, vals, blk.first_gate)
    return vals[blk.outputs].reshape(K, Ho, Wo, W)


def run_pool(pool: ir.OrPool, x: np.ndarray) -> np.ndarray:
    C, H, Wd = pool.in_shape
    s = pool.size
    _, Ho, Wo = pool.out_shape
    W = x.shape[-1]
    v = x.reshape(C, H, Wd, W)[:, :Ho * s, :Wo * s].reshape(C, Ho, s, Wo, s, W)
    return np.bitwise_or.reduce(np.bitwise_or.reduce(v, axis=4), axis=2)


def run_packed(netlist: ir.Netlist, x: np.ndarray) -> np.ndarray:
    """Packed input bits (*input_shape, W) -> packed final features (F, W)."""
    for op in netlist.ops:
        if isinstance(op, ir.GateBlock):
            x = run_block(op, x)
        elif isinstance(op, ir.OrPool):
            x = run_pool(op, x)
        else:
            raise TypeError(f"simulate: unknown op {type(op).__name__}")
    return x.reshape(-1, x.shape[-1])


def _is_binary(a: np.ndarray) -> bool:
    if a.dtype == np.uint8:
        return int(a.max()) <= 1
    return bool(((a == 0) | (a == 1)).all())


def check_bits(netlist, bits, values: bool = True) -> np.ndarray:
    """``bits`` as an array of shape (N, *input_shape) holding only 0/1 (clear error otherwise);
    ``netlist``: the netlist, or just its input shape; ``values=False`` checks the shape only
    (for a consumer that checks the values itself)."""
    bits = np.asarray(bits.detach().cpu() if hasattr(bits, "detach") else bits)
    shape = tuple(netlist.input_shape if isinstance(netlist, ir.Netlist) else netlist)
    if bits.ndim == len(shape):
        bits = bits[None] if tuple(bits.shape) == shape else bits
    if tuple(bits.shape[1:]) != shape:
        raise ValueError(f"bits must have shape (N, {', '.join(map(str, shape))}), got {tuple(bits.shape)}")
    if values and bits.dtype != np.bool_ and bits.size and not _is_binary(bits):
        raise ValueError("bits must contain only 0 and 1 (encode images with encode_input first)")
    return bits


def bytes_per_sample(netlist: ir.Netlist) -> int:
    """Peak bytes the simulation of one op needs per sample (its node rows), to size chunks."""
    peak = 1
    for op in netlist.ops:
        if isinstance(op, ir.GateBlock):
            rows = op.first_gate + op.n_gates
            positions = int(np.prod(op.out_shape[1:])) if op.kind == "conv" else 1
            peak = max(peak, rows * positions)
    return -(-peak // 8)   # one bit per sample per row


def group_counts(feats: np.ndarray, k: int, n: int) -> np.ndarray:
    """Packed features (F, W) -> int64 (n, k): the 1-bits of each of the k equal groups of
    consecutive features, per sample (GroupSum without its 1/tau)."""
    w = np.ascontiguousarray(feats.astype("<u8")).reshape(k, feats.shape[0] // k, -1)
    bits = np.unpackbits(w.view(np.uint8), axis=2, bitorder="little")   # (k, F/k, W*64)
    return bits.sum(axis=1, dtype=np.int64)[:, :n].T


def simulate(netlist: ir.Netlist, bits) -> np.ndarray:
    """Class counts int64 (N, k) of the netlist on encoded input ``bits`` (N, *input_shape)."""
    bits = check_bits(netlist, bits)
    N = bits.shape[0]
    k = netlist.head.k
    out = np.zeros((N, k), np.int64)
    for s in range(0, N, CHUNK):
        chunk = bits[s:s + CHUNK]
        feats = run_packed(netlist, pack(chunk))
        if feats.shape[0] != netlist.head.in_features:
            raise ValueError(f"netlist produces {feats.shape[0]} features but GroupSum expects "
                             f"{netlist.head.in_features}")
        out[s:s + len(chunk)] = group_counts(feats, k, len(chunk))
    return out


def encode_input(netlist: ir.Netlist, x) -> np.ndarray:
    """Images -> encoded input bits uint8 (N, *input_shape), exactly as the PyTorch model.

    Float input in [0, 1]: ``x > threshold`` in x's precision (torch casts the float32
    thresholds to the input dtype).  uint8 images: ``pixel >= u8_cutoffs`` (the exact
    equivalent of ``pixel / 255 > threshold`` in float32).  Without an encoder the input must
    already be 0/1 bits.
    """
    x = np.asarray(x.detach().cpu() if hasattr(x, "detach") else x)
    enc = netlist.encoder
    if enc is None:
        return check_bits(netlist, x).astype(np.uint8)
    shape = tuple(enc.in_shape)
    if tuple(x.shape[1:]) != shape:
        raise ValueError(f"x must have shape (N, {', '.join(map(str, shape))}), got {tuple(x.shape)}")
    C, T = enc.thresholds.shape
    extra = (1,) * (len(shape) - 1)
    if x.dtype == np.uint8:
        cut = enc.u8_cutoffs.reshape(1, C, T, *extra).astype(np.int32)
        out = x[:, :, None].astype(np.int32) >= cut
    elif np.issubdtype(x.dtype, np.floating):
        if not np.isfinite(x).all():
            raise ValueError("x contains NaN or inf; images must be finite values in [0, 1]")
        thr = enc.thresholds.astype(x.dtype).reshape(1, C, T, *extra)
        out = x[:, :, None] > thr
    else:
        raise TypeError(f"x must be float images in [0, 1] or uint8 images, got dtype {x.dtype}")
    return out.reshape(x.shape[0], C * T, *shape[1:]).astype(np.uint8)


def random_inputs(netlist: ir.Netlist, n: int, seed: int) -> np.ndarray:
    """``n`` random inputs of the netlist's model (seeded): uint8 images when it has an image
    encoder, float32 rows around the thresholds of a table model's, else 0/1 bits.  The test
    inputs of ``difflogic verify`` and of exported test benches."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"the number of random inputs must be an integer >= 0, got {n!r}")
    rng = np.random.default_rng(seed)
    if netlist.encoder is not None and len(netlist.encoder.in_shape) == 1:
        return threshold_rows(netlist.encoder.thresholds, n, rng)
    if netlist.encoder is not None:
        return rng.integers(0, 256, (n, *netlist.encoder.in_shape), dtype=np.uint8)
    return rng.integers(0, 2, (n, *netlist.input_shape), dtype=np.uint8)


def threshold_rows(thresholds: np.ndarray, n: int, rng) -> np.ndarray:
    """``n`` float32 rows of a table model (thresholds (F, T) in the features' units): each
    feature on one of its thresholds, one float step below or above it, where ``x > t``
    decides and an encoder that rounds or compares loosely fails first."""
    thr = np.asarray(thresholds, dtype=np.float32)
    pick = thr[np.arange(thr.shape[0]), rng.integers(0, thr.shape[1], (n, thr.shape[0]))]
    step = rng.integers(-1, 2, pick.shape)
    return np.where(step < 0, np.nextafter(pick, np.float32(-np.inf)), np.where(
        step > 0, np.nextafter(pick, np.float32(np.inf)), pick)).astype(np.float32)


def predict(netlist: ir.Netlist, bits) -> np.ndarray:
    """Predicted class (first maximum, like torch.argmax) for encoded input bits."""
    return simulate(netlist, bits).argmax(1)
