"""The run directory: every file a search or retraining run leaves behind, written atomically.

Layout (search and retraining alike, unless marked):

    config.json          configurations, fold ids and data description (written before work)
    metrics.jsonl        one JSON object per finished epoch
    metrics.csv          the same, flattened to scalar columns
    checkpoint.pt        last finished epoch: weights, optimiser/scheduler/RNG states, history
    checkpoint.prev.pt   the epoch before it (until the run finishes): the last good epoch if checkpoint.pt is damaged
    alpha_history.json   (search) per-epoch alpha softmax, genotype and parameter-free share
    genotype.json        (search) the final genotype
    model.pt             (retrain) the selected (best validation UA) weights
    result.json          (retrain) test UA/WA, confusion matrix, parameters, best epoch
    FINISHED             JSON summary; present only once the run completed
    tb/                  TensorBoard event files (training/tblog.py): a view of the records, rewritten on resume
    .lock                who holds the directory (pid, host, since) while a run writes to it

Every whole-file write goes to a temporary file in the same directory, is flushed to disk
and then renamed over the target (`os.replace`), so a crash never leaves a half-written
file. Metric lines are appended; after a crash they are rewritten from the checkpoint's
history on resume, so they never hold an epoch the checkpoint does not. Temporary files
get the mode an ordinary `open` would give (0666 less the umask), not tempfile's 0600, so
a run directory in a group folder stays readable by the group (docs/DATA.md).

One writer at a time: `claim` takes an exclusive `flock` on `.lock` and keeps it until the
run finishes (`mark_finished`), the claim is released, or the process ends. A second run
into the directory, from any process, fails with `RunLockedError` naming the holder,
instead of computing everything again and appending every metrics row a second time.
The kernel drops a `flock` when its process dies, so a run killed with SIGKILL leaves
`.lock` behind but never blocks resuming. Within one process, a later claim by the same
thread takes the lock over (a thread runs one run at a time, so the earlier run there has
ended, e.g. by an exception); a claim from another live thread is refused.

No file or folder of the run is reached through a symbolic link a third party planted:
`.lock` and the metric files are opened with `O_NOFOLLOW` (and the lock must be a plain
file with one link), and `tb/` must be a real folder (`make_real_subdir`). In a
group-writable results folder anyone could otherwise point `<run>/.lock` at another file
of the user, whose contents the lock's JSON would replace, or send `tb/`'s event files
elsewhere; such a link is refused with `UnsafeRunDirError` and its target left as it was.
Whole-file writes replace a link by a file (`os.replace` never follows one).

A checkpoint that cannot be written (disk full, permission) raises `CheckpointWriteError`
naming the last good epoch and how to resume; the temporary file is removed and the
previous checkpoint stays as it was. Every file written by `torch.save` is checked before
it is loaded (`training.archives`: each zip member's CRC-32): a damaged one raises
`DamagedFileError` naming the file, the damaged part and, for a checkpoint, the last good
epoch, kept as checkpoint.prev.pt, and how to resume from it.
"""

from __future__ import annotations

import atexit
import csv
import errno
import io
import json
import os
import pickle
import socket
import stat
import threading
import time
from pathlib import Path

import torch

from data_prep.errors import EmodartsError
from data_prep.locks import try_flock
from data_prep.store import current_umask, write_atomic  # one umask reader and one safe writer for all

from .archives import DamagedFileError, archive_problem, damaged_checkpoint_error, keep_previous

CONFIG = "config.json"
CHECKPOINT = "checkpoint.pt"
PREVIOUS_CHECKPOINT = "checkpoint.prev.pt"
METRICS_JSONL = "metrics.jsonl"
METRICS_CSV = "metrics.csv"
FINISHED = "FINISHED"
LOCK = ".lock"


class RunExistsError(EmodartsError, RuntimeError):
    """The run directory already holds a run that the caller did not ask to resume."""


class RunLockedError(RunExistsError):
    """Another run (another process, or another thread of this one) is writing to the directory."""


