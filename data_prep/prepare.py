"""Corpus folder -> feature store, in parallel, reusing a store whose key still matches.

``prepare`` reads the corpus (``corpora.scan_corpus``), computes the store key from the
feature configuration and the input files (path, size, mtime), and either reuses the
store at ``out`` or extracts every utterance in a process pool with a progress bar and
writes a new store atomically (``store.finish_build``). Each worker runs BLAS on one
thread (the pool has a process per core already), and each block of features is written
to disk as it arrives (:mod:`data_prep.building`), so a build holds no features and a
killed one goes on from its last journalled block. Files that cannot be used are skipped
with their reason recorded in the manifest; those known from the scan alone (missing or
empty) before any audio is read. ``strict=True`` turns any skip into a
:class:`DataError`, at once for those. The folds for ``seed`` are written into the store as
``folds-seed<seed>.json`` so a run can record exactly which utterances it used (skipped
for a store in a read-only shared cache). Only ``out`` (and its parent) is written: the
corpus folder is read, never written to (docs/DATA.md).
"""

from __future__ import annotations

import errno
import hashlib
import itertools
import json
import math
import multiprocessing
import os
import sys
import time
import warnings
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .corpora import Utterance, corpus_classes, scan_corpus
from .errors import DataError
from .features import FeatureConfig, default_config, extract
from .building import FeatureWriter
from .store import (STORE_FORMAT, FeatureStore, discard_build, finish_build, load_store, new_build_dir, read_info,
                    release_build)

CHUNK = 16  # utterances per task sent to a worker process


def input_key(corpus: str, classes: tuple[str, ...], options: dict, paths: Sequence[str],
              stats: dict | None = None) -> str:
    """Hash of what the store is built from: corpus, classes, options, files' size+mtime
    (``stats``: each path's ``os.stat`` result or None, where already taken)."""
    h = hashlib.sha256(json.dumps([corpus, list(classes), options], sort_keys=True).encode())
    for p in sorted(paths):
        st = stats[p] if stats is not None and p in stats else _stat(p)
        if st is None:
            h.update(f"{p}\0missing\n".encode())
        else:
            h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def _stat(path: str):
    try:
        return os.stat(path)
    except OSError:
        return None


def unusable_at_scan(utts: list[Utterance], stats: dict) -> tuple[list[Utterance], list[dict]]:
    """The utterances whose file exists and is not empty, and a skip record for each other
    one, with the reason extraction would give: known before any audio is read, so a
    strict build fails at once and the console counts them."""
    import stat as stat_mod

    usable, skipped = [], []
    for u in utts:
        st = stats.get(u.path)
        reason = ("file not found" if st is None else "not a regular file" if not stat_mod.S_ISREG(st.st_mode)
                  else "empty file (0 bytes)" if st.st_size == 0 else None)
        if reason is None:
            usable.append(u)
        else:
            skipped.append(dict(id=u.id, speaker=u.speaker, gender=u.gender, session=u.session, label=u.label,
                                path=u.path, reason=reason))
    return usable, skipped


def _extract_chunk(items: list[tuple[int, str]], cfg: FeatureConfig, strict: bool) -> list[tuple]:
    """Worker: ``(index, features | None, duration, notes | reason)`` for each item.

    Only :class:`DataError` (bad input) becomes a skip; anything else is a bug and
    propagates. BLAS runs on one thread (:func:`_one_blas_thread`).
    """
    out = []
    with _one_blas_thread():
        for i, path in items:
            try:
                e = extract(path, cfg, strict=strict)
                out.append((i, e.features, e.duration_s, e.notes))
            except DataError as exc:
                out.append((i, None, None, exc.problem))
    return out


