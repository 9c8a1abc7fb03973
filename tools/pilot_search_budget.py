"""Pilot of the search's α budget on one fold's training speakers (results/emodb/README.md).

    python tools/pilot_search_budget.py --data-dir /path/to/emodb --runs lr3e-3 lr1e-2 --seeds 0 1

Searches fold `--fold`'s *search* split (training speakers only: the fold's test speakers
are checked to be absent, and nothing is retrained or scored) under each named budget of
`RUNS` and each seed, one search at a time on one thread. Every finished search adds one
row to `rows.json` in `--out` (default results/emodb/pilot/): the budget, the α diagnostics
of its last epoch per cell type (`emodarts_core.darts.diagnostics`), whether its genotype
stayed the same over the last quarter of the epochs, whether its SeqNN collapsed, its
genotype and its compute time. The run directories (checkpoints) go to `--work`, so an
interrupted pilot resumes where it stopped, and a budget whose row exists is not run again.
`--summary` prints the table of the rows with the criterion written down before the
pilot: mean lift >= 1.5 without a collapsed SeqNN, the genotype unchanged over the last
quarter, and two seeds sharing at least half their edges.

`rows.json` is one JSON object keyed by `<budget>_seed<k>`, one row per search: a whole
document, so a damaged file fails to parse instead of losing rows silently, and a row is
found by its key. The pilot's writers (one process per seed, side by side, as
results/emodb/README.md runs them) read, update and rewrite it under a file lock
(`<out>/.lock`, git-ignored), and each rewrite is atomic (`write_text_atomic`), so no
reader sees half a file and neither process loses the other's row. The pilot keeps two
files, not one per search, so that the committed results folder stays a few files per study.

`--trajectory NAME` follows a budget's two seeds epoch by epoch, from their run
directories' α histories (finished or not): the α steps taken, the share of edges their
parsed genotypes hold in common and the correlation of their op weights per cell type
(`diagnostics.alpha_correlation`). It writes them to `trajectories.csv` beside the rows,
a `budget` column first, replacing NAME's rows and keeping the other budgets', and prints
NAME's rows: how the seeds' agreement grows or shrinks as the α move.
"""

from __future__ import annotations

import argparse
import csv
import io
import itertools
import json
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from filelock import FileLock  # noqa: E402

from emodarts_core.config import SearchConfig, preset  # noqa: E402
from emodarts_core.darts import diagnostics  # noqa: E402
from emodarts_core.darts.search import run_search, seq_collapsed  # noqa: E402
from emodarts_core.space import genotypes  # noqa: E402
from emodarts_core.study.results.pack import write_text_atomic  # noqa: E402

#: The pilot's search space: the study's `small` space (C = 4, 3 CNN cells, 2 SeqNN cells x 2
#: nodes) made smaller rather than given fewer α steps: a stem stride of 4 instead of 2, 2
#: nodes per CNN cell instead of 3 and a SeqNN width of 16 instead of 32, so that a few
#: hundred α steps of two seeds fit the pilot's time on a 2-core CPU.
PILOT_NETWORK = {"stem_stride": 4, "nodes": 2, "seq_dim": 16}
#: The study's search settings that every budget shares (emodarts_core/params/study_emodb.yaml).
BASE_SEARCH = {"batch_size": 16, "order": 1, "warmup_epochs": 2, "collapse_remedy": "beta_decay",
               "beta_decay_weight": 1.0, "checkpointing": "off", "normalise": "coefficient", "device": "cpu",
               "progress": False}
#: The budgets the pilot compares: α learning rate and α steps (epochs derived, warm-up added).
RUNS = {
    "lr3e-3": {"alpha_lr": 3e-3, "alpha_steps": 300},
    "lr1e-2": {"alpha_lr": 1e-2, "alpha_steps": 300},
    "lr1e-2_raw": {"alpha_lr": 1e-2, "alpha_steps": 300, "normalise": "none"},  # unnormalised MFCCs
    "lr1e-2_darts_minus": {"alpha_lr": 1e-2, "alpha_steps": 300, "collapse_remedy": "darts_minus"},
    "lr3e-3_600": {"alpha_lr": 3e-3, "alpha_steps": 600},
    "lr1e-2_1000": {"alpha_lr": 1e-2, "alpha_steps": 1000},  # the 300-step budget's seeds shared 1/4 of edges
    # the chosen budget at larger batches: each α step sees 2x / 4x the samples (less noisy α
    # gradients, more weight training per α step) at 1.3x / 1.6x the cost of a step
    "lr1e-2_b32": {"alpha_lr": 1e-2, "alpha_steps": 300, "batch_size": 32},
    "lr1e-2_b64": {"alpha_lr": 1e-2, "alpha_steps": 300, "batch_size": 64},
}
MIN_LIFT, MIN_SEED_AGREEMENT = 1.5, 0.5
#: The pilot's two files in `--out`: every search's row, and every budget's trajectory.
ROWS, TRAJECTORIES = "rows.json", "trajectories.csv"


