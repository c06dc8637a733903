"""Resolve :class:`TrainOptions` into one frozen :class:`RunPlan`: the recipe, a resumed
run's saved options, the model config's training defaults and :data:`DEFAULTS` merged in that
order of precedence (the command line first), and every value checked.

Nothing here trains or writes (except own data's decoded copy, made once when the dataset is
first opened: its shape and classes complete a data-shaped model): a plan that resolves is a
run that can start.  What needs the dataset itself (the validation split's default size, the
number of steps of an epoch) is derived when the run is set up (:mod:`difflogic.training.loop`).
"""
from __future__ import annotations

import dataclasses
import json
import os
import types
from pathlib import Path

from .. import _checks, checkpoint as ckpt, data
from ..models import check_config_keys, fit_to_data, get_model_config, with_dense_widths
from .options import DEFAULTS, FIXED_ON_RESUME, PROGRESS, REMOVED, SCHEDULES, STAGE_KEYS, \
    TrainOptions
from .distributed import env_world
from .recipes import apply_recipe, load_recipe
from .runtime import check_positive, resolve_device

#: The files a run writes to its folder (the loop's module docstring says what each holds).
RUN_FILES = ("last.pt", "model.pt", "metrics.jsonl", "curves.png", "summary.json")
#: Options that are about this process, not the run: never saved in last.pt.
_NOT_SAVED = ("config", "model_config", "resume", "stop_after", "overwrite", "progress")


@dataclasses.dataclass(frozen=True)
class RunPlan:
    """A resolved run.  ``plan.<option>`` reads a resolved option (``plan.lr``, ...)."""

    options: types.MappingProxyType          # every TrainOptions field, resolved
    model_config: dict                       # the network to build (or the resumed run's)
    out: Path                                # the run folder
    checkpoint: dict | None = dataclasses.field(default=None, repr=False)  # last.pt to resume
    resumed_from: Path | None = None         # folder of that last.pt
    earlier_run: tuple = ()                  # files of another run in ``out`` (--overwrite)
    saved: dict | None = None                # the resumed run's saved options

    def __getattr__(self, name):
        try:
            return self.__dict__["options"][name]
        except KeyError:
            raise AttributeError(name) from None

    def saved_options(self, **derived) -> dict:
        """What last.pt keeps for a resume: the resolved options plus the values derived at
        setup (``val_size``, ``eval_every``)."""
        keep = {k: v for k, v in self.options.items() if k not in _NOT_SAVED}
        return {**keep, "model": self.model_config.get("name"), **derived}


def make_plan(opts: TrainOptions) -> RunPlan:
    """Merge, default and check ``opts`` (not modified) into a :class:`RunPlan`."""
    o = dataclasses.replace(opts)
    if o.config:
        o = apply_recipe(o, load_recipe(o.config))
    ck = saved = resumed_from = None
    if o.resume:
        ck, saved, resumed_from = _load_resume(o.resume)
        _merge_resumed(o, saved, ck)
        o.out = o.out or str(resumed_from)
    _check_run_options(o)
    config = ck["config"] if ck is not None else resolve_model_config(o.model, o.model_config)
    check_config_keys(config, f"model {config.get('name')!r}")
    _apply_defaults(o, config.get("train", {}))
    _check_training_options(o)
    config = _check_data_options(o, config, fresh=ck is None)
    _check_world(o)
    o.model = o.model or config.get("name")
    out = Path(o.out)
    earlier = _earlier_run_files(out, resumed_from, o.overwrite)
    return RunPlan(types.MappingProxyType(dataclasses.asdict(o)), config, out, ck,
                   resumed_from, tuple(earlier), saved)


def resolve_model_config(model: str | None, model_config: dict | None = None) -> dict:
    """A preset / LogicTreeNet name, or a path to a JSON model-config file."""
    if model_config is not None:
        return json.loads(json.dumps(model_config))
    if not model:
        raise ValueError("--model is required (a name from `difflogic info --models` or a "
                         "JSON config file), or --config RECIPE")
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


# --------------------------------------------------------------------------- resume
def _load_resume(resume: str) -> tuple[dict, dict, Path]:
    """(last.pt contents, its saved options, its folder) of the run to resume."""
    rpath = Path(resume)
    last = rpath / "last.pt" if rpath.is_dir() or not rpath.suffix else rpath
    ck = ckpt.load_checkpoint(last)
    if ck.get("kind") != "training":
        raise ckpt.CheckpointError(f"{last}: a model checkpoint, not a training state "
                                   "(resume from RUN/last.pt)")
    saved = json.loads(ck["train_options"])
    saved.setdefault("gumbel", 0.0)  # runs saved before the options existed had none
    saved.setdefault("label_smoothing", 0.0)
    for key, off in REMOVED.items():
        if saved.get(key, off) != off:
            raise ValueError(f"{last}: this run trained with --{key} {saved[key]}, an option "
                             f"this version no longer has; resume it with difflogic 0.1.0")
    return ck, saved, last.parent


