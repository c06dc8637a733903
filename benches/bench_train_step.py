"""Training-step benchmarks of LogicTreeNet-S (CIFAR-10 shapes, batch 128) on the CPU.

    python -m pytest benches/bench_train_step.py --benchmark-only

Compares one AdamW step (forward + backward + update) of
  * ``native``: the fused C++ kernels (difflogic._C),
  * ``torch``: the 4-coefficient PyTorch reference of difflogic.functional,
  * ``naive``: the straightforward baseline of the issue (leaves gathered per position, each
    gate the softmax-weighted sum of all 16 gate expressions, max pool) -- ~1 min per step,
and the hard (eval) forward; ``test_train_step_cifar10_recipe`` times the step of
benches/cifar10_cpu.sh's model at batch 32 and 128.  Peak memory of each variant is measured
in a fresh subprocess (`ru_maxrss`) and stored in the benchmark's extra_info.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

import difflogic as dl
from difflogic import functional as F
from difflogic.layers import LogicConv2d, LogicDense
from difflogic.training import keep_freed_memory, make_optimizer

BATCH = 128


def naive_forward(model, x):
    """The issue's naive reference over the model's own wiring and logits."""
    for m in model:
        if isinstance(m, LogicConv2d):
            x = F.tree_conv_pool_naive(x, m.leaf_c, m.leaf_dy, m.leaf_dx, m.weight, m.kernel_size,
                                       m.stride, m.padding, m.or_pool)
        elif isinstance(m, LogicDense):
            x = F.dense_naive(x, m.wire_a, m.wire_b, m.weight)
        else:
            x = m(x)
    return x


def make(backend: str, model_name: str = "cifar10-s", batch: int = BATCH, **overrides):
    """``overrides`` replace top-level config keys of the named model (``layers`` for a variant)."""
    torch.manual_seed(0)
    model = dl.get_model(model_name, **overrides)
    for m in model.modules():
        if hasattr(m, "backend"):
            m.backend = "torch" if backend == "naive" else backend
    # the optimizer and allocator set-up of `difflogic train` (fused AdamW, malloc keeping
    # freed blocks): the step measured is the step the training command runs
    keep_freed_memory()
    opt = make_optimizer(model, lr=0.02, weight_decay=0.002)
    x = torch.rand(batch, *model.config["input_shape"])
    y = torch.randint(0, 10, (batch,))
    fwd = (lambda inp: naive_forward(model, inp)) if backend == "naive" else model

    def step():
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(fwd(x), y)
        loss.backward()
        opt.step()
        return float(loss.detach())

    return model, x, step


def peak_rss_gib(backend: str, steps: int) -> float:
    """Peak resident memory of a fresh process doing `steps` training steps."""
    code = (f"import sys; sys.path.insert(0, {os.path.dirname(__file__)!r}); import bench_train_step as t;"
            f" m, x, s = t.make({backend!r}); [s() for _ in range({steps})];"
            " import resource, json; print(json.dumps(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1]) / 2**20


def _native_ok():
    from difflogic import kernels
    return kernels.native_available()


@pytest.mark.parametrize("backend", ["native", "torch", "naive"])
def test_train_step(benchmark, backend):
    if backend == "native" and not _native_ok():
        pytest.skip("native extension difflogic._C not built")
    _, _, step = make(backend)
    step()  # warm-up (allocations, thread pool)
    rounds = {"native": 10, "torch": 3, "naive": 1}[backend]
    benchmark.pedantic(step, rounds=rounds, iterations=1)
    benchmark.extra_info["peak_rss_gib"] = round(peak_rss_gib(backend, 2), 3)
    benchmark.extra_info["threads"] = torch.get_num_threads()


@pytest.mark.parametrize("straight_through,gumbel,parametrization",
                         [(False, 0.0, "input_wise"), (True, 0.0, "input_wise"),
                          (False, 0.0, "softmax"), (True, 0.0, "softmax"), (True, 1.0, "softmax")],
                         ids=["relaxed", "ste", "relaxed-softmax", "ste-softmax",
                              "gumbel-ste-softmax"])
def test_train_step_fmnist_small(benchmark, straight_through, gumbel, parametrization):
    """The README main job's step: `fmnist-small`, batch 64, native kernels; relaxed (the
    first 80% of its steps), straight-through (the last 20%), and Gumbel straight-through
    (``--gumbel``: one noise sample per logit per step, ~1.1M logits); with the preset's
    input-wise gates and with the softmax over 16 gates it used before 2026-12-05 (Gumbel
    noise samples one of the 16 gates, so it needs the softmax form)."""
    if not _native_ok():
        pytest.skip("native extension difflogic._C not built")
    model, _, step = make("native", "fmnist-small", 64, parametrization=parametrization)
    dl.set_straight_through(model, straight_through)
    dl.set_gumbel_noise(model, gumbel)
    for _ in range(3):
        step()
    benchmark.pedantic(step, rounds=30, iterations=1)
    benchmark.extra_info["threads"] = torch.get_num_threads()
    benchmark.extra_info["images_per_s"] = round(64 / benchmark.stats.stats.median)


def recipe_layers() -> list[dict]:
    """The layers of benches/cifar10_cpu.sh's model: ``cifar10-s`` with 15 input thresholds per
    channel (its first conv layer's straight-through switch adds ~5% to a step, not measured
    here)."""
    layers = dl.models.get_model_config("cifar10-s")["layers"]
    assert layers[0]["type"] == "thresholds", layers[0]
    layers[0] = {"type": "thresholds", "num": 15}
    return layers


@pytest.mark.parametrize("batch", [32, 128])
def test_train_step_cifar10_recipe(benchmark, batch):
    """The CPU CIFAR-10 recipe's step at its batch 32 and at the paper's 128: the images per
    second set how long a run of benches/cifar10_cpu.sh takes.  Parts of a step do not shrink
    with the batch (softmax and coefficients of the 1.34M gate logits, AdamW), so batch 32 can
    train fewer images per second (1.1-1.6x fewer than batch 128 on two threads in
    benches/RESULTS.md, about as many on one)."""
    if not _native_ok():
        pytest.skip("native extension difflogic._C not built")
    _, _, step = make("native", "cifar10-s", batch, layers=recipe_layers())
    for _ in range(3):
        step()
    benchmark.pedantic(step, rounds=20, iterations=1)
    benchmark.extra_info["threads"] = torch.get_num_threads()
    benchmark.extra_info["images_per_s"] = round(batch / benchmark.stats.stats.median)


def test_hard_forward(benchmark):
    model, x, _ = make("native" if _native_ok() else "torch")
    model.eval()
    with torch.no_grad():
        model(x)
        benchmark.pedantic(lambda: model(x), rounds=10, iterations=1)
    benchmark.extra_info["images_per_s"] = round(BATCH / benchmark.stats.stats.median)
