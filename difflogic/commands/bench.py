"""``difflogic bench CHECKPOINT``: images/s and latency of a trained network on every back end
available here (the PyTorch hard forward, the compiled C, the GPU engine, RTL simulators on
request), each run checked bit-exact first; see :mod:`difflogic.bench`."""
from __future__ import annotations

import contextlib
import json
import sys
import threading
import time
from pathlib import Path


def add_parser(subparsers):
    from ..bench import DISTINCT, OPT_IN, available_targets
    p = subparsers.add_parser(
        "bench", help="images/s and latency on every back end available here",
        description="Measure a checkpoint's inference speed: the PyTorch hard forward and every "
                    "back end that can run here, at each thread count and batch size, after "
                    "checking each run bit-exact against the PyTorch hard forward.  Compile time "
                    "is reported apart from run time; each figure is the median (min-max) of "
                    "--repeats timed calls after --warmup untimed ones.",
        epilog="example: difflogic bench RUN/model.pt --threads 1,2 --json OUT.json --plot OUT.png")
    p.add_argument("checkpoint", metavar="CHECKPOINT", help="RUN/model.pt (or a run directory)")
    p.add_argument("--targets", metavar="LIST",
                   help=f"comma-separated targets: {', '.join(available_targets())} (verilator "
                        f"and iverilog: verilog in that simulator) (default: all but "
                        f"the {'/'.join(OPT_IN)}* back ends and the simulator names; unavailable "
                        "ones are listed with the reason)")
    p.add_argument("--threads", metavar="LIST", help="CPU thread counts, e.g. 1,2 (default: 1, "
                   "the powers of two below the core count, and all cores)")
    p.add_argument("--batch", metavar="LIST", help="batch sizes, e.g. 1,4096 (default: 1 and, per "
                   "target, the smallest power of two whose call takes >= 0.2 s, at most 65,536)")
    p.add_argument("--repeats", type=int, default=5, help="timed calls per run")
    p.add_argument("--warmup", type=int, default=1, help="untimed calls before them")
    p.add_argument("--dataset", help="use this dataset's test images (default: random inputs)")
    p.add_argument("--data-dir", help="folder holding the dataset files")
    p.add_argument("--samples", type=int, default=DISTINCT,
                   help="distinct samples, repeated to the batch size")
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    p.add_argument("--no-optimize", dest="optimize", action="store_false",
                   help="give the back ends the hardened netlist as is (default: optimized)")
    p.add_argument("--json", metavar="FILE", help="write the report as JSON to FILE ('-': print "
                   "it on stdout, the text report going to stderr)")
    p.add_argument("--plot", metavar="PNG", help="write a bar chart of images/s per target and "
                   "thread count to PNG")
    p.set_defaults(func=run)
    return p


@contextlib.contextmanager
def ticker(what: str, out=None, every: float = 1.0):
    """Shows ``what`` while it runs on ``out`` (default: the current sys.stderr): the elapsed
    seconds in place on a terminal, a line every 15 s elsewhere, and the total when done."""
    out = out or sys.stderr
    live = out.isatty()
    out.write(f"{what} ..." + ("" if live else "\n"))
    out.flush()
    t0, stop = time.perf_counter(), threading.Event()

    def tick():
        last = 0.0
        while not stop.wait(every):
            s = time.perf_counter() - t0
            if live:
                out.write(f"\r{what} ... {s:.0f} s")
            elif s - last >= 15:
                out.write(f"{what}: {s:.0f} s so far\n")
                last = s
            out.flush()

    th = threading.Thread(target=tick, daemon=True)
    th.start()
    try:
        yield
    finally:
        stop.set()
        th.join()
        out.write(f"{chr(13) if live else ''}{what}: {time.perf_counter() - t0:.2f} s\n")
        out.flush()


def _check_out(path, flag: str) -> None:
    if path and path != "-" and Path(path).is_dir():
        raise IsADirectoryError(f"{flag} {path} is a directory; give a file name")


def dataset_images(args, model):
    """The test split of --dataset (None without it) -- images, or a table's rows read as the
    model was trained -- checked against the model's input before any work."""
    from .. import data
    from ..layers import Thresholds
    if not args.dataset:
        return None
    opened = data.open_dataset(args.dataset, args.data_dir,
                               input_spec=getattr(model, "config", {}).get("input"))
    want = tuple(opened.info.shape)
    mods = list(model) if hasattr(model, "__iter__") else []
    shape = getattr(model, "input_shape", None)
    if not (mods and isinstance(mods[0], Thresholds)) or tuple(shape or ()) != want:
        kind = "images" if len(shape or ()) > 1 else "rows"
        takes = (f"{kind} of shape {tuple(shape)}" if mods and isinstance(mods[0], Thresholds)
                 else "encoded bits (it has no input encoder)")
        what = "images" if opened.info.kind == "image" else f"rows of {len(want) and want[0]} features"
        raise ValueError(f"--dataset {args.dataset}: the model takes {takes}, not "
                         f"{opened.info.title} {what}; leave --dataset out for random inputs")
    import numpy as np
    return np.array(opened.load("test")[0])   # a copy: the split may be memory-mapped


def run(args) -> int:
    from .. import bench, platform
    from ..checkpoint import load_model
    from ..compiler import compile
    threads = (bench.parse_counts(args.threads, "--threads", platform.cpu_count())
               or bench.default_threads(platform.cpu_count()))
    batches = bench.parse_counts(args.batch, "--batch")
    targets, explicit = bench.parse_targets(args.targets)
    if args.samples < 1 or args.repeats < 1 or args.warmup < 0:
        raise ValueError("--samples and --repeats must be >= 1, --warmup >= 0")
    _check_out(args.json, "--json")
    _check_out(args.plot, "--plot")
    bench.check_targets(targets, explicit)
    model = load_model(args.checkpoint)
    images = dataset_images(args, model)
    with ticker("compiling the netlist (harden + optimize)"):
        net = compile(model, optimize=args.optimize)
    with ticker(f"reference counts: PyTorch hard forward on {args.samples:,} samples"):
        inputs = bench.make_inputs(model, net, images, args.seed, args.samples)
    text = sys.stderr if args.json == "-" else sys.stdout
    print("\n".join(bench.header_lines(str(args.checkpoint), model, net, threads, args.warmup,
                                       args.repeats, len(inputs.distinct))), file=text, flush=True)
    report = bench.run_bench(model, net, inputs, targets, threads, batches, args.warmup,
                             args.repeats, log=lambda line: print(line, file=text, flush=True),
                             compiling=lambda label: ticker(f"compiling {label}"))
    report["checkpoint"] = str(args.checkpoint)
    print("\n".join(bench.summary_lines(report)), file=text)
    if args.json:
        _write_json(report, args.json)
    if args.plot:
        bench.plot(report, args.plot)
        print(f"wrote {args.plot}", file=text)
    bad = bench.failures(report)
    for line in bad:
        print(f"difflogic bench: {line}", file=sys.stderr)
    return 1 if bad else 0


def _write_json(report: dict, path: str) -> None:
    from ..files import atomic_write
    doc = json.dumps(report, indent=1) + "\n"
    if path == "-":
        print(doc, end="")
    else:
        atomic_write(path, lambda fh: fh.write(doc.encode()))