def _merge_resumed(o: TrainOptions, saved: dict, ck: dict) -> None:
    """A resumed run keeps what defines its trajectory; only the length, the polish, the
    evaluation interval and where it runs may change."""
    for key in FIXED_ON_RESUME:
        mine = getattr(o, key)
        differs = mine is not None and mine != saved.get(key)
        if key == "augment":
            differs = bool(mine) and not saved.get("augment")
        if differs and not (key == "model" and ck["config"].get("name") == mine):
            raise ValueError(f"--{key.replace('_', '-')} {mine} differs from the run being "
                             f"resumed ({saved.get(key)}); a resumed run keeps its settings")
        setattr(o, key, saved.get(key))
    if o.steps is None and o.epochs is None:
        o.steps, o.epochs = saved.get("steps"), saved.get("epochs")
    for key in (*STAGE_KEYS, "threads", "device", "data_dir", "then"):
        if key not in ("steps", "epochs") and getattr(o, key) is None:
            setattr(o, key, saved.get(key))
    o.model_config = None


# --------------------------------------------------------------------------- checks + defaults
def _check_run_options(o: TrainOptions) -> None:
    """The options that need no model config: required ones, numbers, device, progress."""
    if o.seed is None:
        o.seed = DEFAULTS["seed"]
    if not o.dataset:
        raise ValueError("--dataset is required (one of " + ", ".join(data.dataset_names()) +
                         ", or " + data.OWN_FORMS + ")")
    o.dataset = data.dataset_spec(o.dataset)
    if not o.out:
        raise ValueError("--out RUN is required (the folder for model.pt, metrics, curves)")
    o.progress = o.progress or DEFAULTS["progress"]
    if o.progress not in PROGRESS:
        raise ValueError(f"progress must be one of {', '.join(PROGRESS)}, got {o.progress!r}")
    for name in ("steps", "batch_size", "eval_every", "threads", "eval_batch_size", "stop_after"):
        check_positive(f"--{name.replace('_', '-')}", getattr(o, name), int)
    check_positive("--val-size", o.val_size, int, allow_zero=True)  # 0: no validation
    check_positive("--epochs", o.epochs, float)
    check_positive("--lr", o.lr, float)
    check_positive("--weight-decay", o.weight_decay, float, allow_zero=True)
    check_positive("--gumbel", o.gumbel, float, allow_zero=True)
    check_positive("--polish-steps", o.polish_steps, int, allow_zero=True)
    check_positive("--polish-lr", o.polish_lr, float)
    _checks.positive_int("--seed", o.seed, minimum=0)
    if o.steps is not None and o.epochs is not None:
        raise ValueError("give either --epochs or --steps, not both")
    if o.then is not None and not isinstance(o.then, (list, tuple)):
        raise ValueError(f"then must be a list of stages (option mappings), got {o.then!r}")
    o.then = list(o.then or [])
    o.device = o.device or DEFAULTS["device"]
    o.device = str(resolve_device(o.device))
    o.eval_batch_size = o.eval_batch_size or DEFAULTS["eval_batch_size"]
    o.test = DEFAULTS["test"] if o.test is None else o.test


def _apply_defaults(o: TrainOptions, tdef: dict) -> None:
    """Unset options from the model config's ``train`` entry, then from :data:`DEFAULTS`."""

    def cfg(key, kind, allow_zero=False):
        v = tdef.get(key, DEFAULTS.get(key))
        if kind is float and isinstance(v, int) and not isinstance(v, bool):
            v = float(v)
        return check_positive(f"the model config's train.{key}", v, kind, allow_zero)

    o.batch_size = o.batch_size or cfg("batch_size", int)
    o.lr = cfg("lr", float) if o.lr is None else o.lr
    o.weight_decay = cfg("weight_decay", float, True) if o.weight_decay is None else o.weight_decay
    o.polish_steps = o.polish_steps or 0
    o.polish_lr = o.lr / 10 if o.polish_lr is None else o.polish_lr
    o.schedule = o.schedule or tdef.get("schedule", DEFAULTS["schedule"])
    o.polish_schedule = o.polish_schedule or DEFAULTS["polish_schedule"]
    if o.steps is None and o.epochs is None:  # the config's length, else 1 epoch
        if "steps" in tdef and "epochs" in tdef:
            raise ValueError("the model config's train entry gives both steps and epochs; keep one")
        o.steps = cfg("steps", int)
        o.epochs = None if o.steps is not None else cfg("epochs", float)
    if o.eval_every is None:
        o.eval_every = check_positive("the model config's train.eval_every",
                                      tdef.get("eval_every"), int)
    if o.val_size is None:
        o.val_size = check_positive("the model config's train.val_size", tdef.get("val_size"),
                                    int, allow_zero=True)
    if o.ste_from is None:
        o.ste_from = tdef.get("ste_from")
    if o.gumbel is None:
        o.gumbel = cfg("gumbel", float, True)
    if o.label_smoothing is None:
        o.label_smoothing = tdef.get("label_smoothing", DEFAULTS["label_smoothing"])


