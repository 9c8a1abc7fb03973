"""Sweeps over datasets x folds x seeds x scopes (search -> retrain), baselines and
random-architecture controls (retrain), under one or both retraining protocols, on Ray.

Each (dataset, fold, seed, scope) search -> retrain chain, each (dataset, fold, seed,
baseline) retraining and each control is one Ray task; a task retrains its model under
every requested protocol (`emodarts_core.training.protocols`: ``paper``, ``full``), so a
search is shared by both. The controls (Li & Talwalkar 2019; Yang et al. 2020) draw
from the same space as the search (`controls.scope`, default the full emoDARTS scope):

- ``random``: architecture k of `controls.random` genotypes drawn uniformly for the
  (fold, seed) (`emodarts_core.space.sampling`), trained exactly like the searched one;
- ``random_search``: `controls.random_search` candidates, each trained for
  `controls.random_search_epochs` on the training speakers less a held-out speaker
  group and scored on that group (protocol ``holdout``); the best one is then retrained
  like the searched one. Its candidate count is set so that its compute matches the
  search's (results/emodb/README.md gives the measurement). A task asks for one GPU when the cluster has GPUs (one CPU
otherwise). Without `address` a private local Ray instance is started; with `address`
an existing cluster is used (`"auto"` on a cluster node, `"ray://head:10001"` from
elsewhere, which needs `ray[client]`). Every node must see `results_dir` and the data
directories at the same paths (a shared file system) and have emodarts installed. A cluster
whose head has a Ray token (~/.ray/auth_token: Ray >= 2.59 then turns token authentication
on) needs RAY_AUTH_MODE=token and that token on every node and on the driver; a driver
without them stops with `ClusterAuthError`, which names the fix (docs/SWEEPS.md).

Results folder layout (what `emodarts_core.study.results` reads; each retraining's
config.json also names its protocol, model, scope, fold and seed under "study"):

    <results>/sweep.json                                        the manifest (below)
    <results>/<dataset>/<scope>/fold<k>/seed<s>/search/         run_search's run directory
    <results>/<dataset>/<scope>/fold<k>/seed<s>/retrain-<p>/    its genotype retrained under protocol p
    <results>/<dataset>/<baseline>/fold<k>/seed<s>/retrain-<p>/ a baseline's retraining
    <results>/<dataset>/random/fold<k>/seed<s>/arch<i>/         genotype.json, retrain-<p>/
    <results>/<dataset>/random_search/fold<k>/seed<s>/          candidates/arch<j>/, choice.json,
                                                                genotype.json, retrain-<p>/

A sweep is resumable: a task whose run directories are all FINISHED is skipped without
starting anything, and an interrupted one continues from its checkpoints
(`run_search` / `run_retrain` with `resume=True`). A failed task never stops the others;
its error text is in the progress table, the manifest and the returned `SweepReport`.

`sweep.json` records what was asked (datasets, folds, scopes, baselines, parameters),
the Ray resources, and per task its status, error, timings, node (host name and Ray node
id; the progress table shows `host/<first 8 hex digits>`), what each stage found
on disk when it started (`new`, `resumed` with the epochs already done, `finished`) and
its test scores. It is rewritten atomically whenever a task changes state. A results
folder holds the runs of one parameter set: rerunning it with different network, search
or training settings is refused (device, AMP, progress and worker settings may change).

Parameters (a dict or a YAML file) have four optional sections whose keys are the
fields of `NetworkConfig`, `SearchConfig`, `TrainConfig` and `ControlConfig`, plus the
fold seed:

    network: {preset: smoke, input_size: [128, 128], stem_stride: 4}   # preset + overrides
    search: {epochs: 2, batch_size: 16}
    train: {epochs: 2, batch_size: 16}
    controls: {random: 5, random_search: 8, random_search_epochs: 10}
    fold_seed: 0          # seed of load_fold's 70/30 search/training split

`network.scope` is set per task from `scopes`, the seeds of search and retraining from
`seeds`, and the retraining protocol from `protocols`, so one parameter file serves them all.
The extra scope `cnn_darts` searches the CNN alone (`seq_cells = 0`: paper Table 3's
CNN-only DARTS model) with the same parameters.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import re
import socket
import sys
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from emodarts_core.config import (PRESETS, PROTOCOLS, ConfigError, NetworkConfig, SearchConfig, TrainConfig, from_dict,
                                  to_dict)
from emodarts_core.space.baselines import BASELINES
from emodarts_core.training.loop import RESUMABLE_KEYS
from emodarts_core.training.rundir import RunDir, RunExistsError
from emodarts_core.space.search_space import SCOPES

CNN_DARTS = "cnn_darts"  # a CNN-only search: no SeqNN cells (paper Table 3)
SEARCH_SCOPES = (*SCOPES, CNN_DARTS)
CONTROLS = ("random", "random_search")
MANIFEST = "sweep.json"
MANIFEST_FORMAT = 2
STATUSES = ("done", "running", "failed", "pending")
#: Settings each task sets for itself (scope, seed, protocol), so a parameter file's value is not binding.
PER_TASK_KEYS = ("scope", "seed", "protocol")
POLL_SECONDS = 2.0


# -- parameters ----------------------------------------------------------------------------
@dataclass
class ControlConfig:
    """The random-architecture controls: how many, in which scope, at what budget."""

    random: int = 5  # random architectures per (fold, seed)
    random_search: int = 8  # candidates of the random search per (fold, seed)
    random_search_epochs: int = 10  # training epochs of each candidate (protocol "holdout")
    scope: str = "emodarts"  # the space the controls draw from

    def validate(self) -> "ControlConfig":
        for name in ("random", "random_search", "random_search_epochs"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"controls.{name} must be a positive integer, got {value!r}")
        if self.scope not in SCOPES:
            raise ConfigError(f"unknown controls.scope {self.scope!r}; valid scopes: {', '.join(SCOPES)}")
        return self


@dataclass(frozen=True)
class SweepParams:
    """Network, search, training and control settings shared by every task of a sweep."""

    network: NetworkConfig
    search: SearchConfig
    train: TrainConfig
    fold_seed: int = 0
    controls: ControlConfig = field(default_factory=ControlConfig)

    def to_dict(self) -> dict:
        return {"network": to_dict(self.network), "search": to_dict(self.search), "train": to_dict(self.train),
                "controls": to_dict(self.controls), "fold_seed": self.fold_seed}

    def network_for(self, scope: str) -> NetworkConfig:
        """The searched network of `scope`; `cnn_darts` is the CNN without SeqNN cells."""
        if scope == CNN_DARTS:
            return dataclasses.replace(self.network, seq_cells=0, scope="emodarts").validate()
        return dataclasses.replace(self.network, scope=scope).validate()


def load_params(params) -> SweepParams:
    """Read sweep parameters from a dict, a YAML file path, an installed parameter file's
    name (`"sweep_smoke"`, see `emodarts_core.params`), or a `SweepParams` (validated)."""
    if isinstance(params, SweepParams):
        return params
    if isinstance(params, (str, Path)):
        import yaml

        from emodarts_core import params as packaged

        path = Path(params)
        if not path.is_file() and isinstance(params, str) and path.name == params:
            try:
                path = packaged.path(params)  # a bare name: the file installed with the package
            except KeyError:
                pass
        if not path.is_file():
            raise ConfigError(f"parameter file {path} does not exist "
                              f"(installed parameter files: {', '.join(packaged.names())})")
        params = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(params, dict):
        raise ConfigError("parameters must be a mapping with network/search/train sections, "
                          f"got {type(params).__name__}")
    unknown = sorted(set(params) - {"network", "search", "train", "controls", "fold_seed"})
    if unknown:
        raise ConfigError(f"unknown parameter sections {unknown}; valid: network, search, train, controls, fold_seed")
    network = dict(params.get("network") or {})
    base = network.pop("preset", None)
    if base is not None:
        if base not in PRESETS:
            raise ConfigError(f"unknown network preset {base!r}; valid presets: {', '.join(PRESETS)}")
        network = {**to_dict(PRESETS[base]), **network}
    fold_seed = params.get("fold_seed", 0)
    if not isinstance(fold_seed, int):
        raise ConfigError(f"fold_seed must be an integer, got {fold_seed!r}")
    return SweepParams(from_dict(NetworkConfig, network), from_dict(SearchConfig, dict(params.get("search") or {})),
                       from_dict(TrainConfig, dict(params.get("train") or {})), fold_seed,
                       from_dict(ControlConfig, dict(params.get("controls") or {})))


def params_differences(stored: dict, current: dict, path: str = "") -> list[str]:
    """Dotted keys whose values differ, ignoring settings a run may change on resume."""
    if isinstance(stored, dict) and isinstance(current, dict):
        out = []
        for key in sorted(set(stored) | set(current)):
            if key not in RESUMABLE_KEYS and key not in PER_TASK_KEYS:
                out += params_differences(stored.get(key), current.get(key), f"{path}{key}.")
        return out
    return [] if stored == current else [path.rstrip(".")]


# -- planning ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Task:
    """One unit of a sweep, for one dataset, fold and seed.

    `kind` is "darts" (search -> retrain, `name` = scope), "baseline" (`name` = baseline),
    "random" (architecture `arch` of the (fold, seed)'s random ones) or "random_search".
    The task retrains its model under each of `protocols`.
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
        search = ("search",) if self.kind == "darts" else ()
        return search + tuple(f"retrain-{p}" for p in self.protocols)

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
               n_random: int = 5) -> list[Task]:
    """Every task of the sweep, validated, seed by seed and fold by fold (so that whole
    (fold, seed) cells finish first): searches, then controls, then baselines."""
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
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise ConfigError(f"seeds are integers >= 0, got {seed!r}")
    for what, values, valid in (("dataset", datasets, CORPORA), ("protocol", protocols, PROTOCOLS),
                                ("scope", scopes, SEARCH_SCOPES), ("baseline", baselines, BASELINES),
                                ("control", controls, CONTROLS)):
        for value in values:
            if value not in valid:
                raise ConfigError(f"unknown {what} {value!r}; valid {what}s: {', '.join(valid)}")
    protocols = tuple(protocols)
    tasks = []
    for seed in seeds:
        for d in datasets:
            for f in folds:
                tasks += [Task(d, f, "darts", s, seed, None, protocols) for s in scopes]
                if "random" in controls:
                    tasks += [Task(d, f, "random", "random", seed, k, protocols) for k in range(n_random)]
                if "random_search" in controls:
                    tasks.append(Task(d, f, "random_search", "random_search", seed, None, protocols))
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


