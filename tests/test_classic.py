"""The classic baseline: utterance statistics, a linear classifier, C chosen on training speakers."""

import dataclasses
import json

import numpy as np
import pytest

from data_prep.toy import toy_fold
from emodarts_core.config import ConfigError, TrainConfig
from emodarts_core.study.results import collect_study
from emodarts_core.training.classic import (ClassicConfig, choose_C, choose_setting, forget_choices, run_classic,
                                            statistics_columns, utterance_statistics)


def _cfg(protocol="full", seed=0):
    return TrainConfig(protocol=protocol, seed=seed, device="cpu", progress=False)


def test_statistics_match_a_float64_reference():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((3, 5, 20)).astype(np.float32) * 50 - 200
    stats = utterance_statistics(X)
    x = X.astype(np.float64)
    assert stats.shape == (3, 30)
    np.testing.assert_allclose(stats[:, :5], x.mean(axis=2), rtol=1e-12)
    np.testing.assert_allclose(stats[:, 5:10], x.std(axis=2), rtol=1e-12)
    np.testing.assert_array_equal(stats[:, 10:15], x.min(axis=2))
    np.testing.assert_array_equal(stats[:, 15:20], x.max(axis=2))
    # a linear ramp has a constant delta equal to its slope (away from the padded edges)
    ramp = np.tile(np.arange(20, dtype=np.float64) * 0.5, (1, 2, 1))
    delta_mean = utterance_statistics(ramp)[0, 8:10]
    assert np.all(np.abs(delta_mean - 0.5) < 0.15)


def test_it_learns_a_separable_generated_corpus(tmp_path):
    fold = toy_fold(n_search=40, n_train=24, n_test=24)
    result = run_classic(fold, _cfg(), tmp_path / "run")
    assert result.test_ua == 1.0
    stored = json.loads((tmp_path / "run" / "result.json").read_text())
    assert stored["one_class"] is False and stored["n_test"] == 24
    assert stored["predictions"]["ids"] == fold.test.ids
    assert stored["choice"]["C"] in ClassicConfig().Cs
    assert (tmp_path / "run" / "FINISHED").is_file()
    again = run_classic(fold, _cfg(), tmp_path / "run", resume=True)  # finished: read back, not refitted
    assert again.test_ua == result.test_ua


def test_its_C_is_chosen_without_the_test_speakers(tmp_path):
    """The leave-one-speaker-out scores and the chosen C stay the same when the test
    speakers' features and labels are replaced by anything else."""
    fold = toy_fold(n_search=30, n_train=18, n_test=12)
    forget_choices()  # each run makes its own choice, rather than reuse one made on the same training data
    run_classic(fold, _cfg(), tmp_path / "a")
    forget_choices()
    rng = np.random.default_rng(1)
    wild = dataclasses.replace(fold.test, X=(rng.standard_normal(fold.test.X.shape) * 1e3).astype(np.float32),
                               y=rng.permutation(fold.test.y))
    run_classic(dataclasses.replace(fold, test=wild), _cfg(), tmp_path / "b")
    a, b = (json.loads((tmp_path / n / "result.json").read_text())["choice"] for n in "ab")
    assert a == b
    config = json.loads((tmp_path / "a" / "config.json").read_text())
    assert not set(config["protocol"]["train"]["speakers"]) & set(fold.test.speakers)


def test_choose_C_holds_out_whole_speakers_and_prefers_the_smaller_C_on_ties():
    rng = np.random.default_rng(2)
    y = np.repeat([0, 1], 20)
    X = rng.standard_normal((40, 3)) + 10.0 * y[:, None]  # separable at any C: every C ties at UA 1
    speakers = np.tile(["a", "b", "c", "d"], 10)
    C, scores = choose_C(X, y, speakers, ClassicConfig(Cs=(10.0, 0.1, 1.0)))
    assert scores == {0.1: 1.0, 1.0: 1.0, 10.0: 1.0} and C == 0.1
    with pytest.raises(ConfigError, match="2 training speakers"):
        choose_C(X, y, ["a"] * 40, ClassicConfig())


def test_bad_settings_are_refused():
    with pytest.raises(ConfigError, match="logistic"):
        ClassicConfig(model="forest").validate()
    with pytest.raises(ConfigError, match="Cs"):
        ClassicConfig(Cs=(0.0,)).validate()


