"""``difflogic verify``: check that every compilation level computes the same class counts.

Compares, bit for bit on integer class counts: the PyTorch hard forward (``hard_counts``), the
IR simulator on the hardened and on the optimized netlist, and the ``--target`` back end
(:meth:`difflogic.backends.base.Backend.run`) on the optimized netlist.  Inputs: ``--samples``
random images (or random bits for a model without an encoder) and, with ``--dataset``, real
test images.  Exit status 0 only if everything is identical; otherwise the first mismatch
(input set, sample, the two levels and their counts) is printed and the status is 1.
Each back end brings its own options (``--simulator`` and ``--pipeline`` for Verilog, ...).
"""
from __future__ import annotations

import time

import numpy as np

from ..backends import base


def add_parser(subparsers):
    p = subparsers.add_parser(
        "verify", help="check torch == IR simulator == optimized IR == C/Verilog on class counts",
        description="Bit-exact equivalence check of a checkpoint across all compilation levels.")
    p.add_argument("checkpoint", metavar="CHECKPOINT", help="RUN/model.pt (or a run directory)")
    p.add_argument("--samples", type=int, default=256, help="number of random inputs")
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    p.add_argument("--dataset", default=None, help="also check real test images of this dataset")
    p.add_argument("--data-dir", default=None, help="dataset folder")
    p.add_argument("--test-samples", type=int, default=1000,
                   help="how many test images (0 = the whole test split)")
    p.add_argument("--no-optimize", dest="optimize", action="store_false",
                   help="give the target the unoptimized netlist (without it: the optimized one)")
    base.add_target_arguments(p, "verify")
    p.set_defaults(func=run)
    return p


def compare(levels: dict) -> tuple | None:
    """First mismatch between the reference (first level) and the others:
    (level, sample, reference counts, level counts), or None."""
    names = list(levels)
    ref = levels[names[0]]
    for name in names[1:]:
        got = levels[name]
        if got.shape != ref.shape:
            return (name, -1, ref.shape, got.shape)
        bad = np.nonzero((got != ref).any(1))[0]
        if len(bad):
            i = int(bad[0])
            return (name, i, ref[i].tolist(), got[i].tolist())
    return None


def check(model, net, opt, backend, x, opts) -> tuple[dict, dict]:
    """Counts of every level on images ``x`` (uint8) and timings."""
    import torch

    from ..compiler import encode_input, hard_counts, simulate
    times, levels = {}, {}
    t = time.perf_counter()
    levels["torch"] = np.asarray(hard_counts(model, torch.as_tensor(x)), np.int64)
    times["torch"] = time.perf_counter() - t
    bits = encode_input(net, x)
    for name, n in (("ir", net), ("ir-optimized", opt)):
        t = time.perf_counter()
        levels[name] = simulate(n, bits)
        times[name] = time.perf_counter() - t
    t = time.perf_counter()
    levels["target"] = backend.run(opt, bits, **opts)
    times["target"] = time.perf_counter() - t
    return levels, times


def input_sets(args, net, model_input: dict | None = None) -> list:
    """(label, inputs) to check: random inputs, and with ``--dataset`` the test split (uint8
    images, or a table's float32 rows read as the model was trained: ``model_input``)."""
    from ..compiler import random_inputs
    sets = []
    if args.samples:
        sets.append((f"{args.samples} random inputs", random_inputs(net, args.samples, args.seed)))
    if args.dataset:
        from ..data import open_dataset
        if net.encoder is None:
            raise ValueError("--dataset needs a model with a Thresholds input encoder")
        opened = open_dataset(args.dataset, args.data_dir, input_spec=model_input)
        images, _ = opened.load("test")
        if args.test_samples:
            images = images[:args.test_samples]
        what = "images" if opened.info.kind == "image" else "rows"
        sets.append((f"{len(images)} {opened.info.title} test {what}", np.array(images)))
    if not sets:
        raise ValueError("nothing to verify: give --samples > 0 and/or --dataset")
    return sets


def run(args) -> int:
    from ..checkpoint import load_model
    from ..compiler import compile
    if args.samples < 0 or args.test_samples < 0:
        raise ValueError("--samples and --test-samples must be >= 0")
    backend, opts = base.target_options(args, "verify")
    model = load_model(args.checkpoint)
    net = compile(model, optimize=False)
    opt = compile(net) if args.optimize else net
    backend.check(opt, "verify", **opts)   # fail fast: too large, a tool or library missing
    sets = input_sets(args, net, model.config.get("input"))
    print(f"verify {backend.describe(**opts)}: {net.gate_count():,} gates hardened, "
          f"{opt.gate_count():,} optimized")
    status = 0
    for label, x in sets:
        levels, times = check(model, net, opt, backend, x, opts)
        bad = compare(levels)
        timing = ", ".join(f"{k} {v:.2f}s" for k, v in times.items())
        if bad is None:
            print(f"  {label}: torch == ir == ir-optimized == {backend.name}  (bit-identical; {timing})")
        else:
            name, i, ref, got = bad
            print(f"  {label}: MISMATCH torch vs {name} at sample {i}: {ref} != {got}")
            status = 1
    print("OK" if status == 0 else "FAILED")
    return status
