"""Settings chosen inside each fold, from that fold's training speakers only (nested choices).

A setting chosen once on one fold's training speakers and used on every fold is chosen with
the other folds' test speakers: in a speaker-independent cross-validation the training
speakers of fold 1 are the test speakers of the others. So every setting that a model of
the study uses is chosen per fold, by inner speaker groups drawn from that fold's training
speakers (`protocols.holdout_speakers`, one group per seed of `NestedConfig.groups`): a
setting trains on the training speakers less a group and is judged by its UA on the group
(protocol ``holdout``, `tune_baselines.tune`), and the best mean over the groups wins. The
fold's test split is never read.

What is chosen per fold (results/emodb/README.md, "Design"):

- each network baseline's optimiser and feature normalisation (`tune_baselines.GRID`);
- the search space's feature normalisation, used by the search and by every network of
  the space (searched, prior, random, random search): judged on the first
  `random_architectures` architectures of a stream of its own (`random_genotype`), the
  normalisation with the best mean held-out UA over architectures and groups;
- the classic baselines' family, kernel, C and MFCC coefficients are chosen inside each
  run by leave-one-speaker-out (`emodarts_core.training.classic`);
- the α budget is not chosen: it is fixed by the rule of `ALPHA_BUDGET_RULE`.

`fold_choices` computes a fold's choices once, under a file lock (the sweep's tasks of one
fold wait for the first), in `<results>/<dataset>/nested/fold<k>/`: the tuning runs, which
resume, and `choices.json` with the choices and their provenance: which speakers trained,
which judged, and the fold's test speakers, which must be neither (`check_provenance`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emodarts_core.config import NORMALISATIONS, ConfigError

from .tune_baselines import GRID

CHOICES = "choices.json"
NESTED_DIR = "nested"
#: The stream of the architectures that judge the search space's normalisation, apart from
#: the random control's and the random search's (`emodarts_core.space.sampling.STREAMS`).
NESTED_STREAM = 0x4E57
#: How the α budget is set: by a rule, not by data (results/emodb/README.md, "Design").
ALPHA_BUDGET_RULE = ("fixed by rule, not chosen on any data: alpha_steps x alpha_lr = 3, the largest distance an "
                     "Adam step of size alpha_lr can move a logit over the budget (a factor e^3 of about 20 between "
                     "two ops' weights), so that the α can move from uniform to a clear choice")


@dataclass
class NestedConfig:
    """What a fold chooses on its training speakers (the profile's `nested` section)."""

    groups: tuple[int, ...] = (0, 1, 2)  # seeds of the inner held-out speaker groups
    baselines: tuple[str, ...] = ("cnn", "cnn_lstm", "cnn_lstm_att")  # network baselines whose settings are chosen
    settings: tuple[str, ...] = tuple(GRID)  # tune_baselines.GRID names tried for each of them
    search_normalise: tuple[str, ...] = ("coefficient", "utterance", "none")  # ties: the earlier
    random_architectures: int = 3  # architectures of the space that judge its normalisation

    def validate(self) -> "NestedConfig":
        from emodarts_core.space.baselines import BASELINES

        for name, values, valid in (("baselines", self.baselines, BASELINES), ("settings", self.settings, GRID),
                                    ("search_normalise", self.search_normalise, NORMALISATIONS)):
            values = tuple(values)
            if not values or len(set(values)) != len(values) or any(v not in valid for v in values):
                raise ConfigError(f"nested.{name} must list distinct values of {', '.join(valid)}, got {values!r}")
            setattr(self, name, values)
        groups = tuple(self.groups)
        if not groups or len(set(groups)) != len(groups) or not all(
                isinstance(g, int) and not isinstance(g, bool) and g >= 0 for g in groups):
            raise ConfigError(f"nested.groups must list distinct integers >= 0, got {self.groups!r}")
        self.groups = groups
        if not isinstance(self.random_architectures, int) or isinstance(self.random_architectures, bool) \
                or self.random_architectures < 1:
            raise ConfigError(f"nested.random_architectures must be a positive integer, got "
                              f"{self.random_architectures!r}")
        return self


def choices_dir(results_dir, dataset: str, fold: int) -> Path:
    """Where a fold's nested choices and their tuning runs live."""
    return Path(results_dir) / dataset / NESTED_DIR / f"fold{fold}"


def provenance(fold_data, groups) -> dict:
    """Which speakers a fold's choices came from: the training speakers (trained on), the
    inner groups (judged by) and the fold's test speakers (neither)."""
    from emodarts_core.training.protocols import holdout_speakers, training_speakers_split

    training = sorted({str(s) for s in training_speakers_split(fold_data).speakers})
    inner = [holdout_speakers(training, g) for g in groups]
    return {"trained_on": training, "judged_by": sorted({s for group in inner for s in group}),
            "groups": {str(g): group for g, group in zip(groups, inner)},
            "distinct_groups": len({tuple(group) for group in inner}),
            "test_speakers": sorted({str(s) for s in fold_data.test.speakers}),
            "how": "protocol holdout: train on the training speakers less a group, judge by UA on the group; the "
                   "best mean over the groups wins"}


class NestedGroupsWarning(UserWarning):
    """Two seeds of `NestedConfig.groups` drew the same inner group."""


def warn_coinciding_groups(record: dict, where="") -> None:
    """Warn where two of a fold's inner groups are the same speakers: the choice is then
    judged on fewer distinct groups than the profile lists, one of them counted more than
    once. `holdout_speakers` draws a group by seed from the sorted speakers, so two seeds
    can coincide (with 8 training speakers in pairs, seeds 1 and 2 both draw the first two)."""
    import warnings

    groups = record.get("groups") or {}
    seen: dict[tuple, str] = {}
    for seed, group in groups.items():
        key = tuple(group)
        if key in seen:
            warnings.warn(f"{where}: nested.groups seeds {seen[key]} and {seed} draw the same inner group "
                          f"({' + '.join(group)}): the choices are judged on {len(set(map(tuple, groups.values())))} "
                          f"distinct groups of {len(groups)}, one counted twice; choose other seeds",
                          NestedGroupsWarning, stacklevel=2)
        seen.setdefault(key, seed)


def check_provenance(record: dict, where="") -> None:
    """Refuse a record in which a speaker that informed a choice is a test speaker of its fold."""
    test = set(record.get("test_speakers") or [])
    if not test:
        raise ConfigError(f"{where}: a choice's provenance names no test speakers to check against")
    for key in ("trained_on", "judged_by"):
        leaked = sorted(test & set(record.get(key) or []))
        if leaked:
            raise ConfigError(f"{where}: test speaker(s) {', '.join(leaked)} of the fold informed a choice ({key})")


def _search_space_architectures(network, n: int, fold: int) -> dict:
    from emodarts_core.space.sampling import random_genotype

    return {f"arch{k}": random_genotype(network, np.random.default_rng([NESTED_STREAM, fold, k])) for k in range(n)}


def choose_fold(fold_data, params, cfg: NestedConfig, out, fold: int, progress: bool = False) -> dict:
    """Choose a fold's settings on its training speakers (module docstring) and write
    `choices.json` to `out`; the tuning runs go under `out` and resume."""
    from emodarts_core.training.rundir import RunDir

    from .tune_baselines import tune

    cfg, out = cfg.validate(), Path(out)
    record = provenance(fold_data, cfg.groups)
    warn_coinciding_groups(record, out / CHOICES)
    train = dataclasses.replace(params.train, progress=False)
    grid = {name: GRID[name] for name in cfg.settings}
    table = tune(fold_data, params.network, train, out / "baselines", {b: b for b in cfg.baselines}, grid,
                 seeds=cfg.groups, progress=progress)
    network = params.network_for(params.controls.scope)
    norm_grid = {n: {"normalise": n} for n in cfg.search_normalise}
    space = tune(fold_data, network, train, out / "search_space",
                 _search_space_architectures(network, cfg.random_architectures, fold), norm_grid, seeds=cfg.groups,
                 progress=progress)
    scores = {n: float(np.mean([runs[n]["mean_holdout_ua"] for runs in space["runs"].values()]))
              for n in cfg.search_normalise}
    normalise = max(cfg.search_normalise, key=lambda n: (scores[n], -cfg.search_normalise.index(n)))
    choices = {"fold": fold, "baselines": table["choice"],
               "baseline_scores": {b: {s: r["mean_holdout_ua"] for s, r in runs.items()}
                                   for b, runs in table["runs"].items()},
               "search_space": {"normalise": normalise, "mean_holdout_ua": scores,
                                "architectures": sorted(space["runs"])},
               "alpha_budget": {"alpha_steps": params.search.alpha_steps, "alpha_lr": params.search.alpha_lr,
                                "how": ALPHA_BUDGET_RULE},
               "classic": "chosen inside each run by leave-one-speaker-out (its result.json, choice)",
               "provenance": record, "nested": dataclasses.asdict(cfg)}
    check_provenance(record, out / CHOICES)
    RunDir(out).atomic_write_json(CHOICES, choices)
    return choices


def fold_choices(results_dir, dataset: str, fold: int, fold_data, params, progress: bool = False) -> dict:
    """A fold's nested choices: read from `choices_dir` when made with the same `nested`
    settings, else made now (`choose_fold`) under a file lock, so that concurrent tasks of
    a fold compute them once."""
    import json

    from filelock import FileLock

    cfg = params.nested_config()
    out = choices_dir(results_dir, dataset, fold)
    out.mkdir(parents=True, exist_ok=True)
    with FileLock(str(out / ".lock")):
        path = out / CHOICES
        if path.is_file():
            stored = json.loads(path.read_text(encoding="utf-8"))
            if stored.get("nested") == json.loads(json.dumps(dataclasses.asdict(cfg))):
                check_provenance(stored.get("provenance") or {}, path)
                return stored
        return choose_fold(fold_data, params, cfg, out, fold, progress)


def apply_choices(choices: dict, kind: str, name: str, search, train):
    """The search and training settings of a task under its fold's choices: a network
    baseline gets its chosen optimiser and normalisation, every network of the search
    space the space's normalisation; the classic baselines choose inside their runs."""
    from emodarts_core.study.sweep.parameters import LINEAR_BASELINES

    if kind == "baseline":
        if name in LINEAR_BASELINES:
            return search, train
        if name not in choices["baselines"]:
            raise ConfigError(f"fold {choices.get('fold')}'s nested choices hold no setting for baseline {name!r}; "
                              f"add it to nested.baselines")
        fields = {k: v for k, v in choices["baselines"][name].items() if k != "setting"}
        return search, dataclasses.replace(train, **fields).validate()
    normalise = choices["search_space"]["normalise"]
    return dataclasses.replace(search, normalise=normalise), dataclasses.replace(train, normalise=normalise)


def scan_provenance(root) -> list[Path]:
    """Check every provenance record under `root` (nested choices.json, and the choice of
    each classic or egemaps result.json that records who judged it), in folders and in
    packed studies alike; returns the files checked. Raises ConfigError naming the first file in which a test speaker informed a choice."""
    import json

    checked = []
    for path in sorted(Path(root).rglob(CHOICES)):
        check_provenance(json.loads(path.read_text(encoding="utf-8")).get("provenance") or {}, path)
        checked.append(path)
    for path in sorted(Path(root).rglob("result.json")):
        text = path.read_text(encoding="utf-8")
        if '"judged_by"' not in text:
            continue
        choice = json.loads(text).get("choice") or {}
        check_provenance(choice, path)
        checked.append(path)
    from emodarts_core.study.results.pack import PACK_NAME, read_pack

    for pack in sorted(Path(root).rglob(PACK_NAME)):  # a packed study's runs (results/pack.py)
        for run in read_pack(pack):
            if CHOICES in run.files:
                check_provenance(json.loads(run.files[CHOICES]).get("provenance") or {}, run.path / CHOICES)
                checked.append(run.path / CHOICES)
            text = run.files.get("result.json", "")
            if '"judged_by"' in text:
                check_provenance(json.loads(text).get("choice") or {}, run.path / "result.json")
                checked.append(run.path / "result.json")
    return checked


def _one_fold(results_dir, dataset: str, data_dir, fold: int, params, threads: int) -> dict:
    import torch

    from data_prep import load_fold

    from emodarts_core.study.sweep.parameters import load_params

    torch.set_num_threads(threads)
    params = load_params(params)
    data = load_fold(dataset, data_dir, fold, seed=params.fold_seed)
    return fold_choices(results_dir, dataset, fold, data, params, progress=False)


def main(argv: list[str] | None = None) -> int:
    """`python -m emodarts_core.study.nested`: make the folds' choices before a sweep, folds
    in parallel (a sweep makes a missing fold's choice itself, in its first task of that
    fold, while the fold's other tasks wait for it)."""
    import argparse
    from concurrent.futures import ProcessPoolExecutor

    from emodarts_core.study.sweep.parameters import load_params

    parser = argparse.ArgumentParser(prog="python -m emodarts_core.study.nested", description=main.__doc__)
    parser.add_argument("--params", required=True, help="the study's parameter file, with a nested section")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--data-dir", default=None, help="the dataset's corpus root or feature store")
    parser.add_argument("--folds", type=int, nargs="+", required=True)
    parser.add_argument("--results", required=True, help="the sweep's results folder")
    parser.add_argument("--jobs", type=int, default=1, help="folds chosen at once, one process each")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    args = parser.parse_args(argv)
    if not load_params(args.params).nested:
        raise ConfigError(f"{args.params} has no nested section: nothing to choose")
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        jobs = {fold: pool.submit(_one_fold, args.results, args.dataset, args.data_dir, fold, args.params,
                                  args.threads) for fold in args.folds}
        for fold, job in jobs.items():
            choices = job.result()
            chosen = ", ".join(f"{b} {c['setting']}" for b, c in choices["baselines"].items())
            print(f"fold {fold}: search space normalise {choices['search_space']['normalise']}; {chosen}; judged by "
                  f"{', '.join(choices['provenance']['judged_by'])} (test speakers "
                  f"{', '.join(choices['provenance']['test_speakers'])})", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["ALPHA_BUDGET_RULE", "CHOICES", "NestedConfig", "NestedGroupsWarning", "warn_coinciding_groups", "apply_choices", "check_provenance", "choices_dir",
           "choose_fold", "fold_choices", "main", "provenance", "scan_provenance"]
