"""Data-parallel training under torchrun: CPU ranks (gloo) on the loopback interface.

A step of N ranks is the step of one process on the same global batch, to float rounding
(DistributedDataParallel adds the ranks' gradient sums in another order than one process
adds its samples), so runs are compared to a tolerance, not bit for bit.  Every launch has a
time limit, and each test checks that no process outlives it.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import difflogic
from difflogic import data
from difflogic.checkpoint import load_checkpoint
from difflogic.cli import main

from conftest import TINY

pytestmark = pytest.mark.usefixtures("one_thread")
ROOT = Path(difflogic.__file__).resolve().parents[1]
LIMIT = 240  # seconds any one launch may take
#: Parameters after a few steps: equal to float rounding, amplified a little by AdamW.
ATOL = 1e-4


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    d = tmp_path_factory.mktemp("ddp")
    cfg = d / "tiny.json"
    cfg.write_text(json.dumps(TINY))
    fake = data.write_fake_idx(d / "data", n_train=160, n_test=40)
    return {"dir": d, "config": str(cfg), "data": str(fake)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_args(job, out, *extra):
    return ["train", "--dataset", "mnist", "--data-dir", job["data"], "--model", job["config"],
            "--batch-size", "8", "--eval-every", "6", "--seed", "4", "--progress", "none",
            "--out", str(out), *extra]


def env():
    # collectives give up on a silent peer well within LIMIT, so a hang fails with its cause
    return dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1",
                DIFFLOGIC_DIST_TIMEOUT="60")


def torchrun(args, nproc=2, extra=(), **kw):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc),
           "--master-addr", "127.0.0.1", "--master-port", str(free_port()), *extra,
           "-m", "difflogic", *args]
    return subprocess.Popen(cmd, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True, **kw)


def finish(proc, limit=LIMIT):
    try:
        out, err = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"the job ran past {limit} s:\n{err[-3000:]}")
    assert_no_strays(proc.pid)
    return proc.returncode, out, err


def assert_no_strays(pgid):
    """No process of the job's session is left (workers included)."""
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    os.killpg(pgid, signal.SIGKILL)
    pytest.fail("processes of the job outlived it")


def params(run):
    return load_checkpoint(run / "last.pt")["state_dict"]


def assert_close_runs(a, b):
    pa, pb = params(a), params(b)
    for k in pa:
        if pa[k].is_floating_point():
            torch.testing.assert_close(pa[k], pb[k], atol=ATOL, rtol=0, msg=k)
        else:
            assert torch.equal(pa[k], pb[k]), k  # the wiring: identical
    ra = [json.loads(x) for x in (a / "metrics.jsonl").read_text().splitlines()]
    rb = [json.loads(x) for x in (b / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in ra] == [r["step"] for r in rb]
    for x, y in zip(ra, rb):
        assert x["loss"] == pytest.approx(y["loss"], rel=1e-4)
        for key in ("train_acc", "train_hard_acc", "val_acc", "val_hard_acc", "lr"):
            assert x[key] == pytest.approx(y[key], abs=1e-9), key  # counts: identical


def test_two_ranks_train_what_one_process_trains(job, tmp_path):
    """2 ranks x 18 steps (flips and crops, a polish without them, Gumbel-free straight-through
    from half-way) equal one process on the same global batch; then both resume across world
    sizes (2 -> 1 and 1 -> 2) onto the loss curve of an uninterrupted run."""
    extra = ["--steps", "12", "--polish-steps", "6", "--augment", "--crop-padding", "2",
             "--no-polish-augment", "--ste-from", "0.5"]
    one = tmp_path / "one"
    assert main(train_args(job, one, *extra, "--threads", "1")) == 0
    two = tmp_path / "two"
    rc, _, err = finish(torchrun(train_args(job, two, *extra)))
    assert rc == 0, err[-3000:]
    assert "rank 1 of 2 (local 1 of 2) on cpu, 1 CPU thread(s)" in err
    assert_close_runs(one, two)
    assert json.loads((two / "summary.json").read_text())["ranks"] == 2
    # 2 -> 1: stopped on 2 ranks at step 9, resumed in one process
    a = tmp_path / "a"
    rc, _, err = finish(torchrun(train_args(job, a, *extra, "--stop-after", "9")))
    assert rc == 0 and load_checkpoint(a / "last.pt")["step"] == 9, err[-3000:]
    assert main(["train", "--resume", str(a), "--threads", "1", "--progress", "none"]) == 0
    assert_close_runs(one, a)
    # 1 -> 2: stopped in one process at step 9, resumed on 2 ranks
    b = tmp_path / "b"
    assert main(train_args(job, b, *extra, "--stop-after", "9", "--threads", "1")) == 0
    rc, _, err = finish(torchrun(["train", "--resume", str(b), "--progress", "none"]))
    assert rc == 0, err[-3000:]
    assert_close_runs(one, b)


SPY = """
import builtins, os, sys
_log, _root, _rank = os.environ["SPY_LOG"], os.environ["SPY_ROOT"], os.environ.get("RANK", "?")
_open, _replace = builtins.open, os.replace

def _note(path):
    path = os.path.abspath(str(path))
    if path.startswith(_root):
        with _open(f"{_log}.{_rank}", "a") as fh:
            fh.write(path + "\\n")

def open(file, mode="r", *a, **k):
    if isinstance(file, (str, os.PathLike)) and any(c in mode for c in "wax+"):
        _note(file)
    return _open(file, mode, *a, **k)

def replace(src, dst, *a, **k):
    _note(dst)
    return _replace(src, dst, *a, **k)

builtins.open, os.replace = open, replace
"""


def test_only_rank_0_writes_and_two_nodes_train(job, tmp_path):
    """A two-"node" job (two torchrun invocations, node ranks 0 and 1, rendezvous on
    127.0.0.1) trains and checkpoints; every file under the run folder is written by rank 0
    (the other ranks' file opens and renames are recorded by a spy and must be none)."""
    spy = tmp_path / "spy"
    spy.mkdir()
    (spy / "sitecustomize.py").write_text(SPY)
    run = tmp_path / "run"
    port = free_port()
    e = dict(env(), PYTHONPATH=f"{spy}:{ROOT}", SPY_LOG=str(tmp_path / "writes"),
             SPY_ROOT=str(run))
    nodes = []
    for node in (0, 1):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--node-rank",
               str(node), "--nproc-per-node", "1", "--master-addr", "127.0.0.1",
               "--master-port", str(port), "-m", "difflogic",
               *train_args(job, run, "--steps", "12")]
        nodes.append(subprocess.Popen(cmd, env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True, start_new_session=True))
    results = [finish(p) for p in nodes]
    assert all(rc == 0 for rc, _, _ in results), results[0][2][-2000:] + results[1][2][-2000:]
    assert load_checkpoint(run / "last.pt")["step"] == 12 and (run / "summary.json").is_file()
    assert (tmp_path / "writes.0").read_text()  # rank 0 wrote the run's files ...
    assert not (tmp_path / "writes.1").exists()  # ... and rank 1 none


