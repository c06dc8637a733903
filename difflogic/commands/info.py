"""``difflogic info``: architecture, gate counts per layer and gate-type histogram of a
checkpoint (or of a named model before training), optionally as a PNG bar chart."""
from __future__ import annotations

import json
from pathlib import Path


#: The layer table fits a terminal this wide (settings wrap onto continuation lines).
TABLE_WIDTH = 100


def add_parser(subparsers):
    p = subparsers.add_parser(
        "info", help="architecture, gate counts and gate-type histogram of a checkpoint",
        description="Describe a checkpoint: layers and shapes, gates per layer as counted for "
                    "training (and after hardening/optimization when the compiler is "
                    "installed), and how often each of the 16 gates was learned.")
    p.add_argument("checkpoint", nargs="?", metavar="CHECKPOINT",
                   help="RUN/model.pt, RUN/last.pt or RUN")
    p.add_argument("--model", help="describe a named model (fresh, untrained) instead")
    p.add_argument("--models", action="store_true", help="list the available model names")
    p.add_argument("--configs", action="store_true",
                   help="list the shipped training recipes (`difflogic train --config NAME`)")
    p.add_argument("--plot", metavar="PNG", nargs="?", const=True,
                   help="write the gate-type histogram as a bar chart to PNG (default: "
                        "gates.png beside the checkpoint, or NAME_gates.png for --model NAME)")
    p.add_argument("--no-compile", dest="compile", action="store_false",
                   help="skip the hardened/optimized gate counts")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.set_defaults(func=run)
    return p


def gate_histogram(model) -> list[int]:
    """How many learned gates (neurons; a conv tree gate counts once) have each of the 16 ops."""
    import torch

    from ..layers import GateLayer
    counts = torch.zeros(16, dtype=torch.int64)
    for m in model.modules():
        if isinstance(m, GateLayer):
            counts += torch.bincount(m.ops().flatten().long(), minlength=16)
    return counts.tolist()


def compiled_counts(model):
    """Per-op gate counts of the hardened and optimized netlists, or (None, reason)."""
    from ..compiler import compile
    try:
        hard = compile(model, optimize=False)
        opt = compile(hard)
        return {"hardened": [list(r) for r in hard.gate_counts()],
                "optimized": [list(r) for r in opt.gate_counts()],
                "hardened_total": hard.gate_count(), "optimized_total": opt.gate_count()}, None
    except Exception as e:  # noqa: BLE001 - info must still print the training counts
        return None, f"compiler failed: {type(e).__name__}: {e}"


def layer_table(layers: list, width: int = TABLE_WIDTH) -> list[str]:
    """The layer rows: type, shapes, gates, then the layer's settings (its full repr: it is
    the architecture) wrapped in the last column, so that no line exceeds ``width``."""
    import textwrap
    rows = []
    for r in layers:
        kind, _, settings = r["layer"].partition("(")
        rows.append((str(r["index"]), kind, f"{tuple(r['in_shape'])} -> {tuple(r['out_shape'])}",
                     f"{r['gates']:,}", settings[:-1] if settings.endswith(")") else settings))
    wi, wk, ws, wg = (max([len(h)] + [len(row[i]) for row in rows])
                      for i, h in enumerate(("#", "layer", "in -> out", "gates")))
    lead = 2 + wi + 2 + wk + 2 + ws + 2 + wg + 2
    wrap = max(20, width - lead)
    lines = [f"  {'#':>{wi}}  {'layer':{wk}}  {'in -> out':{ws}}  {'gates':>{wg}}  settings"]
    for i, kind, shapes, gates, settings in rows:
        parts = textwrap.wrap(settings, wrap, break_on_hyphens=False) or [""]
        lines.append(f"  {i:>{wi}}  {kind:{wk}}  {shapes:{ws}}  {gates:>{wg}}  {parts[0]}".rstrip())
        lines += [" " * lead + p for p in parts[1:]]
    return lines


