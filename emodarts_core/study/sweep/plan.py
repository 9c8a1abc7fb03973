"""A sweep's plan: its tasks, each one (dataset, fold, seed) of a search -> retrain chain,
a baseline's retraining or a control's, and what each task's run directories hold.

The kinds of task are listed once, here: the searched scopes (`parameters.SEARCH_SCOPES`),
the baselines (`BASELINE_NAMES`) and the controls (`CONTROLS`). A new control adds an
entry to `CONTROLS` and its architecture source to `task.MODEL_SOURCES`; a new baseline
adds its name to `BASELINE_NAMES` (and, if it is not a network that `run_retrain` trains,
its own source in `task.MODEL_SOURCES`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from emodarts_core.config import PROTOCOLS, SEED_RANGE, ConfigError
from emodarts_core.space.baselines import BASELINES
from emodarts_core.training.classic import CLASSIC
from emodarts_core.training.egemaps import EGEMAPS
from emodarts_core.training.rundir import RunDir

from .parameters import SEARCH_SCOPES, ControlConfig

#: The baselines a sweep may retrain: the fixed networks of `emodarts_core.space.baselines`
#: and the linear classifiers on MFCC statistics (`emodarts_core.training.classic`) and on
#: openSMILE's eGeMAPS functionals (`emodarts_core.training.egemaps`).
BASELINE_NAMES: tuple[str, ...] = (*BASELINES, CLASSIC, EGEMAPS)


@dataclass(frozen=True)
class Control:
    """A control of the searched architecture (Li & Talwalkar 2019; Yang et al. 2020).

    `count` names the `ControlConfig` field that says how many architectures it trains
    per (dataset, fold, seed), one task each (`Task.arch` = 0, 1, ...); None means a
    single task per (dataset, fold, seed) that chooses its own architecture.
    """

    name: str
    count: str | None = None

    def tasks(self, dataset: str, fold: int, seed: int, protocols: tuple, settings: ControlConfig) -> list["Task"]:
        if self.count is None:
            return [Task(dataset, fold, self.name, self.name, seed, None, protocols)]
        n = getattr(settings, self.count)
        return [Task(dataset, fold, self.name, self.name, seed, k, protocols) for k in range(n)]


#: The controls, in the order a (fold, seed) cell plans them (after its searches, before its baselines).
CONTROL_KINDS: tuple[Control, ...] = (
    Control("random", count="random"),  # uniformly drawn architectures, trained like the searched one
    Control("random_search"),  # the best of `random_search` candidates on held-out training speakers
    Control("prior"),  # the search with its α frozen at their initial values: what the α steps add
    # selection rules that read the searches above (emodarts_core.study.selection, docs/SELECTION.md)
    Control("emodarts_pt"),  # selection by perturbation from the searched supernet
    Control("prior_pt"),  # the same from the prior's supernet (darts-pt's fixed-α variant)
    Control("consensus"),  # the mean softmax(α) over the sweep's seeds of the fold, parsed
    Control("random_reseed", count="random"),  # random's architectures retrained under another seed: the ceiling
)
#: The kinds of task that search (a "search" stage before their retrainings).
SEARCHING_KINDS = ("darts", "prior")
#: The kinds of task that select from a finished supernet (a "selection" stage before their retrainings).
SELECTING_KINDS = ("emodarts_pt", "prior_pt")
CONTROLS = tuple(c.name for c in CONTROL_KINDS)


@dataclass(frozen=True)
class Task:
    """One unit of a sweep, for one dataset, fold and seed.

    `kind` is "darts" (search -> retrain, `name` = scope), "baseline" (`name` = baseline)
    or a control's name (`CONTROLS`; `arch` = which of its architectures, for a control
    that trains several). The task retrains its model under each of `protocols`.
    """

    dataset: str
    fold: int
    kind: str
    name: str
    seed: int = 0
    arch: int | None = None
    protocols: tuple[str, ...] = ("paper",)

    @property
    def key(self) -> str:
        key = f"{self.dataset}/{self.name}/fold{self.fold}/seed{self.seed}"
        return key if self.arch is None else f"{key}/arch{self.arch}"

    @property
    def stages(self) -> tuple[str, ...]:
        first = ("search",) if self.kind in SEARCHING_KINDS else ("selection",) if self.kind in SELECTING_KINDS else ()
        return first + tuple(f"retrain-{p}" for p in self.protocols)

    def base_dir(self, results_dir) -> Path:
        """The folder of this task's run directories (and of a control's genotype.json)."""
        base = Path(results_dir) / self.dataset / self.name / f"fold{self.fold}" / f"seed{self.seed}"
        return base if self.arch is None else base / f"arch{self.arch}"

    def run_dir(self, results_dir, stage: str) -> Path:
        return self.base_dir(results_dir) / stage

    def is_finished(self, results_dir) -> bool:
        return all(RunDir(self.run_dir(results_dir, s)).is_finished() for s in self.stages)

    def has_run(self, results_dir) -> bool:
        return any(RunDir(self.run_dir(results_dir, s)).has_run() for s in self.stages)

    def study_tags(self, protocol: str, scope: str = "") -> dict:
        """What `emodarts_core.study.results` reads from a retraining's config.json."""
        model = {"darts": "emodarts" if self.name == "emodarts" else self.name}.get(self.kind, self.name)
        return {"dataset": self.dataset, "protocol": protocol, "model": model, "scope": scope, "fold": self.fold,
                "seed": self.seed, "arch": self.arch}


