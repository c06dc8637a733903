"""Inference benchmark of a trained network on every back end available here.

:func:`run_bench` measures, for a model and its compiled netlist, the images/s and the latency
(seconds per call) of the PyTorch hard forward (:class:`TorchRunner`, a row like the others) and
of each back end of the registry (:mod:`difflogic.backends`: ``get_backend(name).load(netlist)``
-> a :class:`~difflogic.backends.base.Runner`), at each thread count and batch size asked:

* the compile time (``Runner.compile_seconds``) is kept apart from the run time;
* every (target, threads, batch) run is first checked bit-exact: its first call's class counts
  must equal the PyTorch hard forward's on the same inputs, else the run is reported as a
  mismatch and not timed, so a wrong fast result is never reported;
* then ``warmup`` untimed calls and ``repeats`` timed ones: the median, min and max.

Inputs are a set of distinct samples (random, or test images) repeated to the batch size; the
count is prime, so a sample lands on other bit lanes in each repeat, and the reference
(the slow PyTorch forward) is computed once, on the distinct samples only.  A runner that
offers ``counts_images(images, threads)`` (raw uint8 images or a table's float32 rows, its
own input encoding) is fed them; the others get the encoded bits (``Runner.counts``), and
each row says which.

A back end that cannot run here is listed with its reason (``Backend.unavailable_reason``),
not dropped; asked for by name, it is an error instead.
"""
from __future__ import annotations

import contextlib
import os
import statistics
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from . import platform
from .backends import backend_names, get_backend
from .backends.base import Runner
from .compiler import encode_input, hard_counts, random_inputs
from .layers import GroupSum, Thresholds

TORCH = "torch"
#: back ends measured only when asked for: the RTL ones, run in simulators (minutes per call,
#: not a deployment): names starting with these
OPT_IN = ("verilog",)
#: names that select a back end with options: ``--targets verilator``
ALIASES = {"verilator": ("verilog", {"simulator": "verilator"}),
           "iverilog": ("verilog", {"simulator": "iverilog"})}
#: back ends whose runner does not use CPU threads (names starting with these): measured once
#: per batch size
NO_THREADS = ("cuda-packed", "verilog")
#: back ends whose runner builds its simulator inside each call (the testbench is sized to the
#: vectors): their run times include that build, and the report says so
BUILDS_PER_CALL = ("verilog",)
DISTINCT = 4093           # distinct samples (prime: repeats shift the bit lanes)
MAX_BATCH = 65536         # largest automatic batch
MAX_BITS_BYTES = 256 << 20   # largest automatic batch of encoded bits (uint8 per bit)
CALL_SECONDS = 0.2        # an automatic throughput batch takes at least this long per call


@dataclass(frozen=True)
class Target:
    """A row group: ``label`` as asked (``c``, ``verilator``), the back end it runs on
    (``torch`` or a registry name) and the options its load() gets."""
    label: str
    backend: str
    opts: dict = field(default_factory=dict)


def available_targets() -> list[str]:
    """What ``--targets`` accepts: torch, the registered back ends, the aliases."""
    return [TORCH, *backend_names(), *ALIASES]


def parse_targets(spec: str | None) -> tuple[list[Target], bool]:
    """(targets, explicit): a comma-separated list, or None for the default set (torch and
    every registered back end but the simulators)."""
    if spec is None:
        return [Target(n, n) for n in (TORCH, *backend_names()) if not n.startswith(OPT_IN)], False
    out = []
    for name in (s.strip() for s in spec.split(",")):
        if name == TORCH or name in backend_names():
            out.append(Target(name, name))
        elif name in ALIASES:
            out.append(Target(name, ALIASES[name][0], dict(ALIASES[name][1])))
        else:
            raise ValueError(f"unknown target {name!r}; --targets takes a comma-separated list of "
                             f"{', '.join(available_targets())}")
    if not out or len({t.label for t in out}) != len(out):
        raise ValueError(f"--targets must name each target once, got {spec!r}")
    return out, True


def parse_counts(spec, what: str, maximum: int | None = None) -> list[int] | None:
    """``"1,2,4"`` -> [1, 2, 4] (sorted, distinct, >= 1, <= maximum); None stays None."""
    if spec is None:
        return None
    try:
        values = sorted({int(s) for s in str(spec).split(",")})
    except ValueError:
        raise ValueError(f"{what} must be comma-separated whole numbers, got {spec!r}") from None
    if not values or values[0] < 1:
        raise ValueError(f"{what} must be >= 1, got {spec!r}")
    if maximum is not None and values[-1] > maximum:
        raise ValueError(f"{what} {values[-1]} is above the {maximum} cores this process may use; "
                         f"give at most {maximum}")
    return values


