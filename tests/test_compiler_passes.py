"""Optimization passes beyond the basic ones: output-inverter absorption, cross-op inverter
pushing and the optional Berkeley ABC pass (BLIF round trip, exactness, and every way an ABC
run can fail falling back to the other passes' netlist with a one-line notice)."""
import os
import shutil
import stat

import numpy as np
import pytest
import torch

import difflogic as dl
from difflogic import gates
from difflogic.compiler import hard_counts, harden, ir, optimize, simulate
from difflogic.compiler.passes import DEFAULT, WITH_ABC, abc, apply_pass
from conftest import random_input, random_model

ABC = abc.find_abc()


def need_abc():
    if ABC is None:
        if os.environ.get("CI"):
            pytest.fail("CI: berkeley-abc not installed (apt-get install berkeley-abc)")
        pytest.skip("berkeley-abc not installed (apt-get install berkeley-abc)")


def _net(blocks, k=1):
    last = blocks[-1]
    return ir.Netlist(tuple(blocks[0].in_shape), list(blocks), ir.GroupSum(k, 1.0, len(last.outputs)))


def _dense(n_in, gates_ab, outputs, leaves=None):
    op = np.array([o for o, _, _ in gates_ab], np.uint8)
    a = np.array([x for _, x, _ in gates_ab], np.int64)
    b = np.array([y for _, _, y in gates_ab], np.int64)
    leaves = np.arange(n_in) if leaves is None else np.asarray(leaves)
    return ir.GateBlock("dense", (n_in,), leaves, op, a, b, np.asarray(outputs, np.int64))


def _all_inputs(n):
    return ((np.arange(1 << n)[:, None] >> np.arange(n)[None, :]) & 1).astype(np.uint8)


def test_output_polarity_absorbs_an_output_inverter_into_its_driver():
    # leaves 2, 3, 4; g5 = a & b, g6 = g5 ^ c, g7 = ~g5 (an output): g5 becomes NAND, g6 reads
    # it through XNOR, g7 disappears
    net = _net([_dense(3, [(gates.AND, 2, 3), (gates.XOR, 5, 4), (gates.NOT_A, 5, 5)], [6, 7])], k=2)
    out = optimize(net)
    assert out.ops[0].n_gates == 2 and sorted(out.ops[0].op.tolist()) == [gates.XNOR, gates.NAND]
    assert np.array_equal(simulate(out, _all_inputs(3)), simulate(net, _all_inputs(3)))
    # the driver is itself an output: both polarities are needed, the inverter stays
    keep = _net([_dense(3, [(gates.AND, 2, 3), (gates.NOT_A, 5, 5)], [5, 6])], k=2)
    assert apply_pass(keep, "output_polarity").ops[0].op.tolist() == keep.ops[0].op.tolist()


def test_push_inverters_moves_output_inverters_into_the_reading_block():
    # block 1: g5 = ~l0 (an output), g6 = l1 | l2, g7 = ~g6 (absorbed by g6 in the cell), g8 =
    # l0 & l1; block 2 reads features 0 and 1 through gates.  ~l0 is pushed into block 2 unless
    # block 2 also passes feature 0 straight to its outputs (it would pass the wrong polarity).
    b1 = _dense(3, [(gates.NOT_A, 2, 2), (gates.OR, 3, 4), (gates.NOT_A, 6, 6), (gates.AND, 2, 3)], [5, 7, 8])
    for passed, n_not in ((3, 0), (2, 1)):   # block 2's third output: leaf 1 (feature 1) / leaf 0
        b2 = _dense(3, [(gates.AND, 2, 3), (gates.XOR, 3, 4)], [5, 6, passed])
        net = _net([b1, b2], k=3)
        out = optimize(net)
        assert np.array_equal(simulate(out, _all_inputs(3)), simulate(net, _all_inputs(3)))
        assert int((out.ops[0].op == gates.NOT_A).sum()) == n_not
        assert out.gate_count() == 4 + n_not


def test_push_inverters_never_crosses_a_padded_conv_or_a_pool():
    torch.manual_seed(1)
    for layers in ([{"type": "conv", "out_channels": 4, "kernel_size": 3, "depth": 2, "padding": 1},
                    {"type": "conv", "out_channels": 4, "kernel_size": 3, "depth": 2, "padding": 1}],
                   [{"type": "conv", "out_channels": 4, "kernel_size": 2, "depth": 2, "or_pool": 2},
                    {"type": "conv", "out_channels": 4, "kernel_size": 2, "depth": 2}]):
        model = dl.LogicNet({"input_shape": [2, 8, 8], "init": "gaussian",
                             "layers": layers + [{"type": "flatten"}, {"type": "group_sum", "k": 2, "tau": 1}]})
        x = (torch.rand(64, 2, 8, 8) > 0.5).float()
        net = harden(model)
        for p in (apply_pass(net, "push_inverters"), optimize(net)):
            assert np.array_equal(simulate(p, x.numpy()), hard_counts(model, x))


@pytest.mark.parametrize("seed", range(8))
def test_new_passes_alone_and_together_are_exact(seed):
    model = random_model(100 + seed)
    x = random_input(model, 90, seed)
    ref = hard_counts(model, x)
    net = harden(model)
    from difflogic.compiler import encode_input
    bits = encode_input(net, x)
    for name in ("output_polarity", "push_inverters"):
        assert np.array_equal(simulate(apply_pass(net, name), bits), ref), name
    opt = optimize(net)
    assert np.array_equal(simulate(opt, bits), ref)
    assert opt.meta["optimize"]["seconds"].keys() == set(DEFAULT)


