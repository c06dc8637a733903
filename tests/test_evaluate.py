"""Hard accuracy through the netlist simulator (the trainer's and ``difflogic eval``'s default
on the CPU) against the PyTorch hard forward: the same first-maximum class for every image."""
import numpy as np
import pytest
import torch

import difflogic as dl
from difflogic import evaluate
from difflogic.compiler import sim

from conftest import random_model


def images_for(model, n, seed):
    return np.random.default_rng(seed).integers(0, 256, (n, *model.input_shape), dtype=np.uint8)


def torch_predictions(model, images):
    model.eval()
    with torch.no_grad():
        return model(torch.from_numpy(images.astype(np.float32) / np.float32(255))).argmax(-1).numpy()


@pytest.mark.parametrize("seed", range(12))
def test_netlist_and_torch_engines_agree_image_by_image(seed):
    """Labels = PyTorch's predictions: an engine that differs on any image (ties included:
    these small nets tie often) counts fewer than all of them."""
    model = random_model(seed)
    if not isinstance(model[0], dl.Thresholds):
        pytest.skip("no Thresholds: the model reads images / 255, evaluated by PyTorch")
    images = images_for(model, 150, seed)
    labels = torch_predictions(model, images)
    model.train()
    for engine in ("netlist", "torch", "auto"):
        assert evaluate.count_correct(model, images, labels, hard=True, engine=engine) == 150
    assert model.training   # the mode is left as it was


def test_netlist_engine_in_threads_and_chunks_counts_each_image_once(monkeypatch):
    model = next(m for m in map(random_model, range(40)) if isinstance(m[0], dl.Thresholds))
    images = images_for(model, 1000, 1)
    labels = torch_predictions(model, images)
    labels[::7] = (labels[::7] + 1) % model[-1].k          # every 7th wrong: 857 right
    monkeypatch.setattr(evaluate, "SIM_BUDGET_BYTES", 1)  # chunks of 64 samples
    calls = []
    monkeypatch.setattr(sim, "simulate", lambda net, bits, f=sim.simulate: calls.append(len(bits)) or f(net, bits))
    old = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        idx = np.arange(1, 1000)                            # indices: image 0 left out
        got = evaluate.count_correct(model, images, labels, hard=True, indices=idx, engine="netlist")
    finally:
        torch.set_num_threads(old)
    assert got == 999 - len(range(7, 1000, 7)) and sum(calls) == 999 and max(calls) == 64


def test_auto_uses_the_simulator_only_where_it_evaluates_the_same_inputs(monkeypatch):
    calls = []
    monkeypatch.setattr(sim, "simulate", lambda net, bits, f=sim.simulate: calls.append(1) or f(net, bits))
    with_thr = next(m for m in map(random_model, range(40)) if isinstance(m[0], dl.Thresholds))
    evaluate.count_correct(with_thr, images_for(with_thr, 10, 0), np.zeros(10, np.int64), hard=True)
    assert calls == ([1] if sim.COMPILED else [])
    calls.clear()
    bits_only = next(m for m in map(random_model, range(40)) if not isinstance(m[0], dl.Thresholds))
    evaluate.count_correct(bits_only, images_for(bits_only, 10, 0), np.zeros(10, np.int64), hard=True)
    evaluate.count_correct(with_thr, images_for(with_thr, 10, 0), np.zeros(10, np.int64), hard=False)
    assert calls == []
    assert evaluate.hard_engine(with_thr) == ("netlist" if sim.COMPILED else "torch")
    assert evaluate.hard_engine(bits_only) == "torch"


def test_an_unknown_engine_is_refused():
    model = random_model(0)
    with pytest.raises(ValueError, match="engine must be one of auto, netlist, torch"):
        evaluate.count_correct(model, images_for(model, 2, 0), np.zeros(2, np.int64), hard=True, engine="c")
