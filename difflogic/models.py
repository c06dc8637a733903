"""Whole networks described by a plain config dict, so a checkpoint can rebuild them exactly.

A config is JSON-able::

    {"name": ..., "input_shape": [C, H, W], "num_classes": 10, "init": "residual",
     "layers": [{"type": "thresholds", ...}, {"type": "conv", ...}, {"type": "flatten"},
                {"type": "dense", ...}, {"type": "group_sum", "tau": ...}],
     "train": {"lr": ..., "weight_decay": ..., "batch_size": ...}}

``"parametrization": "input_wise"`` (top level or per gate layer; default ``"softmax"``) learns
4 truth-table entries per neuron instead of 16 gate logits (:mod:`difflogic.functional`).
``"input"`` (set by the trainer for own data, :func:`difflogic.data.open_dataset`) records how
raw input becomes the network's input -- image shape and mode, or a CSV table's columns,
categorical levels and classes -- so ``eval`` and the exports take the same raw input.  A
flat ``input_shape`` [F] is a table of raw float features: its thresholds are in their units.

Input sizes of each layer (``in_channels`` / ``in_features``) are inferred from the shapes,
so the layer list reads like the paper's architecture tables.  :func:`get_model` builds the
named LogicTreeNet sizes of Petersen et al. 2024 (CIFAR-10 S/M/B/L/G, MNIST S/M/L) and small
presets that train in minutes on a CPU.
"""
from __future__ import annotations

import copy
import json
import warnings

import torch
from torch import nn

from . import _checks, configs
from .layers import (Flatten, GroupSum, LogicConv2d, LogicDense, OrPool2d, Thresholds,
                     is_packed_bits, quantile_thresholds)


class LogicNet(nn.Sequential):
    """A feed-forward logic gate network built from a config (see module docstring)."""

    def __init__(self, config: dict):
        config = copy.deepcopy(config)
        try:
            shape = tuple(int(s) for s in config["input_shape"])
            specs = config["layers"]
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"model config needs 'input_shape' (list of ints) and 'layers': {e}") from None
        modules, self_shapes = [], [shape]
        init = config.get("init", "residual")
        param = config.get("parametrization", "softmax")
        for i, spec in enumerate(specs):
            try:
                m = _build_layer(spec, shape, init, param)
            except (TypeError, KeyError) as e:
                raise ValueError(f"model config: layer {i} ({spec}) is invalid: {e}") from None
            shape = tuple(m.output_shape(shape))
            modules.append(m)
            self_shapes.append(shape)
        super().__init__(*modules)
        self.config = config
        self.shapes = self_shapes  # input shape of layer i is shapes[i]; shapes[-1] the output
        _warn_grouped_class_scores(modules)

    @property
    def input_shape(self):
        return self.shapes[0]

    @property
    def num_classes(self) -> int:
        return int(self.shapes[-1][0])

    def forward(self, x):
        if is_packed_bits(x):   # upstream's PackBitsTensor: the int32 class counts
            if self.training:
                raise TypeError("LogicNet: a PackBitsTensor runs the hard network only; call "
                                   "model.eval() first")
            return x.run_model(self)
        if isinstance(x, torch.Tensor) and x.dim() == len(self.input_shape) + 1 \
                and tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(f"{self.config.get('name', 'LogicNet')}: expected input of shape "
                             f"(N, {', '.join(map(str, self.input_shape))}), got {tuple(x.shape)}")
        return super().forward(x)

    def gate_counts(self) -> list[tuple[str, int]]:
        """(layer description, training gates) per layer, counted as in the paper (sec. 7.3 of
        the reference notes): every tree gate at every position, 3 OR gates per 2x2 pool output,
        one gate per dense neuron; encoders and GroupSum count 0."""
        return [(f"{i}: {type(m).__name__}", m.gate_count(s)) for i, (m, s) in enumerate(zip(self, self.shapes))]

    def gate_count(self) -> int:
        return sum(n for _, n in self.gate_counts())


def _warn_grouped_class_scores(modules) -> None:
    """Warn when a grouped conv layer feeds GroupSum directly (through flatten only).

    GroupSum gives class c a contiguous block of outputs and a grouped conv layer a contiguous
    block of channels to each group, so each class score would then read only one or two of
    the channel groups -- a legal network, but almost never the one meant: the paper's groups
    are recombined by the output accumulation.
    """
    for i, m in enumerate(modules):
        if not isinstance(m, GroupSum):
            continue
        j = i - 1
        while j >= 0 and isinstance(modules[j], Flatten):
            j -= 1
        if j >= 0 and isinstance(modules[j], LogicConv2d) and modules[j].groups > 1:
            warnings.warn(f"model config: layer {j} (conv, groups={modules[j].groups}) feeds "
                          f"group_sum (layer {i}) directly, so each class score reads only some "
                          "of its channel groups; give that layer \"groups\": 1 or put a dense "
                          "layer in between", stacklevel=3)


