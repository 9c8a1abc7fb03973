"""Feature normalisation: what each setting computes, and that test speakers never contribute."""

import dataclasses
import json

import numpy as np
import pytest

from data_prep.toy import toy_split
from emodarts_core.config import ConfigError, TrainConfig
from emodarts_core.darts.search import run_search
from emodarts_core.training.normalise import NORMALISATION, Normaliser, fit_normaliser, normalise_protocol
from emodarts_core.training.protocols import protocol_data
from emodarts_core.training.train import run_retrain
from loop_helpers import search_cfg, single_thread, tiny_fold, tiny_net, train_cfg  # noqa: F401


def _shifted(split, scale: float, shift: float):
    """`split` with features scaled and shifted per coefficient, far from the others' range."""
    X = np.asarray(split.X, dtype=np.float32) * scale + shift * np.arange(split.X.shape[1])[None, :, None]
    return dataclasses.replace(split, X=X.astype(np.float32))


def test_coefficient_statistics_match_a_float64_reference():
    split = _shifted(toy_split(20, (8, 6), seed=4), 30.0, -40.0)
    norm = fit_normaliser("coefficient", split)
    x = np.asarray(split.X, dtype=np.float64)
    np.testing.assert_allclose(norm.mean, x.mean(axis=(0, 2)), rtol=1e-12)
    np.testing.assert_allclose(norm.std, x.std(axis=(0, 2)), rtol=1e-12)
    z = norm.apply(split.X).astype(np.float64)
    np.testing.assert_allclose(z.mean(axis=(0, 2)), 0.0, atol=1e-5)  # float32 output: about 1e-7 relative
    np.testing.assert_allclose(z.std(axis=(0, 2)), 1.0, rtol=1e-5)
    assert norm.fitted_on == {"n": 20, "speakers": sorted(set(split.speakers))}


def test_utterance_normalisation_standardises_each_utterance_alone():
    split = _shifted(toy_split(5, (8, 6), seed=5), 10.0, 7.0)
    norm = fit_normaliser("utterance", split)
    assert norm.mean is None and norm.std is None
    z = norm.apply(split.X).astype(np.float64)
    np.testing.assert_allclose(z.mean(axis=2), 0.0, atol=1e-5)
    np.testing.assert_allclose(z.std(axis=2), 1.0, rtol=1e-5)
    # one utterance's output does not depend on the others
    np.testing.assert_array_equal(norm.apply(split.X[2:3])[0], norm.apply(split.X)[2])


def test_none_leaves_the_features_and_a_round_trip_keeps_the_statistics():
    split = toy_split(6, (8, 6), seed=6)
    np.testing.assert_array_equal(fit_normaliser("none", split).apply(split.X), split.X)
    norm = fit_normaliser("coefficient", split)
    again = Normaliser.from_dict(json.loads(json.dumps(norm.to_dict())))
    np.testing.assert_array_equal(again.apply(split.X), norm.apply(split.X))


def test_unknown_settings_are_refused_before_any_work():
    with pytest.raises(ConfigError, match="coefficient"):
        TrainConfig(normalise="global").validate()
    with pytest.raises(ConfigError, match="adam"):
        TrainConfig(optimizer="rmsprop").validate()
    with pytest.raises(ValueError, match="utterance"):
        fit_normaliser("speaker", toy_split(4))


@pytest.mark.parametrize("protocol", ["paper", "full", "holdout"])
def test_statistics_come_from_the_speakers_the_network_trains_on(protocol):
    fold = tiny_fold()
    splits, norm = normalise_protocol(protocol_data(fold, protocol), "coefficient")
    raw = protocol_data(fold, protocol)
    assert set(norm.fitted_on["speakers"]) == set(raw.train.speakers)
    assert not set(norm.fitted_on["speakers"]) & set(raw.score.speakers)
    np.testing.assert_allclose(norm.mean, np.asarray(raw.train.X, np.float64).mean(axis=(0, 2)), rtol=1e-12)


def test_test_speakers_never_change_the_statistics_of_a_run(tmp_path):
    """Retrain twice, the second time with the test speakers' features changed beyond
    recognition: the stored statistics are identical. Changing one training utterance
    does change them (so the comparison can fail)."""
    fold = tiny_fold()
    cfg = train_cfg(epochs=1, protocol="full", normalise="coefficient")

    def stats(fold_data, name):
        run_retrain(fold_data, "cnn", tiny_net(), cfg, tmp_path / name)
        return json.loads((tmp_path / name / NORMALISATION).read_text())

    first = stats(fold, "a")
    wild = dataclasses.replace(fold, test=_shifted(fold.test, 1000.0, 5e4))
    assert stats(wild, "b") == first
    assert not set(first["fitted_on"]["speakers"]) & set(fold.test.speakers)
    X = np.array(fold.train.X)
    X[0] += 3.0
    assert stats(dataclasses.replace(fold, train=dataclasses.replace(fold.train, X=X)), "c")["mean"] != first["mean"]


def test_the_search_fits_its_statistics_on_the_search_split_only(tmp_path):
    fold = tiny_fold(n_search=8)
    run_search(fold, tiny_net(), search_cfg(epochs=1, normalise="coefficient"), tmp_path / "s")
    stored = json.loads((tmp_path / "s" / NORMALISATION).read_text())
    assert stored["fitted_on"]["speakers"] == sorted(set(fold.search.speakers))
    np.testing.assert_allclose(stored["mean"], np.asarray(fold.search.X, np.float64).mean(axis=(0, 2)), rtol=1e-12)
