"""Command line: ``python -m data_prep prepare|register|unregister|list|stores|download``.

``prepare`` builds (or reuses) a feature store and prints a summary: utterances per class,
per speaker and per fold, skipped files with reasons, and the time taken; without
``--root`` it uses the corpus's registered location, without ``--out`` the cache.
``register NAME PATH`` checks a corpus folder once with its reader and records it in the
user configuration, ``unregister NAME`` forgets it again; ``list`` shows every corpus,
whether it is licensed, and where it resolves from (docs/DATA.md); ``stores`` lists the
feature stores in the cache and removes the stale ones. Bad input ends in a
short ``error: ...`` and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter

from .corpora import CORPORA
from .errors import DataError
from .folds import DEFAULT_SCHEME, FOLD_SCHEMES


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m data_prep", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    pr = sub.add_parser("prepare", help="extract features of a corpus into a feature store")
    pr.add_argument("--corpus", required=True, choices=CORPORA)
    pr.add_argument("--root", default=None,
                    help="the corpus folder (default: its registered location, see `list`)")
    pr.add_argument("--out", default=None, help="the feature store folder (default: in the cache)")
    pr.add_argument("--strict", action="store_true", help="fail on any unusable file instead of skipping it")
    pr.add_argument("--jobs", type=int, default=None, help="worker processes (default: CPU count)")
    pr.add_argument("--classes", nargs="+", default=None,
                    help="'all' or label names (default: anger happiness neutral sadness)")
    pr.add_argument("--duration", type=float, default=None, help="seconds per utterance (pad/cut)")
    pr.add_argument("--sample-rate", type=int, default=None, help="load audio at this rate (Hz)")
    pr.add_argument("--min-duration", type=float, default=None,
                    help="skip recordings shorter than this many seconds (default 0.25)")
    pr.add_argument("--seed", type=int, default=0, help="seed of the 70/30 search/train split")
    pr.add_argument("--fold-scheme", choices=FOLD_SCHEMES, default=DEFAULT_SCHEME,
                    help="IEMOCAP: 'reference' (speaker pairs across sessions, the authors' preparation) or "
                         "'session' (one session out, as the paper's text says); see docs/DATA.md")
    pr.add_argument("--merge-excited", action="store_true", help="IEMOCAP: count 'exc' as happiness")
    pr.add_argument("--no-progress", action="store_true")
    rg = sub.add_parser("register", help="record where a corpus lives on this machine (checked once)")
    rg.add_argument("corpus", choices=CORPORA)
    rg.add_argument("path", help="the corpus folder (or a feature store made by prepare)")
    ur = sub.add_parser("unregister", help="forget where a corpus lives (its folder and cached stores are kept)")
    ur.add_argument("corpus", choices=CORPORA)
    sub.add_parser("list", help="every corpus: licensed or free, where it resolves and from which source")
    st = sub.add_parser("stores", help="the feature stores in the cache, their size, and which are stale")
    st.add_argument("--remove-stale", action="store_true",
                    help="delete the stale stores and unfinished builds (current stores and live builds stay)")
    st.add_argument("--cache", default=None, help="the cache folder (default: EMODARTS_CACHE or the user cache)")
    dl = sub.add_parser("download", help="fetch a public corpus")
    dl.add_argument("corpus", choices=["emodb"])
    dl.add_argument("--out", default="data", help="folder for the archive and the unpacked corpus")
    dl.add_argument("--url", default=None, help="override the official address")
    dl.add_argument("--sha256", default=None, help="expected SHA-256 of the archive")
    dl.add_argument("--no-extract", action="store_true", help="keep only the archive")
    dl.add_argument("--no-file-check", action="store_true",
                    help="unpack even if wav/ lacks some of the 535 utterances (a partial mirror)")
    dl.add_argument("--no-progress", action="store_true")
    return p


def _prepare(args) -> None:
    from .features import default_config
    from .folds import check_scheme, make_folds
    from .prepare import prepare
    from .registry import cached_prepare, resolve

    t0 = time.time()
    check_scheme(args.corpus, args.fold_scheme)
    classes = args.classes
    if classes == ["all"]:
        classes = "all"
    opts = {"merge_excited": True} if args.merge_excited else {}
    cfg = default_config(args.corpus, sample_rate=args.sample_rate, duration_s=args.duration,
                         min_duration_s=args.min_duration)
    root = resolve(args.corpus, args.root).path
    if root is None:
        raise DataError("the generated corpus has no folder to prepare; load_fold('synthetic', None, k) "
                        "generates and prepares it")
    kwargs = dict(feature_config=cfg, classes=classes, seed=args.seed, strict=args.strict, jobs=args.jobs,
                  progress=not args.no_progress, **opts)
    store = (prepare(args.corpus, root, args.out, **kwargs) if args.out
             else cached_prepare(args.corpus, root, **kwargs))
    elapsed = time.time() - t0
    info = store.info
    print(f"corpus {store.corpus}  root {info['root']}")
    print(f"store  {store.path}  key {store.key}  "
          f"({'reused' if info['reused'] else 'built'})")
    print(f"features {cfg.n_mfcc} MFCC x {cfg.n_frames} frames, {cfg.sample_rate} Hz, "
          f"{cfg.duration_s} s, hop {cfg.hop_length}, time max-pool {cfg.time_pool}")
    by_class = Counter(store.classes[i] for i in store.y)
    print(f"utterances {len(store)}: " + ", ".join(f"{c} {by_class[c]}" for c in store.classes))
    gender = dict(zip(store.speakers, store.genders))
    by_spk = Counter(store.speakers)
    print(f"speakers {len(by_spk)}: " + ", ".join(
        f"{s}{'/' + gender[s] if gender[s] else ''} {by_spk[s]}" for s in sorted(by_spk)))
    try:
        folds = make_folds(store, seed=args.seed, scheme=args.fold_scheme)
    except DataError as exc:
        print(f"folds: none ({exc})")
    else:
        print(f"folds ({_folds_where(store, args.seed, args.fold_scheme)}):")
        for f in folds:
            print(f"  fold {f.index}: test {'+'.join(f.test_speakers)} {len(f.test)}, "
                  f"search {len(f.search)}, train {len(f.train)}")
    for reason, n in sorted(info.get("excluded", {}).items()):
        print(f"excluded {n}: {reason}")
    reasons = Counter(skip_kind(s["reason"]) for s in store.skipped)
    print(f"skipped {len(store.skipped)} file(s)" + (": " + ", ".join(f"{n} {kind}" for kind, n in
                                                                  reasons.most_common()) if reasons else ""))
    for s in store.skipped[:SHOWN_SKIPS]:
        print(f"  {s['path']}: {s['reason']}")
    if len(store.skipped) > SHOWN_SKIPS:
        print(f"  ... and {len(store.skipped) - SHOWN_SKIPS} more (see {store.path}/manifest.csv)")
    notes = Counter(n for r in store.manifest for n in r.get("notes", []))
    for note, n in sorted(notes.items()):
        print(f"note {n} file(s): {note}")
    print(f"time {elapsed:.1f} s")


#: Skipped files the summary names one by one (all are in the store's manifest.csv).
SHOWN_SKIPS = 20


def skip_kind(reason: str) -> str:
    """The kind of a skip reason, for counting: its text up to the first ':' or ' ('
    ("too short: 0.1 s ..." -> "too short", "empty file (0 bytes)" -> "empty file")."""
    return reason.split(":", 1)[0].split(" (", 1)[0].strip()


def _folds_where(store, seed: int, scheme: str) -> str:
    """Where the folds printed below are recorded: the store's folds file, or why none was written."""
    what = f"seed {seed}" + ("" if scheme == DEFAULT_SCHEME else f", {scheme} scheme")
    if scheme != DEFAULT_SCHEME:
        return f"{what}, computed on use: load_fold(..., fold_scheme={scheme!r})"
    path = store.path / f"folds-seed{seed}.json"
    if store.info.get("folds_unsaved") or not path.is_file():
        return f"{what}, not written: {store.info.get('folds_unsaved', f'{path} is missing')}; computed again on use"
    return f"{what}, written to {path}"