# -- one task (runs on a Ray worker) -------------------------------------------------------
CHOICE = "choice.json"
GENOTYPE = "genotype.json"


def _fixed_genotype(path: Path, genotype):
    """The genotype stored at `path` (written atomically the first time): a control's
    architecture is fixed once, and a resumed task trains the same one."""
    from emodarts_core.space import genotypes

    if path.is_file():
        return genotypes.load(path)
    RunDir(path.parent).atomic_write_text(path.name, genotypes.to_json(genotype) + "\n")
    return genotype


def _random_search(task: Task, params: SweepParams, results_dir, fold, net_cfg, train_cfg, run) -> object:
    """Train each candidate on the training speakers less a held-out group, pick the best
    by its UA there (ties: the first), and record the choice; returns its genotype."""
    from emodarts_core.space.sampling import random_genotypes

    base = task.base_dir(results_dir)
    if (base / CHOICE).is_file():
        return _fixed_genotype(base / GENOTYPE, None)
    ctl = params.controls
    cand_cfg = dataclasses.replace(train_cfg, protocol="holdout", epochs=ctl.random_search_epochs)
    candidates = random_genotypes(net_cfg, ctl.random_search, seed=task.seed, fold=task.fold, stream="random_search")
    scores = []
    for j, genotype in enumerate(candidates):
        result = run(f"candidates/arch{j}", genotype, cand_cfg, None)
        scores.append(result.test_ua)  # UA on the held-out training speakers, not the test speakers
    best = int(max(range(len(scores)), key=lambda j: (scores[j], -j)))
    genotype = _fixed_genotype(base / GENOTYPE, candidates[best])
    RunDir(base).atomic_write_json(CHOICE, {"chosen": best, "holdout_ua": scores, "epochs": ctl.random_search_epochs,
                                            "selection": "best UA on a held-out group of training speakers"})
    return genotype


