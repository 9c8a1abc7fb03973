"""Choosing the hand-made baselines' training settings on training speakers only.

The paper's baselines (paper section IV-B: CNN, CNN+LSTM, CNN+LSTM-att) have no
normalisation layer; trained on raw MFCCs with the DARTS cells' SGD settings (lr 0.025,
momentum 0.9), the CNN collapses to predicting one class. Their settings are therefore
chosen, like every other choice of the study, without the test speakers: each setting of
a small grid (feature normalisation x optimiser, `GRID`) trains the baseline for the
study's number of epochs on the fold's training speakers less a held-out speaker group
and is scored on that group (protocol ``holdout``, `emodarts_core.training.protocols`).
The fold's test split is never read: the held-out group is drawn from the training
speakers, and the statistics of a ``coefficient`` normalisation come from the
speakers the network trains on (`emodarts_core.training.normalise`).

Each held-out group is a seed's (`holdout_speakers`): one group of two EmoDB speakers is a
noisy judge, so every setting is trained once per seed and judged by its mean. Each
run directory is kept under `out/<baseline>/<setting>/seed<s>/`, so an
interrupted tuning resumes where it stopped (`run_retrain(resume=True)`), and the
table (`tuning.json`, `tuning.md`) is rewritten after each run. The chosen setting of
a baseline is the one with the best held-out UA; a tie goes to the earlier one in
`GRID` (the study's shared setting comes first).

The choice holds for the fold whose training speakers made it, and for no other: in a
speaker-independent cross-validation one fold's training speakers are the other folds'
test speakers. A study that uses the settings on every fold therefore makes the choice
inside each fold (`emodarts_core.study.nested`, which calls `tune` per fold with the
profile's `nested` section); this command makes one fold's choice by hand
(results/emodb/README.md, "Baseline settings", for the second study's fold-1 choice).

    python -m emodarts_core.study.tune_baselines --dataset emodb --data-dir PATH --fold 1 \\
        --params study_emodb --out runs/tune_baselines
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

from emodarts_core.space.baselines import BASELINES

#: The settings tried for each baseline: a name and the TrainConfig fields it sets.
#: `sgd` is the study's shared setting (the DARTS cells', paper section IV-C); `adam`
#: is Adam at its customary learning rate (Kingma & Ba 2015), decaying to 1 % of it.
GRID: dict[str, dict] = {
    "sgd-none": {"optimizer": "sgd", "lr": 0.025, "lr_min": 0.001, "momentum": 0.9, "normalise": "none"},
    "sgd-utterance": {"optimizer": "sgd", "lr": 0.025, "lr_min": 0.001, "momentum": 0.9, "normalise": "utterance"},
    "sgd-coefficient": {"optimizer": "sgd", "lr": 0.025, "lr_min": 0.001, "momentum": 0.9,
                        "normalise": "coefficient"},
    "adam-none": {"optimizer": "adam", "lr": 0.001, "lr_min": 1e-5, "momentum": 0.9, "normalise": "none"},
    "adam-utterance": {"optimizer": "adam", "lr": 0.001, "lr_min": 1e-5, "momentum": 0.9, "normalise": "utterance"},
    "adam-coefficient": {"optimizer": "adam", "lr": 0.001, "lr_min": 1e-5, "momentum": 0.9,
                         "normalise": "coefficient"},
}
TABLE_JSON = "tuning.json"
TABLE_MD = "tuning.md"


def choose(scores: dict[str, float]) -> str:
    """The setting with the best held-out UA; ties go to the earlier one in `GRID` order."""
    order = [name for name in GRID if name in scores] + [n for n in scores if n not in GRID]
    return max(order, key=lambda name: (scores[name], -order.index(name)))


def tune(fold_data, net_cfg, train_cfg, out, baselines=BASELINES, grid: dict | None = None, seeds=(0,),
         progress: bool = True, command: str = "") -> dict:
    """Train every baseline under every setting of `grid` (default `GRID`) with protocol
    ``holdout`` and `train_cfg`'s other settings, once per seed of `seeds` (each seed draws
    its own held-out speaker group and initialisation), and return (and write to `out`)
    the table and the choice per baseline: the best mean held-out UA over the seeds.
    `baselines` holds baseline names, or a dict of label -> model (a baseline name or a
    genotype, e.g. random architectures of the search space). Only `fold_data.search` and
    `.train` (the training speakers) are used."""
    from emodarts_core.training.rundir import RunDir
    from emodarts_core.training.train import run_retrain

    grid = GRID if grid is None else grid
    out = Path(out)
    table = {"command": command, "grid": grid, "epochs": train_cfg.epochs, "seeds": list(seeds),
             "selection": "best mean UA on held-out groups of training speakers (protocol holdout, one group "
                          "per seed); ties: the earlier setting of the grid",
             "runs": {}, "choice": {}}
    models = baselines if isinstance(baselines, dict) else {name: name for name in baselines}
    for baseline, spec in models.items():
        scores = {}
        for name, setting in grid.items():
            runs = []
            for seed in seeds:
                cfg = dataclasses.replace(train_cfg, protocol="holdout", progress=False, seed=seed,
                                          **setting).validate()
                run_dir = out / baseline / name / f"seed{seed}"
                began = time.perf_counter()
                result = run_retrain(fold_data, spec, net_cfg, cfg, run_dir, resume=True)
                stored, epochs = RunDir(run_dir).read_json("result.json"), RunDir(run_dir).read_epochs()
                runs.append({"seed": seed, "held_out": stored.get("scored_on"), "holdout_ua": result.test_ua,
                             "one_class": stored.get("one_class"),
                             "final_train_loss": epochs[-1]["train_loss"] if epochs else None,
                             "seconds": round(sum(e["seconds"] for e in epochs), 1)})
                if progress:
                    print(f"{baseline:13s} {name:17s} seed {seed}: held-out UA {100 * result.test_ua:5.1f} % "
                          f"({stored.get('scored_on')}; {time.perf_counter() - began:.0f} s)", flush=True)
            scores[name] = float(sum(r["holdout_ua"] for r in runs) / len(runs))
            table["runs"].setdefault(baseline, {})[name] = {"mean_holdout_ua": scores[name], "runs": runs}
            _write(out, table)
        table["choice"][baseline] = {"setting": choose(scores), **grid[choose(scores)]}
        _write(out, table)
    return table


def markdown(table: dict) -> str:
    """The tuning table: mean held-out UA (%) per baseline and setting over the seeds, with
    how many runs predicted one class; the chosen one in bold."""
    names = list(table["grid"])
    lines = ["| baseline | " + " | ".join(names) + " | chosen |", "| --- |" + " --- |" * (len(names) + 1)]
    for baseline, runs in table["runs"].items():
        chosen = table["choice"].get(baseline, {}).get("setting", "")
        cells = []
        for name in names:
            r = runs.get(name)
            collapsed = sum(bool(x.get("one_class")) for x in r["runs"]) if r else 0
            text = "" if r is None else f"{100 * r['mean_holdout_ua']:.1f}" + (
                f" ({collapsed} of {len(r['runs'])} one class)" if collapsed else "")
            cells.append(f"**{text}**" if name == chosen else text)
        lines.append(f"| {baseline} | " + " | ".join(cells) + f" | {chosen} |")
    return "\n".join(lines) + "\n"


def _write(out: Path, table: dict) -> None:
    from emodarts_core.training.rundir import RunDir

    rd = RunDir(out)
    rd.atomic_write_json(TABLE_JSON, table)
    rd.atomic_write_text(TABLE_MD, markdown(table))


def main(argv: list[str] | None = None) -> int:
    """`python -m emodarts_core.study.tune_baselines ...`: tune, print the table, write it to --out."""
    import torch

    from data_prep import load_fold
    from emodarts_core.study.sweep.parameters import load_params

    parser = argparse.ArgumentParser(prog="python -m emodarts_core.study.tune_baselines",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--data-dir", default=None, help="the dataset's corpus root or feature store")
    parser.add_argument("--fold", type=int, default=1, help="whose training speakers tune (1-based)")
    parser.add_argument("--params", required=True, help="the study's parameter file (its network and train sections)")
    parser.add_argument("--out", required=True, help="folder of the tuning runs and the table")
    parser.add_argument("--baselines", nargs="*", default=list(BASELINES), choices=list(BASELINES))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                        help="one run per seed: its training seed and its held-out speaker group")
    parser.add_argument("--settings", nargs="+", default=list(GRID), choices=list(GRID),
                        help="the grid's settings to try")
    parser.add_argument("--random-architectures", type=int, default=0, metavar="N",
                        help="also try the settings on the first N random architectures of the search space (the "
                             "random control's draws for this fold and seed 0), for the searched networks' setting")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    params = load_params(args.params)
    fold = load_fold(args.dataset, args.data_dir, args.fold, seed=params.fold_seed)
    command = "python -m emodarts_core.study.tune_baselines " + " ".join(sys.argv[1:] if argv is None else argv)
    from emodarts_core.space.sampling import random_genotypes

    network = params.network_for(params.controls.scope)
    models = {name: name for name in args.baselines}
    drawn = random_genotypes(network, args.random_architectures, seed=0, fold=args.fold)
    models.update({f"random{k}": genotype for k, genotype in enumerate(drawn)})
    table = tune(fold, network, params.train, args.out, models, {name: GRID[name] for name in args.settings},
                 seeds=args.seeds, command=command)
    print(markdown(table))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