def _register(args) -> None:
    from .registry import config_file, register

    path, found = register(args.corpus, args.path)
    print(f"registered {args.corpus}: {path} ({found})")
    print(f"recorded in {config_file()}")


def _unregister(args) -> None:
    from .registry import config_file, env_name, unregister

    path = unregister(args.corpus)
    print(f"unregistered {args.corpus}: {path} (the folder and its cached feature stores are kept)" if path else
          f"{args.corpus} was not registered; nothing changed")
    print(f"in {config_file()}")
    if os.environ.get(env_name(args.corpus)):
        print(f"note: the environment variable {env_name(args.corpus)} still gives {args.corpus} a location")


def _list(args) -> None:
    from .registry import cache_dir, config_file, listing, shared_cache_dir

    rows = listing()
    print(f"{'corpus':<12} {'licence':<9} {'location':<44} source")
    for r in rows:
        where = r["path"] or ("(generated)" if r["corpus"] == "synthetic" else "-")
        if r["exists"] is False:
            where += "  (missing!)"
        print(f"{r['corpus']:<12} {'licensed' if r['licensed'] else 'free':<9} {where:<44} {r['source']}")
    shared = shared_cache_dir()
    print(f"config file  {config_file()}")
    print(f"cache        {cache_dir()}")
    print(f"shared cache {shared if shared else '-'}")


def _stores(args) -> None:
    from pathlib import Path

    from .registry import cache_dir
    from .stale import STALE, UNFINISHED, cache_entries, remove_stale

    cache = Path(args.cache).expanduser() if args.cache else cache_dir()
    entries = cache_entries(cache)
    gib = 2 ** 30
    print(f"cache {cache}: {len(entries)} store(s) and build folder(s), {sum(e.bytes for e in entries) / gib:.2f} GiB")
    for e in entries:
        print(f"  {e.state:<16} {e.bytes / gib:7.2f} GiB  {e.path}  ({e.reason})")
    stale = [e for e in entries if e.state in (STALE, UNFINISHED)]
    if not args.remove_stale:
        if stale:
            print(f"{len(stale)} stale or unfinished, {sum(e.bytes for e in stale) / gib:.2f} GiB: remove them with "
                  "python -m data_prep stores --remove-stale")
        return
    removed = remove_stale(entries)
    print(f"removed {len(removed)}, {sum(e.bytes for e in removed) / gib:.2f} GiB freed")


def _download(args) -> None:
    from .download import EMODB_SHA256, EMODB_URL, download_emodb

    path = download_emodb(args.out, url=args.url or EMODB_URL, sha256=args.sha256 or EMODB_SHA256,
                          extract=not args.no_extract, progress=not args.no_progress,
                          check_files=not args.no_file_check)
    print(path)
    if not args.no_extract:
        print(f"register it with: python -m data_prep register emodb {path}", file=sys.stderr)


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    try:
        {"prepare": _prepare, "register": _register, "unregister": _unregister, "list": _list,
         "stores": _stores, "download": _download}[args.command](args)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
