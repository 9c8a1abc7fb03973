"""The feature store: one folder holding a corpus's features, labels and manifest.

Layout (all written together, atomically)::

    store.json     corpus, classes, feature config, keys, counts, format version
    X.npy          float32 [N, n_mfcc, n_frames], rows in manifest order
    manifest.json  rows for usable utterances (id, speaker, gender, session, label,
                   path, duration_s, notes) and for skipped files (path, reason)
    manifest.csv   the same, one line per file, with a status column (ok / skipped)

The store's ``key`` hashes the feature configuration together with the input (corpus,
classes, reader options and every file's path, size and mtime), so ``prepare`` reuses a
store whose key matches and rebuilds one whose configuration or input changed.

Atomicity: a store is built in a hidden sibling folder and moved into place with
``os.replace``; an interrupted build leaves at most that folder, never a half store at the
final path. The folder is named by the store's key, so the next build of the same store
takes it over and goes on from its last complete block of utterances
(:mod:`data_prep.building`); any other abandoned build folder is deleted
(:func:`clean_stale_builds`). The feature array's disk blocks are reserved before it is
written (:func:`open_feature_array`), so a full disk is a clear error instead of a SIGBUS.
Loading memory-maps ``X.npy`` so that opening a store is cheap.

Integrity: ``store.json`` records a SHA-256 of ``manifest.json`` and of each block of rows
of ``X.npy`` (``checksums``); :func:`load_store` checks them the first time it meets a copy
of the files and then only their size, times and inode (:mod:`data_prep.integrity`), and
refuses a store whose arrays no longer match, naming the file, the rows and how to rebuild
it, instead of training on damaged features (docs/DATA.md).

Sharing: temp files and folders are created by ``tempfile`` with modes 0600/0700; they
are given the modes an ordinary ``open``/``mkdir`` would have (0666/0777 less the umask),
so that a store one user builds in a group cache is readable by the group (docs/DATA.md).
"""

from __future__ import annotations

import csv
import errno
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import DataError
from .integrity import CHECKSUMMED, REBUILD as _REBUILD, file_sha256, record_verified, store_checksums, verify_checksums
from .locks import try_flock

STORE_FORMAT = 2  # 2: store.json holds checksums of X.npy and manifest.json
MANIFEST_FIELDS = ("id", "speaker", "gender", "session", "label", "path", "duration_s",
                   "status", "reason", "notes")


@dataclass
class FeatureStore:
    """A loaded store. ``X`` is memory-mapped; ``y`` indexes ``classes``."""

    path: Path
    X: np.ndarray
    y: np.ndarray
    ids: list[str]
    speakers: list[str]
    sessions: list[str | None]
    genders: list[str | None]
    classes: tuple[str, ...]
    corpus: str
    manifest: list[dict]
    skipped: list[dict]
    info: dict = field(default_factory=dict)

    @property
    def key(self) -> str:
        return self.info["key"]

    def __len__(self) -> int:
        return len(self.ids)

    def audio_paths(self) -> list[str]:
        """Each row's audio file as an absolute path (:func:`absolute_audio_path`)."""
        root = self.info.get("root")
        return [absolute_audio_path(r["path"], root) for r in self.manifest]


def absolute_audio_path(path: str, root: str | None) -> str:
    """``path`` of a manifest row as an absolute path, whatever the working folder.

    A store built from a relative corpus root (``prepare("emodb", "../data/emodb", ...)``)
    records its files' paths as the reader joined them, relative to the folder it was
    built from, and the root's absolute form in store.json. Such a path is the root as it
    was given followed by the file's place inside the corpus; the root as given is the
    longest head of the path whose names (less its ``..``) end the absolute root, and the
    file is the rest joined onto the absolute root (the longest head whose file exists,
    where one does)."""
    if os.path.isabs(path):
        return os.path.normpath(path)
    p = Path(path)
    if not root:
        return os.path.abspath(p)
    root_path = Path(root)
    matches = []
    for k in range(len(p.parts), -1, -1):
        head = [x for x in p.parts[:k] if x != ".."]
        if not head or root_path.parts[-len(head):] == tuple(head):
            matches.append(root_path.joinpath(*p.parts[k:]))
    return str(next((m for m in matches if m.is_file()), matches[0]))


