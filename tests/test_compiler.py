"""Compiler: harden, optimization passes, lowering and the bit-parallel simulator agree with
the PyTorch hard forward bit for bit."""
import dataclasses

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import difflogic as dl
from difflogic import gates
from difflogic.compiler import (encode_input, hard_counts, harden, ir, lower_to_flat, optimize,
                                predict, simulate, u8_cutoffs)
from difflogic.compiler.passes import DEFAULT, apply_pass
from conftest import random_input, random_model


def _bits(net, x):
    return encode_input(net, x)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000))
def test_random_architectures_all_levels_agree(seed):
    model = random_model(seed)
    x = random_input(model, 70, seed)
    ref = hard_counts(model, x)
    net = harden(model)
    bits = _bits(net, x)
    assert np.array_equal(simulate(net, bits), ref)
    opt = optimize(net)
    assert np.array_equal(simulate(opt, bits), ref)
    assert np.array_equal(simulate(lower_to_flat(net), bits), ref)
    assert np.array_equal(simulate(lower_to_flat(opt), bits), ref)
    for name in DEFAULT:  # every pass alone preserves the outputs (abc: test_compiler_passes.py)
        assert np.array_equal(simulate(apply_pass(net, name), bits), ref), name
    assert opt.gate_count() <= net.gate_count()


def test_mnist_tiny_optimized_and_lowered():
    torch.manual_seed(0)
    model = dl.get_model("mnist-tiny", init="gaussian")
    x = torch.rand(40, 1, 28, 28)
    ref = hard_counts(model, x)
    net = harden(model)
    opt = optimize(net)
    bits = _bits(net, x)
    assert np.array_equal(simulate(opt, bits), ref)
    assert np.array_equal(simulate(optimize(lower_to_flat(opt)), bits), ref)
    assert opt.gate_count() < net.gate_count() // 2   # random gates simplify a lot
    assert np.array_equal(predict(opt, bits), torch.as_tensor(ref).argmax(1).numpy())
    rows = dict(opt.meta["optimize"]["after"])
    assert "GroupSum adders (7 per output, paper estimate)" in rows


def test_harden_structure_conv_block_holds_all_trees():
    torch.manual_seed(0)
    model = dl.get_model("mnist-tiny", init="gaussian")
    net = harden(model)
    conv = net.ops[0]
    assert conv.kind == "conv" and conv.n_gates == 16 * 7 and len(conv.outputs) == 16
    assert isinstance(net.ops[1], ir.OrPool) and net.ops[1].size == 2
    assert len(np.unique(conv.leaves, axis=0)) == conv.n_leaves      # deduplicated
    assert conv.gate_count() + net.ops[1].gate_count() == model.gate_counts()[1][1]
    assert net.gate_count() == model.gate_count()
    assert net.input_shape == (3, 28, 28) and net.encoder.in_shape == (1, 28, 28)


def test_residual_init_hardens_to_wires():
    torch.manual_seed(0)
    model = dl.LogicNet({"input_shape": [6], "layers": [
        {"type": "dense", "out_features": 12}, {"type": "dense", "out_features": 12},
        {"type": "group_sum", "k": 3, "tau": 1}]})
    opt = optimize(harden(model))
    assert opt.gate_count() == 0
    x = (torch.rand(20, 6) > 0.5).float()
    assert np.array_equal(simulate(opt, x.numpy()), hard_counts(model, x))


def test_training_mode_model_hardens_to_argmax():
    torch.manual_seed(1)
    model = random_model(3).train()
    x = random_input(model, 20)
    net = harden(model)
    assert model.training
    assert np.array_equal(simulate(net, _bits(net, x)), hard_counts(model, x))
    assert model.training   # hard_counts restores the mode


def test_unknown_layer_error_names_layer_and_lists_supported():
    model = nn.Sequential(dl.LogicDense(8, 8), nn.ReLU(), dl.GroupSum(2))
    with pytest.raises(ValueError, match=r"1: ReLU.*supported.*LogicDense"):
        harden(model)
    with pytest.raises(ValueError, match="GroupSum"):
        harden(nn.Sequential(dl.LogicDense(8, 8)))
    with pytest.raises(TypeError):
        harden(object())


def test_plain_sequential_and_input_shape():
    torch.manual_seed(0)
    seq = nn.Sequential(dl.LogicConv2d(2, 4, 3, depth=2, init="gaussian"), nn.Flatten(),
                        dl.LogicDense(4 * 3 * 3, 8, init="gaussian"), dl.GroupSum(2))
    with pytest.raises(ValueError, match="input_shape"):
        harden(seq)
    net = harden(seq, input_shape=(2, 5, 5))
    x = (torch.rand(9, 2, 5, 5) > 0.5).float()
    assert np.array_equal(simulate(net, x.numpy()), hard_counts(seq, x))
    dense = nn.Sequential(dl.LogicLayer(10, 6, device="cpu"), dl.GroupSum(3))
    assert harden(dense).input_shape == (10,)


def test_u8_cutoffs_match_torch_float32_division():
    rng = np.random.default_rng(0)
    thr = np.concatenate([rng.random(200), np.arange(255) / 255, np.arange(255) / 255 - 1e-8,
                          [0.0, 0.999]]).clip(0, 0.9999).astype(np.float32)
    cut = u8_cutoffs(thr)
    px = torch.arange(256, dtype=torch.uint8)
    above = (px.float() / 255)[None, :] > torch.as_tensor(thr)[:, None]
    expected = (px[None, :].int() >= torch.as_tensor(cut)[:, None])
    assert torch.equal(above, expected)