class CheckpointWriteError(EmodartsError, RuntimeError):
    """The checkpoint could not be written; `last_epoch` is the one still on disk (None: none)."""

    def __init__(self, message: str, *, epoch: int | None, last_epoch: int | None, errno_: int | None):
        super().__init__(message)
        self.epoch, self.last_epoch, self.errno = epoch, last_epoch, errno_


class RunDirNotWritableError(EmodartsError, PermissionError):
    """The run directory cannot be created or written (permission, read-only filesystem)."""


class UnsafeRunDirError(EmodartsError, RuntimeError):
    """A file or folder of the run directory is a symbolic link (or a second link to a
    file): refused instead of written through."""


_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def _refuse_link(path: Path, what: str) -> UnsafeRunDirError:
    try:
        target = f" (to {os.readlink(path)})"
    except OSError:
        target = ""
    return UnsafeRunDirError(f"{path} is a symbolic link{target}; a run directory's {what} must be a plain "
                             "file or folder of the run, never a link, so nothing was written through it. "
                             "Remove the link (someone with write access to the folder may have planted it), "
                             "or choose another run directory.")


def open_no_follow(path, flags: int, what: str):
    """`os.open(path, flags | O_NOFOLLOW, 0o666)`: a file descriptor, or UnsafeRunDirError
    where `path` is a symbolic link (checked first on systems without O_NOFOLLOW)."""
    path = Path(path)
    if not _NOFOLLOW and path.is_symlink():
        raise _refuse_link(path, what)
    try:
        return os.open(path, flags | _NOFOLLOW, 0o666)
    except OSError as exc:
        if exc.errno == errno.ELOOP or path.is_symlink():
            raise _refuse_link(path, what) from None
        raise


def make_real_subdir(run_path, name: str) -> Path:
    """`<run>/<name>` as a real folder (not a symbolic link), created where missing;
    UnsafeRunDirError where it is a link (a planted `tb/` link would send the run's event
    files elsewhere)."""
    path = Path(run_path) / name
    if path.is_symlink():
        raise _refuse_link(path, f"{name}/ folder")
    path.mkdir(parents=True, exist_ok=True)
    if path.is_symlink() or not path.is_dir():  # swapped in between
        raise _refuse_link(path, f"{name}/ folder")
    return path


