"""Writing a store's features as they are extracted: nothing held, nothing lost to a kill.

:class:`FeatureWriter` owns the build folder's ``X_all.npy`` (one row per utterance the
reader listed, its disk blocks reserved up front by :func:`store.open_feature_array`):

- each block of utterances a worker returns is written straight to its rows with
  ``pwrite`` and dropped, so the building process holds no features (a memory map would
  keep every written page resident in it);
- every :data:`SYNC_S` seconds, and at the end, the array is synced to disk and then the
  blocks written since are appended to the journal ``progress.jsonl`` (their outcomes:
  duration and notes, or the reason a file was skipped). A line is only ever written for
  rows already on disk, so after a kill, a lost node or a power cut the next build of
  the same store (the folder is named by its key, ``build.json`` repeats it) keeps every
  journalled block and extracts only the rest;
- files that could not be used are removed from the array in place at the end
  (:meth:`FeatureWriter.compact`): the usable rows move down, the header gets the new
  row count and the file is cut. The build never needs a second full-size array, so its
  disk is at most the store plus the skipped files' rows.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from .integrity import npy_layout
from .store import open_feature_array

JOURNAL = "progress.jsonl"
PLAN = "build.json"
ALL_ROWS = "X_all.npy"
#: Seconds between syncs of the array and the journal (the work a kill can cost).
SYNC_S = 5.0
_COMPACT_ROWS = 256


def npy_header(shape: tuple[int, ...], length: int | None = None) -> bytes:
    """A version 1.0 ``.npy`` header of a C-ordered little-endian float32 array of
    ``shape``, padded with spaces to ``length`` bytes when given (so that a header with
    fewer rows fits where the longer one was)."""
    body = repr({"descr": "<f4", "fortran_order": False, "shape": tuple(int(s) for s in shape)})
    head = b"\x93NUMPY\x01\x00"
    length = length or -(-(len(head) + 2 + len(body) + 1) // 64) * 64
    pad = length - len(head) - 2 - len(body) - 1
    if pad < 0:
        raise ValueError(f"a header for {shape} does not fit in {length} bytes")
    text = (body + " " * pad + "\n").encode("latin1")
    return head + len(text).to_bytes(2, "little") + text


class FeatureWriter:
    """The rows of ``folder``/X_all.npy for ``n`` utterances of ``row_shape`` features,
    resumed from the journal when the folder holds an unfinished build of ``key``."""

    def __init__(self, folder: Path, key: str, n: int, row_shape: tuple[int, ...], where: Path | None = None):
        self.folder = Path(folder)
        self.path = self.folder / ALL_ROWS
        self.shape = (int(n), *map(int, row_shape))
        self.row_bytes = int(np.prod(row_shape)) * 4
        self.done: dict[int, list] = {}  # first utterance index of a block -> its outcomes
        self._pending: list[str] = []
        plan = {"key": key, "shape": list(self.shape)}
        if self._previous_plan() == plan and self.path.is_file():
            self.done = self._read_journal()
        else:
            for name in (ALL_ROWS, JOURNAL):
                (self.folder / name).unlink(missing_ok=True)
            X = open_feature_array(self.path, self.shape, where)
            del X
            (self.folder / PLAN).write_text(json.dumps(plan))
            (self.folder / JOURNAL).touch()
        self.resumed_rows = sum(len(v) for v in self.done.values())
        self.offset, shape, dtype = npy_layout(self.path)
        if shape != self.shape or dtype != np.dtype("<f4"):
            raise ValueError(f"{self.path} holds {dtype}{list(shape)}, not float32{list(self.shape)}")
        self.fd = os.open(self.path, os.O_RDWR)
        self._last_sync = time.monotonic()

    def _previous_plan(self) -> dict | None:
        try:
            return json.loads((self.folder / PLAN).read_text())
        except (OSError, ValueError):
            return None

    def _read_journal(self) -> dict[int, list]:
        done = {}
        try:
            lines = (self.folder / JOURNAL).read_text().splitlines()
        except OSError:
            return {}
        for line in lines:
            try:
                first, outcomes = json.loads(line)
            except (ValueError, TypeError):
                continue  # a line cut by the kill: that block is extracted again
            done[int(first)] = outcomes
        return done

    def write(self, batch: list[tuple]) -> list[list]:
        """Write a worker's ``(index, features | None, duration, notes | reason)`` rows;
        returns their outcomes ``[index, duration, notes | reason, ok]``."""
        outcomes = []
        for i, feats, dur, extra in batch:
            if feats is not None:
                data = np.ascontiguousarray(feats, dtype="<f4").tobytes()
                if len(data) != self.row_bytes:
                    raise ValueError(f"a row of {len(data)} bytes for a store of {self.row_bytes}-byte rows")
                os.pwrite(self.fd, data, self.offset + i * self.row_bytes)
            outcomes.append([int(i), dur, extra, feats is not None])
        if outcomes:
            self.done[outcomes[0][0]] = outcomes
            self._pending.append(json.dumps([outcomes[0][0], outcomes]))
        if time.monotonic() - self._last_sync >= SYNC_S:
            self.sync()
        return outcomes

    def sync(self) -> None:
        """Put the rows written so far on disk, then journal their blocks."""
        os.fsync(self.fd)
        if self._pending:
            with open(self.folder / JOURNAL, "a") as fh:
                fh.write("".join(line + "\n" for line in self._pending))
                fh.flush()
                os.fsync(fh.fileno())
            self._pending.clear()
        self._last_sync = time.monotonic()

    def outcomes(self) -> list[list]:
        """Every utterance's outcome so far, in index order."""
        return sorted(o for block in self.done.values() for o in block)

    def compact(self, keep: list[int], target: Path) -> None:
        """Keep the rows ``keep`` (increasing), in place, and rename the array to ``target``."""
        keep = np.asarray(keep, dtype=np.int64)
        if len(keep) and np.any(np.diff(keep) <= 0):
            raise ValueError("rows to keep must be increasing")
        if len(keep) != self.shape[0]:
            for start in range(0, len(keep), _COMPACT_ROWS):  # row k <- row keep[k], keep[k] >= k
                rows = keep[start:start + _COMPACT_ROWS]
                if np.array_equal(rows, np.arange(start, start + len(rows))):
                    continue
                data = b"".join(os.pread(self.fd, self.row_bytes, self.offset + int(r) * self.row_bytes)
                                for r in rows)
                os.pwrite(self.fd, data, self.offset + start * self.row_bytes)
            os.pwrite(self.fd, npy_header((len(keep), *self.shape[1:]), self.offset), 0)
            os.ftruncate(self.fd, self.offset + len(keep) * self.row_bytes)
        os.fsync(self.fd)
        self.close()
        os.replace(self.path, target)
        for name in (JOURNAL, PLAN):
            (self.folder / name).unlink(missing_ok=True)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


__all__ = ["JOURNAL", "PLAN", "ALL_ROWS", "SYNC_S", "npy_header", "FeatureWriter"]
