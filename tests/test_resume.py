"""Resuming: an interrupted search (in-process, or killed with SIGKILL in a subprocess) that
resumes ends with exactly the weights, genotype and metrics of an uninterrupted run."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from emodarts_core.training.rundir import RunDir
from emodarts_core.darts.search import run_search
from loop_helpers import search_cfg, single_thread, tiny_fold, tiny_net, without_timing  # noqa: F401

EPOCHS = 6
TESTS = Path(__file__).resolve().parent


def _cfg():
    return search_cfg(epochs=EPOCHS)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("ref") / "run"
    result = run_search(tiny_fold(), tiny_net(), _cfg(), run_dir)
    return result, RunDir(run_dir).load_checkpoint()


def _assert_same_run(result, run_dir, reference):
    ref_result, ref_ckpt = reference
    assert result.genotype == ref_result.genotype
    assert without_timing(result.history) == without_timing(ref_result.history)
    assert without_timing(RunDir(run_dir).read_epochs()) == without_timing(ref_result.history)
    ckpt = RunDir(run_dir).load_checkpoint()
    for name, value in ref_ckpt["model"].items():
        assert torch.equal(ckpt["model"][name], value), name
    assert ckpt["alpha_history"] == ref_ckpt["alpha_history"]


def test_resume_in_process_equals_uninterrupted(tmp_path, monkeypatch, uninterrupted):
    """Interrupted after epoch 3's checkpoint but before its metrics line: resume repairs it."""
    real_append = RunDir.append_epoch

    def interrupt_third(self, record):
        if record["epoch"] == 3:
            raise KeyboardInterrupt
        real_append(self, record)

    monkeypatch.setattr(RunDir, "append_epoch", interrupt_third)
    with pytest.raises(KeyboardInterrupt):
        run_search(tiny_fold(), tiny_net(), _cfg(), tmp_path / "run")
    monkeypatch.setattr(RunDir, "append_epoch", real_append)
    assert RunDir(tmp_path / "run").load_checkpoint()["epoch"] == 3
    assert len(RunDir(tmp_path / "run").read_epochs()) == 2

    result = run_search(tiny_fold(), tiny_net(), _cfg(), tmp_path / "run", resume=True)
    _assert_same_run(result, tmp_path / "run", uninterrupted)


CHILD = textwrap.dedent("""
    import sys, time, torch
    sys.path.insert(0, {tests!r})
    torch.set_num_threads(1)
    from emodarts_core.training.rundir import RunDir
    from emodarts_core.darts.search import run_search
    from loop_helpers import search_cfg, tiny_fold, tiny_net
    save = RunDir.save_checkpoint
    def slow_save(self, state):  # widen the window for the kill; computation is unchanged
        save(self, state)
        time.sleep(0.5)
    RunDir.save_checkpoint = slow_save
    run_search(tiny_fold(), tiny_net(), search_cfg(epochs={epochs}), {run_dir!r})
""")


def test_sigkill_then_resume_equals_uninterrupted(tmp_path, uninterrupted):
    run_dir = tmp_path / "run"
    code = CHILD.format(tests=str(TESTS), epochs=EPOCHS, run_dir=str(run_dir))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.PIPE)
    rd = RunDir(run_dir)
    deadline = time.monotonic() + 120
    try:
        while True:
            assert child.poll() is None, f"search exited early: {child.stderr.read().decode()[-2000:]}"
            assert time.monotonic() < deadline, "no second checkpoint within 120 s"
            ckpt = rd.load_checkpoint() if rd.exists("checkpoint.pt") else None
            if ckpt is not None and ckpt["epoch"] >= 2:
                break
            time.sleep(0.05)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stderr.close()
    assert child.returncode == -signal.SIGKILL
    killed_at = rd.load_checkpoint()["epoch"]
    assert 2 <= killed_at < EPOCHS and not rd.is_finished()

    result = run_search(tiny_fold(), tiny_net(), _cfg(), run_dir, resume=True)
    _assert_same_run(result, run_dir, uninterrupted)
    assert not [p for p in run_dir.iterdir() if p.name.endswith(".tmp")]  # stranded by a kill mid-write
