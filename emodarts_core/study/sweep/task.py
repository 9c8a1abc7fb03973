"""One task of a sweep, as a Ray worker runs it: find (or search, draw, choose) the
model, retrain it under each protocol, resume whatever its run directories hold.

Each kind of task has a model source in `MODEL_SOURCES`: the search for a scope, the
baseline's name, or a control's architecture (fixed in its genotype.json the first time,
so that a resumed task trains the same one):

- ``random``: architecture k of `controls.random` genotypes drawn uniformly for the
  (fold, seed) (`emodarts_core.space.sampling`), trained exactly like the searched one;
- ``random_search``: `controls.random_search` candidates, each trained for
  `controls.random_search_epochs` on the training speakers less a held-out speaker
  group and scored on that group (protocol ``holdout``); the best one is then retrained
  like the searched one;
- ``prior``: the search of `controls.scope` with its α frozen at their initial values
  (`SearchConfig.freeze_alpha`): the weights train as in the search, warm-up included, and
  the genotype is parsed the same way, so the difference between the searched model and
  this one is what the α steps add over the initialisation and the parse rule (DARTS
  eq. 3). It starts from the same initial weights and α as the search of its (fold, seed).
- ``emodarts_pt``, ``prior_pt``, ``consensus``: selection by perturbation from the searched
  and the prior's supernets of the (fold, seed), and the seeds' consensus genotype of the
  fold (`emodarts_core.study.selection`, docs/SELECTION.md); ``random_reseed``: architecture k of
  ``random`` retrained under another seed, for the ceiling of the supernets' ranking.
"""

from __future__ import annotations

import dataclasses
import socket
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from emodarts_core.config import ConfigError, NetworkConfig, SearchConfig, TrainConfig
from emodarts_core.training.rundir import RunDir

from .parameters import CNN_DARTS, SweepParams
from .plan import CONTROLS, Task, stage_state

CHOICE = "choice.json"
GENOTYPE = "genotype.json"


@dataclass
class TaskRun:
    """What a model source needs of the task it serves, and the stages it has run."""

    task: Task
    params: SweepParams
    results_dir: Path
    fold: object  # data_prep's Fold
    network: NetworkConfig
    search: SearchConfig
    train: TrainConfig
    stages: dict = field(default_factory=dict)

    def base_dir(self) -> Path:
        return self.task.base_dir(self.results_dir)

    def retrain(self, stage: str, spec, cfg: TrainConfig, study: dict | None):
        """Train `spec` (a genotype or a baseline's name) in the stage's run directory, resuming it."""
        from emodarts_core.training.train import run_retrain

        from emodarts_core.training.classic import CLASSIC, run_classic
        from emodarts_core.training.egemaps import EGEMAPS, run_egemaps

        run_dir = self.task.run_dir(self.results_dir, stage)
        self.stages[stage], began = stage_state(run_dir), time.perf_counter()
        if isinstance(spec, str) and spec == CLASSIC:  # a linear model on MFCC statistics, no network
            result = run_classic(self.fold, cfg, run_dir, resume=True, study=study, cfg=self.params.classic())
        elif isinstance(spec, str) and spec == EGEMAPS:  # the same on openSMILE's eGeMAPS functionals
            result = run_egemaps(self.fold, cfg, run_dir, resume=True, study=study, cfg=self.params.egemaps())
        else:
            result = run_retrain(self.fold, spec, self.network, cfg, run_dir, resume=True, study=study)
        self.stages[stage]["seconds"] = round(time.perf_counter() - began, 3)
        return result


def _fixed_genotype(path: Path, genotype):
    """The genotype stored at `path` (written atomically the first time): a control's
    architecture is fixed once, and a resumed task trains the same one."""
    from emodarts_core.space import genotypes

    if path.is_file():
        return genotypes.load(path)
    RunDir(path.parent).atomic_write_text(path.name, genotypes.to_json(genotype) + "\n")
    return genotype