def _os_error_in(exc: BaseException) -> OSError | None:
    """The OSError behind `exc` (torch.save wraps a failed write in a RuntimeError)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, OSError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


# Locks this process holds, by resolved directory: (open lock file, holding thread id, pid).
_HELD: dict[str, tuple] = {}
_HELD_GUARD = threading.Lock()


@atexit.register
def _close_held_locks() -> None:
    """Close the lock files of runs that ended by an exception (their flock ends with the process anyway)."""
    with _HELD_GUARD:
        for fh, _thread, pid in _HELD.values():
            if pid == os.getpid():
                fh.close()
        _HELD.clear()


def _flatten(record: dict, prefix: str = "") -> dict:
    """Scalar columns of a (possibly nested) record; lists are left out of the CSV."""
    flat = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, name + "."))
        elif not isinstance(value, (list, tuple)):
            flat[name] = value
    return flat


class RunDir:
    """A run directory at `path` (created on first write)."""

    def __init__(self, path):
        self.path = Path(path)
        self._last_epoch = None  # epoch of the checkpoint this object last wrote or read

    def file(self, name: str) -> Path:
        return self.path / name

    def exists(self, name: str) -> bool:
        return self.file(name).exists()

    # -- atomic whole-file writes -------------------------------------------------------
    def _atomic_write(self, name: str, write) -> Path:
        self.path.mkdir(parents=True, exist_ok=True)
        write_atomic(self.file(name), write, binary=True, suffix=".tmp")
        return self.file(name)

    def atomic_write_text(self, name: str, text: str) -> Path:
        return self._atomic_write(name, lambda fh: fh.write(text.encode("utf-8")))

    def atomic_write_json(self, name: str, obj) -> Path:
        return self.atomic_write_text(name, json.dumps(obj, indent=2, sort_keys=False) + "\n")

    def read_json(self, name: str):
        return json.loads(self.file(name).read_text(encoding="utf-8"))

    def write_config(self, config: dict) -> Path:
        return self.atomic_write_json(CONFIG, config)

    def read_config(self) -> dict | None:
        return self.read_json(CONFIG) if self.exists(CONFIG) else None

    # -- per-epoch metrics --------------------------------------------------------------
    def append_epoch(self, record: dict) -> None:
        """Append one epoch's record to metrics.jsonl and metrics.csv (header on first line)."""
        self.path.mkdir(parents=True, exist_ok=True)
        with self._open_append(METRICS_JSONL) as fh:
            fh.write(json.dumps(record) + "\n")
        flat = _flatten(record)
        csv_path = self.file(METRICS_CSV)
        new = not csv_path.exists() or csv_path.stat().st_size == 0
        with self._open_append(METRICS_CSV) as fh:
            writer = csv.DictWriter(fh, fieldnames=list(flat), extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow(flat)

    def _open_append(self, name: str):
        fd = open_no_follow(self.file(name), os.O_WRONLY | os.O_CREAT | os.O_APPEND, f"{name} file")
        return os.fdopen(fd, "a", encoding="utf-8", newline="")

    def rewrite_epochs(self, history: list[dict]) -> None:
        """Replace both metric files with exactly `history` (used on resume)."""
        self.atomic_write_text(METRICS_JSONL, "".join(json.dumps(r) + "\n" for r in history))
        buf = io.StringIO()
        if history:
            rows = [_flatten(r) for r in history]
            writer = csv.DictWriter(buf, fieldnames=list(rows[0]), extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
        self.atomic_write_text(METRICS_CSV, buf.getvalue())

    def read_epochs(self) -> list[dict]:
        if not self.exists(METRICS_JSONL):
            return []
        return [json.loads(line) for line in self.file(METRICS_JSONL).read_text().splitlines() if line]

    # -- checkpoint ---------------------------------------------------------------------
    def atomic_save_torch(self, name: str, obj) -> Path:
        """Atomically `torch.save` `obj` (tensors, numbers, strings, lists, dicts) as `name`."""
        return self._atomic_write(name, lambda fh: torch.save(obj, fh))

    def load_torch(self, name: str, map_location="cpu"):
        """Load a file written by `atomic_save_torch` with `weights_only=True` (no pickled code),
        after checking every member's CRC: DamagedFileError names a damaged file."""
        path = self.file(name)
        problem = archive_problem(path)
        if problem is None:
            try:
                return torch.load(path, map_location=map_location, weights_only=True)
            except (pickle.UnpicklingError, UnicodeDecodeError, EOFError, RuntimeError, ValueError, KeyError,
                    AttributeError, IndexError) as exc:
                if isinstance(exc, RuntimeError) and "CUDA" in str(exc):
                    raise  # a device this machine lacks, not a damaged file
                first_line = (str(exc) or "?").splitlines()[0][:200]
                problem = f"its contents cannot be loaded ({type(exc).__name__}: {first_line})"
        raise DamagedFileError(f"{path} is damaged: {problem}.", path=path)

    def save_checkpoint(self, state: dict) -> Path:
        """Atomically write the training state to checkpoint.pt.

        A failed write (disk full, permission, quota) raises CheckpointWriteError naming the
        epoch that is still on disk and how to resume; nothing partial is left behind.
        """
        try:
            self._keep_previous_checkpoint()
            path = self.atomic_save_torch(CHECKPOINT, state)
        except Exception as exc:
            os_error = _os_error_in(exc)
            if os_error is None:
                raise
            raise self._checkpoint_error(state.get("epoch"), os_error) from None
        self._last_epoch = state.get("epoch")
        return path

    def _keep_previous_checkpoint(self) -> None:
        """Keep the current checkpoint as checkpoint.prev.pt before the new one replaces it,
        so that one intact checkpoint remains if the newest is found damaged."""
        keep_previous(self.file(CHECKPOINT), self.file(PREVIOUS_CHECKPOINT))

    def _checkpoint_error(self, epoch, os_error: OSError) -> CheckpointWriteError:
        last = self._last_epoch
        if last is None and self.exists(CHECKPOINT):
            try:
                last = self.load_checkpoint().get("epoch")
            except Exception:  # unreadable: say so below rather than fail again
                last = "unknown"
        why = os_error.strerror or str(os_error)
        if os_error.errno in (errno.ENOSPC, errno.EDQUOT):
            fix = "free disk space (or raise the quota)"
        elif os_error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            fix = f"make {self.path} writable"
        else:
            fix = "fix the cause"
        kept = (f"the last good checkpoint, epoch {last}, is kept in {self.file(CHECKPOINT)}" if last is not None
                else "no earlier epoch was checkpointed, so a resumed run starts from epoch 1")
        return CheckpointWriteError(
            f"could not write the checkpoint of epoch {epoch} to {self.file(CHECKPOINT)}: {why} "
            f"[errno {os_error.errno}]; {kept}; no partial file was left. {fix.capitalize()}, then run the "
            "same command again with resume=True (papermill: -p resume True) to continue from there.",
            epoch=epoch, last_epoch=last if isinstance(last, int) else None, errno_=os_error.errno)

    def load_checkpoint(self, map_location="cpu") -> dict | None:
        """The last checkpoint, or None."""
        if not self.exists(CHECKPOINT):
            return None
        try:
            ckpt = self.load_torch(CHECKPOINT, map_location)
        except DamagedFileError as exc:
            raise self._damaged_checkpoint(exc) from None
        if isinstance(ckpt, dict):
            self._last_epoch = ckpt.get("epoch")
        return ckpt

    def _damaged_checkpoint(self, exc: DamagedFileError) -> DamagedFileError:
        """The error for a damaged checkpoint.pt, naming the last good epoch (checkpoint.prev.pt's)."""
        previous, last = self.file(PREVIOUS_CHECKPOINT), None
        if previous.is_file() and not previous.is_symlink():
            try:
                last = RunDir(self.path).load_torch(PREVIOUS_CHECKPOINT).get("epoch")
            except (DamagedFileError, OSError, AttributeError):
                last = None
        return damaged_checkpoint_error(exc, previous, last if isinstance(last, int) else None)

    # -- lifecycle ----------------------------------------------------------------------
    def is_finished(self) -> bool:
        return self.exists(FINISHED)

    def mark_finished(self, summary: dict) -> None:
        self.atomic_write_json(FINISHED, summary)
        try:
            self.file(PREVIOUS_CHECKPOINT).unlink()  # the run will not resume: one checkpoint is enough
        except FileNotFoundError:
            pass
        self.release()

    # -- the writer lock ----------------------------------------------------------------
    def _key(self) -> str:
        return str(self.path.resolve())

    def holder(self) -> dict | None:
        """What `.lock` says about the run that last claimed the directory (None: nothing)."""
        if self.file(LOCK).is_symlink():  # never read through a planted link either
            return None
        try:
            return json.loads(self.file(LOCK).read_text(encoding="utf-8") or "null")
        except (OSError, ValueError):
            return None

    def acquire(self) -> None:
        """Take the directory's writer lock, or raise RunLockedError naming its holder
        (RunDirNotWritableError where the directory cannot be written)."""
        try:
            self._acquire()
        except OSError as exc:
            if isinstance(exc, EmodartsError) or exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise
            raise RunDirNotWritableError(
                f"cannot write to the run directory {self.path} ({exc.strerror or exc}); a run writes its "
                "checkpoints and results there. Choose a writable run directory (run_dir=..., papermill: "
                "-p run_dir PATH), or make this one writable.") from None

    def _acquire(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        key = self._key()
        me = threading.get_ident()
        with _HELD_GUARD:
            held = _HELD.get(key)
            if held is not None and held[2] == os.getpid():
                fh, thread, _pid = held
                alive = thread == me or any(t.ident == thread for t in threading.enumerate())
                if thread != me and alive:
                    raise RunLockedError(self._locked_message(in_process=True))
                _HELD[key] = (fh, me, os.getpid())  # the earlier run on this thread has ended
                self._write_holder(fh)
                return
            fh = self._open_lock_file()
            if not try_flock(fh):
                fh.close()
                raise RunLockedError(self._locked_message(in_process=False))
            _HELD[key] = (fh, me, os.getpid())
            self._write_holder(fh)

    def _open_lock_file(self):
        """`.lock` opened for reading and writing without following a link; a file with a
        second name (a hard link planted to another file) is refused too."""
        path = self.file(LOCK)
        try:
            fd = open_no_follow(path, os.O_RDWR | os.O_CREAT, "lock file")
        except IsADirectoryError:
            raise UnsafeRunDirError(f"{path} is a folder; a run directory's lock file must be a plain file, so "
                                    "the run cannot tell whether another run writes here. Remove the folder (if "
                                    "nothing in it is needed), or choose another run directory.") from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
                raise UnsafeRunDirError(f"{path} is not a plain file of its own ({st.st_nlink} names); a run "
                                        "directory's lock file must be, so nothing was written to it. Remove "
                                        "it, or choose another run directory.")
            if hasattr(os, "fchmod"):
                try:
                    os.fchmod(fd, 0o666 & ~current_umask())
                except OSError:
                    pass  # someone else's lock file in a group folder: its mode is theirs
        except BaseException:
            os.close(fd)
            raise
        return os.fdopen(fd, "r+", encoding="utf-8")

    def _write_holder(self, fh) -> None:
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                             "since": time.strftime("%Y-%m-%d %H:%M:%S %z")}) + "\n")
        fh.flush()

    def _locked_message(self, *, in_process: bool) -> str:
        h = self.holder() or {}
        who = (f"process {h.get('pid', '?')} on {h.get('host', '?')}, running since {h.get('since', '?')}"
               if h else "another process")
        where = " (another thread of this process)" if in_process else ""
        return (f"{self.path} is in use by a run of {who}{where}; two runs must not write to one run "
                "directory. Wait for it to finish (then pass resume=True to load its result), stop it, "
                "or choose another run directory.")

    def release(self) -> None:
        """Give the writer lock back (no-op when this process does not hold it)."""
        with _HELD_GUARD:
            held = _HELD.pop(self._key(), None)
        if held is not None and held[2] == os.getpid():
            held[0].close()  # closing the only descriptor drops the flock

    def has_run(self) -> bool:
        """True when a run (finished or not) has computed something here: a checkpoint, an
        epoch's metrics or its end. A run that stopped before its first checkpoint (a
        non-finite loss in epoch 1) left only config.json: nothing would be lost by a fresh
        run with other settings, so such a directory does not bind them."""
        if self.exists(CHECKPOINT) or self.exists(FINISHED):
            return True
        try:
            return self.file(METRICS_JSONL).stat().st_size > 0
        except OSError:
            return False

    def claim(self, resume: bool) -> str:
        """Decide how a new run may use this directory: 'fresh', 'resume' or 'finished'.

        Never silently overwrites: a finished run is returned as such only with
        `resume=True`, and an unfinished one without `resume=True` is an error. Takes the
        writer lock first (RunLockedError if another run holds it); it is kept for
        'fresh' and 'resume' and given back on error. A finished run is only read, so it
        is returned (or refused) without the lock and without touching any file.
        """
        if self.is_finished():  # final and never written again: no lock, no file touched
            return self._claim(resume)
        self.acquire()
        try:
            mode = self._claim(resume)
        except BaseException:
            self.release()
            raise
        if mode == "finished":  # it finished while we waited for the lock
            self.release()
        return mode

    def _claim(self, resume: bool) -> str:
        if self.is_finished():
            if resume:
                return "finished"
            raise RunExistsError(f"{self.path} holds a finished run; choose a new run directory, "
                                 "delete this one, or pass resume=True to load its result")
        if self.has_run():
            if resume:
                for stale in self.path.glob(".*.tmp"):  # a write cut short by a kill
                    stale.unlink()
                return "resume"
            raise RunExistsError(f"{self.path} holds an unfinished run; pass resume=True to continue it "
                                 "or choose a new run directory")
        return "fresh"
