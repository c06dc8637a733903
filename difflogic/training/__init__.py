"""Training of logic gate networks: ``train(TrainOptions(...))`` is ``difflogic train``.

- :mod:`.options`   every option, one line of meaning each
- :mod:`.recipes`   recipe files (``--config``): dataset, model, options, later stages
- :mod:`.plan`      options + recipe + resumed run + model defaults -> one frozen RunPlan
- :mod:`.loop`      setup, step, evaluate, checkpoint, finish
- :mod:`.schedule`, :mod:`.losses`, :mod:`.history`, :mod:`.runtime`  what the loop uses
- :mod:`.teacher`   the CNN teacher for distillation (``difflogic teacher``)
"""
from __future__ import annotations

import importlib

#: public name -> the submodule that defines it (imported on first use, so that reading the
#: options, e.g. for ``difflogic train --help``, does not import torch)
_EXPORTS = {"train": "loop", "TrainOptions": "options", "RunPlan": "plan", "make_plan": "plan",
            "load_recipe": "recipes", "lr_at": "schedule", "make_optimizer": "schedule",
            "distillation_loss": "losses", "keep_freed_memory": "runtime"}
__all__ = list(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