def execute_task(task: Task, params: SweepParams, results_dir, data_dir=None, device: str | None = None) -> dict:
    """Run `task` to completion, resuming whatever its run directories hold.

    Returns per stage what was found on disk and how long it took, the first protocol's
    test scores, and the warnings raised (e.g. a collapsed SeqNN genotype). `device`, if
    given, replaces the configured device (a resumable setting). Errors propagate.
    """
    from data_prep import load_fold
    from emodarts_core.darts.search import run_search
    from emodarts_core.space.sampling import random_genotypes
    from emodarts_core.training.train import run_retrain

    dev = {"device": device} if device else {}
    search_cfg = dataclasses.replace(params.search, progress=False, seed=task.seed, **dev)
    train_cfg = dataclasses.replace(params.train, progress=False, seed=task.seed, **dev)
    if task.kind == "darts":
        net_cfg = params.network_for(task.name)
    elif task.kind in CONTROLS:
        net_cfg = params.network_for(params.controls.scope)
    else:
        net_cfg = params.network
    scope = "" if task.kind == "baseline" else ("" if task.name == CNN_DARTS else net_cfg.scope)
    fold = load_fold(task.dataset, data_dir, task.fold, seed=params.fold_seed)
    stages = {}

    def run(stage: str, spec, cfg: TrainConfig, study: dict | None):
        run_dir = task.run_dir(results_dir, stage)
        stages[stage], began = stage_state(run_dir), time.perf_counter()
        result = run_retrain(fold, spec, net_cfg, cfg, run_dir, resume=True, study=study)
        stages[stage]["seconds"] = round(time.perf_counter() - began, 3)
        return result

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model_spec = task.name
        if task.kind == "darts":
            run_dir = task.run_dir(results_dir, "search")
            stages["search"], began = stage_state(run_dir), time.perf_counter()
            model_spec = run_search(fold, net_cfg, search_cfg, run_dir, resume=True).genotype
            stages["search"]["seconds"] = round(time.perf_counter() - began, 3)
        elif task.kind == "random":
            drawn = random_genotypes(net_cfg, task.arch + 1, seed=task.seed, fold=task.fold)[task.arch]
            model_spec = _fixed_genotype(task.base_dir(results_dir) / GENOTYPE, drawn)
        elif task.kind == "random_search":
            model_spec = _random_search(task, params, results_dir, fold, net_cfg, train_cfg, run)
        results = [run(f"retrain-{p}", model_spec, dataclasses.replace(train_cfg, protocol=p),
                       task.study_tags(p, scope)) for p in task.protocols]
    first = results[0]
    return {"stages": stages, "result": {"test_ua": first.test_ua, "test_wa": first.test_wa,
                                         "params": first.params, "best_epoch": first.best_epoch},
            "warnings": [f"{w.category.__name__}: {w.message}" for w in caught]}