def default_threads(cores: int) -> list[int]:
    """1, the powers of two below ``cores``, and ``cores``."""
    return sorted({1, cores, *(2 ** i for i in range(cores.bit_length()) if 2 ** i < cores)})


def unavailable(target: Target) -> str | None:
    """Why ``target`` cannot run here (with the fix), or None."""
    if target.backend == TORCH:
        return None
    return get_backend(target.backend).unavailable_reason(**target.opts)


# --------------------------------------------------------------------------- the torch row
class TorchRunner(Runner):
    """The PyTorch hard forward (eval mode: the native uint8 kernels) as a :class:`Runner`."""

    def __init__(self, model):
        self.model = model.eval()
        mods = list(model)
        self.encoder = mods[0] if mods and isinstance(mods[0], Thresholds) else None
        self.body = mods[1 if self.encoder is not None else 0:]

    @torch.no_grad()
    def counts(self, bits, threads: int | None = None) -> np.ndarray:
        """Counts of encoded bits: the layers after the encoder, on uint8 bits."""
        with _torch_threads(threads):
            x = torch.from_numpy(np.ascontiguousarray(bits, dtype=np.uint8))
            for m in self.body[:-1]:
                x = m(x)
            return _group_counts(x, self.body[-1])

    @torch.no_grad()
    def counts_images(self, images, threads: int | None = None) -> np.ndarray:
        """Counts of uint8 images: what ``model(images / 255)`` computes, as integers."""
        with _torch_threads(threads):
            return hard_counts(self.model, images)


def _group_counts(x: torch.Tensor, head) -> np.ndarray:
    if not isinstance(head, GroupSum):
        raise ValueError("the model must end with a GroupSum layer")
    x = x.flatten(1)
    return x.to(torch.int64).reshape(len(x), head.k, -1).sum(-1).numpy()


@contextlib.contextmanager
def _torch_threads(threads: int | None):
    old = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def load_runner(target: Target, model, netlist) -> Runner:
    """The target's runner: the torch row, or the back end's load() of the netlist."""
    if target.backend == TORCH:
        return TorchRunner(model)
    return get_backend(target.backend).load(netlist, **target.opts)


# --------------------------------------------------------------------------- inputs
class Inputs:
    """``distinct`` raw samples (uint8 images, or bits for a model without an encoder) and
    their reference counts, repeated to any batch size, raw or encoded."""

    def __init__(self, netlist, distinct: np.ndarray, reference: np.ndarray):
        self.netlist, self.distinct, self.reference = netlist, distinct, np.asarray(reference)
        self.has_images = netlist.encoder is not None
        self._bits = encode_input(netlist, distinct) if self.has_images else distinct

    def _take(self, arr: np.ndarray, n: int) -> np.ndarray:
        return np.ascontiguousarray(np.take(arr, np.arange(n) % len(arr), axis=0))

    def batch(self, n: int, kind: str) -> np.ndarray:
        return self._take(self.distinct if kind == "images" else self._bits, n)

    def expected(self, n: int) -> np.ndarray:
        return self._take(self.reference, n)

    def bytes_per_sample(self, kind: str) -> int:
        return int(np.prod((self.distinct if kind == "images" else self._bits).shape[1:]))


def make_inputs(model, netlist, data=None, seed: int = 0, distinct: int = DISTINCT,
                threads: int | None = None) -> Inputs:
    """:class:`Inputs` from ``data`` (uint8 images; the first ``distinct``) or random samples;
    the reference counts come from the PyTorch hard forward."""
    if data is None:
        data = random_inputs(netlist, distinct, seed)
    data = np.ascontiguousarray(np.asarray(data)[:distinct])
    if not len(data):
        raise ValueError("no input samples to benchmark with")
    with _torch_threads(threads):
        reference = hard_counts(model, data)
    return Inputs(netlist, data, reference)


