"""Scripts written for the upstream difflogic package run here unchanged, on our kernels and
compiler: LogicLayer / GroupSum / PackBitsTensor / CompiledLogicNet give the counts of our
hard forward, bit for bit, and upstream's known faults do not carry over."""
import json

import numpy as np
import pytest
import torch

import difflogic as dl
from conftest import TINY
from difflogic.compiler import compile, encode_input, hard_counts


def upstream_script(tmp_path):
    """What a user of upstream's README writes, and nothing but its API."""
    from difflogic import CompiledLogicNet, GroupSum, LogicLayer, PackBitsTensor
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Flatten(),
        LogicLayer(784, 600, device="cpu"),
        LogicLayer(600, 600, device="cpu", connections="unique"),
        LogicLayer(600, 500, device="cpu", grad_factor=1.5, implementation="python"),
        GroupSum(k=10, tau=10))
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    x = (torch.rand(256, 1, 28, 28) > 0.7).float()
    y = torch.randint(0, 10, (256,))
    for _ in range(3):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    model.eval()
    compiled = CompiledLogicNet(model=model, num_bits=64, cpu_compiler="gcc")
    compiled.compile(save_lib_path=str(tmp_path / "my_model_binary.so"))
    loaded = CompiledLogicNet.load(str(tmp_path / "my_model_binary.so"), num_classes=10, num_bits=64)
    data = x.reshape(256, -1).bool().numpy()
    return model, data, {"compiled 5": compiled(data[:5]), "loaded 5": loaded(data[:5]),
                         "loaded 256": loaded(data), "compiled 256": compiled.forward(data),
                         "packbits": model(PackBitsTensor(torch.from_numpy(data), device="cpu"))}


def test_upstream_script_gives_our_hard_forward_counts(tmp_path):
    model, data, outputs = upstream_script(tmp_path)
    assert not torch.equal(model[1].weights.argmax(-1), torch.zeros(600, dtype=torch.long))
    ref = hard_counts(model, torch.from_numpy(data).to(torch.uint8))
    assert ref.std() > 0   # the counts say something about the inputs
    for name, out in outputs.items():
        n = 5 if name.endswith("5") else 256
        assert isinstance(out, torch.Tensor) and out.dtype == torch.int32, name
        np.testing.assert_array_equal(out.numpy(), ref[:n], err_msg=name)
    # and as upstream: the float scores of the hard forward are those counts / tau
    with torch.no_grad():
        scores = model(torch.from_numpy(data).float())
    np.testing.assert_allclose(scores.numpy() * 10, ref, atol=1e-3)


@pytest.mark.parametrize("n", [1, 3, 63, 65, 200])
@pytest.mark.parametrize("num_bits", [8, 64])
def test_batches_smaller_than_num_bits_and_a_one_layer_net(n, num_bits, tmp_path):
    # upstream: a batch below num_bits overran its buffers; a one-layer net did not compile
    torch.manual_seed(n)
    model = torch.nn.Sequential(dl.LogicLayer(40, 30, device="cpu"), dl.GroupSum(3, tau=2)).eval()
    cm = dl.CompiledLogicNet(model, num_bits=num_bits)
    cm.compile(opt_level=0)
    x = torch.rand(n, 40) > 0.5
    ref = hard_counts(model, x.to(torch.uint8))
    np.testing.assert_array_equal(cm(x).numpy(), ref)
    np.testing.assert_array_equal(model(dl.PackBitsTensor(x, num_bits, "cpu")).numpy(), ref)


def test_conv_net_compiles_from_bits_and_images():
    torch.manual_seed(1)
    model = dl.LogicNet({**TINY, "init": "gaussian"}).eval()
    images = np.random.default_rng(0).integers(0, 256, (70, 1, 28, 28), dtype=np.uint8)
    ref = hard_counts(model, images)
    cm = dl.CompiledLogicNet(model)
    cm.compile()
    bits = encode_input(compile(model), images).reshape(70, -1).astype(bool)
    np.testing.assert_array_equal(cm(bits).numpy(), ref)
    np.testing.assert_array_equal(cm(images).numpy(), ref)
    assert cm.num_classes == 10 and cm.num_inputs == bits.shape[1]
    assert "dl_scores_bits" in cm.get_c_code()


