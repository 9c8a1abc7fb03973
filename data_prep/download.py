"""Fetch the public EmoDB archive: progress bar, HTTP Range resume, SHA-256, atomic rename.

The archive is downloaded to ``<out>/download.zip.part``; an interrupted download is
continued from where it stopped (``Range: bytes=N-``; a server that ignores the range
restarts it from zero). The finished file is checked against ``sha256`` (when one is
given) and only then renamed to ``<out>/download.zip``; a mismatch deletes the partial
file and raises :class:`DataError`. Optionally the archive is unpacked (atomically) into
``<out>/emodb`` so that ``prepare --corpus emodb --root <out>/emodb`` works.

No checksum of the official archive is pinned here (``EMODB_SHA256 = None``): none could
be verified from this machine. The computed digest is printed; pass it as ``--sha256``
to pin it.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import sys
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from .errors import DataError
from .store import mkdtemp_shared

EMODB_URL = "http://emodb.bilderbar.info/download/download.zip"
EMODB_SHA256: str | None = None
BLOCK = 1 << 16


def sha256_of(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fetch(url: str, dest, *, sha256: str | None = None, progress: bool = True,
          timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` with resume and checksum; return ``dest``.

    An existing ``dest`` whose checksum matches is kept without downloading.
    """
    from tqdm.auto import tqdm

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.is_file() and (sha256 is None or sha256_of(dest) == sha256.lower()):
        return dest
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing left to fetch: the part is complete
            resp = None
        else:
            raise DataError(f"download failed: HTTP {exc.code} {exc.reason}", url) from None
    except (urllib.error.URLError, OSError) as exc:
        raise DataError(f"download failed: {exc}", url) from None
    if resp is not None:
        with resp:
            resumed = have and resp.status == 206
            if not resumed:
                have = 0
            length = resp.headers.get("Content-Length")
            total = have + int(length) if length is not None else None
            with open(part, "ab" if resumed else "wb") as fh, tqdm(
                    total=total, initial=have, unit="B", unit_scale=True, file=sys.stderr,
                    desc=dest.name, disable=not progress) as bar:
                try:
                    for block in iter(lambda: resp.read(BLOCK), b""):
                        fh.write(block)
                        bar.update(len(block))
                except (OSError, http.client.HTTPException) as exc:
                    raise DataError(f"download interrupted ({type(exc).__name__}); "
                                    "run again to resume", url) from None
        got = part.stat().st_size
        if total is not None and got != total:
            raise DataError(f"download interrupted at {got} of {total} bytes; run again to resume", url)
    digest = sha256_of(part)
    if sha256 is not None and digest != sha256.lower():
        part.unlink()
        raise DataError(f"checksum mismatch: got sha256 {digest}, expected {sha256.lower()}; "
                        "the partial file was deleted", dest)
    os.replace(part, dest)
    print(f"{dest}: sha256 {digest}", file=sys.stderr)
    return dest


def unpack(archive, target) -> Path:
    """Unzip ``archive`` into ``target`` atomically, refusing members outside it."""
    target = Path(target)
    if target.exists():
        return target
    tmp = Path(mkdtemp_shared(prefix=f".{target.name}.tmp-", dir=target.parent))  # umask modes
    try:
        try:
            with zipfile.ZipFile(archive) as zf:
                for name in zf.namelist():
                    dest = (tmp / name).resolve()
                    if not dest.is_relative_to(tmp.resolve()):
                        raise DataError(f"archive member {name!r} points outside the folder", archive)
                zf.extractall(tmp)
        except zipfile.BadZipFile as exc:
            raise DataError(f"not a zip archive ({exc})", archive) from None
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def download_emodb(out, *, url: str = EMODB_URL, sha256: str | None = EMODB_SHA256,
                   extract: bool = True, progress: bool = True) -> Path:
    """Fetch EmoDB into ``out``; return the corpus root (``out/emodb``) or the archive."""
    out = Path(out)
    archive = fetch(url, out / "download.zip", sha256=sha256, progress=progress)
    return unpack(archive, out / "emodb") if extract else archive
