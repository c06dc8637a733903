"""Layers: wiring invariants, train/eval semantics, state_dict fidelity, bad input."""
import copy
import io
import warnings

import pytest
import torch

import difflogic as dl
from difflogic import functional as F
from difflogic import gates
from difflogic.checkpoint import load_model, save_checkpoint


def test_dense_wiring_never_reads_same_input_twice_and_covers_inputs():
    torch.manual_seed(0)
    for n_in, n_out in [(2, 1), (3, 3), (10, 5), (100, 1000), (1000, 100)]:
        layer = dl.LogicDense(n_in, n_out)
        assert bool((layer.wire_a != layer.wire_b).all())
        assert layer.wire_a.max() < n_in and layer.wire_b.min() >= 0
        if 2 * n_out >= n_in:  # every input used when there are enough slots
            used = torch.cat([layer.wire_a, layer.wire_b]).unique()
            assert used.numel() >= n_in - 1


def test_residual_init_is_pass_through():
    layer = dl.LogicDense(8, 16).eval()
    assert bool((layer.ops() == gates.PASS_THROUGH_A).all())
    x = torch.randint(0, 2, (4, 8)).float()
    torch.testing.assert_close(layer(x), x[:, layer.wire_a])
    # relaxed: ~91% mass on A
    p = torch.softmax(layer.weight, -1)[0, gates.PASS_THROUGH_A]
    assert abs(float(p.detach()) - 0.9082) < 1e-3


def test_dense_relaxed_matches_reference_and_hard_is_binary():
    torch.manual_seed(1)
    layer = dl.LogicDense(20, 30, init="gaussian")
    x = torch.rand(5, 20)
    y = layer(x)
    ref = F.dense_reference(x, layer.wire_a, layer.wire_b, F.gate_coefficients(layer.weight))
    torch.testing.assert_close(y, ref, rtol=1e-5, atol=1e-6)
    layer.eval()
    xb = torch.randint(0, 2, (5, 20)).float()
    yh = layer(xb)
    assert set(yh.unique().tolist()) <= {0.0, 1.0}
    ops = layer.ops().long()
    expected = gates.hard_gate(ops.numpy(), xb[:, layer.wire_a].long().numpy(), xb[:, layer.wire_b].long().numpy())
    assert torch.equal(yh.long(), torch.as_tensor(expected))
    # the integer path gives the same bits
    assert torch.equal(layer(xb.to(torch.uint8)).long(), yh.long())