def _build_layer(spec: dict, shape, init: str, parametrization: str = "softmax") -> nn.Module:
    spec = dict(spec)
    kind = spec.pop("type")
    if "straight_through" in spec:  # gate layers: true = always, F = from that part of the run
        ste = spec.pop("straight_through")
        fraction = _checks.is_fraction(ste)
        if kind not in ("conv", "dense") or not (isinstance(ste, bool) or fraction):
            raise ValueError(f"'straight_through' must be true, false or a fraction of the training "
                             f"run in [0, 1] on a conv or dense layer, got {ste!r} on a {kind!r} layer")
        layer = _build_layer({"type": kind, **spec}, shape, init, parametrization)
        if fraction:
            layer.ste_from = float(ste)
        else:
            layer.always_straight_through = ste
        return layer
    if kind == "thresholds":
        spacing = spec.get("spacing", "uniform")
        if spacing not in THRESHOLD_SPACINGS:
            raise ValueError(f"thresholds layer: 'spacing' must be one of {THRESHOLD_SPACINGS}, "
                             f"got {spacing!r}")
        if "thresholds" in spec:   # a flat input is a table's raw features: any finite values
            layer = Thresholds(spec["thresholds"], channels=shape[0], unit_range=len(shape) != 1)
            if spec.get("num", layer.num_thresholds) != layer.num_thresholds:
                raise ValueError(f"thresholds layer: \"num\": {spec['num']!r} but "
                                 f"{layer.num_thresholds} values per channel are given")
            return layer
        if spacing == "quantile":
            raise ValueError("thresholds layer with \"spacing\": \"quantile\" has no values yet: "
                             "they are computed from training images, which `difflogic train` "
                             "does (the checkpoint keeps them); in Python, call "
                             "difflogic.models.resolve_quantile_thresholds(config, images) first")
        return Thresholds.uniform(spec["num"], channels=shape[0])
    if kind == "conv":
        if len(shape) != 3:
            raise ValueError(f"conv layer needs a (C, H, W) input, got shape {shape}")
        spec.setdefault("init", init)
        spec.setdefault("parametrization", parametrization)
        return LogicConv2d(shape[0], **spec)
    if kind == "or_pool":
        return OrPool2d(**spec)
    if kind == "flatten":
        return Flatten()
    if kind == "dense":
        if len(shape) != 1:
            raise ValueError(f"dense layer needs a flat input (add a 'flatten' layer), got shape {shape}")
        spec.setdefault("init", init)
        spec.setdefault("parametrization", parametrization)
        return LogicDense(shape[0], **spec)
    if kind == "group_sum":
        return GroupSum(spec["k"], spec["tau"])
    raise ValueError(f"unknown layer type {kind!r} (expected thresholds, conv, or_pool, flatten, "
                     "dense or group_sum)")


# --------------------------------------------------------------------------- LogicTreeNet
#: Table 6 of Petersen et al. 2024 (k = width, ox = output gate factor, tau, lr, weight decay,
#: batch size, input bits).  CIFAR G uses k = 2560 (Table 6; the main text says 2048) and
#: MNIST L uses k = 256 (Table 6 prints 1024, but the paper's gate count and outputs/class
#: only fit 256).  B/L/G feed 5-bit inputs, modelled here as 31 thermometer thresholds per
#: channel (the paper's fixed edge/curvature detectors are not specified).
LOGIC_TREE_NETS = {
    "cifar10-s": dict(k=32, ox=1, tau=20, lr=0.02, wd=0.002, bs=128, thresholds=3),
    "cifar10-m": dict(k=256, ox=1, tau=40, lr=0.02, wd=0.002, bs=128, thresholds=3),
    "cifar10-b": dict(k=512, ox=2, tau=280, lr=0.02, wd=0.002, bs=128, thresholds=31),
    "cifar10-l": dict(k=1024, ox=2, tau=340, lr=0.02, wd=0.002, bs=128, thresholds=31),
    "cifar10-g": dict(k=2560, ox=1, tau=450, lr=0.02, wd=0.001, bs=128, thresholds=31),
    "mnist-s": dict(k=16, ox=2, tau=6.5, lr=0.01, wd=0.0, bs=512, thresholds=1),
    "mnist-m": dict(k=64, ox=2, tau=28, lr=0.01, wd=0.0, bs=256, thresholds=1),
    "mnist-l": dict(k=256, ox=1, tau=35, lr=0.01, wd=0.0, bs=128, thresholds=1),
}