def _error_text(exc: BaseException) -> str:
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


def _remote_task(task: Task, params: SweepParams, results_dir: str, data_dir, board) -> dict:
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
        return {"status": "failed", **where, "error": _error_text(exc), "traceback": traceback.format_exc()}


def _remote_prepare(dataset: str, data_dir, fold: int, fold_seed: int) -> list[int]:
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


class _StartBoard:
    """A Ray actor where tasks note when and where they started (so the table shows `running`)."""

    def __init__(self):
        self._started = {}

    def started(self, key: str, node: str, node_id: str | None = None, began: float | None = None) -> None:
        self._started[key] = (began or time.time(), node, node_id)

    def snapshot(self) -> dict:
        return dict(self._started)


# -- status, report, manifest --------------------------------------------------------------
def _now() -> str:
    return dt.datetime.now().astimezone().isoformat(timespec="seconds")


@dataclass
class TaskStatus:
    """Where one task stands in a sweep."""

    task: Task
    status: str = "pending"
    reused: bool = False  # finished before this sweep started; nothing was run
    error: str | None = None
    traceback: str | None = None
    attempts: int = 0
    node: str | None = None  # where it ran: host/node-id prefix (`node_label`)
    node_id: str | None = None  # the Ray node id in full
    started: float | None = None
    seconds: float | None = None
    stages: dict = field(default_factory=dict)
    result: dict | None = None
    warnings: list = field(default_factory=list)

    def note(self) -> str:
        if self.status == "failed":
            return self.error or ""
        if self.status == "running":
            return ""
        if self.status != "done":
            return ""
        parts = ["finished earlier"] if self.reused else [
            f"{s} resumed at epoch {v['epochs_done']}" for s, v in self.stages.items() if v.get("state") == "resumed"]
        if self.result and self.result.get("test_ua") is not None:
            parts.insert(0, f"UA {100 * self.result['test_ua']:.1f} %")
        return ", ".join(parts)

    def to_dict(self) -> dict:
        out = {"key": self.task.key, **dataclasses.asdict(self.task)}
        out.update({k: v for k, v in dataclasses.asdict(self).items() if k != "task"})
        if self.started is not None:
            out["started"] = dt.datetime.fromtimestamp(self.started).astimezone().isoformat(timespec="seconds")
        return out


@dataclass
class SweepReport:
    """The outcome of `run_sweep`: one `TaskStatus` per task and where everything is."""

    results_dir: Path
    manifest: Path
    tasks: list[TaskStatus]
    seconds: float

    @property
    def counts(self) -> dict[str, int]:
        return {s: sum(t.status == s for t in self.tasks) for s in STATUSES}

    @property
    def failures(self) -> list[TaskStatus]:
        return [t for t in self.tasks if t.status == "failed"]

    @property
    def ok(self) -> bool:
        return all(t.status == "done" for t in self.tasks)

    def table(self) -> str:
        return format_table(self.tasks)

    def __str__(self) -> str:
        return self.table()