class PilotFileError(ValueError):
    """A pilot file in `--out` that cannot be read; the message names it."""


def row_key(name: str, seed: int) -> str:
    return f"{name}_seed{seed}"


def read_rows(out: Path) -> dict[str, dict]:
    """The rows in `out`/rows.json by key (none if the file is absent); a file that is not a
    JSON object of rows is an error naming it, never read as no rows (that would rerun them)."""
    path = out / ROWS
    if not path.is_file():
        return {}
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise PilotFileError(f"{path} is not valid JSON ({err}): mend or remove it; its rows are not rerun") from None
    if not isinstance(rows, dict) or not all(isinstance(r, dict) for r in rows.values()):
        raise PilotFileError(f"{path} is not a JSON object of rows keyed by <budget>_seed<k>")
    return rows


def add_row(out: Path, row: dict) -> None:
    """Add (or replace) `row` in `out`/rows.json under the lock, keys in sorted order."""
    out.mkdir(parents=True, exist_ok=True)
    with FileLock(str(out / ".lock")):
        rows = {**read_rows(out), row_key(row["run"], row["seed"]): row}
        write_text_atomic(out / ROWS, json.dumps(dict(sorted(rows.items())), indent=1) + "\n")


def csv_text(rows: list[dict], fields: list[str], lineterminator: str = "\r\n") -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, restval="", lineterminator=lineterminator)
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def read_trajectories(out: Path) -> list[dict]:
    """Every budget's trajectory rows in `out`/trajectories.csv, values as written (strings)."""
    path = out / TRAJECTORIES
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def write_trajectory(out: Path, name: str, rows: list[dict]) -> None:
    """Replace budget `name`'s rows in `out`/trajectories.csv with `rows`, keeping the other
    budgets' rows as written; budgets in sorted order, each budget's rows in its own order,
    the columns the union of all budgets' (a column a budget lacks is empty)."""
    out.mkdir(parents=True, exist_ok=True)
    with FileLock(str(out / ".lock")):
        kept = [r for r in read_trajectories(out) if r["budget"] != name]
        merged = sorted(kept + [{"budget": name, **r} for r in rows], key=lambda r: r["budget"])
        fields = list(dict.fromkeys(k for r in merged for k in r))
        write_text_atomic(out / TRAJECTORIES, csv_text(merged, fields))


def search_config(name: str, seed: int) -> SearchConfig:
    return SearchConfig(**{**BASE_SEARCH, "epochs": None, **RUNS[name], "seed": seed})


def run_one(fold, name: str, seed: int, work: Path, out: Path) -> dict:
    done = read_rows(out).get(row_key(name, seed))
    if done is not None:
        return done
    cfg, net = search_config(name, seed), preset("small", **PILOT_NETWORK)
    began = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = run_search(fold, net, cfg, work / f"{name}_seed{seed}", resume=True)
    last = result.history[-1]
    finished = json.loads((result.run_dir / "FINISHED").read_text())
    row = {"run": name, "seed": seed, "fold": fold.fold.index, "alpha_lr": cfg.alpha_lr,
           "requested_alpha_steps": cfg.alpha_steps, "alpha_steps": last["alpha_updates"],
           "epochs": len(result.history), "warmup_epochs": cfg.warmup_epochs, "batch_size": cfg.batch_size,
           "collapse_remedy": cfg.collapse_remedy, "normalise": cfg.normalise, "network": {"preset": "small", **PILOT_NETWORK},
           "lift": last["lift"], "mean_lift": diagnostics.mean_lift(last["lift"]), "entropy": last["entropy"],
           "margin": last["margin"], "genotype_settled": finished["verdict"]["genotype_settled"],
           "seq_collapsed": seq_collapsed(result.genotype), "genotype": result.genotype.to_dict(),
           "val_ua": last["val_ua"], "compute_s": round(sum(r["seconds"] for r in result.history), 1),
           "wall_s_this_call": round(time.perf_counter() - began, 1)}
    add_row(out, row)
    return row


def trajectory(name: str, seeds, work: Path, out: Path, every: int = 4) -> list[dict]:
    """The two seeds' agreement over the epochs of budget `name` (see the module's docstring),
    written to `out`/trajectories.csv as that budget's rows, and returned."""
    runs = [work / f"{name}_seed{s}" for s in seeds[:2]]
    if len(runs) < 2 or not all((r / "alpha_history.json").is_file() for r in runs):
        raise SystemExit(f"--trajectory needs the α histories of two seeds in {work}/{name}_seed*/")
    hist = [json.loads((r / "alpha_history.json").read_text())["epochs"] for r in runs]
    steps = [[json.loads(line)["alpha_updates"] for line in (r / "metrics.jsonl").read_text().splitlines() if line]
             for r in runs]
    n = min(len(h) for h in hist)
    rows = []
    for i in sorted({*range(0, n, every), n - 1}):
        a, b = hist[0][i], hist[1][i]
        row = {"epoch": a["epoch"], "alpha_steps": steps[0][i] if i < len(steps[0]) else "",
               "shared_all": round(diagnostics.agreement(a["genotype"], b["genotype"]), 3)}
        for kind in diagnostics.CELL_KINDS:
            row[f"shared_{kind}"] = round(diagnostics.agreement(a["genotype"], b["genotype"], kind), 3)
            corr = diagnostics.alpha_correlation(a["probs"][kind], b["probs"][kind])
            row[f"alpha_corr_{kind}"] = "" if corr is None else round(corr, 3)
        row.update({f"mean_lift_seed{s}": round(diagnostics.mean_lift(h[i]["lift"]), 3) for s, h in zip(seeds, hist)})
        rows.append(row)
    write_trajectory(out, name, rows)
    return rows


