"""``difflogic bench`` and :mod:`difflogic.bench`: every back end measured through the registry,
each run checked bit-exact before it is timed (a wrong fast result is reported as a mismatch,
never as a speed), unavailable back ends listed with their reason, one-line errors."""
import dataclasses
import json
from pathlib import Path

import pytest
import torch

import difflogic as dl
from conftest import TINY, need
from difflogic import bench, cli, platform
from difflogic.backends import base
from difflogic.compiler import compile

GOLDEN = Path(__file__).parent / "golden" / "tiny_conv.pt"


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    model = dl.LogicNet({**TINY, "init": "gaussian"}).eval()
    net = compile(model)
    return model, net, bench.make_inputs(model, net, distinct=97, threads=1)


class _Lying(base.Backend):
    """A back end whose runner is wrong past the first 64 samples (a second-word bug), or
    unavailable."""
    name, help = "lying", "a back end that returns wrong counts"

    def __init__(self, why=None):
        self.why = why

    def unavailable_reason(self, **_):
        return self.why

    def emit(self, netlist, out_dir, *, reference=None, **opts):
        raise NotImplementedError

    def load(self, netlist, **opts):
        return _LyingRunner(netlist)


class _LyingRunner(base.Runner):
    def __init__(self, net):
        self.net, self.compile_seconds = net, 0.5

    def counts(self, bits, threads=None):
        from difflogic.compiler import simulate
        out = simulate(self.net, bits)
        out[64:, 0] += 1
        return out


@pytest.fixture
def lying():
    def register(why=None):
        base.register(_Lying(why))
    yield register
    if "lying" in base.backend_names():
        base.unregister("lying")


def test_every_run_is_checked_and_timed(tiny):
    model, net, inputs = tiny
    targets, explicit = bench.parse_targets("torch,c")
    report = bench.run_bench(model, net, inputs, targets, [1, 2], [1, 300], warmup=0, repeats=2,
                             log=lambda line: None)
    assert not bench.failures(report) and explicit
    rows = [r for t in report["targets"] for r in t["rows"]]
    assert [(r["target"], r["threads"], r["batch"]) for r in rows] == \
        [(t, th, b) for t in ("torch", "c") for th in (1, 2) for b in (1, 300)]
    assert all(len(r["seconds"]) == len(r["cpu_seconds"]) == 2
               and r["images_per_s"]["min"] <= r["images_per_s"]["median"]
               <= r["images_per_s"]["max"] for r in rows)
    assert all(("cpu_time" in r["images_per_s"]) == (r["threads"] == 1) for r in rows)
    c = report["targets"][1]
    assert c["compile_seconds"] > 0 and c["input"] in ("images", "bits")
    assert report["targets"][0]["input"] == "images"   # the torch row takes raw images
    assert report["machine"]["cores"] == platform.cpu_count()
    json.dumps(report)
    assert any(line.startswith("best c: ") and "x the PyTorch hard forward" in line
               for line in bench.summary_lines(report))


def test_a_wrong_result_is_a_mismatch_not_a_speed(tiny, lying):
    model, net, inputs = tiny
    lying()
    targets, _ = bench.parse_targets("lying")
    report = bench.run_bench(model, net, inputs, targets, [1], [4, 97], warmup=0, repeats=1,
                             log=lambda line: None)
    rows = report["targets"][0]["rows"]
    assert [r["status"] for r in rows] == ["ok", "mismatch"]
    assert rows[1]["seconds"] == [] and rows[1]["images_per_s"] == {}
    assert "33 of 97 samples differ" in rows[1]["reason"] and "first sample 64" in rows[1]["reason"]
    assert len(bench.failures(report)) == 1


def test_unavailable_back_ends_are_listed_or_refused_by_name(tiny, lying):
    model, net, inputs = tiny
    lying("needs the lying toolkit (apt-get install lies)")
    targets, explicit = bench.parse_targets(None)
    assert "lying" in [t.label for t in targets] and "verilog" not in [t.label for t in targets]
    bench.check_targets(targets, explicit)   # the default set: listed, not refused
    out = bench.run_target(targets[-1], model, net, inputs, [1], [1], 0, 1, log=lambda l: None)
    assert (out.status, out.rows) == ("unavailable", []) and "apt-get install lies" in out.reason
    with pytest.raises(RuntimeError, match=r"'lying' cannot run here: .*apt-get install lies"):
        bench.check_targets(*bench.parse_targets("torch,lying"))


class _ImageRunner(_LyingRunner):
    """A correct runner that also takes uint8 images (as CRunner.counts_images does)."""

    def counts(self, bits, threads=None):
        from difflogic.compiler import simulate
        return simulate(self.net, bits)

    def counts_images(self, images, threads=None):
        from difflogic.compiler import encode_input
        self.images_seen = len(images)
        return self.counts(encode_input(self.net, images), threads)


