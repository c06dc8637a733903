"""The training loop behind ``difflogic train``: AdamW on the relaxed network, model selection
on the *hard* (discretised) validation accuracy, and exact resume.

Run folder (``out``)::

    model.pt       best hard validation accuracy so far (what eval/info/export read); with
                   ``val_size=0`` (train on every training image) the latest network
    last.pt        latest state: model, optimizer, loader cursor, RNG, metrics so far
    metrics.jsonl  one JSON object per evaluation (step, epoch, loss, accuracies, time, img/s)
    curves.png     loss and accuracy curves (matplotlib, Agg)
    summary.json   final numbers (best step, hard/relaxed test accuracy, gate count, time)

Why resume is bit-exact: nothing in a step depends on history outside ``last.pt``.  The
batches are a pure function of (seed, epoch, batch) (:class:`difflogic.data.BatchLoader`),
the learning rate a pure function of the step, evaluation consumes no randomness, and the
parameters, AdamW moments and torch RNG are restored byte for byte.  (Same machine, same
thread count: kernels reduce in a fixed order for a fixed thread count.  On a GPU, resume
matches to rounding only: the CUDA tree-conv backward sums with float atomics.)
"""
from __future__ import annotations

import json
import math
import os
import shutil
import signal
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch

from . import _checks, checkpoint as ckpt, data, teacher as teacher_mod
from ._run import Progress, check_positive, log, resolve_device, where
from .layers import GateLayer, set_gumbel_noise, set_logit_scale, set_straight_through
from .models import LogicNet, get_model_config, resolve_quantile_thresholds

SCHEDULES = ("constant", "cosine")
#: Training images whose hard accuracy is measured at each evaluation (a fixed subset: the
#: full training set would cost more than the training steps between evaluations).
TRAIN_PROBE = 2000
#: Options that define the trajectory: a resumed run must use the same values.
_FIXED_ON_RESUME = ("dataset", "model", "batch_size", "lr", "weight_decay", "seed", "augment",
                    "crop_padding", "schedule", "val_size", "ste_from", "gumbel", "teacher",
                    "kd_weight", "kd_temperature", "label_smoothing", "ema", "sharpen")
#: Distillation defaults (``--kd-weight``, ``--kd-temperature``), measured on CIFAR-10 S.
KD_WEIGHT, KD_TEMPERATURE = 0.5, 2.0


