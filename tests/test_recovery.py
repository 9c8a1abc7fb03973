"""Advice that works after a run fails, and clear errors where a run cannot write.

A non-finite loss said "lower the learning rate and resume", but resume refuses a changed
learning rate; now the message says what works: with no checkpoint the same directory
takes new settings, with one a new run directory does. In a sweep, a run that stopped
before its first checkpoint no longer binds the folder to its settings. A run directory
that cannot be written is a RunDirNotWritableError saying so, not a raw OSError.
"""

import errno
import os

import pytest

from emodarts_core.config import ConfigError
from emodarts_core.darts.search import run_search
from emodarts_core.study import sweep
from emodarts_core.study.sweep import load_params
from emodarts_core.training.loop import NonFiniteLossError, stop_message
from emodarts_core.training.rundir import RunDir, RunDirNotWritableError
from loop_helpers import SIZE, search_cfg, single_thread, tiny_fold, tiny_net  # noqa: F401

TOO_HIGH = dict(w_lr=1e30, w_lr_min=1e-3)  # the loss is not finite in the first epoch


def test_a_run_with_no_checkpoint_takes_a_lower_learning_rate_in_the_same_directory(tmp_path):
    run = tmp_path / "run"
    with pytest.raises(NonFiniteLossError, match=rf"no checkpoint\. Lower the learning rate .* run again into {run}"):
        run_search(tiny_fold(), tiny_net(), search_cfg(epochs=1, **TOO_HIGH), run)
    assert (run / "config.json").exists() and not RunDir(run).has_run()
    for resume in (False, True):  # what the message says works, with or without resume
        result = run_search(tiny_fold(), tiny_net(), search_cfg(epochs=1), run, resume=resume)
        assert RunDir(run).is_finished() and len(result.history) == 1


def test_with_a_checkpoint_the_message_and_the_refusal_point_to_a_new_run_directory(tmp_path):
    run = tmp_path / "run"
    run_search(tiny_fold(), tiny_net(), search_cfg(epochs=2), run)
    (run / "FINISHED").unlink()  # as if it had stopped after its last checkpoint
    message = stop_message(RunDir(run), 3, RuntimeError("non-finite training loss (nan)"))
    assert "start a new run directory" in message and "resume=True continues from epoch 2" in message
    with pytest.raises(ConfigError, match=r"differs in search\.w_lr\..*choose a new run directory"):
        run_search(tiny_fold(), tiny_net(), search_cfg(epochs=2, w_lr=0.001), run, resume=True)


def test_a_sweep_run_that_stopped_before_its_first_checkpoint_does_not_bind_the_folder(tmp_path):
    params = {"network": {"preset": "smoke", "input_size": list(SIZE)}, "search": {"epochs": 1},
              "train": {"epochs": 1}}
    RunDir(tmp_path).atomic_write_json("sweep.json", {"params": load_params(params).to_dict()})
    failed = tmp_path / "synthetic" / "emodarts" / "fold1" / "seed0" / "search"
    RunDir(failed).write_config({"kind": "search"})  # all a run stopped in epoch 1 leaves
    lower = {**params, "search": {"epochs": 1, "w_lr": 0.001}}
    sweep.status.check_params_match(tmp_path, load_params(lower))  # accepted: nothing was computed
    RunDir(failed).append_epoch({"epoch": 1})
    with pytest.raises(ConfigError, match="search.w_lr"):
        sweep.status.check_params_match(tmp_path, load_params(lower))


@pytest.mark.parametrize("code", [errno.EACCES, errno.EROFS])
def test_a_run_directory_that_cannot_be_written_is_a_clear_error(tmp_path, monkeypatch, code):
    real_mkdir = type(tmp_path).mkdir

    def refuse(self, *args, **kwargs):
        if self.name == "run":
            raise OSError(code, os.strerror(code), str(self))
        return real_mkdir(self, *args, **kwargs)
    monkeypatch.setattr(type(tmp_path), "mkdir", refuse)
    with pytest.raises(RunDirNotWritableError, match=rf"cannot write to the run directory .*run \({os.strerror(code)}\)"
                       r".*Choose a writable run directory"):
        run_search(tiny_fold(), tiny_net(), search_cfg(epochs=1), tmp_path / "run")
