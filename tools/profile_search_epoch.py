"""Where a search epoch's time goes at a parameter profile's settings (docs/PERFORMANCE.md).

    python tools/profile_search_epoch.py --params study_emodb_v2 --data-dir /path/to/emodb

The bench (`python -m emodarts_core.bench --params NAME`) times the search step alone. A
search epoch also loads its batches, scores the α-validation half at its end, parses the
genotype, computes the α diagnostics, and writes its checkpoint, its line of
metrics.jsonl, alpha_history.json and TensorBoard's scalars. This tool runs the real
`run_search` on fold `--fold`'s search split (training speakers only) for a few epochs, one
thread, into a scratch run directory, and times each of those parts by wrapping the
functions `emodarts_core.darts.search` calls; nothing in the search changes. The first
`--warmup` epochs update the weights only, the rest take α steps too, as in the study.

It prints one row per part: seconds in all, per epoch, and share of the run's wall time.
"batches" is the time spent waiting on the two training loaders; "setup" is what the run
spent outside its epochs (building the network, the loaders, the normaliser).

    python tools/profile_search_epoch.py --params study_emodb_v2 --data-dir PATH --eval-batch-sizes 16 64

compares evaluation batches (`SearchConfig.eval_batch_size`) in one process instead: the
same search runs once per size and round, the sizes' order alternating from round to
round, and it prints per size the median seconds per epoch of the evaluation and of the
whole run, and each against the first size's.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
import warnings
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

#: The label of the end-of-epoch evaluation, the part `compare_eval_batches` reads.
EVALUATION = "end-of-epoch evaluation"
#: The parts timed, in the order printed; each is (label, module or class, attribute).
PARTS = (
    ("α step (Architect.step)", "emodarts_core.darts.architect:Architect", "step"),
    ("weight step", "emodarts_core.darts.search_steps", "weight_step"),
    ("moving batches (to_device)", "emodarts_core.darts.search_steps", "to_device"),
    (EVALUATION, "emodarts_core.darts.search_steps", "end_epoch"),
    ("genotype parse (chosen_genotype)", "emodarts_core.darts.alpha_record", "chosen_genotype"),
    ("α diagnostics", "emodarts_core.darts.alpha_record", "epoch_diagnostics"),
    ("checkpoint write", "emodarts_core.training.rundir:RunDir", "save_checkpoint"),
    ("metrics.jsonl line", "emodarts_core.training.rundir:RunDir", "append_epoch"),
    ("JSON writes (alpha_history.json, ...)", "emodarts_core.training.rundir:RunDir", "atomic_write_json"),
    ("TensorBoard scalars", "emodarts_core.training.tblog:RunLog", "search_epoch"),
)


def _owner(spec: str):
    import importlib

    module, _, cls = spec.partition(":")
    owner = importlib.import_module(module)
    return getattr(owner, cls) if cls else owner


def _timed(function, label: str, totals: dict):
    def wrapper(*args, **kwargs):
        began = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            totals[label] += time.perf_counter() - began
    return wrapper


class _TimedLoader:
    """A loader whose waits for the next batch add to `totals["batches"]`."""

    def __init__(self, loader, totals: dict):
        self.loader, self.totals = loader, totals

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        iterator = iter(self.loader)
        while True:
            began = time.perf_counter()
            try:
                batch = next(iterator)
            except StopIteration:
                return
            finally:
                self.totals["batches"] += time.perf_counter() - began
            yield batch


def profile(fold, params, epochs: int, warmup: int, work: Path,
            eval_batch_size: int | None = None) -> tuple[dict, float, int]:
    """Run the search with every part of `PARTS` timed; returns (seconds per part, wall
    seconds of the whole run, epochs run). `eval_batch_size` overrides the profile's."""
    from emodarts_core.darts import search as search_module
    from emodarts_core.darts import search_steps

    totals: dict[str, float] = defaultdict(float)
    saved = []
    for label, spec, name in PARTS:
        owner = _owner(spec)
        saved.append((owner, name, getattr(owner, name)))
        setattr(owner, name, _timed(getattr(owner, name), label, totals))
    make_loader = search_steps.make_loader
    made = []

    def timed_make_loader(*args, **kwargs):  # the first two are the training loaders; the third is end_epoch's
        loader = make_loader(*args, **kwargs)
        made.append(loader)
        return _TimedLoader(loader, totals) if len(made) <= 2 else loader

    saved.append((search_steps, "make_loader", make_loader))
    search_steps.make_loader = timed_make_loader
    cfg = dataclasses.replace(params.search, epochs=epochs, alpha_steps=None, warmup_epochs=warmup, progress=False,
                              device="cpu", seed=0)
    if eval_batch_size is not None:
        cfg = dataclasses.replace(cfg, eval_batch_size=eval_batch_size)
    try:
        began = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the α of a few epochs have barely moved: that is expected here
            result = search_module.run_search(fold, params.network_for("emodarts"), cfg, work / "search")
        wall = time.perf_counter() - began
    finally:
        for owner, name, original in saved:
            setattr(owner, name, original)
    return dict(totals), wall, len(result.history)


