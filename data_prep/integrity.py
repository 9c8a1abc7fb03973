"""A feature store's checksums: recorded once per block of rows, verified once per copy.

``store.json`` records, per checksummed file (docs/DATA.md, "Integrity"):

- ``manifest.json``: its SHA-256;
- ``X.npy``: the SHA-256 of its header and of every block of :data:`CHECKSUM_ROWS` rows,
  so a damaged store names the rows that changed;

and ``verified.json`` (beside it) the identity of each file when its checksums last
matched: size, modification and change times (in ns) and inode. Opening a store compares
those with the files' ``stat``: a file that is the same, by those four, as when it was
verified is not read again. So a store is read whole once when it is built or copied (a
copy has a new inode), not on every ``load_fold``; a write to it changes its change time,
which no user can set back, and the next open reads it and refuses it if a block differs.
Where the store is read-only (a shared cache) the record is kept for the process instead.

A store's identity is its ``key`` (the feature configuration and the input files, never
the features' bytes), so stores built on two machines whose floating point rounds
differently are the same store; the checksums only say that this copy is intact.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from .errors import DataError

CHECKSUMMED = ("X.npy", "manifest.json")
#: Rows per checksummed block of X.npy (64 MiB of [128, 128] float32 features).
CHECKSUM_ROWS = 1024
VERIFIED = "verified.json"
_READ = 1 << 22

REBUILD = ("rebuild it: delete the folder and run `python -m data_prep prepare` again (a store in the "
           "cache is rebuilt automatically by load_fold)")


def file_sha256(path) -> str:
    """SHA-256 of a file, read in 4 MiB blocks."""
    h = hashlib.sha256()
    buf = bytearray(_READ)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as fh:
        while n := fh.readinto(buf):
            h.update(view[:n])
    return h.hexdigest()


def npy_layout(path) -> tuple[int, tuple[int, ...], np.dtype]:
    """``(data offset, shape, dtype)`` of a ``.npy`` file, from its header alone."""
    with open(path, "rb") as fh:
        version = np.lib.format.read_magic(fh)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _fortran, dtype = read(fh)
        return fh.tell(), tuple(shape), dtype


def array_checksums(path, rows: int = CHECKSUM_ROWS) -> dict:
    """The header's and each block of ``rows`` rows' SHA-256 of the ``.npy`` at ``path``."""
    offset, shape, dtype = npy_layout(path)
    row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
    blocks = []
    with open(path, "rb", buffering=0) as fh:
        header = fh.read(offset)
        for start in range(0, shape[0], rows):
            h = hashlib.sha256()
            left = min(rows, shape[0] - start) * row_bytes
            while left:
                data = fh.read(min(left, _READ))
                if not data:
                    break
                h.update(data)
                left -= len(data)
            blocks.append(h.hexdigest())
    return {"header": hashlib.sha256(header).hexdigest(), "rows_per_block": rows, "blocks": blocks}


def store_checksums(folder) -> dict:
    folder = Path(folder)
    return {"X.npy": array_checksums(folder / "X.npy"), "manifest.json": file_sha256(folder / "manifest.json")}


def file_identity(path) -> list[int]:
    """Size, mtime and ctime (ns) and inode: what changes when a file is written or copied."""
    st = os.stat(path)
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


_VERIFIED: set[tuple] = set()  # (resolved path, identity, recorded checksum) that matched in this process


def record_verified(folder) -> bool:
    """Write ``verified.json`` (the files' identities now) into the store ``folder``;
    False where the folder is read-only."""
    from .store import write_json_atomic

    folder = Path(folder)
    try:
        write_json_atomic(folder / VERIFIED, {name: file_identity(folder / name) for name in CHECKSUMMED})
        return True
    except OSError:
        return False


def _mismatch(path: Path, recorded) -> str | None:
    """Why ``path`` does not match ``recorded`` (a SHA-256, or :func:`array_checksums`'s dict)."""
    if isinstance(recorded, str):
        digest = file_sha256(path)
        return None if digest == recorded else f"{digest[:12]}... != {recorded[:12]}..."
    try:
        rows = int(recorded["rows_per_block"])
        now = array_checksums(path, rows)
    except (KeyError, TypeError, ValueError) as exc:
        return f"unreadable ({type(exc).__name__}: {exc})"
    if now["header"] != recorded.get("header") or len(now["blocks"]) != len(recorded.get("blocks", ())):
        return "its header (shape) changed"
    bad = [k for k, (a, b) in enumerate(zip(now["blocks"], recorded["blocks"])) if a != b]
    if not bad:
        return None
    spans = ", ".join(f"rows {k * rows}-{(k + 1) * rows - 1}" for k in bad[:3])
    return f"{len(bad)} block(s) of {rows} rows differ: {spans}" + (", ..." if len(bad) > 3 else "")


def verify_checksums(path, info: dict) -> None:
    """Check the files of the store at ``path`` against ``info["checksums"]``, reading a
    file only when it is not the same file (by :func:`file_identity`) that matched before
    (``verified.json``, or earlier in this process)."""
    path = Path(path)
    sums = info.get("checksums")
    if not isinstance(sums, dict) or set(sums) != set(CHECKSUMMED):
        raise DataError(f"store.json has no checksums of {', '.join(CHECKSUMMED)}; {REBUILD}", path)
    try:
        recorded = json.loads((path / VERIFIED).read_text())
    except (OSError, ValueError):
        recorded = {}
    read_any = False
    for name in CHECKSUMMED:
        file = path / name
        try:
            ident = file_identity(file)
        except OSError as exc:
            raise DataError(f"cannot read {name} ({exc.strerror})", path) from None
        memo = (str(file.resolve()), tuple(ident), json.dumps(sums[name], sort_keys=True))
        if memo in _VERIFIED or (isinstance(recorded, dict) and recorded.get(name) == ident):
            continue
        why = _mismatch(file, sums[name])
        if why is not None:
            raise DataError(f"{name} does not match the SHA-256 recorded in store.json when the store was "
                            f"built (damaged or changed since: {why}); {REBUILD}", path)
        _VERIFIED.add(memo)
        read_any = True
    if read_any:
        record_verified(path)


__all__ = ["CHECKSUMMED", "CHECKSUM_ROWS", "VERIFIED", "REBUILD", "file_sha256", "npy_layout", "array_checksums",
           "store_checksums", "file_identity", "record_verified", "verify_checksums"]
