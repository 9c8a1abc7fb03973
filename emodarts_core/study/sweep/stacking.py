"""A sweep's searches of one fold run as stacked tasks (`--stack K`, `run_sweep(stack=K)`).

The searches of the study differ only in their seed and, for the `prior` control, in
their frozen α, so the searches of one (dataset, fold) can run through one stacked
network (`emodarts_core.darts.stacked`; docs/PERFORMANCE.md, "Many searches in one
step"). With `stack` K > 1 the sweep first runs, per (dataset, fold, network), groups of
at most K searches (the `darts` tasks' and the `prior` controls', in seed order) as one
task each, into the very run directories their own tasks use (`<task>/search`); each
holds exactly the files a single search writes. The tasks then run as always: their
search stage finds the finished run directory and goes on to the retrainings. A search
that a non-finite loss stopped is left with its last good checkpoint, and its own task
meets it again and fails with the single search's message; a search whose run directory
stands at another epoch than its group's is left to its own task (`run_search` resumes it).

A nested study (`emodarts_core.study.nested`) stacks too: its choices are made per fold,
once, from the fold's training speakers, and every network of the search space takes the
same chosen normalisation, so the searches of one fold still share their settings. A
group first makes (or reads) its fold's choices under the fold's file lock, exactly as
each task does, and its searches run under them.
"""

from __future__ import annotations

import dataclasses
from itertools import groupby

from emodarts_core.config import ConfigError

from .parameters import SweepParams
from .plan import SEARCHING_KINDS, Task
from .task import _network


def search_settings(task: Task, params: SweepParams, choices: dict | None = None):
    """(network, search settings) of `task`'s search, as `task.execute_task` makes them;
    a nested study's `choices` are its fold's (`nested.fold_choices`)."""
    search = params.search
    if params.nested:
        from emodarts_core.study.nested import apply_choices

        if choices is None:
            raise ConfigError(f"{task.key}: a nested study's search settings need its fold's choices")
        search, _ = apply_choices(choices, task.kind, task.name, search, params.train)
    search = dataclasses.replace(search, progress=False, seed=task.seed,
                                 freeze_alpha=task.kind == "prior" or search.freeze_alpha)
    return _network(task, params), search


def search_groups(tasks: list[Task], params: SweepParams, stack: int) -> list[list[Task]]:
    """The searching tasks in groups of at most `stack` that can share one stacked network:
    one dataset, fold and network each, in seed order (the prior beside its searched run)."""
    searching = [t for t in tasks if t.kind in SEARCHING_KINDS]

    def key(t):  # a nested study's choices are per fold, so they split no group of a fold
        return (t.dataset, t.fold, repr(_network(t, params)))

    groups = []
    for _, same in groupby(sorted(searching, key=lambda t: (key(t), t.seed, t.kind)), key=key):
        same = list(same)
        groups += [same[i:i + stack] for i in range(0, len(same), stack)]
    return groups


def run_search_group(group: list[Task], params: SweepParams, results_dir, data_dir=None, device=None) -> dict:
    """Run the searches of `group` stacked (finished ones are kept as they are); returns
    {task key: "finished" or the message that stopped it}."""
    from data_prep import load_fold
    from emodarts_core.darts.stacked import run_stacked_search
    from emodarts_core.training.rundir import RunDir

    first = group[0]
    fold = load_fold(first.dataset, data_dir, first.fold, seed=params.fold_seed)
    choices = None
    if params.nested:  # made once per fold under its lock, as each task makes them
        from emodarts_core.study.nested import fold_choices

        choices = fold_choices(results_dir, first.dataset, first.fold, fold, params)
    settings = [search_settings(t, params, choices) for t in group]
    dev = {"device": device} if device else {}
    cfgs = [dataclasses.replace(s, **dev) for _, s in settings]
    dirs = [t.run_dir(results_dir, "search") for t in group]
    starts = {RunDir(d).load_checkpoint()["epoch"] if RunDir(d).exists("checkpoint.pt") else 0
              for d in dirs if not RunDir(d).is_finished()}
    if len(starts) > 1:  # searches at different epochs: each task resumes its own
        return {t.key: "left to its task (checkpoints at different epochs)" for t in group}
    outcomes = run_stacked_search(fold, settings[0][0], cfgs, dirs, resume=True)
    return {t.key: (str(o) if isinstance(o, Exception) else "finished") for t, o in zip(group, outcomes)}


def remote_search_group(group: list[Task], params: SweepParams, results_dir: str, data_dir) -> dict:
    """The Ray task body of a stacked group; an error is reported, and the group's tasks
    then run their searches singly."""
    import ray

    device = None if ray.get_gpu_ids() or params.search.device != "auto" else "cpu"
    try:
        return run_search_group(group, params, results_dir, data_dir, device)
    except Exception as exc:  # the tasks' own searches run (and report) what is left
        return {t.key: f"{type(exc).__name__}: {exc}" for t in group}





def run_groups(ray, tasks: list[Task], params: SweepParams, results_dir, data_dirs: dict, gpus: float, stack: int,
               limit: int | None) -> dict:
    """Run the stacked search groups of `tasks` as Ray tasks (at most `limit` at once) and
    wait for them; returns {task key: outcome} (`run_search_group`)."""
    remote = ray.remote(num_cpus=1, num_gpus=gpus)(remote_search_group)
    queue, running, outcomes = search_groups(tasks, params, stack), [], {}
    while queue or running:
        while queue and (limit is None or len(running) < limit):
            group = queue.pop(0)
            running.append(remote.remote(group, params, str(results_dir), data_dirs.get(group[0].dataset)))
        ready, running = ray.wait(running, num_returns=1)
        outcomes.update(ray.get(ready[0]))
    return outcomes
__all__ = ["remote_search_group", "run_groups", "run_search_group", "search_groups", "search_settings"]
