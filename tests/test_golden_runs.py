"""No number moves: two fixed-seed short training runs (``fmnist-small`` through its recipe and
``cifar10-s`` with the CPU recipe's kind of options: crops, cosine rate, a polish without
augmentation) must reproduce the metrics and the model state recorded in
``tests/golden/train_runs.json`` before the training code was restructured.

Float rounding differs between torch versions and CPU kinds, so the record is kept per
platform: on a recorded platform everything must match bit for bit (the metrics' values and a
SHA-256 of every state tensor); on another one the metrics must agree to rounding and the
state is not compared.  ``python tests/test_golden_runs.py --record`` adds the current
platform's values: run it only on a commit whose numbers are known to be unchanged.
Re-recorded on 2026-12-08 because the group sum, the gate-coefficient product and the tree-conv
backward's sample blocks now add in another order (rounding only: the old kernels with just the
group sum's order changed move both runs the same way).
"""
import hashlib
import json
import sys
from pathlib import Path

import pytest
import torch

from difflogic import data
from difflogic.cli import main

GOLDEN = Path(__file__).parent / "golden" / "train_runs.json"
#: Wall-clock and machine fields, which legitimately differ between runs.
TIMING = ("elapsed_s", "images_per_s", "train_time_s", "test_eval_s", "run", "threads")
RUNS = {
    "fmnist-small": ("fashion-mnist", ["--config", "fmnist-small", "--steps", "200",
                                       "--eval-every", "100", "--val-size", "200", "--seed", "1"]),
    "cifar10-s": ("cifar10", ["--dataset", "cifar10", "--model", "cifar10-s", "--steps", "160",
                              "--batch-size", "32", "--eval-every", "80", "--val-size", "100",
                              "--schedule", "cosine", "--augment", "--crop-padding", "2",
                              "--polish-steps", "40", "--no-polish-augment", "--seed", "2"]),
}


def platform() -> dict:
    info = {}
    if Path("/proc/cpuinfo").exists():
        for line in open("/proc/cpuinfo"):
            key, _, value = line.partition(":")
            info.setdefault(key.strip(), value.strip())
    cpu = (f"{info.get('model name', 'unknown')} (family {info.get('cpu family', '?')} "
           f"model {info.get('model', '?')})")
    return {"torch": torch.__version__, "capability": torch.backends.cpu.get_cpu_capability(),
            "cpu": cpu}


def state_hash(path: Path) -> str:
    sd = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    h = hashlib.sha256()
    for k in sorted(sd):
        h.update(k.encode())
        h.update(sd[k].detach().contiguous().numpy().tobytes())
    return h.hexdigest()


def run_once(name: str, root: Path) -> dict:
    """Train the named run on fake data written from fixed seeds; its numbers."""
    dataset, args = RUNS[name]
    if dataset == "cifar10":
        data_dir = data.write_fake_cifar10(root / "data", n_train_per_batch=200, n_test=200,
                                           seed=2).parent
    else:
        data_dir = data.write_fake_idx(root / "data", n_train=1200, n_test=200, seed=1)
    run = root / "run"
    assert main(["train", *args, "--data-dir", str(data_dir), "--threads", "1",
                 "--progress", "none", "--out", str(run)]) == 0
    recs = [{k: v for k, v in json.loads(line).items() if k not in TIMING}
            for line in (run / "metrics.jsonl").read_text().splitlines()]
    summary = {k: v for k, v in json.loads((run / "summary.json").read_text()).items()
               if k not in TIMING}
    return {"metrics": recs, "summary": summary, "model_state": state_hash(run / "model.pt"),
            "last_state": state_hash(run / "last.pt")}


def recorded() -> tuple[dict | None, list]:
    entries = json.loads(GOLDEN.read_text())["platforms"]
    here = platform()
    return next((e for e in entries if all(e[k] == here[k] for k in here)), None), entries


@pytest.mark.parametrize("name", list(RUNS))
def test_fixed_seed_run_moves_no_number(name, tmp_path):
    got = run_once(name, tmp_path)
    entry, entries = recorded()
    if entry is not None:  # a recorded platform: bit for bit
        want = entry["runs"][name]
        assert got["metrics"] == want["metrics"]
        assert got["summary"] == want["summary"]
        assert got["model_state"] == want["model_state"], "the trained logits moved"
        assert got["last_state"] == want["last_state"]
        return
    want = entries[0]["runs"][name]  # another platform: the same run, to rounding
    assert [r["step"] for r in got["metrics"]] == [r["step"] for r in want["metrics"]]
    for g, w in zip(got["metrics"], want["metrics"]):
        assert g["loss"] == pytest.approx(w["loss"], rel=2e-2), (g, w)
        assert g["lr"] == pytest.approx(w["lr"], rel=1e-9)
        for key in ("train_acc", "train_hard_acc", "val_acc", "val_hard_acc"):
            assert g[key] == pytest.approx(w[key], abs=0.05), (key, g, w)


if __name__ == "__main__" and sys.argv[1:] == ["--record"]:
    import tempfile
    entry, entries = recorded()
    if entry is None:
        entry = {**platform(), "runs": {}}
        entries.append(entry)
    for run_name in RUNS:
        with tempfile.TemporaryDirectory() as d:
            entry["runs"][run_name] = run_once(run_name, Path(d))
    doc = json.loads(GOLDEN.read_text())
    doc["platforms"] = entries
    GOLDEN.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    print(f"recorded {platform()} in {GOLDEN}")