def table(totals: dict, wall: float, n_epochs: int) -> str:
    rows = [(label, totals.get(label, 0.0)) for label, _, _ in PARTS]
    rows.insert(3, ("batches (loader waits)", totals.get("batches", 0.0)))
    accounted = sum(seconds for _, seconds in rows)
    rows.append(("setup and the rest", wall - accounted))
    lines = [f"{'part':<40} {'s in all':>9} {'s/epoch':>8} {'share':>6}"]
    for label, seconds in rows:
        lines.append(f"{label:<40} {seconds:9.2f} {seconds / n_epochs:8.3f} {seconds / wall:6.1%}")
    lines.append(f"{'run wall time':<40} {wall:9.2f} {wall / n_epochs:8.3f} {1:6.1%}")
    return "\n".join(lines)


def compare_eval_batches(fold, params, sizes: list[int], rounds: int, epochs: int, warmup: int,
                         work: Path) -> dict[int, list[tuple[float, float]]]:
    """Per evaluation batch size, one (evaluation s/epoch, run wall s/epoch) per round; the
    sizes run in alternating order from round to round, all in this process."""
    out: dict[int, list[tuple[float, float]]] = {size: [] for size in sizes}
    for r in range(rounds):
        for size in (sizes if r % 2 == 0 else sizes[::-1]):
            totals, wall, n_epochs = profile(fold, params, epochs, warmup, work / f"round{r}_eval{size}", size)
            out[size].append((totals.get(EVALUATION, 0.0) / n_epochs, wall / n_epochs))
    return out


def comparison_table(measured: dict[int, list[tuple[float, float]]]) -> str:
    """Median evaluation and run seconds per epoch per size, and their ratio to the first size's."""
    from statistics import median

    medians = {size: (median(e for e, _ in rows), median(w for _, w in rows)) for size, rows in measured.items()}
    first_eval, first_wall = next(iter(medians.values()))
    lines = [f"{'eval batch':>10} {'rounds':>6} {'eval s/epoch':>12} {'vs first':>8} {'run s/epoch':>11} {'vs first':>8}"]
    for size, (ev, wall) in medians.items():
        lines.append(f"{size:>10} {len(measured[size]):>6} {ev:12.3f} {ev / first_eval:8.2f} {wall:11.3f} "
                     f"{wall / first_wall:8.2f}")
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="study_emodb_v2", help="a parameter profile (emodarts_core/params)")
    ap.add_argument("--data-dir", default=None, help="EmoDB corpus root or feature store (default: the registry)")
    ap.add_argument("--dataset", default="emodb")
    ap.add_argument("--fold", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=5, help="epochs to run (default 5)")
    ap.add_argument("--warmup", type=int, default=1, help="of which weight-only epochs (default 1)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--eval-batch-sizes", type=int, nargs="+", default=None, metavar="N",
                    help="compare these evaluation batch sizes in one process instead of profiling the parts")
    ap.add_argument("--rounds", type=int, default=2, help="rounds of the comparison (default 2)")
    args = ap.parse_args(argv)
    if not 0 <= args.warmup < args.epochs:
        raise SystemExit(f"--warmup must be in [0, --epochs): got {args.warmup} of {args.epochs}")
    torch.set_num_threads(args.threads)
    from data_prep import load_fold
    from emodarts_core.study.sweep.parameters import load_params

    params = load_params(args.params)
    fold = load_fold(args.dataset, args.data_dir, args.fold, seed=params.fold_seed)
    with tempfile.TemporaryDirectory(prefix="profile_search_epoch_") as work:  # nothing of it is kept
        if args.eval_batch_sizes:
            measured = compare_eval_batches(fold, params, args.eval_batch_sizes, args.rounds, args.epochs,
                                            args.warmup, Path(work))
            print(f"{args.params}, {args.dataset} fold {args.fold}: {args.epochs} epochs ({args.warmup} "
                  f"weight-only) per run, {args.threads} thread(s), {args.rounds} rounds")
            print(comparison_table(measured))
            return
        totals, wall, n_epochs = profile(fold, params, args.epochs, args.warmup, Path(work))
    print(f"{args.params}, {args.dataset} fold {args.fold}: {n_epochs} epochs ({args.warmup} weight-only), "
          f"{args.threads} thread(s)")
    print(table(totals, wall, n_epochs))


if __name__ == "__main__":
    main()