def test_its_runs_enter_the_study_with_one_row_per_seed(tmp_path):
    fold = toy_fold(n_search=30, n_train=18, n_test=12)
    for seed in (0, 1):
        tags = {"dataset": "synthetic", "protocol": "full", "model": "classic", "scope": "", "fold": 1,
                "seed": seed, "arch": None}
        run_classic(fold, _cfg(seed=seed), tmp_path / "classic" / f"seed{seed}", study=tags)
    study = collect_study(tmp_path)
    assert list(study["model"]) == ["classic", "classic"] and list(study["seed"]) == [0, 1]
    assert study["ua"].iloc[0] == study["ua"].iloc[1]  # deterministic: the seed changes nothing


def test_statistics_columns_keep_the_first_coefficients_of_each_block():
    rng = np.random.default_rng(4)
    X = rng.standard_normal((3, 5, 20))
    full = utterance_statistics(X)
    np.testing.assert_array_equal(full[:, statistics_columns(5, 2)], utterance_statistics(X[:, :2]))
    assert list(statistics_columns(5, None)) == list(range(30)) == list(statistics_columns(5, 9))


def test_the_family_coefficients_and_C_are_chosen_by_leave_one_speaker_out():
    """On classes that differ by radius alone no linear model does better than chance, and
    the RBF SVM wins; only the first coefficient carries the radius, so with ties the
    fewest coefficients win; every candidate is scored."""
    rng = np.random.default_rng(6)
    n = 160
    y = np.repeat([0, 1], n // 2)
    radius = np.where(y == 0, 1.0, 3.0) + 0.2 * rng.standard_normal(n)
    angle = rng.uniform(0, 2 * np.pi, n)
    features = np.column_stack([radius * np.cos(angle), radius * np.sin(angle)])
    speakers = np.tile(["a", "b", "c", "d"], n // 4)
    cfg = ClassicConfig(model=["logistic", "svm", "rbf"], Cs=(0.1, 1.0, 10.0)).validate()
    best, scores = choose_setting(features, y, speakers, cfg)
    assert best["model"] == "rbf" and len(scores) == 9
    assert max(v for k, v in scores.items() if k.startswith("rbf")) > 0.9
    assert max(v for k, v in scores.items() if not k.startswith("rbf")) < 0.75
    with pytest.raises(ConfigError, match="n_mfcc"):
        ClassicConfig(n_mfcc=[0, 5]).validate()
    with pytest.raises(ConfigError, match="repeated"):
        ClassicConfig(model=["rbf", "rbf"]).validate()


def test_a_nested_run_records_its_choice_and_who_judged_it(tmp_path):
    fold = toy_fold(n_search=30, n_train=18, n_test=12)
    n_coefficients = fold.test.X.shape[1]
    cfg = ClassicConfig(model=["logistic", "rbf"], Cs=(0.1, 1.0), n_mfcc=[1, n_coefficients])
    run_classic(fold, _cfg(), tmp_path / "a", cfg=cfg)
    choice = json.loads((tmp_path / "a" / "result.json").read_text())["choice"]
    assert choice["model"] in ("logistic", "rbf") and choice["n_mfcc"] in (1, n_coefficients)
    assert len(choice["loso_ua"]) == 2 * 2 * 2
    assert choice["judged_by"] == sorted(set(fold.search.speakers) | set(fold.train.speakers))
    assert not set(choice["judged_by"]) & set(fold.test.speakers)
    assert choice["test_speakers"] == sorted(set(fold.test.speakers))


def test_a_choice_is_made_once_per_process_for_the_same_training_data(tmp_path, monkeypatch):
    """Every seed of a (fold, protocol) fits the same training utterances: the second run
    reuses the first's choice, and other data or another grid choose again."""
    import emodarts_core.training.classic as classic

    forget_choices()
    calls = []
    real = classic.choose_setting
    monkeypatch.setattr(classic, "choose_setting", lambda *a, **k: calls.append(1) or real(*a, **k))
    fold = toy_fold(n_search=30, n_train=18, n_test=12)
    cfg = ClassicConfig(model=["logistic", "rbf"], Cs=(0.1, 1.0))
    a = run_classic(fold, _cfg(seed=0), tmp_path / "a", cfg=cfg)
    b = run_classic(fold, _cfg(seed=1), tmp_path / "b", cfg=cfg)
    assert len(calls) == 1 and a.test_ua == b.test_ua
    choice = [json.loads((tmp_path / n / "result.json").read_text())["choice"] for n in "ab"]
    assert choice[0] == choice[1]
    run_classic(fold, _cfg(seed=0), tmp_path / "c", cfg=ClassicConfig(model="rbf", Cs=(0.1, 1.0)))
    run_classic(fold, _cfg(protocol="paper"), tmp_path / "d", cfg=cfg)  # other training utterances
    assert len(calls) == 3