#: How a ``thresholds`` layer with ``num`` places its thresholds: ``uniform`` (i+1)/(T+1), or
#: ``quantile``: at the quantiles of the training images' pixels (:func:`resolve_quantile_thresholds`).
THRESHOLD_SPACINGS = ("uniform", "quantile")


def resolve_quantile_thresholds(config: dict, images, indices=None) -> dict:
    """A copy of ``config`` whose ``"spacing": "quantile"`` thresholds layers hold their values,
    computed from the uint8 training ``images`` (N, C, H, W) -- only those at ``indices`` if
    given (the training split) -- by :func:`difflogic.layers.quantile_thresholds`.  Other
    configs come back unchanged (as a copy).  The values go into the config itself, so a
    checkpoint's config rebuilds the same encoder without the data; layers that already hold
    values are left as they are."""
    config = copy.deepcopy(config)
    for spec in config.get("layers", []):
        if spec.get("type") == "thresholds" and spec.get("spacing") == "quantile" \
                and "thresholds" not in spec:
            if "num" not in spec:
                raise ValueError("a thresholds layer with \"spacing\": \"quantile\" needs \"num\" "
                                 "(thresholds per channel)")
            spec["thresholds"] = quantile_thresholds(images, spec["num"], indices)
    return config


def _conv(out, kernel, padding, groups):
    return {"type": "conv", "out_channels": out, "kernel_size": kernel, "depth": 3,
            "padding": padding, "channels_per_tree": 2, "groups": groups, "or_pool": 2}


def _head(width, ox, num_classes, tau):
    dense = [{"type": "dense", "out_features": m * width * ox} for m in (1280, 640, 320)]
    return [{"type": "flatten"}, *dense, {"type": "group_sum", "k": num_classes, "tau": tau}]


