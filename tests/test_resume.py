"""Resuming: an interrupted search (in-process, or killed with SIGKILL in a subprocess) that
resumes ends with exactly the weights, genotype and metrics of an uninterrupted run."""

import signal

import pytest
import torch

from emodarts_core.training.rundir import RunDir
from emodarts_core.darts.search import run_search
from loop_helpers import (kill_search_after_checkpoint, search_cfg, single_thread, tiny_fold,  # noqa: F401
                          tiny_net, without_timing)

EPOCHS = 6


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


def test_sigkill_then_resume_equals_uninterrupted(tmp_path, uninterrupted):
    run_dir = tmp_path / "run"
    assert kill_search_after_checkpoint(run_dir, EPOCHS) == -signal.SIGKILL
    rd = RunDir(run_dir)
    killed_at = rd.load_checkpoint()["epoch"]
    assert 2 <= killed_at < EPOCHS and not rd.is_finished()

    result = run_search(tiny_fold(), tiny_net(), _cfg(), run_dir, resume=True)
    _assert_same_run(result, run_dir, uninterrupted)
    assert not [p for p in run_dir.iterdir() if p.name.endswith(".tmp")]  # stranded by a kill mid-write