def current_umask() -> int:
    """The process's umask, read without changing it where Linux allows (``/proc``)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    old = os.umask(0o022)  # elsewhere: the classic set-and-restore
    os.umask(old)
    return old


def mkstemp_shared(**kwargs) -> tuple[int, str]:
    """``tempfile.mkstemp`` whose file gets the mode ``open`` would give (0666 & ~umask)."""
    fd, tmp = tempfile.mkstemp(**kwargs)
    os.chmod(tmp, 0o666 & ~current_umask())
    return fd, tmp


def mkdtemp_shared(**kwargs) -> str:
    """``tempfile.mkdtemp`` whose folder gets the mode ``mkdir`` would give (0777 & ~umask)."""
    tmp = tempfile.mkdtemp(**kwargs)
    os.chmod(tmp, 0o777 & ~current_umask())
    return tmp


def write_atomic(path, write, *, binary: bool = False, suffix: str = "", mode: int | None = None) -> None:
    """Call ``write(fh)`` on a temporary file next to ``path``, sync it and rename it into
    place, so a reader never sees a half-written file; the temporary file is removed on error.

    The file gets the mode ``open`` would give, or ``mode`` (not widened by the umask, and
    never wider at any moment: for a file nobody else may write)."""
    path = Path(path)
    if mode is None:
        fd, tmp = mkstemp_shared(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    else:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)  # 0600 until then
        os.fchmod(fd, mode & ~current_umask())
    try:
        with os.fdopen(fd, "wb" if binary else "w") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_json_atomic(path, obj) -> None:
    """Write JSON next to ``path`` and rename it into place (never a half-written file)."""
    write_atomic(path, lambda fh: json.dump(obj, fh, indent=1))


def _write_manifest(folder: Path, rows: list[dict], skipped: list[dict]) -> None:
    write_json_atomic(folder / "manifest.json", {"utterances": rows, "skipped": skipped})
    with open(folder / "manifest.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=MANIFEST_FIELDS, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({**r, "status": "ok", "notes": "; ".join(r.get("notes", []))})
        for s in skipped:
            w.writerow({**s, "status": "skipped"})


BUILDER = ".builder"  # in a build folder: locked (flock) by the process building it
#: A build folder without a lock file (a build by an older version, or where there is no
#: flock) counts as abandoned once it is this old.
STALE_UNLOCKED_S = 6 * 3600
_BUILD_LOCKS: dict[str, object] = {}  # build folder -> its open, locked BUILDER file


def clean_stale_builds(final: Path, keep: Path | None = None) -> list[Path]:
    """Delete the build folders of ``final`` that no live process is writing (but ``keep``).

    A build killed (SIGKILL, a full disk, a lost node) leaves its hidden
    ``.<name>.building-*`` folder, which can hold a whole corpus's features. A live build
    holds an flock on the folder's ``.builder`` file; the kernel drops it when the process
    dies, so a folder whose lock can be taken is abandoned. Returns the folders deleted.
    """
    removed = []
    for folder in sorted(final.parent.glob(f".{final.name}.building-*")):
        if folder.is_symlink() or not folder.is_dir() or (keep is not None and folder == keep):
            continue
        lock = folder / BUILDER
        try:
            if lock.is_file():
                with open(lock, "a") as fh:
                    if not try_flock(fh):
                        continue  # a live build
            elif time.time() - folder.stat().st_mtime < STALE_UNLOCKED_S:
                continue
        except OSError:  # someone else's folder we cannot open: theirs to clean
            continue
        shutil.rmtree(folder, ignore_errors=True)
        if not folder.exists():
            removed.append(folder)
    return removed


def _take_build_lock(folder: Path) -> bool:
    """Lock ``folder`` as this process's build; False when a live build holds it."""
    fh = open(folder / BUILDER, "a")
    if not try_flock(fh):
        fh.close()
        return False
    _BUILD_LOCKS[str(folder)] = fh
    return True


def new_build_dir(final: Path, key: str | None = None) -> Path:
    """A hidden folder beside ``final`` (same filesystem, so ``os.replace`` is atomic),
    locked as this process's build; abandoned build folders of other keys are deleted.

    With ``key``, the folder is ``.<name>.building-<key>``: one a killed build of the same
    store left is taken over, with what it had written (:mod:`data_prep.building`). A
    live build of it elsewhere gets this one a folder of its own. Give it back with
    :func:`finish_build`, :func:`discard_build` or :func:`release_build`."""
    final.parent.mkdir(parents=True, exist_ok=True)
    if key is not None:
        tmp = final.with_name(f".{final.name}.building-{key}")
        if not tmp.exists():
            fresh = mkdtemp_shared(prefix=f".{final.name}.building-", dir=final.parent)
            try:
                os.rename(fresh, tmp)
            except OSError:  # another build made it first
                shutil.rmtree(fresh, ignore_errors=True)
        if tmp.is_dir() and not tmp.is_symlink() and _take_build_lock(tmp):
            clean_stale_builds(final, keep=tmp)
            return tmp
    clean_stale_builds(final)
    tmp = Path(mkdtemp_shared(prefix=f".{final.name}.building-", dir=final.parent))
    _take_build_lock(tmp)
    return tmp


def release_build(tmp: Path) -> None:
    """Give back the lock of a build folder, keeping what it holds for the next build."""
    _release_build(tmp, keep_lock_file=True)


def _release_build(tmp: Path, keep_lock_file: bool = False) -> None:
    fh = _BUILD_LOCKS.pop(str(tmp), None)
    if fh is not None:
        if not keep_lock_file:  # an abandoned folder keeps it: its free lock marks it abandoned
            try:
                os.unlink(tmp / BUILDER)
            except OSError:
                pass
        fh.close()


def discard_build(tmp: Path) -> None:
    """Delete a build folder that did not become a store (an error or an interrupt)."""
    _release_build(tmp)
    shutil.rmtree(tmp, ignore_errors=True)