def plot_histogram(path, hist, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .. import gates
    from ..files import save_png
    fig, ax = plt.subplots(figsize=(10, 4))
    total = max(1, sum(hist))
    ax.bar(range(16), [100 * h / total for h in hist], color="tab:blue")
    ax.set_xticks(range(16))
    ax.set_xticklabels(gates.NAMES, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("share of learned gates (%)")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    save_png(path, fig)


def run(args) -> int:
    from .. import checkpoint, gates
    from ..models import get_model, model_names

    if args.configs:
        from .. import configs
        for name in configs.names():
            _, recipe = configs.read(name)
            print(f"{name:16s} {recipe.get('dataset', '?'):14s} {recipe.get('result', '')}")
        return 0
    if args.models:
        from ..models import get_model_config, tabular_preset_names
        for name in model_names():
            cfg = get_model_config(name)
            t = cfg.get("train", {})
            print(f"{name:18s} input {tuple(cfg['input_shape'])}  lr {t.get('lr')}  "
                  f"batch {t.get('batch_size')}  wd {t.get('weight_decay')}")
        for name in tabular_preset_names():
            print(f"{name:18s} input and classes from the data (--dataset TABLE.csv / .npz)")
        return 0
    if isinstance(args.plot, str) and (args.plot.endswith(".pt") or Path(args.plot).is_dir()):
        # `info --plot RUN/model.pt`: argparse gave the checkpoint to --plot's optional PNG
        raise ValueError(f"--plot got {args.plot!r}, which is a checkpoint or a directory, not a "
                         f"PNG file: put the checkpoint first (`difflogic info CHECKPOINT "
                         f"--plot`) or give --plot a .png path")
    if bool(args.checkpoint) == bool(args.model):
        raise ValueError("give a CHECKPOINT or --model NAME (or --models / --configs to list "
                         "names)")
    if args.model:
        import torch
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = get_model(args.model).eval()
        source, meta = f"model {args.model} (untrained, seed 0)", {}
        default_png = Path(f"{Path(args.model).stem}_gates.png")
    else:
        from .eval import checkpoint_meta, resolve_checkpoint
        path = resolve_checkpoint(args.checkpoint)
        ck = checkpoint.load_checkpoint(path)
        model = checkpoint.model_from_checkpoint(ck, path).eval()
        source, meta = str(path), checkpoint_meta(ck)
        default_png = Path(path).parent / "gates.png"  # beside the run's curves.png
    if args.plot is True:
        args.plot = str(default_png)
    layers = []
    for i, (m, shape_in, shape_out) in enumerate(zip(model, model.shapes, model.shapes[1:])):
        layers.append({"index": i, "layer": f"{type(m).__name__}({m.extra_repr()})",
                       "in_shape": list(shape_in), "out_shape": list(shape_out),
                       "gates": m.gate_count(shape_in)})
    hist = gate_histogram(model)
    compiled, why = compiled_counts(model) if args.compile else (None, "skipped (--no-compile)")
    result = {"source": source, "model": model.config.get("name"), "layers": layers,
              "gates": model.gate_count(), "gate_histogram": dict(zip(gates.NAMES, hist)),
              "compiled": compiled, "meta": meta}
    if args.plot:
        plot_histogram(args.plot, hist, f"{model.config.get('name')}: learned gate types")
    if args.json:
        print(json.dumps(result))
        return 0
    print("\n".join(report_lines(result, hist, why)))
    if args.plot:
        print(f"  wrote {args.plot}")
    return 0


def report_lines(result: dict, hist: list, why: str | None) -> list[str]:
    """The text report: layers, training and compiled gate counts, the learned gate types."""
    from .. import gates
    lines = [f"{result['source']}: {result['model']}"]
    meta = result["meta"]
    if meta:
        keys = [k for k in ("dataset", "step", "epoch", "val_hard_acc") if meta.get(k) is not None]
        lines.append("  trained: " + ", ".join(f"{k} {meta[k]}" for k in keys))
    lines += layer_table(result["layers"])
    lines.append(f"  total training gates: {result['gates']:,}")
    compiled = result["compiled"]
    if compiled:
        for stage in ("hardened", "optimized"):
            lines.append(f"  {stage} netlist: {compiled[stage + '_total']:,} gates")
            lines += [f"      {name[:60]:60s} {n:>12,}" for name, n in compiled[stage]]
    else:
        lines.append(f"  compiled gate counts: {why}")
    total = max(1, sum(hist))
    lines.append(f"  learned gate types ({sum(hist):,} gates; a conv tree gate counts once):")
    for name, h in sorted(zip(gates.NAMES, hist), key=lambda t: -t[1]):
        lines.append(f"      {name:12s} {h:>10,}  {100 * h / total:5.1f}%")
    return lines
