"""Distillation: the teacher command and file, the loss, and distilled training (fake data)."""
import json

import numpy as np
import pytest
import torch

from difflogic import data
from difflogic.cli import main
from difflogic.training import TrainOptions, distillation_loss, train
from difflogic.training import teacher

from conftest import TINY, run_metrics, run_state

pytestmark = pytest.mark.usefixtures("one_thread")

CIFAR_TINY = json.loads(json.dumps(TINY))
CIFAR_TINY["input_shape"] = [3, 32, 32]
CIFAR_TINY["layers"][0] = {"type": "thresholds", "num": 2}


@pytest.fixture(scope="module")
def cifar(tmp_path_factory):
    """Fake CIFAR-10 (5 x 24 training images) and a 1-epoch teacher made by the CLI."""
    root = tmp_path_factory.mktemp("cifar")
    data.write_fake_cifar10(root, n_train_per_batch=24, n_test=20)
    path = root / "teacher.npz"
    assert main(["teacher", "--dataset", "cifar10", "--data-dir", str(root), "--epochs", "1",
                 "--batch-size", "25", "--progress", "none", "--out", str(path)]) == 0
    return root, path


def _labels(root):
    return data.load_dataset("cifar10", root, "train")[1]


def test_distillation_loss_matches_its_formula():
    g = torch.Generator().manual_seed(0)
    s = torch.randn(16, 10, generator=g, dtype=torch.float64) * 3
    t = torch.randn(16, 10, generator=g, dtype=torch.float64) * 3
    y = torch.randint(0, 10, (16,), generator=g)
    ce = torch.nn.functional.cross_entropy(s, y)
    assert torch.equal(distillation_loss(s, y, t, 0.0, 2.0), ce)
    for w, temp in ((1.0, 1.0), (0.3, 4.0)):
        pt, ps = torch.softmax(t / temp, -1), torch.softmax(s / temp, -1)
        kl = (pt * (pt.log() - ps.log())).sum(-1).mean() * temp ** 2
        torch.testing.assert_close(distillation_loss(s, y, t, w, temp), (1 - w) * ce + w * kl)
        # label smoothing smooths the label term only
        ce_ls = torch.nn.functional.cross_entropy(s, y, label_smoothing=0.1)
        assert not torch.allclose(ce_ls, ce)
        torch.testing.assert_close(distillation_loss(s, y, t, w, temp, label_smoothing=0.1),
                                   (1 - w) * ce_ls + w * kl)
    # the teacher's term alone is minimised (zero gradient) where the scores equal the teacher's
    s0 = t.clone().requires_grad_(True)
    distillation_loss(s0, y, t, 1.0, 3.0).backward()
    assert s0.grad.abs().max() < 1e-12
    s1 = (t + 1e-3 * torch.randn_like(t)).requires_grad_(True)
    distillation_loss(s1, y, t, 1.0, 3.0).backward()
    assert s1.grad.abs().max() > 0


def test_teacher_file_holds_scores_of_both_views_of_every_training_image(cifar):
    root, path = cifar
    labels = _labels(root)
    logits, meta = teacher.load_teacher(path, dataset="cifar10", labels=labels, val_size=20)
    assert logits.shape == (120, 2, 10) and logits.dtype == np.float32
    assert not np.array_equal(logits[:, 0], logits[:, 1])  # flipped images score differently
    assert meta["dataset"] == "cifar10" and meta["val_size"] == 20 and meta["epochs"] == 1
    assert 0 <= meta["val_acc"] <= 1 and 0 <= meta["test_acc"] <= 1
    # no temp file left next to it
    assert sorted(p.name for p in path.parent.glob("*teacher*")) == ["teacher.npz"]


def test_distilled_training_uses_the_teacher_and_resumes_bit_exactly(cifar, tmp_path, capsys):
    root, path = cifar
    common = dict(dataset="cifar10", data_dir=str(root), model_config=CIFAR_TINY, steps=24,
                  eval_every=8, seed=2, augment=True, crop_padding=0, progress="lines",
                  test=False, teacher=str(path), kd_weight=0.7, kd_temperature=3.0)
    full, part, plain = tmp_path / "full", tmp_path / "part", tmp_path / "plain"
    train(TrainOptions(out=str(full), **common))
    err = capsys.readouterr().err
    assert f"distilled from {path}" in err and "weight 0.7, temperature 3" in err
    train(TrainOptions(out=str(part), stop_after=13, **common))
    train(TrainOptions(resume=str(part), progress="none", test=False))
    a, b = run_state(full), run_state(part)
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k
    assert run_metrics(full) == run_metrics(part)
    # without the teacher the same run ends elsewhere: the teacher's scores were used
    train(TrainOptions(out=str(plain), **{**common, "teacher": None, "kd_weight": None,
                                          "kd_temperature": None}))
    assert not torch.equal(a["state_dict"]["5.weight"], run_state(plain)["state_dict"]["5.weight"])
    # a resumed run keeps its teacher: other weights and changed scores are refused
    with pytest.raises(ValueError, match="--kd-weight 0.5 differs"):
        train(TrainOptions(resume=str(part), kd_weight=0.5, steps=30, progress="none"))
    logits, meta = teacher.load_teacher(path, dataset="cifar10", labels=_labels(root), val_size=20)
    changed = tmp_path / "changed.npz"
    teacher.save_teacher(changed, logits + 1, meta)
    train(TrainOptions(out=str(tmp_path / "c"), stop_after=2, **{**common, "teacher": str(changed)}))
    teacher.save_teacher(changed, logits, meta)
    with pytest.raises(ValueError, match="has changed since the run started"):
        train(TrainOptions(resume=str(tmp_path / "c"), progress="none"))