@pytest.mark.parametrize("bit_count", [8, 16, 32, 64])
def test_packbits_runs_a_conv_logicnet_and_is_not_modified(bit_count):
    torch.manual_seed(2)
    model = dl.LogicNet({**TINY, "init": "gaussian"}).eval()
    images = np.random.default_rng(1).integers(0, 256, (37, 1, 28, 28), dtype=np.uint8)
    bits = torch.from_numpy(encode_input(compile(model, optimize=False), images)).bool()
    packed = dl.PackBitsTensor(bits, bit_count=bit_count, device="cpu")
    words = packed.t.clone()
    out = model(packed)
    assert out.dtype == torch.int32
    np.testing.assert_array_equal(out.numpy(), hard_counts(model, images))
    assert torch.equal(packed.t, words)   # upstream overwrote the tensor it was given
    assert torch.equal(packed.unpack(), bits.reshape(37, -1))
    assert packed.pad_len == packed.t.shape[1] * bit_count - 37


def test_packbits_needs_eval_mode_and_the_right_width():
    model = torch.nn.Sequential(dl.LogicLayer(8, 6, device="cpu"), dl.GroupSum(2))
    x = dl.PackBitsTensor(torch.rand(5, 8) > 0.5, device="cpu")
    with pytest.raises(TypeError, match="call model.eval"):
        model(x)
    with pytest.raises(ValueError, match="reads 8 inputs but the tensor has 4"):
        model.eval()(dl.PackBitsTensor(torch.rand(5, 4) > 0.5, device="cpu"))
    with pytest.raises(TypeError, match="bool"):
        dl.PackBitsTensor(torch.rand(5, 8), device="cpu")
    with pytest.raises(ValueError, match="bit_count"):
        dl.PackBitsTensor(torch.rand(5, 8) > 0.5, bit_count=12, device="cpu")


@pytest.mark.parametrize("implementation", [None, "cuda", "python"])
@pytest.mark.parametrize("connections", ["random", "unique"])
def test_every_upstream_argument_value_is_accepted(implementation, connections, recwarn):
    torch.manual_seed(3)
    layer = dl.LogicLayer(20, 50, device="cuda", grad_factor=2.0, implementation=implementation,
                          connections=connections)
    x = torch.rand(4, 20, device=layer.weights.device, requires_grad=True)
    layer(x).sum().backward()
    assert x.grad is not None and layer.weights.grad is not None
    a, b = layer.indices
    assert layer.in_dim == 20 and layer.out_dim == 50 and bool((a != b).all())
    ref = torch.nn.Sequential(dl.LogicLayer(20, 50, device="cpu", implementation="python"))
    ref.load_state_dict({"0." + k: v.cpu() for k, v in layer.state_dict().items()})
    torch.testing.assert_close(layer.eval()(x).cpu(), ref.eval()(x.detach().cpu()))


@pytest.mark.parametrize("n_in, n_out", [(3, 3), (10, 45), (7, 12), (100, 1000), (1000, 64)])
def test_unique_connections_are_distinct_pairs_using_inputs_evenly(n_in, n_out):
    torch.manual_seed(n_in)
    a, b = dl.LogicLayer(n_in, n_out, device="cpu", connections="unique").indices
    pairs = {(min(p), max(p)) for p in zip(a.tolist(), b.tolist())}
    assert len(pairs) == n_out and all(x != y for x, y in pairs)
    use = torch.bincount(torch.cat([a, b]), minlength=n_in)
    assert int(use.max() - use.min()) <= 2


def test_unique_connections_beyond_capacity_is_one_clear_error():
    with pytest.raises(ValueError, match=r"only 3 distinct pairs.*connections='random'"):
        dl.LogicLayer(3, 4, device="cpu", connections="unique")


def _model():
    torch.manual_seed(4)
    return torch.nn.Sequential(dl.LogicLayer(16, 12, device="cpu"), dl.GroupSum(3)).eval()


