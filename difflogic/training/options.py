"""Everything ``difflogic train`` accepts, one line of meaning per option.

``None`` means "not given": the value then comes from the recipe (``--config``), else from the
model config's ``train`` entry, else from :data:`DEFAULTS`; a resumed run takes its own saved
value (:mod:`difflogic.training.plan` does the merging and the checks).  The command line is
generated from these fields, so the help text and the API say the same thing.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields

SCHEDULES = ("constant", "cosine")
PROGRESS = ("auto", "bar", "lines", "none")

#: What an unset option falls back to when neither the recipe nor the model config sets it.
DEFAULTS = {"batch_size": 128, "lr": 0.01, "weight_decay": 0.0, "epochs": 1.0, "seed": 0,
            "schedule": "constant", "gumbel": 0.0, "label_smoothing": 0.0, "augment": False,
            "polish_steps": 0, "polish_schedule": "constant", "test": True, "device": "cpu",
            "eval_batch_size": 1000, "progress": "auto", "kd_weight": 0.5, "kd_temperature": 2.0}

#: Options a model config's ``"train"`` entry may set (the tuned defaults of a model).
MODEL_TRAIN_KEYS = ("lr", "weight_decay", "batch_size", "epochs", "steps", "schedule",
                    "eval_every", "val_size", "ste_from", "gumbel", "label_smoothing")


def _opt(help: str, kind=str, *, choices=None, metavar=None, group="run", default=None):
    """A field with its meaning and how it is checked.  ``group``: "what" (defines the run's
    trajectory: a recipe may set it, a resume keeps it), "stage" (a recipe's stage or a resume
    may change it), "run" (how and where this process runs; never in a recipe)."""
    return field(default=default, metadata={"help": help, "kind": kind, "choices": choices,
                                            "metavar": metavar, "group": group})


@dataclass
class TrainOptions:
    """The options of one training run (see the module docstring for how ``None`` resolves)."""

    # ---- what to train
    config: str | None = _opt("a recipe: a name in difflogic/configs/ or a JSON file (dataset, model, options, stages)", metavar="NAME|FILE")
    dataset: str | None = _opt("dataset: cifar10, fashion-mnist, mnist, or own data: a .npz file (x, y[, x_test, y_test]), a .csv table, a folder of class folders of PNG/JPEG images", group="what", metavar="NAME|PATH")
    model: str | None = _opt("a model name (`difflogic info --models`; tabular-s / tabular-m take their size from the data) or a JSON model-config file", group="what", metavar="NAME|FILE")
    data_dir: str | None = _opt("folder holding the dataset files (default: the usual places, $DIFFLOGIC_DATA)", metavar="DIR")
    # ---- length and optimizer
    epochs: float | None = _opt("training length in epochs", float, group="what")
    steps: int | None = _opt("training length in optimizer steps, counting those before a resume", int, group="what")
    batch_size: int | None = _opt("mini-batch size", int, group="what")
    lr: float | None = _opt("AdamW learning rate", float, group="what")
    weight_decay: float | None = _opt("AdamW weight decay", float, group="what")
    schedule: str | None = _opt("learning-rate schedule over the run", choices=SCHEDULES, group="what")
    seed: int | None = _opt("seed of the wiring, the initial logits and the batch order", int, group="what")
    # ---- data
    val_size: int | None = _opt("validation images held out of the training split (default: the paper's; own data: a tenth); 0 = none, keep the final network", int, group="what")
    augment: bool | None = _opt("random horizontal flips and shifted crops of the training images", bool, group="what")
    crop_padding: int | None = _opt("with --augment: crops come from the image zero-padded by this many pixels; 0 = flips only", int, group="what", metavar="PX")
    image_size: str | None = _opt("image folder: resize every image to HxW pixels (needed when the images differ in size)", group="what", metavar="HxW")
    image_mode: str | None = _opt("image folder: convert every image to RGB (3 channels) or L (grey; needed when the images differ in mode)", choices=("RGB", "L"), group="what")
    label_column: str | None = _opt("CSV table: the column of class labels (default: label, class, target or y)", group="what", metavar="NAME")
    categorical: str | None = _opt("CSV table: columns to one-hot although they hold numbers, e.g. zip,grade (text columns always are)", group="what", metavar="COL,COL")
    widths: str | None = _opt("widths of the dense layers, replacing the model's dense stack, e.g. 2000,2000 (the last is rounded up to a multiple of the classes when the model takes them from the data)", group="what", metavar="W,W,...")
    # ---- how the gates train
    ste_from: float | None = _opt("from this fraction of the run on, every gate layer trains straight-through (argmax forward)", float, group="what", metavar="FRAC")
    gumbel: float | None = _opt("scale of Gumbel noise on the gate logits in every training forward (softmax gates only)", float, group="what", metavar="SCALE")
    label_smoothing: float | None = _opt("label smoothing of the cross-entropy, in [0, 1)", float, group="what", metavar="EPS")
    # ---- the straight-through polish after the run
    polish_steps: int | None = _opt("steps after the run with every gate layer straight-through; with --resume, polishes a finished run", int, group="stage", metavar="N")
    polish_lr: float | None = _opt("learning rate of the polish (default: --lr / 10)", float, group="stage")
    polish_schedule: str | None = _opt("keep the polish's learning rate, or anneal it to 0 (cosine)", choices=SCHEDULES, group="stage")
    polish_augment: bool | None = _opt("whether the polish sees augmented images (default: as the run)", bool, group="stage")
    # ---- distillation
    teacher: str | None = _opt("distil from this teacher file (`difflogic teacher`) for the dataset and split", group="what", metavar="FILE")
    kd_weight: float | None = _opt("with --teacher: share W of the teacher's term, (1-W) CE + W T^2 KL", float, group="what", metavar="W")
    kd_temperature: float | None = _opt("with --teacher: softmax temperature T of the teacher's term", float, group="what", metavar="T")
    # ---- evaluation and output
    eval_every: int | None = _opt("evaluate and checkpoint every K steps (default: a tenth of the run, at most 2000)", int, group="stage", metavar="K")
    eval_batch_size: int | None = _opt("batch size of the evaluations", int)
    test: bool | None = _opt("evaluate the kept network on the test split at the end", bool)
    out: str | None = _opt("run folder to write (model.pt, last.pt, metrics.jsonl, curves.png, summary.json)", metavar="RUN")
    resume: str | None = _opt("continue the run in RUN (from RUN/last.pt); a larger length trains a finished run on", metavar="RUN")
    overwrite: bool = _opt("start over in an --out folder that already holds a run, removing its files", bool, default=False)
    # ---- where and how this process runs
    device: str | None = _opt("cpu (native C++ kernels) or cuda / cuda:N (CUDA kernels through CuPy)", metavar="DEV")
    threads: int | None = _opt("CPU threads (torch.set_num_threads)", int)
    progress: str | None = _opt("progress display: a bar on a terminal, periodic lines otherwise", choices=PROGRESS)
    then: list | None = _opt("stages run after this one as resumes of the same run (a recipe's \"then\")", list)
    stop_after: int | None = _opt("stop as if interrupted after this many steps (a testing aid)", int)
    model_config: dict | None = field(default=None, repr=False, metadata={
        "help": "an explicit model config dict (API use; overrides --model)", "kind": dict,
        "choices": None, "metavar": None, "group": "what"})


def option_fields(group: str | None = None) -> list:
    """The dataclass fields of :class:`TrainOptions`, optionally of one ``group`` only."""
    return [f for f in fields(TrainOptions) if group is None or f.metadata["group"] == group]


#: Options a resumed run keeps (it must not change them: they define its trajectory).
FIXED_ON_RESUME = tuple(f.name for f in option_fields("what")
                        if f.name not in ("model_config", "steps", "epochs"))
#: Options a recipe's later stage (or a resume) may change.
STAGE_KEYS = tuple(f.name for f in option_fields("stage")) + ("steps", "epochs")
#: Options a recipe's ``train`` entry may set.
RECIPE_KEYS = tuple(f.name for f in fields(TrainOptions)
                    if f.metadata["group"] in ("what", "stage")
                    and f.name not in ("dataset", "model", "model_config", "teacher"))
#: Options removed after they measured no gain; a run saved with them on cannot resume.
REMOVED = {"sharpen": 1.0, "ema": 0.0}