@pytest.mark.parametrize("or_pool", [1, 2])
def test_conv_relaxed_matches_reference(or_pool):
    torch.manual_seed(2)
    conv = dl.LogicConv2d(4, 6, 3, depth=3, padding=1, or_pool=or_pool, init="gaussian")
    x = torch.rand(2, 4, 8, 8)
    ref = F.tree_conv_pool_reference(x, conv.leaf_c, conv.leaf_dy, conv.leaf_dx,
                                     F.gate_coefficients(conv.weight), (3, 3), 1, 1, or_pool)
    torch.testing.assert_close(conv(x), ref, rtol=1e-5, atol=1e-6)
    assert conv(x).shape == (2, 6, 8 // or_pool, 8 // or_pool)


def test_conv_leaves_respect_channels_groups_and_receptive_field():
    torch.manual_seed(3)
    conv = dl.LogicConv2d(16, 8, (3, 5), depth=3, channels_per_tree=2, groups=4)
    assert conv.leaf_c.shape == (8, 8)
    for k in range(8):
        chans = conv.leaf_c[k].unique()
        assert chans.numel() <= 2
        group = k * 4 // 8
        assert bool(((chans // 4) == group).all())
    assert conv.leaf_dy.max() < 3 and conv.leaf_dx.max() < 5
    pairs_same = ((conv.leaf_c[:, 0::2] == conv.leaf_c[:, 1::2]) & (conv.leaf_dy[:, 0::2] == conv.leaf_dy[:, 1::2])
                  & (conv.leaf_dx[:, 0::2] == conv.leaf_dx[:, 1::2]))
    assert not bool(pairs_same.any())


def test_conv_hard_on_binary_is_binary_and_matches_uint8_path():
    torch.manual_seed(4)
    conv = dl.LogicConv2d(3, 5, 3, depth=2, padding=1, or_pool=2, init="gaussian").eval()
    x = torch.randint(0, 2, (3, 3, 7, 9)).float()
    y = conv(x)
    assert set(y.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(conv(x.to(torch.uint8)).float(), y)


def test_or_pool_is_max_in_training_and_or_when_hard():
    pool = dl.OrPool2d(2)
    x = torch.rand(2, 3, 5, 4)
    torch.testing.assert_close(pool(x), torch.nn.functional.max_pool2d(x, 2))
    xb = torch.randint(0, 2, (2, 3, 4, 4), dtype=torch.uint8)
    y = pool.eval()(xb)
    expected = xb[:, :, 0::2, 0::2] | xb[:, :, 0::2, 1::2] | xb[:, :, 1::2, 0::2] | xb[:, :, 1::2, 1::2]
    assert torch.equal(y, expected)


def test_group_sum_and_thresholds():
    gs = dl.GroupSum(2, tau=4.0)
    x = torch.tensor([[1.0, 0.0, 1.0, 0.0, 0.0, 1.0]])
    torch.testing.assert_close(gs(x), torch.tensor([[2 / 4, 1 / 4]]))
    th = dl.Thresholds.uniform(3, channels=2)
    assert th.thresholds.tolist() == [[0.25, 0.5, 0.75]] * 2
    img = torch.tensor([[[[0.1]], [[0.6]]]])
    out = th(img)
    assert out.flatten().tolist() == [0, 0, 0, 1, 1, 0]
    assert th.eval()(img).dtype == torch.uint8


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(5, 3), (4, 3, 6, 7)])
def test_thresholds_equal_the_plain_comparison(dtype, shape):
    """The encoder writes its comparison straight into the output dtype (a speed-up); its
    values must be those of ``x > t`` in both modes, also for pixels exactly on a threshold
    and for an input that requires grad."""
    th = dl.Thresholds([[0.2, 0.5], [0.1, 0.9], [0.3, 0.4]])
    x = torch.rand(shape, dtype=dtype)
    x.view(-1)[::5] = 0.5  # on a threshold of channel 0
    t = th.thresholds.to(dtype).reshape(1, 3, 2, *([1] * (len(shape) - 2)))
    plain = (x.unsqueeze(2) > t).flatten(1, 2)
    out = th.train()(x.requires_grad_())
    assert out.dtype == dtype and not out.requires_grad
    assert torch.equal(out, plain.to(dtype))
    hard = th.eval()(x)
    assert hard.dtype == torch.uint8 and torch.equal(hard, plain.to(torch.uint8))


def test_quantile_thresholds_split_the_pixels_evenly():
    """Each of the T+1 intervals holds ~1/(T+1) of a channel's pixels, thresholds sit half-way
    between grey levels (so x = pixel/255 > t never depends on rounding), and tied quantiles
    (many black pixels) still give T distinct, increasing thresholds inside (0, 1)."""
    import numpy as np
    from difflogic.layers import quantile_thresholds
    rng = np.random.default_rng(0)
    imgs = np.stack([rng.integers(0, 256, (400, 8, 8)),               # uniform grey levels
                     (rng.beta(2, 5, (400, 8, 8)) * 255).astype(int)], 1).astype(np.uint8)
    rows = quantile_thresholds(imgs, 7)
    assert len(rows) == 2 and all(len(r) == 7 for r in rows)
    for c, row in enumerate(rows):
        levels = [t * 255 - 0.5 for t in row]
        assert all(abs(k - round(k)) < 1e-9 for k in levels), row
        assert row == sorted(set(row))
        px = imgs[:, c].ravel() / np.float32(255)
        shares = np.diff([0.0, *[(px <= t).mean() for t in row], 1.0])
        assert np.allclose(shares, 1 / 8, atol=0.02), shares  # grey levels are 1/256 wide
    # only the training split counts: the same images under indices
    assert quantile_thresholds(imgs, 7, np.arange(0, 400, 2)) == quantile_thresholds(imgs[::2], 7)
    black = np.zeros((5, 1, 4, 4), np.uint8)
    black[:, :, 0, 0] = 255
    assert [round(t * 255 - 0.5) for t in quantile_thresholds(black, 4)[0]] == [0, 1, 2, 3]
    assert [round(t * 255 - 0.5) for t in quantile_thresholds(black + 255, 3)[0]] == [252, 253, 254]
    th = dl.Thresholds.quantile(imgs, 7)
    assert th.thresholds.shape == (2, 7)
    with pytest.raises(TypeError, match="uint8 images"):
        quantile_thresholds(imgs.astype(np.float32) / 255, 7)
    with pytest.raises(ValueError, match="at most 255"):
        quantile_thresholds(imgs, 256)


def test_quantile_thresholds_in_a_config_need_resolving():
    from difflogic.models import resolve_quantile_thresholds
    cfg = dl.get_model_config("mnist-tiny")
    cfg["layers"][0] = {"type": "thresholds", "num": 3, "spacing": "quantile"}
    with pytest.raises(ValueError, match="resolve_quantile_thresholds"):
        dl.LogicNet(cfg)
    imgs = torch.randint(0, 256, (20, 1, 28, 28), dtype=torch.uint8)
    resolved = resolve_quantile_thresholds(cfg, imgs)
    assert "thresholds" not in cfg["layers"][0]  # the caller's config is not touched
    values = resolved["layers"][0]["thresholds"]
    assert torch.equal(dl.LogicNet(resolved)[0].thresholds, torch.tensor(values))
    assert resolve_quantile_thresholds(resolved, imgs[:3]) == resolved  # values stay once set
    resolved["layers"][0]["num"] = 4
    with pytest.raises(ValueError, match='"num": 4 but 3 values per channel'):
        dl.LogicNet(resolved)
    cfg["layers"][0]["spacing"] = "log"
    with pytest.raises(ValueError, match="'spacing' must be one of"):
        dl.LogicNet(cfg)


def test_state_dict_rebuilds_exact_network():
    torch.manual_seed(5)
    m1 = dl.get_model("mnist-tiny", init="gaussian")
    buf = io.BytesIO()
    torch.save(m1.state_dict(), buf)
    torch.manual_seed(999)  # different RNG: wiring must come from the state dict
    m2 = dl.LogicNet(m1.config)
    buf.seek(0)
    m2.load_state_dict(torch.load(buf, weights_only=True))
    x = torch.rand(3, 1, 28, 28)
    m1.eval(), m2.eval()
    assert torch.equal(m1(x), m2(x))


def test_straight_through_net_trains_the_hard_network():
    """With straight-through on, a train-mode forward on {0, 1} inputs equals the hard (eval)
    network exactly, yet gradients still reach every gate layer's logits; eval() ignores it."""
    torch.manual_seed(3)
    net = dl.get_model("mnist-tiny", init="gaussian")
    x = torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        hard = net.eval()(x)
        relaxed = net.train()(x)
    dl.set_straight_through(net, True)
    out = net.train()(x)
    assert torch.equal(out, hard.to(out.dtype)) and not torch.equal(out, relaxed)
    out.sum().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    with torch.no_grad():
        assert torch.equal(net.eval()(x), hard)
    dl.set_straight_through(net, False)
    with torch.no_grad():
        assert torch.equal(net.train()(x), relaxed)


def test_gumbel_straight_through_forward_is_a_sampled_hard_network():
    """Gumbel noise + straight-through: a train-mode forward is exactly the hard network whose
    gates are argmax(logits + noise), noise drawn from the global RNG (so replayable); the
    noise changes every forward, gradients reach every layer, and eval() ignores it."""
    torch.manual_seed(3)
    net = dl.get_model("mnist-tiny", init="gaussian")
    x = (torch.rand(4, 1, 28, 28) > 0.5).float()
    with torch.no_grad():
        hard = net.eval()(x)
    dl.set_straight_through(net, True)
    dl.set_gumbel_noise(net, 1.5)
    net.train()
    torch.manual_seed(11)
    out = net(x)
    # replay: the same noise, added by hand to a copy's logits, hardened
    torch.manual_seed(11)
    twin = copy.deepcopy(net)
    layers = [m for m in twin.modules() if hasattr(m, "gumbel")]
    with torch.no_grad():
        for m in layers:  # modules() order is the forward order: same noise draws
            m.weight += F.gumbel_noise(m.weight, 1.5)
        assert torch.equal(out.detach(), twin.eval()(x).to(out.dtype))
        assert not torch.equal(out.detach(), hard.to(out.dtype))  # the noise did pick other gates
        assert not torch.equal(net(x), out)  # fresh noise each forward
        assert torch.equal(net.eval()(x), hard)
    net.train()
    net(x).sum().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    for bad in (-1.0, float("nan"), "x"):
        with pytest.raises((ValueError, TypeError), match="gumbel"):
            dl.set_gumbel_noise(net, bad)


def test_layer_config_straight_through_is_part_of_the_architecture(tmp_path):
    """A config's ``"straight_through": true`` on a gate layer makes that layer always train
    straight-through (the run-phase switch does not turn it off), survives a checkpoint, and
    is refused where it means nothing."""
    from difflogic.checkpoint import load_model, save_checkpoint
    cfg = dl.get_model_config("mnist-tiny")
    first = next(i for i, spec in enumerate(cfg["layers"]) if spec["type"] in ("conv", "dense"))
    cfg["layers"][first] = {**cfg["layers"][first], "straight_through": True}
    torch.manual_seed(0)
    net = dl.LogicNet(cfg)
    gate_layers = [m for m in net.modules() if hasattr(m, "always_straight_through")]
    assert [m.always_straight_through for m in gate_layers] == [True] + [False] * (len(gate_layers) - 1)
    layer = gate_layers[0]
    layer.weight.data.normal_()  # not a residual init: relaxed and hard rows differ
    net.train()
    dl.set_straight_through(net, False)
    assert torch.equal(layer.coefficients(), F.gate_coefficients(layer.weight.detach(), hard=True))
    assert not torch.equal(gate_layers[1].coefficients(),
                           F.gate_coefficients(gate_layers[1].weight.detach(), hard=True))
    save_checkpoint(tmp_path / "m.pt", net, kind="model")
    again = load_model(tmp_path / "m.pt")
    assert [m.always_straight_through for m in again.modules()
            if hasattr(m, "always_straight_through")][0] is True
    x = torch.rand(3, *cfg["input_shape"])
    with torch.no_grad():
        assert torch.equal(again.train()(x), net.train()(x))
    # a fraction: the training loop's switch for this layer alone (test_train.py), kept in
    # the config and so in checkpoints; never "always" (that is `true`)
    cfg_f = {**cfg, "layers": [*cfg["layers"][:first], {**cfg["layers"][first], "straight_through": 0.5},
                               *cfg["layers"][first + 1:]]}
    save_checkpoint(tmp_path / "f.pt", dl.LogicNet(cfg_f), kind="model")
    got = [(m.ste_from, m.always_straight_through) for m in load_model(tmp_path / "f.pt").modules()
           if hasattr(m, "always_straight_through")]
    assert got == [(0.5, False)] + [(None, False)] * (len(gate_layers) - 1)
    for bad_spec in ({"type": "flatten", "straight_through": True},
                     {**cfg["layers"][first], "straight_through": "yes"},
                     {**cfg["layers"][first], "straight_through": 1.5},
                     {**cfg["layers"][first], "straight_through": -0.1},
                     {**cfg["layers"][first], "straight_through": float("nan")}):
        bad = {**cfg, "layers": [*cfg["layers"][:first], bad_spec, *cfg["layers"][first + 1:]]}
        with pytest.raises(ValueError, match="straight_through"):
            dl.LogicNet(bad)


def test_grouped_conv_feeding_group_sum_directly_warns():
    """Class c's block of outputs would come from one or two channel groups only."""
    def cfg(groups, head):
        return {"input_shape": [4, 4, 4], "num_classes": 2, "layers": [
            {"type": "conv", "out_channels": 8, "kernel_size": 2, "depth": 2, "padding": 0,
             "channels_per_tree": 2, "groups": groups}, {"type": "flatten"}, *head,
            {"type": "group_sum", "k": 2, "tau": 1.0}]}
    with pytest.warns(UserWarning, match=r"layer 0 \(conv, groups=2\) feeds group_sum"):
        dl.LogicNet(cfg(2, []))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dl.LogicNet(cfg(1, []))                                      # one group: every class sees all
        dl.LogicNet(cfg(2, [{"type": "dense", "out_features": 8}]))  # a random layer recombines
        dl.get_model("cifar10-s")


def test_logic_tree_net_gate_counts_match_paper():
    # raw training-gate counts (reference notes sec. 7.3)
    assert dl.get_model("cifar10-s").gate_count() == 960_512
    assert dl.get_model("mnist-s").gate_count() == 236_848
    assert dl.get_model("mnist-m").gate_count() == 947_392


def test_logic_tree_net_s_shapes_and_forward():
    torch.manual_seed(6)
    m = dl.LogicTreeNet("s", "cifar10")
    assert m.shapes[1] == (9, 32, 32) and m.shapes[-2] == (10240,)
    y = m(torch.rand(2, 3, 32, 32))
    assert y.shape == (2, 10)
    assert bool((y >= 0).all()) and bool((y <= 1024 / 20 + 1e-4).all())


def test_upstream_compatible_signatures():
    with pytest.warns(UserWarning) if not torch.cuda.is_available() else _nullcontext():
        layer = dl.LogicLayer(16, 32, device="cuda", implementation="python")
    model = torch.nn.Sequential(layer, dl.LogicLayer(32, 20, device="cpu"), dl.GroupSum(k=10, tau=30))
    assert model(torch.rand(4, 16)).shape == (4, 10)
    # grad factor scales the input gradient
    l2 = dl.LogicLayer(16, 8, device="cpu", grad_factor=2.0)
    x = torch.rand(3, 16, requires_grad=True)
    l2(x).sum().backward()
    g2 = x.grad.clone()
    x.grad = None
    l2.grad_factor = 1.0
    l2(x).sum().backward()
    torch.testing.assert_close(g2, 2 * x.grad)


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


@pytest.mark.parametrize("make, x, match", [
    (lambda: dl.LogicDense(4, 3), torch.rand(2, 5), "expected input size 4"),
    (lambda: dl.LogicDense(4, 3), torch.rand(2, 2, 2), "2-D input"),
    (lambda: dl.LogicDense(4, 3), torch.tensor([[0.0, float("nan"), 0.0, 1.0]]), "NaN"),
    (lambda: dl.LogicDense(4, 3), torch.ones(2, 4, dtype=torch.int64), "floating-point"),
    (lambda: dl.LogicConv2d(3, 4, 5), torch.rand(1, 3, 4, 4), "does not fit"),
    (lambda: dl.LogicConv2d(3, 4, 3), torch.rand(1, 2, 8, 8), "expected input size 3"),
    (lambda: dl.LogicConv2d(3, 4, 3), torch.rand(8, 8), "4-D input"),
])
def test_bad_inputs_raise_clear_errors(make, x, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()(x)


@pytest.mark.parametrize("make, match", [
    (lambda: dl.LogicConv2d(3, 4, 3, depth=0), "depth"),
    (lambda: dl.LogicConv2d(3, 4, 0), "kernel_size"),
    (lambda: dl.LogicConv2d(3, 4, 3, groups=2), "groups"),
    (lambda: dl.LogicDense(1, 4), "in_features"),
    (lambda: dl.LogicDense(4, 3, init="zeros"), "init"),
    (lambda: dl.Thresholds([0.5, 1.5]), "thresholds"),
    (lambda: dl.Thresholds([float("nan")]), "thresholds"),
    (lambda: dl.GroupSum(0), "k"),
    (lambda: dl.GroupSum(10, tau=0), "tau"),
    (lambda: dl.get_model("nope"), "unknown model"),
])
def test_bad_arguments_raise_clear_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_uint8_input_rejected_in_training():
    layer = dl.LogicDense(4, 3)
    with pytest.raises(TypeError, match="eval"):
        layer(torch.ones(2, 4, dtype=torch.uint8))


def test_gradients_flow_to_logits():
    torch.manual_seed(7)
    m = dl.get_model("mnist-tiny")
    x = torch.rand(2, 1, 28, 28)
    loss = torch.nn.functional.cross_entropy(m(x), torch.tensor([1, 2]))
    loss.backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


# --------------------------------------------------------------------------- input-wise gates
@pytest.mark.parametrize("r", [5.0, 2.5])
def test_input_wise_residual_init_starts_at_the_softmax_init_function(r):
    """Same residual logit, same relaxed start: the two parametrizations differ in how they
    move, not where they begin; both harden to pass-through wires."""
    torch.manual_seed(0)
    soft = dl.LogicConv2d(4, 6, 3, depth=3, padding=1, residual_logit=r)
    torch.manual_seed(0)
    iw = dl.LogicConv2d(4, 6, 3, depth=3, padding=1, residual_logit=r, parametrization="input_wise")
    assert iw.weight.shape == (6, 7, 4) and soft.weight.shape == (6, 7, 16)
    torch.testing.assert_close(iw.coefficients(), soft.coefficients(), rtol=0, atol=1e-6)
    assert bool((iw.ops() == gates.PASS_THROUGH_A).all())
    x = torch.rand(2, 4, 8, 8)
    torch.testing.assert_close(iw(x), soft(x), rtol=1e-5, atol=1e-6)


def test_input_wise_gates_are_rounded_truth_tables():
    """Every sign pattern of the 4 parameters hardens to the gate with that truth table; the
    relaxed output is the truth table's multilinear extension; hard = that gate exactly."""
    signs = torch.tensor([[1.0 if (g >> (3 - i)) & 1 else -1.0 for i in range(4)] for g in range(16)])
    layer = dl.LogicDense(2, 16, parametrization="input_wise")
    with torch.no_grad():
        layer.weight.copy_(signs * torch.linspace(0.1, 3.0, 16)[:, None])
        layer.wire_a.zero_(), layer.wire_b.fill_(1)
    assert torch.equal(layer.ops().long(), torch.arange(16))
    corners = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    assert torch.equal(layer.eval()(corners).t(), torch.as_tensor(gates.TRUTH_TABLES, dtype=torch.float32))
    x = torch.rand(50, 2)
    w = torch.sigmoid(layer.weight.detach())
    a, b = x[:, :1], x[:, 1:]
    ref = w[:, 0] * (1 - a) * (1 - b) + w[:, 1] * (1 - a) * b + w[:, 2] * a * (1 - b) + w[:, 3] * a * b
    torch.testing.assert_close(layer.train()(x), ref, rtol=1e-5, atol=1e-6)


def test_input_wise_gradcheck_and_straight_through():
    torch.manual_seed(4)
    theta = torch.randn(5, 3, 4, dtype=torch.float64, requires_grad=True)
    x = torch.rand(2, 6, 5, 5, dtype=torch.float64)
    conv = dl.LogicConv2d(6, 5, 3, depth=2, padding=1, or_pool=2, parametrization="input_wise",
                          dtype=torch.float64)
    geom = ((3, 3), 1, 1, 2)
    args = (conv.leaf_c, conv.leaf_dy, conv.leaf_dx)
    assert torch.autograd.gradcheck(lambda t: F.tree_conv_pool_reference(
        x, *args, F.input_wise_coefficients(t), *geom), (theta,))
    # straight-through: the hard coefficients forward, the relaxed ones' gradient backward
    st = F.input_wise_coefficients(theta, straight_through=True)
    assert torch.equal(st.detach(), F.input_wise_coefficients(theta, hard=True))
    g_st, = torch.autograd.grad(st.sum(), theta)
    g_soft, = torch.autograd.grad(F.input_wise_coefficients(theta).sum(), theta)
    assert torch.equal(g_st, g_soft)


def test_input_wise_config_round_trips_and_rejects_gumbel(tmp_path):
    cfg = {"name": "iw", "input_shape": [1, 8, 8], "num_classes": 2, "init": "gaussian",
           "parametrization": "input_wise",
           "layers": [{"type": "thresholds", "num": 2},
                      {"type": "conv", "out_channels": 4, "kernel_size": 3, "depth": 2, "or_pool": 2},
                      {"type": "flatten"},
                      {"type": "dense", "out_features": 8, "parametrization": "softmax"},
                      {"type": "group_sum", "k": 2, "tau": 1.0}]}
    torch.manual_seed(1)
    net = dl.LogicNet(cfg)
    assert [m.parametrization for m in net if isinstance(m, dl.LogicConv2d | dl.LogicDense)] == \
        ["input_wise", "softmax"]
    path = tmp_path / "iw.pt"
    save_checkpoint(path, net)
    back = load_model(path)
    x = torch.rand(7, 1, 8, 8)
    assert torch.equal(back.eval()(x), net.eval()(x))
    with pytest.raises(ValueError, match="Gumbel.*input_wise"):
        dl.set_gumbel_noise(net, 0.3)
    with pytest.raises(ValueError, match="parametrization must be one of"):
        dl.LogicNet({**cfg, "parametrization": "lut"})
