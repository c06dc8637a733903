"""How many CPU threads a training step uses, chosen while the run trains.

Several threads make a step faster on a quiet machine, but when another process keeps one of
the cores busy every parallel region of the step waits for the thread that shares that core,
and a step can take several times as long as on one thread.  :class:`ThreadTuner` measures
both settings now and then (a few steps each, and again whenever the step time jumps) and
trains with the faster one, so a busy core never makes training slower than one thread.  The
kernels give the same numbers on any thread count, so switching never changes a result.
"""
from __future__ import annotations

import statistics

import torch


class ThreadTuner:
    """Alternates between ``many`` threads and one thread by measured seconds per image.

    Call :meth:`before_step` before and :meth:`after_step` after every training step.  A
    probe runs ``probe_steps`` steps on each setting (after one warm-up step each); between
    probes the chosen setting runs for ``every`` steps, or until its step time exceeds
    ``jump`` times the probe's figure."""

    def __init__(self, many: int, every: int = 500, probe_steps: int = 4, jump: float = 1.5,
                 log=None):
        self.settings = (many, 1)
        self.every, self.probe_steps, self.jump = every, probe_steps, jump
        self.log = log or (lambda msg: None)
        self.current = many
        self.queue: list[int] = []          # settings of the probe steps still to run
        self.samples: dict[int, list] = {}  # seconds per image measured in this probe
        self.since = 0                      # steps since the last decision
        self.reference = 0.0                # the chosen setting's seconds per image
        self.recent: list[float] = []
        self._start_probe()

    def _start_probe(self) -> None:
        self.queue = [s for s in self.settings for _ in range(self.probe_steps + 1)]
        self.samples = {s: [] for s in self.settings}

    def before_step(self) -> None:
        want = self.queue[0] if self.queue else self.current
        if torch.get_num_threads() != want:
            torch.set_num_threads(want)

    def after_step(self, seconds: float, images: int) -> None:
        per_image = seconds / max(1, images)
        if self.queue:
            setting = self.queue.pop(0)
            if self.queue.count(setting) < self.probe_steps:  # not the warm-up step
                self.samples[setting].append(per_image)
            if not self.queue:
                self._decide()
            return
        self.since += 1
        self.recent = (self.recent + [per_image])[-5:]
        slow = len(self.recent) == 5 and statistics.median(self.recent) > self.jump * self.reference
        if self.since >= self.every or slow:
            self._start_probe()

    def _decide(self) -> None:
        times = {s: statistics.median(v) for s, v in self.samples.items()}
        best = min(times, key=times.get)
        if best != self.current:
            many, one = self.settings
            self.log(f"CPU threads {self.current} -> {best} (measured {1e3 * times[many]:.2f} ms "
                     f"per image on {many} threads, {1e3 * times[one]:.2f} on 1"
                     + ("; another process is probably using a core)" if best == 1 else ")"))
        self.current, self.reference = best, times[best]
        self.since, self.recent = 0, []
