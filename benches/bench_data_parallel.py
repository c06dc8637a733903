"""How to use a machine's cores for training: 1 process x T threads against P processes x 1
thread (torchrun, DistributedDataParallel over gloo), quiet and with one core kept busy.

    python benches/bench_data_parallel.py [--models fmnist-small,cifar10-s-cpu] [--steps 60]
                                          [--busy] [--json OUT.json]

Each configuration runs ``difflogic train`` for ``--steps`` optimizer steps on fake data of the
model's shapes (evaluation only at the end; a recipe's polish and later stages are not run) and
reports steps/s from the run's own step clock (``summary.json``'s training time: the sum of the
step times, without start-up and evaluation; under torchrun rank 0's, which includes its waits
for the other rank).  ``--busy`` repeats
every configuration with a spinning process pinned to the last core, as on a machine shared
with other work.  The ratios are against 1 process x 1 thread on the same machine.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from difflogic import data, platform

#: name -> (dataset, extra options): the shipped recipes at their own batch sizes
MODELS = {"fmnist-small": ("fashion-mnist", ["--config", "fmnist-small"]),
          "cifar10-s-cpu": ("cifar10", ["--config", "cifar10-s-cpu"]),
          "cifar10-s": ("cifar10", ["--dataset", "cifar10", "--model", "cifar10-s"])}


def fake_data(dataset: str, root: Path) -> Path:
    if dataset == "cifar10":
        return data.write_fake_cifar10(root, n_train_per_batch=1000, n_test=100).parent
    return data.write_fake_idx(root, n_train=4000, n_test=100)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(model: str, procs: int, threads: int, steps: int, work: Path) -> float:
    """Steps per second of one configuration."""
    dataset, opts = MODELS[model]
    out = work / f"{model}-{procs}x{threads}"
    args = ["train", *opts, "--data-dir", str(fake_data(dataset, work / dataset)),
            "--steps", str(steps), "--eval-every", str(steps), "--val-size", "100",
            "--no-test", "--threads", str(threads), "--progress", "none", "--overwrite",
            "--stop-after", str(steps), "--out", str(out)]  # no polish, no later recipe stages
    if procs > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(procs),
               "--master-addr", "127.0.0.1", "--master-port", str(free_port()), "-m",
               "difflogic", *args]
    else:
        cmd = [sys.executable, "-m", "difflogic", *args]
    subprocess.run(cmd, check=True, capture_output=True, text=True,
                   env=dict(os.environ, OMP_NUM_THREADS=str(threads)))
    # the run's step clock at its one evaluation: the sum of rank 0's step times
    seconds = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])["elapsed_s"]
    return steps / seconds


def spinner(core: int) -> subprocess.Popen:
    """A process that keeps ``core`` busy (as other work on a shared machine would)."""
    return subprocess.Popen(["taskset", "-c", str(core), sys.executable, "-c", "while True: pass"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="fmnist-small,cifar10-s-cpu")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--busy", action="store_true", help="also measure with one core kept busy")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    cores = platform.cpu_count()
    configs = [(1, 1), (1, cores), (cores, 1)] if cores > 1 else [(1, 1)]
    print(f"# {platform.describe()}; torch threads per configuration below; {args.steps} steps")
    results = []
    with tempfile.TemporaryDirectory() as d:
        for model in args.models.split(","):
            for busy in ([False, True] if args.busy else [False]):
                hog = spinner(cores - 1) if busy else None
                try:
                    rates = {c: run(model, *c, args.steps, Path(d)) for c in configs}
                finally:
                    if hog is not None:
                        hog.kill()
                base = rates[(1, 1)]
                for (p, t), rate in rates.items():
                    row = {"model": model, "busy_core": busy, "processes": p, "threads": t,
                           "steps_per_s": round(rate, 3), "vs_1x1": round(rate / base, 3)}
                    results.append(row)
                    print(f"{model:14s} {'busy' if busy else 'quiet':5s} {p} process(es) x "
                          f"{t} thread(s): {rate:7.2f} steps/s  ({rate / base:.2f}x 1x1)")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": platform.describe(),
                                               "results": results}, indent=1))


if __name__ == "__main__":
    main()
