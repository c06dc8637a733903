"""The CPU thread count of training steps, chosen by measurement while a run trains."""
import pytest
import torch

from difflogic import data
from difflogic.training import TrainOptions, train
from difflogic.training.threads import ThreadTuner

from conftest import TINY, run_metrics, run_state


@pytest.fixture
def restore_threads():
    old = torch.get_num_threads()
    yield
    torch.set_num_threads(old)


def drive(tuner, seconds_per_image, steps):
    """Run ``steps`` fake steps whose time per image depends on the thread count set."""
    used = []
    for _ in range(steps):
        tuner.before_step()
        n = torch.get_num_threads()
        used.append(n)
        tuner.after_step(seconds_per_image(n) * 32, 32)
    return used


def test_a_busy_core_makes_it_train_on_one_thread(restore_threads):
    logs = []
    tuner = ThreadTuner(2, every=20, probe_steps=3, log=logs.append)
    used = drive(tuner, lambda n: 0.010 if n == 2 else 0.002, 30)  # 2 threads 5x slower
    assert used[:8] == [2] * 4 + [1] * 4  # the probe: a warm-up and 3 steps on each setting
    assert used[8:28] == [1] * 20 and used[28:] == [2, 2]  # every 20 steps: probe again
    assert len(logs) == 1 and "CPU threads 2 -> 1" in logs[0] and "another process" in logs[0]


def test_a_quiet_machine_keeps_every_thread_and_a_jump_reprobes(restore_threads):
    logs = []
    tuner = ThreadTuner(2, every=1000, probe_steps=2, log=logs.append)
    busy = [False]

    def cost(n):
        return (0.004 if busy[0] else 0.001) if n == 2 else 0.0018
    used = drive(tuner, cost, 12)
    assert used[6:] == [2] * 6 and logs == []  # 2 threads measured faster: kept, not logged
    busy[0] = True  # another process starts: 2-thread steps slow down 4x
    used = drive(tuner, cost, 12)
    # three slow steps make the median of the last five a jump; a probe then picks 1 thread
    assert used[:3] == [2] * 3 and used[3:9] == [2, 2, 2, 1, 1, 1] and used[9:] == [1] * 3
    assert logs and "CPU threads 2 -> 1" in logs[-1]


def test_switching_threads_mid_run_changes_no_number(tmp_path, restore_threads, monkeypatch):
    """A run whose tuner switches between 2 threads and 1 every few steps trains bit for bit
    the run of one thread: the kernels' results do not depend on the thread count."""
    import difflogic.training.loop as loop
    fake = data.write_fake_idx(tmp_path / "d", n_train=120, n_test=20)
    common = dict(dataset="mnist", data_dir=str(fake), model_config=TINY, steps=30, eval_every=10,
                  seed=2, progress="none", test=False)
    torch.set_num_threads(2)
    flips = []

    class Flipping(ThreadTuner):  # a probe every 3 steps, each deciding for the other setting
        def __init__(self, many, log=None):
            super().__init__(many, every=3, probe_steps=1, log=log)

        def _decide(self):
            self.current = 1 if self.current == 2 else 2
            flips.append(self.current)
            self.since, self.recent, self.reference = 0, [], 1.0
    monkeypatch.setattr(loop, "ThreadTuner", Flipping)
    train(TrainOptions(out=str(tmp_path / "tuned"), **common))
    assert len(set(flips)) == 2  # it really ran on both settings
    train(TrainOptions(out=str(tmp_path / "one"), threads=1, **common))
    a, b = run_state(tmp_path / "tuned"), run_state(tmp_path / "one")
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k
    assert run_metrics(tmp_path / "tuned") == run_metrics(tmp_path / "one")
