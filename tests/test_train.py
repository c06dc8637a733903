"""Training loop: end-to-end train / eval / info on fake data, and bit-exact resume."""
import json
import math

import numpy as np
import pytest
import torch

from difflogic import data
from difflogic.checkpoint import CheckpointError, load_checkpoint, load_model
from difflogic.cli import main
from difflogic.training import TrainOptions, keep_freed_memory, lr_at, make_optimizer, train

from conftest import TINY, run_metrics, run_state

#: Bit-exactness holds for a fixed thread count; 1 keeps the tests cheap on busy machines.
pytestmark = pytest.mark.usefixtures("one_thread")

@pytest.fixture(scope="module")
def fake_mnist(tmp_path_factory):
    return data.write_fake_idx(tmp_path_factory.mktemp("fake_mnist"), n_train=120, n_test=40)


@pytest.fixture(scope="module")
def tiny_json(tmp_path_factory):
    p = tmp_path_factory.mktemp("cfg") / "tiny.json"
    p.write_text(json.dumps(TINY))
    return p


def test_cli_train_eval_info_end_to_end(fake_mnist, tiny_json, tmp_path, capsys):
    run = tmp_path / "run"
    rc = main(["train", "--dataset", "mnist", "--data-dir", str(fake_mnist), "--model",
               str(tiny_json), "--steps", "60", "--eval-every", "20", "--seed", "3",
               "--progress", "lines", "--out", str(run)])
    assert rc == 0
    for name in ("model.pt", "last.pt", "metrics.jsonl", "curves.png", "summary.json"):
        assert (run / name).is_file(), name
    assert (run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [20, 40, 60]
    for r in records:
        for key in ("epoch", "loss", "train_acc", "train_hard_acc", "val_acc", "val_hard_acc",
                    "elapsed_s", "images_per_s"):
            assert key in r, key
        assert 0 <= r["val_hard_acc"] <= 1 and r["loss"] > 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 60 and 0 <= summary["test_hard_acc"] <= 1
    # model.pt is the best hard-validation checkpoint
    best = max(records, key=lambda r: r["val_hard_acc"])
    assert summary["best_step"] == min(r["step"] for r in records
                                       if r["val_hard_acc"] == best["val_hard_acc"])
    assert load_model(run / "model.pt").config["name"] == "test-tiny"
    err = capsys.readouterr().err
    assert "step 60/60  loss" in err and "[eval step 20" in err and "test accuracy" in err

    # eval: dataset taken from the checkpoint; hard accuracy equals the training summary's
    assert main(["eval", str(run / "model.pt"), "--data-dir", str(fake_mnist), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["hard_acc"] == summary["test_hard_acc"] and res["gates"] == summary["gates"]
    assert res["images"] == 40 and 0 <= res["relaxed_acc"] <= 1
    assert main(["eval", str(run), "--data-dir", str(fake_mnist), "--device", "gpu"]) == 2
    assert "--device must be cpu, cuda or cuda:N" in capsys.readouterr().err

    # info: per-layer gates sum to the model's count, 16-gate histogram, PNG chart
    png = tmp_path / "gates.png"
    assert main(["info", str(run), "--plot", str(png), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert sum(layer["gates"] for layer in info["layers"]) == info["gates"] == summary["gates"]
    assert len(info["gate_histogram"]) == 16
    assert sum(info["gate_histogram"].values()) == 4 * 3 + 8 * 3 + 120 + 60
    assert png.read_bytes()[:4] == b"\x89PNG"
    # bare --plot (the issue's `difflogic info RUN/model.pt --plot`): RUN/gates.png
    assert not (run / "gates.png").exists()
    assert main(["info", str(run / "model.pt"), "--plot", "--no-compile"]) == 0
    assert f"wrote {run / 'gates.png'}" in capsys.readouterr().out
    assert (run / "gates.png").read_bytes()[:4] == b"\x89PNG"
    # `info --plot RUN/model.pt` would swallow the checkpoint as the PNG path: a clear error
    assert main(["info", "--plot", str(run / "model.pt")]) == 2
    assert "put the checkpoint first" in capsys.readouterr().err
    assert main(["info", str(run / "model.pt"), "--no-compile"]) == 0
    assert "total training gates" in capsys.readouterr().out


@pytest.mark.parametrize("schedule,steps,stop_at,eval_every,extra", [
    ("constant", 2000, 1000, 500, {}),  # 2k steps vs 1k + resume 1k
    ("cosine", 200, 70, 60, {}),        # stop between evaluations, schedule depends on the step
    # Gumbel straight-through: the noise comes from the checkpointed RNG, so it replays too
    ("cosine", 200, 70, 60, {"gumbel": 1.0, "ste_from": 0.0}),
    # stopped inside the straight-through polish that follows the schedule
    ("cosine", 200, 215, 60, {"polish_steps": 40}),
])
def test_resume_is_bit_exact(fake_mnist, tmp_path, schedule, steps, stop_at, eval_every, extra):
    common = dict(dataset="mnist", data_dir=str(fake_mnist), model_config=TINY, steps=steps,
                  eval_every=eval_every, seed=5, schedule=schedule, progress="none", test=False,
                  **extra)
    full = tmp_path / "full"
    train(TrainOptions(out=str(full), **common))
    part = tmp_path / "part"
    s1 = train(TrainOptions(out=str(part), stop_after=stop_at, **common))
    assert s1["stopped_early"] and s1["steps"] == stop_at
    assert run_state(part)["step"] == stop_at
    s2 = train(TrainOptions(resume=str(part), progress="none", test=False))
    steps += extra.get("polish_steps", 0)
    assert s2["steps"] == steps and not s2["stopped_early"]

    a, b = run_state(full), run_state(part)
    assert a["step"] == b["step"] == steps
    for k in a["state_dict"]:  # logits and wiring: bit for bit
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        for key in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(sa[key], sb[key]), key
    assert a["loader"] == b["loader"]
    ma, mb = load_model(full / "model.pt"), load_model(part / "model.pt")
    x = torch.rand(32, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(ma(x), mb(x))
        assert torch.equal(ma.train()(x), mb.train()(x))  # relaxed logits too
    assert run_metrics(full) == run_metrics(part)


def test_extending_a_finished_run(fake_mnist, tmp_path, capsys):
    """`--resume RUN --steps N` trains a finished run on: with a constant schedule that is
    exactly the longer run; a cosine one says how its learning rate jumps, and a moved
    straight-through start is named whatever the schedule."""
    common = dict(dataset="mnist", data_dir=str(fake_mnist), model_config=TINY, eval_every=20,
                  seed=3, progress="none", test=False)
    full, part = tmp_path / "full", tmp_path / "part"
    train(TrainOptions(out=str(full), steps=80, **common))
    train(TrainOptions(out=str(part), steps=40, **common))
    s = train(TrainOptions(resume=str(part), steps=80, progress="lines", test=False))
    assert s["steps"] == 80 and not s["stopped_early"]
    assert "run length changed from 40 to 80 steps" in capsys.readouterr().err
    a, b = run_state(full), run_state(part)
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k
    assert run_metrics(full) == run_metrics(part)

    cos = tmp_path / "cos"
    train(TrainOptions(out=str(cos), steps=40, schedule="cosine", **common))
    capsys.readouterr()
    train(TrainOptions(resume=str(cos), steps=80, progress="lines", test=False))
    err = capsys.readouterr().err
    # cosine at step 40: 0 at the end of a 40-step run, half the base lr in an 80-step one
    lr = load_checkpoint(cos / "last.pt")["optimizer"]["param_groups"][0]["lr"]
    assert "the cosine learning rate at step 40 moves from 0 to" in err, err
    assert lr > 0

    # a straight-through start is a fraction of the run too, whatever the schedule: at 0.75 it
    # was step 30 of 40 and is step 60 of 80, so the resumed steps 40-59 are relaxed again
    ste = tmp_path / "ste"
    train(TrainOptions(out=str(ste), steps=40, ste_from=0.75, **common))
    capsys.readouterr()
    train(TrainOptions(resume=str(ste), steps=80, progress="lines", test=False))
    err = capsys.readouterr().err
    assert ("run length changed from 40 to 80 steps: every layer straight-through from step 60 "
            "instead of 30, so relaxed again until then") in err, err
    assert "learning rate" not in err.split("run length changed")[1].splitlines()[0]


def test_length_note_names_every_moved_straight_through_start(capsys):
    """Shortening a run can move a layer's start to before the resume step (it switches on at
    once); starts that do not move and a constant lr are not mentioned."""
    from difflogic.training.schedule import note_new_length
    note_new_length({"steps": 100}, 50, 10, step=40, lr=0.02, schedule="constant",
                     ste_fracs=[("layer 1", 0.6), ("layer 3", 0.0)])
    err = capsys.readouterr().err
    assert ("run length changed from 100 to 50 steps: layer 1 straight-through from step 30 "
            "instead of 60, i.e. from this resume on") in err, err
    assert "layer 3" not in err and "learning rate" not in err
    note_new_length({"epochs": 2.0}, 20, 10, step=5, lr=0.02, schedule="constant", ste_fracs=[])
    assert "run length changed" not in capsys.readouterr().err  # 2 epochs x 10 = 20: no change


def test_quantile_thresholds_come_from_the_training_split(fake_mnist, tmp_path):
    """`"spacing": "quantile"` thresholds are computed once, from the training split (never the
    validation images), and written into the checkpoint's config, so the network rebuilds
    without the data and a resume keeps them."""
    from difflogic.layers import quantile_thresholds
    import shutil
    cfg = json.loads(json.dumps(TINY))
    cfg["layers"][0] = {"type": "thresholds", "num": 3, "spacing": "quantile"}
    # the fake set with its validation images made white: they would pull every quantile up
    x, _ = data.load_dataset("mnist", str(fake_mnist), "train")
    train_idx, val_idx = data.train_val_split(len(x), data.DATASET_INFO["mnist"].val_size_for(len(x)),
                                              seed=data.SPLIT_SEED)
    x[val_idx] = 255
    bright = tmp_path / "bright"
    shutil.copytree(fake_mnist, bright)
    data.write_idx(bright / "train-images-idx3-ubyte.gz", x[:, 0])
    assert np.array_equal(data.load_dataset("mnist", str(bright), "train")[0], x)
    run = tmp_path / "q"
    train(TrainOptions(dataset="mnist", data_dir=str(bright), model_config=cfg, steps=4,
                       eval_every=2, progress="none", test=False, out=str(run), stop_after=2))
    expected = quantile_thresholds(x, 3, train_idx)
    assert expected != quantile_thresholds(x, 3)  # the split matters on this data
    assert load_checkpoint(run / "last.pt")["config"]["layers"][0]["thresholds"] == expected
    train(TrainOptions(resume=str(run), progress="none", test=False))
    model = load_model(run / "model.pt")
    assert torch.equal(model[0].thresholds, torch.tensor(expected))


def test_resume_refuses_changed_settings_and_model_checkpoints(fake_mnist, tmp_path):
    run = tmp_path / "run"
    train(TrainOptions(dataset="mnist", data_dir=str(fake_mnist), model_config=TINY, steps=4,
                       eval_every=2, progress="none", test=False, out=str(run)))
    with pytest.raises(ValueError, match="batch-size"):
        train(TrainOptions(resume=str(run), batch_size=4, steps=6, progress="none"))
    with pytest.raises(CheckpointError, match="training state"):
        train(TrainOptions(resume=str(run / "model.pt"), steps=6, progress="none"))
    # extending a finished run continues it
    s = train(TrainOptions(resume=str(run), steps=6, progress="none", test=False))
    assert s["steps"] == 6


def test_augment_and_cifar_shapes(tmp_path):
    root = data.write_fake_cifar10(tmp_path / "cifar", n_train_per_batch=12, n_test=10)
    cfg = json.loads(json.dumps(TINY))
    cfg["input_shape"] = [3, 32, 32]
    cfg["layers"][0] = {"type": "thresholds", "num": 2}
    s = train(TrainOptions(dataset="cifar10", data_dir=str(root.parent), model_config=cfg,
                           steps=6, eval_every=3, augment=True, progress="none",
                           out=str(tmp_path / "run")))
    assert s["steps"] == 6 and 0 <= s["test_hard_acc"] <= 1
    with pytest.raises(ValueError, match="expects inputs of shape"):
        train(TrainOptions(dataset="mnist", data_dir=str(tmp_path), model_config=cfg, steps=1,
                           progress="none", out=str(tmp_path / "bad")))


def test_crop_padding_sets_the_augmentation_and_is_kept_on_resume(fake_mnist, tmp_path, capsys):
    common = dict(dataset="mnist", data_dir=str(fake_mnist), model_config=TINY, progress="lines",
                  test=False)
    with pytest.raises(ValueError, match="only applies with --augment"):
        train(TrainOptions(crop_padding=2, steps=2, out=str(tmp_path / "a"), **common))
    with pytest.raises(ValueError, match="crop-padding must be >= 0"):
        train(TrainOptions(crop_padding=-1, augment=True, steps=2, out=str(tmp_path / "b"), **common))
    run = tmp_path / "run"
    train(TrainOptions(augment=True, crop_padding=0, steps=4, eval_every=2, stop_after=2,
                       out=str(run), **common))
    assert "augmentation (flips only)" in capsys.readouterr().err
    assert run_state(run)["loader"]["crop_padding"] == 0
    with pytest.raises(ValueError, match="--crop-padding 3 differs"):
        train(TrainOptions(resume=str(run), crop_padding=3, progress="none"))
    train(TrainOptions(resume=str(run), progress="lines"))  # keeps 0 (not the default 2)
    assert "augmentation (flips only)" in capsys.readouterr().err
    assert run_state(run)["loader"]["crop_padding"] == 0 and run_state(run)["step"] == 4
    # the default follows the image size
    train(TrainOptions(augment=True, steps=1, out=str(tmp_path / "c"), **common))
    assert "crops padded by 2" in capsys.readouterr().err


def test_lr_schedules():
    assert lr_at(0, 100, 0.1, "constant") == lr_at(99, 100, 0.1, "constant") == 0.1
    assert lr_at(0, 100, 0.1, "cosine") == pytest.approx(0.1)
    assert lr_at(50, 100, 0.1, "cosine") == pytest.approx(0.05)
    assert lr_at(100, 100, 0.1, "cosine") == pytest.approx(0.0)
    with pytest.raises(ValueError, match="schedule"):
        lr_at(0, 10, 0.1, "linear")


def test_fused_optimizer_is_plain_adamw():
    """The fused AdamW the training loop uses makes the same update as the default AdamW
    (same rule, different kernels: equal to float rounding), and its state dict loads into a
    non-fused optimizer and back."""
    from difflogic.models import LogicNet
    torch.manual_seed(0)
    nets = [LogicNet(TINY), LogicNet(TINY)]
    nets[1].load_state_dict(nets[0].state_dict())
    opts = [make_optimizer(nets[0], 0.05, 0.01),
            torch.optim.AdamW(nets[1].parameters(), lr=0.05, weight_decay=0.01)]
    assert opts[0].param_groups[0]["fused"]
    x, y = torch.rand(8, 1, 28, 28), torch.randint(0, 10, (8,))
    for _ in range(3):
        for net, opt in zip(nets, opts):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(x), y).backward()
            opt.step()
    for p0, p1 in zip(nets[0].parameters(), nets[1].parameters()):
        torch.testing.assert_close(p0, p1, rtol=1e-5, atol=1e-5)
    opts[1].load_state_dict(opts[0].state_dict())
    assert isinstance(keep_freed_memory(), bool)


@pytest.mark.parametrize("parametrization", ["softmax", "input_wise"])
def test_training_learns_the_fake_task(fake_mnist, tmp_path, parametrization):
    """Not a smoke test only: the fake images encode the label in a bright band, which even
    this tiny net learns; the *hard* network must be far above chance (10%), with either
    gate parametrization."""
    cfg = {**TINY, "parametrization": parametrization}
    s = train(TrainOptions(dataset="mnist", data_dir=str(fake_mnist), model_config=cfg,
                           steps=300, eval_every=100, progress="none", seed=1,
                           out=str(tmp_path / "run")))
    assert s["test_hard_acc"] >= 0.6, s
    assert np.isfinite(s["best_val_hard_acc"])


def test_val_size_zero_trains_on_every_image_and_keeps_the_final_network(fake_mnist, tmp_path,
                                                                          capsys):
    """``--val-size 0`` (the final run on all training images): nothing is held out, so no
    evaluation can select, every evaluation keeps the latest network as model.pt and logs val
    as null, and the test figure is the final network's, said so in the log."""
    run = tmp_path / "run"
    s = train(TrainOptions(dataset="mnist", data_dir=str(fake_mnist), model_config=TINY, steps=12,
                           eval_every=5, val_size=0, polish_steps=4, progress="lines", seed=1,
                           out=str(run)))
    out = "".join(capsys.readouterr())
    n = len(data.load_dataset("mnist", str(fake_mnist), "train")[1])
    assert f"({n:,} train / 0 val" in out and "no val" in out
    assert "final model (step 16, no validation): test accuracy" in out
    recs = run_metrics(run)
    assert [r["step"] for r in recs] == [5, 10, 12, 13, 14, 15, 16]
    assert all(r["val_acc"] is None and r["val_hard_acc"] is None for r in recs)
    assert all(0 <= r["train_hard_acc"] <= 1 for r in recs)
    assert s["best_step"] == 16 and s["best_val_hard_acc"] is None and 0 <= s["test_hard_acc"] <= 1
    final, last = load_checkpoint(run / "model.pt"), run_state(run)
    for k, v in last["state_dict"].items():
        assert torch.equal(final["state_dict"][k], v), k
    # resuming a finished no-validation run (a longer polish) keeps the mode
    s2 = train(TrainOptions(resume=str(run), polish_steps=8, progress="none"))
    assert s2["best_step"] == 20 and s2["best_val_hard_acc"] is None


def test_sigint_saves_last_checkpoint_and_resume_continues(fake_mnist, tmp_path, monkeypatch):
    """Ctrl-C finishes the current step, writes last.pt and stops (exit 130 from the CLI)."""
    import signal

    import difflogic.training.loop as T
    real_lr_at = T.lr_at

    def lr_at_with_ctrl_c(step, *args):
        if step == 7:
            signal.raise_signal(signal.SIGINT)
        return real_lr_at(step, *args)

    monkeypatch.setattr(T, "lr_at", lr_at_with_ctrl_c)
    run = tmp_path / "run"
    s = train(TrainOptions(dataset="mnist", data_dir=str(fake_mnist), model_config=TINY, steps=20,
                           eval_every=5, progress="none", test=False, out=str(run)))
    assert s["interrupted"] and s["steps"] == 8  # step 8 was under way when the signal came
    assert load_checkpoint(run / "last.pt")["step"] == 8
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored
    monkeypatch.setattr(T, "lr_at", real_lr_at)
    s = train(TrainOptions(resume=str(run), progress="none", test=False))
    assert s["steps"] == 20 and not s["interrupted"]


def test_straight_through_from_a_fraction_of_the_run(fake_mnist, tmp_path, monkeypatch):
    """``ste_from`` switches the gate layers to straight-through at that fraction of the run
    (and not before), is taken from the model config's ``train`` entry, is fixed on resume,
    and a bad value is a clear error."""
    import difflogic.training.loop as T
    seen = []
    orig = T.set_straight_through
    monkeypatch.setattr(T, "set_straight_through",
                        lambda model, on: (seen.append(bool(on)), orig(model, on))[1])
    cfg = {**TINY, "train": {**TINY["train"], "ste_from": 0.75}}
    common = dict(dataset="mnist", data_dir=str(fake_mnist), steps=8, eval_every=4,
                  progress="none", test=False)
    train(TrainOptions(model_config=cfg, out=str(tmp_path / "run"), **common))
    # one call per step (evaluations measure the relaxed mixture without switching it off)
    assert seen == [False] * 6 + [True] * 2
    with pytest.raises(ValueError, match="ste-from"):
        train(TrainOptions(resume=str(tmp_path / "run"), ste_from=0.5, steps=10, progress="none"))
    with pytest.raises(ValueError, match=r"ste-from \(model config: train.ste_from\) must be a fraction"):
        train(TrainOptions(model_config=TINY, ste_from=1.5, out=str(tmp_path / "bad"), **common))
    for key, bad in (("ste_from", float("nan")), ("ste_from", True), ("val_size", -1),
                     ("gumbel", -1.0), ("gumbel", float("inf")), ("gumbel", "1"),
                     ("label_smoothing", 1.0), ("label_smoothing", -0.1),
                     ("label_smoothing", "0.1"),
                     # the older training defaults get their CLI twins' checks too
                     ("batch_size", 1.5), ("batch_size", 0), ("lr", "0.1"), ("lr", True),
                     ("weight_decay", -1.0), ("eval_every", 0), ("epochs", float("nan")),
                     ("steps", -3), ("schedule", "linear")):
        cfg_bad = {**TINY, "train": {**TINY["train"], key: bad}}
        given = {k: v for k, v in common.items()  # let the config supply the run's length
                 if not (key in ("steps", "epochs", "eval_every") and k in ("steps", "eval_every"))}
        with pytest.raises(ValueError, match=f"train.{key}"):
            train(TrainOptions(model_config=cfg_bad, out=str(tmp_path / "bad"), **given))
    for removed in ("sharpen", "ema", "sharpness"):  # options that are gone, and typos
        cfg_bad = {**TINY, "train": {**TINY["train"], removed: 2.0}}
        with pytest.raises(ValueError, match=f"unknown key '{removed}' in 'train'; accepted: lr"):
            train(TrainOptions(model_config=cfg_bad, out=str(tmp_path / "bad"), **common))
    cfg_both = {**TINY, "train": {**TINY["train"], "steps": 4, "epochs": 1}}
    with pytest.raises(ValueError, match="both steps and epochs"):
        train(TrainOptions(model_config=cfg_both, dataset="mnist", data_dir=str(fake_mnist),
                           out=str(tmp_path / "bad"), progress="none"))


def test_label_smoothing_reaches_the_loss_and_is_fixed_on_resume(fake_mnist, tmp_path,
                                                                 monkeypatch, capsys):
    """``label_smoothing`` (option, else the config's ``train.label_smoothing``, else 0) is the
    ``label_smoothing`` of every training step's cross-entropy, is kept by a resume, and a
    resume that changes it, or a value outside [0, 1), is a clear error."""
    import difflogic.training.loop as T
    seen = []
    ce = torch.nn.functional.cross_entropy

    def spy(logits, y, **kw):
        seen.append(kw.get("label_smoothing", 0.0))
        return ce(logits, y, **kw)

    monkeypatch.setattr(T.torch.nn.functional, "cross_entropy", spy)
    common = dict(dataset="mnist", data_dir=str(fake_mnist), eval_every=4, progress="lines",
                  test=False)
    run = tmp_path / "run"
    train(TrainOptions(model_config=TINY, label_smoothing=0.2, steps=6, stop_after=4,
                       out=str(run), **common))
    assert seen == [0.2] * 4 and "label smoothing 0.2" in capsys.readouterr().err
    train(TrainOptions(resume=str(run), progress="none", test=False))
    assert seen == [0.2] * 6
    with pytest.raises(ValueError, match="--label-smoothing 0.0 differs from the run"):
        train(TrainOptions(resume=str(run), label_smoothing=0.0, steps=8, progress="none"))
    seen.clear()  # from the config's train entry; none at all = plain cross-entropy
    cfg = {**TINY, "train": {**TINY["train"], "label_smoothing": 0.1}}
    train(TrainOptions(model_config=cfg, steps=2, out=str(tmp_path / "cfg"), **common))
    train(TrainOptions(model_config=TINY, steps=2, out=str(tmp_path / "plain"), **common))
    assert seen == [0.1, 0.1, 0.0, 0.0]
    with pytest.raises(ValueError, match=r"--label-smoothing .* must be in \[0, 1\), got 1"):
        train(TrainOptions(model_config=TINY, label_smoothing=1, steps=2,
                           out=str(tmp_path / "bad"), **common))


def test_polish_steps_follow_the_run_straight_through(fake_mnist, tmp_path, monkeypatch, capsys):
    """``polish_steps`` appends that many all-layer straight-through steps at the constant
    ``polish_lr`` (default lr / 10) after the run's schedule, evaluates every polish_steps // 4
    of them, and on resume of a finished run polishes it: the same network, bit for bit, as
    polishing in the first place."""
    import difflogic.training.loop as T
    seen = []
    orig = T.set_straight_through
    monkeypatch.setattr(T, "set_straight_through",
                        lambda model, on: (seen.append(bool(on)), orig(model, on))[1])
    common = dict(dataset="mnist", data_dir=str(fake_mnist), model_config=TINY, steps=6,
                  eval_every=3, seed=2, schedule="cosine", lr=0.05, progress="none", test=False)
    s = train(TrainOptions(out=str(tmp_path / "full"), polish_steps=8, **common))
    assert s["steps"] == s["total_steps"] == 14
    assert seen == [False] * 6 + [True] * 8
    assert "then 8 straight-through polish steps at lr 0.005" in capsys.readouterr().err
    recs = run_metrics(tmp_path / "full")
    # the run's own cadence (3) goes on beside the polish's (every 8 // 4 = 2 steps)
    assert [r["step"] for r in recs] == [3, 6, 8, 9, 10, 12, 14]
    assert [r["lr"] for r in recs][2:] == [0.005] * 5
    # a finished run, polished on resume (into a new folder), is the same network
    train(TrainOptions(out=str(tmp_path / "plain"), **common))
    s = train(TrainOptions(resume=str(tmp_path / "plain"), polish_steps=8, out=str(tmp_path / "pol"),
                           progress="none", test=False))
    assert s["steps"] == 14
    a, b = run_state(tmp_path / "full"), run_state(tmp_path / "pol")
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k
    assert run_metrics(tmp_path / "full") == run_metrics(tmp_path / "pol")
    # its own rate, and the checks
    train(TrainOptions(out=str(tmp_path / "lr"), polish_steps=2, polish_lr=0.01, **common))
    recs = run_metrics(tmp_path / "lr")
    assert recs[-1]["step"] == 8 and recs[-1]["lr"] == 0.01
    # annealed: a cosine over the polish steps alone, from polish_lr towards 0
    train(TrainOptions(out=str(tmp_path / "cos"), polish_steps=4, polish_lr=0.01,
                       polish_schedule="cosine", **common))
    assert "polish steps at lr 0.01 (cosine)" in capsys.readouterr().err
    lrs = {r["step"]: r["lr"] for r in run_metrics(tmp_path / "cos")}
    for k in range(4):  # the update that makes step 6 + k + 1
        assert lrs[7 + k] == pytest.approx(0.01 * 0.5 * (1 + math.cos(math.pi * k / 4))), k
    assert lrs[6] == pytest.approx(0.05 * 0.5 * (1 + math.cos(math.pi * 5 / 6)))
    for key, bad in (("polish_steps", -1), ("polish_steps", 1.5), ("polish_lr", 0.0),
                     ("polish_schedule", "linear")):
        with pytest.raises(ValueError, match=key.replace("_", "-")):
            train(TrainOptions(out=str(tmp_path / "bad"), **{**common, key: bad}))


def test_polish_without_augmentation(fake_mnist, tmp_path, monkeypatch, capsys):
    """``polish_augment=False`` (``--no-polish-augment``): an augmenting run's polish steps get
    the images as stored, in the loader's own order, and only they do; the switch is not part
    of the loader's state, so a run stopped inside such a polish resumes bit-exactly, and a
    finished run polished on resume without augmentation is the same network."""
    import difflogic.data as D
    orig = D.BatchLoader._batch
    seen = {}  # run -> per training batch: (flipped / cropped?, the images)

    def record(run):
        seen[run] = []

        def batch(self, order, epoch, b):
            out = orig(self, order, epoch, b)
            seen[run].append((self.augment and not self.suspend_augment, out[0]))
            return out
        monkeypatch.setattr(D.BatchLoader, "_batch", batch)
    common = dict(dataset="mnist", data_dir=str(fake_mnist), model_config=TINY, steps=6,
                  eval_every=3, seed=4, lr=0.05, augment=True, progress="none", test=False,
                  polish_steps=4)
    record("full")
    train(TrainOptions(out=str(tmp_path / "full"), polish_augment=False, **common))
    assert "polish steps at lr 0.005 without augmentation" in capsys.readouterr().err
    assert [aug for aug, _ in seen["full"]] == [True] * 6 + [False] * 4
    # the polish batches are the stored images, in the order of a run that never augments
    record("plain")
    train(TrainOptions(out=str(tmp_path / "plain"), **{**common, "augment": False}))
    assert len(seen["full"]) == len(seen["plain"]) == 10
    same = [torch.equal(a, b) for (_, a), (_, b) in zip(seen["full"], seen["plain"])]
    assert same == [False] * 6 + [True] * 4
    # stopped inside the polish, resumed: bit for bit the uninterrupted run
    train(TrainOptions(out=str(tmp_path / "part"), polish_augment=False, stop_after=8, **common))
    train(TrainOptions(resume=str(tmp_path / "part"), progress="none", test=False))
    a, b = run_state(tmp_path / "full"), run_state(tmp_path / "part")
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k
    assert a["loader"] == b["loader"] and run_metrics(tmp_path / "full") == run_metrics(tmp_path / "part")
    # a finished augmented run, polished on resume without augmentation: the same network
    train(TrainOptions(out=str(tmp_path / "run"), **{**common, "polish_steps": 0}))
    train(TrainOptions(resume=str(tmp_path / "run"), polish_steps=4, polish_augment=False,
                       out=str(tmp_path / "pol"), progress="none", test=False))
    c = run_state(tmp_path / "pol")
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], c["state_dict"][k]), k
    # by default the polish augments like the run; --polish-augment needs --augment
    record("same")
    train(TrainOptions(out=str(tmp_path / "same"), **common))
    assert [aug for aug, _ in seen["same"]] == [True] * 10
    with pytest.raises(ValueError, match="--polish-augment only applies with --augment"):
        train(TrainOptions(out=str(tmp_path / "bad"), polish_augment=True,
                           **{**common, "augment": False}))


def test_layer_straight_through_from_a_fraction_of_the_run(fake_mnist, tmp_path, monkeypatch, capsys):
    """A gate layer's config ``"straight_through": F`` switches that layer alone to
    straight-through at fraction F of the run (the others stay relaxed), and resume replays it
    bit-exactly (the fraction is part of the checkpointed config)."""
    from difflogic.layers import GateLayer
    cfg = json.loads(json.dumps(TINY))
    gate = [i for i, spec in enumerate(cfg["layers"]) if spec["type"] in ("conv", "dense")]
    cfg["layers"][gate[0]]["straight_through"] = 0.5
    seen = []  # per training forward (grad enabled): which gate layers ran straight-through
    orig = GateLayer.coefficients

    def spy(self):
        if torch.is_grad_enabled():
            seen.append((id(self), self.straight_through))
        return orig(self)
    monkeypatch.setattr(GateLayer, "coefficients", spy)
    common = dict(dataset="mnist", data_dir=str(fake_mnist), model_config=cfg, steps=8,
                  eval_every=4, seed=3, progress="none", test=False)
    train(TrainOptions(out=str(tmp_path / "full"), **common))
    assert f"layer {gate[0]} straight-through from step 4" in capsys.readouterr().err
    first = seen[0][0]
    per_step = [[on for layer, on in seen[i:i + len(gate)]] for i in range(0, len(seen), len(gate))]
    assert len(per_step) == 8 and all(seen[i][0] == first for i in range(0, len(seen), len(gate)))
    assert per_step == [[False] * len(gate)] * 4 + [[True] + [False] * (len(gate) - 1)] * 4
    train(TrainOptions(out=str(tmp_path / "part"), stop_after=3, **common))
    train(TrainOptions(resume=str(tmp_path / "part"), progress="none", test=False))
    a, b = run_state(tmp_path / "full"), run_state(tmp_path / "part")
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k
    # "straight_through": true is named on the start line too
    cfg["layers"][gate[0]]["straight_through"] = True
    capsys.readouterr()
    train(TrainOptions(out=str(tmp_path / "always"), **{**common, "steps": 1}))
    assert f"layer {gate[0]} always straight-through" in capsys.readouterr().err


def test_relaxed_accuracy_ignores_and_restores_gumbel_and_straight_through(monkeypatch):
    """``accuracy(hard=False)`` measures the plain softmax mixture (no noise, no argmax) even
    mid-way through a Gumbel straight-through run or in a layer its config makes always
    straight-through, and gives each layer its settings back."""
    from difflogic import LogicNet, layers as layers_mod, set_gumbel_noise, set_straight_through
    from difflogic.evaluate import accuracy
    torch.manual_seed(0)
    model = LogicNet(TINY)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (64, 1, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, 64).astype(np.int64)
    calls = []  # (logits as used, hard, straight_through) of every gate layer forward
    orig = layers_mod.gate_coefficients

    def spy(w, hard, straight_through, **kw):
        calls.append((w.clone(), hard, straight_through))
        return orig(w, hard=hard, straight_through=straight_through, **kw)
    monkeypatch.setattr(layers_mod, "gate_coefficients", spy)
    layers = [m for m in model.modules() if hasattr(m, "gumbel")]
    assert layers
    weights = [m.weight.detach().clone() for m in layers]

    def plain_mixture_only():
        calls.clear()
        accuracy(model, images, labels, hard=False, batch_size=32)
        assert len(calls) == 2 * len(layers)  # two batches
        return all(not hard and not ste and torch.equal(w, weights[i % len(layers)])
                   for i, (w, hard, ste) in enumerate(calls))
    assert plain_mixture_only()
    set_straight_through(model, True)
    set_gumbel_noise(model, 2.0)
    model.train()
    assert plain_mixture_only()
    assert all(m.straight_through and m.gumbel == 2.0 for m in layers)
    assert model.training
    set_straight_through(model, False)
    set_gumbel_noise(model, 0.0)
    layers[0].always_straight_through = True
    assert plain_mixture_only()
    assert layers[0].always_straight_through and not layers[1].always_straight_through


def test_device_option_errors_are_clear(fake_mnist, tmp_path):
    """--device: a typo, a device type training does not run on, or CUDA on a machine without
    it is one clear error before any data is loaded or file written."""
    common = dict(dataset="mnist", data_dir=str(fake_mnist), model_config=TINY, steps=2,
                  progress="none", test=False)
    with pytest.raises(ValueError, match="must be cpu, cuda or cuda:N"):
        train(TrainOptions(device="gpu0", out=str(tmp_path / "a"), **common))
    with pytest.raises(ValueError, match="cpu or cuda, not meta"):
        train(TrainOptions(device="meta", out=str(tmp_path / "b"), **common))
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA device is visible.*--device cpu"):
            train(TrainOptions(device="cuda", out=str(tmp_path / "c"), **common))
    else:
        with pytest.raises(ValueError, match="CUDA device"):
            train(TrainOptions(device=f"cuda:{torch.cuda.device_count()}",
                               out=str(tmp_path / "c"), **common))
    assert not any((tmp_path / n).exists() for n in "abc")
    s = train(TrainOptions(device="cpu", out=str(tmp_path / "d"), **common))
    assert s["steps"] == 2


def _cuda_kernels():
    if not torch.cuda.is_available():
        return False
    try:
        import difflogic.kernels.cuda  # noqa: F401
        return True
    except Exception:  # noqa: BLE001
        return False


@pytest.mark.skipif(not _cuda_kernels(), reason="needs an NVIDIA GPU with CuPy (difflogic.kernels.cuda)")
def test_train_on_gpu_resumes_and_loads_on_cpu(fake_mnist, tmp_path):
    """--device cuda: the same loop on the GPU (Gumbel noise from the GPU's RNG, which last.pt
    keeps); an interrupted + resumed run matches an uninterrupted one and the checkpoints are
    CPU-loadable.  To rounding, not bit for bit: the fused tree-conv backward sums with float
    atomics, and on an H200 two uninterrupted 60-step runs differed by up to 2e-5 in the logits
    (the CPU kernels are deterministic: see test_resume_is_bit_exact above)."""
    common = dict(dataset="mnist", data_dir=str(fake_mnist), model_config=TINY, steps=60,
                  eval_every=20, seed=5, schedule="cosine", progress="none", device="cuda",
                  gumbel=0.5, ste_from=0.5)
    full, part = tmp_path / "full", tmp_path / "part"
    train(TrainOptions(out=str(full), **common))
    train(TrainOptions(out=str(part), stop_after=30, **{**common, "test": False}))
    train(TrainOptions(resume=str(part), progress="none"))
    a, b = run_state(full), run_state(part)
    assert a["step"] == b["step"] == 60
    for k in a["state_dict"]:
        torch.testing.assert_close(a["state_dict"][k], b["state_dict"][k], rtol=1e-3, atol=1e-3, msg=k)
    ma, mb = run_metrics(full), run_metrics(part)
    assert [r["step"] for r in ma] == [r["step"] for r in mb]
    assert [r["loss"] for r in ma] == pytest.approx([r["loss"] for r in mb], rel=1e-3, abs=1e-3)
    m = load_model(full / "model.pt")  # a CPU model: runs here with the native kernels
    assert next(m.parameters()).device.type == "cpu"


def test_a_fresh_run_refuses_a_folder_holding_a_run(fake_mnist, tmp_path):
    """Re-running the training command after a kill must not silently replace the run: a
    fresh run (or a resume into another folder) into a folder with a run is refused, naming
    --resume and --overwrite, before anything is written; --overwrite starts over."""
    run, other = tmp_path / "run", tmp_path / "other"
    common = dict(dataset="mnist", data_dir=str(fake_mnist), model_config=TINY, steps=6,
                  eval_every=3, progress="none")
    train(TrainOptions(out=str(run), seed=1, **common))
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    with pytest.raises(ValueError, match=r"already holds a training run \(last\.pt, model\.pt, "
                                         r"metrics\.jsonl, curves\.png, summary\.json\)"
                                         r".*--resume .*run.*--overwrite"):
        train(TrainOptions(out=str(run), seed=2, **common))
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before
    # resuming a run into a folder that holds another run is refused the same way
    train(TrainOptions(out=str(other), seed=3, **common))
    with pytest.raises(ValueError, match="other already holds a training run"):
        train(TrainOptions(resume=str(run), out=str(other), steps=8, progress="none"))
    # continuing in its own folder is what resume is for
    assert train(TrainOptions(resume=str(run), steps=8, progress="none"))["steps"] == 8
    # --overwrite starts over: the old run's files go first (a new run stopped at once leaves
    # none of them), and the metrics are the new run's alone
    train(TrainOptions(out=str(run), seed=2, overwrite=True, stop_after=1, test=False,
                       **common))
    assert not (run / "model.pt").exists() and not (run / "summary.json").exists()
    train(TrainOptions(out=str(run), seed=2, overwrite=True, **common))
    assert [r["step"] for r in run_metrics(run)] == [3, 6]
    assert run_state(run)["step"] == 6
