"""Own data (``--dataset`` a .npz file, an image folder, a CSV table): train a few steps, eval,
export to C and check it bit-exact against the PyTorch hard network, on data that ships with
scikit-learn (the bundled breast-cancer and 8x8 digits sets) or that the tests write.  Then
the thermometer thresholds of raw features, the decoded copy, and a one-line error for each
kind of bad input naming the file, the line / row / key and the fix."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from difflogic import data
from difflogic.checkpoint import load_model
from difflogic.cli import main
from difflogic.compiler import compile, encode_input, hard_counts, random_inputs
from difflogic.compiler.sim import threshold_rows
from difflogic.layers import Thresholds, feature_thresholds
from difflogic.models import fit_to_data, get_model, get_model_config, with_dense_widths
from difflogic.training import TrainOptions, train

sklearn_datasets = pytest.importorskip("sklearn.datasets")
PIL = pytest.importorskip("PIL.Image")

#: A few steps of a small dense preset: enough to leave the initial network, fast on a CPU.
QUICK = dict(model="tabular-s", widths="60,60", steps=24, eval_every=12, batch_size=32,
             progress="none", seed=0)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """Own data's decoded copies go to a fresh folder ($DIFFLOGIC_DATA/own-data-cache)."""
    root = tmp_path_factory.mktemp("difflogic-data")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DIFFLOGIC_DATA", str(root))
        yield root / "own-data-cache"


@pytest.fixture(scope="module")
def cancer(tmp_path_factory, cache):
    bc = sklearn_datasets.load_breast_cancer()
    path = tmp_path_factory.mktemp("cancer") / "cancer.npz"
    np.savez(path, x=bc.data, y=bc.target, classes=bc.target_names,
             feature_names=bc.feature_names)
    return path


@pytest.fixture(scope="module")
def digits():
    dg = sklearn_datasets.load_digits()
    return (dg.images * 15).astype(np.uint8), dg.target


def write_csv(path, header, rows):
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def cancer_table(path, n=None):
    """The breast-cancer set as a CSV with a text class label and a categorical column."""
    bc = sklearn_datasets.load_breast_cancer()
    names = list(bc.feature_names[:8])
    sizes = np.where(bc.data[:, 0] > 15, "large", np.where(bc.data[:, 0] > 12, "mid", "small"))
    rows = [[*map(float, bc.data[i, :8]), sizes[i], bc.target_names[bc.target[i]]]
            for i in range(len(bc.target) if n is None else n)]
    return write_csv(path, names + ["size", "diagnosis"], rows)


def c_bit_exact(model, x) -> None:
    """The compiled C counts every class exactly as the PyTorch hard network does."""
    from difflogic.backends.c import CompiledNet
    x = np.array(x)   # a writable copy of a memory-mapped split
    want = hard_counts(model, torch.from_numpy(x))
    got = CompiledNet(compile(model)).counts(x)
    np.testing.assert_array_equal(got, want)


def boundary_rows(model, n: int, seed: int = 0) -> np.ndarray:
    """Float rows whose every feature sits on, just below or just above one of its thresholds,
    where ``x > t`` decides: the values a float encoder gets wrong first."""
    return threshold_rows(model[0].thresholds.numpy(), n, np.random.default_rng(seed))


