"""A non-blocking exclusive lock on an open file, shared by every layer that marks work as live.

The feature store marks a build in progress (`data_prep/store.py`), and a run directory
marks a running search or retraining (`emodarts_core/training/rundir.py`): both ask the
same question, "does a live process hold this file?", so both use this one function.
It lives in `data_prep`, the bottom layer, so that every layer may import it.
"""

from __future__ import annotations


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
