"""Fetch the public EmoDB archive with pooch, check it, and unpack it atomically.

pooch (the download layer of scikit-image, MNE and SciPy's datasets) streams the archive
into a temporary file beside its destination, checks its SHA-256 when one is known, and
only then moves it into place: an interrupted or corrupted download never leaves a
``download.zip`` behind. An existing archive whose checksum matches is reused without a
request.

Two checks guard what reaches the feature pipeline:

- the archive's SHA-256, when one is given (``--sha256``). None is pinned here
  (``EMODB_SHA256 = None``): the official server cannot be reached from the machines this
  project is built on, and a checksum nobody computed would be a promise the code cannot
  keep. The digest of every download is printed, so a lab can pin the one it got;
- the unpacked corpus itself, always: ``wav/`` must hold exactly the 535 utterances listed
  in ``data_prep/emodb_files.txt`` (docs/DATA.md). A truncated or foreign archive fails
  here with the missing and unexpected names, before anything is unpacked into place.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import zipfile
from importlib import resources
from pathlib import Path

from .errors import DataError
from .store import mkdtemp_shared

EMODB_URL = "http://emodb.bilderbar.info/download/download.zip"
EMODB_SHA256: str | None = None


def sha256_of(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def emodb_file_names() -> list[str]:
    """The 535 utterance names of the official EmoDB archive's ``wav/`` folder."""
    text = resources.files("data_prep").joinpath("emodb_files.txt").read_text()
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def fetch(url: str, dest, *, sha256: str | None = None, progress: bool = True,
          timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` (atomically, checked against ``sha256``); return ``dest``.

    An existing ``dest`` is kept when its checksum matches (or when none is given).
    Failures raise :class:`DataError` naming the address or the file.
    """
    import pooch
    import requests

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.is_file() and sha256 is not None and sha256_of(dest) != sha256.lower():
        dest.unlink()  # a stale or foreign file under the archive's name: fetch it afresh
    downloader = pooch.HTTPDownloader(progressbar=progress, timeout=timeout)
    try:
        path = pooch.retrieve(url, known_hash=f"sha256:{sha256.lower()}" if sha256 else None,
                              fname=dest.name, path=dest.parent, downloader=downloader)
    except ValueError as exc:  # pooch's hash mismatch; it has already removed the download
        if "hash" not in str(exc).lower():
            raise
        raise DataError(f"checksum mismatch: expected sha256 {sha256.lower()}, the download "
                        "differs and was deleted", dest) from None
    except requests.exceptions.HTTPError as exc:
        raise DataError(f"download failed: HTTP {exc.response.status_code} {exc.response.reason}",
                        url) from None
    except (requests.exceptions.RequestException, OSError) as exc:
        raise DataError(f"download failed ({type(exc).__name__}: {exc}); nothing was kept, "
                        "run again", url) from None
    print(f"{path}: sha256 {sha256_of(path)}", file=sys.stderr)
    return Path(path)


def _check_emodb_members(names: list[str], archive) -> None:
    wavs = {n.split("/", 1)[1] for n in names if n.startswith("wav/") and n.endswith(".wav")}
    expected = set(emodb_file_names())
    missing, extra = sorted(expected - wavs), sorted(wavs - expected)
    if missing or extra:
        def some(xs):
            return ", ".join(xs[:5]) + (f" and {len(xs) - 5} more" if len(xs) > 5 else "")
        parts = ([f"{len(missing)} utterance(s) missing ({some(missing)})"] if missing else []) + \
                ([f"{len(extra)} unexpected ({some(extra)})"] if extra else [])
        raise DataError("not the EmoDB archive: wav/ should hold the 535 utterances listed in "
                        f"data_prep/emodb_files.txt; {'; '.join(parts)}", archive)


def unpack(archive, target, *, check=None) -> Path:
    """Unzip ``archive`` into ``target`` atomically, refusing members outside it.

    ``check(names, archive)`` may inspect the member names first and raise
    :class:`DataError`; then nothing is unpacked.
    """
    target = Path(target)
    if target.exists():
        return target
    try:
        with zipfile.ZipFile(archive) as zf:
            names = zf.namelist()
            if check is not None:
                check(names, archive)
            tmp = Path(mkdtemp_shared(prefix=f".{target.name}.tmp-", dir=target.parent))  # umask modes
            try:
                for name in names:
                    if not (tmp / name).resolve().is_relative_to(tmp.resolve()):
                        raise DataError(f"archive member {name!r} points outside the folder", archive)
                zf.extractall(tmp)
                os.replace(tmp, target)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    except zipfile.BadZipFile as exc:
        raise DataError(f"not a zip archive ({exc})", archive) from None
    return target


def download_emodb(out, *, url: str = EMODB_URL, sha256: str | None = EMODB_SHA256,
                   extract: bool = True, progress: bool = True, check_files: bool = True) -> Path:
    """Fetch EmoDB into ``out``; return the corpus root (``out/emodb``) or the archive.

    ``check_files=False`` skips the 535-utterance check (for a mirror that ships a subset).
    """
    out = Path(out)
    archive = fetch(url, out / "download.zip", sha256=sha256, progress=progress)
    if not extract:
        return archive
    return unpack(archive, out / "emodb", check=_check_emodb_members if check_files else None)
