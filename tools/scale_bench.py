"""What a corpus of MSP-Podcast's size costs on one machine (docs/DATA.md, "At scale").

    python tools/scale_bench.py --sizes 2000 20000 --work /tmp/scale_bench

For each size N it writes a generated corpus in MSP-Podcast's release layout
(``Audios/*.wav``, 16 kHz, 2-6 s, the paper's four classes, N/50 speakers, and
``Labels/labels_consensus.csv``; docs/CORPORA.md), then measures, each in a fresh
child process so that one measurement's heap does not count in the next:

- the store build (``data_prep.prepare``, the corpus's default features): seconds per
  utterance, the peak resident memory of the build (the parent and its workers' largest),
  and the disk the build's folder took at its largest;
- ``load_fold`` of fold 1 read from the store's map at every size (``in_memory=False``,
  which ``load_fold`` chooses by itself above 256 MiB), from the corpus folder (a scan of it, then the cached store)
  and from the store folder: seconds, resident memory held after it and its peak (over
  the process's resident memory before the call);
- a 20-step search in the study's space (``--params``, default ``study_emodb_v2``) on that
  fold's search split, one thread: its peak resident memory.

It prints a Markdown table, one row per size, and a row per ``--fit`` size from a
straight line through the measured rows (least squares over N).

    python tools/scale_bench.py --sizes 2000 --compare-threads 48

compares instead the extraction's CPU cost per utterance with one BLAS thread (as the
build's workers run it) and with the library's default, side by side in one process.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
from emodarts_core.study.sweep.leftovers import descendants  # noqa: E402

CLASSES = ("A", "H", "N", "S")  # MSP-Podcast's EmoClass letters of the paper's four classes
SAMPLE_RATE = 16000


def write_corpus(root: Path, n: int, seed: int = 0) -> Path:
    """A corpus of ``n`` utterances in MSP-Podcast's layout under ``root`` (kept when complete).

    The audio is a voiced, noisy tone of 2-6 s per file; what a store build costs depends
    on the files' number and length, not on what they say."""
    root = Path(root)
    done = root / "corpus.json"
    if done.is_file() and json.loads(done.read_text()).get("n") == n:
        return root
    import soundfile as sf

    audio_dir = root / "Audios"
    audio_dir.mkdir(parents=True, exist_ok=True)
    (root / "Labels").mkdir(exist_ok=True)
    rng = np.random.default_rng(seed)
    n_speakers = max(5, n // 50)
    rows = []
    t = np.arange(6 * SAMPLE_RATE) / SAMPLE_RATE
    for i in range(n):
        spk = i % n_speakers
        name = f"MSP-PODCAST_{spk + 1:04d}_{i + 1:06d}.wav"
        length = int(rng.uniform(2.0, 6.0) * SAMPLE_RATE)
        f0 = rng.uniform(90, 260)
        tone = sum(np.sin(2 * np.pi * f0 * k * t[:length]) / k for k in range(1, 6))
        wave = 0.1 * tone * (1 + 0.5 * np.sin(2 * np.pi * 3 * t[:length])) + 0.01 * rng.standard_normal(length)
        sf.write(audio_dir / name, wave.astype(np.float32), SAMPLE_RATE, subtype="PCM_16")
        rows.append({"FileName": name, "EmoClass": CLASSES[int(rng.integers(4))], "EmoAct": "4.0",
                     "EmoVal": "4.0", "EmoDom": "4.0", "SpkrID": str(spk + 1),
                     "Gender": "Male" if spk % 2 else "Female", "Split_Set": "Train"})
    with open(root / "Labels" / "labels_consensus.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    done.write_text(json.dumps({"n": n, "seed": seed}))
    return root


def _status(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM, RssAnon, RssFile of a process, in bytes (empty when it is gone)."""
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                out[key] = int(value.split()[0]) * 1024
    except OSError:
        pass
    return out


def _disk(folder: Path) -> int:
    """Bytes allocated under ``folder`` (hidden build folders included)."""
    total = 0
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
            except OSError:
                pass
    return total


def _run_child(step: str, n: int, work: Path, cache: Path) -> dict:
    """Run one measurement in a child process, sampling its process tree's memory and the
    cache's disk every 0.2 s; returns the child's JSON line plus the samples' peaks."""
    env = {**os.environ, "EMODARTS_CACHE": str(cache), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    child = subprocess.Popen([sys.executable, __file__, "--child", step, "--n", str(n), "--work", str(work)],
                             env=env, stdout=subprocess.PIPE, text=True)
    peaks = {"tree_rss": 0, "main_anon": 0, "disk": 0}
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            tree = [child.pid, *descendants(child.pid)]
            stats = [_status(p) for p in tree]
            peaks["tree_rss"] = max(peaks["tree_rss"], sum(s.get("VmRSS", 0) for s in stats))
            peaks["main_anon"] = max(peaks["main_anon"], stats[0].get("RssAnon", 0) if stats else 0)
            peaks["disk"] = max(peaks["disk"], _disk(cache))
            stop.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, _ = child.communicate()
    stop.set()
    sampler.join()
    if child.returncode:
        raise SystemExit(f"{step} at {n} failed (exit {child.returncode})")
    return {**json.loads(out.strip().splitlines()[-1]), **peaks}


class _StopSearch(Exception):
    pass


def _child(step: str, n: int, work: Path) -> dict:
    """One measurement in this (fresh) process: ``build``, ``load`` or ``search``."""
    import torch

    torch.set_num_threads(1)
    root = work / f"corpus-{n}"
    before = _status(os.getpid())
    if step == "build":
        from data_prep import store_for

        t0 = time.perf_counter()
        store = store_for("msp_podcast", root)  # what load_fold does on first use: build into the cache
        seconds = time.perf_counter() - t0
        me = _status(os.getpid())
        return {"seconds": seconds, "n": len(store), "store_bytes": (store.path / "X.npy").stat().st_size,
                "main_hwm": me["VmHWM"], "reused": store.info["reused"]}
    if step in ("load", "load_store"):  # from the corpus folder (a scan), or from the store folder itself
        from data_prep import load_fold

        where = root
        if step == "load_store":
            from data_prep.stale import CURRENT, cache_entries

            where = next(e.path for e in cache_entries(Path(os.environ["EMODARTS_CACHE"])) if e.state == CURRENT)
        before = _status(os.getpid())
        t0 = time.perf_counter()
        fold = load_fold("msp_podcast", where, 1, in_memory=False)
        seconds = time.perf_counter() - t0
        me = _status(os.getpid())
        return {"seconds": seconds, "held": me["VmRSS"] - before["VmRSS"], "peak": me["VmHWM"] - before["VmRSS"],
                "rss": me["VmRSS"], "hwm": me["VmHWM"], "lazy": type(fold.search.X).__name__,
                "search": len(fold.search)}
    if step == "search":
        import dataclasses
        import tempfile

        import emodarts_core.training.data as data
        from data_prep import load_fold
        from emodarts_core.study.sweep.parameters import load_params

        real = data.make_loader
        drawn = [0]

        def limited(dataset, batch_size, **kw):  # 20 steps of weights and α, then stop
            loader = real(dataset, batch_size, **kw)
            if not kw.get("shuffle"):
                return loader

            class Limited(type(loader)):
                def __iter__(self):
                    for batch in super().__iter__():
                        drawn[0] += 1
                        if drawn[0] > 2 * SEARCH_STEPS:
                            raise _StopSearch
                        yield batch

            loader.__class__ = Limited
            return loader

        data.make_loader = limited
        from emodarts_core.darts.search import run_search

        params = load_params(SEARCH_PARAMS)
        fold = load_fold("msp_podcast", root, 1, seed=params.fold_seed, in_memory=False)
        net = params.network_for("emodarts")
        cfg = dataclasses.replace(params.search, epochs=None, warmup_epochs=0, alpha_steps=SEARCH_STEPS,
                                  device="cpu", progress=False)
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as run_dir:
            try:
                run_search(fold, net, cfg, Path(run_dir) / "search")
            except _StopSearch:
                pass
        me = _status(os.getpid())
        return {"seconds": time.perf_counter() - t0, "steps": drawn[0] // 2, "hwm": me["VmHWM"],
                "before": before["VmRSS"], "file_rss": me.get("RssFile", 0)}
    raise SystemExit(f"unknown step {step}")


SEARCH_STEPS = 20
SEARCH_PARAMS = "study_emodb_v2"


def compare_blas_threads(root: Path, n_files: int, rounds: int = 4) -> str:
    """CPU and wall milliseconds per utterance of the extraction in this process with one
    BLAS thread and with the library's default, on ``n_files`` of the corpus, measured
    side by side: the arms alternate in order from round to round; medians over rounds."""
    from threadpoolctl import threadpool_info, threadpool_limits

    from data_prep.features import default_config, extract

    cfg = default_config("msp_podcast")
    files = sorted((root / "Audios").glob("*.wav"))[:n_files]
    extract(files[0], cfg)  # librosa's first call compiles
    arms = {"one BLAS thread": lambda: threadpool_limits(limits=1), "default threads": lambda: threadpool_limits()}
    seen = {arm: [] for arm in arms}
    for r in range(rounds):
        for arm in (list(arms) if r % 2 == 0 else list(arms)[::-1]):
            with arms[arm]():
                c0, w0 = time.process_time(), time.perf_counter()
                for f in files:
                    extract(f, cfg)
                seen[arm].append(((time.process_time() - c0) * 1e3 / len(files),
                                  (time.perf_counter() - w0) * 1e3 / len(files)))
    pools = ", ".join(f"{p['internal_api']} {p['num_threads']} threads" for p in threadpool_info())
    lines = [f"{len(files)} files, {rounds} rounds, default: {pools}, load {os.getloadavg()[0]:.1f}"]
    for arm, values in seen.items():
        cpu, wall = (float(np.median([v[k] for v in values])) for k in (0, 1))
        lines.append(f"{arm}: CPU {cpu:.1f} ms/utt, wall {wall:.1f} ms/utt")
    return "\n".join(lines)


def _fit(xs, ys, x):
    a, b = np.polyfit(np.asarray(xs, float), np.asarray(ys, float), 1) if len(xs) > 1 else (ys[0] / xs[0], 0.0)
    return a * x + b


def table(rows: list[dict], fits: list[int]) -> str:
    mib = 2 ** 20
    cols = [("N", lambda r: f"{r['n']:,}".replace(",", " ")),
            ("build s", lambda r: f"{r['build_s']:.0f}"),
            ("build ms/utt", lambda r: f"{1000 * r['build_s'] / r['n']:.1f}"),
            ("build peak RSS: builder / all processes (MiB)", lambda r: f"{r['build_main'] / mib:.0f} / {r['build_tree'] / mib:.0f}"),
            ("store (MiB)", lambda r: f"{r['store'] / mib:.0f}"),
            ("disk peak / store", lambda r: f"{r['disk'] / r['store']:.2f}"),
            ("load_fold from the corpus: s", lambda r: f"{r['load_s']:.2f}"),
            ("held / peak (MiB)", lambda r: f"{r['load_held'] / mib:.0f} / {r['load_peak'] / mib:.0f}"),
            ("load_fold from the store: s", lambda r: f"{r['load_store_s']:.2f}"),
            ("held / peak (MiB) ", lambda r: f"{r['load_store_held'] / mib:.0f} / {r['load_store_peak'] / mib:.0f}"),
            ("20-step search peak RSS (MiB)", lambda r: f"{r['search_hwm'] / mib:.0f}")]
    lines = ["| " + " | ".join(c for c, _ in cols) + " |", "|" + " --- |" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(f(r) for _, f in cols) + " |")
    keys = ["build_s", "build_main", "build_tree", "store", "disk", "load_s", "load_held", "load_peak", "load_store_s",
            "load_store_held", "load_store_peak", "search_hwm"]
    for x in fits:
        fitted = {"n": x, **{k: _fit([r["n"] for r in rows], [r[k] for r in rows], x) for k in keys}}
        lines.append("| " + " | ".join(("(fit) " if c == "N" else "") + f(fitted) for c, f in cols) + " |")
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[2000, 20000])
    ap.add_argument("--fit", type=int, nargs="*", default=[60000, 150000])
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "scale_bench"))
    ap.add_argument("--generate-only", action="store_true")
    ap.add_argument("--compare-threads", type=int, default=None, metavar="FILES",
                    help="only compare the extraction's cost with one BLAS thread and the default, on FILES files "
                         "of the first size's corpus")
    ap.add_argument("--reuse-build", action="store_true",
                    help="take the build's figures from an earlier run (work/build-N.json) and its store from the cache")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    work = Path(args.work)
    if args.child:
        print(json.dumps(_child(args.child, args.n, work)))
        return
    if args.compare_threads:
        print(compare_blas_threads(write_corpus(work / f"corpus-{args.sizes[0]}", args.sizes[0]), args.compare_threads))
        return
    rows = []
    for n in args.sizes:
        t0 = time.time()
        write_corpus(work / f"corpus-{n}", n)
        print(f"corpus {n}: {time.time() - t0:.1f} s", flush=True)
        if args.generate_only:
            continue
        cache = work / f"cache-{n}"
        saved = work / f"build-{n}.json"
        if args.reuse_build and saved.is_file():  # a build measured before, its store still in the cache
            build = json.loads(saved.read_text())
        else:
            shutil.rmtree(cache, ignore_errors=True)
            build = _run_child("build", n, work, cache)
            saved.write_text(json.dumps(build))
        load = _run_child("load", n, work, cache)
        load_store = _run_child("load_store", n, work, cache)
        search = _run_child("search", n, work, cache)
        row = {"n": build["n"], "build_s": build["seconds"], "build_main": build["main_hwm"],
               "build_tree": build["tree_rss"], "store": build["store_bytes"], "disk": build["disk"],
               "load_s": load["seconds"], "load_held": load["held"], "load_peak": load["peak"],
               "load_store_s": load_store["seconds"], "load_store_held": load_store["held"],
               "load_store_peak": load_store["peak"], "search_hwm": search["hwm"],
               "raw": {"build": build, "load": load, "load_store": load_store, "search": search}}
        rows.append(row)
        print(json.dumps(row), flush=True)
    if rows:
        print(f"load average at the end: {os.getloadavg()}")
        print(table(rows, args.fit))


if __name__ == "__main__":
    main()
