"""The `prior` control in a sweep: the study's search with its α frozen at their initial values."""

from __future__ import annotations

import json
import warnings

from emodarts_core.study.sweep import Task, execute_task, load_params, plan_tasks
from loop_helpers import SIZE, single_thread, tiny_fold  # noqa: F401  (single_thread: autouse fixture)

TINY_PARAMS = {"network": {"preset": "smoke", "input_size": list(SIZE)},
               "search": {"epochs": 2, "batch_size": 4, "device": "cpu", "alpha_lr": 0.05},
               "train": {"epochs": 1, "batch_size": 4, "device": "cpu"}}


def test_prior_is_planned_like_a_search_beside_the_other_controls():
    tasks = plan_tasks(["synthetic"], [1], ["emodarts"], seeds=[0], protocols=["paper", "full"],
                       controls=["prior", "random", "random_search"])
    prior = [t for t in tasks if t.kind == "prior"]
    assert len(prior) == 1 and prior[0].key == "synthetic/prior/fold1/seed0"
    assert prior[0].stages == ("search", "retrain-paper", "retrain-full")


def test_prior_starts_where_the_search_starts_and_never_moves_its_alpha(tmp_path, monkeypatch):
    monkeypatch.setattr("data_prep.load_fold", lambda *args, **kwargs: tiny_fold())
    params = load_params(TINY_PARAMS)
    searched, prior = Task("synthetic", 1, "darts", "emodarts", seed=0), Task("synthetic", 1, "prior", "prior", seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for task in (searched, prior):
            execute_task(task, params, tmp_path)
    alpha = {t.kind: json.loads((t.run_dir(tmp_path, "search") / "alpha_history.json").read_text())
             for t in (searched, prior)}
    assert alpha["prior"]["initial"] == alpha["darts"]["initial"]  # the same (fold, seed) start
    assert all(e["probs"] == alpha["prior"]["initial"]["probs"] for e in alpha["prior"]["epochs"])
    assert alpha["darts"]["epochs"][-1]["probs"] != alpha["darts"]["initial"]["probs"]
    config = json.loads((prior.run_dir(tmp_path, "search") / "config.json").read_text())
    assert config["search"]["freeze_alpha"] is True and config["search"]["alpha_lr"] == 0.05
    retrain = json.loads((prior.run_dir(tmp_path, "retrain-paper") / "config.json").read_text())
    stored = json.loads((prior.run_dir(tmp_path, "search") / "genotype.json").read_text())
    assert retrain["study"]["model"] == "prior"
    assert retrain["model"]["genotype"] == {k: v for k, v in stored.items() if k != "metadata"}
