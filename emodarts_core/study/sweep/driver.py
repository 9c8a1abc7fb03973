"""The sweep's driver: `run_sweep` checks every argument, skips finished tasks without
starting Ray, prepares each dataset once, submits the tasks (one CPU, or a GPU when the
cluster has GPUs), follows them and records each outcome in the manifest.

A sweep is resumable: a task whose run directories are all FINISHED is skipped, and an
interrupted one continues from its checkpoints (`run_search` / `run_retrain` with
`resume=True`). A failed task never stops the others; its error text is in the progress
table, the manifest and the returned `SweepReport`.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

from emodarts_core.config import ConfigError
from emodarts_core.training.rundir import RunDir, RunExistsError

from . import cluster, leftovers, stacking
from .parameters import load_params
from .plan import plan_tasks
from .status import (HOSTS, MANIFEST, MANIFEST_FORMAT, STATUSES, SweepReport, TaskStatus, check_params_match,
                     format_table, now_iso, read_manifest)
from .task import StartBoard, check_input_size, error_text, remote_prepare, remote_task

POLL_SECONDS = 2.0


class SweepRecord:
    """What a running sweep knows of its tasks: their statuses (finished ones found on disk
    are reused), the manifest it writes after each change, and the printed progress table."""

    def __init__(self, tasks, params, results_dir, request, progress):
        self.results_dir, self.params, self.request, self.progress = Path(results_dir), params, request, progress
        self.began, self.began_iso = time.time(), now_iso()
        self.resources = {}
        previous = {t["key"]: t for t in (read_manifest(results_dir) or {}).get("tasks", [])}
        hosts = RunDir(results_dir).read_json(HOSTS) if RunDir(results_dir).exists(HOSTS) else {}
        self.statuses = []
        for task in tasks:
            before = previous.get(task.key, {})
            st = TaskStatus(task, attempts=before.get("attempts", 0))
            if task.is_finished(results_dir):
                st.status, st.reused = "done", True
                st.stages = {s: {"state": "finished"} for s in task.stages}
                if before.get("status") == "done":  # keep when, where and how long it ran
                    st.node, st.node_id = hosts.get(task.key, before.get("node")), before.get("node_id")
                    st.seconds, st.stages = before.get("seconds"), before["stages"]
                    st.warnings = before.get("warnings", [])
                st.result = _stored_result(task.run_dir(results_dir, task.stages[-len(task.protocols)]))
            self.statuses.append(st)

    def write(self, state: str) -> None:
        counts = {s: sum(t.status == s for t in self.statuses) for s in STATUSES}
        RunDir(self.results_dir).atomic_write_json(MANIFEST, {
            "format": MANIFEST_FORMAT, "state": state, "started": self.began_iso, "updated": now_iso(),
            "seconds": round(time.time() - self.began, 3), "request": self.request, "params": self.params.to_dict(),
            "ray": self.resources, "counts": counts, "tasks": [t.to_dict(hosts=False) for t in self.statuses]})
        RunDir(self.results_dir).atomic_write_json(HOSTS, {t.task.key: t.node for t in self.statuses if t.node})

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
              progress=True, stack: int = 1) -> SweepReport:
    """Run every search -> retrain chain, baseline and control of the sweep as Ray tasks.

    `datasets`, `folds` (1-based), `seeds`, `scopes`, `baselines` and `controls`
    (`plan.CONTROLS`) span the tasks; each task retrains under every one of `protocols`
    ("paper", "full"); `params` is a dict, a YAML path or `SweepParams` (`parameters`);
    `data_dirs` maps a dataset to its feature store or corpus root (`synthetic` needs
    none). `address`
    selects an existing Ray cluster (default: a private local instance with
    `num_workers` CPUs). `num_workers` also caps how many tasks run at once.
    `gpus_per_task="auto"` asks for one GPU per task when the cluster has GPUs, else a
    CPU; a number asks for that many. With `resume=False` a results folder that already
    holds any of these runs is refused. If Ray was already initialised (a notebook), that
    connection is used and left open. `stack` K > 1 first runs each fold's searches (seeds
    and `prior`) K at a time as stacked tasks (`stacking`). All arguments are checked before
    Ray starts.
    """
    params = load_params(params)
    tasks = plan_tasks(datasets, folds, scopes, baselines, seeds=seeds, protocols=protocols, controls=controls,
                       control_settings=params.controls)
    for scope in {t.name for t in tasks if t.kind == "darts"}:
        params.network_for(scope)
    results_dir = Path(results_dir).resolve()
    data_dirs = {k: str(Path(v).resolve()) for k, v in (data_dirs or {}).items()}
    unknown = sorted(set(data_dirs) - set(datasets))
    if unknown:
        raise ConfigError(f"data_dirs names datasets {unknown} that are not in the sweep ({', '.join(datasets)})")
    gpus_per_task = cluster.parse_gpus(gpus_per_task)
    if num_workers is not None and (not isinstance(num_workers, int) or num_workers < 1):
        raise ConfigError(f"num_workers must be a positive integer, got {num_workers!r}")
    if not isinstance(stack, int) or stack < 1:
        raise ConfigError(f"stack must be a positive integer, got {stack!r}")
    if stack > 1:
        stacking.search_groups(tasks, params, stack)  # refuses what cannot be stacked, before Ray starts
    if not resume:
        started = [t.key for t in tasks if t.has_run(results_dir)]
        if started:
            raise RunExistsError(f"{results_dir} already holds runs of {', '.join(started)}; pass resume=True "
                                 "to continue them or choose a new results folder")
    check_params_match(results_dir, params)
    request = {"datasets": list(datasets), "folds": list(folds), "seeds": list(seeds), "protocols": list(protocols),
               "scopes": list(scopes or []), "baselines": list(baselines or []), "controls": list(controls or []),
               "data_dirs": data_dirs, "address": address,
               "num_workers": num_workers, "gpus_per_task": gpus_per_task, "stack": stack}
    sweep = SweepRecord(tasks, params, results_dir, request, progress)
    results_dir.mkdir(parents=True, exist_ok=True)
    sweep.write("starting")
    sweep.show("plan")
    todo = [s for s in sweep.statuses if s.status == "pending"]
    if not todo:
        sweep.write("finished")
        return SweepReport(results_dir, results_dir / MANIFEST, sweep.statuses, time.time() - sweep.began)

    if address is None:  # a killed earlier sweep's private Ray instance, if any (leftovers.py)
        leftovers.stop_stale(results_dir)
        leftovers.tag_children()  # so that the record can prove which processes this sweep started
    ray, owned = cluster.init_ray(address, num_workers)
    if owned and address is None:
        leftovers.record(results_dir)
    state = "interrupted"
    try:
        resources = ray.cluster_resources()
        gpus = cluster.resolve_gpus(gpus_per_task, resources.get("GPU", 0.0))
        sweep.resources = {"cluster": {k: v for k, v in resources.items() if k in ("CPU", "GPU")},
                           "gpus_per_task": gpus, "cpus_per_task": 1}
        _submit_and_follow(ray, sweep, todo, data_dirs, gpus, num_workers)
        state = "finished"
    finally:
        sweep.write(state)
        if owned:
            ray.shutdown()
            leftovers.forget(results_dir)
    sweep.show("sweep finished")
    return SweepReport(results_dir, results_dir / MANIFEST, sweep.statuses, time.time() - sweep.began)


def _prepare_datasets(ray, sweep, todo, data_dirs) -> list[TaskStatus]:
    """Prepare each dataset once (in parallel); fail its tasks if that fails; return the rest."""
    prepare = ray.remote(num_cpus=1)(remote_prepare)
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
            failed[dataset] = f"preparing {dataset}: {error_text(cause)}"
    for st in todo:
        if st.task.dataset in failed:
            st.status, st.error = "failed", failed[st.task.dataset]
    if failed:
        sweep.write("running")
        sweep.show("data preparation failed for " + ", ".join(failed))
    return [s for s in todo if s.status == "pending"]


def _submit_and_follow(ray, sweep: SweepRecord, todo: list[TaskStatus], data_dirs: dict, gpus: float,
                       limit: int | None) -> None:
    """Submit the tasks (at most `limit` at once), follow them, record each outcome."""
    todo = _prepare_datasets(ray, sweep, todo, data_dirs)
    if sweep.request.get("stack", 1) > 1:  # a fold's searches stacked first; the tasks find them finished
        stacking.run_groups(ray, [st.task for st in todo], sweep.params, sweep.results_dir, data_dirs, gpus,
                            sweep.request["stack"], limit)
    board = ray.remote(num_cpus=0)(StartBoard).remote()
    remote = ray.remote(num_cpus=1, num_gpus=gpus, max_retries=2)(remote_task)
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
                outcome = {"status": "failed", "error": error_text(getattr(exc, "cause", None) or exc)}
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

