"""``difflogic train``: train a logic gate network on a real dataset (see :mod:`difflogic.train`)."""
from __future__ import annotations

import argparse

DATASETS = ("cifar10", "fashion-mnist", "mnist")


def add_parser(subparsers):
    p = subparsers.add_parser(
        "train", help="train a logic gate network (writes RUN/model.pt, last.pt, metrics, curves)",
        description="Train a logic gate network with AdamW on the relaxed network and keep the "
                    "checkpoint with the best *hard* validation accuracy.  Hyper-parameters "
                    "default to the model config's 'train' entry.  `--resume RUN` continues an "
                    "interrupted run exactly (same result as an uninterrupted run).",
        epilog="example: difflogic train --dataset fashion-mnist --model fmnist-small "
               "--out runs/fmnist")
    p.add_argument("--dataset", choices=DATASETS, help="dataset to train on (required unless --resume)")
    p.add_argument("--data-dir", help="folder holding the dataset files (default: "
                   "$DIFFLOGIC_DATA/<name>, ~/.cache/difflogic/<name>, system locations)")
    p.add_argument("--model", help="a model name (see `difflogic info --models`) or a JSON "
                   "model-config file (required unless --resume)")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=float, help="training length in epochs (default 1)")
    length.add_argument("--steps", type=int, help="training length in optimizer steps (total, "
                        "counting steps done before a resume)")
    p.add_argument("--batch-size", type=int, help="mini-batch size (default: the model's)")
    p.add_argument("--lr", type=float, help="AdamW learning rate (default: the model's)")
    p.add_argument("--weight-decay", type=float, help="AdamW weight decay (default: the model's)")
    p.add_argument("--schedule", choices=("constant", "cosine"), default=None,
                   help="learning-rate schedule (default: constant)")
    p.add_argument("--seed", type=int, default=None, help="seed for wiring, init and batch order (default 0)")
    p.add_argument("--eval-every", type=int, help="evaluate (and checkpoint) every K steps "
                   "(default: total/10, at most 2000)")
    p.add_argument("--val-size", type=int, help="validation images held out of the training "
                   "split (default: the paper's, 5,000 CIFAR-10 / 10,000 MNIST-like); 0 trains "
                   "on every training image and keeps the final network as model.pt")
    p.add_argument("--ste-from", type=float, metavar="FRAC",
                   help="train straight-through (argmax gates forward, relaxed gradient) from "
                        "this fraction of the run on, e.g. 0.5 (default: the model's, else never)")
    p.add_argument("--gumbel", type=float, metavar="SCALE",
                   help="add SCALE x Gumbel(0,1) noise to the gate logits in every training "
                        "forward; with --ste-from 0 this is Gumbel logic gate network training "
                        "(Yousefi et al. 2025) (default: the model's, else 0 = off)")
    p.add_argument("--label-smoothing", type=float, metavar="EPS",
                   help="label smoothing of the cross-entropy, in [0, 1) (default: the model's, "
                        "else 0)")
    p.add_argument("--ema", type=float, metavar="DECAY",
                   help="keep an exponential moving average of the gate logits with this decay, "
                        "e.g. 0.999; evaluations and model.pt use it, and it replaces the "
                        "trained logits at the end of the run (default: the model's, else 0 = off)")
    p.add_argument("--sharpen", type=float, metavar="FACTOR",
                   help="anneal the softmax temperature of the gates: their logits are scaled "
                        "by a factor growing geometrically from 1 to FACTOR over the run, e.g. 4 "
                        "(default: the model's, else 1 = off)")
    p.add_argument("--polish-steps", type=int, metavar="N",
                   help="after the run, N more steps with every gate layer straight-through at "
                        "--polish-lr, evaluated every N/4 steps (the best hard "
                        "validation network is model.pt); settles near-tied gates, e.g. 50 on "
                        "CIFAR-10; with --resume, polishes a finished run (default 0)")
    p.add_argument("--polish-lr", type=float, metavar="LR",
                   help="learning rate of the --polish-steps (default: --lr / 10)")
    p.add_argument("--polish-schedule", choices=("constant", "cosine"),
                   help="keep --polish-lr over the polish, or anneal it to 0 by a cosine "
                        "(default: constant)")
    p.add_argument("--polish-augment", action=argparse.BooleanOptionalAction,
                   help="with --augment: whether the --polish-steps see augmented images; "
                        "--no-polish-augment polishes on the images as stored, as they are "
                        "tested (default: as the run)")
    p.add_argument("--teacher", metavar="FILE", help="distil from a teacher's class scores "
                   "(a file written by `difflogic teacher` for this dataset and split)")
    p.add_argument("--kd-weight", type=float, metavar="W", help="with --teacher: share of the "
                   "teacher's term in the loss, (1-W) CE + W T^2 KL (default 0.5)")
    p.add_argument("--kd-temperature", type=float, metavar="T", help="with --teacher: softmax "
                   "temperature of the teacher's term (default 2)")
    p.add_argument("--augment", action="store_true", help="random crops and horizontal flips")
    p.add_argument("--crop-padding", type=int, metavar="PX",
                   help="with --augment: crops are taken from the image zero-padded by PX pixels; "
                        "0 = flips only (default: 4 for 32x32 images, 2 for 28x28)")
    p.add_argument("--device", metavar="DEV", help="train on cpu (default; native C++ kernels) or "
                   "cuda / cuda:N (CUDA kernels compiled at first use through CuPy)")
    p.add_argument("--threads", type=int, help="CPU threads (torch.set_num_threads)")
    p.add_argument("--no-test", dest="test", action="store_false",
                   help="skip the final test-set evaluation of the best model")
    p.add_argument("--progress", choices=("auto", "bar", "lines", "none"), default="auto",
                   help="progress display: tqdm bar on a terminal, periodic lines otherwise")
    p.add_argument("--out", metavar="RUN", help="run folder to write (required unless --resume)")
    p.add_argument("--overwrite", action="store_true",
                   help="start over in an --out folder that already holds a run, removing its "
                        "checkpoints and metrics (refused otherwise)")
    p.add_argument("--resume", metavar="RUN",
                   help="continue the run in RUN from RUN/last.pt; with a larger "
                        "--steps/--epochs, train a finished run on (a cosine schedule is "
                        "stretched to the new length)")
    p.add_argument("--stop-after", type=int, help=argparse.SUPPRESS)  # testing: simulate a kill
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from ..train import keep_freed_memory, options_from_args, train

    keep_freed_memory()  # this process only trains: let malloc reuse the per-step buffers
    opts = options_from_args(args)
    if not opts.resume:
        missing = [f"--{n}" for n in ("dataset", "model", "out") if not getattr(opts, n)]
        if missing:
            raise ValueError(f"{', '.join(missing)} required (or --resume RUN)")
    summary = train(opts)
    return 130 if summary.get("interrupted") else 0
