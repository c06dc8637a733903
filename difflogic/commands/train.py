"""``difflogic train``: train a logic gate network (see :mod:`difflogic.training`).

The options are generated from :class:`difflogic.training.options.TrainOptions`, so the help
text here and the API's field comments are one text."""
from __future__ import annotations

import argparse

#: Options the command line does not offer (API or recipe only) or hides (testing aid).
_API_ONLY = ("model_config", "then")
_HIDDEN = ("stop_after",)


def add_parser(subparsers):
    from ..training.options import DEFAULTS, MODEL_TRAIN_KEYS, option_fields
    p = subparsers.add_parser(
        "train", help="train a logic gate network (writes RUN/model.pt, last.pt, metrics, curves)",
        description="Train a logic gate network with AdamW on the relaxed network and keep the "
                    "checkpoint with the best *hard* validation accuracy.  Unset options come "
                    "from --config's recipe, else the model config's defaults.  `--resume RUN` "
                    "continues an interrupted run exactly.",
        epilog="examples: difflogic train --config fmnist-small --out RUN;  difflogic train "
               "--dataset cifar10 --data-dir DATA_DIR --model cifar10-s --epochs 20 --out RUN")
    length = p.add_mutually_exclusive_group()
    for f in option_fields():
        if f.name in _API_ONLY:
            continue
        target = length if f.name in ("epochs", "steps") else p
        target.add_argument(*_flags(f), **_argument(f, DEFAULTS, MODEL_TRAIN_KEYS))
    p.set_defaults(func=run)
    return p


def _flags(f) -> list[str]:
    return [f"--{f.name.replace('_', '-')}"]


def _argument(f, defaults: dict, model_keys: tuple) -> dict:
    """argparse keywords of one option field: type, choices, and a help text that says where
    an unset value comes from."""
    meta = f.metadata
    if f.name in _HIDDEN:
        return {"type": meta["kind"], "help": argparse.SUPPRESS}
    help_text = meta["help"]
    if f.name in defaults and "default" not in help_text:
        source = ("the recipe's or the model's, else " if f.name in model_keys else
                  "the recipe's, else " if meta["group"] != "run" else "")
        help_text += f" (default: {source}{defaults[f.name]})"
    kw = {"help": help_text, "default": f.default}
    if meta["kind"] is bool:
        kw["action"] = "store_true" if f.default is False else argparse.BooleanOptionalAction
    else:
        kw["type"] = meta["kind"]
        if meta["choices"]:
            kw["choices"] = meta["choices"]
        if meta["metavar"]:
            kw["metavar"] = meta["metavar"]
    return kw


def run(args) -> int:
    from ..training import TrainOptions, distributed, keep_freed_memory, train
    from ..training.options import option_fields

    keep_freed_memory()  # this process only trains: let malloc reuse the per-step buffers
    opts = TrainOptions(**{f.name: getattr(args, f.name) for f in option_fields()
                           if hasattr(args, f.name)})
    if not opts.resume and not opts.config:
        missing = [f"--{n}" for n in ("dataset", "model", "out") if not getattr(opts, n)]
        if missing:
            raise ValueError(f"{', '.join(missing)} required (or --config RECIPE, or --resume RUN)")
    try:
        summary = train(opts)
    finally:
        distributed.stop()
    return 130 if summary.get("interrupted") else 0