@dataclass
class TrainOptions:
    """Everything ``difflogic train`` accepts (None = model config / dataset default).

    A model config's ``train`` entry supplies defaults for ``lr``, ``weight_decay``,
    ``batch_size`` and optionally ``epochs`` / ``steps``, ``schedule``, ``eval_every``,
    ``val_size``, ``ste_from``, ``gumbel``, ``label_smoothing``, ``ema`` and ``sharpen`` (tuned presets carry
    their whole recipe)."""

    dataset: str | None = None
    model: str | None = None
    out: str | None = None
    data_dir: str | None = None
    epochs: float | None = None
    steps: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    weight_decay: float | None = None
    seed: int | None = None      # None = 0 (or the resumed run's)
    eval_every: int | None = None
    augment: bool = False
    #: With ``augment``: crops come from the image zero-padded by this many pixels; 0 = flips
    #: only.  None = 4 for 32x32 images, 2 for smaller ones.
    crop_padding: int | None = None
    threads: int | None = None
    resume: str | None = None
    #: A fresh run (or a resume into another folder) refuses an ``out`` that already holds a
    #: run, whose checkpoints and metrics it would replace; True removes that run's files.
    overwrite: bool = False
    schedule: str | None = None  # None = constant (or the resumed run's)
    #: Validation images held out of the training split (None = the dataset's, the paper's
    #: split).  0 holds out none: the final run on every training image, with nothing to
    #: select on, keeps its final network as ``model.pt`` (CIFAR-10 S: +0.36% hard test on the
    #: mean of two seeds over the 45,000-image runs, benches/RESULTS.md).
    val_size: int | None = None
    #: Fraction of the run after which the gate layers train straight-through (argmax gate
    #: forward, relaxed gradient; :func:`difflogic.layers.set_straight_through`).  None = the
    #: config's ``ste_from``, else never; 0 = the whole run.
    ste_from: float | None = None
    #: Scale of the Gumbel(0, 1) noise added to the gate logits in every training forward
    #: (:func:`difflogic.layers.set_gumbel_noise`); with ``ste_from=0`` this is Gumbel logic
    #: gate network training.  None = the config's ``gumbel``, else 0 (off).
    gumbel: float | None = None
    #: Label smoothing of the cross-entropy (``torch.nn.functional.cross_entropy``'s
    #: ``label_smoothing``: the target puts 1 - eps + eps/classes on the label, eps/classes on
    #: every other class), a regulariser against the train/test gap of long CIFAR-10 runs.
    #: None = the config's ``label_smoothing``, else 0 (plain cross-entropy).
    label_smoothing: float | None = None
    #: Decay of an exponential moving average of the gate logits (:class:`ParamEMA`), e.g.
    #: 0.999: evaluations (and so ``model.pt``) use the averaged logits, and at the end of the
    #: run they replace the trained ones (a polish, or a resume that extends the run, starts
    #: from them).  Why: late in a run many neurons flip between near-tied gates from step to
    #: step; the average settles them on the choice the recent trajectory favours.  Measured
    #: on CIFAR-10 S (50 epochs, cosine, two seeds): no gain, benches/RESULTS.md.  None = the
    #: config's ``ema``, else 0 (off).
    ema: float | None = None
    #: Final factor on the gate logits before the softmax (:func:`difflogic.layers.set_logit_scale`):
    #: the factor grows geometrically from 1 at step 0 to ``sharpen`` at the end of the run
    #: (:func:`logit_scale_at`; a polish keeps the final one), i.e. the softmax temperature is
    #: annealed from 1 to 1 / ``sharpen``.  Why: in a CIFAR-10 S run the neurons that mix two
    #: or three gates (top probability 0.3-0.9), not the near-uniform or decided ones, made the
    #: relaxed/hard gap (:func:`difflogic.layers.set_logit_scale`); a falling temperature makes
    #: them commit while the rest of the network still adapts.  Measured on CIFAR-10 S (100
    #: epochs, batch 32, ``sharpen`` 8, one seed against a same-box baseline): no gain (+0.16%
    #: test, 0.9% lower best validation), benches/RESULTS.md.  The relaxed accuracies a run
    #: logs are those of the mixture it trains, at the factor of that step.  None = the
    #: config's ``sharpen``, else 1 (off).
    sharpen: float | None = None
    #: Steps appended after the run's ``steps``/``epochs`` in which every gate layer trains
    #: straight-through at the rate ``polish_lr`` (None = ``lr`` / 10), evaluated
    #: every ``polish_steps // 4`` steps so each polished network competes for ``model.pt``.
    #: Why: at the end of a relaxed run many gates sit near a tie between two choices the
    #: relaxed loss cannot tell apart; a few dozen straight-through steps settle them by the
    #: hard network's loss (CIFAR-10 S: +0.2-0.5% hard test, benches/RESULTS.md), where a long
    #: straight-through phase (``ste_from``) costs accuracy.  Like ``steps`` it may change on
    #: resume: ``--resume RUN --polish-steps 50`` polishes a finished run.  None = 0 (or the
    #: resumed run's).
    polish_steps: int | None = None
    polish_lr: float | None = None
    #: How ``polish_lr`` moves over the polish (:func:`lr_at` over the polish steps alone):
    #: "constant" (None = the resumed run's, else constant) keeps it, "cosine" anneals it to 0,
    #: so the last polished networks take ever smaller steps instead of flipping gates back and
    #: forth at full rate.  Measured on CIFAR-10 S (input-wise, 90 epochs, a 4-epoch polish): with
    #: a validation split to select on, no gain (59.49% against 59.85% for the constant rate,
    #: one seed); where nothing is held out (``val_size`` 0) and the final network is the one
    #: kept, it took six seeds from a mean of 59.86% to 60.32% (benches/RESULTS.md).
    polish_schedule: str | None = None
    #: Whether the polish steps see augmented images (None = the resumed run's, else the run's
    #: ``augment``).  False: with ``augment``, the polish trains on the images as stored, in
    #: the same order, i.e. on the distribution the network is tested on.  Why: the crops shift
    #: every training image by up to ``crop_padding`` pixels, which no test image is, and the
    #: polish decides each gate by the hard network's loss on what it sees.  Measured on
    #: CIFAR-10 S (input-wise, 90 epochs with crops padded by 2, a 4-epoch annealed polish):
    #: on two seeds' validation no difference beyond the polish's own evaluation noise (60.37%,
    #: or 59.89% with the first polish batch augmented, against 60.20%), and on six seeds
    #: trained on every image hard test 60.48% against 60.32%, higher on each (RESULTS.md).
    polish_augment: bool | None = None
    #: A teacher file (``difflogic teacher``): its class scores supervise the network's through
    #: :func:`distillation_loss` with weight ``kd_weight`` at temperature ``kd_temperature``
    #: (None = :data:`KD_WEIGHT`, :data:`KD_TEMPERATURE`).  None = plain cross-entropy.
    teacher: str | None = None
    kd_weight: float | None = None
    kd_temperature: float | None = None
    #: Where to train: "cpu" (native C++ kernels) or "cuda" / "cuda:N" (CUDA kernels through
    #: CuPy).  Not fixed on resume: a run may move between devices.  Resume is bit-exact on
    #: the CPU at the same thread count; on CUDA it matches to rounding only, because the fused
    #: tree-conv backward sums with float atomics (two GPU runs already differ in the last
    #: bits; ``torch.use_deterministic_algorithms(True)`` switches it to an atomic-free
    #: variant, see csrc/cuda/tree_conv.cu, but this loop's cross-entropy (NLLLoss) has no
    #: deterministic CUDA version in PyTorch, so the flag is not set here).
    device: str | None = None    # None = cpu (or the resumed run's)
    eval_batch_size: int = 1000
    test: bool = True            # evaluate the best model on the test split at the end
    progress: str = "auto"       # auto | bar | lines | none
    stop_after: int | None = None  # stop (as if interrupted) after this many steps: testing aid
    model_config: dict | None = field(default=None, repr=False)  # explicit config (API use)


