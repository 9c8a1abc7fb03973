"""A run directory never writes through a symbolic link someone planted in it.

In a group-writable results folder anyone can create `<run>/.lock` as a link to another
file of the user (whose contents the lock's JSON would replace, and whose mode the lock
would change), or `<run>/tb` as a link to a folder elsewhere (where the event files
would go). Each test plants the link and checks that the run refuses with a clear error
and that the link's target is untouched: contents and mode.
"""

import os
import stat

import pytest

from emodarts_core.darts.search import run_search
from emodarts_core.training.rundir import RunDir, UnsafeRunDirError
from emodarts_core.training.tblog import RunLog
from loop_helpers import search_cfg, single_thread, tiny_fold, tiny_net  # noqa: F401

pytestmark = pytest.mark.skipif(not hasattr(os, "symlink") or os.name == "nt", reason="POSIX links")


def _victim(tmp_path, name="secret.txt", text="the user's own file\n"):
    victim = tmp_path / "elsewhere" / name
    victim.parent.mkdir(exist_ok=True)
    victim.write_text(text)
    victim.chmod(0o600)
    return victim


def _state(path):
    st = path.lstat()
    return path.read_bytes(), stat.S_IMODE(st.st_mode), st.st_mtime_ns


def test_a_planted_lock_link_is_refused_and_its_target_untouched(tmp_path):
    victim = _victim(tmp_path)
    before = _state(victim)
    run = tmp_path / "run"
    run.mkdir()
    (run / ".lock").symlink_to(victim)
    with pytest.raises(UnsafeRunDirError, match=r"\.lock is a symbolic link .*secret\.txt.*Remove the link"):
        RunDir(run).claim(resume=False)
    assert _state(victim) == before
    with pytest.raises(UnsafeRunDirError):  # the search refuses before it computes anything
        run_search(tiny_fold(), tiny_net(), search_cfg(epochs=1), run)
    assert _state(victim) == before and (run / ".lock").is_symlink()
    assert not (run / "config.json").exists()


def test_a_lock_hard_linked_to_another_file_is_refused(tmp_path):
    victim = _victim(tmp_path)
    before = _state(victim)
    run = tmp_path / "run"
    run.mkdir()
    os.link(victim, run / ".lock")
    with pytest.raises(UnsafeRunDirError, match="not a plain file of its own"):
        RunDir(run).claim(resume=False)
    assert _state(victim) == before


def test_a_dangling_lock_link_creates_nothing_at_its_target(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    target = tmp_path / "elsewhere" / "created-by-the-run"
    (run / ".lock").symlink_to(target)
    with pytest.raises(UnsafeRunDirError):
        RunDir(run).claim(resume=False)
    assert not target.exists() and not target.parent.exists()


def test_a_planted_tb_link_is_refused_and_its_target_untouched(tmp_path):
    outside = tmp_path / "elsewhere"
    victim = _victim(tmp_path)
    outside.chmod(0o700)
    before, listing = _state(victim), sorted(os.listdir(outside))
    run = tmp_path / "run"
    run.mkdir()
    (run / "tb").symlink_to(outside, target_is_directory=True)
    with pytest.raises(UnsafeRunDirError, match=r"tb is a symbolic link"):
        RunLog(run)
    with pytest.raises(UnsafeRunDirError, match=r"tb is a symbolic link"):
        run_search(tiny_fold(), tiny_net(), search_cfg(epochs=1), run)
    assert sorted(os.listdir(outside)) == listing and _state(victim) == before
    assert stat.S_IMODE(outside.stat().st_mode) == 0o700
    RunDir(run).claim(resume=True)  # the refused run gave its lock back
    RunDir(run).release()


def test_a_planted_metrics_link_is_refused_and_its_target_untouched(tmp_path):
    victim = _victim(tmp_path)
    before = _state(victim)
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").symlink_to(victim)
    with pytest.raises(UnsafeRunDirError, match="metrics.jsonl is a symbolic link"):
        RunDir(run).append_epoch({"epoch": 1, "train_loss": 1.0})
    assert _state(victim) == before
