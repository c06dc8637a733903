"""``difflogic teacher``: train a CNN teacher and write its class scores for distillation
(``difflogic train --teacher FILE``; see :mod:`difflogic.teacher`)."""
from __future__ import annotations


def add_parser(subparsers):
    p = subparsers.add_parser(
        "teacher", help="train a CNN teacher; write its class scores for `train --teacher`",
        description="Train a small CNN on the same training split as `difflogic train` (never "
                    "on its validation or test images) and write its class scores for every "
                    "training image, plain and flipped, to FILE (.npz).  `difflogic train "
                    "--teacher FILE` then distils from them, as the paper trains LogicTreeNet-B/L/G "
                    "with a class-score teacher.",
        epilog="example: difflogic teacher --dataset cifar10 --data-dir DIR --out teacher.npz")
    p.add_argument("--dataset", required=True, help="dataset to train on (cifar10, fashion-mnist, mnist)")
    p.add_argument("--data-dir", help="folder holding the dataset files (as for `difflogic train`)")
    p.add_argument("--epochs", type=int, default=10, help="training epochs")
    p.add_argument("--batch-size", type=int, default=256, help="mini-batch size")
    p.add_argument("--lr", type=float, default=0.2, help="peak SGD learning rate (one-cycle)")
    p.add_argument("--seed", type=int, default=0, help="seed for init, batch order and augmentation")
    p.add_argument("--val-size", type=int, help="validation images held out (must match the "
                   "training run's --val-size; default: the paper's split)")
    p.add_argument("--threads", type=int, help="CPU threads (torch.set_num_threads)")
    p.add_argument("--device", default="cpu", help="train on cpu (default; deterministic) or "
                   "cuda / cuda:N (plain PyTorch on the GPU, no CuPy needed; not bit-reproducible)")
    p.add_argument("--progress", choices=("auto", "bar", "lines", "none"), default="auto",
                   help="progress display: tqdm bar on a terminal, periodic lines otherwise")
    p.add_argument("--out", metavar="FILE", required=True, help="teacher file to write (.npz)")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from ..training.teacher import TeacherOptions, train_teacher

    train_teacher(TeacherOptions(dataset=args.dataset, out=args.out, data_dir=args.data_dir,
                                 epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                                 seed=args.seed, val_size=args.val_size, threads=args.threads,
                                 progress=args.progress, device=args.device))
    return 0