@pytest.mark.parametrize("make, error, match", [
    (lambda: dl.CompiledLogicNet(torch.nn.Sequential(dl.LogicLayer(8, 6, device="cpu"),
                                                     torch.nn.ReLU(), dl.GroupSum(2))),
     ValueError, r"CompiledLogicNet: layer 1: ReLU is not supported"),
    (lambda: dl.CompiledLogicNet(_model(), device="cuda"), ValueError, r"runs on the CPU"),
    (lambda: dl.CompiledLogicNet(_model(), num_bits=12), ValueError, r"num_bits must be one of"),
    (lambda: dl.CompiledLogicNet("model.pt"), TypeError, r"needs a trained model"),
    (lambda: dl.CompiledLogicNet(_model(), cpu_compiler="no-such-cc").compile(), RuntimeError,
     r"no C compiler found .*apt-get install gcc"),
    (lambda: dl.CompiledLogicNet(_model())(np.zeros((2, 16), bool)), RuntimeError,
     r"call compile\(\)"),
])
def test_bad_input_is_one_clear_line(make, error, match):
    with pytest.raises(error, match=match) as e:
        make()
    assert "\n" not in str(e.value)


def test_inputs_of_the_wrong_width_or_type_are_refused():
    cm = dl.CompiledLogicNet(_model())
    cm.compile(opt_level=0)
    with pytest.raises(ValueError, match=r"expected a bool array \(batch, 16\), got shape \(2, 15\)"):
        cm(np.zeros((2, 15), bool))
    with pytest.raises(TypeError, match="must be bool"):
        cm(np.full((2, 16), 0.5))
    np.testing.assert_array_equal(cm(np.zeros((0, 16), bool)).numpy(), np.zeros((0, 3)))


def test_saved_library_and_sidecar_are_checked_and_written_together(tmp_path):
    cm = dl.CompiledLogicNet(_model())
    lib = tmp_path / "net.so"
    with pytest.raises(IsADirectoryError):
        cm.compile(opt_level=0, save_lib_path=tmp_path)
    assert list(tmp_path.iterdir()) == []
    cm.compile(opt_level=0, save_lib_path=lib)
    side = json.loads((tmp_path / "net.so.json").read_text())
    assert side["num_classes"] == 3 and side["num_inputs"] == 16
    with pytest.raises(ValueError, match="computes 3 classes.*num_classes=3"):
        dl.CompiledLogicNet.load(lib, num_classes=10, num_bits=64)
    (tmp_path / "other.so").write_bytes(lib.read_bytes())
    with pytest.raises(ValueError, match="sidecar other.so.json is missing"):
        dl.CompiledLogicNet.load(tmp_path / "other.so", num_classes=3, num_bits=64)
    lib.write_bytes(lib.read_bytes() + b"\0")
    with pytest.raises(ValueError, match="does not match its sidecar"):
        dl.CompiledLogicNet.load(lib, num_classes=3, num_bits=64)
    with pytest.raises(FileNotFoundError, match="no such library file"):
        dl.CompiledLogicNet.load(tmp_path / "missing.so", num_classes=3, num_bits=64)


def test_a_loaded_library_runs_without_its_model(tmp_path):
    model = _model()
    dl.CompiledLogicNet(model).compile(opt_level=0, save_lib_path=tmp_path / "m.so")
    loaded = dl.CompiledLogicNet.load(tmp_path / "m.so", num_classes=3, num_bits=8)
    x = np.random.default_rng(0).integers(0, 2, (9, 16)).astype(bool)
    np.testing.assert_array_equal(loaded(x).numpy(), hard_counts(model, x.astype(np.uint8)))
    with pytest.raises(RuntimeError, match="needs the model"):
        loaded.get_c_code()


def test_a_dense_layer_above_the_table_threshold_compiles_as_a_table(tmp_path):
    """Big dense layers go through the C back end's table form (seconds, not minutes of gcc):
    the counts stay those of the hard forward, also from a saved and reloaded library."""
    from difflogic.backends.c import TABLE_GATES
    torch.manual_seed(0)
    model = torch.nn.Sequential(dl.LogicLayer(300, 2 * TABLE_GATES, device="cpu"), dl.GroupSum(4, tau=1)).eval()
    cm = dl.CompiledLogicNet(model)
    assert "Table form: 1 of 1 dense blocks" in cm.get_c_code()
    cm.compile(save_lib_path=tmp_path / "big.so")
    x = torch.rand(257, 300) > 0.5
    ref = hard_counts(model, x.to(torch.uint8))
    np.testing.assert_array_equal(cm(x).numpy(), ref)
    loaded = dl.CompiledLogicNet.load(tmp_path / "big.so", num_classes=4, num_bits=64)
    np.testing.assert_array_equal(loaded(x).numpy(), ref)