def _searched(run: TaskRun, search: SearchConfig | None = None):
    """The genotype that the search of the task's scope finds (paper Algorithm 1)."""
    from emodarts_core.darts.search import run_search

    run_dir = run.task.run_dir(run.results_dir, "search")
    run.stages["search"], began = stage_state(run_dir), time.perf_counter()
    genotype = run_search(run.fold, run.network, search or run.search, run_dir, resume=True).genotype
    run.stages["search"]["seconds"] = round(time.perf_counter() - began, 3)
    return genotype


def _prior(run: TaskRun):
    """The genotype of the same search with the α frozen at their initial values."""
    return _searched(run, dataclasses.replace(run.search, freeze_alpha=True))


def _baseline(run: TaskRun) -> str:
    return run.task.name


def _random_architecture(run: TaskRun):
    """Architecture `arch` of the (fold, seed)'s uniformly drawn ones."""
    from emodarts_core.space.sampling import random_genotypes

    task = run.task
    drawn = random_genotypes(run.network, task.arch + 1, seed=task.seed, fold=task.fold)[task.arch]
    return _fixed_genotype(run.base_dir() / GENOTYPE, drawn)


def _random_search(run: TaskRun):
    """Train each candidate on the training speakers less a held-out group, pick the best
    by its UA there (ties: the first), and record the choice; returns its genotype."""
    from emodarts_core.space.sampling import random_genotypes

    task, base = run.task, run.base_dir()
    if (base / CHOICE).is_file():
        return _fixed_genotype(base / GENOTYPE, None)
    ctl = run.params.controls
    cand_cfg = dataclasses.replace(run.train, protocol="holdout", epochs=ctl.random_search_epochs)
    candidates = random_genotypes(run.network, ctl.random_search, seed=task.seed, fold=task.fold,
                                  stream="random_search")
    scores = []
    for j, genotype in enumerate(candidates):
        result = run.retrain(f"candidates/arch{j}", genotype, cand_cfg, None)
        scores.append(result.test_ua)  # UA on the held-out training speakers, not the test speakers
    best = int(max(range(len(scores)), key=lambda j: (scores[j], -j)))
    genotype = _fixed_genotype(base / GENOTYPE, candidates[best])
    RunDir(base).atomic_write_json(CHOICE, {"chosen": best, "holdout_ua": scores, "epochs": ctl.random_search_epochs,
                                            "selection": "best UA on a held-out group of training speakers"})
    return genotype


def _selection():
    """The selection rules that read this sweep's searches (imported when a task needs them)."""
    from emodarts_core.study import selection

    return selection


#: The model each kind of task retrains: a genotype, or a baseline's name for `run_retrain`.
MODEL_SOURCES: dict[str, Callable[[TaskRun], object]] = {
    "darts": _searched,
    "baseline": _baseline,
    "random": _random_architecture,
    "random_search": _random_search,
    "prior": _prior,
    "emodarts_pt": lambda run: _selection().selected_by_perturbation(run, "emodarts_pt"),
    "prior_pt": lambda run: _selection().selected_by_perturbation(run, "prior_pt"),
    "consensus": lambda run: _selection().consensus_of_seeds(run),
    "random_reseed": lambda run: _selection().reseeded_random(run),
}


def _network(task: Task, params: SweepParams) -> NetworkConfig:
    if task.kind == "darts":
        return params.network_for(task.name)
    if task.kind in CONTROLS:
        return params.network_for(params.controls.scope)
    return params.network