def test_blif_round_trip_of_every_gate():
    """Our BLIF writer and reader agree on all 16 gates, constants and wired outputs."""
    blk = _dense(2, [(op, 2, 3) for op in range(16)], [*range(4, 20), 2, ir.CONST1, ir.CONST0])
    back = abc.from_blif(abc.to_blif(blk), blk)
    x = abc.pack(_all_inputs(2))
    assert np.array_equal(abc.run_block(blk, x), abc.run_block(back, x))
    with pytest.raises(ValueError, match="different inputs or outputs"):
        abc.from_blif(abc.to_blif(blk).replace(" o18", " o99"), blk)


@pytest.mark.parametrize("seed", [6, 9, 11, "mnist-tiny"])
def test_abc_pass_is_exact_and_never_larger(seed):
    need_abc()
    torch.manual_seed(0)
    model = dl.get_model(seed, init="gaussian") if isinstance(seed, str) else random_model(seed)
    x = random_input(model, 120, 1)
    net = harden(model)
    ours = optimize(net)
    with_abc = optimize(net, passes=WITH_ABC)
    from difflogic.compiler import encode_input
    assert np.array_equal(simulate(with_abc, encode_input(net, x)), hard_counts(model, x))
    assert with_abc.gate_count() <= ours.gate_count()
    assert "abc" in with_abc.meta["optimize"]["seconds"]


def _dense_chain(seed=0, widths=(64, 120, 120, 120), k=4):
    torch.manual_seed(seed)
    layers = [dl.LogicLayer(a, b, device="cpu", init="gaussian") for a, b in zip(widths, widths[1:])]
    return torch.nn.Sequential(*layers, dl.GroupSum(k, tau=1)).eval()


def test_dense_runs_merge_into_one_equal_block():
    """The ABC pass's merge of consecutive dense blocks (one cell ABC can see across) simulates
    like the chain; runs stop at a non-dense op and at the size limit."""
    model = _dense_chain()
    net = optimize(harden(model))
    assert abc.dense_runs(net, 10**9) == [(0, 3)]
    assert abc.dense_runs(net, net.ops[0].n_gates + net.ops[1].n_gates) == [(0, 2)]
    assert abc.dense_runs(net, 0) == []
    merged = abc.merge_dense(net.ops)
    assert merged.kind == "dense" and merged.n_gates == net.gate_count() and "(merged)" in merged.name
    x = (torch.rand(200, 64) > 0.5).float()
    one = ir.Netlist(net.input_shape, [merged], net.head)
    assert np.array_equal(simulate(one, x.numpy()), hard_counts(model, x))
    conv = harden(random_model(9))   # conv blocks never join a run
    assert all(all(op.kind == "dense" for op in conv.ops[a:b]) for a, b in abc.dense_runs(conv, 10**9))


def test_abc_pass_merges_a_dense_chain_exactly():
    need_abc()
    model = _dense_chain(1)
    net = harden(model)
    out = optimize(net, passes=WITH_ABC)
    x = (torch.rand(300, 64) > 0.5).float()
    assert np.array_equal(simulate(out, x.numpy()), hard_counts(model, x))
    assert out.gate_count() <= optimize(net).gate_count()
    per_cell = optimize(net, passes=[*DEFAULT, abc.Abc(merge_max_gates=0)])
    assert out.gate_count() <= per_cell.gate_count()


def _fake_abc(tmp_path, body: str) -> str:
    exe = tmp_path / "fake-abc"
    exe.write_text("#!/bin/bash\n" + body + "\n")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    return str(exe)


WRONG = """if [[ "$2" == *"; cec "* ]]; then echo "Networks are equivalent"; exit 0; fi
outs=$(grep '^.outputs' cell.blif)
{ echo .model cell; grep '^.inputs' cell.blif; echo "$outs"; for o in ${outs#.outputs}; do echo ".names $o"; done; echo .end; } > mapped.blif"""


@pytest.mark.parametrize("body, pass_, notice", [
    ("echo 'Reading network from file has failed.'; exit 1", abc.Abc(), "exit 1"),
    ("sleep 5", abc.Abc(timeout=0.3), "timed out"),
    (WRONG, abc.Abc(), "differs from the cell in simulation"),
    (None, abc.Abc(), "ABC is not installed"),
])
def test_a_failing_abc_keeps_the_other_passes_netlist(tmp_path, monkeypatch, capfd, body, pass_, notice):
    model = random_model(9)   # three gate blocks
    net = harden(model)
    x = random_input(model, 100, 1)
    exe = _fake_abc(tmp_path, body) if body is not None else str(tmp_path / "no-such-abc")
    monkeypatch.setenv("DIFFLOGIC_ABC", exe)
    out = optimize(net, passes=[*DEFAULT, pass_])
    err = capfd.readouterr().err
    lines = [line for line in err.splitlines() if "abc pass" in line]
    assert lines and all(notice in line for line in lines), err
    assert out.gate_counts() == optimize(net).gate_counts()
    from difflogic.compiler import encode_input
    assert np.array_equal(simulate(out, encode_input(net, x)), hard_counts(model, x))


def test_abc_rejects_a_cell_that_cec_refutes(tmp_path, monkeypatch, capfd):
    """A wrong result that ABC's own cec would catch is refused before simulation."""
    need_abc()
    body = WRONG.replace('if [[ "$2" == *"; cec "* ]]; then echo "Networks are equivalent"; exit 0; fi',
                         f'if [[ "$2" == *"; cec "* ]]; then exec {shutil.which(ABC)} "$@"; fi')
    monkeypatch.setenv("DIFFLOGIC_ABC", _fake_abc(tmp_path, body))
    net = harden(random_model(9))
    out = optimize(net, passes=[*DEFAULT, abc.Abc()])
    err = capfd.readouterr().err
    assert "cec did not prove" in err
    assert out.gate_counts() == optimize(net).gate_counts()
