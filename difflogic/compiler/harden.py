"""Harden a trained network into the netlist IR, plus the PyTorch reference counts.

Hardening fixes every neuron to the argmax of its logits (the eval-mode gate, whatever mode
the model is in) and records the wiring, so the IR evaluates exactly what the PyTorch hard
forward evaluates.  Each layer maps to one IR op:

* ``Thresholds``   -> :class:`~difflogic.compiler.ir.Encoder` (must come first)
* ``LogicConv2d``  -> one conv :class:`GateBlock` holding all K trees (leaves deduplicated,
  gates in tree order) and, when ``or_pool > 1``, an :class:`OrPool` after it
* ``OrPool2d``     -> :class:`OrPool`
* ``Flatten``      -> nothing (dense blocks index the flattened C*H*W input)
* ``LogicDense`` / ``LogicLayer`` -> a dense :class:`GateBlock`
* ``GroupSum``     -> the head (must come last)
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ..layers import Flatten, GroupSum, LogicConv2d, LogicDense, OrPool2d, Thresholds
from . import ir

SUPPORTED = ("Thresholds (first)", "LogicConv2d", "OrPool2d", "Flatten / nn.Flatten",
             "LogicDense / LogicLayer", "GroupSum (last)", "nn.Identity")


def u8_cutoffs(thresholds: np.ndarray) -> np.ndarray:
    """Smallest pixel p in 0..255 with float32(p)/255 > threshold (256 if none), per threshold.

    torch computes ``x / 255`` in float32 and then ``x > t``; evaluating the same float32
    expression for all 256 pixel values makes the integer test ``pixel >= cutoff`` exact.
    """
    t = np.asarray(thresholds, dtype=np.float32)
    vals = np.arange(256, dtype=np.float32) / np.float32(255)          # float32 division
    above = vals[None, :] > t.reshape(-1)[:, None]                      # (n, 256)
    cut = np.where(above.any(1), above.argmax(1), 256)
    return cut.reshape(t.shape).astype(np.int32)


def _modules(model) -> list:
    if isinstance(model, nn.Sequential):
        return list(model)
    if isinstance(model, nn.Module) and hasattr(model, "layers") and isinstance(model.layers, nn.Sequential):
        return list(model.layers)
    raise TypeError(f"harden: expected a LogicNet or nn.Sequential of difflogic layers, got "
                    f"{type(model).__name__}")


def _infer_input_shape(mods) -> tuple:
    first = mods[0] if mods else None
    if isinstance(first, LogicDense):
        return (first.in_features,)
    if isinstance(first, Thresholds) and len(mods) > 1:
        nxt = next((m for m in mods[1:] if not isinstance(m, (Flatten, nn.Flatten, nn.Identity))), None)
        if isinstance(nxt, LogicDense) and nxt.in_features % first.num_thresholds == 0:
            return (nxt.in_features // first.num_thresholds,)
    if isinstance(first, LogicConv2d):
        raise ValueError("harden: cannot infer the image size of a model starting with LogicConv2d; "
                         "pass input_shape=(C, H, W)")
    raise ValueError("harden: cannot infer the model's input shape; pass input_shape=...")


def _dense_block(m: LogicDense, shape, name) -> ir.GateBlock:
    a = m.wire_a.detach().cpu().numpy().astype(np.int64)
    b = m.wire_b.detach().cpu().numpy().astype(np.int64)
    F = math.prod(shape)
    if m.in_features != F:
        raise ValueError(f"harden: {name} expects {m.in_features} inputs but receives shape {shape} "
                         f"({F} features)")
    leaves, inv = np.unique(np.concatenate([a, b]), return_inverse=True)
    n = len(a)
    op = m.ops().cpu().numpy()
    first = ir.FIRST_LEAF + len(leaves)
    blk = ir.GateBlock(kind="dense", in_shape=tuple(shape), leaves=leaves.astype(np.int64), op=op,
                       a=(inv[:n] + ir.FIRST_LEAF).astype(np.int64),
                       b=(inv[n:] + ir.FIRST_LEAF).astype(np.int64),
                       outputs=np.arange(first, first + n, dtype=np.int64), name=name)
    return blk


def _conv_block(m: LogicConv2d, shape, name) -> ir.GateBlock:
    if len(shape) != 3 or shape[0] != m.in_channels:
        raise ValueError(f"harden: {name} expects ({m.in_channels}, H, W) input, got shape {shape}")
    m.conv_shape(shape)  # clear error when the kernel does not fit
    K, L = m.leaf_c.shape
    lc = torch.stack([m.leaf_c, m.leaf_dy, m.leaf_dx], -1).detach().cpu().numpy().reshape(K * L, 3)
    leaves, inv = np.unique(lc.astype(np.int64), axis=0, return_inverse=True)
    inv = inv.reshape(K, L) + ir.FIRST_LEAF
    first = ir.FIRST_LEAF + len(leaves)
    G = L - 1
    ops = m.ops().cpu().numpy()  # (K, G)
    a = np.empty((K, G), np.int64)
    b = np.empty((K, G), np.int64)
    # gates of tree k are nodes first + k*G + g; level by level as in functional.tree_reduce
    prev = inv                                   # (K, width) node ids of the current level
    g = 0
    while prev.shape[1] > 1:
        w = prev.shape[1] // 2
        a[:, g:g + w] = prev[:, 0::2]
        b[:, g:g + w] = prev[:, 1::2]
        prev = first + np.arange(K)[:, None] * G + np.arange(g, g + w)[None, :]
        g += w
    return ir.GateBlock(kind="conv", in_shape=tuple(shape), leaves=leaves, op=ops.reshape(-1),
                        a=a.reshape(-1), b=b.reshape(-1), outputs=prev[:, 0].astype(np.int64),
                        kernel_size=tuple(m.kernel_size), stride=m.stride, padding=m.padding,
                        name=name)


def harden(model, input_shape=None) -> ir.Netlist:
    """Turn a LogicNet (or nn.Sequential of difflogic layers) into a :class:`ir.Netlist`.

    ``input_shape`` (without batch) is needed only when the model does not record it (a plain
    ``nn.Sequential`` starting with a conv layer).  Raises ValueError naming the first layer
    the compiler does not support.
    """
    mods = _modules(model)
    if input_shape is None:
        input_shape = getattr(model, "input_shape", None)
    shape = tuple(int(s) for s in (input_shape if input_shape is not None else _infer_input_shape(mods)))
    encoder, ops, head = None, [], None
    input_bits = shape
    for i, m in enumerate(mods):
        name = f"{i}: {type(m).__name__}"
        if head is not None:
            raise ValueError(f"harden: layer {name} follows GroupSum; GroupSum must be the last layer")
        if isinstance(m, Thresholds):
            if i != 0:
                raise ValueError(f"harden: layer {name}: Thresholds must be the first layer")
            thr = m.thresholds.detach().cpu().numpy().astype(np.float32)
            if shape[0] != thr.shape[0]:
                raise ValueError(f"harden: Thresholds has {thr.shape[0]} channels but the input shape is {shape}")
            encoder = ir.Encoder(thresholds=thr, u8_cutoffs=u8_cutoffs(thr), in_shape=shape)
            shape = input_bits = encoder.out_shape
        elif isinstance(m, LogicConv2d):
            blk = _conv_block(m, shape, name)
            ops.append(blk)
            shape = blk.out_shape
            if m.or_pool > 1:
                pool = ir.OrPool(size=m.or_pool, in_shape=shape, name=f"{i}: LogicConv2d.or_pool")
                ops.append(pool)
                shape = pool.out_shape
        elif isinstance(m, OrPool2d):
            if len(shape) != 3 or shape[1] < m.kernel_size or shape[2] < m.kernel_size:
                raise ValueError(f"harden: {name} with kernel_size={m.kernel_size} cannot pool shape {shape}")
            pool = ir.OrPool(size=m.kernel_size, in_shape=shape, name=name)
            ops.append(pool)
            shape = pool.out_shape
        elif isinstance(m, (Flatten, nn.Flatten)):
            shape = (math.prod(shape),)
        elif isinstance(m, LogicDense):
            blk = _dense_block(m, shape, name)
            ops.append(blk)
            shape = blk.out_shape
        elif isinstance(m, GroupSum):
            F = math.prod(shape)
            if F % m.k:
                raise ValueError(f"harden: {name}: {F} features are not divisible by k={m.k}")
            head = ir.GroupSum(k=m.k, tau=float(m.tau), in_features=F)
        elif isinstance(m, nn.Identity):
            continue
        else:
            raise ValueError(f"harden: layer {name} is not supported by the compiler; supported "
                             f"layers: {', '.join(SUPPORTED)}")
    if head is None:
        raise ValueError("harden: the model must end with a GroupSum layer (the class head)")
    cfg = getattr(model, "config", None)
    meta = {"model": (cfg or {}).get("name", type(model).__name__) if isinstance(cfg, dict) else type(model).__name__}
    try:
        from .. import __version__
        meta["difflogic_version"] = __version__
    except ImportError:  # pragma: no cover
        pass
    net = ir.Netlist(input_shape=tuple(input_bits), ops=ops, head=head, encoder=encoder, meta=meta)
    for op in ops:
        if isinstance(op, ir.GateBlock):
            op.validate()
    return net


@torch.no_grad()
def hard_counts(model, x) -> np.ndarray:
    """Reference class counts from the PyTorch hard forward: int64 (N, k).

    Runs the model in eval mode up to its GroupSum and counts the ones per group (exact
    integers, no temperature).  ``x``: float inputs in [0, 1] (or uint8 images, divided by 255
    in float32 as the data loaders do; for a model without Thresholds, 0/1 bits).
    """
    mods = _modules(model)
    if not mods or not isinstance(mods[-1], GroupSum):
        raise ValueError("hard_counts: the model must end with a GroupSum layer")
    x = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    if x.dtype == torch.uint8 and isinstance(mods[0], Thresholds):
        x = x.float() / 255
    elif x.dtype == torch.bool:
        x = x.to(torch.uint8)
    was = model.training
    model.eval()
    try:
        for m in mods[:-1]:
            x = m(x)
    finally:
        model.train(was)
    k = mods[-1].k
    x = x.flatten(1)
    return x.to(torch.int64).reshape(x.shape[0], k, -1).sum(-1).numpy()
