"""The feature stores in the cache, and which of them are stale (``python -m data_prep stores``).

A store is built into the cache under a name derived from its corpus folder and feature
configuration (:func:`data_prep.registry.store_subdir`), so a corpus that moves, or whose
files change, gets a new store beside the old one: nothing evicts the old one, which at
MSP-Podcast's size is about 10 GB. :func:`cache_entries` lists every store and build
folder in a cache with its size and state:

- ``current``: its corpus folder exists, every file it was built from has the size and
  modification time it had, and the reader lists as many files there as it did;
- ``stale``: its corpus folder is gone, its files changed, went missing or were added
  since it was built (``prepare`` builds another), or it cannot be read (an older
  format, a damaged store.json);
- ``unfinished build``: a build folder no live process holds (a killed build; the same
  ``prepare`` takes it over and goes on), or a store moved aside during a replacement;
- ``building``: a build a live process holds; never removed.

:func:`remove_stale` deletes the stale entries and the unfinished builds (docs/DATA.md).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from .errors import DataError
from .locks import try_flock

CURRENT, STALE, UNFINISHED, BUILDING = "current", "stale", "unfinished build", "building"


@dataclass
class CacheEntry:
    """One folder in the cache: its ``state``, why (``reason``), size and corpus."""

    path: Path
    state: str
    reason: str
    bytes: int
    corpus: str | None = None


def folder_bytes(folder: Path) -> int:
    """Disk blocks allocated under ``folder``, in bytes."""
    total = 0
    for path in folder.rglob("*"):
        try:
            if path.is_file() and not path.is_symlink():
                total += path.stat().st_blocks * 512
        except OSError:
            pass
    return total


def store_state(folder: Path) -> tuple[str, str, str | None]:
    """``(state, reason, corpus)`` of the store at ``folder`` (see the module docstring)."""
    from .corpora import scan_corpus
    from .prepare import input_key
    from .store import STORE_FORMAT, absolute_audio_path, read_info

    info = read_info(folder)
    if info is None:
        return STALE, "no readable store.json", None
    corpus = info.get("corpus")
    if info.get("format") != STORE_FORMAT:
        return STALE, f"store format {info.get('format')!r}, not {STORE_FORMAT}", corpus
    root = info.get("root")
    if corpus == "synthetic":
        return CURRENT, "the generated corpus", corpus
    if not root or not Path(root).is_dir():
        return STALE, f"its corpus folder {root} no longer exists", corpus
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
        recorded = [r["path"] for r in manifest["utterances"]] + [r["path"] for r in manifest["skipped"]]
        stats = {p: _stat(absolute_audio_path(p, root)) for p in recorded}  # the key hashes the paths as recorded
        options = info.get("reader_options") or {}
        same_files = input_key(corpus, tuple(info["classes"]), options, recorded, stats) == info.get("input_key")
        scan = scan_corpus(corpus, root, classes=info["classes"], **options)
    except (OSError, ValueError, DataError, KeyError, TypeError) as exc:
        return STALE, f"its corpus cannot be read as it was ({exc})", corpus
    if not same_files:
        return STALE, f"files of {root} changed or went missing since it was built", corpus
    if len(scan.utterances) + len(scan.skipped) != len(recorded):
        return STALE, f"{root} now lists {len(scan.utterances) + len(scan.skipped)} files, not {len(recorded)}", corpus
    return CURRENT, f"built from {root}", corpus


def _stat(path: str):
    try:
        return os.stat(path)
    except OSError:
        return None


def _build_state(folder: Path) -> tuple[str, str]:
    from .store import BUILDER

    if ".old-" in folder.name:
        return UNFINISHED, "a store moved aside while its replacement was put in place"
    lock = folder / BUILDER
    try:
        with open(lock, "a") as fh:
            if not try_flock(fh):
                return BUILDING, "a live build holds it"
    except OSError:
        return BUILDING, "cannot open its lock (another user's build?)"
    return UNFINISHED, "a killed build; the same prepare goes on from it (removing it loses that work)"


def cache_entries(cache: Path) -> list[CacheEntry]:
    """Every store and build folder under ``cache`` (``stores/<corpus>/*`` and the
    generated corpus's store), sorted by path."""
    cache = Path(cache)
    entries = []
    folders = {p.parent for p in cache.glob("stores/*/*/store.json")} | {p.parent for p in cache.glob("*/store/store.json")}
    leftovers = [*cache.glob("stores/*/.*.building-*"), *cache.glob("stores/*/.*.old-*"),
                 *cache.glob("*/.store.building-*"), *cache.glob("*/.store.old-*")]
    for folder in sorted(folders):
        state, reason, corpus = store_state(folder)
        entries.append(CacheEntry(folder, state, reason, folder_bytes(folder), corpus))
    for folder in sorted(p for p in leftovers if p.is_dir() and not p.is_symlink()):
        state, reason = _build_state(folder)
        entries.append(CacheEntry(folder, state, reason, folder_bytes(folder)))
    return sorted(entries, key=lambda e: str(e.path))


def remove_stale(entries: list[CacheEntry]) -> list[CacheEntry]:
    """Delete the stale stores and unfinished builds among ``entries``; returns those removed."""
    removed = []
    for entry in entries:
        if entry.state in (STALE, UNFINISHED):
            shutil.rmtree(entry.path, ignore_errors=True)
            if not entry.path.exists():
                removed.append(entry)
    return removed


__all__ = ["CURRENT", "STALE", "UNFINISHED", "BUILDING", "CacheEntry", "cache_entries", "remove_stale",
           "store_state", "folder_bytes"]
