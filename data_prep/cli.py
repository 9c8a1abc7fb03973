"""Command line: ``python -m data_prep prepare ...`` and ``python -m data_prep download emodb``.

``prepare`` builds (or reuses) a feature store and prints a summary: utterances per class,
per speaker and per fold, skipped files with reasons, and the time taken. Bad input ends
in a one-line ``error: <file>: <problem>`` and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter

from .corpora import CORPORA
from .errors import DataError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m data_prep", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    pr = sub.add_parser("prepare", help="extract features of a corpus into a feature store")
    pr.add_argument("--corpus", required=True, choices=CORPORA)
    pr.add_argument("--root", required=True, help="the corpus folder")
    pr.add_argument("--out", required=True, help="the feature store folder")
    pr.add_argument("--strict", action="store_true", help="fail on any unusable file instead of skipping it")
    pr.add_argument("--jobs", type=int, default=None, help="worker processes (default: CPU count)")
    pr.add_argument("--classes", nargs="+", default=None,
                    help="'all' or label names (default: anger happiness neutral sadness)")
    pr.add_argument("--duration", type=float, default=None, help="seconds per utterance (pad/cut)")
    pr.add_argument("--sample-rate", type=int, default=None, help="load audio at this rate (Hz)")
    pr.add_argument("--seed", type=int, default=0, help="seed of the 70/30 search/train split")
    pr.add_argument("--merge-excited", action="store_true", help="IEMOCAP: count 'exc' as happiness")
    pr.add_argument("--no-progress", action="store_true")
    dl = sub.add_parser("download", help="fetch a public corpus")
    dl.add_argument("corpus", choices=["emodb"])
    dl.add_argument("--out", default="data", help="folder for the archive and the unpacked corpus")
    dl.add_argument("--url", default=None, help="override the official address")
    dl.add_argument("--sha256", default=None, help="expected SHA-256 of the archive")
    dl.add_argument("--no-extract", action="store_true", help="keep only the archive")
    dl.add_argument("--no-progress", action="store_true")
    return p


def _prepare(args) -> None:
    from .features import default_config
    from .folds import make_folds
    from .prepare import prepare

    t0 = time.time()
    classes = args.classes
    if classes == ["all"]:
        classes = "all"
    opts = {"merge_excited": True} if args.merge_excited else {}
    cfg = default_config(args.corpus, sample_rate=args.sample_rate, duration_s=args.duration)
    store = prepare(args.corpus, args.root, args.out, feature_config=cfg, classes=classes,
                    seed=args.seed, strict=args.strict, jobs=args.jobs,
                    progress=not args.no_progress, **opts)
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
        folds = make_folds(store, seed=args.seed)
    except DataError as exc:
        print(f"folds: none ({exc})")
    else:
        print(f"folds (seed {args.seed}, written to {store.path}/folds-seed{args.seed}.json):")
        for f in folds:
            print(f"  fold {f.index}: test {'+'.join(f.test_speakers)} {len(f.test)}, "
                  f"search {len(f.search)}, train {len(f.train)}")
    for reason, n in sorted(info.get("excluded", {}).items()):
        print(f"excluded {n}: {reason}")
    print(f"skipped {len(store.skipped)} file(s)" + (":" if store.skipped else ""))
    for s in store.skipped[:20]:
        print(f"  {s['path']}: {s['reason']}")
    if len(store.skipped) > 20:
        print(f"  ... and {len(store.skipped) - 20} more (see {store.path}/manifest.csv)")
    notes = Counter(n for r in store.manifest for n in r.get("notes", []))
    for note, n in sorted(notes.items()):
        print(f"note {n} file(s): {note}")
    print(f"time {elapsed:.1f} s")


def _download(args) -> None:
    from .download import EMODB_SHA256, EMODB_URL, download_emodb

    path = download_emodb(args.out, url=args.url or EMODB_URL, sha256=args.sha256 or EMODB_SHA256,
                          extract=not args.no_extract, progress=not args.no_progress)
    print(path)


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "prepare":
            _prepare(args)
        else:
            _download(args)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