# ----------------------------------------------------------------------------- end to end
def test_breast_cancer_npz_trains_evals_and_compiles_bit_exact(cancer, tmp_path, capsys):
    summary = train(TrainOptions(dataset=str(cancer), out=str(tmp_path / "run"), **QUICK))
    model = load_model(tmp_path / "run" / "model.pt")
    spec = model.config["input"]
    assert spec["kind"] == "table" and spec["shape"] == [30] and spec["classes"] == [
        "malignant", "benign"] and spec["features"][0] == "mean radius"
    assert model.input_shape == (30,) and model.config["layers"][-2]["out_features"] == 60
    # thresholds from the training rows only (not validation, not test), in raw units
    ds = data.open_dataset(cancer)
    x_train, _ = ds.load("train")
    train_idx, _ = data.train_val_split(len(x_train), ds.info.val_size, data.SPLIT_SEED)
    np.testing.assert_array_equal(model[0].thresholds.numpy(), np.array(
        feature_thresholds(x_train, 15, train_idx), np.float32))
    assert model[0].thresholds[list(spec["features"]).index("mean area")].min() > 100
    assert main(["eval", str(tmp_path / "run"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["images"] == 113 and result["hard_acc"] == pytest.approx(
        summary["test_hard_acc"])
    x_test, _ = data.open_dataset(cancer).load("test")
    c_bit_exact(model, np.concatenate([x_test, boundary_rows(model, 200)]))


def test_digits_as_uint8_images_in_npz(digits, tmp_path, cache):
    x, y = digits
    path = tmp_path / "digits.npz"
    np.savez(path, x=x[:1500], y=y[:1500], x_test=x[1500:], y_test=y[1500:])
    train(TrainOptions(dataset=str(path), out=str(tmp_path / "run"), **{**QUICK, "widths": "100,100"}))
    model = load_model(tmp_path / "run" / "model.pt")
    assert model.input_shape == (1, 8, 8) and model.config["input"]["kind"] == "image"
    x_test, y_test = data.open_dataset(path).load("test")
    assert len(y_test) == len(y) - 1500 and (np.asarray(x_test)[:, 0] == x[1500:]).all()
    c_bit_exact(model, x_test)


def test_image_folder_trains_evals_and_verifies(digits, tmp_path, cache, capsys):
    x, y = digits
    root = tmp_path / "shapes"
    for i in range(300):   # PNG and JPEG, in one folder per class named by the digit
        (root / f"d{y[i]}").mkdir(parents=True, exist_ok=True)
        PIL.fromarray(x[i]).save(root / f"d{y[i]}" / f"{i}.{'png' if i % 3 else 'jpg'}")
    ds = data.open_dataset(root, image_size="12x12", image_mode="RGB")
    assert ds.info.shape == (3, 12, 12) and ds.info.classes[:2] == ("d0", "d1")
    assert ds.info.train_size + ds.info.test_size == 300
    train(TrainOptions(dataset=str(root), image_size="12x12", image_mode="RGB",
                       out=str(tmp_path / "run"), **{**QUICK, "widths": "100,100"}))
    model = load_model(tmp_path / "run" / "model.pt")
    assert model.config["input"]["mode"] == "RGB" and model.input_shape == (3, 12, 12)
    assert main(["eval", str(tmp_path / "run")]) == 0
    assert f"on shapes test ({ds.info.test_size} images)" in capsys.readouterr().out
    assert main(["verify", str(tmp_path / "run" / "model.pt"), "--target", "c", "--samples", "64",
                 "--dataset", str(root)]) == 0
    assert f"{ds.info.test_size} shapes test images: torch == ir" in capsys.readouterr().out


def test_csv_with_a_categorical_column(tmp_path, cache, capsys):
    path = cancer_table(tmp_path / "cancer.csv")
    train(TrainOptions(dataset=str(path), label_column="diagnosis", out=str(tmp_path / "run"),
                       **QUICK))
    model = load_model(tmp_path / "run" / "model.pt")
    spec = model.config["input"]
    assert spec["label"] == "diagnosis" and spec["classes"] == ["benign", "malignant"]
    assert spec["columns"][8] == {"name": "size", "levels": ["large", "mid", "small"]}
    assert spec["features"][8:] == ["size=large", "size=mid", "size=small"]
    x, y, lines = data.read_rows(path, spec)
    assert x.shape == (569, 11) and lines[0] == 2 and (x[:, 8:].sum(1) == 1).all()
    c_bit_exact(model, np.concatenate([x, boundary_rows(model, 200)]))
    # the checkpoint alone reads new rows: no training file, no decoded copy, extra columns
    rows = write_csv(tmp_path / "new.csv", ["note", "size", *spec["features"][:8]],
                     [["a", "mid", *x[0, :8].tolist()], ["b", "small", *x[5, :8].tolist()]])
    path.unlink()
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "run"), "--rows", str(rows)]) == 0
    out = capsys.readouterr().out.splitlines()
    want = model.eval()(torch.from_numpy(x[[0, 5]])).argmax(1).tolist()
    assert out == ["line\tclass", *(f"{n}\t{spec['classes'][c]}" for n, c in zip((2, 3), want))]


