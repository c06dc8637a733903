"""Own data: the dense presets on scikit-learn's bundled tables, next to classical baselines.

    python -m pytest benches/bench_tabular.py --benchmark-only -s

* The sets: breast cancer (569 rows, 30 float features, 2 classes) and the 8x8 digits (1,797
  rows, 64 features 0..16, 10 classes), written as .npz tables, so the figures come from the
  same path as ``difflogic train --dataset FILE.npz``: a held-out test split of 20% of each
  class, 10% of the rest for validation (model selection), thermometer thresholds at the
  training rows' quantiles.
* ``tabular-s`` and ``tabular-m`` with their own training settings (100 epochs, straight-through
  gates from half-way), three seeds each: hard (discretised) test accuracy and gate count.
* Baselines on the same training rows and test split: logistic regression and a small MLP
  (one hidden layer of 100 ReLUs), both on standardised features (scikit-learn).
* The compiled C of each trained network, checked bit-exact against the PyTorch hard network
  on the measured rows: rows/s on one thread from pre-encoded input bits, and from float32
  rows (``CompiledNet`` on float32 input: the thermometer comparisons run in C,
  ``dl_scores_f32``).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from difflogic import data
from difflogic.backends.c import CompiledNet
from difflogic.checkpoint import load_model
from difflogic.compiler import compile, encode_input, hard_counts
from difflogic.training import TrainOptions, train

datasets = pytest.importorskip("sklearn.datasets")

SETS = ("breast-cancer", "digits")
PRESETS = ("tabular-s", "tabular-m")
SEEDS = (0, 1, 2)
N_ROWS = 65536


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    """{name: .npz path}; own data's decoded copies in a fresh $DIFFLOGIC_DATA."""
    root = tmp_path_factory.mktemp("tabular")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DIFFLOGIC_DATA", str(root / "data"))
        bc, dg = datasets.load_breast_cancer(), datasets.load_digits()
        paths = {"breast-cancer": root / "breast-cancer.npz", "digits": root / "digits.npz"}
        np.savez(paths["breast-cancer"], x=bc.data, y=bc.target, classes=bc.target_names)
        np.savez(paths["digits"], x=dg.data, y=dg.target)
        yield paths


def split(path):
    """(x_train rows the network trains on, y, x_test, y_test) as ``difflogic train`` splits."""
    ds = data.open_dataset(path)
    (x, y), (xt, yt) = ds.load("train"), ds.load("test")
    train_idx, _ = data.train_val_split(len(y), ds.info.val_size_for(len(y)), data.SPLIT_SEED)
    return np.asarray(x)[train_idx], y[train_idx], np.asarray(xt), yt


@pytest.fixture(scope="module")
def runs(sets, tmp_path_factory):
    """{(set, preset): [(summary, model) per seed]}."""
    out = {}
    for name in SETS:
        for preset in PRESETS:
            out[name, preset] = []
            for seed in SEEDS:
                run = tmp_path_factory.mktemp(f"{name}-{preset}-{seed}")
                s = train(TrainOptions(dataset=str(sets[name]), model=preset, seed=seed,
                                       out=str(run), overwrite=True, progress="none"))
                out[name, preset].append((s, load_model(run / "model.pt")))
    return out


@pytest.mark.parametrize("name", SETS)
def test_baselines(name, sets, benchmark):
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    x, y, xt, yt = split(sets[name])
    scores = {}
    for label, clf in (("logistic regression", LogisticRegression(max_iter=5000)),
                       ("MLP 100 ReLU", MLPClassifier((100,), max_iter=2000, random_state=0))):
        pipe = make_pipeline(StandardScaler(), clf).fit(x, y)
        scores[label] = float((pipe.predict(xt) == yt).mean())
    benchmark.pedantic(lambda: None, rounds=1)
    benchmark.extra_info.update({k: round(100 * v, 2) for k, v in scores.items()})
    print(f"\n{name}: " + ", ".join(f"{k} {100 * v:.2f}%" for k, v in scores.items())
          + f" ({len(y)} training rows, {len(yt)} test rows)")


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("name", SETS)
def test_logic_network(name, preset, sets, runs, benchmark):
    done = runs[name, preset]
    accs = [100 * s["test_hard_acc"] for s, _ in done]
    model = done[0][1].eval()
    _, _, xt, _ = split(sets[name])
    rows = np.ascontiguousarray(np.resize(xt, (N_ROWS, xt.shape[1])), dtype=np.float32)
    c = CompiledNet(compile(model), threads=1)
    bits = encode_input(c.netlist, rows)
    np.testing.assert_array_equal(c.counts(rows), hard_counts(model, torch.from_numpy(rows)))
    benchmark.pedantic(c.counts, args=(bits,), kwargs={"encoded": True}, rounds=5,
                       warmup_rounds=1)
    from_bits = N_ROWS / benchmark.stats.stats.min
    from_floats = N_ROWS / min(_seconds(c.counts, rows) for _ in range(3))
    benchmark.extra_info.update({
        "hard_test_acc_per_seed": [round(a, 2) for a in accs], "mean": round(np.mean(accs), 2),
        "gates": done[0][0]["gates"], "gates_optimized": c.netlist.gate_count(),
        "rows_per_s_bits": round(from_bits), "rows_per_s_floats": round(from_floats),
        "train_time_s": [s["train_time_s"] for s, _ in done]})
    print(f"\n{name} {preset}: hard test {' / '.join(f'{a:.2f}' for a in accs)}% "
          f"(mean {np.mean(accs):.2f}%), {done[0][0]['gates']:,} gates "
          f"({c.netlist.gate_count():,} after optimization), trained in "
          f"{np.mean([s['train_time_s'] for s, _ in done]):.0f} s; C on 1 thread "
          f"{from_bits:,.0f} rows/s from bits, {from_floats:,.0f} from float32 rows")


def _seconds(fn, *args) -> float:
    import time
    t = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t
