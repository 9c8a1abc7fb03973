"""Keep freed CPU memory in the process heap for the length of a search or training run.

A search step allocates and frees gigabytes of activations. glibc's malloc serves each
block over 32 MB (a [16, 16, 128, 128] map is 33.5 MB) with a fresh `mmap`, and hands
freed memory at the top of its heap back to the kernel; every later allocation of that
memory then costs a page fault per 4 KB page, and the kernel zeroes each page: the
dominant cost of ops such as the zero-filled gradient of a strided slice
(docs/PERFORMANCE.md has the count).

`retained_heap()` turns both off while it is active (`mallopt(M_MMAP_MAX, 0)`,
`mallopt(M_TRIM_THRESHOLD, -1)`): after the first steps, allocations reuse pages the
process already has, and the peak resident memory is the same high-water mark the step
reaches anyway. On exit it restores glibc's defaults and returns the freed memory to the
system (`malloc_trim(0)`), so a notebook kernel does not keep the search's peak after the
run. It does nothing where the C library is not glibc, with the fast paths off
(`EMODARTS_FAST=0`, `emodarts_core.fast.disabled()`: glibc's own settings, as with the
plain form), or with `EMODARTS_RETAIN_HEAP=0`, which turns off this setting alone.
`release_freed_memory()` hands what is free back to the system at any time.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import threading

from emodarts_core import fast

# glibc <malloc.h> parameters and their defaults.
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
DEFAULT_TRIM_THRESHOLD, DEFAULT_MMAP_MAX = 128 * 1024, 65536

_lock = threading.Lock()
_depth = 0


def _glibc():
    """The glibc handle with `mallopt` and `malloc_trim`, or None elsewhere."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # glibc only
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except (OSError, AttributeError):
        return None


def available() -> bool:
    """Whether the C library is glibc, whose heap this module tunes."""
    return _glibc() is not None


def release_freed_memory() -> None:
    """Hand the freed memory at the top of the heap back to the system (`malloc_trim(0)`);
    nothing where the C library is not glibc."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


def _enabled() -> bool:
    """The fast-path switch, and `EMODARTS_RETAIN_HEAP` (read at each call) for this setting alone."""
    retain = os.environ.get("EMODARTS_RETAIN_HEAP", "1").strip().lower() not in ("0", "false", "no", "off")
    return fast.enabled() and retain


@contextlib.contextmanager
def retained_heap(active: bool = True):
    """Within the block, freed CPU memory stays in the heap; yields whether that is in effect.

    Nested blocks share the outermost one's setting; `active=False` (e.g. for a CUDA run,
    whose activations are not in the CPU heap) makes it a no-op, as do the fast-path switch
    off and `EMODARTS_RETAIN_HEAP=0`.
    """
    global _depth
    libc = _glibc() if active and _enabled() else None
    if libc is None:
        yield False
        return
    with _lock:
        if _depth == 0:
            libc.mallopt(M_MMAP_MAX, 0)
            libc.mallopt(M_TRIM_THRESHOLD, -1)  # -1: never trim (mallopt(3))
        _depth += 1
    try:
        yield True
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                libc.mallopt(M_MMAP_MAX, DEFAULT_MMAP_MAX)
                libc.mallopt(M_TRIM_THRESHOLD, DEFAULT_TRIM_THRESHOLD)
                libc.malloc_trim(0)


__all__ = ["available", "release_freed_memory", "retained_heap"]
