"""Where a sweep stands: each task's status, the progress table, the returned report, and
the manifest `sweep.json`.

`sweep.json` records what was asked (datasets, folds, scopes, baselines, parameters),
the Ray resources, and per task its status, error, timings, node (the Ray node id, and
its first 8 hex digits as `node`), what each stage found on
disk when it started (`new`, `resumed` with the epochs already done, `finished`) and its
test scores. It is rewritten atomically whenever a task changes state. A results folder
holds the runs of one parameter set: rerunning it with different network, search or
training settings is refused (device, AMP, progress and worker settings may change).

Host names stay out of `sweep.json`, which a results folder may commit: the progress
table's labels (`host/<first 8 hex digits>`) are kept in `sweep.hosts.json` beside it,
which is not to be committed (.gitignore).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from dataclasses import dataclass, field
from pathlib import Path

from emodarts_core.config import ConfigError
from emodarts_core.training.rundir import RunDir

from .parameters import SweepParams, params_differences
from .plan import Task

MANIFEST = "sweep.json"
HOSTS = "sweep.hosts.json"  # task key -> its node's label with the host name; kept out of commits
MANIFEST_FORMAT = 2
STATUSES = ("done", "running", "failed", "pending")


def now_iso() -> str:
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

    def to_dict(self, hosts: bool = True) -> dict:
        """The manifest's entry; with `hosts=False`, `node` without its host name (the node id prefix)."""
        out = {"key": self.task.key, **dataclasses.asdict(self.task)}
        out.update({k: v for k, v in dataclasses.asdict(self).items() if k != "task"})
        if not hosts and self.node:
            out["node"] = self.node.rsplit("/", 1)[-1]
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
    """Whether any run directory under `results_dir` has computed something (RunDir.has_run):
    a run that stopped before its first checkpoint binds no setting."""
    return any(RunDir(config.parent).has_run() for config in Path(results_dir).glob("*/**/config.json"))


def check_params_match(results_dir, params: SweepParams) -> None:
    """Refuse other settings in a folder that holds runs; a manifest whose sweep never got
    as far as starting a run (e.g. its data failed to prepare) binds nothing."""
    stored = read_manifest(results_dir)
    if stored is None:
        return
    diff = params_differences(stored.get("params", {}), params.to_dict())
    if diff and _any_run_started(results_dir):
        raise ConfigError(f"{results_dir} holds a sweep run with other parameters (differing: {', '.join(diff)}); "
                          "use a new results folder for new settings")

