"""``difflogic verify``: check that every compilation level computes the same class counts.

Compares, bit for bit on integer class counts: the PyTorch hard forward (``hard_counts``), the
IR simulator on the hardened and on the optimized netlist, and the target back end
(``difflogic.backends.<target>.run_counts``) on the optimized netlist.  Inputs: ``--samples``
random images (or random bits for a model without an encoder) and, with ``--dataset``, real
test images.  Exit status 0 only if everything is identical; otherwise the first mismatch
(input set, sample, the two levels and their counts) is printed and the status is 1.
For ``--target verilog`` the RTL (combinational, or pipelined with ``--pipeline N``) runs in
``--simulator`` (Icarus Verilog or Verilator) and its own per-class count outputs are compared.
"""
from __future__ import annotations

import time

import numpy as np

from .export import TARGETS, load_backend, reject_options

SIMULATORS = ("iverilog", "verilator")


def add_parser(subparsers):
    p = subparsers.add_parser(
        "verify", help="check torch == IR simulator == optimized IR == C/Verilog on class counts",
        description="Bit-exact equivalence check of a checkpoint across all compilation levels.")
    p.add_argument("checkpoint", metavar="CHECKPOINT", help="RUN/model.pt (or a run directory)")
    p.add_argument("--target", choices=TARGETS, default="c", help="back end to check")
    p.add_argument("--samples", type=int, default=256, help="number of random inputs")
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    p.add_argument("--dataset", default=None, help="also check real test images of this dataset")
    p.add_argument("--data-dir", default=None, help="dataset folder")
    p.add_argument("--test-samples", type=int, default=1000,
                   help="how many test images (0 = the whole test split)")
    p.add_argument("--no-optimize", dest="optimize", action="store_false",
                   help="give the target the unoptimized netlist (without it: the optimized one)")
    v = p.add_argument_group("Verilog options (--target verilog only)")
    v.add_argument("--simulator", choices=SIMULATORS, default=None,
                   help="Verilog simulator (default: iverilog)")
    v.add_argument("--pipeline", type=int, default=None, metavar="N",
                   help="check the pipelined RTL, a register bank every N gate levels "
                        "(default: combinational)")
    v.add_argument("--max-gates", type=int, default=None, metavar="G",
                   help="refuse larger designs before simulating "
                        "(default: difflogic.backends.verilog.DEFAULT_MAX_GATES)")
    p.set_defaults(func=run)
    return p


def _random_inputs(net, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if net.encoder is not None:
        return rng.integers(0, 256, (n, *net.encoder.in_shape), dtype=np.uint8)
    return rng.integers(0, 2, (n, *net.input_shape), dtype=np.uint8)


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
    from ..compiler import encode_input, hard_counts, simulate
    import torch
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
    levels["target"] = np.asarray(backend.run_counts(opt, bits, **opts), np.int64)
    times["target"] = time.perf_counter() - t
    return levels, times


def run(args) -> int:
    from ..compiler import harden
    from ..compiler.passes import optimize
    from .export import _load
    if args.samples < 0 or args.test_samples < 0:
        raise ValueError("--samples and --test-samples must be >= 0")
    backend = load_backend(args.target)
    if args.target != "verilog":
        reject_options(args, args.target, ("--simulator", "--pipeline", "--max-gates"))
    model = _load(args)
    net = harden(model)
    opt = optimize(net) if args.optimize else net
    opts = {}
    if args.target == "verilog":
        opts = {"simulator": args.simulator or "iverilog",
                "pipeline": 0 if args.pipeline is None else args.pipeline,
                "max_gates": backend.DEFAULT_MAX_GATES if args.max_gates is None else args.max_gates}
        # fail fast, before any simulation: too large, or the simulator not installed
        backend.check_size(opt, opts["pipeline"], opts["max_gates"])
        backend.check_simulator(opts["simulator"])
    sets = []
    if args.samples:
        sets.append((f"{args.samples} random inputs", _random_inputs(net, args.samples, args.seed)))
    if args.dataset:
        from ..data import load_dataset
        images, _ = load_dataset(args.dataset, args.data_dir, "test")
        if args.test_samples:
            images = images[:args.test_samples]
        if net.encoder is None:
            raise ValueError("--dataset needs a model with a Thresholds input encoder")
        sets.append((f"{len(images)} {args.dataset} test images", images))
    if not sets:
        raise ValueError("nothing to verify: give --samples > 0 and/or --dataset")
    form = ""
    if args.target == "verilog":
        form = (f" ({opts['simulator']}, "
                + (f"pipeline={opts['pipeline']})" if opts["pipeline"] else "combinational)"))
    print(f"verify {args.target}{form}: {net.gate_count():,} gates hardened, "
          f"{opt.gate_count():,} optimized")
    status = 0
    for label, x in sets:
        levels, times = check(model, net, opt, backend, x, opts)
        bad = compare(levels)
        timing = ", ".join(f"{k} {v:.2f}s" for k, v in times.items())
        if bad is None:
            print(f"  {label}: torch == ir == ir-optimized == {args.target}  (bit-identical; {timing})")
        else:
            name, i, ref, got = bad
            print(f"  {label}: MISMATCH torch vs {name} at sample {i}: {ref} != {got}")
            status = 1
    print("OK" if status == 0 else "FAILED")
    return status