# --------------------------------------------------------------------------- measuring
@dataclass
class Row:
    """One measured run: ``seconds`` (wall-clock) and ``cpu_seconds`` (this process's CPU
    time, all its threads) per timed call; ``status`` ok / mismatch / failed."""
    target: str
    threads: int | None
    batch: int
    input: str
    status: str = "ok"
    reason: str = ""
    seconds: list = field(default_factory=list)
    cpu_seconds: list = field(default_factory=list)

    def images_per_s(self) -> dict:
        """{"median", "min", "max"} images/s over the timed calls (empty when not timed)."""
        if not self.seconds:
            return {}
        rates = [self.batch / max(s, 1e-12) for s in self.seconds]
        out = {"median": statistics.median(rates), "min": min(rates), "max": max(rates)}
        if self.threads == 1 and self.cpu_seconds:   # robust to other load on shared cores
            out["cpu_time"] = self.batch / max(statistics.median(self.cpu_seconds), 1e-12)
        return out

    def latency(self) -> dict:
        """{"median", "min", "max"} seconds per call of ``batch`` samples."""
        if not self.seconds:
            return {}
        return {"median": statistics.median(self.seconds), "min": min(self.seconds),
                "max": max(self.seconds)}


@dataclass
class TargetResult:
    """A target's outcome: ``status`` ok / unavailable / failed, its compile time, its rows."""
    target: str
    backend: str
    status: str = "ok"
    reason: str = ""
    compile_seconds: float | None = None
    input: str = ""
    builds_per_call: bool = False
    rows: list = field(default_factory=list)