def logic_tree_net_config(name: str, num_classes: int = 10) -> dict:
    """Config of a LogicTreeNet size from the paper (``cifar10-s`` ... ``mnist-l``)."""
    p = LOGIC_TREE_NETS[name]
    k, g = p["k"], max(1, p["k"] // 8)  # channel groups: k/8 (paper Sec. 3.4), none on the input
    if p["thresholds"] > 1:
        enc = {"type": "thresholds", "num": p["thresholds"]}
    else:
        enc = {"type": "thresholds", "thresholds": [0.5]}
    if name.startswith("cifar10"):
        shape = [3, 32, 32]
        convs = [_conv(k, 3, 1, 1), _conv(4 * k, 3, 1, g), _conv(16 * k, 3, 1, g), _conv(32 * k, 3, 1, g)]
    else:
        shape = [1, 28, 28]
        convs = [_conv(k, 5, 0, 1), _conv(3 * k, 3, 1, g), _conv(9 * k, 3, 1, g)]
    return {"name": name, "input_shape": shape, "num_classes": num_classes, "init": "residual",
            "layers": [enc, *convs, *_head(k, p["ox"], num_classes, p["tau"])],
            "train": {"lr": p["lr"], "weight_decay": p["wd"], "batch_size": p["bs"]}}


# --------------------------------------------------------------------------- presets
#: Top-level keys of a model config (the module docstring says what each holds).
CONFIG_KEYS = ("name", "description", "input_shape", "num_classes", "init", "parametrization",
               "layers", "train", "input")
#: Keys of a model config's ``train`` entry: the model's tuned training defaults.
TRAIN_KEYS = ("lr", "weight_decay", "batch_size", "epochs", "steps", "schedule", "eval_every",
              "val_size", "ste_from", "gumbel", "label_smoothing")


def check_config_keys(config: dict, where: str = "model config") -> None:
    """Refuse unknown keys at the top of a model config and in its ``train`` entry, naming the
    key and the accepted ones (a typo would otherwise be ignored silently)."""
    if not isinstance(config, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(config).__name__}")
    for key in config:
        if key not in CONFIG_KEYS:
            raise ValueError(f"{where}: unknown key {key!r}; accepted: {', '.join(CONFIG_KEYS)}")
    train = config.get("train", {})
    if not isinstance(train, dict):
        raise ValueError(f"{where}: 'train' must be a mapping of training defaults, "
                         f"got {type(train).__name__}")
    for key in train:
        if key not in TRAIN_KEYS:
            raise ValueError(f"{where}: unknown key {key!r} in 'train'; accepted: "
                             f"{', '.join(TRAIN_KEYS)}")


#: Dense presets whose input width and class count come from the data (``tabular-s``, ...):
#: model configs without ``input_shape`` / ``num_classes`` / GroupSum ``k``, which the
#: trainer fills from the dataset (:func:`fit_to_data`).  Kept beside the recipes, not among
#: them: a recipe names its dataset, these fit any table (or small image set).
TABULAR_FOLDER = configs.FOLDER / "tabular"


def tabular_preset_names() -> list[str]:
    """The data-shaped dense presets in ``difflogic/configs/tabular/``."""
    return sorted(p.stem for p in TABULAR_FOLDER.glob("*.json"))


def fit_to_data(config: dict, input_shape, num_classes: int) -> dict:
    """A copy of ``config`` completed by the data: ``input_shape`` and ``num_classes`` where it
    leaves them out, GroupSum's ``k`` where absent (then the last dense layer's width is
    rounded up to a multiple of it, so each class gets as many outputs)."""
    config = copy.deepcopy(config)
    config.setdefault("input_shape", [int(s) for s in input_shape])
    config.setdefault("num_classes", int(num_classes))
    layers = config.get("layers", [])
    for i, spec in enumerate(layers):
        if spec.get("type") == "group_sum" and "k" not in spec:
            spec["k"] = k = int(config["num_classes"])
            dense = [s for s in layers[:i] if s.get("type") == "dense"]
            if dense:
                dense[-1]["out_features"] = -(-int(dense[-1]["out_features"]) // k) * k
    return config


def with_dense_widths(config: dict, widths) -> dict:
    """A copy of ``config`` whose dense layers are replaced by one per width ("2000,2000" or a
    list), each with the first dense layer's other settings."""
    try:
        ws = [int(w) for w in (widths.split(",") if isinstance(widths, str) else widths)]
    except (TypeError, ValueError):
        ws = []
    if not ws or min(ws) < 1:
        raise ValueError(f"--widths must be positive integers separated by commas (e.g. "
                         f"2000,2000), got {widths!r}")
    config = copy.deepcopy(config)
    layers = config.get("layers", [])
    at = [i for i, s in enumerate(layers) if s.get("type") == "dense"]
    if not at:
        raise ValueError(f"--widths: model {config.get('name')!r} has no dense layers to resize")
    base = {k: v for k, v in layers[at[0]].items() if k != "out_features"}
    new = [{**base, "out_features": w} for w in ws]
    config["layers"] = [s for i, s in enumerate(layers) if i not in at[1:]]
    config["layers"][at[0]:at[0] + 1] = new
    k = next((s.get("k") for s in config["layers"] if s.get("type") == "group_sum"), None)
    if k and ws[-1] % k:
        raise ValueError(f"--widths: the last width {ws[-1]} must be a multiple of the model's "
                         f"{k} classes (each class sums as many outputs)")
    return config


def preset_names() -> list[str]:
    """The recipes in ``difflogic/configs/`` whose model is a whole config (served as presets)."""
    return [n for n in configs.names() if isinstance(configs.read(n)[1].get("model"), dict)]


def model_names() -> list[str]:
    return sorted(LOGIC_TREE_NETS) + preset_names()


def get_model_config(name: str) -> dict:
    """A paper size's config, or a recipe's model with the recipe's training options that a
    model config may carry as its ``train`` defaults."""
    if name in LOGIC_TREE_NETS:
        return logic_tree_net_config(name)
    if name in preset_names():
        _, recipe = configs.read(name)
        config = copy.deepcopy(recipe["model"])
        train = {k: v for k, v in recipe.get("train", {}).items() if k in TRAIN_KEYS}
        return {**config, "train": train} if train else config
    if name in tabular_preset_names():
        return json.loads((TABULAR_FOLDER / f"{name}.json").read_text())
    raise ValueError(f"unknown model {name!r}; available: "
                     f"{', '.join(model_names() + tabular_preset_names())}")


def get_model(name: str, data=None, **overrides) -> LogicNet:
    """Build a named model; ``overrides`` replace top-level config keys (e.g. ``init``).  A
    tabular preset takes its size and its quantile thresholds from the training rows
    ``data`` (float32 (N, F), or uint8 images) and ``num_classes``:
    ``get_model("tabular-s", data=x_train, num_classes=2)``."""
    config = get_model_config(name)
    config.update(overrides)
    if data is not None:
        config.setdefault("input_shape", list(data.shape[1:]))
        config = resolve_quantile_thresholds(config, data)
    if name in tabular_preset_names():
        if "input_shape" not in config or "num_classes" not in config:
            raise ValueError(f"model {name!r} takes its size from the data: pass data (the "
                             "training rows) and num_classes (difflogic train fills them from "
                             "--dataset)")
        config = fit_to_data(config, config["input_shape"], config["num_classes"])
    return LogicNet(config)


def LogicTreeNet(size: str = "s", dataset: str = "cifar10") -> LogicNet:
    """``LogicTreeNet("s", "cifar10")`` = ``get_model("cifar10-s")``."""
    dataset = "mnist" if dataset in ("mnist", "fashion-mnist") else dataset
    return get_model(f"{dataset}-{size.lower()}")
