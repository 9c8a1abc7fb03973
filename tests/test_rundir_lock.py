"""One writer per run directory, and checkpoints whose failure says how to go on.

A second run into a directory that a live run holds refuses with RunLockedError naming
the holder (pid, host, since) before computing anything; a lock left by a SIGKILLed
process does not block resuming (a flock dies with its process). A checkpoint write that
fails (disk full) raises CheckpointWriteError naming the last good epoch and resume=True,
and leaves no partial file.
"""

import errno
import io
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import torch

from emodarts_core.darts.search import run_search
from emodarts_core.training.loop import claim_run_dir
from emodarts_core.training.rundir import CheckpointWriteError, RunDir, RunLockedError, UnsafeRunDirError
from loop_helpers import search_cfg, single_thread, tiny_fold, tiny_net  # noqa: F401

TESTS = Path(__file__).resolve().parent
EPOCHS = 4

SEARCH_CHILD = textwrap.dedent("""
    import sys, time, torch
    sys.path.insert(0, {tests!r})
    torch.set_num_threads(1)
    from emodarts_core.training.rundir import RunDir
    from emodarts_core.darts.search import run_search
    from loop_helpers import search_cfg, tiny_fold, tiny_net
    save = RunDir.save_checkpoint
    def slow_save(self, state):  # keep the run going long enough to be contended
        save(self, state)
        time.sleep({pause})
    RunDir.save_checkpoint = slow_save
    run_search(tiny_fold(), tiny_net(), search_cfg(epochs={epochs}), {run_dir!r}, resume=True)
""")


def _start(run_dir: Path, pause: float) -> subprocess.Popen:
    code = SEARCH_CHILD.format(tests=str(TESTS), epochs=EPOCHS, run_dir=str(run_dir), pause=pause)
    return subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "OMP_NUM_THREADS": "1"},
                            stderr=subprocess.PIPE)


def _wait_for(child: subprocess.Popen, ready, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert child.poll() is None, f"child exited early: {child.stderr.read().decode()[-2000:]}"
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        time.sleep(0.05)


def test_second_concurrent_run_refuses_naming_the_holder(tmp_path):
    run_dir = tmp_path / "run"
    child = _start(run_dir, pause=0.4)
    rd = RunDir(run_dir)
    try:
        _wait_for(child, lambda: rd.exists("checkpoint.pt"), "first checkpoint")
        with pytest.raises(RunLockedError) as info:  # refused at the claim, before any epoch
            run_search(tiny_fold(), tiny_net(), search_cfg(epochs=EPOCHS), run_dir, resume=True)
        msg = str(info.value)
        assert f"process {child.pid} on {socket.gethostname()}, running since" in msg
        assert "choose another run directory" in msg
        assert child.wait(timeout=120) == 0, child.stderr.read().decode()[-2000:]
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stderr.close()
    epochs = [r["epoch"] for r in rd.read_epochs()]
    assert epochs == list(range(1, EPOCHS + 1))  # every metrics row exactly once
    assert rd.is_finished()
    assert claim_run_dir(run_dir, rd.read_config(), resume=True)[1] == "finished"  # lock given back


def test_stale_lock_of_a_killed_run_does_not_block_resume(tmp_path):
    run_dir = tmp_path / "run"
    child = _start(run_dir, pause=0.5)
    rd = RunDir(run_dir)
    try:
        _wait_for(child, lambda: rd.exists("checkpoint.pt"), "first checkpoint")
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stderr.close()
    assert rd.holder()["pid"] == child.pid  # the lock file is left behind ...
    result = run_search(tiny_fold(), tiny_net(), search_cfg(epochs=EPOCHS), run_dir, resume=True)  # ... harmless
    assert [r["epoch"] for r in result.history] == list(range(1, EPOCHS + 1))
    assert RunDir(run_dir).is_finished()


def test_another_thread_is_refused_the_same_thread_takes_over(tmp_path):
    rd = RunDir(tmp_path / "run")
    assert rd.claim(resume=False) == "fresh"
    rd.write_config({"kind": "search"})
    rd.append_epoch({"epoch": 1})
    errors = []

    def other():
        try:
            RunDir(tmp_path / "run").claim(resume=True)
        except RunLockedError as exc:
            errors.append(exc)

    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert errors and "another thread of this process" in str(errors[0])
    # the same thread again (an earlier run here ended with an exception): taken over
    assert RunDir(tmp_path / "run").claim(resume=True) == "resume"
    RunDir(tmp_path / "run").release()


class _DiskFull(io.RawIOBase):
    """A file that accepts `room` bytes and then fails like a full disk."""

    def __init__(self, fh, room: int):
        self.fh, self.room = fh, room

    def writable(self):
        return True

    def write(self, b):
        if len(b) > self.room:
            self.fh.write(bytes(b)[:self.room])
            self.room = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(b)
        return self.fh.write(b)


def test_disk_full_during_a_checkpoint_names_the_epoch_and_leaves_no_partial_file(tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    real_save = torch.save

    def save(obj, f, *args, **kwargs):
        if isinstance(obj, dict) and obj.get("epoch") == 3:  # the third checkpoint hits a full disk
            return real_save(obj, _DiskFull(f, 4096), *args, **kwargs)
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)
    with pytest.raises(CheckpointWriteError) as info:
        run_search(tiny_fold(), tiny_net(), search_cfg(epochs=EPOCHS), run_dir)
    err = info.value
    msg = str(err)
    assert err.epoch == 3 and err.last_epoch == 2 and err.errno == errno.ENOSPC
    assert "checkpoint of epoch 3" in msg and "last good checkpoint, epoch 2" in msg
    assert "No space left on device" in msg and "resume=True" in msg and "Free disk space" in msg
    assert err.__cause__ is None and err.__suppress_context__  # no chain into torch internals
    assert not [p.name for p in run_dir.iterdir() if p.name.endswith(".tmp")]
    rd = RunDir(run_dir)
    assert rd.load_checkpoint()["epoch"] == 2 and len(rd.read_epochs()) == 2
    monkeypatch.setattr(torch, "save", real_save)
    result = run_search(tiny_fold(), tiny_net(), search_cfg(epochs=EPOCHS), run_dir, resume=True)
    assert [r["epoch"] for r in result.history] == list(range(1, EPOCHS + 1))


def test_failed_first_checkpoint_says_there_is_none(tmp_path, monkeypatch):
    rd = RunDir(tmp_path / "run")

    def fsync(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(CheckpointWriteError, match="no earlier epoch was checkpointed") as info:
        rd.save_checkpoint({"epoch": 1, "w": torch.zeros(3)})
    assert info.value.last_epoch is None
    assert not rd.exists("checkpoint.pt") and os.listdir(rd.path) == []


def test_a_lock_that_is_a_folder_is_a_clear_error(tmp_path):
    """Before: a raw IsADirectoryError from deep inside the lock's open."""
    (tmp_path / "run" / ".lock").mkdir(parents=True)
    with pytest.raises(UnsafeRunDirError, match=r"\.lock is a folder; a run directory's lock file must be a plain file"):
        RunDir(tmp_path / "run").claim(resume=False)
    assert (tmp_path / "run" / ".lock").is_dir()