# --------------------------------------------------------------------------- helpers
def keep_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed blocks of up to 32 MiB for reuse (a no-op elsewhere).

    Why: every training step allocates the same multi-megabyte activations and gradients
    (a 40,960-gate dense layer's gradient at batch 64 is 10 MiB).  By default glibc serves such
    blocks with fresh mmap()s and unmaps them on free, so each step page-faults through ~50 MiB
    of zero-filled memory: measured 15-20% of a `fmnist-small` step on 2 cores.  Raising the
    mmap and trim thresholds makes freed blocks come back from the heap instead.  Process-wide,
    so only the `difflogic train` command calls it (it owns the process), not :func:`train`;
    returns True if it applied."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl)
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
    return bool(mallopt(m_mmap_threshold, 32 << 20)) and bool(mallopt(m_trim_threshold, 1 << 30))


def make_optimizer(model: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW, fused (one kernel over all parameters) where this torch supports it.

    Why fused: a LogicTreeNet has few, large logit tensors, and the default multi-tensor AdamW
    makes a dozen full passes over them per step; the fused CPU kernel makes one.  Measured on
    the `fmnist-small` logits (1.07M floats, one core): 8.1 ms -> 0.5 ms per step, a sixth of a
    whole training step.  Same update rule; the state dict is the same format either way, so
    checkpoints move freely between the two."""
    params = list(model.parameters())
    try:
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, TypeError, ValueError):  # old torch, or a device/dtype without it
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


def distillation_loss(logits: torch.Tensor, labels: torch.Tensor, teacher: torch.Tensor,
                      weight: float, temperature: float,
                      label_smoothing: float = 0.0) -> torch.Tensor:
    """``(1 - weight) CE(logits, labels) + weight T^2 KL(softmax(teacher / T) || softmax(logits / T))``.

    Hinton et al.'s knowledge distillation: the teacher's whole score distribution (which wrong
    classes it finds plausible) is a richer target than the label; T^2 keeps the soft term's
    gradient on the scale of the hard one as T changes.  ``logits`` are the GroupSum class
    scores (already divided by the GroupSum tau).  ``label_smoothing`` smooths the label term
    (CE) only."""
    hard = torch.nn.functional.cross_entropy(logits, labels, label_smoothing=label_smoothing)
    if weight == 0:
        return hard
    t = float(temperature)
    soft = torch.nn.functional.kl_div(torch.log_softmax(logits / t, -1),
                                      torch.log_softmax(teacher.to(logits.dtype) / t, -1),
                                      reduction="batchmean", log_target=True) * (t * t)
    return (1.0 - weight) * hard + weight * soft


def resolve_model_config(model: str | None, model_config: dict | None = None) -> dict:
    """A preset / LogicTreeNet name, or a path to a JSON config file."""
    if model_config is not None:
        return json.loads(json.dumps(model_config))
    if not model:
        raise ValueError("--model is required (a name from `difflogic info --models` or a "
                         "JSON config file)")
    if model.endswith(".json") or os.path.sep in model:
        p = Path(model)
        if not p.is_file():
            raise ValueError(f"--model {model}: no such JSON config file")
        try:
            cfg = json.loads(p.read_text())
        except ValueError as e:
            raise ValueError(f"--model {model}: invalid JSON ({e})") from None
        if not isinstance(cfg, dict):
            raise ValueError(f"--model {model}: expected a JSON object (a model config)")
        cfg.setdefault("name", p.stem)
        return cfg
    return get_model_config(model)


def lr_at(step: int, total: int, base: float, schedule: str) -> float:
    """Learning rate for the update that makes step ``step + 1`` (0-based ``step``)."""
    if schedule == "constant":
        return base
    if schedule == "cosine":
        return base * 0.5 * (1.0 + math.cos(math.pi * min(step, total) / max(1, total)))
    raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")


def logit_scale_at(step: int, total: int, sharpen: float) -> float:
    """Factor on the gate logits for the forward of step ``step + 1`` (0-based ``step``):
    geometric from 1 (step 0) to ``sharpen`` (step ``total``), constant after (the polish)."""
    if sharpen == 1:
        return 1.0
    return float(sharpen) ** (min(max(step, 0), total) / max(1, total))


@torch.no_grad()
def accuracy(model: LogicNet, images: np.ndarray, labels: np.ndarray, *, hard: bool,
             batch_size: int = 1000, indices=None) -> float:
    """Accuracy of the hard (eval mode, integer kernels) or relaxed (train mode) network on
    uint8 images scaled to [0, 1] exactly as the training loader does.  Restores the mode."""
    was_training = model.training
    model.train(not hard)
    # "relaxed" means the softmax mixture, also for a model training straight-through (from a
    # point of the run, or always by its config) or with Gumbel noise: switch all of that off,
    # then restore exactly what each layer had
    saved = [(m, m.straight_through, m.always_straight_through, m.gumbel)
             for m in model.modules() if isinstance(m, GateLayer)]
    for m, *_ in saved:
        m.straight_through, m.always_straight_through, m.gumbel = False, False, 0.0
    idx = np.arange(len(images)) if indices is None else np.asarray(indices)
    device = next(model.parameters()).device
    correct = 0
    try:
        for i in range(0, len(idx), batch_size):
            sel = idx[i:i + batch_size]
            x = data.to_unit_float(images[sel], device)
            y = torch.from_numpy(labels[sel]).to(device)
            correct += int((model(x).argmax(-1) == y).sum())
    finally:
        model.train(was_training)
        for m, ste, always, noise in saved:
            m.straight_through, m.always_straight_through, m.gumbel = ste, always, noise
    return correct / max(1, len(idx))


def _atomic_text(path: Path, text: str) -> None:
    ckpt.atomic_write(path, lambda fh: fh.write(text.encode()))


def write_curves(path: Path, records: list[dict], title: str = "") -> None:
    """Loss and accuracy curves from metrics records into a PNG (atomic write)."""
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

    def write(fh):
        fig.savefig(fh, format="png", dpi=100)
    try:
        ckpt.atomic_write(path, write)
    finally:
        plt.close(fig)


class _StopFlag:
    """SIGINT/SIGTERM set a flag; the loop finishes the current step, saves last.pt, stops."""

    def __init__(self):
        self.hit = False
        self._old = {}

    def __enter__(self):
        if hasattr(signal, "SIGTERM") and _main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handler)
        return self

    def _handler(self, signum, frame):
        if self.hit:  # second signal: give up immediately
            raise KeyboardInterrupt
        self.hit = True

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
        return False


def _main_thread() -> bool:
    import threading
    return threading.current_thread() is threading.main_thread()


def _read_metrics(path: Path, upto_step: int) -> list[dict]:
    records = []
    if path.exists():
        for line in path.read_text().splitlines():
            line = line.strip()
            if not line:
                continue
            try:
                r = json.loads(line)
            except ValueError:
                continue  # a line cut by a crash
            if isinstance(r, dict) and r.get("step", 1 << 62) <= upto_step:
                records.append(r)
    return records


# --------------------------------------------------------------------------- main entry
#: The files a run writes to its folder (the module docstring says what each holds).
RUN_FILES = ("last.pt", "model.pt", "metrics.jsonl", "curves.png", "summary.json")


def _earlier_run_files(out: Path, resumed_dir: Path | None, overwrite: bool) -> list[Path]:
    """Another run's files in ``out``, which this run would replace (none when a run is
    resumed in its own folder).  Re-running a training command after a kill, instead of
    resuming it, would otherwise start over there and replace an hour's checkpoints and
    metrics without a word: refused unless ``overwrite``, naming the ways on."""
    if resumed_dir is not None and out.resolve() == resumed_dir.resolve():
        return []
    held = [out / name for name in RUN_FILES if (out / name).exists()]
    if held and not overwrite:
        raise ValueError(f"{out} already holds a training run ({', '.join(p.name for p in held)}); "
                         f"continue it with `difflogic train --resume {out}`, or start over "
                         "with --overwrite (removes its files), or choose another --out")
    return held


def train(opts: TrainOptions) -> dict:
    """Train (or resume) a run; returns the summary dict also written to summary.json."""

    # ---- resume: take the saved options, allow only the "how long / how" ones to change
    resume_ck, resumed_dir = None, None
    if opts.resume:
        rpath = Path(opts.resume)
        last = rpath / "last.pt" if rpath.is_dir() or not rpath.suffix else rpath
        resume_ck = ckpt.load_checkpoint(last)
        if resume_ck.get("kind") != "training":
            raise ckpt.CheckpointError(f"{last}: a model checkpoint, not a training state "
                                       "(resume from RUN/last.pt)")
        saved = json.loads(resume_ck["train_options"])
        saved.setdefault("gumbel", 0.0)  # runs saved before the options existed had none
        saved.setdefault("label_smoothing", 0.0)
        saved.setdefault("ema", 0.0)
        saved.setdefault("sharpen", 1.0)
        for key in _FIXED_ON_RESUME:
            mine = getattr(opts, key)
            if mine is not None and key != "augment" and mine != saved.get(key) or \
                    key == "augment" and mine and not saved.get("augment"):
                if key == "model" and resume_ck["config"].get("name") == mine:
                    continue
                raise ValueError(f"--{key.replace('_', '-')} {mine} differs from the run being "
                                 f"resumed ({saved.get(key)}); a resumed run keeps its settings")
            setattr(opts, key, saved.get(key))
        if opts.steps is None and opts.epochs is None:
            opts.steps, opts.epochs = saved.get("steps"), saved.get("epochs")
        # "how long / where" options: the saved value unless this call changes it
        for key in ("eval_every", "threads", "polish_steps", "polish_lr", "polish_schedule",
                    "polish_augment", "device", "data_dir"):
            if getattr(opts, key) is None:
                setattr(opts, key, saved.get(key))
        resumed_dir = last.parent
        if opts.out is None:
            opts.out = str(resumed_dir)
        opts.model_config = None

    opts.seed = 0 if opts.seed is None else opts.seed
    if not opts.dataset:
        raise ValueError("--dataset is required (one of " + ", ".join(data.dataset_names()) + ")")
    opts.dataset = data.canonical_name(opts.dataset)
    if not opts.out:
        raise ValueError("--out RUN is required (the folder for model.pt, metrics, curves)")
    earlier_run = _earlier_run_files(Path(opts.out), resumed_dir, opts.overwrite)
    if opts.progress not in ("auto", "bar", "lines", "none"):
        raise ValueError(f"progress must be auto, bar, lines or none, got {opts.progress!r}")
    for name in ("steps", "batch_size", "eval_every", "threads", "eval_batch_size", "stop_after"):
        check_positive(f"--{name.replace('_', '-')}", getattr(opts, name), int)
    check_positive("--val-size", opts.val_size, int, allow_zero=True)  # 0: no validation
    check_positive("--epochs", opts.epochs, float)
    check_positive("--lr", opts.lr, float)
    check_positive("--weight-decay", opts.weight_decay, float, allow_zero=True)
    check_positive("--gumbel", opts.gumbel, float, allow_zero=True)
    check_positive("--polish-steps", opts.polish_steps, int, allow_zero=True)
    check_positive("--polish-lr", opts.polish_lr, float)
    _checks.positive_int("--seed", opts.seed, minimum=0)
    if opts.steps is not None and opts.epochs is not None:
        raise ValueError("give either --epochs or --steps, not both")
    if opts.threads:
        torch.set_num_threads(opts.threads)
    opts.device = opts.device or "cpu"
    device = resolve_device(opts.device)

    # ---- model config and hyper-parameters (config's train defaults unless overridden)
    if resume_ck is not None:
        config = resume_ck["config"]
    else:
        config = resolve_model_config(opts.model, opts.model_config)
    tdef = config.get("train", {})
    if not isinstance(tdef, dict):
        raise ValueError(f"the model config's 'train' entry must be a mapping of training "
                         f"defaults, got {type(tdef).__name__}")

    def cfg(key, kind, default=None, allow_zero=False):
        """The config's train.<key>, with the check its command-line twin got above."""
        v = tdef.get(key, default)
        if kind is float and isinstance(v, int) and not isinstance(v, bool):
            v = float(v)
        return check_positive(f"the model config's train.{key}", v, kind, allow_zero)

    if opts.batch_size is None:
        opts.batch_size = cfg("batch_size", int, 128)
    if opts.lr is None:
        opts.lr = cfg("lr", float, 0.01)
    if opts.weight_decay is None:
        opts.weight_decay = cfg("weight_decay", float, 0.0, allow_zero=True)
    bs, lr, wd = opts.batch_size, opts.lr, opts.weight_decay
    opts.polish_steps = opts.polish_steps or 0
    polish_lr = lr / 10 if opts.polish_lr is None else opts.polish_lr
    opts.schedule = opts.schedule or tdef.get("schedule", "constant")
    opts.polish_schedule = opts.polish_schedule or "constant"
    for flag, value in (("--schedule (model config: train.schedule)", opts.schedule),
                        ("--polish-schedule", opts.polish_schedule)):
        if value not in SCHEDULES:
            raise ValueError(f"{flag} must be one of {SCHEDULES}, got {value!r}")
    if opts.steps is None and opts.epochs is None:  # the config's training length, else 1 epoch
        opts.steps, opts.epochs = cfg("steps", int), cfg("epochs", float)
        if opts.steps is not None and opts.epochs is not None:
            raise ValueError("the model config's train entry gives both steps and epochs; keep one")
    if opts.eval_every is None:
        opts.eval_every = cfg("eval_every", int)
    if opts.val_size is None:
        opts.val_size = cfg("val_size", int, allow_zero=True)
    if opts.ste_from is None:
        opts.ste_from = tdef.get("ste_from")
    if opts.ste_from is not None and not _checks.is_fraction(opts.ste_from):
        raise ValueError(f"--ste-from (model config: train.ste_from) must be a fraction of the run "
                         f"in [0, 1], got {opts.ste_from!r}")
    if opts.gumbel is None:
        opts.gumbel = cfg("gumbel", float, 0.0, allow_zero=True)
    def below_one(key, what="in [0, 1)"):
        """--<key>, else the config's train.<key>, else 0 (off): checked to lie in [0, 1)."""
        v = tdef.get(key, 0.0) if getattr(opts, key) is None else getattr(opts, key)
        if not _checks.is_fraction(v) or v == 1:
            raise ValueError(f"--{key.replace('_', '-')} (model config: train.{key}) must be "
                             f"{what}, got {v!r}")
        return v

    if opts.sharpen is None:
        opts.sharpen = cfg("sharpen", float, 1.0)
    check_positive("--sharpen", opts.sharpen, float)
    if not opts.sharpen >= 1.0:
        raise ValueError(f"--sharpen (model config: train.sharpen) is the final factor on the "
                         f"gate logits, >= 1 (1 = off), got {opts.sharpen!r}")
    opts.label_smoothing = below_one("label_smoothing")
    opts.ema = below_one("ema", "a decay in [0, 1) (0 = off)")
    if opts.teacher is None:
        if opts.kd_weight is not None or opts.kd_temperature is not None:
            raise ValueError("--kd-weight and --kd-temperature only apply with --teacher FILE")
    else:
        opts.kd_weight = KD_WEIGHT if opts.kd_weight is None else opts.kd_weight
        opts.kd_temperature = KD_TEMPERATURE if opts.kd_temperature is None else opts.kd_temperature
        if not _checks.is_fraction(opts.kd_weight):
            raise ValueError(f"--kd-weight must be in [0, 1] (the share of the teacher's term in "
                             f"the loss), got {opts.kd_weight!r}")
        check_positive("--kd-temperature", opts.kd_temperature, float)
    if opts.model is None:
        opts.model = config.get("name")

    # ---- data
    info = data.DATASET_INFO[opts.dataset]
    if opts.crop_padding is not None:
        if not opts.augment:
            raise ValueError(f"--crop-padding {opts.crop_padding} only applies with --augment; "
                             "add --augment or drop --crop-padding")
        check_positive("--crop-padding", opts.crop_padding, allow_zero=True)
    else:
        opts.crop_padding = info.crop_padding if opts.augment else None
    if opts.polish_augment is None:
        opts.polish_augment = bool(opts.augment)
    elif opts.polish_augment and not opts.augment:
        raise ValueError("--polish-augment only applies with --augment (the run's own "
                         "augmentation); add --augment or drop --polish-augment")
    if tuple(config["input_shape"]) != tuple(info.shape):
        raise ValueError(f"model {config.get('name')!r} expects inputs of shape "
                         f"{tuple(config['input_shape'])}, but {info.title} images are {info.shape}")
    t_load = time.perf_counter()
    x_train, y_train = data.load_dataset(opts.dataset, opts.data_dir, "train")
    n = len(y_train)
    if opts.val_size is None:
        opts.val_size = info.val_size_for(n)
    train_idx, val_idx = data.train_val_split(n, opts.val_size, seed=data.SPLIT_SEED)
    if resume_ck is None:  # quantile input thresholds: from the training split only
        config = resolve_quantile_thresholds(config, x_train, train_idx)
    soft, teacher_note = None, ""
    if opts.teacher is not None:
        soft, tmeta = teacher_mod.load_teacher(opts.teacher, dataset=opts.dataset, labels=y_train,
                                               val_size=opts.val_size)
        if soft.shape[2] != config["num_classes"]:
            raise teacher_mod.TeacherError(
                f"--teacher {opts.teacher}: {soft.shape[2]} class scores, but model "
                f"{config.get('name')!r} has {config['num_classes']} classes")
        teacher_digest = teacher_mod.logits_digest(soft)
        if resume_ck is not None and saved.get("teacher_sha256") != teacher_digest:
            raise ValueError(f"--teacher {opts.teacher} has changed since the run started (its "
                             "scores differ); a resumed run keeps its teacher")
        teacher_note = (f", distilled from {opts.teacher} (teacher val {100 * tmeta['val_acc']:.2f}%; "
                        f"weight {opts.kd_weight:g}, temperature {opts.kd_temperature:g})")
    loader = data.BatchLoader(x_train, y_train, bs, shuffle=True, seed=opts.seed, device=device,
                              augment=bool(opts.augment), indices=train_idx, soft_targets=soft,
                              # (unaugmented loaders keep the size default: their saved state holds it)
                              crop_padding=info.crop_padding if opts.crop_padding is None else opts.crop_padding)
    per_epoch = len(loader)
    total = _run_length(opts.steps, opts.epochs, per_epoch)
    if opts.eval_every is None:
        opts.eval_every = max(1, min(2000, total // 10))
    ste_start = None if opts.ste_from is None else int(round(opts.ste_from * total))
    end = total + opts.polish_steps  # the polish follows the run's own schedule
    polish_every = max(1, opts.polish_steps // 4)
    # hard train accuracy on a fixed, evenly spread subset of the training images
    train_probe = train_idx[np.linspace(0, len(train_idx) - 1,
                                        min(len(train_idx), len(val_idx) or TRAIN_PROBE,
                                            TRAIN_PROBE))
                            .astype(np.int64)]
    # no validation images (--val-size 0, the final run on all training images): nothing to
    # select on, so every evaluation keeps the latest network as model.pt and logs val as null
    validate = len(val_idx) > 0
    load_s = time.perf_counter() - t_load

    # ---- model + optimizer (fresh or restored)
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    for path in earlier_run:  # --overwrite: no file of the old run may outlive the start
        path.unlink()
    if resume_ck is None:
        torch.manual_seed(opts.seed)
        model = LogicNet(config)
    else:
        model = ckpt.model_from_checkpoint(resume_ck, opts.resume)
    model.to(device).train()
    set_gumbel_noise(model, opts.gumbel)
    # (index, layer, first straight-through step) of the layers a config switches on their own
    layer_ste = [(i, m, int(round(m.ste_from * total))) for i, m in enumerate(model)
                 if isinstance(m, GateLayer) and m.ste_from is not None]
    optimizer = make_optimizer(model, lr, wd)
    ema = ParamEMA(model, opts.ema) if opts.ema else None
    step, elapsed, best = 0, 0.0, {"val_hard_acc": -1.0, "step": 0}
    if resume_ck is not None:
        try:
            optimizer.load_state_dict(resume_ck["optimizer"])
            loader.load_state_dict(resume_ck["loader"])
            if ema is not None:
                ema.load_state_dict(resume_ck["ema"])
        except (KeyError, ValueError, TypeError) as e:
            raise ckpt.CheckpointError(f"{opts.resume}: cannot restore the training state ({e})") from None
        torch.set_rng_state(resume_ck["rng"]["torch"])
        if device.type == "cuda" and "cuda" in resume_ck["rng"]:  # Gumbel noise on the GPU
            torch.cuda.set_rng_state(resume_ck["rng"]["cuda"], device)
        step = int(resume_ck["step"])
        elapsed = float(resume_ck.get("elapsed", 0.0))
        best = json.loads(resume_ck["best"])
        src = Path(opts.resume)
        src = src if src.is_dir() else src.parent
        if src.resolve() != out.resolve():  # resuming into a new folder: bring the history
            for name in ("model.pt", "metrics.jsonl"):
                if (src / name).exists():
                    shutil.copy2(src / name, out / name)
    records = _read_metrics(out / "metrics.jsonl", step)
    _atomic_text(out / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    if step >= end:
        log(f"run {out} is already at step {step} >= {end}; nothing to train "
            "(raise --steps/--epochs or --polish-steps to continue)")

    meta = {"dataset": opts.dataset, "model": config.get("name"), "seed": opts.seed}
    opts_json = json.dumps({**{k: v for k, v in asdict(opts).items()
                               if k not in ("model_config", "resume", "stop_after", "overwrite")},
                            **({"teacher_sha256": teacher_digest} if soft is not None else {})},
                           sort_keys=True)

    def save_last():
        ckpt.save_checkpoint(out / "last.pt", model, kind="training", step=step, elapsed=elapsed,
                             optimizer=optimizer.state_dict(), loader=loader.state_dict(),
                             rng=_rng_state(device), best=json.dumps(best),
                             running=json.dumps(running),
                             **({"ema": ema.state_dict()} if ema is not None else {}),
                             train_options=opts_json, meta=json.dumps({**meta, "step": step}))

    threads = torch.get_num_threads()
    log(f"difflogic train: {config.get('name')} ({model.gate_count():,} gates) on {info.title} "
        f"({len(train_idx):,} train / {len(val_idx):,} val, loaded in {load_s:.1f}s), batch {bs}, "
        f"lr {lr}, wd {wd}, {opts.schedule} schedule, {total:,} steps ({total / per_epoch:.2f} "
        f"epochs), eval every {opts.eval_every}, "
        + where(device)
        + ((", augmentation (flips only)" if not opts.crop_padding else
            f", augmentation (flips, crops padded by {opts.crop_padding})") if opts.augment else "")
        + (f", straight-through gates from step {ste_start:,}" if ste_start is not None else "")
        + "".join(f", layer {i} straight-through from step {start:,}" for i, _, start in layer_ste)
        + "".join(f", layer {i} always straight-through" for i, m in enumerate(model)
                  if isinstance(m, GateLayer) and m.always_straight_through)
        + (f", Gumbel noise x{opts.gumbel:g} on the gate logits" if opts.gumbel else "")
        + (f", label smoothing {opts.label_smoothing:g}" if opts.label_smoothing else "")
        + (f", gate logits sharpened x1 -> x{opts.sharpen:g} over the run" if opts.sharpen != 1 else "")
        + (f", logit EMA (decay {opts.ema:g}) evaluated and kept at the end" if ema else "")
        + (f", then {opts.polish_steps:,} straight-through polish steps at lr {polish_lr:g}"
           + (f" ({opts.polish_schedule})" if opts.polish_schedule != "constant" else "")
           + (" without augmentation" if opts.augment and not opts.polish_augment else "")
           if opts.polish_steps else "")
        + teacher_note
        + (f", resuming at step {step}" if resume_ck is not None else ""))
    _ops_note(device)
    if resume_ck is not None:
        _note_new_length(saved, total, per_epoch, step, lr, opts.schedule,
                         ([("every layer", opts.ste_from)] if opts.ste_from is not None else [])
                         + [(f"layer {i}", m.ste_from) for i, m, _ in layer_ste])

    # ---- loop
    progress = Progress(opts.progress, end, step, every=max(1, min(opts.eval_every, end // 20 or 1)))
    # sums since the last evaluation (saved in last.pt so metrics after a resume are identical)
    running = {"loss": 0.0, "correct": 0, "seen": 0}
    if resume_ck is not None and "running" in resume_ck:
        running = json.loads(resume_ck["running"])
    win_t, win_imgs = 0.0, 0
    last_loss, last_acc, ips = float("nan"), 0.0, 0.0
    stopped = interrupted = False
    start_step = step
    try:
        with _StopFlag() as stop:
            batches = loader.steps(None)
            while step < end:
                t0 = time.perf_counter()
                polishing = step >= total
                loader.suspend_augment = polishing and not opts.polish_augment
                x, y, *taught = next(batches)  # (+ the teacher's scores when distilling)
                for g in optimizer.param_groups:
                    g["lr"] = (lr_at(step - total, opts.polish_steps, polish_lr,
                                     opts.polish_schedule) if polishing
                               else lr_at(step, total, lr, opts.schedule))
                ste = polishing or ste_start is not None and step >= ste_start
                set_straight_through(model, ste)
                set_logit_scale(model, logit_scale_at(step, total, opts.sharpen))
                late = [m for _, m, start in layer_ste if step >= start]
                for m in late:  # layers whose config switches them on their own
                    m.straight_through = True
                # what the training forward is
                kind = ("Gumbel " if opts.gumbel else "") + (
                    "straight-through polish" if polishing else
                    "straight-through" if ste else
                    f"relaxed, {len(late)} layer(s) straight-through" if late else "relaxed")
                logits = model(x)
                ls = opts.label_smoothing
                loss = distillation_loss(logits, y, taught[0], opts.kd_weight, opts.kd_temperature,
                                         ls) if taught else \
                    torch.nn.functional.cross_entropy(logits, y, label_smoothing=ls)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                step += 1
                if ema is not None and step <= total:
                    ema.update(step)
                    if step == total:  # the run's network is the average from here on
                        ema.copy_to_model()
                dt = time.perf_counter() - t0
                elapsed += dt
                win_t += dt
                win_imgs += len(y)
                last_loss = float(loss.detach())
                with torch.no_grad():
                    correct = int((logits.argmax(-1) == y).sum())
                running["loss"] += last_loss * len(y)
                running["correct"] += correct
                running["seen"] += len(y)
                last_acc = running["correct"] / running["seen"]
                ips = win_imgs / win_t if win_t > 0 else 0.0
                progress.update(step, last_loss, last_acc, ips, kind)
                if not math.isfinite(last_loss):
                    raise RuntimeError(f"training diverged at step {step} (loss {last_loss}); "
                                       "lower --lr")
                if step % opts.eval_every == 0 or step in (total, end) or \
                        step > total and (step - total) % polish_every == 0:
                    t_eval = time.perf_counter()
                    averaged = ema is not None and step < total
                    if averaged:  # evaluate (and keep) the averaged logits
                        ema.swap()
                    rec = {"step": step, "epoch": round(step / per_epoch, 4),
                           "loss": running["loss"] / running["seen"],
                           "train_acc": running["correct"] / running["seen"],
                           "train_hard_acc": accuracy(model, x_train, y_train, hard=True,
                                                      batch_size=opts.eval_batch_size,
                                                      indices=train_probe),
                           "val_acc": accuracy(model, x_train, y_train, hard=False,
                                               batch_size=opts.eval_batch_size, indices=val_idx)
                                      if validate else None,
                           "val_hard_acc": accuracy(model, x_train, y_train, hard=True,
                                                    batch_size=opts.eval_batch_size, indices=val_idx)
                                           if validate else None,
                           **({"logit_scale": logit_scale_at(step - 1, total, opts.sharpen)}
                              if opts.sharpen != 1 else {}),
                           "lr": optimizer.param_groups[0]["lr"], "elapsed_s": round(elapsed, 3),
                           "images_per_s": round(ips, 1)}
                    improved = not validate or rec["val_hard_acc"] > best["val_hard_acc"]
                    if improved:
                        best = {"val_hard_acc": rec["val_hard_acc"], "step": step}
                        ckpt.save_checkpoint(out / "model.pt", model, kind="model",
                                             meta=json.dumps({**meta, **rec}))
                    if averaged:
                        ema.swap()
                    records.append(rec)
                    with open(out / "metrics.jsonl", "a") as fh:
                        fh.write(json.dumps(rec) + "\n")
                    # the sums restart with the next step: reset before last.pt keeps them, so
                    # a run resumed from this evaluation (a kill, or a finished run polished
                    # later) logs what an uninterrupted one does
                    running = {"loss": 0.0, "correct": 0, "seen": 0}
                    save_last()
                    write_curves(out / "curves.png", records, f"{config.get('name')} on {info.title}")
                    progress.write(
                        f"[eval step {step} epoch {rec['epoch']:.2f}] loss {rec['loss']:.4f}  "
                        f"train {100 * rec['train_acc']:.2f}% ({kind}) "
                        f"{100 * rec['train_hard_acc']:.2f}% (hard)  "
                        + (f"val {100 * rec['val_acc']:.2f}% (relaxed) {100 * rec['val_hard_acc']:.2f}% "
                           f"(hard){' *best*' if improved else ''}" if validate else "no val")
                        + f"  {ips:.0f} img/s, eval {time.perf_counter() - t_eval:.1f}s")
                    win_t, win_imgs = 0.0, 0
                if stop.hit or (opts.stop_after is not None and step - start_step >= opts.stop_after):
                    save_last()
                    stopped, interrupted = True, stop.hit
                    break
    finally:
        progress.close()

    summary = {"run": str(out), "model": config.get("name"), "dataset": opts.dataset,
               "steps": step, "total_steps": end, "train_time_s": round(elapsed, 1),
               "best_step": best["step"], "best_val_hard_acc": best["val_hard_acc"],
               "gates": model.gate_count(), "threads": threads, "stopped_early": stopped,
               "interrupted": interrupted}
    if stopped:
        log(f"stopped at step {step}/{end}; continue with: difflogic train --resume {out}")
        return summary
    if opts.test and (out / "model.pt").exists():
        best_model = ckpt.load_model(out / "model.pt").to(device)
        # its relaxed figure at the factor its validation figure had (model.pt keeps raw logits)
        set_logit_scale(best_model, logit_scale_at(best["step"] - 1, total, opts.sharpen))
        x_test, y_test = data.load_dataset(opts.dataset, opts.data_dir, "test")
        t_test = time.perf_counter()
        summary["test_hard_acc"] = accuracy(best_model, x_test, y_test, hard=True,
                                            batch_size=opts.eval_batch_size)
        summary["test_acc"] = accuracy(best_model, x_test, y_test, hard=False,
                                       batch_size=opts.eval_batch_size)
        summary["test_eval_s"] = round(time.perf_counter() - t_test, 2)
        which = (f"best model (step {best['step']}, val {100 * best['val_hard_acc']:.2f}% hard)"
                 if validate else f"final model (step {best['step']}, no validation)")
        log(f"{which}: test "
            f"accuracy {100 * summary['test_hard_acc']:.2f}% hard, {100 * summary['test_acc']:.2f}% "
            f"relaxed ({info.title}, {len(y_test):,} images)")
    _atomic_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    log(f"trained {step:,} steps in {elapsed:.1f}s; wrote {out}/model.pt, last.pt, "
        "metrics.jsonl, curves.png, summary.json")
    return summary


class ParamEMA:
    """Exponential moving average of a model's parameters (the gate logits), kept beside them.

    ``update(step)`` moves each average towards the live tensor by ``1 - d`` with
    ``d = min(decay, (1 + step) / (10 + step))``: the warm-up lets the average follow the fast
    early training instead of dragging the random initial logits along for ~1/(1-decay) steps
    (the schedule of TensorFlow's ExponentialMovingAverage with ``num_updates``).  It depends on
    the step only, so a resumed run averages exactly as an uninterrupted one.  ``swap()``
    exchanges the live and averaged tensors in place (no copy, the optimizer keeps its
    parameters); call it twice to undo."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = float(decay)
        self.params = dict(model.named_parameters())
        self.shadow = {k: p.detach().clone() for k, p in self.params.items()}

    @torch.no_grad()
    def update(self, step: int) -> None:
        d = min(self.decay, (1 + step) / (10 + step))
        for k, p in self.params.items():
            self.shadow[k].lerp_(p.detach(), 1.0 - d)

    @torch.no_grad()
    def swap(self) -> None:
        for k, p in self.params.items():
            p.data, self.shadow[k] = self.shadow[k], p.data

    @torch.no_grad()
    def copy_to_model(self) -> None:
        for k, p in self.params.items():
            p.copy_(self.shadow[k])

    def state_dict(self) -> dict:
        return {k: v.detach().cpu().clone() for k, v in self.shadow.items()}

    def load_state_dict(self, state: dict) -> None:
        if not isinstance(state, dict) or set(state) != set(self.params):
            held = sorted(state) if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"the saved logit average holds {held}, the model's parameters "
                             f"are {sorted(self.params)}")
        for k, p in self.params.items():
            t = state[k]
            if not isinstance(t, torch.Tensor) or t.shape != p.shape:
                raise ValueError(f"the saved logit average of {k} has shape "
                                 f"{tuple(getattr(t, 'shape', ()))}, the model's {tuple(p.shape)}")
            self.shadow[k] = t.to(device=p.device, dtype=p.dtype).clone()


def _run_length(steps: int | None, epochs: float | None, per_epoch: int) -> int:
    """Optimizer steps of a run given ``--steps`` or else ``--epochs`` (default 1 epoch)."""
    if steps is not None:
        return int(steps)
    return max(1, int(round((epochs if epochs is not None else 1.0) * per_epoch)))


def _note_new_length(saved: dict, total: int, per_epoch: int, step: int, lr: float,
                     schedule: str, ste_fracs: list[tuple[str, float]]) -> None:
    """Say what a resume with a different ``--steps``/``--epochs`` does to the trajectory.

    Extending a run is allowed (it is how a finished run is trained on), but a cosine schedule
    and the ``ste_from`` switch points are fractions of the run length: the learning rate at
    the resume step jumps to where the longer schedule has it, a straight-through start moves
    (whatever the schedule), and the result equals no uninterrupted run.  A constant schedule
    without fractions continues exactly.  ``ste_fracs``: (what, fraction) of each start."""
    old = _run_length(saved.get("steps"), saved.get("epochs"), per_epoch)
    if old == total:
        return
    changes = []
    if schedule != "constant":
        before, after = (lr_at(step, n, lr, schedule) for n in (old, total))
        changes.append(f"the {schedule} learning rate at step {step:,} moves from {before:.3g} "
                       f"to {after:.3g}")
    for what, frac in ste_fracs:
        before, after = (int(round(frac * n)) for n in (old, total))
        if before != after:
            now = (", so relaxed again until then" if before <= step < after else
                   ", i.e. from this resume on" if after <= step < before else "")
            changes.append(f"{what} straight-through from step {after:,} instead of "
                           f"{before:,}{now}")
    log(f"run length changed from {old:,} to {total:,} steps" + (": " if changes else "")
        + "; ".join(changes))


def _rng_state(device: torch.device) -> dict:
    """The RNG streams a training step draws from (Gumbel noise; on the GPU, the GPU's)."""
    rng = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state(device)
    return rng


def _ops_note(device: torch.device) -> None:
    """Tell the user when training runs on the slow PyTorch reference kernels."""
    if device.type == "cuda":
        from . import _ops
        why = _ops.cuda_unavailable_reason()
        if why is not None:  # missing CuPy / NVRTC / driver: say which
            log(f"note: the CUDA kernels (difflogic._cuda) are not available ({why}); training "
                "uses the slow PyTorch reference kernels on the GPU (install CuPy: "
                "pip install cupy-cuda12x or cupy-cuda13x)")
        return
    try:
        from . import _ops
        native = bool(_ops.native_available())
    except Exception:  # noqa: BLE001 - a half-built tree: same advice
        native = False
    if not native:
        log("note: the native C++ kernels (difflogic._C) are not available; training uses the "
            "slow PyTorch reference kernels (build with `pip install .`)")


def options_from_args(args) -> TrainOptions:
    """Map an argparse namespace to TrainOptions (unknown attributes are ignored)."""
    names = {f.name for f in fields(TrainOptions)}
    return TrainOptions(**{k: v for k, v in vars(args).items() if k in names})