def test_encode_input_matches_thresholds_layer():
    th = dl.Thresholds.uniform(3, channels=2).eval()
    net = ir.Netlist(input_shape=(6, 4, 4), ops=[], head=ir.GroupSum(2, 1.0, 96),
                     encoder=ir.Encoder(th.thresholds.numpy(), u8_cutoffs(th.thresholds.numpy()), (2, 4, 4)))
    x = torch.rand(5, 2, 4, 4)
    assert np.array_equal(encode_input(net, x), th(x).numpy())
    assert np.array_equal(encode_input(net, x.double()), th(x.double()).numpy())
    xu = torch.randint(0, 256, (5, 2, 4, 4), dtype=torch.uint8)
    assert np.array_equal(encode_input(net, xu), th(xu.float() / 255).numpy())
    with pytest.raises(ValueError, match="shape"):
        encode_input(net, torch.rand(5, 3, 4, 4))
    with pytest.raises(ValueError, match="NaN"):
        encode_input(net, torch.full((1, 2, 4, 4), float("nan")))
    with pytest.raises(ValueError, match="0 and 1"):
        simulate(net, np.full((1, 6, 4, 4), 2, np.uint8))


def _dense_net(ops_ab, outputs, n_in=3, k=1):
    op = np.array([o for o, _, _ in ops_ab], np.uint8)
    a = np.array([x for _, x, _ in ops_ab], np.int64)
    b = np.array([y for _, _, y in ops_ab], np.int64)
    blk = ir.GateBlock("dense", (n_in,), np.arange(n_in), op, a, b, np.array(outputs, np.int64))
    return ir.Netlist((n_in,), [blk], ir.GroupSum(k, 1.0, len(outputs)))


ALL_BITS3 = np.array([[(i >> j) & 1 for j in range(3)] for i in range(8)], np.uint8)


def _check_same(a, b):
    assert np.array_equal(simulate(a, ALL_BITS3), simulate(b, ALL_BITS3))


def test_pass_const_fold():
    # leaves are nodes 2, 3, 4; gates start at 5
    net = _dense_net([(gates.TRUE, 2, 3), (gates.AND, 5, 2), (gates.FALSE, 2, 2), (gates.OR, 7, 3)], [6, 8], k=2)
    out = apply_pass(net, "const_fold")
    blk = out.ops[0]
    assert blk.n_gates == 0 and list(blk.outputs) == [2, 3]
    _check_same(net, out)


def test_pass_passthrough_folds_not_into_consumer():
    # g5 = NOT a ; g6 = g5 AND b  -> one gate (~a & b); g7 = B(a, c) -> wire c; NOT kept at output
    net = _dense_net([(gates.NOT_A, 2, 3), (gates.AND, 5, 3), (gates.B, 2, 4), (gates.XOR, 6, 7)], [8, 5], k=2)
    out = optimize(net)
    blk = out.ops[0]
    ops = sorted(blk.op.tolist())
    assert ops == sorted([gates.NOT_A_AND_B, gates.XOR, gates.NOT_A]), ops
    _check_same(net, out)
    p = apply_pass(net, "passthrough")
    assert gates.B not in p.ops[0].op.tolist()
    _check_same(net, p)


def test_pass_strash_merges_commutative_duplicates():
    net = _dense_net([(gates.AND, 2, 3), (gates.AND, 3, 2), (gates.A_AND_NOT_B, 2, 3), (gates.NOT_A_AND_B, 3, 2),
                      (gates.XOR, 4, 4), (gates.OR, 5, 6), (gates.OR, 7, 8)], [9, 10, 8], k=3)
    out = apply_pass(net, "strash")
    assert out.ops[0].n_gates < net.ops[0].n_gates
    _check_same(net, out)
    opt = optimize(net)
    _check_same(net, opt)
    assert opt.ops[0].n_gates <= 3


def test_pass_dce_and_prune_outputs():
    torch.manual_seed(0)
    model = dl.LogicNet({"input_shape": [8], "init": "gaussian", "layers": [
        {"type": "dense", "out_features": 40}, {"type": "dense", "out_features": 6},
        {"type": "group_sum", "k": 2, "tau": 1}]})
    net = harden(model)
    # first layer's outputs that layer 2 does not read become constant 0, then die
    pruned = apply_pass(net, "prune_outputs")
    read = set(np.unique(np.concatenate([net.ops[1].a, net.ops[1].b]) - 2).tolist())
    read = {int(net.ops[1].leaves[i]) for i in read}
    unread = [j for j in range(40) if j not in read]
    assert unread and all(pruned.ops[0].outputs[j] == ir.CONST0 for j in unread)
    d = apply_pass(pruned, "dce")
    assert d.ops[0].n_gates <= 40 - len(unread)
    x = (torch.rand(30, 8) > 0.5).float()
    for n in (pruned, d):
        assert np.array_equal(simulate(n, x.numpy()), hard_counts(model, x))


def test_optimize_does_not_mutate_input_and_reaches_fixed_point():
    model = random_model(11)
    net = harden(model)
    snap = [dataclasses.replace(op) for op in net.ops]
    arrays = [(op.op.copy(), op.a.copy(), op.outputs.copy()) for op in net.ops if isinstance(op, ir.GateBlock)]
    opt = optimize(net)
    after = [(op.op, op.a, op.outputs) for op in net.ops if isinstance(op, ir.GateBlock)]
    for (o1, a1, q1), (o2, a2, q2) in zip(arrays, after):
        assert np.array_equal(o1, o2) and np.array_equal(a1, a2) and np.array_equal(q1, q2)
    assert len(snap) == len(net.ops) and "optimize" not in net.meta
    again = optimize(opt)
    assert again.gate_counts() == opt.gate_counts()
    with pytest.raises(ValueError, match="unknown pass"):
        optimize(net, passes=["nope"])
