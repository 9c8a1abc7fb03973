"""Baselines in a sweep: each with training settings of its own, and the classic one."""

import json

import pytest

from emodarts_core.config import ConfigError
from emodarts_core.study.results import collect_study
from emodarts_core.study.sweep import Task, execute_task, load_params, params_differences, plan_tasks
from loop_helpers import single_thread, tiny_fold  # noqa: F401

PARAMS = {"network": {"preset": "smoke", "input_size": [16, 16]}, "train": {"epochs": 1, "batch_size": 4},
          "baselines": {"cnn": {"optimizer": "adam", "lr": 0.001, "lr_min": 0.00001, "normalise": "coefficient"},
                        "classic": {"Cs": [0.1, 1.0]}}}


def test_a_baseline_trains_with_its_own_settings_and_the_others_with_train(tmp_path, monkeypatch):
    monkeypatch.setattr("data_prep.load_fold", lambda *args, **kwargs: tiny_fold())
    params = load_params(PARAMS)
    for name in ("cnn", "cnn_lstm"):
        execute_task(Task("synthetic", 1, "baseline", name, protocols=("full",)), params, tmp_path)
    cnn = json.loads((tmp_path / "synthetic/cnn/fold1/seed0/retrain-full/config.json").read_text())["train"]
    other = json.loads((tmp_path / "synthetic/cnn_lstm/fold1/seed0/retrain-full/config.json").read_text())["train"]
    assert (cnn["optimizer"], cnn["lr"], cnn["normalise"]) == ("adam", 0.001, "coefficient")
    assert (other["optimizer"], other["lr"], other["normalise"]) == ("sgd", 0.025, "none")
    assert (tmp_path / "synthetic/cnn/fold1/seed0/retrain-full/normalisation.json").is_file()


def test_classic_runs_through_the_sweep_under_both_protocols(tmp_path, monkeypatch):
    monkeypatch.setattr("data_prep.load_fold", lambda *args, **kwargs: tiny_fold(n_search=30, n_train=18))
    tasks = plan_tasks(["synthetic"], [1], [], ["classic"], seeds=[0, 1], protocols=["paper", "full"])
    assert [t.key for t in tasks] == ["synthetic/classic/fold1/seed0", "synthetic/classic/fold1/seed1"]
    for task in tasks:
        execute_task(task, load_params(PARAMS), tmp_path)
    study = collect_study(tmp_path)
    assert len(study) == 4 and set(study["model"]) == {"classic"}
    assert set(zip(study["protocol"], study["seed"])) == {(p, s) for p in ("paper", "full") for s in (0, 1)}
    result = json.loads((tmp_path / "synthetic/classic/fold1/seed0/retrain-full/result.json").read_text())
    assert result["choice"]["C"] in (0.1, 1.0)
    assert execute_task(tasks[0], load_params(PARAMS), tmp_path)["stages"]["retrain-full"]["state"] == "finished"


@pytest.mark.parametrize("baselines, message", [
    ({"resnet": {}}, "unknown baseline 'resnet'"),
    ({"cnn": {"optimiser": "adam"}}, "optimiser"),
    ({"cnn": {"normalise": "global"}}, "normalise"),
    ({"classic": {"model": "forest"}}, "forest"),
])
def test_bad_baseline_settings_are_refused(baselines, message):
    with pytest.raises(ConfigError, match=message):
        load_params({**PARAMS, "baselines": baselines})


def test_a_folder_of_an_earlier_sweep_still_matches_its_parameters():
    """Settings added since (normalisation, optimiser) at the value the earlier runs used are no difference."""
    current = load_params({"train": {"epochs": 1}}).to_dict()
    stored = json.loads(json.dumps(current))
    for section, key in (("train", "normalise"), ("train", "optimizer"), ("search", "normalise")):
        del stored[section][key]
    assert "baselines" not in current and params_differences(stored, current) == []
    changed = load_params({"train": {"epochs": 1, "normalise": "coefficient"}}).to_dict()
    assert params_differences(stored, changed) == ["train.normalise"]
