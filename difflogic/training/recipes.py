"""Check a recipe file (``difflogic train --config NAME|FILE``) and fill a run's unset options
from it.  The files themselves live in ``difflogic/configs/`` (see that package)."""
from __future__ import annotations

import dataclasses

from .. import configs, data
from ..models import check_config_keys, model_names
from .options import RECIPE_KEYS, STAGE_KEYS, TrainOptions, option_fields

#: Top-level keys of a recipe file.
RECIPE_FILE_KEYS = ("name", "description", "result", "dataset", "model", "train", "then")
_FIELDS = {f.name: f for f in option_fields()}


def check_option(where: str, key: str, value) -> None:
    """One option's value against its field's kind and choices (one-line error)."""
    meta = _FIELDS[key].metadata
    kind, choices = meta["kind"], meta["choices"]
    ok = {int: isinstance(value, int) and not isinstance(value, bool),
          float: isinstance(value, (int, float)) and not isinstance(value, bool),
          bool: isinstance(value, bool), str: isinstance(value, str)}.get(kind, True)
    if not ok:
        raise ValueError(f"{where}: {key!r} must be {kind.__name__}, got {value!r}")
    if choices and value not in choices:
        raise ValueError(f"{where}: {key!r} must be one of {', '.join(choices)}, got {value!r}")


def _check_options(where: str, entry, accepted: tuple) -> dict:
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: expected a mapping of training options, got "
                         f"{type(entry).__name__}")
    for key, value in entry.items():
        if key not in accepted:
            raise ValueError(f"{where}: unknown key {key!r}; accepted: {', '.join(accepted)}")
        check_option(where, key, value)
    if "steps" in entry and "epochs" in entry:
        raise ValueError(f"{where}: gives both 'steps' and 'epochs'; keep one")
    return dict(entry)


def load_recipe(name_or_path) -> dict:
    """A checked recipe: ``{"name", "dataset", "model", "train", "then"}``."""
    name, raw = configs.read(name_or_path)
    where = f"--config {name_or_path}"
    for key in raw:
        if key not in RECIPE_FILE_KEYS:
            raise ValueError(f"{where}: unknown key {key!r}; accepted: {', '.join(RECIPE_FILE_KEYS)}")
    for key in ("dataset", "model"):
        if key not in raw:
            raise ValueError(f"{where}: the recipe needs a {key!r} entry")
    dataset = data.dataset_spec(raw["dataset"])
    model = raw["model"]
    if isinstance(model, str):
        if model not in model_names():
            raise ValueError(f"{where}: unknown model {model!r}; available: {', '.join(model_names())}")
    elif isinstance(model, dict):
        check_config_keys(model, f"{where}: model")
        model = {"name": name, **model}
    else:
        raise ValueError(f"{where}: 'model' must be a model name or a model config object")
    train = _check_options(f"{where}: train", raw.get("train", {}), RECIPE_KEYS)
    then = raw.get("then", [])
    if not isinstance(then, list):
        raise ValueError(f"{where}: 'then' must be a list of stages (option mappings)")
    stages = [_check_options(f"{where}: then[{i}]", s, STAGE_KEYS) for i, s in enumerate(then)]
    return {"name": name, "dataset": dataset, "model": model, "train": train, "then": stages}


def apply_recipe(opts: TrainOptions, recipe: dict) -> TrainOptions:
    """A copy of ``opts`` whose unset options come from ``recipe`` (the command line wins)."""
    fill = {}
    if opts.dataset is None:
        fill["dataset"] = recipe["dataset"]
    if opts.model is None and opts.model_config is None:
        model = recipe["model"]
        fill["model" if isinstance(model, str) else "model_config"] = model
    length_given = opts.steps is not None or opts.epochs is not None
    for key, value in recipe["train"].items():
        if getattr(opts, key) is None and not (length_given and key in ("steps", "epochs")):
            fill[key] = value
    if opts.then is None:
        fill["then"] = recipe["then"]
    return dataclasses.replace(opts, **fill)
