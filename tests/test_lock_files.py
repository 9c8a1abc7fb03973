"""A lock file with a folder in its place, or a holder that never lets go, is a DataError
naming the lock file and what to do (data_prep.locks.held_lock), not a raw
IsADirectoryError; the run directory's own `.lock` is tested in test_rundir_lock.py."""

import threading

import pytest

from data_prep import registry
from data_prep.errors import DataError
from data_prep.locks import held_lock


def test_a_folder_in_place_of_the_configurations_lock_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("EMODARTS_CONFIG_DIR", str(tmp_path / "config"))
    lock = registry.config_file().with_name(registry.config_file().name + ".lock")
    lock.mkdir(parents=True)
    with pytest.raises(DataError, match=r"config\.json\.lock: is a folder where a lock file must be") as info:
        registry.update_config(lambda cfg: cfg.update(shared_cache=str(tmp_path)))
    assert info.value.path == str(lock) and not registry.config_file().exists()


def test_a_lock_held_elsewhere_for_the_whole_timeout_is_named(tmp_path):
    lock_path, taken, done = tmp_path / "x.lock", threading.Event(), threading.Event()

    def holder():
        with held_lock(lock_path, timeout=5):
            taken.set()
            done.wait(10)
    thread = threading.Thread(target=holder)
    thread.start()
    try:
        assert taken.wait(10)
        with pytest.raises(DataError, match=r"x\.lock: another process has held this lock file for 0\.2 s"):
            with held_lock(lock_path, timeout=0.2):
                pass
    finally:
        done.set()
        thread.join()
    with held_lock(lock_path, timeout=1):  # free again
        pass