def format_table(tasks: list[TaskStatus]) -> str:
    """The progress table: a count line, then one row per task (time in seconds)."""
    counts = {s: sum(t.status == s for t in tasks) for s in STATUSES}
    reused = sum(t.reused for t in tasks)
    head = (f"{counts['done']}/{len(tasks)} done ({reused} earlier) | {counts['running']} running | "
            f"{counts['failed']} failed | {counts['pending']} pending")
    width = max([len(t.task.key) for t in tasks] + [4])
    now = time.time()
    nodes = max([len(t.node or "") for t in tasks] + [4])
    rows = [head, f"{'task':<{width}}  {'status':<8} {'node':<{nodes}} {'time':>7}  note"]
    for t in tasks:
        seconds = t.seconds if t.seconds is not None else (now - t.started if t.started else None)
        shown = f"{seconds:7.0f}" if seconds is not None else f"{'':7}"
        rows.append(f"{t.task.key:<{width}}  {t.status:<8} {t.node or '':<{nodes}} {shown}  {t.note()}".rstrip())
    return "\n".join(rows)


def read_manifest(results_dir) -> dict | None:
    """The sweep manifest of a results folder, or None if there is none."""
    rd = RunDir(results_dir)
    return rd.read_json(MANIFEST) if rd.exists(MANIFEST) else None


def _any_run_started(results_dir) -> bool:
    """Whether any run directory under `results_dir` has begun (holds a config.json)."""
    return any(Path(results_dir).glob("*/**/config.json"))


def _check_params_match(results_dir, params: SweepParams) -> None:
    """Refuse other settings in a folder that holds runs; a manifest whose sweep never got
    as far as starting a run (e.g. its data failed to prepare) binds nothing."""
    stored = read_manifest(results_dir)
    if stored is None:
        return
    diff = params_differences(stored.get("params", {}), params.to_dict())
    if diff and _any_run_started(results_dir):
        raise ConfigError(f"{results_dir} holds a sweep run with other parameters (differing: {', '.join(diff)}); "
                          "use a new results folder for new settings")


# -- the driver ----------------------------------------------------------------------------
class ClusterAuthError(ConnectionError):
    """The Ray cluster at an address asks for a token this process did not send (or it sent
    another one). The message names the fix; docs/SWEEPS.md, "A cluster", has the recipe."""


def _auth_failure(exc: BaseException | None) -> str | None:
    """Ray's reason, if `exc` or one of its causes is a token-authentication failure.

    `ray.init(address=...)` wraps it in a ConnectionError ("Failed to connect to Ray
    cluster"); further down the chain is Ray's `AuthenticationError` (Ray >= 2.52) or a
    RuntimeError that quotes it ("... InvalidAuthToken: Authentication token is missing
    or incorrect").
    """
    import ray.exceptions

    auth_error = getattr(ray.exceptions, "AuthenticationError", ())
    chain, seen = [], set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    texts = [str(getattr(e, "message", "") or e) for e in chain if isinstance(e, auth_error)]
    texts += [str(e) for e in chain if "InvalidAuthToken" in str(e)]
    if not texts:
        return None
    quoted = re.search(r"(RPC error: )?InvalidAuthToken[^.\n]*", texts[0])
    return quoted.group(0) if quoted else texts[0].split(". ")[0]


def auth_error_message(address, reason: str = "") -> str:
    """What to do when the cluster at `address` refuses this process for want of a token.

    Ray (>= 2.59) turns token authentication on for `ray start --head` whenever the head
    finds a token (~/.ray/auth_token, which a local `ray.init` creates), but a process that
    joins or connects with an explicit address turns it on only with RAY_AUTH_MODE=token,
    and then needs the head's token (Ray's docs: ray-security/token-auth).
    """
    sent = ("sent a token the cluster does not accept, or found none" if
            os.environ.get("RAY_AUTH_MODE", "").lower() == "token" else
            "sent no token (RAY_AUTH_MODE is not 'token' here)")
    return (f"the Ray cluster at {address} requires token authentication and this process {sent}. "
            "Fix: run with RAY_AUTH_MODE=token and the head node's token available on this machine: "
            "copy the head's ~/.ray/auth_token to ~/.ray/auth_token here (`ray get-auth-token` on the head "
            "prints it), or set RAY_AUTH_TOKEN_PATH=FILE or RAY_AUTH_TOKEN=TOKEN. Every node that joins with "
            "`ray start --address` needs the same, or its join fails with InvalidAuthToken "
            "(docs/SWEEPS.md, \"A cluster\")." + (f" Ray said: {reason}" if reason else ""))


