"""The selection rules as sweep models: `emodarts_pt`, `prior_pt` and `consensus`."""

from __future__ import annotations

import json
import warnings

import pytest

from emodarts_core.space import genotypes
from emodarts_core.study.consensus import consensus_genotype, final_probs
from emodarts_core.study.sweep import Task, execute_task, load_params, plan_tasks
from loop_helpers import SIZE, single_thread, tiny_fold  # noqa: F401  (single_thread: autouse fixture)

TINY_PARAMS = {"network": {"preset": "smoke", "input_size": list(SIZE), "scope": "rnn_att_only"},
               "search": {"epochs": 2, "batch_size": 4, "device": "cpu", "alpha_lr": 0.05},
               "train": {"epochs": 1, "batch_size": 4, "device": "cpu"},
               "controls": {"scope": "rnn_att_only"}}


def test_selection_models_are_planned_after_the_searches_they_read():
    tasks = plan_tasks(["synthetic"], [1], ["emodarts"], seeds=[0], protocols=["paper", "full"],
                       controls=["prior", "emodarts_pt", "prior_pt", "consensus"])
    kinds = [t.kind for t in tasks]
    assert kinds == ["darts", "prior", "emodarts_pt", "prior_pt", "consensus"]
    by_kind = {t.kind: t for t in tasks}
    assert by_kind["emodarts_pt"].stages == ("selection", "retrain-paper", "retrain-full")
    assert by_kind["prior_pt"].key == "synthetic/prior_pt/fold1/seed0"
    assert by_kind["consensus"].stages == ("retrain-paper", "retrain-full")


@pytest.mark.slow
def test_perturbation_model_runs_the_search_it_reads_and_retrains_what_it_selects(tmp_path, monkeypatch):
    monkeypatch.setattr("data_prep.load_fold", lambda *args, **kwargs: tiny_fold())
    params = load_params(TINY_PARAMS)
    pt = Task("synthetic", 1, "prior_pt", "prior_pt", seed=0, protocols=("full",))
    searched = Task("synthetic", 1, "prior", "prior", seed=0, protocols=("full",))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = execute_task(pt, params, tmp_path)  # before the prior's own task: it runs that search itself
        assert out["stages"]["selection"]["state"] == "new"
        again = execute_task(searched, params, tmp_path)
    assert again["stages"]["search"]["state"] == "finished"  # the prior task finds its search done
    record = json.loads((pt.run_dir(tmp_path, "selection") / "selection.json").read_text())
    retrain = json.loads((pt.run_dir(tmp_path, "retrain-full") / "config.json").read_text())
    assert retrain["study"]["model"] == "prior_pt"
    assert retrain["model"]["genotype"] == record["genotype"]
    assert json.loads((searched.run_dir(tmp_path, "search") / "config.json").read_text())["search"]["freeze_alpha"]


@pytest.mark.slow
def test_consensus_averages_the_sweeps_seeds_searches(tmp_path, monkeypatch):
    monkeypatch.setattr("data_prep.load_fold", lambda *args, **kwargs: tiny_fold())
    params = load_params(TINY_PARAMS)
    task = Task("synthetic", 1, "consensus", "consensus", seed=0, protocols=("full",))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(FileNotFoundError, match="manifest"):
            execute_task(task, params, tmp_path)
        (tmp_path / "sweep.json").write_text(json.dumps({"request": {"seeds": [0, 1]}}))
        execute_task(task, params, tmp_path)
    dirs = [Task("synthetic", 1, "darts", "rnn_att_only", seed=s).run_dir(tmp_path, "search") for s in (0, 1)]
    assert all((d / "FINISHED").is_file() for d in dirs)
    expected = consensus_genotype([final_probs(d) for d in dirs], params.network_for("rnn_att_only"))
    base = task.base_dir(tmp_path)
    assert genotypes.load(base / "genotype.json").to_dict() == expected.to_dict()
    assert json.loads((base / "consensus.json").read_text())["seeds"] == [0, 1]
    retrain = json.loads((task.run_dir(tmp_path, "retrain-full") / "config.json").read_text())
    assert retrain["study"]["model"] == "consensus" and retrain["model"]["genotype"] == expected.to_dict()


def test_random_reseed_retrains_randoms_architecture_under_another_seed(tmp_path, monkeypatch):
    monkeypatch.setattr("data_prep.load_fold", lambda *args, **kwargs: tiny_fold())
    params = load_params(TINY_PARAMS)
    first = Task("synthetic", 1, "random", "random", seed=0, arch=1, protocols=("full",))
    second = Task("synthetic", 1, "random_reseed", "random_reseed", seed=0, arch=1, protocols=("full",))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for task in (first, second):
            execute_task(task, params, tmp_path)
    configs = [json.loads((t.run_dir(tmp_path, "retrain-full") / "config.json").read_text()) for t in (first, second)]
    assert configs[0]["model"] == configs[1]["model"]  # the same architecture
    assert configs[0]["train"]["seed"] == 0 and configs[1]["train"]["seed"] == 1000
    assert configs[1]["study"]["model"] == "random_reseed" and configs[1]["study"]["arch"] == 1
