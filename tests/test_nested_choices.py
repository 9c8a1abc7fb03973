"""Settings chosen inside each fold from its training speakers only, and the provenance check
that fails when a speaker who informed a choice is one of the fold's test speakers."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from data_prep import Split
from emodarts_core.config import ConfigError
from emodarts_core.study.nested import (CHOICES, NestedConfig, check_provenance, choose_fold, fold_choices,
                                        provenance, scan_provenance)
from emodarts_core.study.sweep import Task, execute_task, load_params
from loop_helpers import single_thread, tiny_fold  # noqa: F401

REPO = Path(__file__).resolve().parents[1]
NESTED = {"groups": [0, 1], "baselines": ["cnn"], "settings": ["sgd-none", "adam-coefficient"],
          "search_normalise": ["coefficient", "none"], "random_architectures": 1}
PARAMS = {"network": {"preset": "smoke", "input_size": [16, 16]}, "train": {"epochs": 1, "batch_size": 4},
          "search": {"epochs": 1, "batch_size": 4}, "nested": NESTED}


def _scrambled_test(fold):
    rng = np.random.default_rng(11)
    return dataclasses.replace(fold, test=Split(X=(rng.standard_normal(fold.test.X.shape) * 50).astype(np.float32),
                                                y=rng.permutation(fold.test.y), ids=fold.test.ids,
                                                speakers=fold.test.speakers))


def test_a_folds_choices_come_from_its_training_speakers_and_ignore_its_test_split(tmp_path):
    """Every speaker that trained or judged a choice is a training speaker of the fold; the
    choices and every score behind them are the same when the test split is replaced by noise."""
    params, fold = load_params(PARAMS), tiny_fold()
    a = choose_fold(fold, params, params.nested_config(), tmp_path / "a", fold=1)
    b = choose_fold(_scrambled_test(fold), params, params.nested_config(), tmp_path / "b", fold=1)
    record = a["provenance"]
    training = set(fold.search.speakers) | set(fold.train.speakers)
    assert set(record["trained_on"]) == training and set(record["judged_by"]) <= training
    assert record["test_speakers"] == sorted(set(fold.test.speakers))
    assert not (set(record["judged_by"]) | set(record["trained_on"])) & set(fold.test.speakers)
    assert a["baselines"]["cnn"]["setting"] in NESTED["settings"]
    assert a["search_space"]["normalise"] in NESTED["search_normalise"]
    assert {k: a[k] for k in ("baselines", "baseline_scores", "search_space")} == \
        {k: b[k] for k in ("baselines", "baseline_scores", "search_space")}
    assert json.loads((tmp_path / "a" / CHOICES).read_text())["provenance"] == record
    assert "rule" in a["alpha_budget"]["how"]


def test_a_choice_informed_by_a_test_speaker_is_refused(tmp_path):
    record = provenance(tiny_fold(), (0, 1))
    check_provenance(record)  # the real record passes
    for key in ("judged_by", "trained_on"):
        with pytest.raises(ConfigError, match=f"test speaker.*{key}"):
            check_provenance({**record, key: record[key] + [record["test_speakers"][0]]}, "planted")
    with pytest.raises(ConfigError, match="names no test speakers"):
        check_provenance({**record, "test_speakers": []})
    leak = tmp_path / "emodb" / "classic" / "fold1" / "seed0" / "retrain-full"
    leak.mkdir(parents=True)
    (leak / "result.json").write_text(json.dumps({"choice": {"judged_by": ["03", "08"], "test_speakers": ["08"]}}))
    with pytest.raises(ConfigError, match="retrain-full.*08"):
        scan_provenance(tmp_path)


def test_inner_groups_that_coincide_are_counted_and_warned_about(tmp_path):
    """holdout_speakers draws a group by seed from the sorted speakers: with 8 training
    speakers in pairs, seeds 1 and 2 both draw the first two. The record counts the distinct
    groups and choose_fold warns before it tunes anything."""
    from emodarts_core.study.nested import NestedGroupsWarning, warn_coinciding_groups

    speakers = [f"{k:02d}" for k in range(8)]
    record = {"groups": {"0": ["03", "05"], "1": ["00", "01"], "2": ["00", "01"]}}
    with pytest.warns(NestedGroupsWarning, match=r"seeds 1 and 2 draw the same inner group \(00 \+ 01\).*2 distinct"):
        warn_coinciding_groups(record, "fold1")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_coinciding_groups({"groups": {"0": ["03", "05"], "1": ["00", "01"], "5": ["02", "07"]}})
    from emodarts_core.training.protocols import holdout_speakers

    assert holdout_speakers(speakers, 1) == holdout_speakers(speakers, 2) == ["00", "01"]
    fold = tiny_fold()
    same = provenance(fold, (1, 2))
    assert same["distinct_groups"] == (1 if same["groups"]["1"] == same["groups"]["2"] else 2)
    assert provenance(fold, (0,))["distinct_groups"] == 1


def test_no_committed_choice_was_informed_by_a_test_speaker_of_its_fold():
    """Every provenance record of the committed studies (nested choices.json, and the choice
    of each classic or egemaps run that names who judged it) keeps the fold's test speakers out;
    the EmoDB rerun's five folds each have their record (so the check is not vacuous)."""
    checked = scan_provenance(REPO / "results")
    assert sum(p.name == CHOICES for p in checked) >= 5


