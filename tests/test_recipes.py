"""Recipes as data (``difflogic train --config``): the shipped files, their stages, the
precedence of the command line, and the refusals of a bad file."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import difflogic
from difflogic import configs, data
from difflogic.cli import main
from difflogic.models import LogicNet, get_model_config
from difflogic.training import TrainOptions, load_recipe, make_plan, train

from conftest import TINY, run_metrics, run_state

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def fake_mnist(tmp_path_factory):
    return data.write_fake_idx(tmp_path_factory.mktemp("fake_mnist"), n_train=120, n_test=40)


def write_recipe(path: Path, **changes) -> Path:
    recipe = {"description": "a test recipe", "dataset": "mnist", "model": TINY,
              "train": {"steps": 12, "eval_every": 4, "seed": 3, "polish_steps": 4},
              "then": [{"polish_steps": 10, "polish_schedule": "cosine"}]}
    recipe.update(changes)
    path.write_text(json.dumps(recipe))
    return path


@pytest.mark.parametrize("name", configs.names())
def test_every_shipped_recipe_checks_and_builds_its_model(name):
    recipe = load_recipe(name)
    assert recipe["name"] == name and recipe["dataset"] in data.dataset_names()
    model = recipe["model"]
    config = model if isinstance(model, dict) else get_model_config(model)
    net = LogicNet(config)
    assert tuple(net.input_shape) == data.DATASET_INFO[recipe["dataset"]].shape
    raw = json.loads(configs.locate(name).read_text())
    assert raw["description"] and raw["result"]  # what it is and what it reached


def test_the_cifar10_recipe_is_the_recorded_one():
    """The recipe of the 60.5% CIFAR-10 S result: 15 thresholds, input-wise gates, the first conv
    layer straight-through from 30%, 90 epochs at batch 32, then the 4-epoch polish (4 x 1,563
    steps of 32 of the 50,000 images) annealed, on the images as stored."""
    r = load_recipe("cifar10-s-cpu")
    layers = r["model"]["layers"]
    assert layers[0] == {"type": "thresholds", "num": 15}
    assert [x.get("straight_through") for x in layers if x["type"] == "conv"] == [0.3, None, None, None]
    assert r["model"]["parametrization"] == "input_wise"
    assert r["train"] == {"epochs": 90, "batch_size": 32, "lr": 0.02, "weight_decay": 0.0015,
                          "schedule": "cosine", "augment": True, "crop_padding": 2, "val_size": 0,
                          "polish_steps": 50, "seed": 0}
    assert r["then"] == [{"polish_steps": 4 * -(-50000 // 32), "polish_schedule": "cosine",
                          "polish_augment": False}]


def test_a_preset_name_and_its_recipe_build_the_same_run(tmp_path):
    """``--model fmnist-small`` takes the recipe's model and training defaults: the same plan as
    ``--config fmnist-small``."""
    common = dict(out=str(tmp_path / "r"), data_dir=str(tmp_path))
    a = make_plan(TrainOptions(config="fmnist-small", **common))
    b = make_plan(TrainOptions(dataset="fashion-mnist", model="fmnist-small", **common))
    for key in ("lr", "weight_decay", "batch_size", "epochs", "schedule", "eval_every",
                "ste_from", "dataset"):
        assert getattr(a, key) == getattr(b, key), key
    assert LogicNet(a.model_config).gate_count() == LogicNet(b.model_config).gate_count()


def test_the_command_line_wins_over_the_recipe(tmp_path):
    recipe = write_recipe(tmp_path / "r.json")
    plan = make_plan(TrainOptions(config=str(recipe), steps=30, seed=9, out=str(tmp_path / "o")))
    assert (plan.steps, plan.seed, plan.eval_every, plan.polish_steps) == (30, 9, 4, 4)
    plan = make_plan(TrainOptions(config=str(recipe), epochs=2.0, out=str(tmp_path / "o")))
    assert plan.epochs == 2.0 and plan.steps is None  # the recipe's length gives way


def test_stages_equal_the_resumes_they_stand_for(fake_mnist, tmp_path):
    """A recipe's ``then`` stage is a resume of the same run with the stage's options: the same
    metrics and state as running the two commands by hand; a run killed inside the first stage
    and resumed goes on into the second."""
    recipe = write_recipe(tmp_path / "r.json")
    common = dict(data_dir=str(fake_mnist), progress="none", test=False)
    staged = tmp_path / "staged"
    train(TrainOptions(config=str(recipe), out=str(staged), **common))
    by_hand = tmp_path / "by_hand"
    train(TrainOptions(dataset="mnist", model_config=TINY, steps=12, eval_every=4, seed=3,
                       polish_steps=4, out=str(by_hand), **common))
    train(TrainOptions(resume=str(by_hand), polish_steps=10, polish_schedule="cosine", **common))
    assert run_metrics(staged) == run_metrics(by_hand)
    a, b = run_state(staged), run_state(by_hand)
    assert a["step"] == b["step"] == 22
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k
    killed = tmp_path / "killed"
    s = train(TrainOptions(config=str(recipe), out=str(killed), stop_after=5, **common))
    assert s["stopped_early"] and s["steps"] == 5
    s = train(TrainOptions(resume=str(killed), **common))
    assert s["steps"] == 22 and run_metrics(killed) == run_metrics(staged)


@pytest.mark.parametrize("change, message", [
    ({"trian": {}}, "unknown key 'trian'; accepted: name, description"),
    ({"train": {"epoch": 3}}, "train: unknown key 'epoch'; accepted: epochs, steps"),
    ({"train": {"batch_size": 1.5}}, "train: 'batch_size' must be int, got 1.5"),
    ({"train": {"augment": "yes"}}, "train: 'augment' must be bool"),
    ({"train": {"schedule": "linear"}}, "'schedule' must be one of constant, cosine"),
    ({"model": "cifar10-xl"}, "unknown model 'cifar10-xl'; available: cifar10-b"),
    ({"model": {**TINY, "layer": []}}, "unknown key 'layer'; accepted: name"),
    ({"then": {"polish_steps": 3}}, "'then' must be a list of stages"),
    ({"then": [{"lr": 0.1}]}, "then[0]: unknown key 'lr'; accepted: polish_steps"),
    ({"dataset": "imagenet"}, "imagenet"),
])
def test_a_bad_recipe_is_one_line_naming_the_key(tmp_path, capsys, change, message):
    recipe = write_recipe(tmp_path / "bad.json", **change)
    assert main(["train", "--config", str(recipe), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "run").exists()


def test_an_unknown_recipe_name_lists_the_shipped_ones(tmp_path, capsys):
    assert main(["train", "--config", "cifar10-xl", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "unknown recipe; shipped: cifar10-s-cpu, fmnist-small" in err, err


def test_cifar10_cpu_script_is_the_recipe(tmp_path):
    """benches/cifar10_cpu.sh runs the cifar10-s-cpu recipe (its settings reach the trainer;
    extra options pass through), and a second run into the same folder is refused."""
    repo = Path(__file__).resolve().parents[1]
    data.write_fake_cifar10(tmp_path / "data", n_train_per_batch=60, n_test=20)
    env = dict(os.environ, SEED="4", PYTHON=sys.executable,
               DIFFLOGIC=f"{sys.executable} -m difflogic",
               PYTHONPATH=str(Path(difflogic.__file__).resolve().parents[1]))

    def script(*extra):
        return subprocess.run(["bash", str(repo / "benches" / "cifar10_cpu.sh"),
                               str(tmp_path / "data"), str(tmp_path / "run"), *extra],
                              env=env, capture_output=True, text=True, timeout=600)

    proc = script("--steps", "3", "--stop-after", "2", "--progress", "none")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    err = proc.stderr
    assert "stopped at step 2/53" in err
    assert "cifar10-s-t15-l1ste30-input_wise" in err and "(300 train / 0 val" in err
    assert "batch 32, lr 0.02, wd 0.0015, cosine schedule" in err
    assert "augmentation (flips, crops padded by 2)" in err and "then 50 straight-through" in err
    assert run_state(tmp_path / "run")["step"] == 2
    assert json.loads(run_state(tmp_path / "run")["train_options"])["seed"] == 4
    proc = script("--steps", "3")
    assert proc.returncode == 2 and "already holds a training run" in proc.stderr


def test_info_lists_the_shipped_recipes(capsys):
    assert main(["info", "--configs"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in out] == configs.names()
    assert any(line.startswith("cifar10-s-cpu") and "60.48%" in line for line in out)