def _check_training_options(o: TrainOptions) -> None:
    for flag, value in (("--schedule (model config: train.schedule)", o.schedule),
                        ("--polish-schedule", o.polish_schedule)):
        if value not in SCHEDULES:
            raise ValueError(f"{flag} must be one of {SCHEDULES}, got {value!r}")
    if o.ste_from is not None and not _checks.is_fraction(o.ste_from):
        raise ValueError(f"--ste-from (model config: train.ste_from) must be a fraction of the "
                         f"run in [0, 1], got {o.ste_from!r}")
    ls = o.label_smoothing
    if not _checks.is_fraction(ls) or ls == 1:
        raise ValueError(f"--label-smoothing (model config: train.label_smoothing) must be in "
                         f"[0, 1), got {ls!r}")
    if o.teacher is None:
        if o.kd_weight is not None or o.kd_temperature is not None:
            raise ValueError("--kd-weight and --kd-temperature only apply with --teacher FILE")
        return
    o.kd_weight = DEFAULTS["kd_weight"] if o.kd_weight is None else o.kd_weight
    o.kd_temperature = DEFAULTS["kd_temperature"] if o.kd_temperature is None else o.kd_temperature
    if not _checks.is_fraction(o.kd_weight):
        raise ValueError(f"--kd-weight must be in [0, 1] (the share of the teacher's term in "
                         f"the loss), got {o.kd_weight!r}")
    check_positive("--kd-temperature", o.kd_temperature, float)


def _check_data_options(o: TrainOptions, config: dict, fresh: bool) -> dict:
    """Open the dataset (own data is scanned and decoded once here) and fit the model to it:
    ``--widths``, and the input shape / classes a data-shaped preset leaves out (a fresh run
    only: a resumed run keeps its network).  Returns the model config to build."""
    ds = data.open_dataset(o.dataset, o.data_dir, **own_data_options(o))
    info = ds.info
    o.augment = bool(o.augment)
    if o.augment and info.kind != "image":
        raise ValueError(f"--augment flips and crops images; {info.title} is a table of "
                         "features: drop --augment")
    if o.crop_padding is not None:
        if not o.augment:
            raise ValueError(f"--crop-padding {o.crop_padding} only applies with --augment; "
                             "add --augment or drop --crop-padding")
        check_positive("--crop-padding", o.crop_padding, allow_zero=True)
    elif o.augment:
        o.crop_padding = info.crop_padding
    if o.polish_augment is None:
        o.polish_augment = o.augment
    elif o.polish_augment and not o.augment:
        raise ValueError("--polish-augment only applies with --augment (the run's own "
                         "augmentation); add --augment or drop --polish-augment")
    if fresh:
        config = _fit_model(o, config, ds)
    elif ds.input is not None and data.schema_of(config.get("input") or {}) != \
            data.schema_of(ds.input):
        raise ValueError(f"{o.dataset} no longer reads as it did when the run started (its "
                         "shape, classes or columns changed); a resumed run keeps its data")
    if tuple(config["input_shape"]) != tuple(info.shape):
        raise ValueError(f"model {config.get('name')!r} expects inputs of shape "
                         f"{tuple(config['input_shape'])}, but {info.title} "
                         f"{'images are' if info.kind == 'image' else 'rows have'} {info.shape}")
    if ds.input is not None and config.get("num_classes", info.num_classes) != info.num_classes:
        raise ValueError(f"model {config.get('name')!r} has {config['num_classes']} classes, "
                         f"but {info.title} has {info.num_classes}")
    return config


def own_data_options(o) -> dict:
    """The options of own data (image folders, CSV tables) among a run's options."""
    return {k: getattr(o, k) for k in ("image_size", "image_mode", "label_column", "categorical")}


def _fit_model(o: TrainOptions, config: dict, ds) -> dict:
    """``--widths``, the data's shape and classes, and own data's input spec in the config."""
    if o.widths is not None:
        config = with_dense_widths(config, o.widths)
    config = fit_to_data(config, ds.info.shape, ds.info.num_classes)
    if ds.input is not None:
        config["input"] = ds.input
    return config


def _check_world(o: TrainOptions) -> None:
    """Under torchrun the global batch must split evenly over the ranks."""
    ranks = env_world().size
    if ranks > 1 and o.batch_size % ranks:
        raise ValueError(f"--batch-size {o.batch_size} does not divide by the {ranks} ranks of "
                         f"this job; give a multiple of {ranks} (--batch-size is the global "
                         "batch, split evenly over the ranks)")


def _earlier_run_files(out: Path, resumed_from: Path | None, overwrite: bool) -> list[Path]:
    """Another run's files in ``out``, which this run would replace (none when a run is
    resumed in its own folder): refused unless ``overwrite``, naming the ways on."""
    if resumed_from is not None and out.resolve() == resumed_from.resolve():
        return []
    held = [out / name for name in RUN_FILES if (out / name).exists()]
    if held and not overwrite:
        raise ValueError(f"{out} already holds a training run ({', '.join(p.name for p in held)}); "
                         f"continue it with `difflogic train --resume {out}`, or start over "
                         "with --overwrite (removes its files), or choose another --out")
    return held
