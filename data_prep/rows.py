"""Rows of a memory-mapped feature store, read a batch at a time instead of copied whole.

A fold's split is a set of rows of the store's ``X.npy``. At MSP-Podcast's size (about
150 k utterances of 64 KiB) a copy of every split would not fit a 16 GB machine, so
:func:`data_prep.load_fold` gives each split's features as :class:`Rows`: the store's
one memory map and an index array into it. Reading ``rows[a:b]`` (or any index) gathers
just those rows from the map (the page cache holds them, shared by every process that maps
the store) and returns them as a float32 array; the split itself holds 8 bytes per row.

``Rows`` behaves like a read-only ``[n, F, T]`` float32 array where the rest of the
project looks at one: ``shape``, ``ndim``, ``dtype``, ``len`` and indexing.
``np.asarray(rows)`` makes the whole copy, when it is asked for. :meth:`Rows.select` and
:func:`concat` make new index arrays over the same map, not copies, and
:meth:`Rows.map` attaches a per-batch transform (a normalisation with statistics fitted on
training speakers, docs/DATA.md), so that normalised features are never stored whole either.

A ``Rows`` pickles as the map's file name and its index (not the features), so a worker
process of a data loader or a Ray task maps the same file instead of receiving a copy.
"""

from __future__ import annotations

import mmap
import os
from typing import Callable, Sequence

import numpy as np

#: Rows read per block by :meth:`Rows.blocks` (16 MiB of [128, 128] float32 features).
BLOCK_ROWS = 256


_FILES: dict[tuple[int, str, int], int | None] = {}  # (process, file name, inode) -> descriptor, None: replaced


def _readable_file(base: np.ndarray) -> bool:
    """True for a C-ordered native float32 memory map of a file: its rows can be read with pread."""
    return (isinstance(base, np.memmap) and base.filename is not None and base.dtype == np.dtype(np.float32)
            and base.flags.c_contiguous and isinstance(base.base, mmap.mmap))  # the map itself, not a view of it


def mapped_inode(base: np.ndarray) -> int | None:
    """The inode of the file ``base`` maps, from ``/proc/self/maps`` (None where unknown)."""
    address = base.ctypes.data
    try:
        with open("/proc/self/maps") as fh:
            for line in fh:
                fields = line.split()
                low, high = (int(x, 16) for x in fields[0].split("-"))
                if low <= address < high:
                    return int(fields[4]) or None
    except (OSError, ValueError, IndexError):
        pass
    return None


def _descriptor(base: np.memmap, inode: int | None) -> int | None:
    """A descriptor of the very file ``base`` maps, or None (unknown, or the path now
    names another file: a store rebuilt since it was opened), to read through the map."""
    if inode is None:
        return None
    key = (os.getpid(), str(base.filename), inode)
    if key not in _FILES:
        fd = os.open(base.filename, os.O_RDONLY)
        if os.fstat(fd).st_ino != inode:
            os.close(fd)
            fd = None
        _FILES[key] = fd
    return _FILES[key]


def _pread_rows(fd: int, base: np.memmap, rows: np.ndarray, out: np.ndarray) -> None:
    """Read ``base[rows]`` from its file (``fd``) into ``out`` (C-ordered float32)."""
    row_bytes = out[0].nbytes
    view = memoryview(out.reshape(-1).view(np.uint8))
    breaks = np.flatnonzero(np.diff(rows) != 1) + 1
    for first, last in zip(np.concatenate([[0], breaks]), np.concatenate([breaks, [len(rows)]])):
        want = (last - first) * row_bytes
        got = os.preadv(fd, [view[first * row_bytes:last * row_bytes]], base.offset + int(rows[first]) * row_bytes)
        if got != want:
            raise OSError(f"{base.filename}: read {got} of {want} bytes at row {int(rows[first])} (a cut file?)")


def _open_map(filename: str, offset: int, shape: tuple, dtype: str) -> np.ndarray:
    return np.memmap(filename, mode="r", dtype=np.dtype(dtype), shape=shape, offset=offset)


