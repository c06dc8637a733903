"""The training loop behind ``difflogic train``: AdamW on the relaxed network, model selection
on the *hard* (discretised) validation accuracy, and exact resume.

Run folder (``plan.out``)::

    model.pt       best hard validation accuracy so far (what eval/info/export read); with
                   ``val_size=0`` (train on every training image) the latest network
    last.pt        latest state: model, optimizer, loader cursor, RNG, metrics so far
    metrics.jsonl  one JSON object per evaluation (step, epoch, loss, accuracies, lr, time,
                   ``images_per_s``: training images per second since the previous evaluation)
    curves.png     loss and accuracy curves
    summary.json   final numbers (best step, hard/relaxed test accuracy, gate count, time)

Why resume is bit-exact: nothing in a step depends on history outside ``last.pt``.  The
batches are a pure function of (seed, epoch, batch) (:class:`difflogic.data.BatchLoader`),
the learning rate a pure function of the step, evaluation consumes no randomness, and the
parameters, AdamW moments and torch RNG are restored byte for byte.  (On one CPU model,
with any thread count: the kernels reduce in an order that does not depend on the threads.
On a GPU, resume matches to rounding only: the CUDA tree-conv backward sums with float
atomics.)

A run has two parts: ``total`` steps of the schedule, then ``polish_steps`` steps in which
every gate layer trains straight-through at ``polish_lr`` (each evaluated network competes
for ``model.pt``).  A recipe's ``then`` stages follow as resumes of the same run.
"""
from __future__ import annotations

import dataclasses
import json
import math
import shutil
import time

import numpy as np
import torch

from .. import checkpoint as ckpt, data
from ..evaluate import count_correct
from ..layers import GateLayer, set_gumbel_noise, set_straight_through
from ..models import LogicNet, resolve_quantile_thresholds
from ..platform import cpu_count
from . import distributed, history, teacher as teacher_mod
from .options import TrainOptions
from .plan import RunPlan, make_plan, own_data_options
from .runtime import Progress, StopSignal, log, where
from .threads import ThreadTuner
from .schedule import lr_at, make_optimizer, note_new_length, run_length
from .losses import training_loss

#: Training images whose hard accuracy is measured at each evaluation (a fixed subset: the
#: full training set would cost more than the training steps between evaluations).
TRAIN_PROBE = 2000


@dataclasses.dataclass
class Run:
    """A running training: what :func:`setup` builds and every step advances."""

    plan: RunPlan
    world: distributed.World
    device: torch.device
    model: LogicNet
    net: torch.nn.Module               # what the step calls: the model, or DDP around it
    optimizer: torch.optim.Optimizer
    loader: data.BatchLoader
    x_train: np.ndarray
    y_train: np.ndarray
    val_idx: np.ndarray
    probe_idx: np.ndarray              # the fixed subset for the hard train accuracy
    total: int                         # steps of the schedule
    per_epoch: int
    eval_every: int
    saved_options: dict                # what last.pt keeps for a resume
    title: str                         # "<model> on <dataset>", for the curves
    ste_start: int | None = None       # step from which every layer trains straight-through
    layer_ste: list = dataclasses.field(default_factory=list)  # (index, layer, first step)
    tuner: ThreadTuner | None = None   # picks the step's CPU threads (--threads not given)
    step: int = 0
    elapsed: float = 0.0
    best: dict = dataclasses.field(default_factory=lambda: {"val_hard_acc": -1.0, "step": 0})
    running: dict = dataclasses.field(default_factory=lambda: {"loss": 0.0, "correct": 0, "seen": 0})
    window: list = dataclasses.field(default_factory=lambda: [0.0, 0])  # seconds, images since eval
    records: list = dataclasses.field(default_factory=list)
    dataset: data.Dataset | None = None  # what x_train came from (its test split, its title)

    @property
    def end(self) -> int:
        return self.total + self.plan.polish_steps

    @property
    def validate(self) -> bool:
        """False with ``val_size=0``: nothing to select on, model.pt is the latest network."""
        return len(self.val_idx) > 0