def test_eval_reads_another_table_by_the_models_schema(tmp_path, cache, capsys):
    path = write_csv(tmp_path / "t.csv", ["a", "color", "label"],
                     [[i % 7, ["red", "blue"][i % 2], i % 2] for i in range(40)])
    train(TrainOptions(dataset=str(path), out=str(tmp_path / "run"),
                       **{**QUICK, "steps": 4, "batch_size": 8}))
    other = write_csv(tmp_path / "other.csv", ["label", "color", "a"],   # one level, new order
                      [[1, "blue", 3], [1, "blue", 5], [0, "blue", 1]])
    assert main(["eval", str(tmp_path / "run"), "--dataset", str(other), "--split", "all",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["images"] == 3
    x, y, _ = data.read_rows(other, load_model(tmp_path / "run" / "model.pt").config["input"])
    np.testing.assert_array_equal(x, [[3, 1, 0], [5, 1, 0], [1, 1, 0]])   # a, blue, red
    bad = write_csv(tmp_path / "bad.csv", ["a", "color", "label"], [[1, "green", 0]])
    rc = main(["eval", str(tmp_path / "run"), "--dataset", str(bad), "--split", "all"])
    err = capsys.readouterr().err
    assert rc == 2 and f"{bad} line 2, column 'color': 'green' is not one of" in err
    unlabelled = write_csv(tmp_path / "unlabelled.csv", ["a", "color"], [[1, "red"]])
    rc = main(["eval", str(tmp_path / "run"), "--dataset", str(unlabelled), "--split", "all"])
    err = capsys.readouterr().err
    assert rc == 2 and "no label column 'label' to score the model against; classify its " \
                       "rows with difflogic eval MODEL --rows FILE" in err


def test_a_table_run_resumes_exactly(cancer, tmp_path, one_thread):
    opts = dict(dataset=str(cancer), **{**QUICK, "steps": 12, "eval_every": 4})
    train(TrainOptions(out=str(tmp_path / "full"), **opts))
    train(TrainOptions(out=str(tmp_path / "cut"), stop_after=6, **opts))
    train(TrainOptions(resume=str(tmp_path / "cut"), progress="none"))
    a, b = (load_model(tmp_path / r / "last.pt").state_dict() for r in ("full", "cut"))
    assert all(torch.equal(a[k], b[k]) for k in a)


# ----------------------------------------------------------------------------- presets, widths
def test_tabular_presets_take_their_size_from_the_data():
    rows = np.random.default_rng(0).normal(size=(50, 7)).astype(np.float32)
    model = get_model("tabular-s", data=rows, num_classes=3)
    assert model.input_shape == (7,) and model.num_classes == 3
    assert model.config["layers"][-2]["out_features"] == 1002   # 1000 rounded up to 3 x 334
    np.testing.assert_array_equal(model[0].thresholds, np.array(feature_thresholds(rows, 15),
                                                                np.float32))
    with pytest.raises(ValueError, match="takes its size from the data"):
        get_model("tabular-m")
    cfg = with_dense_widths(fit_to_data(model.config, [7], 3), "30,20,12")
    assert [s["out_features"] for s in cfg["layers"] if s["type"] == "dense"] == [30, 20, 12]
    with pytest.raises(ValueError, match="the last width 10 must be a multiple of the model's 3"):
        with_dense_widths(cfg, [10, 10])
    with pytest.raises(ValueError, match="--widths must be positive integers"):
        with_dense_widths(cfg, "10,x")
    cfg = fit_to_data(with_dense_widths(get_model_config("tabular-m"), "30,20,10"), [4], 2)
    assert [s["out_features"] for s in cfg["layers"] if s["type"] == "dense"] == [30, 20, 10]


# ----------------------------------------------------------------------------- thresholds
def test_feature_thresholds_split_the_training_values():
    rng = np.random.default_rng(0)
    table = np.stack([rng.normal(1000, 300, 500), rng.integers(0, 2, 500), np.full(500, 3.0),
                      rng.exponential(1e-3, 500)], 1).astype(np.float32)
    thr = np.array(feature_thresholds(table, 7), dtype=np.float32)
    assert thr.shape == (4, 7)
    for f in (0, 1, 3):   # every bit takes both values on the training rows
        bits = table[:, f, None] > thr[f]
        assert bits.any(0).all() and (~bits).any(0).all()
        assert not np.isin(thr[f], table[:, f]).any() or f == 1
    np.testing.assert_array_equal(thr[1], np.full(7, 0.5))   # a 0/1 column: half-way
    np.testing.assert_array_equal(thr[2], np.full(7, 3.0))   # constant: a bit always 0
    assert (np.diff(thr[0]) > 0).all()
    # only the rows at ``indices`` count
    half = feature_thresholds(table, 7, np.arange(250))
    assert half == feature_thresholds(table[:250].copy(), 7)
    with pytest.raises(ValueError, match="NaN or inf"):
        feature_thresholds(np.array([[1.0], [np.nan]], np.float32), 3)


def test_raw_feature_thresholds_are_allowed_only_for_tables():
    layer = Thresholds([[-5.0, 250.5]], channels=1, unit_range=False)
    assert layer.eval()(torch.tensor([[-5.0], [0.0], [251.0]])).tolist() == [[0, 0], [1, 0], [1, 1]]
    with pytest.raises(ValueError, match=r"in \[0, 1\)"):
        Thresholds([250.5], channels=1)


def test_random_inputs_of_a_table_sit_on_its_thresholds(cancer):
    x, _ = data.open_dataset(cancer).load("test")
    model = get_model("tabular-s", data=x, num_classes=2)
    rows = random_inputs(compile(model, optimize=False), 64, seed=3)
    thr = model[0].thresholds.numpy()
    near = [np.isin(rows[:, f], np.concatenate([thr[f], np.nextafter(thr[f], np.inf),
                                                np.nextafter(thr[f], -np.inf)]))
            for f in range(thr.shape[0])]
    assert rows.dtype == np.float32 and rows.shape == (64, 30) and np.all(near)
    assert (rows[:, :, None] > thr).any() and (rows[:, :, None] == thr).any()


def test_encoded_bits_of_a_table_match_the_encoder(cancer):
    x, _ = data.open_dataset(cancer).load("test")
    model = get_model("tabular-s", data=x, num_classes=2)
    rows = np.concatenate([x, boundary_rows(model, 50)])
    bits = model.eval()[0](torch.from_numpy(rows)).numpy()
    np.testing.assert_array_equal(encode_input(compile(model, optimize=False), rows), bits)


def test_verilog_takes_the_raw_float_features_of_a_table(cancer, tmp_path):
    """The Verilog export of a table model has ``difflogic_features`` (float32 features ->
    encoded bits): its bits equal float32 ``x > t`` for every row (on, just below and just
    above each threshold; -0.0, infinities and NaN), and with ``difflogic_net`` behind it each
    finite row gets the PyTorch hard network's class (Icarus Verilog)."""
    import subprocess

    from conftest import need
    need("iverilog", "vvp")
    from difflogic.backends.verilog import export
    x, _ = data.open_dataset(cancer).load("test")
    model = get_model("tabular-s", data=x, num_classes=2).eval()
    model[0].thresholds[0, :2] = torch.tensor([-0.0, 0.0])   # both zeros: -0.0 == +0.0
    special = np.tile(np.array(x[:1]), (5, 1))
    special[:, :5] = np.array([[-0.0, np.inf, -np.inf, np.nan, 0.0]] * 5).T
    rows = np.concatenate([x[:40], boundary_rows(model, 60), special]).astype(np.float32)
    side = export(compile(model), tmp_path)
    assert (tmp_path / "difflogic_features.v").is_file()
    F, T = model[0].thresholds.shape
    (tmp_path / "rows.hex").write_text("".join(
        "".join(f"{v:08x}" for v in row[::-1]) + "\n" for row in rows.view(np.uint32)))
    (tmp_path / "tb_features.v").write_text(f"""`timescale 1ns/1ps
module tb;
  reg [{32 * F - 1}:0] mem [0:{len(rows) - 1}];
  reg [{32 * F - 1}:0] features;
  wire [{F * T - 1}:0] x;
  wire [{side["class_width"] - 1}:0] class_idx;
  integer i;
  difflogic_features enc (.features(features), .x(x));
  difflogic_net net (.x(x), .class_idx(class_idx));
  initial begin
    $readmemh("rows.hex", mem);
    for (i = 0; i < {len(rows)}; i = i + 1) begin
      features = mem[i]; #1 $display("%h %0d", x, class_idx);
    end
    $finish;
  end
endmodule
""")
    subprocess.run(["iverilog", "-g2012", "-o", "sim", "tb_features.v", "difflogic_features.v",
                    "difflogic_net.v"], cwd=tmp_path, check=True, timeout=120)
    out = subprocess.run(["vvp", "-n", "sim"], cwd=tmp_path, check=True, timeout=120,
                         capture_output=True, text=True).stdout.split()
    got_x = np.array([[int(h, 16) >> i & 1 for i in range(F * T)] for h in out[0::2]])
    thr = model[0].thresholds.numpy()
    with np.errstate(invalid="ignore"):
        want_x = (rows[:, :, None] > thr[None]).reshape(len(rows), -1)
    np.testing.assert_array_equal(got_x, want_x)
    finite = np.isfinite(rows).all(1)
    with torch.no_grad():
        want_cls = model(torch.from_numpy(rows[finite])).argmax(1).numpy()
    np.testing.assert_array_equal(np.array(out[1::2], dtype=int)[finite], want_cls)


def test_bench_runs_a_table_model_on_its_rows(cancer, tmp_path, capsys):
    """``difflogic bench`` on a table model: the PyTorch model on float32 rows, the C on their
    encoding, each checked bit-exact first; random rows and the test split of the .npz."""
    train(TrainOptions(dataset=str(cancer), out=str(tmp_path / "run"), **QUICK))
    for extra in ([], ["--dataset", str(cancer)]):
        argv = ["bench", str(tmp_path / "run"), "--targets", "torch,c", "--threads", "1",
                "--batch", "64", "--repeats", "1", "--json", str(tmp_path / "b.json"), *extra]
        assert main(argv) == 0
        report = json.loads((tmp_path / "b.json").read_text())
        rows = [r for t in report["targets"] for r in t["rows"]]
        assert {t["target"] for t in report["targets"]} == {"torch", "c"}
        assert rows and all(r["status"] == "ok" for r in rows), rows
        assert all(r["input"] == "images" for r in rows)   # raw rows: the C encodes them itself


# ----------------------------------------------------------------------------- data layer
def test_table_loader_hands_out_features_unscaled():
    x = np.arange(40, dtype=np.float32).reshape(10, 4) * 100
    y = np.arange(10) % 2
    xb, yb = next(iter(data.BatchLoader(x, y, 4, shuffle=False)))
    assert xb.dtype == torch.float32 and torch.equal(xb, torch.from_numpy(x[:4]))
    with pytest.raises(ValueError, match="nothing to flip"):
        data.BatchLoader(x, y, 4, augment=True)
    with pytest.raises(TypeError, match="uint8"):
        data.BatchLoader(x.astype(np.float64), y, 4)


def test_holdout_split_is_stratified_and_fixed():
    y = np.repeat([0, 1, 2], [50, 30, 2])
    test = data.holdout_split(y)
    assert [int(test[y == c].sum()) for c in range(3)] == [10, 6, 0]
    np.testing.assert_array_equal(test, data.holdout_split(y.copy()))


def test_the_decoded_copy_is_made_once_and_follows_the_file(tmp_path, cache):
    path = write_csv(tmp_path / "copy.csv", ["a", "y"], [[i, i % 2] for i in range(20)])
    first = data.open_dataset(path)
    made = {p: p.stat().st_mtime_ns for p in cache.glob("copy-*/meta.json")}
    again = data.open_dataset(path)
    assert again.info == first.info and len(made) == 1
    assert {p: p.stat().st_mtime_ns for p in cache.glob("copy-*/meta.json")} == made
    np.testing.assert_array_equal(again.load("all")[0], first.load("all")[0])
    write_csv(path, ["a", "y"], [[i, i % 2] for i in range(30)])
    info = data.open_dataset(path).info
    assert info.train_size + info.test_size == 30 and len(list(cache.glob("copy-*"))) == 2
    assert not list(cache.glob(".*.tmp"))   # nothing half-written left behind


def test_large_npz_members_are_memory_mapped(tmp_path, cache):
    path = tmp_path / "big.npz"
    x = np.random.default_rng(0).random((300, 5)).astype(np.float32)
    np.savez(path, x=x, y=np.arange(300) % 3)
    arrays = data.npz_arrays(path)
    assert isinstance(arrays["x"], np.memmap)
    np.testing.assert_array_equal(arrays["x"], x)
    np.savez_compressed(path, x=x, y=np.arange(300) % 3)
    np.testing.assert_array_equal(data.npz_arrays(path)["x"], x)


# ----------------------------------------------------------------------------- bad input
def one_line(capsys, argv) -> str:
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("difflogic train: error: ") and err.count("\n") == 1, err
    return err


def train_argv(dataset, tmp_path, *extra):
    return ["train", "--dataset", str(dataset), "--model", "tabular-s", "--widths", "20",
            "--steps", "1", "--out", str(tmp_path / "run"), *extra]


@pytest.mark.parametrize("case, header, rows, expect", [
    ("ragged", ["a", "b", "label"], [[1, 2, 0], [1, 2], [3, 4, 1]],
     "line 3: 2 cells, but the header has 3 columns"),
    ("non-numeric", ["a", "label"], [[1, 0], [2, 1], ["x7", 0], [4, 1]],
     "line 4, column 'a': 'x7' is not a number, but 3 other cells of the column are; fix the "
     "cell, or one-hot the column with --categorical a"),
    ("missing label", ["a", "label"], [[1, 0], [2, ""], [3, 1]],
     "line 3: no label in column 'label'; give every row a label or drop the row"),
    ("empty class", ["a", "label"], [[1, 0], [2, 2], [3, 0], [4, 2]],
     "class 1 has no rows (the labels run 0..2); labels must be 0..C-1 with every class present"),
    ("nan cell", ["a", "b", "label"], [[1, 2, 0], [1, "NaN", 1], [1, 2, 1]],
     "line 3, column 'b': no value (NaN); fill it in or drop the row"),
    ("fractional label", ["a", "label"], [[1, 0], [2, 1.5], [3, 1]],
     "line 3: label '1.5' is not a class number 0..C-1"),
    ("no label column", ["a", "b"], [[1, 0], [2, 1]],
     "no label column (none of label, class, target, y in the header a, b); name it with "
     "--label-column NAME"),
    ("no header", ["1", "2"], [[1, 0], [2, 1]], "the first row holds numbers"),
])
def test_bad_tables_are_one_line_errors(case, header, rows, expect, tmp_path, cache, capsys):
    path = write_csv(tmp_path / "bad.csv", header, rows)
    err = one_line(capsys, train_argv(path, tmp_path))
    assert f"{path}" in err and expect in err


def test_bad_npz_files_are_one_line_errors(tmp_path, cache, capsys):
    x, y = np.zeros((10, 3), np.float32), np.arange(10) % 2
    cases = {
        "no x": (dict(y=y), "has no array 'x' (it holds y); save it with numpy.savez"),
        "no arrays": (dict(), "has no array 'x' (it holds no arrays)"),
        "no y": (dict(x=x), "has no array 'y'"),
        "float labels": (dict(x=x, y=y.astype(float)), "y holds float64; labels must be "
                                                        "integers 0..C-1"),
        "negative label": (dict(x=x, y=y - 1), "y[0] = -1 is not a class 0..C-1"),
        "empty class": (dict(x=x, y=y * 2), "class 1 ('1') has no examples in y"),
        "nan": (dict(x=np.where(np.arange(10)[:, None] == 4, np.nan, x), y=y),
                "x[4] holds NaN or inf"),
        "float images": (dict(x=np.zeros((10, 1, 4, 4)), y=y), "x holds float64 images; "
                                                               "images must be uint8"),
        "channels last": (dict(x=np.zeros((10, 4, 4, 3), np.uint8), y=y),
                          "x looks channels-last (10, 4, 4, 3)"),
        "ragged test": (dict(x=x, y=y, x_test=x[:, :2], y_test=y), "x_test has rows of shape "
                                                                   "(2,), expected (3,)"),
    }
    for name, (arrays, expect) in cases.items():
        path = tmp_path / f"{name.replace(' ', '_')}.npz"
        np.savez(path, **arrays)
        err = one_line(capsys, train_argv(path, tmp_path))
        assert str(path) in err and expect in err, name


def test_bad_image_folders_are_one_line_errors(tmp_path, cache, capsys):
    def folder(name, images):
        root = tmp_path / name
        for cls, i, size, mode in images:
            (root / cls).mkdir(parents=True, exist_ok=True)
            PIL.new(mode, size).save(root / cls / f"{i}.png")
        return root
    sizes = folder("sizes", [("a", 0, (8, 8), "L"), ("b", 1, (8, 6), "L")])
    err = one_line(capsys, train_argv(sizes, tmp_path))
    assert f"images of mixed sizes: {sizes}/a/0.png is 8x8, {sizes}/b/1.png is 6x8; give " \
           "--image-size HxW to resize them all" in err
    modes = folder("modes", [("a", 0, (8, 8), "L"), ("b", 1, (8, 8), "RGB")])
    err = one_line(capsys, train_argv(modes, tmp_path))
    assert f"{modes}/b/1.png is RGB; give --image-mode RGB or L" in err
    (modes / "c").mkdir()
    err = one_line(capsys, train_argv(modes, tmp_path, "--image-mode", "L"))
    assert f"{modes}/c: no PNG or JPEG images in this class folder" in err
    broken = folder("broken", [("a", 0, (8, 8), "L"), ("b", 1, (8, 8), "L")])
    (broken / "b" / "2.png").write_bytes(b"not an image")
    err = one_line(capsys, train_argv(broken, tmp_path))
    assert f"{broken}/b/2.png: not a readable PNG/JPEG image" in err


def test_options_that_do_not_apply_are_refused(cancer, tmp_path, capsys):
    err = one_line(capsys, train_argv(cancer, tmp_path, "--image-size", "8x8"))
    assert "--image-size applies to image folders, not to cancer.npz" in err
    err = one_line(capsys, train_argv(cancer, tmp_path, "--augment"))
    assert "--augment flips and crops images; cancer.npz is a table" in err
    err = one_line(capsys, train_argv(tmp_path / "nope.csv", tmp_path))
    assert f"{tmp_path / 'nope.csv'}: no such file" in err


def test_train_and_eval_help_name_the_own_data_options(capsys):
    for argv, words in ((["train", "--help"], ("--image-size HxW", "--image-mode {RGB,L}",
                                               "--label-column NAME", "--categorical COL,COL",
                                               "--widths W,W,...", "a .csv table")),
                        (["eval", "--help"], ("--rows FILE.csv", "{test,train,all}"))):
        with pytest.raises(SystemExit) as ei:
            main(argv)
        out = " ".join(capsys.readouterr().out.split())
        assert ei.value.code == 0 and all(w in out for w in words), out
