"""``difflogic eval RUN/model.pt``: relaxed and hard test accuracy, and the gate count; with
``--rows FILE.csv`` the class of every row of a table (a model trained on a table)."""
from __future__ import annotations

import json


def add_parser(subparsers):
    p = subparsers.add_parser(
        "eval", help="test accuracy (relaxed and hard) and gate count of a checkpoint",
        description="Evaluate a checkpoint on a test split: the relaxed (training-mode) "
                    "accuracy and the hard accuracy of the discretised network, which is what "
                    "the exported C / Verilog computes.")
    p.add_argument("checkpoint", metavar="CHECKPOINT", help="RUN/model.pt (or RUN/last.pt, or RUN)")
    p.add_argument("--dataset", help="dataset: cifar10, fashion-mnist, mnist, or own data (an "
                   ".npz file, a .csv table, an image folder), read as the model was trained "
                   "(default: the one the checkpoint was trained on)")
    p.add_argument("--data-dir", help="folder holding the dataset files")
    p.add_argument("--split", choices=("test", "train", "all"), default="test",
                   help="split to evaluate (all: train and test, e.g. every row of another "
                        "file than the training one)")
    p.add_argument("--rows", metavar="FILE.csv", help="print the class of every row of this CSV "
                   "table (columns by name, as in training; with its label column, also the "
                   "accuracy)")
    p.add_argument("--batch-size", type=int, default=1000, help="evaluation batch size")
    p.add_argument("--threads", type=int, help="CPU threads (torch.set_num_threads)")
    p.add_argument("--device", default="cpu", metavar="DEV",
                   help="evaluate on cpu (default) or cuda / cuda:N")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.set_defaults(func=run)
    return p


def resolve_checkpoint(path: str):
    """RUN folder -> RUN/model.pt; anything else unchanged."""
    from pathlib import Path
    p = Path(path)
    if p.is_dir() and (p / "model.pt").exists():
        return p / "model.pt"
    return p


def checkpoint_meta(ck: dict) -> dict:
    try:
        meta = json.loads(ck.get("meta", "{}"))
    except (TypeError, ValueError):
        meta = {}
    return meta if isinstance(meta, dict) else {}


def run(args) -> int:
    import time

    import torch

    from .. import checkpoint, data
    from ..device import resolve_device
    from ..evaluate import accuracy, hard_engine

    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    path = resolve_checkpoint(args.checkpoint)
    ck = checkpoint.load_checkpoint(path)
    model = checkpoint.model_from_checkpoint(ck, path).to(device).eval()
    if args.rows:
        return classify_rows(model, args.rows, args.json, args.batch_size)
    dataset = args.dataset or checkpoint_meta(ck).get("dataset")
    if not dataset:
        raise ValueError(f"{path} does not record its dataset; pass --dataset")
    opened = data.open_dataset(dataset, args.data_dir, input_spec=model.config.get("input"))
    dataset, info = opened.name, opened.info
    if tuple(model.input_shape) != tuple(info.shape):
        raise ValueError(f"{path}: the model expects inputs of shape {tuple(model.input_shape)}, "
                         f"{info.title} {'images are' if info.kind == 'image' else 'rows have'} "
                         f"{info.shape}")
    x, y = opened.load(args.split)
    t0 = time.perf_counter()
    hard = accuracy(model, x, y, hard=True, batch_size=args.batch_size)
    t_hard = time.perf_counter() - t0
    relaxed = accuracy(model, x, y, hard=False, batch_size=args.batch_size)
    result = {"checkpoint": str(path), "model": model.config.get("name"), "dataset": dataset,
              "split": args.split, "images": int(len(y)), "hard_acc": hard, "relaxed_acc": relaxed,
              "gates": model.gate_count(), "hard_images_per_s": round(len(y) / max(t_hard, 1e-9)),
              "hard_engine": hard_engine(model)}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{path}: {result['model']} on {info.title} {args.split} ({len(y):,} "
              f"{'images' if info.kind == 'image' else 'rows'})")
        print(f"  hard accuracy     {100 * hard:6.2f}%   (discretised gates: what export computes)")
        print(f"  relaxed accuracy  {100 * relaxed:6.2f}%")
        print(f"  gates             {result['gates']:,} (training count)")
        engine = "the netlist simulator" if result["hard_engine"] == "netlist" else "PyTorch"
        print(f"  hard inference    {result['hard_images_per_s']:,} images/s ({engine}, "
              f"{torch.get_num_threads()} threads; `difflogic bench` times the back ends)")
    return 0


def classify_rows(model, rows: str, as_json: bool, batch_size: int) -> int:
    """``--rows FILE.csv``: the hard network's class for every row (its line in the file and
    the class name), and the accuracy when the file has the label column."""
    import sys

    import torch

    from .. import data
    x, y, lines = data.read_rows(rows, model.config.get("input"))
    classes = model.config["input"]["classes"]
    model.eval()
    device = next(model.buffers()).device
    with torch.no_grad():
        pred = torch.cat([model(torch.from_numpy(x[i:i + batch_size]).to(device)).argmax(1)
                          for i in range(0, len(x), batch_size)]).cpu().numpy()
    acc = None if y is None else float((pred == y).mean())
    if as_json:
        print(json.dumps({"rows": str(rows), "lines": lines.tolist(),
                          "classes": [classes[c] for c in pred], "accuracy": acc}))
        return 0
    print("line\tclass")
    for line, c in zip(lines.tolist(), pred.tolist()):
        print(f"{line}\t{classes[c]}")
    if acc is not None:
        print(f"accuracy {100 * acc:.2f}% on {len(y):,} rows (hard network)", file=sys.stderr)
    return 0