def test_bad_teacher_files_are_refused_with_the_fix(cifar, tmp_path):
    root, path = cifar
    labels = _labels(root)
    logits, meta = teacher.load_teacher(path, dataset="cifar10", labels=labels, val_size=20)

    def load(p, **kw):
        return teacher.load_teacher(p, **{"dataset": "cifar10", "labels": labels, "val_size": 20, **kw})

    def variant(name, arr=logits, **changes):
        p = tmp_path / name
        teacher.save_teacher(p, arr, {**meta, **changes})
        return p

    fix = "difflogic teacher --dataset cifar10"
    with pytest.raises(teacher.TeacherError, match=f"does not exist; make one with `{fix}"):
        load(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip file at all")
    (tmp_path / "cut.npz").write_bytes(path.read_bytes()[:2000])
    for name in ("junk.npz", "cut.npz"):
        with pytest.raises(teacher.TeacherError, match="not a readable teacher file"):
            load(tmp_path / name)
    np.savez(tmp_path / "other.npz", weights=np.zeros(3))
    with pytest.raises(teacher.TeacherError, match="not a difflogic teacher file"):
        load(tmp_path / "other.npz")
    cases = [
        (variant("fmt.npz", format="something-else"), {}, "not a difflogic-teacher-1 file"),
        (variant("ds.npz", dataset="mnist"), {}, "a teacher for 'mnist', not 'cifar10'"),
        (variant("short.npz", logits[:-1]), {}, r"shape \(120, 2, classes\)"),
        (path, {"labels": labels[::-1].copy()}, "another copy or ordering of cifar10"),
        (path, {"val_size": 30}, "held out 20 validation images, this run validates on 30"),
        (variant("nan.npz", np.where(np.arange(10) == 3, np.nan, logits).astype(np.float32)), {},
         "NaN or inf"),
    ]
    for p, kw, msg in cases:
        with pytest.raises(teacher.TeacherError, match=msg):
            load(p, **kw)
    # through the trainer: wrong class count for the model, and the options' checks
    cfg = json.loads(json.dumps(CIFAR_TINY))
    cfg["num_classes"], cfg["layers"][-1]["k"] = 5, 5
    common = dict(dataset="cifar10", data_dir=str(root), steps=2, progress="none",
                  out=str(tmp_path / "run"))
    with pytest.raises(teacher.TeacherError, match="10 class scores, but model 'test-tiny' has 5"):
        train(TrainOptions(model_config=cfg, teacher=str(path), **common))
    with pytest.raises(ValueError, match=r"--kd-weight must be in \[0, 1\]"):
        train(TrainOptions(model_config=CIFAR_TINY, teacher=str(path), kd_weight=1.5, **common))
    with pytest.raises(ValueError, match="--kd-temperature must be > 0"):
        train(TrainOptions(model_config=CIFAR_TINY, teacher=str(path), kd_temperature=0.0, **common))
    with pytest.raises(ValueError, match="only apply with --teacher"):
        train(TrainOptions(model_config=CIFAR_TINY, kd_temperature=2.0, **common))
    # the CLI: one line, exit 2, and no teacher file from a bad command
    assert main(["teacher", "--dataset", "cifar10", "--data-dir", str(tmp_path / "nowhere"),
                 "--out", str(tmp_path / "t.npz")]) == 2
    assert main(["teacher", "--dataset", "cifar10", "--data-dir", str(root), "--epochs", "0",
                 "--out", str(tmp_path / "t.npz")]) == 2
    assert not (tmp_path / "t.npz").exists()


def _teacher_cmd(root, out):
    return ["teacher", "--dataset", "cifar10", "--data-dir", str(root), "--epochs", "1",
            "--batch-size", "25", "--progress", "none", "--out", str(out)]


def test_teacher_device_errors_are_clear(cifar, tmp_path, capsys):
    """--device: a typo, or CUDA on a machine without it, is one clear error before any data
    is read or file written."""
    root, _ = cifar
    out = tmp_path / "t.npz"
    assert main(_teacher_cmd(root, out) + ["--device", "gpu0"]) == 2
    assert "--device must be cpu, cuda or cuda:N" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main(_teacher_cmd(root, out) + ["--device", "cuda"]) == 1  # environment, not input
        err = capsys.readouterr().err
        assert "no CUDA device is visible" in err and "--device cpu" in err
    assert not out.exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_teacher_trains_on_gpu(cifar, tmp_path):
    """--device cuda: the teacher trains on the GPU and its file teaches as a CPU-made one."""
    root, _ = cifar
    out = tmp_path / "t.npz"
    assert main(_teacher_cmd(root, out) + ["--device", "cuda"]) == 0
    logits, meta = teacher.load_teacher(out, dataset="cifar10", labels=_labels(root), val_size=20)
    assert logits.shape == (120, 2, 10) and np.isfinite(logits).all()
    assert meta["device"] == "cuda" and 0 <= meta["test_acc"] <= 1


@pytest.mark.parametrize("command", ["teacher", "train"])
def test_negative_seed_is_refused_by_both_commands(cifar, tmp_path, capsys, command):
    """Both training commands word a bad --seed the same way, before any file is written."""
    root, _ = cifar
    out = tmp_path / ("t.npz" if command == "teacher" else "run")
    argv = _teacher_cmd(root, out) if command == "teacher" else \
        ["train", "--dataset", "cifar10", "--data-dir", str(root), "--model", "cifar10-s",
         "--steps", "1", "--progress", "none", "--out", str(out)]
    assert main(argv + ["--seed", "-1"]) == 2
    assert "--seed must be an integer >= 0, got -1" in capsys.readouterr().err
    assert not out.exists()