def test_bad_nested_settings_are_refused():
    for bad, message in (({"groups": []}, "groups"), ({"settings": ["sgd-fast"]}, "settings"),
                         ({"baselines": ["classic"]}, "baselines"), ({"random_architectures": 0}, "random_arch"),
                         ({"search_normalise": ["global"]}, "search_normalise"), ({"inner": 3}, "inner")):
        with pytest.raises(ConfigError, match=message):
            load_params({**PARAMS, "nested": {**NESTED, **bad}})
    assert NestedConfig().validate().groups == (0, 1, 2)


def test_the_sweep_trains_each_fold_with_its_own_choices(tmp_path, monkeypatch):
    monkeypatch.setattr("data_prep.load_fold", lambda *args, **kwargs: tiny_fold())
    params = load_params(PARAMS)
    assert params.to_dict()["nested"]["groups"] == [0, 1]
    execute_task(Task("synthetic", 1, "baseline", "cnn", protocols=("full",)), params, tmp_path)
    execute_task(Task("synthetic", 1, "random", "random", arch=0, protocols=("full",)), params, tmp_path)
    execute_task(Task("synthetic", 1, "darts", "emodarts", protocols=("paper_equal",)), params, tmp_path)
    choices = fold_choices(tmp_path, "synthetic", 1, tiny_fold(), params)  # read back, not made again
    chosen = choices["baselines"]["cnn"]
    cnn = json.loads((tmp_path / "synthetic/cnn/fold1/seed0/retrain-full/config.json").read_text())["train"]
    assert (cnn["optimizer"], cnn["normalise"]) == (chosen["optimizer"], chosen["normalise"])
    tags = json.loads((tmp_path / "synthetic/cnn/fold1/seed0/retrain-full/config.json").read_text())["study"]
    assert tags["choices"] == "synthetic/nested/fold1/choices.json" and tags["model"] == "cnn"
    rnd = json.loads((tmp_path / "synthetic/random/fold1/seed0/arch0/retrain-full/config.json").read_text())["train"]
    assert rnd["normalise"] == choices["search_space"]["normalise"]
    searched = tmp_path / "synthetic/emodarts/fold1/seed0"
    search = json.loads((searched / "search/config.json").read_text())["search"]
    retrain = json.loads((searched / "retrain-paper_equal/config.json").read_text())["train"]
    assert search["normalise"] == retrain["normalise"] == choices["search_space"]["normalise"]
    assert (tmp_path / "synthetic/nested/fold1" / CHOICES).is_file()


def test_the_command_makes_every_folds_choices_before_a_sweep(tmp_path, capsys):
    """On a generated corpus: one choices.json per fold, each naming only that fold's training
    speakers, and a second run reads them back."""
    import yaml

    from data_fixtures import SMALL_CFG
    from data_prep import load_fold
    from data_prep.prepare import prepare
    from data_prep.synthetic import generate
    from emodarts_core.study.nested import main

    corpus = generate(tmp_path / "corpus", seed=5, n_speakers=10, per_class_per_speaker=2)
    store = prepare("synthetic", corpus, tmp_path / "store", feature_config=SMALL_CFG, jobs=1, progress=False)
    size = list(load_fold("synthetic", store.path, 1, seed=0).test.X.shape[1:])
    nested = {**NESTED, "groups": [0], "settings": ["adam-coefficient"], "search_normalise": ["coefficient"]}
    profile = tmp_path / "p.yaml"
    profile.write_text(yaml.safe_dump({**PARAMS, "network": {"preset": "smoke", "input_size": size},
                                       "nested": nested}))
    argv = ["--params", str(profile), "--dataset", "synthetic", "--data-dir", str(store.path), "--folds", "1", "2",
            "--results", str(tmp_path / "results")]
    assert main(argv) == 0
    for fold in (1, 2):
        record = json.loads((tmp_path / f"results/synthetic/nested/fold{fold}" / CHOICES).read_text())["provenance"]
        test = set(load_fold("synthetic", store.path, fold, seed=0).test.speakers)
        assert set(record["test_speakers"]) == test and not test & set(record["trained_on"])
    assert len(scan_provenance(tmp_path / "results")) == 2
    assert main(argv) == 0 and capsys.readouterr().out.count("judged by") == 4
    with pytest.raises(ConfigError, match="no nested section"):
        main([*argv[:1], "sweep_smoke", *argv[2:]])