def test_a_back_end_that_takes_images_is_timed_on_images(tiny, monkeypatch):
    model, net, inputs = tiny
    runner = _ImageRunner(net)
    monkeypatch.setattr(bench, "load_runner", lambda target, model, netlist: runner)
    res = bench.run_target(bench.Target("c", "c"), model, net, inputs, [1], [50], 0, 1,
                           log=lambda line: None)
    assert res.input == "images" and [r.input for r in res.rows] == ["images"]
    assert res.rows[0].status == "ok" and runner.images_seen == 50
    assert "input: uint8 images" in bench.target_line(dataclasses.asdict(res))


def test_a_runner_without_images_gets_encoded_bits(tiny):
    model, net, inputs = tiny
    runner = bench.load_runner(bench.Target("torch", "torch"), model, net)
    assert bench.counter(runner, inputs)[1] == "images"
    row = bench.measure(runner.counts, inputs, "bits", "torch", 1, 200, 0, 1)
    assert row.status == "ok" and row.input == "bits"


@pytest.mark.parametrize("spec, what, match", [
    ("torch,nosuch", "targets", r"unknown target 'nosuch'; --targets takes .*torch, c"),
    ("c,c", "targets", r"name each target once"),
    ("0,1", "threads", r"--threads must be >= 1"),
    ("1,x", "threads", r"comma-separated whole numbers"),
    (f"1,{platform.cpu_count() + 1}", "threads", r"above the \d+ cores"),
])
def test_bad_lists_are_one_line_errors(spec, what, match):
    with pytest.raises(ValueError, match=match):
        if what == "targets":
            bench.parse_targets(spec)
        else:
            bench.parse_counts(spec, "--threads", platform.cpu_count())


def run_cli(capsys, *argv):
    try:
        rc = cli.main([str(a) for a in argv])
    except SystemExit as e:
        rc = e.code
    out, err = capsys.readouterr()
    return rc, out, err


def test_the_command_writes_json_and_a_plot(tmp_path, capsys):
    rc, out, err = run_cli(capsys, "bench", GOLDEN, "--targets", "torch,c", "--threads", "1",
                           "--batch", "1,600", "--repeats", "2", "--samples", "50",
                           "--json", tmp_path / "b.json", "--plot", tmp_path / "b.png")
    assert rc == 0, err
    report = json.loads((tmp_path / "b.json").read_text())
    assert [len(t["rows"]) for t in report["targets"]] == [2, 2]
    assert (tmp_path / "b.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "machine: " in out and "best c: " in out and "compiling c" in err


def test_an_rtl_simulator_row_is_checked_and_says_it_builds_per_call(tmp_path, capsys):
    need("iverilog")
    rc, out, err = run_cli(capsys, "bench", GOLDEN, "--targets", "iverilog", "--batch", "70",
                           "--repeats", "1", "--warmup", "0", "--samples", "70",
                           "--json", tmp_path / "b.json")
    assert rc == 0, err
    (t,) = json.loads((tmp_path / "b.json").read_text())["targets"]
    assert t["builds_per_call"] and [(r["status"], r["threads"]) for r in t["rows"]] == [("ok", None)]
    assert "builds the RTL inside each call" in out


@pytest.mark.parametrize("argv, status, match", [
    (["--threads", "999"], 2, r"--threads 999 is above the \d+ cores"),
    (["--targets", "torch,nosuch"], 2, r"unknown target 'nosuch'"),
    (["--json", "."], 2, r"--json \. is a directory"),
    (["--dataset", "cifar10"], 2, r"takes images of shape \(1, 28, 28\), not CIFAR-10 images"),
])
def test_command_bad_input(argv, status, match, capsys):
    rc, _, err = run_cli(capsys, "bench", GOLDEN, *argv)
    assert rc == status and len(err.strip().splitlines()) == 1
    assert __import__("re").search(match, err), err


def test_a_checkpoint_that_is_not_a_model(tmp_path, capsys):
    bad = tmp_path / "notes.pt"
    bad.write_text("not a model\n")
    rc, _, err = run_cli(capsys, "bench", bad, "--json", tmp_path / "b.json")
    assert rc == 2 and "notes.pt" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "b.json").exists()


def test_a_gpu_target_without_gpu_names_the_fix(capsys):
    from difflogic import kernels
    if kernels.cuda_unavailable_reason() is None:
        pytest.skip("the CUDA engine is available here")
    rc, _, err = run_cli(capsys, "bench", GOLDEN, "--targets", "cuda-packed")
    assert rc == 1 and "'cuda-packed' cannot run here" in err and "cupy" in err.lower()
    assert len(err.strip().splitlines()) == 1
