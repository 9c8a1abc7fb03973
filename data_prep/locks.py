"""A non-blocking exclusive lock on an open file, shared by every layer that marks work as live,
and a waiting lock around a read-modify-write of a shared file.

The feature store marks a build in progress (`data_prep/store.py`), and a run directory
marks a running search or retraining (`emodarts_core/training/rundir.py`): both ask the
same question, "does a live process hold this file?", so both use this one function.
`held_lock` serialises writers of one file (the user configuration's `register`), and
turns what can go wrong with its lock file (a folder in its place, a holder that never
lets go) into a `DataError` naming the lock file and what to do.
It lives in `data_prep`, the bottom layer, so that every layer may import it.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

from .errors import DataError


def try_flock(fh) -> bool:
    """Take an exclusive lock on `fh` without waiting: True when taken, False when held elsewhere.

    POSIX: `flock`, released by the kernel when the holder's process ends. Windows has no
    flock, so the first byte is locked instead.
    """
    try:
        import fcntl
    except ImportError:
        import msvcrt

        try:
            fh.seek(0)
            msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


@contextmanager
def held_lock(lock_path, *, timeout: float):
    """Hold the lock file `lock_path` (waiting up to `timeout` seconds) for the `with` block.

    DataError names the lock file where a folder stands in its place (the lock cannot be
    taken) or another process holds it for the whole `timeout`.
    """
    from filelock import FileLock, Timeout

    lock_path = Path(lock_path)
    lock = FileLock(os.fspath(lock_path), timeout=timeout)
    try:
        lock.acquire()
    except Timeout:
        raise DataError(f"another process has held this lock file for {timeout:g} s; if none is running, "
                        "delete the lock file and try again", lock_path) from None
    except IsADirectoryError:
        raise DataError("is a folder where a lock file must be, so the lock cannot be taken; remove the folder "
                        "(if nothing in it is needed) and try again", lock_path) from None
    try:
        yield
    finally:
        lock.release()