def timed_calls(call, warmup: int, repeats: int) -> tuple[list, list]:
    """(wall-clock seconds, CPU seconds) of ``repeats`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        call()
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        call()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return wall, cpu


def first_mismatch(got, expected) -> str | None:
    """None when the counts are identical, else which sample differs and how."""
    got = np.asarray(got, dtype=np.int64)
    if got.shape != expected.shape:
        return f"counts of shape {got.shape}, expected {expected.shape}"
    bad = np.nonzero((got != expected).any(1))[0]
    if not len(bad):
        return None
    i = int(bad[0])
    return (f"{len(bad)} of {len(got)} samples differ from the PyTorch hard forward, first sample "
            f"{i}: {got[i].tolist()} != {expected[i].tolist()}")


def measure(count, inputs: Inputs, kind: str, label: str, threads, batch: int,
            warmup: int, repeats: int) -> Row:
    """One run: check the first call bit-exact, then time ``repeats`` calls."""
    row = Row(label, threads, batch, kind)
    x = inputs.batch(batch, kind)
    try:
        bad = first_mismatch(count(x, threads), inputs.expected(batch))
    except (RuntimeError, ValueError, OSError) as e:
        row.status, row.reason = "failed", f"{type(e).__name__}: {e}"
        return row
    if bad:
        row.status, row.reason = "mismatch", bad
        return row
    row.seconds, row.cpu_seconds = timed_calls(lambda: count(x, threads), warmup, repeats)
    return row


def auto_batch(count, inputs: Inputs, kind: str, threads, cap: int) -> int:
    """The smallest power of two (from 256) whose call takes >= CALL_SECONDS, at most ``cap``."""
    n = min(256, cap)
    while n < cap:
        x = inputs.batch(n, kind)
        t0 = time.perf_counter()
        count(x, threads)
        if time.perf_counter() - t0 >= CALL_SECONDS:
            break
        n = min(2 * n, cap)
    return n


def batch_cap(inputs: Inputs, kind: str) -> int:
    """Largest automatic batch: MAX_BATCH, fewer for wide encoded bits (memory)."""
    per = inputs.bytes_per_sample(kind)
    cap = MAX_BATCH if kind == "images" else max(64, MAX_BITS_BYTES // max(per, 1))
    return 1 << (min(cap, MAX_BATCH).bit_length() - 1)


# --------------------------------------------------------------------------- a whole bench
def counter(runner, inputs: Inputs) -> tuple:
    """(count(x, threads), input kind): raw inputs (uint8 images, a table's float32 rows)
    where the runner encodes them itself, else encoded bits."""
    if inputs.has_images and callable(getattr(runner, "counts_images", None)):
        return runner.counts_images, "images"
    return runner.counts, "bits"


def run_target(target: Target, model, netlist, inputs: Inputs, threads: list, batches,
               warmup: int, repeats: int, log=print, compiling=None) -> TargetResult:
    """Load (compile) ``target`` and measure it at each thread count and batch size."""
    res = TargetResult(target.label, target.backend,
                       builds_per_call=target.backend.startswith(BUILDS_PER_CALL))
    why = unavailable(target)
    if why:
        res.status, res.reason = "unavailable", why
        log(target_line(asdict(res)))
        return res
    quiet = target.backend == TORCH or compiling is None
    try:
        with contextlib.nullcontext() if quiet else compiling(target.label):
            runner = load_runner(target, model, netlist)
    except (RuntimeError, ValueError, OSError) as e:
        res.status, res.reason = "failed", f"{type(e).__name__}: {e}"
        log(target_line(asdict(res)))
        return res
    res.compile_seconds = float(runner.compile_seconds)
    count, res.input = counter(runner, inputs)
    log(target_line(asdict(res)))
    thread_list = [None] if target.backend.startswith(NO_THREADS) else threads
    sizes = batches or sorted({1, auto_batch(count, inputs, res.input, thread_list[-1],
                                             batch_cap(inputs, res.input))})
    for th in thread_list:
        for b in sizes:
            row = measure(count, inputs, res.input, target.label, th, b, warmup, repeats)
            res.rows.append(row)
            log(format_row(row))
    return res


def check_targets(targets: list, explicit: bool) -> None:
    """Targets asked for by name must be able to run: a one-line error naming the fix."""
    if explicit:
        for t in targets:
            why = unavailable(t)
            if why:
                raise RuntimeError(f"target {t.label!r} cannot run here: {why}")


def machine() -> dict:
    """The facts a timing needs: CPU, SIMD width, cores, torch, native kernels, date, and the
    1-minute load average (other work on the cores makes wall-clock figures low)."""
    return {"cpu": platform.cpu_model(), "simd": platform.simd(), "cores": platform.cpu_count(),
            "torch": torch.__version__, "native_kernels": platform.native_kernels()[0],
            "date": time.strftime("%Y-%m-%d"), "load": round(os.getloadavg()[0], 2)}


def run_bench(model, netlist, inputs: Inputs, targets: list, threads: list, batches=None,
              warmup: int = 1, repeats: int = 5, log=print, compiling=None) -> dict:
    """Every target measured; returns the JSON-able report: the machine, the settings, and per
    target its status, compile time, input kind and rows (:class:`Row` fields plus
    ``images_per_s`` and ``latency_s``)."""
    if warmup < 0 or repeats < 1:
        raise ValueError(f"warmup must be >= 0 and repeats >= 1, got {warmup} and {repeats}")
    results = [run_target(t, model, netlist, inputs, threads, batches, warmup, repeats, log,
                          compiling) for t in targets]
    return {"machine": machine(), "threads": threads, "warmup": warmup, "repeats": repeats,
            "model": getattr(model, "config", {}).get("name", type(model).__name__),
            "gates": int(model.gate_count()) if hasattr(model, "gate_count") else None,
            "gates_optimized": int(netlist.gate_count()), "distinct_samples": len(inputs.distinct),
            "targets": [_target_dict(r) for r in results]}


def _target_dict(r: TargetResult) -> dict:
    d = asdict(r)
    d["rows"] = [{**asdict(row), "images_per_s": row.images_per_s(), "latency_s": row.latency()}
                 for row in r.rows]
    return d


def failures(report: dict) -> list[str]:
    """The runs that did not verify or failed, one line each (empty: all good)."""
    runs = [f"{r['target']} threads={r['threads']} batch={r['batch']}: {r['status']}: "
            f"{r['reason']}" for t in report["targets"] for r in t["rows"] if r["status"] != "ok"]
    loads = [f"{t['target']}: failed: {t['reason']}" for t in report["targets"]
             if t["status"] == "failed"]
    return loads + runs


# --------------------------------------------------------------------------- reporting
def _si_time(s: float) -> str:
    return f"{s * 1e6:.1f} us" if s < 1e-3 else f"{s * 1e3:.2f} ms" if s < 1 else f"{s:.2f} s"


def format_row(row) -> str:
    """One line: target, threads, batch, input, images/s median (min-max), latency."""
    r = row if isinstance(row, dict) else {**asdict(row), "images_per_s": row.images_per_s(),
                                           "latency_s": row.latency()}
    th = "-" if r["threads"] is None else str(r["threads"])
    head = f"  {r['target']:12s} {th:>7s} {r['batch']:>9,} {r['input']:7s}"
    if r["status"] != "ok":
        return f"{head} {r['status'].upper()}: {r['reason']}"
    ips, lat = r["images_per_s"], r["latency_s"]
    cpu = f"  {ips['cpu_time']:,.0f}" if "cpu_time" in ips else ""
    return (f"{head} {ips['median']:>14,.0f} ({ips['min']:,.0f}-{ips['max']:,.0f})"
            f"  {_si_time(lat['median'])}{cpu}")


def best_rates(report: dict) -> dict:
    """target -> (best median images/s, its row) over the verified rows."""
    best = {}
    for t in report["targets"]:
        for r in t["rows"]:
            if r["status"] == "ok" and r["images_per_s"]["median"] > best.get(t["target"], (0,))[0]:
                best[t["target"]] = (r["images_per_s"]["median"], r)
    return best


def header_lines(source: str, model, netlist, threads: list, warmup: int, repeats: int,
                 distinct: int) -> list[str]:
    """What is measured, on what: the lines printed before the runs."""
    m = machine()
    gates = f"{model.gate_count():,} gates, " if hasattr(model, "gate_count") else ""
    return [f"{source}: {getattr(model, 'config', {}).get('name', type(model).__name__)}, {gates}"
            f"{netlist.gate_count():,} after optimization",
            f"machine: {m['cpu']} ({m['simd'] or 'SIMD unknown'}), {m['cores']} cores; threads "
            f"{', '.join(map(str, threads))}; torch {m['torch']}"
            f"{'' if m['native_kernels'] else ' WITHOUT the native kernels'}; {m['date']}; "
            f"load {m['load']:.1f}",
            f"runs: {warmup} warm-up + {repeats} timed calls each, median (min-max); {distinct:,} "
            "distinct samples repeated to the batch; each run's first call checked bit-exact "
            "against the PyTorch hard forward",
            f"  {'target':12s} {'threads':>7s} {'batch':>9s} {'input':7s} "
            f"{'images/s median (min-max)':>27s}  latency (per call)  [1 thread: images/s "
            "from CPU time]"]


def target_line(t: dict) -> str:
    """A target's state: ready (compile / load time, input kind), unavailable or failed."""
    if t["status"] == "ok":
        kind = "uint8 images" if t["input"] == "images" else "encoded bits"
        apart = ("; its simulator builds the RTL inside each call: the run times include that "
                 "build" if t.get("builds_per_call") else ", not in the run times")
        return (f"  {t['target']}: ready in {t['compile_seconds']:.2f} s (compile / load{apart}); "
                f"input: {kind}")
    return f"  {t['target']}: {t['status']}: {t['reason']}"


def summary_lines(report: dict) -> list[str]:
    """After the runs: each target's best images/s (and its ratio to the torch row)."""
    lines = []
    best = best_rates(report)
    ref = best.get(TORCH, (None,))[0]
    for name, (rate, r) in best.items():
        x = rate / ref if ref else 0
        vs = f", {x:,.1f}x" if x >= 1 else f", {x:.2g}x"
        vs = f"{vs} the PyTorch hard forward" if ref and name != TORCH else ""
        th = {None: "no CPU threads", 1: "1 thread"}.get(r["threads"], f"{r['threads']} threads")
        lines.append(f"best {name}: {rate:,.0f} images/s ({th}, batch "
                     f"{r['batch']:,}){vs}")
    return lines


def plot(report: dict, path) -> None:
    """A PNG bar chart: images/s (log scale) per target and thread count, largest batch."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .files import save_png
    bars = {}   # (target, threads) -> images/s at that target's largest verified batch
    for t in report["targets"]:
        ok = [r for r in t["rows"] if r["status"] == "ok"]
        top = max((r["batch"] for r in ok), default=None)
        for r in ok:
            if r["batch"] == top:
                bars[(t["target"], r["threads"])] = r["images_per_s"]["median"]
    fig, ax = plt.subplots(figsize=(max(5, 1.2 * len(bars) + 2), 4))
    labels = [f"{name}\n{'-' if th is None else th} thr" for name, th in bars]
    names = list(dict.fromkeys(name for name, _ in bars))
    colors = [f"C{names.index(name) % 10}" for name, _ in bars]
    ax.bar(range(len(bars)), list(bars.values()), color=colors)
    for i, v in enumerate(bars.values()):
        ax.annotate(f"{v:,.0f}", (i, v), ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(bars)))
    ax.set_xticklabels(labels, fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("images/s (median, largest batch)")
    m = report["machine"]
    ax.set_title(f"{report['model']}: {m['cpu']} ({m['simd']}), {m['cores']} cores, load "
                 f"{m.get('load', '?')}, {m['date']}", fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    save_png(path, fig)