def _one_blas_thread():
    """One BLAS/OpenMP thread for the extraction: the pool already has a process per core,
    so more threads only compete for them; and one thread sums in one order, so the
    features are the same whatever the machine's core count or ``jobs``."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1)


def _die_with_parent(builder: int) -> None:
    """Worker initializer: end this worker when the building process ``builder`` dies.

    A worker's parent is the forkserver, not the build, so a build killed with SIGKILL
    would leave its workers extracting a whole corpus for nobody. A daemon thread checks
    every second that the build is still there, and ends the worker otherwise."""
    import threading

    def watch() -> None:
        while True:
            time.sleep(1.0)
            try:
                os.kill(builder, 0)
            except ProcessLookupError:
                os._exit(1)
            except OSError:  # alive, but not ours to signal
                pass

    threading.Thread(target=watch, name="emodarts-watch-builder", daemon=True).start()


#: Why a build in a worker that is still starting stops (see `_starting_worker`).
_UNGUARDED = ("prepare (or load_fold) was called while a worker process of a feature build was starting: the "
              "script that started the build calls it at its top level, and each worker runs that top level "
              "again. The build goes on in the first process; to use the workers, put the script's code under "
              "`if __name__ == \"__main__\":`")


def _starting_worker() -> bool:
    """True inside a worker process that is still importing the main script (spawn and
    forkserver re-run a script's top level in every worker)."""
    return bool(getattr(multiprocessing.current_process(), "_inheriting", False))


def _init_worker(builder: int) -> None:
    """Worker initializer: one BLAS thread for the worker's life, and end with the build."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)
    _die_with_parent(builder)


def _pool(jobs: int) -> ProcessPoolExecutor:
    """Worker pool; forkserver (where there is one) avoids forking a threaded parent."""
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    ctx = multiprocessing.get_context(method)
    return ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_init_worker,
                               initargs=(os.getpid(),))


def _stop_pool(ex: ProcessPoolExecutor, futures) -> None:
    """Stop a pool after an error or an interrupt: drop the queued work and end the
    workers now, instead of waiting for their chunks (or leaving them running)."""
    for f in futures:
        f.cancel()
    processes = list((getattr(ex, "_processes", None) or {}).values())
    ex.shutdown(wait=False, cancel_futures=True)
    for proc in processes:
        if proc.is_alive():
            proc.terminate()
    for proc in processes:
        proc.join(5)


def _run_extraction(utts: list[Utterance], cfg: FeatureConfig, writer: FeatureWriter, strict: bool,
                    jobs: int, progress: bool, label: str) -> list[list]:
    """Extract the blocks ``writer`` does not hold yet and write each as it comes; return
    ``[index, duration, notes | reason, ok]`` per utterance.

    At most two blocks per worker are in flight, and a block's features are dropped once
    written, so the building process holds a few blocks, not the corpus."""
    # A text bar on stderr, not tqdm.auto's widget: papermill --log-output logs text, not widgets.
    from tqdm import tqdm

    chunks = [[(i, utts[i].path) for i in range(k, min(k + CHUNK, len(utts)))] for k in range(0, len(utts), CHUNK)]
    todo = [c for c in chunks if c[0][0] not in writer.done]
    bar = tqdm(total=len(utts), initial=len(utts) - sum(map(len, todo)), desc=f"MFCC {label}", unit="utt",
               disable=not progress, file=sys.stderr, mininterval=2.0)

    def take(batch):
        writer.write(batch)
        bar.update(len(batch))

    try:
        if jobs > 1 and todo:
            with _pool(jobs) as ex:
                queue = iter(todo)
                running = {ex.submit(_extract_chunk, c, cfg, strict) for c in itertools.islice(queue, 2 * jobs)}
                try:
                    while running:
                        finished, running = wait(running, return_when=FIRST_COMPLETED)
                        for fut in finished:
                            take(fut.result())
                            nxt = next(queue, None)
                            if nxt is not None:
                                running.add(ex.submit(_extract_chunk, nxt, cfg, strict))
                        del finished, fut  # the written features go with them
                except BrokenProcessPool:  # its workers died starting: see _UNGUARDED
                    _stop_pool(ex, running)
                    warnings.warn("the feature build's worker processes stopped while starting (a script that "
                                  "calls load_fold or prepare at its top level, without `if __name__ == "
                                  "\"__main__\":`, runs again in every worker); extracting in this process "
                                  "instead", RuntimeWarning, stacklevel=4)
                except BaseException:
                    _stop_pool(ex, running)
                    raise
        for chunk in todo:  # all of them with jobs=1; what the pool did not do otherwise
            if chunk[0][0] not in writer.done:
                take(_extract_chunk(chunk, cfg, strict))
        writer.sync()
    finally:
        bar.close()
    return writer.outcomes()


def prepare(corpus: str, root, out, *, feature_config: FeatureConfig | None = None,
            classes: str | Sequence[str] | None = None, seed: int = 0, strict: bool = False,
            jobs: int | None = None, progress: bool = True, reuse_from: Sequence = (),
            before_build: Callable | None = None, **reader_options) -> FeatureStore:
    """Build (or reuse) the feature store of ``corpus`` at ``root`` in the folder ``out``.

    ``feature_config`` defaults to the corpus's (:func:`features.default_config`);
    ``classes`` is None (the paper's 4), ``"all"`` or a list of names; ``jobs`` defaults
    to the CPU count (1 = in this process); extra keyword options go to the corpus reader
    (e.g. ``merge_excited=True`` for IEMOCAP). ``reuse_from`` lists store folders (a
    shared, possibly read-only cache) consulted before ``out``: the first whose key matches
    and whose checksums hold is returned as it is. The returned store has ``info["reused"]``.
    ``before_build(scan)`` is called with the corpus's scan when a store is to be built,
    before any audio is read (``load_fold`` checks there that the fold it wants exists).
    """
    if _starting_worker():  # one line from each worker, not a traceback; the parent goes on
        raise SystemExit(f"emodarts: {_UNGUARDED}")
    t0 = time.time()
    cfg = feature_config or default_config(corpus)
    wanted = corpus_classes(corpus, classes)
    scan = scan_corpus(corpus, root, classes=wanted, **reader_options)
    out = Path(out)
    paths = [u.path for u in scan.utterances] + [s["path"] for s in scan.skipped]
    stats = {p: _stat(p) for p in paths}
    ikey = input_key(corpus, wanted, reader_options, paths, stats)
    key = hashlib.sha256(f"{STORE_FORMAT}:{cfg.key()}:{ikey}:{strict}".encode()).hexdigest()[:16]

    for candidate in [*map(Path, reuse_from), out]:
        info = read_info(candidate)
        if info is None or info.get("key") != key:
            continue
        try:
            store = load_store(candidate)
        except DataError as exc:  # damaged: try the next one, or rebuild below
            warnings.warn(f"not reusing a damaged feature store: {exc}", stacklevel=2)
            continue
        store.info["reused"] = True
        _write_folds(store, seed)
        return store

    if before_build is not None:
        before_build(scan)
    utts, missing = unusable_at_scan(scan.utterances, stats)
    known_bad = list(scan.skipped) + missing
    if strict and known_bad:  # before any audio is read
        raise _strict_error(known_bad)
    if not utts:
        if missing:
            raise DataError(f"no usable utterances: all {len(missing)} listed audio files are missing or empty, "
                            f"e.g. {missing[0]['path']}: {missing[0]['reason']}", root)
        raise DataError(f"no utterances of classes {list(wanted)} found", root)
    jobs = (os.cpu_count() or 1) if jobs is None else max(1, int(jobs))
    jobs = min(jobs, math.ceil(len(utts) / CHUNK))
    try:
        tmp = new_build_dir(out, key)
    except OSError as exc:
        raise DataError(_write_problem(exc, out), out.parent) from None
    keep_for_resume, writer = False, None
    try:
        writer = FeatureWriter(tmp, key, len(utts), cfg.shape, out.parent)
        try:
            results = _run_extraction(utts, cfg, writer, strict, jobs, progress, corpus)
        except KeyboardInterrupt:
            writer.sync()
            writer.close()
            keep_for_resume = True
            print(f"emodarts: the interrupted build keeps its {len(writer.outcomes())} extracted utterances in "
                  f"{tmp}; the same prepare goes on from there", file=sys.stderr)
            raise
        rows, skipped = [], known_bad
        for i, dur, extra, ok in results:
            u = utts[i]
            base = dict(id=u.id, speaker=u.speaker, gender=u.gender, session=u.session,
                        label=u.label, path=u.path)
            if ok:
                rows.append({**base, "duration_s": round(dur, 4), "notes": extra})
            else:
                skipped.append({**base, "reason": extra})
        if strict and skipped:
            raise _strict_error(skipped)
        ok_idx = [i for i, _, _, ok in results if ok]
        if not ok_idx:
            raise DataError(f"no usable utterances: all {len(utts)} files were skipped, e.g. "
                            f"{skipped[-1]['path']}: {skipped[-1]['reason']}", root)
        writer.compact(ok_idx, tmp / "X.npy")
        info = dict(
            format=STORE_FORMAT, key=key, feature_key=cfg.key(), input_key=ikey, corpus=corpus,
            root=str(Path(root).resolve()), classes=list(wanted), config=cfg.to_dict(),
            reader_options=reader_options, strict=strict, n_utterances=len(rows),
            n_skipped=len(skipped), excluded=dict(scan.excluded),
            build_seconds=round(time.time() - t0, 2), resumed_utterances=writer.resumed_rows,
        )
        finish_build(tmp, out, info, rows, skipped)
    except OSError as exc:
        if exc.errno not in _WRITE_ERRNOS:
            raise
        raise DataError(_write_problem(exc, out), out.parent) from None
    finally:
        if writer is not None:
            writer.close()
        if keep_for_resume:
            release_build(tmp)
        else:
            discard_build(tmp)
    store = load_store(out)
    store.info["reused"] = False
    _write_folds(store, seed)
    return store


def _strict_error(skipped: list[dict]) -> DataError:
    """Strict mode's error: the first unusable file and its reason, and how many there are
    in all (those the reader skipped and those whose audio could not be used)."""
    first, more = skipped[0], skipped[1:4]
    others = "".join(f"; {s['path']}: {s['reason']}" for s in more)
    rest = f"; and {len(skipped) - 1 - len(more)} more" if len(skipped) > 1 + len(more) else ""
    return DataError(f"{first['reason']} (strict mode; {len(skipped)} file(s) unusable{others}{rest})", first["path"])


_WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS)


def _write_problem(exc: OSError, out: Path) -> str:
    """What to do when the store's folder cannot be written (a full disk, a read-only cache)."""
    why = exc.strerror or str(exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        fix = "free some space, or build it on another disk"
    else:
        fix = "make the folder writable, or build the store in a writable one"
    return (f"cannot write the feature store {out.name} here ({why}); {fix}: set EMODARTS_CACHE to a "
            "writable folder (prepare: --out FOLDER), or put a teacher's prepared store in a shared cache "
            "(EMODARTS_SHARED_CACHE, docs/DATA.md)")


def _write_folds(store: FeatureStore, seed: int) -> None:
    """Record the store's folds for ``seed`` (when the corpus has enough speakers)."""
    from .folds import make_folds, save_folds

    path = store.path / f"folds-seed{seed}.json"
    if path.exists():
        return
    try:
        folds = make_folds(store, seed=seed)
    except DataError as exc:
        store.info["folds_error"] = str(exc)
        return
    try:
        save_folds(folds, path)
    except OSError as exc:  # a store in a read-only (shared) cache: folds are recomputed on use
        store.info["folds_unsaved"] = f"cannot write {path} ({exc.strerror})"