def execute_task(task: Task, params: SweepParams, results_dir, data_dir=None, device: str | None = None) -> dict:
    """Run `task` to completion, resuming whatever its run directories hold.

    Returns per stage what was found on disk and how long it took, the first protocol's
    test scores, and the warnings raised (e.g. a collapsed SeqNN genotype). `device`, if
    given, replaces the configured device (a resumable setting). Errors propagate.
    """
    from data_prep import load_fold

    dev = {"device": device} if device else {}
    net_cfg = _network(task, params)
    train = params.train_for(task.name) if task.kind == "baseline" else params.train  # a baseline's own settings
    scope = "" if task.kind == "baseline" else ("" if task.name == CNN_DARTS else net_cfg.scope)
    fold, search, chosen = load_fold(task.dataset, data_dir, task.fold, seed=params.fold_seed), params.search, {}
    if params.nested:  # settings chosen on this fold's training speakers (emodarts_core.study.nested)
        from emodarts_core.study.nested import CHOICES, apply_choices, choices_dir, fold_choices

        choices = fold_choices(results_dir, task.dataset, task.fold, fold, params)
        search, train = apply_choices(choices, task.kind, task.name, search, train)
        chosen = {"choices": (choices_dir(".", task.dataset, task.fold) / CHOICES).as_posix()}  # provenance
    run = TaskRun(task, params, Path(results_dir), fold,
                  net_cfg, dataclasses.replace(search, progress=False, seed=task.seed, **dev),
                  dataclasses.replace(train, progress=False, seed=task.seed, **dev))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model_spec = MODEL_SOURCES[task.kind](run)
        results = [run.retrain(f"retrain-{p}", model_spec, dataclasses.replace(run.train, protocol=p),
                               {**task.study_tags(p, scope), **chosen}) for p in task.protocols]
    first = results[0]
    return {"stages": run.stages, "result": {"test_ua": first.test_ua, "test_wa": first.test_wa,
                                             "params": first.params, "best_epoch": first.best_epoch},
            "warnings": [f"{w.category.__name__}: {w.message}" for w in caught]}


def error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def node_label(hostname: str, node_id: str) -> str:
    """How the progress table names a Ray node: host name and the node id's first 8 hex
    digits, so that two nodes on one host (or two hosts of one name) stay apart."""
    return f"{hostname}/{node_id[:8]}"


def _this_node() -> dict:
    """The Ray node this worker runs on: its label (`node_label`) and full node id."""
    import ray

    node_id = ray.get_runtime_context().get_node_id()
    return {"node": node_label(socket.gethostname(), node_id), "node_id": node_id}


def remote_task(task: Task, params: SweepParams, results_dir: str, data_dir, board) -> dict:
    """The Ray task body: report the start and the node, run, and turn any error into a
    failed outcome. The outcome names the node and the start time too: a retried task may
    run elsewhere, and the board may take its call late (its actor starts slowly on a busy
    machine)."""
    import ray

    where = {**_this_node(), "began": time.time()}
    board.started.remote(task.key, where["node"], where["node_id"], where["began"])
    device = None if ray.get_gpu_ids() or params.search.device != "auto" else "cpu"
    try:
        return {"status": "done", **where, **execute_task(task, params, results_dir, data_dir, device)}
    except Exception as exc:  # reported in the table and manifest; the sweep goes on
        return {"status": "failed", **where, "error": error_text(exc), "traceback": traceback.format_exc()}


def remote_prepare(dataset: str, data_dir, fold: int, fold_seed: int) -> list[int]:
    """Build (or check) a dataset's feature store once, before its tasks share it, and
    return its feature size [F, T].

    Loading one fold builds the store; a fold number the dataset lacks fails only the
    tasks of that fold, later, in their own `load_fold`.
    """
    from data_prep import load_fold

    return list(load_fold(dataset, data_dir, fold, seed=fold_seed).test.X.shape[1:])


def check_input_size(dataset: str, size, network: NetworkConfig) -> None:
    """Refuse a network whose input size is not the dataset's feature size, before any
    task starts (a preset carries its own input size: `smoke` is 32 x 32)."""
    if tuple(size) != tuple(network.input_size):
        raise ConfigError(f"{dataset}'s features are {size[0]} x {size[1]} but network.input_size is "
                          f"{network.input_size[0]} x {network.input_size[1]}; set network: {{input_size: "
                          f"[{size[0]}, {size[1]}]}} with a stem_stride that divides it "
                          "(--params sweep_smoke is a small sweep for 128 x 128 features)")


class StartBoard:
    """A Ray actor where tasks note when and where they started (so the table shows `running`)."""

    def __init__(self):
        self._started = {}

    def started(self, key: str, node: str, node_id: str | None = None, began: float | None = None) -> None:
        self._started[key] = (began or time.time(), node, node_id)

    def snapshot(self) -> dict:
        return dict(self._started)