def test_a_killed_rank_fails_the_job_fast(job, tmp_path):
    """SIGKILL to rank 1 mid-run: the job exits non-zero within a bounded time, names the
    failed rank, and leaves no process behind; last.pt of the last evaluation stays intact."""
    run = tmp_path / "run"
    proc = torchrun(train_args(job, run, "--steps", "100000", "--eval-every", "5"))
    deadline = time.time() + 120
    while not (run / "last.pt").exists():
        assert time.time() < deadline and proc.poll() is None, "the job did not start"
        time.sleep(0.2)
    victim = next(pid for pid in worker_pids(proc.pid) if rank_of(pid) == "1")
    os.kill(victim, signal.SIGKILL)
    t0 = time.time()
    rc, _, err = finish(proc, limit=120)
    assert rc != 0 and time.time() - t0 < 60
    assert "rank: 1" in err or "rank 1" in err, err[-3000:]
    assert load_checkpoint(run / "last.pt")["step"] % 5 == 0


@pytest.mark.parametrize("how", ["SIGTERM to torchrun", "Ctrl-C to the job"])
def test_a_stop_request_stops_every_rank_with_last_pt_saved(job, tmp_path, how):
    """SIGTERM to torchrun, or SIGINT to the whole process group (Ctrl-C in a terminal): the
    ranks agree on a step, rank 0 saves last.pt there, the job ends, and the run resumes to
    its end."""
    run = tmp_path / "run"
    proc = torchrun(train_args(job, run, "--steps", "400", "--eval-every", "200"))
    deadline = time.time() + 120
    while not (run / "metrics.jsonl").exists() or not worker_pids(proc.pid):
        assert time.time() < deadline and proc.poll() is None, "the job did not start"
        time.sleep(0.2)
    time.sleep(1.0)
    if how.startswith("SIGTERM"):
        os.kill(proc.pid, signal.SIGTERM)
    else:
        os.killpg(proc.pid, signal.SIGINT)
    rc, _, err = finish(proc, limit=120)
    step = load_checkpoint(run / "last.pt")["step"]
    assert 0 < step < 400, err[-3000:]
    assert "stopped at step" in err
    assert main(["train", "--resume", str(run), "--threads", "1", "--progress", "none"]) == 0
    assert load_checkpoint(run / "last.pt")["step"] == 400


def worker_pids(parent: int) -> list[int]:
    kids = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                fields = (p / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == parent:
                kids.append(int(p.name))
    return kids


def rank_of(pid: int) -> str | None:
    try:
        env_ = (Path("/proc") / str(pid) / "environ").read_bytes().split(b"\0")
    except OSError:
        return None
    return next((v.split(b"=", 1)[1].decode() for v in env_ if v.startswith(b"RANK=")), None)


def test_bad_distributed_input_is_one_line(job, tmp_path, capsys):
    """A batch that does not split over the ranks, ranks started with different settings and a
    world without a rendezvous: each refused with one line naming the problem and the fix."""
    rc, _, err = finish(torchrun(train_args(job, tmp_path / "odd", "--batch-size", "7",
                                            "--steps", "2")))
    assert rc != 0 and ("--batch-size 7 does not divide by the 2 ranks of this job; give a "
                        "multiple of 2") in err
    port = free_port()
    nodes = [subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--node-rank", str(n),
         "--nproc-per-node", "1", "--master-addr", "127.0.0.1", "--master-port", str(port),
         "-m", "difflogic", *train_args(job, tmp_path / "mixed", "--steps", "2", "--seed", str(n))],
        env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True) for n in (0, 1)]
    results = [finish(p) for p in nodes]
    assert all(rc != 0 for rc, _, _ in results)
    assert any("the ranks were started with different settings" in err
               for _, _, err in results), results[0][2][-2000:]
    proc = subprocess.run([sys.executable, "-m", "difflogic",
                           *train_args(job, tmp_path / "lonely", "--steps", "2")],
                          env=dict(env(), WORLD_SIZE="2", RANK="0", LOCAL_RANK="0"),
                          capture_output=True, text=True, timeout=LIMIT)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode != 0 and len(lines) == 1 and "no rendezvous" in lines[0], proc.stderr