def _init_ray(address, num_workers):
    """Connect to Ray; returns (ray module, whether we started the connection).

    A cluster that refuses this process's token raises `ClusterAuthError`, which names the fix.
    """
    try:
        import ray
    except ImportError:
        raise ImportError("sweeps need Ray: pip install 'emodarts[sweep]' (or pip install ray)") from None
    if ray.is_initialized():
        return ray, False
    import logging

    if address is None:
        ray.init(address="local", num_cpus=num_workers, include_dashboard=False, log_to_driver=False,
                 logging_level=logging.WARNING)
    else:
        try:
            ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
        except Exception as exc:
            reason = _auth_failure(exc)
            if reason is None:
                raise
            raise ClusterAuthError(auth_error_message(address, reason)) from exc
    return ray, True


def _parse_gpus(gpus_per_task):
    """'auto' or a non-negative number of GPUs per task (checked before Ray starts)."""
    if gpus_per_task == "auto":
        return gpus_per_task
    try:
        gpus = float(gpus_per_task)
    except (TypeError, ValueError):
        gpus = -1.0
    if gpus < 0:
        raise ConfigError(f"gpus_per_task must be 'auto' or a number >= 0, got {gpus_per_task!r}")
    return gpus


def _resolve_gpus(gpus_per_task, cluster_gpus: float) -> float:
    """GPUs each task asks for: 'auto' is one when the cluster has any; more than it has is refused."""
    if gpus_per_task == "auto":
        return 1.0 if cluster_gpus > 0 else 0.0
    if gpus_per_task > cluster_gpus:
        raise ConfigError(f"gpus_per_task={gpus_per_task:g} but the Ray cluster has {cluster_gpus:g} GPU(s)")
    return gpus_per_task


class _Sweep:
    """Driver state: statuses, the manifest, and the printed progress table."""

    def __init__(self, tasks, params, results_dir, request, progress):
        self.results_dir, self.params, self.request, self.progress = Path(results_dir), params, request, progress
        self.began, self.began_iso = time.time(), _now()
        self.resources = {}
        previous = {t["key"]: t for t in (read_manifest(results_dir) or {}).get("tasks", [])}
        self.statuses = []
        for task in tasks:
            before = previous.get(task.key, {})
            st = TaskStatus(task, attempts=before.get("attempts", 0))
            if task.is_finished(results_dir):
                st.status, st.reused = "done", True
                st.stages = {s: {"state": "finished"} for s in task.stages}
                if before.get("status") == "done":  # keep when, where and how long it ran
                    st.node, st.node_id = before.get("node"), before.get("node_id")
                    st.seconds, st.stages = before.get("seconds"), before["stages"]
                    st.warnings = before.get("warnings", [])
                st.result = _stored_result(task.run_dir(results_dir, task.stages[-len(task.protocols)]))
            self.statuses.append(st)

    def write(self, state: str) -> None:
        counts = {s: sum(t.status == s for t in self.statuses) for s in STATUSES}
        RunDir(self.results_dir).atomic_write_json(MANIFEST, {
            "format": MANIFEST_FORMAT, "state": state, "started": self.began_iso, "updated": _now(),
            "seconds": round(time.time() - self.began, 3), "request": self.request, "params": self.params.to_dict(),
            "ray": self.resources, "counts": counts, "tasks": [t.to_dict() for t in self.statuses]})

    def show(self, event: str | None = None) -> None:
        if self.progress:
            stamp = dt.datetime.now().strftime("%H:%M:%S")
            print(f"\n[{stamp}] {event}" if event else "", format_table(self.statuses), sep="\n", flush=True)


def _stored_result(run_dir: Path) -> dict | None:
    try:
        r = RunDir(run_dir).read_json("result.json")
        return {k: r.get(k) for k in ("test_ua", "test_wa", "params", "best_epoch")}
    except (OSError, ValueError):
        return None


