"""Whole search epochs, K searches one after another against the same K stacked (docs/PERFORMANCE.md).

    python tools/time_stacked_search.py --params study_emodb_v3 --data-dir /path/to/emodb -K 8 --epochs 3

The bench (`python -m emodarts_core.bench --stack K`) times one search step of a stack
against K single steps. A search epoch does more: it loads its batches, scores the
α-validation half, computes the α diagnostics, and writes each run's checkpoint and
records. This tool runs the real searches on fold `--fold`'s search split (training
speakers only) with the profile's search settings and `--epochs` epochs (the first
`warmup_epochs` of the profile update the weights only, the rest take α steps too):

- `separate`: seeds 0..K-1 by `darts.search.run_search`, one after another, in one process;
- `stacked`: the same K searches by `darts.stacked.run_stacked_search`, in one process;
- `single`: seed 0 alone by `run_search`, in a process of its own: what one search of the
  sweep (one search per worker process) holds in memory.

Each arm runs in a fresh subprocess on `--threads` threads, into a scratch folder, and
the arms alternate over `--rounds` (separate, stacked; then stacked, separate; ...), so
that both meet the same machine. Per arm it reports the wall and CPU seconds of the
process's searches, each epoch's seconds as the runs record them (their epoch records), and the
process's peak resident size (`ru_maxrss`, which includes torch itself). It prints a
table and, with `--json FILE`, writes every measurement there.

The per-search throughput is K / wall of the stacked arm against K / wall of the separate
arm; the memory per search is the stacked process's peak / K against the single search's
process's peak.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ARMS = ("separate", "stacked", "single")


def epoch_seconds(run_dir: Path) -> list[float]:
    """The seconds of each epoch as the run recorded them (its epoch records' `seconds`)."""
    from emodarts_core.training.rundir import RunDir

    return [record["seconds"] for record in RunDir(run_dir).read_epochs()]


def run_arm(arm: str, args) -> dict:
    """Run one arm's searches in this process and measure them."""
    import torch

    from data_prep import load_fold
    from emodarts_core.darts.search import run_search
    from emodarts_core.darts.stacked import run_stacked_search
    from emodarts_core.study.sweep.parameters import load_params

    torch.set_num_threads(args.threads)
    params = load_params(args.params)
    fold = load_fold(args.dataset, args.data_dir, args.fold, seed=params.fold_seed)
    net_cfg = params.network_for("emodarts")
    # the budget as epochs (the profile may give it as α steps): the same epochs in both arms
    base = dataclasses.replace(params.search, epochs=args.epochs, alpha_steps=None, progress=False, device="cpu")
    seeds = [0] if arm == "single" else list(range(args.K))
    cfgs = [dataclasses.replace(base, seed=s) for s in seeds]
    with tempfile.TemporaryDirectory(prefix="stacked-epochs-") as scratch, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a few epochs barely move α: the budget warning is expected
        dirs = [Path(scratch) / f"seed{s}" for s in seeds]
        wall, cpu = time.perf_counter(), time.process_time()
        if arm == "stacked":
            outcomes = run_stacked_search(fold, net_cfg, cfgs, dirs)
            failed = [str(o) for o in outcomes if isinstance(o, Exception)]
            if failed:
                raise RuntimeError(f"stacked searches failed: {failed}")
        else:
            for cfg, run_dir in zip(cfgs, dirs):
                run_search(fold, net_cfg, cfg, run_dir)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        epochs = [epoch_seconds(d) for d in dirs]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: kilobytes
    return {"arm": arm, "searches": len(seeds), "wall_s": wall, "cpu_s": cpu, "epoch_seconds": epochs,
            "peak_rss_bytes": peak, "threads": args.threads, "load_1min": os.getloadavg()[0]}


def _subprocesses(arm: str, argv: list[str], processes: int) -> dict:
    """Run `processes` copies of one arm side by side (each its own searches, as the sweep's
    workers run theirs) and merge their measurements: wall time from the first start to
    the last end, the other quantities summed or listed per process."""
    env = {**os.environ, "OMP_NUM_THREADS": argv[argv.index("--threads") + 1]}
    began = time.perf_counter()
    running = [subprocess.Popen([sys.executable, __file__, "--arm", arm, *argv], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env) for _ in range(processes)]
    rows = []
    for proc in running:
        out, err = proc.communicate()
        if proc.returncode:
            raise SystemExit(f"the {arm} arm failed:\n{err[-3000:]}")
        rows.append(json.loads(out.strip().splitlines()[-1]))
    wall = time.perf_counter() - began
    return {**rows[0], "processes": processes, "searches": sum(r["searches"] for r in rows),
            "wall_s": wall if processes > 1 else rows[0]["wall_s"], "cpu_s": sum(r["cpu_s"] for r in rows),
            "epoch_seconds": [e for r in rows for e in r["epoch_seconds"]],
            "peak_rss_bytes": max(r["peak_rss_bytes"] for r in rows), "per_process": rows}


def summary(rows: list[dict], K: int) -> dict:
    """Medians over rounds: per-search throughput ratio, per-epoch seconds per search, memory per search."""
    def med(arm, f):
        values = [f(r) for r in rows if r["arm"] == arm]
        return statistics.median(values) if values else float("nan")

    def per_epoch(r):  # seconds of epoch i summed over the arm's searches (a stack's once), per search
        procs = r.get("per_process", [r])
        runs = [e for p in procs for e in (p["epoch_seconds"] if r["arm"] == "separate" else p["epoch_seconds"][:1])]
        return statistics.median(sum(e[i] for e in runs) for i in range(len(runs[0]))) / r["searches"]

    out = {"K": K,
           "wall_s": {a: med(a, lambda r: r["wall_s"]) for a in ARMS},
           "per_search_throughput_ratio": med("separate", lambda r: r["wall_s"]) / med("stacked", lambda r: r["wall_s"]),
           "epoch_s_per_search": {a: med(a, per_epoch) for a in ("separate", "stacked")},
           "peak_rss_mb": {a: med(a, lambda r: r["peak_rss_bytes"]) / 2**20 for a in ARMS},
           "memory_per_search_mb": {"stacked": med("stacked", lambda r: r["peak_rss_bytes"]) / K / 2**20,
                                    "single": med("single", lambda r: r["peak_rss_bytes"]) / 2**20}}
    return out


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="study_emodb_v3")
    parser.add_argument("--dataset", default="emodb")
    parser.add_argument("--data-dir", default=None, help="the corpus or its store (default: the registry's)")
    parser.add_argument("--fold", type=int, default=1)
    parser.add_argument("-K", type=int, default=8, help="searches (seeds 0..K-1)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--processes", type=int, default=1,
                        help="processes per arm side by side, each running K searches (2: both cores, as the "
                             "sweep's two workers use them)")
    parser.add_argument("--json", default=None, help="write every measurement to this file")
    parser.add_argument("--arm", choices=ARMS, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.arm:  # a subprocess: one arm, its measurement as the last line of stdout
        print(json.dumps(run_arm(args.arm, args)))
        return 0
    child = list(argv)
    if "--threads" not in child:
        child += ["--threads", str(args.threads)]
    rows = []
    for r in range(args.rounds):
        for arm in (("separate", "stacked") if r % 2 == 0 else ("stacked", "separate")):
            rows.append(_subprocesses(arm, child, args.processes))
            print(f"round {r + 1} {arm:9s}: {rows[-1]['wall_s']:.1f} s wall, {rows[-1]['cpu_s']:.1f} s CPU, peak "
                  f"{rows[-1]['peak_rss_bytes'] / 2**20:.0f} MB (load {rows[-1]['load_1min']:.1f})", flush=True)
    rows.append(_subprocesses("single", child, 1))
    print(f"single search: {rows[-1]['wall_s']:.1f} s wall, peak {rows[-1]['peak_rss_bytes'] / 2**20:.0f} MB", flush=True)
    result = summary(rows, args.K)
    print(json.dumps(result, indent=1))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"args": vars(args), "rows": rows, "summary": result}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
