"""`--stack K`: a fold's searches (seeds and the prior control) run as one stacked task,
each into its own task's run directory with exactly the files of a single search."""

import dataclasses
import json

import pytest

from emodarts_core.config import ConfigError
from emodarts_core.darts.search import run_search
from emodarts_core.study.sweep.parameters import load_params
from emodarts_core.study.sweep.plan import plan_tasks
from emodarts_core.study.sweep.stacking import run_search_group, search_groups, search_settings
from emodarts_core.training.rundir import RunDir
from loop_helpers import single_thread  # noqa: F401

PARAMS = {"network": {"preset": "smoke", "input_size": [128, 128], "stem_stride": 8},
          "search": {"epochs": 2, "batch_size": 16}, "train": {"epochs": 1, "batch_size": 16}}


def _files(run_dir) -> set:
    return {str(p.relative_to(run_dir).parent / p.name.split(".tfevents")[0]) for p in run_dir.rglob("*")
            if "lock" not in p.name}


def test_a_folds_seeds_and_prior_search_stacked_into_their_own_run_dirs(tmp_path):
    params = load_params(PARAMS)
    tasks = plan_tasks(["synthetic"], [1], ["emodarts"], [], seeds=[0, 1], controls=["prior"],
                       control_settings=params.controls)
    groups = search_groups(tasks, params, 4)
    assert len(groups) == 1 and sorted((t.kind, t.seed) for t in groups[0]) == [
        ("darts", 0), ("darts", 1), ("prior", 0), ("prior", 1)]
    assert [len(g) for g in search_groups(tasks, params, 3)] == [3, 1]
    outcomes = run_search_group(groups[0], params, tmp_path)
    assert set(outcomes.values()) == {"finished"}

    from data_prep import load_fold
    task = next(t for t in groups[0] if t.kind == "darts" and t.seed == 1)
    net_cfg, cfg = search_settings(task, params)
    single = run_search(load_fold("synthetic", None, 1, seed=params.fold_seed), net_cfg, cfg, tmp_path / "single")
    for t in groups[0]:
        run_dir = t.run_dir(tmp_path, "search")
        assert RunDir(run_dir).is_finished() and _files(run_dir) == _files(single.run_dir)
        stored = json.loads((run_dir / "config.json").read_text())["search"]
        assert stored["seed"] == t.seed and stored["freeze_alpha"] == (t.kind == "prior")
    same = task.run_dir(tmp_path, "search")
    # the same search, run singly or stacked, in the same form (float32 values differ by rounding)
    assert (single.run_dir / "metrics.csv").read_text().splitlines()[0] == (same / "metrics.csv").read_text().splitlines()[0]
    a, b = (json.loads((d / "genotype.json").read_text()) for d in (single.run_dir, same))
    assert set(a) == set(b) and set(a["metadata"]) == set(b["metadata"])
    a, b = (json.loads((d / "alpha_history.json").read_text()) for d in (single.run_dir, same))
    assert set(a) == set(b) and [set(e) for e in a["epochs"]] == [set(e) for e in b["epochs"]]
    # a second run of the group keeps the finished searches as they are
    before = (same / "FINISHED").read_text()
    assert set(run_search_group(groups[0], params, tmp_path).values()) == {"finished"}
    assert (same / "FINISHED").read_text() == before


def test_a_nested_studys_fold_is_stacked_under_its_own_choices(tmp_path, monkeypatch):
    """The group makes the fold's choices (from its training speakers) before searching,
    each search runs under them, and each task then finds its search finished with the very
    settings it would have searched with."""
    from emodarts_core.study.nested import fold_choices
    from emodarts_core.study.sweep import execute_task
    from loop_helpers import tiny_fold

    monkeypatch.setattr("data_prep.load_fold", lambda *args, **kwargs: tiny_fold())
    nested = {"groups": [0], "baselines": ["cnn"], "settings": ["adam-coefficient"],
              "search_normalise": ["none", "coefficient"], "random_architectures": 1}
    params = load_params({"network": {"preset": "smoke", "input_size": [16, 16]},
                          "train": {"epochs": 1, "batch_size": 4},
                          "search": {"epochs": 1, "batch_size": 4, "normalise": "utterance"},  # never chosen here
                          "nested": nested})
    tasks = plan_tasks(["synthetic"], [1], ["emodarts"], [], seeds=[0, 1], controls=["prior"],
                       control_settings=params.controls, protocols=("full",))
    groups = search_groups(tasks, params, 4)
    assert len(groups) == 1 and len(groups[0]) == 4
    assert set(run_search_group(groups[0], params, tmp_path).values()) == {"finished"}
    choices = fold_choices(tmp_path, "synthetic", 1, tiny_fold(), params)  # read back, not made again
    for t in groups[0]:
        stored = json.loads((t.run_dir(tmp_path, "search") / "config.json").read_text())["search"]
        assert stored["normalise"] == choices["search_space"]["normalise"]
    with pytest.raises(ConfigError, match="fold's choices"):
        search_settings(groups[0][0], params)
    task = next(t for t in groups[0] if t.kind == "darts" and t.seed == 1)
    finished = (task.run_dir(tmp_path, "search") / "FINISHED").read_text()
    outcome = execute_task(task, params, tmp_path)
    assert outcome["stages"]["search"]["state"] == "finished"
    assert (task.run_dir(tmp_path, "search") / "FINISHED").read_text() == finished
