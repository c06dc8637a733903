"""The run folder's record of a run: ``metrics.jsonl`` (one JSON object per evaluation),
``curves.png`` and ``summary.json``, all written atomically."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..files import atomic_write


def write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda fh: fh.write(text.encode()))


def read_metrics(path: Path, upto_step: int) -> list[dict]:
    """The records of ``metrics.jsonl`` up to ``upto_step`` (a line cut by a crash is skipped)."""
    records = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                r = json.loads(line)
            except ValueError:
                continue
            if isinstance(r, dict) and r.get("step", 1 << 62) <= upto_step:
                records.append(r)
    return records


def append_metrics(path: Path, record: dict) -> None:
    with open(path, "a") as fh:
        fh.write(json.dumps(record) + "\n")


def write_metrics(path: Path, records: list[dict]) -> None:
    write_text(path, "".join(json.dumps(r) + "\n" for r in records))


def write_curves(path: Path, records: list[dict], title: str = "") -> None:
    """Loss and accuracy curves from metrics records into a PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in records]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    ax1.plot(steps, [r["loss"] for r in records], color="tab:red")
    ax1.set_xlabel("step")
    ax1.set_ylabel("training loss (mean since last eval)")
    ax1.grid(alpha=0.3)
    for key, label, style in (("train_acc", "train (training forward, running)", ":"),
                              ("train_hard_acc", "train (hard, subset)", "--"),
                              ("val_acc", "val (relaxed)", "-."), ("val_hard_acc", "val (hard)", "-")):
        vals = [r.get(key) for r in records]
        if any(v is not None for v in vals):
            ax2.plot(steps, [np.nan if v is None else 100 * v for v in vals], style, label=label)
    ax2.set_xlabel("step")
    ax2.set_ylabel("accuracy (%)")
    ax2.grid(alpha=0.3)
    ax2.legend(loc="lower right", fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    try:
        atomic_write(path, lambda fh: fig.savefig(fh, format="png", dpi=100))
    finally:
        plt.close(fig)