def format_size(n: float) -> str:
    """A byte count in the unit that shows it (1.5 GiB, 12.0 MiB, 9.8 KiB, 512 bytes), so that a
    small store does not read "needs 0.01 GiB ... has 0.00 GiB"."""
    for unit, scale in (("GiB", 2 ** 30), ("MiB", 2 ** 20), ("KiB", 2 ** 10)):
        if abs(n) >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n)} bytes"


def space_problem(folder: Path, needed: int, free: int) -> str:
    return (f"not enough free space to build the feature store: it needs {format_size(needed)} and {folder} has "
            f"{format_size(free)} free; free some space, or build it on another disk: set EMODARTS_CACHE to a "
            "folder there (prepare: --out FOLDER)")


def open_feature_array(path: Path, shape: tuple[int, ...], where: Path | None = None) -> np.ndarray:
    """A float32 ``.npy`` memory map of ``shape`` at ``path``, its disk blocks reserved.

    A memory map on a full disk dies of SIGBUS, with no message, at the first page that
    cannot be stored. So the free space is checked first, and the file's blocks are
    reserved (``posix_fallocate``) before any is written: a full disk is a
    :class:`DataError` saying how much is needed, and where (``where``: the folder the
    user chose, by default the file's).
    """
    where = path.parent if where is None else where
    needed = int(np.prod(shape)) * 4 + 4096
    free = shutil.disk_usage(path.parent).free
    if free < needed:
        raise DataError(space_problem(where, needed, free), where)
    X = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=shape)
    if hasattr(os, "posix_fallocate"):
        fd = os.open(path, os.O_RDWR)
        try:
            os.posix_fallocate(fd, 0, os.fstat(fd).st_size)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                del X
                raise DataError(space_problem(where, needed, shutil.disk_usage(path.parent).free), where) from None
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                raise  # a filesystem without it keeps the free-space check above
        finally:
            os.close(fd)
    return X


def finish_build(tmp: Path, final: Path, info: dict, rows: list[dict], skipped: list[dict]) -> None:
    """Write manifest and store.json into ``tmp`` and move it to ``final`` atomically.

    An existing store at ``final`` is moved aside first and deleted only after the new
    one is in place. ``final`` must be absent, an empty folder, or a store.
    """
    _write_manifest(tmp, rows, skipped)
    info = {**info, "checksums": store_checksums(tmp)}
    write_json_atomic(tmp / "store.json", info)
    record_verified(tmp)  # the files as they are now match: the next open need not read them
    _release_build(tmp)
    old = None
    if final.exists():
        if not final.is_dir() or (any(final.iterdir()) and not (final / "store.json").is_file()):
            raise DataError("exists and is not a feature store; refusing to overwrite it", final)
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.replace(final, old)
    os.replace(tmp, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def read_info(path) -> dict | None:
    """``store.json`` of a store folder, or None when there is no readable one."""
    try:
        return json.loads((Path(path) / "store.json").read_text())
    except (OSError, ValueError):
        return None


def load_store(path, *, mmap: bool = True, verify: bool = True) -> FeatureStore:
    """Open a store made by ``prepare``; any problem raises :class:`DataError` naming it.

    ``verify`` checks the recorded checksums first (see :func:`verify_checksums`).
    """
    path = Path(path)
    if not path.is_dir():
        raise DataError("feature store not found (make one with: python -m data_prep prepare)", path)
    meta = path / "store.json"
    if not meta.is_file():
        raise DataError("not a feature store: no store.json (make one with: python -m data_prep prepare)", path)
    try:
        info = json.loads(meta.read_text())
    except ValueError as exc:
        raise DataError(f"corrupt feature store metadata in store.json ({exc})", path) from None
    if info.get("format") != STORE_FORMAT:
        raise DataError(f"store format {info.get('format')!r} is not {STORE_FORMAT}; {_REBUILD}", path)
    try:
        man = json.loads((path / "manifest.json").read_text())
    except FileNotFoundError:
        raise DataError("incomplete feature store: manifest.json is missing", path) from None
    except ValueError as exc:
        raise DataError(f"corrupt feature store metadata in manifest.json ({exc})", path) from None
    if verify:
        verify_checksums(path, info)
    try:
        X = np.load(path / "X.npy", mmap_mode="r" if mmap else None)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read X.npy ({exc})", path) from None
    rows = man["utterances"]
    classes = tuple(info["classes"])
    if X.ndim != 3 or X.shape[0] != len(rows) or X.dtype != np.float32:
        raise DataError(f"X.npy {X.dtype}{list(X.shape)} does not match {len(rows)} manifest rows", path)
    index = {c: i for i, c in enumerate(classes)}
    try:
        y = np.array([index[r["label"]] for r in rows], dtype=np.int64)
    except KeyError as exc:
        raise DataError(f"manifest label {exc} is not among the store's classes {classes}", path) from None
    return FeatureStore(
        path=path, X=X, y=y, ids=[r["id"] for r in rows], speakers=[r["speaker"] for r in rows],
        sessions=[r["session"] for r in rows], genders=[r["gender"] for r in rows],
        classes=classes, corpus=info["corpus"], manifest=rows, skipped=man["skipped"], info=info,
    )