def run_sweep(datasets, folds, scopes, baselines, params, results_dir, *, seeds=(0,), protocols=("paper",),
              controls=(), address=None, num_workers=None, gpus_per_task="auto", data_dirs=None, resume=True,
              progress=True) -> SweepReport:
    """Run every search -> retrain chain, baseline and control of the sweep as Ray tasks.

    `datasets`, `folds` (1-based), `seeds`, `scopes`, `baselines` and `controls`
    ("random", "random_search") span the tasks; each task retrains under every one of
    `protocols` ("paper", "full"); `params` is a
    dict, a YAML path or `SweepParams` (see the module docstring); `data_dirs` maps a
    dataset to its feature store or corpus root (`synthetic` needs none). `address`
    selects an existing Ray cluster (default: a private local instance with
    `num_workers` CPUs). `num_workers` also caps how many tasks run at once.
    `gpus_per_task="auto"` asks for one GPU per task when the cluster has GPUs, else a
    CPU; a number asks for that many. With `resume=False` a results folder that already
    holds any of these runs is refused. If Ray was already initialised (a notebook), that
    connection is used and left open. All arguments are checked before Ray starts.
    """
    params = load_params(params)
    tasks = plan_tasks(datasets, folds, scopes, baselines, seeds=seeds, protocols=protocols, controls=controls,
                       n_random=params.controls.random)
    for scope in {t.name for t in tasks if t.kind == "darts"}:
        params.network_for(scope)
    results_dir = Path(results_dir).resolve()
    data_dirs = {k: str(Path(v).resolve()) for k, v in (data_dirs or {}).items()}
    unknown = sorted(set(data_dirs) - set(datasets))
    if unknown:
        raise ConfigError(f"data_dirs names datasets {unknown} that are not in the sweep ({', '.join(datasets)})")
    gpus_per_task = _parse_gpus(gpus_per_task)
    if num_workers is not None and (not isinstance(num_workers, int) or num_workers < 1):
        raise ConfigError(f"num_workers must be a positive integer, got {num_workers!r}")
    if not resume:
        started = [t.key for t in tasks if t.has_run(results_dir)]
        if started:
            raise RunExistsError(f"{results_dir} already holds runs of {', '.join(started)}; pass resume=True "
                                 "to continue them or choose a new results folder")
    _check_params_match(results_dir, params)
    request = {"datasets": list(datasets), "folds": list(folds), "seeds": list(seeds), "protocols": list(protocols),
               "scopes": list(scopes or []), "baselines": list(baselines or []), "controls": list(controls or []),
               "data_dirs": data_dirs, "address": address,
               "num_workers": num_workers, "gpus_per_task": gpus_per_task}
    sweep = _Sweep(tasks, params, results_dir, request, progress)
    results_dir.mkdir(parents=True, exist_ok=True)
    sweep.write("starting")
    sweep.show("plan")
    todo = [s for s in sweep.statuses if s.status == "pending"]
    if not todo:
        sweep.write("finished")
        return SweepReport(results_dir, results_dir / MANIFEST, sweep.statuses, time.time() - sweep.began)

    ray, owned = _init_ray(address, num_workers)
    state = "interrupted"
    try:
        resources = ray.cluster_resources()
        gpus = _resolve_gpus(gpus_per_task, resources.get("GPU", 0.0))
        sweep.resources = {"cluster": {k: v for k, v in resources.items() if k in ("CPU", "GPU")},
                           "gpus_per_task": gpus, "cpus_per_task": 1}
        _drive(ray, sweep, todo, data_dirs, gpus, num_workers)
        state = "finished"
    finally:
        sweep.write(state)
        if owned:
            ray.shutdown()
    sweep.show("sweep finished")
    return SweepReport(results_dir, results_dir / MANIFEST, sweep.statuses, time.time() - sweep.began)


def _prepare_datasets(ray, sweep, todo, data_dirs) -> list[TaskStatus]:
    """Prepare each dataset once (in parallel); fail its tasks if that fails; return the rest."""
    prepare = ray.remote(num_cpus=1)(_remote_prepare)
    datasets = sorted({s.task.dataset for s in todo})
    refs = {d: prepare.remote(d, data_dirs.get(d), min(s.task.fold for s in todo if s.task.dataset == d),
                              sweep.params.fold_seed) for d in datasets}
    failed = {}
    for dataset, ref in refs.items():
        try:
            check_input_size(dataset, ray.get(ref), sweep.params.network)
        except ConfigError as exc:
            failed[dataset] = str(exc)
        except Exception as exc:
            cause = getattr(exc, "cause", None) or exc
            failed[dataset] = f"preparing {dataset}: {_error_text(cause)}"
    for st in todo:
        if st.task.dataset in failed:
            st.status, st.error = "failed", failed[st.task.dataset]
    if failed:
        sweep.write("running")
        sweep.show("data preparation failed for " + ", ".join(failed))
    return [s for s in todo if s.status == "pending"]


