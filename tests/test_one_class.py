"""A run whose test predictions are all one class is flagged in result.json, study.csv and the tables."""

import json

import numpy as np
import pandas as pd
import torch

from emodarts_core.study import report
from emodarts_core.study.results import collect_study, summarise_study
from emodarts_core.training import train
from loop_helpers import single_thread, tiny_fold, tiny_net, train_cfg  # noqa: F401


class _Constant(torch.nn.Module):
    """Logits that favour class 0 by far whatever the input: a collapsed network."""

    def __init__(self):
        super().__init__()
        self.bias = torch.nn.Parameter(torch.tensor([50.0, 0.0, 0.0, 0.0]))

    def forward(self, x):
        return self.bias.expand(len(x), -1) + 0.0 * x.flatten(1).sum(1, keepdim=True)


def _study(tmp_path, name, seed):
    return {"dataset": "synthetic", "protocol": "full", "model": name, "scope": "", "fold": 1, "seed": seed,
            "arch": None}


def test_the_flag_in_result_json_and_study_csv(tmp_path, monkeypatch):
    fold = tiny_fold()
    train.run_retrain(fold, "cnn", tiny_net(), train_cfg(epochs=1, protocol="full"), tmp_path / "cnn" / "s0",
                      study=_study(tmp_path, "cnn", 0))
    monkeypatch.setattr(train, "build_model", lambda spec, net: (_Constant(), {"baseline": "cnn"}))
    train.run_retrain(fold, "cnn", tiny_net(), train_cfg(epochs=1, protocol="full"), tmp_path / "cnn" / "s1",
                      study=_study(tmp_path, "cnn", 1))
    collapsed = json.loads((tmp_path / "cnn" / "s1" / "result.json").read_text())
    assert collapsed["one_class"] is True and set(collapsed["predictions"]["y_pred"]) == {0}
    assert np.count_nonzero(np.asarray(collapsed["confusion"]).sum(axis=0)) == 1
    study = collect_study(tmp_path)
    flags = dict(zip(study["seed"], study["one_class"]))
    assert flags[1] is True or flags[1] == True  # noqa: E712 (a numpy or Python bool)
    normal = json.loads((tmp_path / "cnn" / "s0" / "result.json").read_text())
    assert flags[0] == normal["one_class"] == (len(set(normal["predictions"]["y_pred"])) == 1)
    summary = summarise_study(study, n_resamples=200, n_permutations=200, pooled_resamples=200)
    assert summary["n_one_class"].iloc[0] == 1 + int(normal["one_class"])
    assert f"{summary['n_one_class'].iloc[0]} one class" in report.summary_table(summary, "full")


def test_runs_from_before_the_flag_are_flagged_from_their_confusion_matrix(tmp_path):
    for seed, conf in ((0, [[3, 0], [4, 0]]), (1, [[2, 1], [1, 3]])):
        path = tmp_path / "cnn" / f"seed{seed}"
        path.mkdir(parents=True)
        (path / "config.json").write_text(json.dumps({"kind": "retrain", "study": _study(tmp_path, "cnn", seed)}))
        (path / "result.json").write_text(json.dumps({"test_ua": 0.5, "test_wa": 0.5, "confusion": conf,
                                                      "params": 10}))
    study = collect_study(tmp_path)
    assert study["one_class"].tolist() == [True, False]
    assert "one_class" in pd.read_csv(_written(tmp_path)).columns


def _written(root):
    from emodarts_core.study.results import write_study

    write_study(root, n_resamples=100, n_permutations=100, pooled_resamples=100)
    return root / "study.csv"
