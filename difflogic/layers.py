"""Logic-gate layers as ``torch.nn`` modules.

Every learnable neuron is a 2-input gate with 16 logits (one per gate in
:mod:`difflogic.gates`), or with ``parametrization="input_wise"`` 4 truth-table entries.
``train()`` mode computes the relaxed (expected) output; ``eval()`` mode fixes every neuron
to its hard gate (the argmax, or the rounded truth table), so on {0, 1} inputs the output is
exactly {0, 1}.  In eval mode the layers also accept uint8/bool {0,1} tensors and then run
the integer hard kernels (that is what :class:`Thresholds` feeds them in eval mode).

Wiring (which inputs a gate reads) is drawn once at construction from torch's RNG and
stored as buffers, so ``state_dict()`` alone rebuilds the exact network.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from . import _checks, gates
from .functional import (conv_output_size, gate_coefficients, group_sum, gumbel_noise,
                         input_wise_coefficients, input_wise_ops)

from . import kernels as _ops  # the kernel dispatcher (native C++/CUDA with a PyTorch fallback)

BACKENDS = ("auto", "native", "torch")
INITS = ("residual", "gaussian")
#: How a neuron's gate is parametrized: ``softmax`` = 16 logits, one per gate (both papers);
#: ``input_wise`` = 4 truth-table entries through a sigmoid (Ruettgers et al. 2025), see
#: :func:`difflogic.functional.input_wise_coefficients`.
PARAMETRIZATIONS = ("softmax", "input_wise")


def init_logits(shape, init: str, residual_logit: float, generator=None,
                parametrization: str = "softmax") -> torch.Tensor:
    """Gate parameters for a new layer: ``(*shape, 16)`` logits, or ``(*shape, 4)``
    truth-table parameters for the input-wise parametrization.

    ``residual`` (default, Petersen et al. 2024): logit 5 on the pass-through gate "A" and 0
    elsewhere (~91% mass on A), so deep stacks start as near-identity wires and gradients
    do not vanish.  ``gaussian``: i.i.d. N(0, 1) logits as in the 2022 paper.
    Input-wise, ``residual`` starts at the same relaxed function as the softmax form with the
    same ``residual_logit`` r: the truth table of "A" held with probability
    (e^r + 7) / (e^r + 15) per entry (0.951 for r = 5), i.e. parameters +-log((e^r + 7) / 8).
    """
    parametrization = check_parametrization(parametrization)
    width = gates.NUM_GATES if parametrization == "softmax" else 4
    if init == "residual":
        r = _checks.finite_number("residual_logit", residual_logit)
        if parametrization == "softmax":
            w = torch.zeros(*shape, width)
            w[..., gates.PASS_THROUGH_A] = r
            return w
        z = math.log((math.exp(r) + 7) / 8) if r < 30 else r - math.log(8)
        sign = torch.as_tensor(gates.TRUTH_TABLES[gates.PASS_THROUGH_A], dtype=torch.float32) * 2 - 1
        return (z * sign).expand(*shape, width).clone()
    if init == "gaussian":
        return torch.randn(*shape, width, generator=generator)
    raise ValueError(f"init must be one of {INITS}, got {init!r}")


def check_parametrization(parametrization: str) -> str:
    if parametrization not in PARAMETRIZATIONS:
        raise ValueError(f"parametrization must be one of {PARAMETRIZATIONS}, got {parametrization!r}")
    return parametrization


def _check_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    return backend


def is_packed_bits(x) -> bool:
    """Whether ``x`` is a :class:`difflogic.upstream.PackBitsTensor` (batch-packed bits; it
    marks itself, so the layers need not import it)."""
    return bool(getattr(type(x), "packed_bits", False))


def _refuse_packed_in_training(module: nn.Module) -> None:
    if module.training:
        raise TypeError(f"{type(module).__name__}: a PackBitsTensor runs the hard network only; "
                           "call model.eval() first")


class GateLayer(nn.Module):
    """Shared logic of the learnable layers: logits -> (relaxed | hard) coefficients."""

    weight: nn.Parameter
    #: Train-mode gate selection: False = the relaxed mixture; True = the argmax gate forward
    #: with the mixture's gradient (straight-through), see :func:`set_straight_through`.
    straight_through: bool = False
    #: Train-mode Gumbel noise scale added to the logits each forward (0 = none), see
    #: :func:`set_gumbel_noise`.
    gumbel: float = 0.0
    #: Part of the architecture (a model config's ``"straight_through": true`` on the layer):
    #: this layer always trains straight-through, whatever the run-phase switch above says;
    #: meant for the first gate layer, whose relaxed mixtures of thresholded input bits carry
    #: "analog" values the hard network cannot reproduce.
    always_straight_through: bool = False
    #: Part of the architecture too (``"straight_through": F``, F a fraction in [0, 1]): the
    #: training loop switches this layer alone to straight-through from that fraction of the
    #: run on, the other layers staying relaxed.
    ste_from: float | None = None
    #: ``softmax`` (16 logits per neuron) or ``input_wise`` (4), see :data:`PARAMETRIZATIONS`.
    parametrization: str = "softmax"

    def coefficients(self) -> torch.Tensor:
        w = self.weight
        st = self.straight_through or self.always_straight_through
        if self.parametrization == "input_wise":
            return input_wise_coefficients(w, hard=not self.training, straight_through=st,
                                           product=_ops.coeff_product_for(w))
        if self.training and self.gumbel:
            w = w + gumbel_noise(w.detach(), self.gumbel)
        return gate_coefficients(w, hard=not self.training, straight_through=st,
                                 product=_ops.coeff_product_for(w))

    def ops(self) -> torch.Tensor:
        """The hard gate id of every neuron, uint8: the argmax gate, or input-wise the gate
        whose truth table is every relaxed entry rounded.  Hardening reads this."""
        if self.parametrization == "input_wise":
            return input_wise_ops(self.weight.detach()).to(torch.uint8)
        return self.weight.argmax(-1).to(torch.uint8)

    def _init_weight(self, shape, init, residual_logit, parametrization, device, dtype):
        self.parametrization = check_parametrization(parametrization)
        self.weight = nn.Parameter(init_logits(shape, init, residual_logit,
                                               parametrization=parametrization)
                                   .to(device=device, dtype=dtype or torch.get_default_dtype()))

    def _binary_path(self, x: torch.Tensor) -> bool:
        if x.dtype in _checks.BINARY_DTYPES:
            if self.training:
                raise TypeError(f"{type(self).__name__}: uint8/bool inputs are only accepted in "
                                "eval() mode; call .eval() or feed float activations")
            return True
        return False


def set_straight_through(model: nn.Module, enabled: bool) -> None:
    """Switch every gate layer in ``model`` between relaxed and straight-through training.

    Straight-through: each neuron's forward pass computes its current argmax gate (on the
    real-valued activations) while gradients flow as through the softmax mixture.  The
    training loop turns it on for the last part of a run (``ste_from``) so that the network
    the loss optimises is the one that will be hardened; eval() mode is unaffected."""
    for m in model.modules():
        if isinstance(m, GateLayer):
            m.straight_through = bool(enabled)


def set_gumbel_noise(model: nn.Module, scale: float) -> None:
    """Add ``scale`` x Gumbel(0, 1) noise to every gate layer's logits in train-mode forwards
    (fresh noise each forward, one sample per gate shared by the whole batch; 0 = off).

    Together with :func:`set_straight_through` this is the Gumbel logic gate network
    training of Yousefi et al. 2025: each forward runs a gate *sampled* from the softmax, so
    the relaxed/hard gap closes while training; alone it is Gumbel-softmax.  eval() mode
    (the hard network) is unaffected."""
    scale = _checks.finite_number("gumbel noise scale", scale)
    if scale < 0:
        raise ValueError(f"gumbel noise scale must be >= 0, got {scale}")
    for m in model.modules():
        if isinstance(m, GateLayer):
            if scale and m.parametrization != "softmax":
                raise ValueError(f"Gumbel noise samples one of the 16 gates of a softmax-"
                                 f"parametrized layer; {type(m).__name__} is {m.parametrization}: "
                                 "drop --gumbel or use the softmax parametrization")
            m.gumbel = scale


class LogicDense(GateLayer):
    """A layer of ``out_features`` randomly wired 2-input gates over ``in_features`` inputs.

    Wiring: every input is used about equally often (a shuffled cover of the inputs, as
    upstream's ``random``), and a gate never reads the same input twice.
    """

    def __init__(self, in_features: int, out_features: int, *, init: str = "residual",
                 residual_logit: float = 5.0, parametrization: str = "softmax",
                 backend: str = "auto", device=None, dtype=None):
        super().__init__()
        self.in_features = _checks.positive_int("in_features", in_features, 2)
        self.out_features = _checks.positive_int("out_features", out_features)
        self.backend = _check_backend(backend)
        a, b = random_pairs(in_features, out_features)
        self.register_buffer("wire_a", a.to(device))
        self.register_buffer("wire_b", b.to(device))
        self._init_weight((out_features,), init, residual_logit, parametrization, device, dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _checks.check_input(x, type(self).__name__, rank=2, size=((1, self.in_features),))
        if self._binary_path(x):
            return _ops.dense_hard(x.to(torch.uint8), self.wire_a, self.wire_b, self.ops())
        coeffs = self.coefficients().to(x.dtype)
        return _ops.dense(x, self.wire_a, self.wire_b, coeffs, backend=self.backend)

    def output_shape(self, input_shape):
        return (self.out_features,)

    def gate_count(self, input_shape=None) -> int:
        return self.out_features

    def extra_repr(self) -> str:
        s = f"in_features={self.in_features}, out_features={self.out_features}"
        return s + (f", parametrization={self.parametrization}" if self.parametrization != "softmax" else "")


def random_pairs(n_in: int, n_out: int, generator=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Random (a, b) input indices for n_out gates with a != b and near-uniform input use."""
    if n_in < 2:
        raise ValueError(f"a 2-input gate layer needs at least 2 inputs, got {n_in}")
    slots = torch.arange(2 * n_out) % n_in
    slots = slots[torch.randperm(2 * n_out, generator=generator)]
    a, b = slots[:n_out].clone(), slots[n_out:].clone()
    same = a == b
    while bool(same.any()):  # resample the second input of colliding pairs
        b[same] = torch.randint(0, n_in, (int(same.sum()),), generator=generator)
        same = a == b
    return a.long(), b.long()


class LogicLayer(LogicDense):
    """Upstream-compatible layer: ``LogicLayer(in_dim, out_dim, device='cuda', grad_factor=1.0,
    implementation=None, connections='random')`` as in difflogic 0.1 (NeurIPS 2022).

    Defaults follow upstream (Gaussian init).  ``device='cuda'`` on a machine without a GPU
    falls back to the CPU with a warning so old scripts still run.  ``implementation``
    ``'python'`` runs the PyTorch reference, ``'cuda'`` / None the native kernels (CPU or CUDA).
    ``connections='unique'``: no two gates read the same pair of inputs (any ``out_dim`` up to
    ``in_dim * (in_dim - 1) / 2``).  ``grad_factor`` scales the gradient into the layer's input.
    In eval mode a :class:`~difflogic.upstream.PackBitsTensor` input gives one back.
    Upstream's attribute names ``weights``, ``indices``, ``in_dim``, ``out_dim`` are kept.
    """

    def __init__(self, in_dim: int, out_dim: int, device="cuda", grad_factor: float = 1.0,
                 implementation=None, connections: str = "random", *, init: str = "gaussian",
                 residual_logit: float = 5.0):
        if connections not in ("random", "unique"):
            raise ValueError(f"connections must be 'random' or 'unique', got {connections!r}")
        if implementation not in (None, "cuda", "python"):
            raise ValueError(f"implementation must be None, 'cuda' or 'python', got {implementation!r}")
        device = torch.device(device)
        if device.type == "cuda" and not torch.cuda.is_available():
            import warnings
            warnings.warn("LogicLayer(device='cuda'): no CUDA device available, using the CPU",
                          stacklevel=2)
            device = torch.device("cpu")
        super().__init__(in_dim, out_dim, init=init, residual_logit=residual_logit,
                         backend="torch" if implementation == "python" else "auto", device=device)
        self.grad_factor = _checks.finite_number("grad_factor", grad_factor)
        self.implementation, self.connections = implementation, connections
        self.in_dim, self.out_dim = self.in_features, self.out_features
        if connections == "unique":
            a, b = unique_pairs(in_dim, out_dim)
            self.wire_a.copy_(a)
            self.wire_b.copy_(b)

    @property
    def weights(self) -> nn.Parameter:
        """Upstream's name of the (out_dim, 16) gate logits."""
        return self.weight

    @property
    def indices(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Upstream's name of the wiring: the (a, b) input indices of every gate."""
        return self.wire_a, self.wire_b

    def forward(self, x):
        if is_packed_bits(x):
            _refuse_packed_in_training(self)
            return x.gates(self.wire_a, self.wire_b, self.ops())
        if self.grad_factor != 1.0 and torch.is_grad_enabled() and x.requires_grad:
            x = _GradFactor.apply(x, self.grad_factor)
        return super().forward(x)


def unique_pairs(n_in: int, n_out: int, generator=None) -> tuple[torch.Tensor, torch.Tensor]:
    """(a, b) input indices of n_out gates, no two gates on the same unordered pair, every input
    used about equally: pairs ``(i, i + d mod n_in)`` for offsets d = 1, 2, ... (each offset
    uses every input twice; a random part of the last one), inputs relabelled at random."""
    capacity = n_in * (n_in - 1) // 2
    if n_out > capacity:
        raise ValueError(f"connections='unique': {n_in} inputs give only {capacity} distinct pairs, "
                         f"fewer than out_dim={n_out}; use connections='random' or more inputs")
    parts, got, d = [], 0, 1
    while got < n_out:
        i = torch.arange(n_in // 2 if 2 * d == n_in else n_in)
        take = min(len(i), n_out - got)
        if take < len(i):
            i = i[torch.randperm(len(i), generator=generator)[:take]]
        parts.append(torch.stack([i, (i + d) % n_in]))
        got, d = got + take, d + 1
    pairs = torch.randperm(n_in, generator=generator)[torch.cat(parts, 1)]
    pairs = pairs[:, torch.randperm(n_out, generator=generator)]
    swap = torch.rand(n_out, generator=generator) < 0.5   # neither input is always "a"
    a = torch.where(swap, pairs[1], pairs[0])
    b = torch.where(swap, pairs[0], pairs[1])
    return a.long(), b.long()


class _GradFactor(torch.autograd.Function):
    """Identity forward, gradient scaled by a factor (upstream's vanishing-gradient remedy)."""

    @staticmethod
    def forward(ctx, x, factor):
        ctx.factor = factor
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):
        return g * ctx.factor, None


class LogicConv2d(GateLayer):
    """Logic-gate tree convolution (Petersen et al. 2024, Sec. 3).

    Each output channel is one binary tree of ``2**depth - 1`` learnable gates over
    ``2**depth`` leaves; the tree (gates and leaf positions) is shared across all spatial
    positions.  The leaves are drawn at random inside the ``kernel_size`` receptive field
    from ``channels_per_tree`` input channels of the tree's channel group (``groups`` splits
    channels like a grouped convolution).  The two leaves of a first-level gate never coincide.

    ``or_pool`` > 1 fuses a logical-OR pooling of that size (stride = size) after the tree,
    the LogicTreeNet block: the fused kernel stores only the pooled value and its argmax.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, depth: int = 3,
                 stride: int = 1, padding: int = 0, channels_per_tree: int = 2, groups: int = 1,
                 or_pool: int = 1, *, init: str = "residual", residual_logit: float = 5.0,
                 parametrization: str = "softmax", backend: str = "auto", device=None, dtype=None):
        super().__init__()
        self.in_channels = _checks.positive_int("in_channels", in_channels)
        self.out_channels = _checks.positive_int("out_channels", out_channels)
        self.kernel_size = _checks.pair("kernel_size", kernel_size)
        self.depth = _checks.positive_int("depth", depth)
        if depth > 5:
            raise ValueError(f"depth must be between 1 and 5 (fused kernels), got {depth}")
        self.stride = _checks.positive_int("stride", stride)
        self.padding = _checks.positive_int("padding", padding, 0)
        self.channels_per_tree = _checks.positive_int("channels_per_tree", channels_per_tree)
        self.groups = _checks.positive_int("groups", groups)
        self.or_pool = _checks.positive_int("or_pool", or_pool)
        self.backend = _check_backend(backend)
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"groups={groups} must divide in_channels={in_channels} and "
                             f"out_channels={out_channels}")
        kh, kw = self.kernel_size
        if kh * kw * min(in_channels // groups, channels_per_tree) < 2:
            raise ValueError("a 1x1 kernel over a single channel gives a tree only one distinct "
                             "leaf; use kernel_size > 1 or channels_per_tree >= 2 with more channels")
        c, dy, dx = random_tree_leaves(in_channels, out_channels, self.kernel_size, depth,
                                       channels_per_tree, groups)
        self.register_buffer("leaf_c", c.to(device))
        self.register_buffer("leaf_dy", dy.to(device))
        self.register_buffer("leaf_dx", dx.to(device))
        self._init_weight((out_channels, 2 ** depth - 1), init, residual_logit, parametrization,
                          device, dtype)

    def conv_shape(self, input_shape) -> tuple[int, int, int]:
        """(K, Ho, Wo) before pooling, with a clear error when the kernel does not fit."""
        _, H, W = input_shape
        kh, kw = self.kernel_size
        Ho = conv_output_size(H, kh, self.stride, self.padding)
        Wo = conv_output_size(W, kw, self.stride, self.padding)
        if Ho < self.or_pool or Wo < self.or_pool:
            raise ValueError(f"{type(self).__name__}: kernel_size={self.kernel_size} with "
                             f"padding={self.padding}, stride={self.stride}, or_pool={self.or_pool} "
                             f"does not fit a {H}x{W} input; increase padding or shrink the kernel")
        return self.out_channels, Ho, Wo

    def output_shape(self, input_shape):
        K, Ho, Wo = self.conv_shape(input_shape)
        return (K, Ho // self.or_pool, Wo // self.or_pool)

    def gate_count(self, input_shape) -> int:
        """Tree gates at every position plus the OR gates of the fused pool (paper counting)."""
        K, Ho, Wo = self.conv_shape(input_shape)
        trees = K * Ho * Wo * (2 ** self.depth - 1)
        p = self.or_pool
        return trees + (p * p - 1) * K * (Ho // p) * (Wo // p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _checks.check_input(x, type(self).__name__, rank=4, size=((1, self.in_channels),))
        self.conv_shape(x.shape[1:])
        args = (self.leaf_c, self.leaf_dy, self.leaf_dx)
        geom = (self.kernel_size, self.stride, self.padding, self.or_pool)
        if self._binary_path(x):
            return _ops.tree_conv_pool_hard(x.to(torch.uint8), *args, self.ops(), *geom)
        coeffs = self.coefficients().to(x.dtype)
        return _ops.tree_conv_pool(x, *args, coeffs, *geom, backend=self.backend)

    def extra_repr(self) -> str:
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"depth={self.depth}, stride={self.stride}, padding={self.padding}, "
             f"channels_per_tree={self.channels_per_tree}, groups={self.groups}")
        s += f", or_pool={self.or_pool}" if self.or_pool > 1 else ""
        return s + (f", parametrization={self.parametrization}" if self.parametrization != "softmax" else "")


def random_tree_leaves(in_channels, out_channels, kernel_size, depth, channels_per_tree, groups,
                       generator=None):
    """Leaf (channel, dy, dx) tensors of shape (K, 2**depth) for K random trees."""
    L = 2 ** depth
    kh, kw = kernel_size
    cin_g = in_channels // groups
    group = torch.arange(out_channels) * groups // out_channels          # (K,)
    n_ch = min(channels_per_tree, cin_g)
    # each tree's channel subset: the first n_ch of a random permutation of its group
    perm = torch.rand(out_channels, cin_g, generator=generator).argsort(-1)[:, :n_ch]
    choice = torch.randint(0, n_ch, (out_channels, L), generator=generator)
    c = group[:, None] * cin_g + perm.gather(1, choice)
    dy = torch.randint(0, kh, (out_channels, L), generator=generator)
    dx = torch.randint(0, kw, (out_channels, L), generator=generator)
    # a first-level gate must not read the same leaf twice: resample the right leaf
    while True:
        same = (c[:, 0::2] == c[:, 1::2]) & (dy[:, 0::2] == dy[:, 1::2]) & (dx[:, 0::2] == dx[:, 1::2])
        if not bool(same.any()):
            break
        k, g = same.nonzero(as_tuple=True)
        n = k.numel()
        c[k, 2 * g + 1] = group[k] * cin_g + perm[k, torch.randint(0, n_ch, (n,), generator=generator)]
        dy[k, 2 * g + 1] = torch.randint(0, kh, (n,), generator=generator)
        dx[k, 2 * g + 1] = torch.randint(0, kw, (n,), generator=generator)
    return c.long(), dy.long(), dx.long()


class OrPool2d(nn.Module):
    """Logical OR pooling (stride = kernel size): max in training (the max t-conorm, as in the
    paper), logical OR when hard, which max computes exactly on {0, 1} inputs."""

    def __init__(self, kernel_size: int = 2):
        super().__init__()
        self.kernel_size = _checks.positive_int("kernel_size", kernel_size)

    def forward(self, x):
        _checks.check_input(x, type(self).__name__, rank=4)
        p = self.kernel_size
        if x.shape[2] < p or x.shape[3] < p:
            raise ValueError(f"OrPool2d: kernel_size={p} is larger than the {x.shape[2]}x{x.shape[3]} input")
        if x.dtype in _checks.BINARY_DTYPES:
            x = x.to(torch.uint8)
            N, C, H, W = x.shape
            return x[:, :, :H // p * p, :W // p * p].reshape(N, C, H // p, p, W // p, p).amax((3, 5))
        return torch.nn.functional.max_pool2d(x, p, p)

    def output_shape(self, input_shape):
        C, H, W = input_shape
        return (C, H // self.kernel_size, W // self.kernel_size)

    def gate_count(self, input_shape) -> int:
        C, H, W = self.output_shape(input_shape)
        return (self.kernel_size ** 2 - 1) * C * H * W

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}"


class GroupSum(nn.Module):
    """Class scores: the outputs split into ``k`` consecutive groups, each summed, divided by tau.

    Signature compatible with upstream ``GroupSum(k, tau=1., device='cuda')`` (device ignored).
    Accepts (N, F) or (N, C, H, W) (flattened in C, H, W order); given a
    :class:`~difflogic.upstream.PackBitsTensor` in eval mode it returns the int32 counts (no tau),
    as upstream does.
    """

    def __init__(self, k: int, tau: float = 1.0, device=None):
        super().__init__()
        self.k = _checks.positive_int("k", k)
        self.tau = _checks.finite_number("tau", tau)
        if self.tau <= 0:
            raise ValueError(f"tau must be > 0, got {tau}")

    def forward(self, x):
        if is_packed_bits(x):   # upstream: integer counts of a PackBitsTensor, no tau
            _refuse_packed_in_training(self)
            return x.group_sum(self.k)
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"GroupSum: expected a torch.Tensor input, got {type(x).__name__}")
        x = x.flatten(1) if x.dim() > 2 else x
        if x.dim() != 2 or x.shape[1] % self.k:
            raise ValueError(f"GroupSum: input features ({tuple(x.shape)}) must be a 2-D tensor "
                             f"whose size is divisible by k={self.k}")
        if x.dtype in _checks.BINARY_DTYPES:  # exact integer counts, then the temperature
            return group_sum(x.to(torch.int32), self.k, self.tau)
        if x.dtype in _checks.FLOAT_DTYPES:
            _checks.check_finite(x, "GroupSum")
            return _ops.group_sum(x, self.k, self.tau)
        return group_sum(x, self.k, self.tau)

    def output_shape(self, input_shape):
        return (self.k,)

    def gate_count(self, input_shape=None) -> int:
        return 0

    def extra_repr(self):
        return f"k={self.k}, tau={self.tau}"


def quantile_thresholds(images, num_thresholds: int, indices=None) -> list[list[float]]:
    """Per-channel thresholds at the (i+1)/(T+1) quantiles of uint8 ``images`` (N, C, ...), or
    of ``images[indices]`` (read one channel at a time: no copy of the whole set).  A float
    table (N, F) gets per-feature thresholds instead (:func:`feature_thresholds`).

    Why: uniform thresholds spend bit-planes on grey levels few pixels have; at the quantiles
    each of the T+1 intervals holds about the same share of the pixels ("distributive"
    thresholds; on CIFAR-10 they sit closer together in the mid-greys).  Each threshold is
    put half-way between two grey levels, (k + 0.5) / 255, so that ``x > t`` on the encoder's
    x = pixel / 255 never depends on float rounding; where quantiles share a grey level (e.g.
    the many black pixels of MNIST) the later thresholds move up to the next free levels, so
    the T thresholds are always distinct and increasing."""
    T = _checks.positive_int("num_thresholds", num_thresholds)
    x = images.numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if x.dtype.kind == "f" and x.ndim == 2:
        return feature_thresholds(x, T, indices)
    idx = None if indices is None else np.asarray(indices, dtype=np.int64)
    if x.dtype != np.uint8 or x.ndim < 2 or x.shape[0] == 0 or (idx is not None and not len(idx)):
        raise TypeError(f"quantile thresholds need uint8 images (N, C, ...) with N >= 1 (the "
                        f"dataset as loaded), got {x.dtype} of shape {tuple(x.shape)}")
    if T > 255:
        raise ValueError(f"uint8 images have 256 grey levels, so at most 255 distinct thresholds, "
                         f"got num_thresholds={T}")
    rows = []
    for c in range(x.shape[1]):
        plane = x[:, c] if idx is None else x[idx, c]
        cdf = np.bincount(plane.reshape(-1), minlength=256).cumsum() / plane.size
        levels, prev = [], -1
        for i in range(T):  # the smallest grey level k with P(pixel <= k) >= (i+1)/(T+1)
            k = int(np.searchsorted(cdf, (i + 1) / (T + 1)))
            levels.append(max(min(k, 254), prev + 1))
            prev = levels[-1]
        for i in range(T - 1, -1, -1):  # past the top level: move down so all fit below 255
            levels[i] = min(levels[i], 254 - (T - 1 - i))
        rows.append([(k + 0.5) / 255 for k in levels])
    return rows


def feature_thresholds(table, num_thresholds: int, indices=None,
                       block_bytes: int = 1 << 28) -> list[list[float]]:
    """Per-feature thresholds of a float table (N, F) -- the rows at ``indices`` if given,
    read a block of columns at a time (the table may be memory-mapped) -- at the
    (i+1)/(T+1) quantiles of each feature.

    Each threshold lies half-way between the quantile's value and the next larger value the
    feature takes (in float32, never equal to the larger one), so ``x > t`` splits the
    training values exactly there and no bit is constant on them: at the top value the
    threshold falls in the last gap.  A feature with fewer distinct values than T+1 (a
    one-hot column, a small count) repeats thresholds; a constant feature gets its value
    (a bit that is always 0)."""
    T = _checks.positive_int("num_thresholds", num_thresholds)
    x = table.numpy() if isinstance(table, torch.Tensor) else table
    idx = None if indices is None else np.asarray(indices, dtype=np.int64)
    if x.dtype.kind != "f" or x.ndim != 2 or x.shape[0] == 0 or (idx is not None and not len(idx)):
        raise TypeError(f"feature thresholds need a float table (N, F) with N >= 1, got "
                        f"{x.dtype} of shape {tuple(x.shape)}")
    n = x.shape[0] if idx is None else len(idx)
    step = max(1, block_bytes // (4 * n))
    rows = []
    for f0 in range(0, x.shape[1], step):
        block = np.asarray(x[:, f0:f0 + step] if idx is None else x[:, f0:f0 + step][idx],
                           dtype=np.float32)
        rows += [_feature_cuts(np.sort(block[:, j]), T) for j in range(block.shape[1])]
    return rows


def _feature_cuts(v: np.ndarray, T: int) -> list[float]:
    """T thresholds of one feature's sorted values ``v`` (see :func:`feature_thresholds`)."""
    if not np.isfinite(v).all():
        raise ValueError("feature thresholds: the table holds NaN or inf; inputs must be finite")
    u = np.unique(v)
    if len(u) == 1:
        return [float(u[0])] * T
    out = []
    for i in range(T):
        k = max(0, math.ceil((i + 1) / (T + 1) * len(v)) - 1)   # the (i+1)/(T+1) quantile
        j = min(int(np.searchsorted(u, v[k], side="right")), len(u) - 1)
        lo, hi = u[j - 1], u[j]
        t = np.float32((np.float64(lo) + np.float64(hi)) / 2)
        out.append(float(lo if t >= hi else t))
    return out


class Thresholds(nn.Module):
    """Fixed thermometer input encoding: each channel compared with T thresholds.

    (N, C, ...) in [0, 1] -> (N, C*T, ...) with output channel ``c*T + t`` = ``x[:, c] > thr[c, t]``.
    ``thresholds``: a sequence of T floats (shared) or a (C, T) nested sequence / tensor.
    In training the output is float 0/1; in eval it is uint8 so the whole network downstream
    runs the integer hard kernels.  Not learnable.  ``unit_range=False`` is for a table's raw
    features (N, F): each feature's thresholds are then any finite values, in its own units.
    """

    def __init__(self, thresholds, channels: int | None = None, *, unit_range: bool = True):
        super().__init__()
        if channels is not None:
            _checks.positive_int("channels", channels)
        try:
            t = torch.as_tensor(thresholds, dtype=torch.float32)
        except (TypeError, ValueError, RuntimeError) as e:
            raise TypeError(f"thresholds must be a list of numbers in [0, 1) or a (channels, T) "
                            f"array of them, got {thresholds!r} ({e})") from None
        if t.dim() == 1:
            t = t[None].expand(channels or 1, -1).clone()
        if t.dim() != 2 or t.numel() == 0:
            raise ValueError(f"thresholds must be a non-empty list or a (channels, T) array, got shape {tuple(t.shape)}")
        if channels is not None and t.shape[0] != channels:
            raise ValueError(f"thresholds have {t.shape[0]} rows but channels={channels}")
        finite = bool(torch.isfinite(t).all())
        if not finite or unit_range and (bool((t < 0).any()) or bool((t >= 1).any())):
            raise ValueError(f"thresholds must be finite{' and in [0, 1) (inputs are scaled to [0, 1])' if unit_range else ''}, got {t.tolist()}")
        self.unit_range = bool(unit_range)
        self.register_buffer("thresholds", t)

    @classmethod
    def uniform(cls, num_thresholds: int, channels: int = 1) -> "Thresholds":
        """T evenly spaced thresholds (i+1)/(T+1): 3 gives 0.25/0.5/0.75 (paper's CIFAR S/M)."""
        T = _checks.positive_int("num_thresholds", num_thresholds)
        return cls([(i + 1) / (T + 1) for i in range(T)], channels)

    @classmethod
    def quantile(cls, images, num_thresholds: int) -> "Thresholds":
        """T thresholds per channel at the (i+1)/(T+1) quantiles of the pixel values of uint8
        ``images`` (N, C, ...): see :func:`quantile_thresholds`."""
        return cls(quantile_thresholds(images, num_thresholds))  # (C, T): channels from images

    @property
    def channels(self) -> int:
        return self.thresholds.shape[0]

    @property
    def num_thresholds(self) -> int:
        return self.thresholds.shape[1]

    def forward(self, x):
        if isinstance(x, torch.Tensor) and x.dtype == torch.uint8:
            raise TypeError("Thresholds: expected a floating-point input in [0, 1], got torch.uint8; "
                            "convert images with x.float() / 255")
        rank = x.dim() if isinstance(x, torch.Tensor) and x.dim() >= 2 else 2
        _checks.check_input(x, "Thresholds", rank=rank, size=((1, self.channels),), allow_binary=False)
        t = self.thresholds.to(x.device, x.dtype).reshape(1, self.channels, self.num_thresholds,
                                                            *([1] * (x.dim() - 2)))
        x = x.unsqueeze(2)
        # The comparison written straight into the output, the same 0/1 values as x > t
        # followed by a conversion, faster (15 thresholds, 3 channels, 2 threads): training
        # writes floats, 0.28 vs 1.64 ms for 32 CIFAR-10 images (~3% of a step); eval writes
        # bools and reinterprets them as uint8 (same bytes, no copy), 30 vs 48 ms for 1,000
        # images (a direct uint8 output takes 100).
        out = torch.empty(torch.broadcast_shapes(x.shape, t.shape), device=x.device,
                          dtype=x.dtype if self.training else torch.bool)
        torch.gt(x.detach(), t, out=out)
        out = out.flatten(1, 2)
        return out if self.training else out.view(torch.uint8)

    def output_shape(self, input_shape):
        return (input_shape[0] * self.num_thresholds, *input_shape[1:])

    def gate_count(self, input_shape=None) -> int:
        return 0

    def extra_repr(self):
        return f"channels={self.channels}, num_thresholds={self.num_thresholds}"


class Flatten(nn.Flatten):
    """``nn.Flatten`` with shape bookkeeping for gate counting and the compiler."""

    def output_shape(self, input_shape):
        return (math.prod(input_shape),)

    def gate_count(self, input_shape=None) -> int:
        return 0