def summary(out: Path) -> str:
    """The pilot's table: one line per budget, both seeds, and the criterion (rows in key order)."""
    rows = [row for _, row in sorted(read_rows(out).items())]
    by_run: dict[str, list[dict]] = {}
    for row in rows:
        by_run.setdefault(row["run"], []).append(row)
    lines = ["| budget | α lr | α steps (epochs) | remedy | seed | lift normal / reduce / seq | mean lift | "
             "entropy seq | settled (last quarter) | SeqNN collapsed | seeds' edges shared | criterion | compute |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, group in by_run.items():
        pairs = [diagnostics.agreement(a["genotype"], b["genotype"]) for a, b in itertools.combinations(group, 2)]
        shared = sum(pairs) / len(pairs) if pairs else None
        passed = (len(group) >= 2 and shared >= MIN_SEED_AGREEMENT
                  and all(r["mean_lift"] >= MIN_LIFT and r["genotype_settled"] and not r["seq_collapsed"]
                          for r in group))
        for row in group:
            lift = " / ".join(f"{row['lift'].get(k, float('nan')):.2f}" for k in ("normal", "reduce", "seq"))
            lines.append(f"| {name} | {row['alpha_lr']:g} | {row['alpha_steps']} ({row['epochs']}) | "
                         f"{row['collapse_remedy']} | {row['seed']} | {lift} | {row['mean_lift']:.2f} | "
                         f"{row['entropy'].get('seq', float('nan')):.3f} | {row['genotype_settled']} | "
                         f"{row['seq_collapsed']} | {'' if shared is None else f'{shared:.2f}'} | "
                         f"{'pass' if passed else 'fail'} | {row['compute_s'] / 60:.1f} min |")
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=None, help="EmoDB corpus root or feature store (default: the registry)")
    ap.add_argument("--fold", type=int, default=1)
    ap.add_argument("--fold-seed", type=int, default=0, help="the 70/30 search/training split's seed (the study's)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--runs", nargs="+", default=list(RUNS), choices=list(RUNS))
    ap.add_argument("--out", type=Path, default=Path("results/emodb/pilot"),
                    help="the folder of rows.json and trajectories.csv")
    ap.add_argument("--work", type=Path, default=Path("runs/pilot_search_budget"))
    ap.add_argument("--max-minutes", type=float, default=45.0, help="start no new search after this long")
    ap.add_argument("--summary", action="store_true", help="print the table of the rows in --out and stop")
    ap.add_argument("--trajectory", metavar="NAME", choices=list(RUNS),
                    help="write the two seeds' agreement over the epochs of budget NAME and stop")
    args = ap.parse_args(argv)
    try:
        run_pilot(args)
    except PilotFileError as err:
        raise SystemExit(f"error: {err}") from None


def run_pilot(args) -> None:
    if args.summary:
        print(summary(args.out))
        return
    if args.trajectory:
        rows = trajectory(args.trajectory, args.seeds, args.work, args.out)
        print(csv_text(rows, list(rows[0]), lineterminator="\n"))
        return
    torch.set_num_threads(1)
    from data_prep import load_fold

    fold = load_fold("emodb", args.data_dir, args.fold, seed=args.fold_seed)
    leaked = set(fold.search.speakers) & set(fold.fold.test_speakers)
    if leaked:
        raise SystemExit(f"test speakers {sorted(leaked)} in the search split of fold {args.fold}: refusing to run")
    began = time.perf_counter()
    for name in args.runs:
        for seed in args.seeds:
            if (time.perf_counter() - began) / 60 > args.max_minutes:
                print(f"stopping: {args.max_minutes} min spent; rerun to continue")
                print(summary(args.out))
                return
            row = run_one(fold, name, seed, args.work, args.out)
            print(f"{name} seed {seed}: mean lift {row['mean_lift']:.2f} {row['lift']}, settled "
                  f"{row['genotype_settled']}, SeqNN collapsed {row['seq_collapsed']}, {row['compute_s']:.0f} s",
                  flush=True)
    print(summary(args.out))


if __name__ == "__main__":
    main()