def _drive(ray, sweep: _Sweep, todo: list[TaskStatus], data_dirs: dict, gpus: float, limit: int | None) -> None:
    """Submit the tasks (at most `limit` at once), follow them, record each outcome."""
    todo = _prepare_datasets(ray, sweep, todo, data_dirs)
    board = ray.remote(num_cpus=0)(_StartBoard).remote()
    remote = ray.remote(num_cpus=1, num_gpus=gpus, max_retries=2)(_remote_task)
    queue, in_flight = list(todo), {}
    sweep.write("running")
    while queue or in_flight:
        while queue and (limit is None or len(in_flight) < limit):
            st = queue.pop(0)
            st.attempts += 1
            in_flight[remote.remote(st.task, sweep.params, str(sweep.results_dir),
                                    data_dirs.get(st.task.dataset), board)] = st
        ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=POLL_SECONDS)
        started = ray.get(board.snapshot.remote())
        changed = []
        for st in in_flight.values():
            if st.status == "pending" and st.task.key in started:
                st.started, st.node, st.node_id = started[st.task.key]
                st.status = "running"
                changed.append(f"started {st.task.key}")
        for ref in ready:
            st = in_flight.pop(ref)
            try:
                outcome = ray.get(ref)
            except Exception as exc:  # the worker died (e.g. out of memory) after its retries
                outcome = {"status": "failed", "error": _error_text(getattr(exc, "cause", None) or exc)}
            st.status, st.error, st.traceback = outcome["status"], outcome.get("error"), outcome.get("traceback")
            st.node, st.node_id = outcome.get("node", st.node), outcome.get("node_id", st.node_id)
            st.stages, st.result = outcome.get("stages", {}), outcome.get("result")
            st.warnings = outcome.get("warnings", [])
            st.started = outcome.get("began") or st.started or time.time()
            st.seconds = round(time.time() - st.started, 3)
            changed.append(f"{st.status} {st.task.key}" + (f": {st.error}" if st.error else ""))
        if changed:
            sweep.write("running")
            if ready:
                sweep.show("; ".join(changed))


# -- command line --------------------------------------------------------------------------
def _data_dir_arg(text: str) -> tuple[str, str]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected DATASET=PATH, got {text!r}")
    return name, path


def main(argv: list[str] | None = None) -> int:
    """`python -m emodarts_core.sweep ...`: run a sweep; exit status 1 if any task failed."""
    parser = argparse.ArgumentParser(prog="python -m emodarts_core.sweep",
                                     description="Run emoDARTS searches/retrainings, baselines and random-"
                                                 "architecture controls over datasets x folds x seeds on Ray, "
                                                 "resumably.")
    parser.add_argument("--datasets", nargs="+", required=True, help="corpus names, e.g. iemocap emodb synthetic")
    parser.add_argument("--folds", nargs="+", type=int, required=True, help="1-based fold numbers")
    parser.add_argument("--scopes", nargs="*", default=[], help=f"search scopes: {', '.join(SEARCH_SCOPES)}")
    parser.add_argument("--baselines", nargs="*", default=[], help=f"baselines: {', '.join(BASELINES)}")
    parser.add_argument("--controls", nargs="*", default=[], help=f"random-architecture controls: {', '.join(CONTROLS)}")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0], help="seeds of every search and retraining")
    parser.add_argument("--protocols", nargs="+", default=["paper"],
                        help=f"retraining protocols: {', '.join(PROTOCOLS)} (emodarts_core.training.protocols)")
    parser.add_argument("--params", required=True,
                        help="YAML file with network/search/train settings, or the name of an installed one "
                             "(python -m emodarts_core.params lists them)")
    parser.add_argument("--results", required=True, help="the results folder (shared by all nodes)")
    parser.add_argument("--address", default=None, help="an existing Ray cluster: auto, HOST:PORT or ray://HOST:PORT")
    parser.add_argument("--workers", type=int, default=None, help="at most this many tasks at once "
                        "(and the CPUs of the local Ray instance)")
    parser.add_argument("--gpus-per-task", default="auto", help="auto (1 if the cluster has GPUs) "
                        "or a number, e.g. 0.5 to share a GPU between two tasks")
    parser.add_argument("--data-dir", type=_data_dir_arg, nargs="+", action="extend", default=[],
                        metavar="DATASET=PATH", help="feature store or corpus root of each dataset that needs one")
    parser.add_argument("--no-resume", action="store_true", help="refuse a results folder that holds these runs")
    parser.add_argument("--quiet", action="store_true", help="no progress table")
    args = parser.parse_args(argv)
    try:
        report = run_sweep(args.datasets, args.folds, args.scopes, args.baselines, args.params, args.results,
                           seeds=args.seeds, protocols=args.protocols, controls=args.controls, address=args.address, num_workers=args.workers, gpus_per_task=args.gpus_per_task,
                           data_dirs=dict(args.data_dir), resume=not args.no_resume, progress=not args.quiet)
    except (ConfigError, RunExistsError, ClusterAuthError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for st in report.failures:
        print(f"\nFAILED {st.task.key}: {st.error}\n{st.traceback or ''}", file=sys.stderr)
    print(f"\nmanifest: {report.manifest}", flush=True)
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