def _unique(values, what: str) -> list:
    values = list(values or [])
    if len(set(values)) != len(values):
        raise ConfigError(f"{what} lists a value twice: {values}")
    return values


def plan_tasks(datasets, folds, scopes=(), baselines=(), *, seeds=(0,), protocols=("paper",), controls=(),
               control_settings: ControlConfig | None = None) -> list[Task]:
    """Every task of the sweep, validated, seed by seed and fold by fold (so that whole
    (fold, seed) cells finish first): searches, then controls, then baselines.

    `control_settings` says how many architectures a counted control trains (default
    `ControlConfig()`: 5 random architectures)."""
    from data_prep import CORPORA

    datasets, folds = _unique(datasets, "datasets"), _unique(folds, "folds")
    scopes, baselines = _unique(scopes, "scopes"), _unique(baselines, "baselines")
    seeds, protocols, controls = _unique(seeds, "seeds"), _unique(protocols, "protocols"), _unique(controls, "controls")
    if not datasets or not folds or not seeds or not protocols:
        raise ConfigError("a sweep needs at least one dataset, fold, seed and protocol")
    if not scopes and not baselines and not controls:
        raise ConfigError("a sweep needs at least one scope, baseline or control")
    for fold in folds:
        if not isinstance(fold, int) or isinstance(fold, bool) or fold < 1:
            raise ConfigError(f"folds are 1-based integers, got {fold!r}")
    for seed in seeds:
        if not SEED_RANGE.accepts(seed):
            raise ConfigError(f"seeds are integers >= 0 ({SEED_RANGE.describe()}), got {seed!r}")
    for what, values, valid in (("dataset", datasets, CORPORA), ("protocol", protocols, PROTOCOLS),
                                ("scope", scopes, SEARCH_SCOPES), ("baseline", baselines, BASELINE_NAMES),
                                ("control", controls, CONTROLS)):
        for value in values:
            if value not in valid:
                raise ConfigError(f"unknown {what} {value!r}; valid {what}s: {', '.join(valid)}")
    protocols, settings = tuple(protocols), control_settings or ControlConfig()
    tasks = []
    for seed in seeds:
        for d in datasets:
            for f in folds:
                tasks += [Task(d, f, "darts", s, seed, None, protocols) for s in scopes]
                for control in CONTROL_KINDS:
                    if control.name in controls:
                        tasks += control.tasks(d, f, seed, protocols, settings)
                tasks += [Task(d, f, "baseline", b, seed, None, protocols) for b in baselines]
    return tasks


def stage_state(run_dir) -> dict:
    """What a stage's run directory holds: `finished`, `resumed` (with epochs done) or `new`."""
    rd = RunDir(run_dir)
    if rd.is_finished():
        return {"state": "finished"}
    if rd.has_run():
        return {"state": "resumed", "epochs_done": len(rd.read_epochs())}
    return {"state": "new"}