def train(opts: TrainOptions | RunPlan) -> dict:
    """Train (or resume) a run, then its later stages; returns the summary of the last one
    (also written to ``summary.json``)."""
    plan = opts if isinstance(opts, RunPlan) else make_plan(opts)
    # ---- setup: data, model, optimizer; a resumed run's state; say what will run
    run = setup(plan)
    if run.world.is_main:
        log(describe(run))
    stopped = interrupted = False
    progress = Progress(plan.progress if run.world.is_main else "none", run.end, run.step,
                        every=max(1, min(run.eval_every, run.end // 20 or 1)))
    start = run.step
    try:
        with StopSignal() as stop:
            batches = run.loader.steps(None)
            while run.step < run.end:
                # ---- step: one optimizer step on the next batch
                if run.tuner is not None:
                    run.tuner.before_step()
                t0 = time.perf_counter()
                loss, n, kind = train_step(run, batches)
                dt = time.perf_counter() - t0
                if run.tuner is not None:
                    run.tuner.after_step(dt, n)
                run.elapsed += dt
                run.window[0] += dt
                run.window[1] += n
                acc = run.running["correct"] / run.running["seen"]
                progress.update(run.step, loss, acc, dt, n, kind)
                if not math.isfinite(loss):
                    raise RuntimeError(f"training diverged at step {run.step} (loss {loss}); "
                                       "lower --lr")
                # ---- evaluate and checkpoint: model.pt when validation improves, last.pt always
                if evaluation_due(run):
                    t_eval = time.perf_counter()
                    rec, improved = evaluate_and_keep(run)
                    progress.write(eval_line(run, rec, kind, improved, time.perf_counter() - t_eval))
                # ---- stop on Ctrl-C / SIGTERM (or --stop-after), every rank at the same step
                asked = plan.stop_after is not None and run.step - start >= plan.stop_after
                if stop_agreed(run, stop.hit, asked):
                    run.running = dict(zip(run.running, run.world.sum(list(run.running.values()))))
                    save_last(run)
                    stopped, interrupted = True, not asked
                    break
    finally:
        progress.close()
    # ---- finish: test the kept network, write summary.json
    summary = finish(run, stopped, interrupted)
    # ---- a recipe's later stages: resumes of this run with the stage's options
    if not stopped and plan.then:
        stage, *rest = plan.then
        if run.world.is_main:
            log(f"next stage of the recipe: {json.dumps(stage)}")
        summary = train(TrainOptions(resume=str(plan.out), progress=plan.progress,
                                     then=rest, **stage))
    return summary


# --------------------------------------------------------------------------- setup
def setup(plan: RunPlan) -> Run:
    """Join the job's ranks, load the data, build (or restore) the model, optimizer, loader."""
    world, device = _join_world(plan)
    dataset = data.open_dataset(plan.dataset, plan.data_dir, **own_data_options(plan))
    x_train, y_train = dataset.load("train")
    info = dataset.info
    val_size = info.val_size_for(len(y_train)) if plan.val_size is None else plan.val_size
    train_idx, val_idx = data.train_val_split(len(y_train), val_size, seed=data.SPLIT_SEED)
    config = plan.model_config
    if plan.checkpoint is None:  # quantile input thresholds: from the training split only
        config = resolve_quantile_thresholds(config, x_train, train_idx)
    soft, teacher_digest = _teacher_scores(plan, y_train, val_size, config)
    loader = data.BatchLoader(x_train, y_train, plan.batch_size, shuffle=True, seed=plan.seed,
                              device=device, augment=plan.augment, indices=train_idx,
                              soft_targets=soft,
                              crop_padding=info.crop_padding if plan.crop_padding is None
                              else plan.crop_padding)
    loader.shard = (world.rank, world.size)
    total = run_length(plan.steps, plan.epochs, len(loader))
    eval_every = plan.eval_every or max(1, min(2000, total // 10))
    saved = plan.saved_options(val_size=val_size, eval_every=eval_every,
                               **({"teacher_sha256": teacher_digest} if teacher_digest else {}))
    distributed.check_same(world, "settings", saved)
    distributed.check_same(world, "data", [len(y_train), teacher_mod.labels_digest(y_train)])
    model = _build_model(plan, config, device, world)
    run = Run(plan, world, device, model, distributed.wrap(model, world, device),
              make_optimizer(model, plan.lr, plan.weight_decay), loader, x_train, y_train,
              val_idx, _probe(train_idx, val_idx), total, len(loader), eval_every, saved,
              f"{config.get('name')} on {info.title}",
              ste_start=None if plan.ste_from is None else int(round(plan.ste_from * total)),
              layer_ste=[(i, m, int(round(m.ste_from * total))) for i, m in enumerate(model)
                         if isinstance(m, GateLayer) and m.ste_from is not None],
              dataset=dataset)
    if plan.threads is None and device.type == "cpu" and not world.active \
            and torch.get_num_threads() > 1:
        run.tuner = ThreadTuner(torch.get_num_threads(), log=log)
    if plan.checkpoint is not None:
        _restore(run, plan.checkpoint)
    run.records = history.read_metrics(plan.out / "metrics.jsonl", run.step)
    if world.is_main:
        history.write_metrics(plan.out / "metrics.jsonl", run.records)
    if run.step >= run.end:
        log(f"run {plan.out} is already at step {run.step} >= {run.end}; nothing to train "
            "(raise --steps/--epochs or --polish-steps to continue)")
    return run


def _join_world(plan: RunPlan) -> tuple[distributed.World, torch.device]:
    """This process's rank and device; its CPU threads (given, or the machine's cores shared
    among the ranks on it)."""
    world = distributed.env_world()
    device = distributed.start(world, torch.device(plan.device))
    threads = plan.threads
    if threads is None and world.active:
        threads = max(1, cpu_count() // world.local_size)
    if threads:
        torch.set_num_threads(threads)
    if world.active:
        log(f"rank {world.rank} of {world.size} (local {world.local_rank} of "
            f"{world.local_size}) on {device}, {torch.get_num_threads()} CPU thread(s)")
    return world, device


def _probe(train_idx: np.ndarray, val_idx: np.ndarray) -> np.ndarray:
    """The fixed, evenly spread training images whose hard accuracy each evaluation measures."""
    n = min(len(train_idx), len(val_idx) or TRAIN_PROBE, TRAIN_PROBE)
    return train_idx[np.linspace(0, len(train_idx) - 1, n).astype(np.int64)]


def _teacher_scores(plan: RunPlan, y_train, val_size: int, config: dict):
    """(scores (N, 2, classes), digest) of ``--teacher``, or (None, None)."""
    if plan.teacher is None:
        return None, None
    soft, _ = teacher_mod.load_teacher(plan.teacher, dataset=plan.dataset, labels=y_train,
                                       val_size=val_size)
    if soft.shape[2] != config["num_classes"]:
        raise teacher_mod.TeacherError(
            f"--teacher {plan.teacher}: {soft.shape[2]} class scores, but model "
            f"{config.get('name')!r} has {config['num_classes']} classes")
    digest = teacher_mod.logits_digest(soft)
    if plan.saved is not None and plan.saved.get("teacher_sha256") != digest:
        raise ValueError(f"--teacher {plan.teacher} has changed since the run started (its "
                         "scores differ); a resumed run keeps its teacher")
    return soft, digest


def _build_model(plan: RunPlan, config: dict, device: torch.device,
                 world: distributed.World) -> LogicNet:
    """A fresh network from the seed, or the resumed one; the run folder made ready (by
    rank 0, the only rank that writes)."""
    if world.is_main:
        plan.out.mkdir(parents=True, exist_ok=True)
        for path in plan.earlier_run:  # --overwrite: no file of the old run may outlive the start
            path.unlink()
    world.barrier()
    if plan.checkpoint is None:
        torch.manual_seed(plan.seed)
        model = LogicNet(config)
    else:
        model = ckpt.model_from_checkpoint(plan.checkpoint, plan.resume)
    model.to(device).train()
    set_gumbel_noise(model, plan.gumbel)
    return model


def _restore(run: Run, ck: dict) -> None:
    """Optimizer, loader, RNG, step and best so far of the resumed run; its history is
    copied along when it resumes into another folder."""
    plan = run.plan
    try:
        run.optimizer.load_state_dict(ck["optimizer"])
        run.loader.load_state_dict(ck["loader"])
    except (KeyError, ValueError, TypeError) as e:
        raise ckpt.CheckpointError(f"{plan.resume}: cannot restore the training state ({e})") from None
    torch.set_rng_state(ck["rng"]["torch"])
    if run.device.type == "cuda" and "cuda" in ck["rng"]:  # Gumbel noise on the GPU
        torch.cuda.set_rng_state(ck["rng"]["cuda"], run.device)
    run.step = int(ck["step"])
    run.elapsed = float(ck.get("elapsed", 0.0))
    run.best = json.loads(ck["best"])
    if "running" in ck and run.world.is_main:  # global sums: kept by one rank
        run.running = json.loads(ck["running"])
    if plan.resumed_from.resolve() != plan.out.resolve() and run.world.is_main:
        for name in ("model.pt", "metrics.jsonl"):
            if (plan.resumed_from / name).exists():
                shutil.copy2(plan.resumed_from / name, plan.out / name)
    note_new_length(plan.saved, run.total, run.per_epoch, run.step, plan.lr, plan.schedule,
                    ([("every layer", plan.ste_from)] if plan.ste_from is not None else [])
                    + [(f"layer {i}", m.ste_from) for i, m, _ in run.layer_ste])


def describe(run: Run) -> str:
    """The run's first log line: what trains, on what, how."""
    p, m = run.plan, run.model
    polish = ""
    if p.polish_steps:
        polish = (f", then {p.polish_steps:,} straight-through polish steps at lr {p.polish_lr:g}"
                  + (f" ({p.polish_schedule})" if p.polish_schedule != "constant" else "")
                  + (" without augmentation" if p.augment and not p.polish_augment else ""))
    parts = [
        f"difflogic train: {run.title.split(' on ')[0]} ({m.gate_count():,} gates) on "
        f"{run.dataset.info.title} ({run.loader.num_samples:,} train / "
        f"{len(run.val_idx):,} val), batch {p.batch_size}, lr {p.lr}, wd {p.weight_decay}, "
        f"{p.schedule} schedule, {run.total:,} steps ({run.total / run.per_epoch:.2f} epochs), "
        f"eval every {run.eval_every}, " + where(run.device)
        + (" (or 1 while that measures faster)" if run.tuner is not None else ""),
        (", augmentation (flips only)" if not p.crop_padding else
         f", augmentation (flips, crops padded by {p.crop_padding})") if p.augment else "",
        f", straight-through gates from step {run.ste_start:,}" if run.ste_start is not None else "",
        "".join(f", layer {i} straight-through from step {s:,}" for i, _, s in run.layer_ste),
        "".join(f", layer {i} always straight-through" for i, x in enumerate(m)
                if isinstance(x, GateLayer) and x.always_straight_through),
        f", Gumbel noise x{p.gumbel:g} on the gate logits" if p.gumbel else "",
        f", label smoothing {p.label_smoothing:g}" if p.label_smoothing else "",
        polish,
        f", distilled from {p.teacher} (weight {p.kd_weight:g}, temperature "
        f"{p.kd_temperature:g})" if p.teacher else "",
        f", resuming at step {run.step}" if p.checkpoint is not None else ""]
    return "".join(parts)


# --------------------------------------------------------------------------- one step
def train_step(run: Run, batches) -> tuple[float, int, str]:
    """Set this step's phase (rate, straight-through layers, augmentation), then one AdamW
    step on the next batch; returns (loss, batch size, what the forward was)."""
    plan, model, step = run.plan, run.model, run.step
    polishing = step >= run.total
    run.loader.suspend_augment = polishing and not plan.polish_augment
    x, y, *taught = next(batches)  # (+ the teacher's scores when distilling)
    for g in run.optimizer.param_groups:
        g["lr"] = (lr_at(step - run.total, plan.polish_steps, plan.polish_lr, plan.polish_schedule)
                   if polishing else lr_at(step, run.total, plan.lr, plan.schedule))
    ste = polishing or run.ste_start is not None and step >= run.ste_start
    set_straight_through(model, ste)
    late = [m for _, m, first in run.layer_ste if step >= first]
    for m in late:  # layers whose config switches them on their own
        m.straight_through = True
    logits = run.net(x)
    loss = training_loss(logits, y, taught, plan)
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    run.optimizer.step()
    run.step += 1
    value = float(loss.detach())
    with torch.no_grad():
        correct = int((logits.argmax(-1) == y).sum())
    run.running["loss"] += value * len(y)
    run.running["correct"] += correct
    run.running["seen"] += len(y)
    kind = ("Gumbel " if plan.gumbel else "") + (
        "straight-through polish" if polishing else "straight-through" if ste else
        f"relaxed, {len(late)} layer(s) straight-through" if late else "relaxed")
    return value, len(y), kind


#: Under torchrun the ranks agree on a stop request every this many steps (one collective
#: each time; a request is honoured within that many steps).
STOP_CHECK_EVERY = 10


def stop_agreed(run: Run, hit: bool, asked: bool) -> bool:
    """Whether to stop after this step: ``asked`` (the same on every rank) at once, a signal
    (``hit``, seen by some ranks) once the ranks have compared notes."""
    if asked or not run.world.active:
        return asked or hit
    return run.step % STOP_CHECK_EVERY == 0 and run.world.any(hit)


# --------------------------------------------------------------------------- evaluation
def evaluation_due(run: Run) -> bool:
    """Every ``eval_every`` steps, at the end of the schedule and of the run, and four times
    during the polish."""
    step, total = run.step, run.total
    polish_every = max(1, run.plan.polish_steps // 4)
    return step % run.eval_every == 0 or step in (total, run.end) or \
        step > total and (step - total) % polish_every == 0


def evaluate_and_keep(run: Run) -> tuple[dict, bool]:
    """Measure the network, keep it as model.pt if it is the best so far, append the record
    to metrics.jsonl, then save last.pt and the curves (files: rank 0 only)."""
    plan, world = run.plan, run.world
    loss, correct, seen, seconds, images = world.sum(
        [*run.running.values(), *run.window])  # the job's sums since the last evaluation
    rec = {"step": run.step, "epoch": round(run.step / run.per_epoch, 4),
           "loss": loss / seen, "train_acc": correct / seen,
           "train_hard_acc": _accuracy(run, True, run.probe_idx),
           "val_acc": _accuracy(run, False, run.val_idx) if run.validate else None,
           "val_hard_acc": _accuracy(run, True, run.val_idx) if run.validate else None,
           "lr": run.optimizer.param_groups[0]["lr"], "elapsed_s": round(run.elapsed, 3),
           "images_per_s": round(images / (seconds / world.size), 1) if seconds > 0 else 0.0}
    improved = not run.validate or rec["val_hard_acc"] > run.best["val_hard_acc"]
    if improved:
        run.best = {"val_hard_acc": rec["val_hard_acc"], "step": run.step}
        if world.is_main:
            ckpt.save_checkpoint(plan.out / "model.pt", run.model, kind="model",
                                 meta=json.dumps({**_meta(run), **rec}))
    run.records.append(rec)
    # the sums restart with the next step: reset before last.pt keeps them, so a run resumed
    # from this evaluation logs what an uninterrupted one does
    run.running = {"loss": 0.0, "correct": 0, "seen": 0}
    run.window = [0.0, 0]
    if world.is_main:
        history.append_metrics(plan.out / "metrics.jsonl", rec)
        save_last(run)
        history.write_curves(plan.out / "curves.png", run.records, run.title)
    return rec, improved


def _accuracy(run: Run, hard: bool, indices: np.ndarray, images=None, labels=None,
              model=None) -> float:
    """Accuracy on ``indices`` of the training images (or of ``images``), each rank counting
    its share of them."""
    images = run.x_train if images is None else images
    labels = run.y_train if labels is None else labels
    correct = count_correct(run.model if model is None else model, images, labels, hard=hard,
                            batch_size=run.plan.eval_batch_size,
                            indices=run.world.shard(indices))
    return int(run.world.sum([correct])[0]) / max(1, len(indices))


def eval_line(run: Run, rec: dict, kind: str, improved: bool, seconds: float) -> str:
    val = (f"val {100 * rec['val_acc']:.2f}% (relaxed) {100 * rec['val_hard_acc']:.2f}% (hard)"
           f"{' *best*' if improved else ''}" if run.validate else "no val")
    return (f"[eval step {rec['step']} epoch {rec['epoch']:.2f}] loss {rec['loss']:.4f}  "
            f"train {100 * rec['train_acc']:.2f}% ({kind}) {100 * rec['train_hard_acc']:.2f}% "
            f"(hard)  {val}  {rec['images_per_s']:.0f} img/s since the last eval, "
            f"eval {seconds:.1f}s")


def _meta(run: Run) -> dict:
    p = run.plan
    return {"dataset": p.dataset, "model": p.model_config.get("name"), "seed": p.seed}


def save_last(run: Run) -> None:
    """last.pt: everything a resume needs to continue bit-exactly (written by rank 0)."""
    if not run.world.is_main:
        return
    rng = {"torch": torch.get_rng_state()}
    if run.device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state(run.device)
    ckpt.save_checkpoint(run.plan.out / "last.pt", run.model, kind="training", step=run.step,
                         elapsed=run.elapsed, optimizer=run.optimizer.state_dict(),
                         loader=run.loader.state_dict(), rng=rng, best=json.dumps(run.best),
                         running=json.dumps(run.running),
                         train_options=json.dumps(run.saved_options, sort_keys=True),
                         meta=json.dumps({**_meta(run), "step": run.step}))


# --------------------------------------------------------------------------- finish
def finish(run: Run, stopped: bool, interrupted: bool) -> dict:
    """The summary; unless stopped early, the kept network's test accuracy and summary.json."""
    plan, out, world = run.plan, run.plan.out, run.world
    summary = {"run": str(out), "model": plan.model_config.get("name"), "dataset": plan.dataset,
               "steps": run.step, "total_steps": run.end, "train_time_s": round(run.elapsed, 1),
               "best_step": run.best["step"], "best_val_hard_acc": run.best["val_hard_acc"],
               "gates": run.model.gate_count(), "threads": torch.get_num_threads(),
               "stopped_early": stopped, "interrupted": interrupted,
               **({"ranks": world.size} if world.active else {})}
    world.barrier()  # rank 0's files are complete before anyone reads them
    if stopped:
        if world.is_main:
            log(f"stopped at step {run.step}/{run.end}; continue with: difflogic train "
                f"--resume {out}")
        return summary
    if plan.test and (out / "model.pt").exists():
        summary.update(test_accuracy(run))
    if world.is_main:
        history.write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
        log(f"trained {run.step:,} steps in {run.elapsed:.1f}s; wrote {out}/model.pt, last.pt, "
            "metrics.jsonl, curves.png, summary.json")
    world.barrier()
    return summary


def test_accuracy(run: Run) -> dict:
    """Hard and relaxed test accuracy of the kept network (model.pt)."""
    plan = run.plan
    model = ckpt.load_model(plan.out / "model.pt").to(run.device)
    x_test, y_test = run.dataset.load("test")
    t0 = time.perf_counter()
    every = np.arange(len(y_test))
    hard = _accuracy(run, True, every, x_test, y_test, model)
    relaxed = _accuracy(run, False, every, x_test, y_test, model)
    best = run.best
    which = (f"best model (step {best['step']}, val {100 * best['val_hard_acc']:.2f}% hard)"
             if run.validate else f"final model (step {best['step']}, no validation)")
    if run.world.is_main:
        log(f"{which}: test accuracy {100 * hard:.2f}% hard, {100 * relaxed:.2f}% relaxed "
            f"({run.dataset.info.title}, {len(y_test):,} "
            f"{'images' if run.dataset.info.kind == 'image' else 'rows'})")
    return {"test_hard_acc": hard, "test_acc": relaxed,
            "test_eval_s": round(time.perf_counter() - t0, 2)}