class Rows:
    """The rows ``index`` of ``base`` ([N, F, T], usually a memory map), each read batch
    passed through ``transforms`` in order (functions of an [n, F, T] array)."""

    __array_priority__ = -1  # numpy never treats it as an operand; np.asarray copies it

    def __init__(self, base: np.ndarray, index, transforms: Sequence[Callable] = ()):
        if base.ndim != 3:
            raise ValueError(f"features must be [N, F, T], got shape {base.shape}")
        index = np.asarray(index, dtype=np.int64).reshape(-1)
        if len(index) and (index.min() < 0 or index.max() >= len(base)):
            raise IndexError(f"row index out of range for {len(base)} rows")
        self.base = base
        self.index = index
        self.transforms = tuple(transforms)

    # ---------------------------------------------------------------- array-like
    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.index), *self.base.shape[1:])

    @property
    def ndim(self) -> int:
        return 3

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.float32)

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * 4

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def __len__(self) -> int:
        return len(self.index)

    def __repr__(self) -> str:
        return f"Rows({len(self)} of {len(self.base)} rows, shape {self.shape}, {len(self.transforms)} transform(s))"

    def __getitem__(self, key) -> np.ndarray:
        """The rows ``key`` (an int, a slice, an index or boolean array) read into a new
        float32 array, transformed; a tuple key indexes that array further."""
        rest = ()
        if isinstance(key, tuple):
            key, rest = key[0], key[1:]
        if isinstance(key, (int, np.integer)):
            out = self.read(self.index[[key]])[0]
        else:
            out = self.read(self.index[key])
        return out[rest] if rest else out

    def read(self, base_rows: np.ndarray) -> np.ndarray:
        """Rows of the base (not of this selection) ``base_rows``, gathered and transformed.

        From a store's file the rows are read with ``pread`` (one call per run of
        consecutive rows) into the new array: the file's pages stay in the page cache,
        shared and reclaimable, and never become this process's resident memory, as the
        pages of a memory map it touched would."""
        base_rows = np.asarray(base_rows, dtype=np.int64)
        out = np.empty((len(base_rows), *self.base.shape[1:]), dtype=np.float32)
        fd = self._file() if len(base_rows) else None
        if fd is not None:
            _pread_rows(fd, self.base, base_rows, out)
        elif len(base_rows):
            out[...] = self.base[base_rows]
        for transform in self.transforms:
            out = transform(out)
        return out

    def _file(self) -> int | None:
        """This process's descriptor of the mapped file, or None to read through the map."""
        if not _readable_file(self.base):
            return None
        if getattr(self, "_inode_pid", None) != os.getpid():
            self._inode, self._inode_pid = mapped_inode(self.base), os.getpid()
        return _descriptor(self.base, self._inode)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        if copy is False:
            raise ValueError("Rows reads from a memory map; an array of all its rows is a copy (copy=False)")
        out = np.empty(self.shape, dtype=np.float32)
        for start, block in self.blocks():
            out[start:start + len(block)] = block
        return out if dtype is None else out.astype(dtype, copy=False)

    def blocks(self, size: int = BLOCK_ROWS):
        """``(first row, rows)`` of this selection, ``size`` rows at a time, in order."""
        for start in range(0, len(self), size):
            yield start, self.read(self.index[start:start + size])

    # ---------------------------------------------------------------- new selections
    def select(self, keep) -> "Rows":
        """The rows ``keep`` (index or boolean array) of this selection, as new ``Rows``."""
        return Rows(self.base, self.index[np.asarray(keep)], self.transforms)

    def map(self, transform: Callable) -> "Rows":
        """The same rows, each batch read passed through ``transform`` after the others."""
        return Rows(self.base, self.index, (*self.transforms, transform))

    def shares_base(self, other) -> bool:
        return isinstance(other, Rows) and other.base is self.base and other.transforms == self.transforms

    def in_memory(self) -> np.ndarray:
        """Every row as one float32 array (a copy; for a split that is small)."""
        return np.asarray(self)

    def __reduce__(self):
        base = self.base
        if isinstance(base, np.memmap) and base.filename is not None:
            return (_rebuild, (base.filename, int(base.offset), tuple(base.shape), base.dtype.str,
                               self.index, self.transforms))
        return (Rows, (np.asarray(base), self.index, self.transforms))


def _rebuild(filename, offset, shape, dtype, index, transforms) -> Rows:
    return Rows(_open_map(filename, offset, shape, dtype), index, transforms)


def concat(a, b):
    """``a``'s rows then ``b``'s: new ``Rows`` over the same map when both read one, else an array."""
    if isinstance(a, Rows) and a.shares_base(b):
        return Rows(a.base, np.concatenate([a.index, b.index]), a.transforms)
    return np.concatenate([np.asarray(a), np.asarray(b)])


def take(X, idx):
    """The rows ``idx`` of ``X``: new ``Rows`` over the same map for ``Rows``, else an array."""
    if isinstance(X, Rows):
        return X.select(idx)
    return np.ascontiguousarray(np.asarray(X)[idx])


def is_lazy(X) -> bool:
    """True for features read on demand (:class:`Rows`), False for an array in memory."""
    return isinstance(X, Rows)


__all__ = ["BLOCK_ROWS", "Rows", "concat", "take", "is_lazy"]
