"""How a training process runs, as opposed to what it trains: log lines, the progress display,
the device, the number checks of options, signals, and the allocator setting.

Shared by ``difflogic train`` and ``difflogic teacher`` so both word their output the same way.
"""
from __future__ import annotations

import collections
import math
import signal
import sys
import threading
import time

from ..device import resolve_device, where  # noqa: F401 (re-exported for the loop)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def format_duration(seconds: float) -> str:
    """``75`` -> "1m15s", ``3725`` -> "1h02m"."""
    s = int(max(0, seconds))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


class Progress:
    """A tqdm bar on a terminal, plain periodic lines otherwise (logs, CI, nohup), or nothing.

    The images/s shown is the rate over the last ``window`` steps (said as such), and the ETA
    is the remaining steps at that rate."""

    def __init__(self, mode: str, total: int, initial: int, every: int, window: int = 50):
        if mode == "auto":
            mode = "bar" if sys.stderr.isatty() else "lines"
        self.mode, self.total, self.every = mode, total, max(1, every)
        self.times = collections.deque(maxlen=window)   # (seconds, images) of recent steps
        self.bar = None
        if mode == "bar":
            from tqdm import tqdm
            self.bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True,
                            file=sys.stderr)

    def rate(self) -> tuple[float, float]:
        """(images/s, seconds/step) over the recent steps."""
        t = sum(s for s, _ in self.times)
        return (sum(n for _, n in self.times) / t, t / len(self.times)) if t > 0 else (0.0, 0.0)

    def update(self, step: int, loss: float, acc: float, seconds: float, images: int,
               kind: str = "relaxed") -> None:
        self.times.append((seconds, images))
        ips, per_step = self.rate()
        if self.bar is not None:
            self.bar.update(step - self.bar.n)
            self.bar.set_postfix(loss=f"{loss:.3f}", acc=f"{100 * acc:.1f}%",
                                 img_s=f"{ips:.0f}", refresh=False)
        elif self.mode == "lines" and (step % self.every == 0 or step == self.total):
            eta = format_duration(per_step * (self.total - step))
            log(f"step {step}/{self.total}  loss {loss:.4f}  train acc {100 * acc:.2f}% ({kind})  "
                f"{ips:.0f} img/s (last {len(self.times)} steps)  ETA {eta}")

    def write(self, msg: str) -> None:
        if self.bar is not None:
            self.bar.write(msg, file=sys.stderr)
        elif self.mode != "none":
            log(msg)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def check_positive(name, value, kind=int, allow_zero=False):
    """``value`` unless it is not a finite number of ``kind`` > 0 (>= 0 with ``allow_zero``);
    None passes (the option was not given)."""
    if value is None:
        return None
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")
    return value


def keep_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed blocks of up to 32 MiB for reuse (a no-op elsewhere).

    Every training step allocates the same multi-megabyte activations; by default glibc serves
    them with fresh mmap()s and unmaps them on free, so each step page-faults through zeroed
    memory.  Process-wide, so only the ``difflogic train`` command calls it (it owns the
    process), not the library's ``train()``; returns True if it applied."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl)
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
    return bool(mallopt(m_mmap_threshold, 32 << 20)) and bool(mallopt(m_trim_threshold, 1 << 30))


class StopSignal:
    """SIGINT/SIGTERM set ``hit``; the loop finishes its step, saves last.pt and stops.  A
    second signal interrupts at once, unless it comes within :attr:`GRACE` seconds of the
    first: Ctrl-C reaches torchrun and its workers together, and torchrun then forwards a
    SIGTERM, which is the same request.  Signals are only caught in the main thread."""

    GRACE = 3.0

    def __init__(self):
        self.hit = False
        self._first = 0.0
        self._old = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handler)
        return self

    def _handler(self, signum, frame):
        if self.hit:
            if time.monotonic() - self._first > self.GRACE:
                raise KeyboardInterrupt
            return
        self.hit, self._first = True, time.monotonic()

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
        return False


class Stopwatch:
    """Seconds since construction (``time.perf_counter``)."""

    def __init__(self):
        self.start = time.perf_counter()

    def __call__(self) -> float:
        return time.perf_counter() - self.start
