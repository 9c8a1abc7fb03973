"""Retraining protocols: which speakers train, select and score, and that no test speaker
ever reaches training or selection."""

import json

import numpy as np
import pytest

from data_prep import Split
from emodarts_core.config import ConfigError
from emodarts_core.training.protocols import (equal_update_epochs, holdout_speakers, protocol_data,
                                              updates_per_epoch)
from emodarts_core.training.train import run_retrain
from loop_helpers import single_thread, tiny_fold, tiny_net, train_cfg  # noqa: F401


def _speakers(split) -> set:
    return set(split.speakers)


def test_paper_trains_on_the_training_split_and_selects_on_the_search_split():
    fold = tiny_fold()
    data = protocol_data(fold, "paper")
    assert data.train.ids == fold.train.ids and data.select.ids == fold.search.ids and data.score.ids == fold.test.ids


def test_full_trains_on_every_training_speaker_and_selects_nothing():
    fold = tiny_fold()
    data = protocol_data(fold, "full")
    assert data.select is None and data.score.ids == fold.test.ids
    assert sorted(data.train.ids) == sorted(fold.search.ids + fold.train.ids)
    row = {i: k for k, i in enumerate(data.train.ids)}
    for split in (fold.search, fold.train):  # features and labels travel with their ids
        for k, i in enumerate(split.ids):
            assert np.array_equal(data.train.X[row[i]], split.X[k]) and data.train.y[row[i]] == split.y[k]


def test_holdout_is_speaker_disjoint_and_never_touches_the_test_split():
    fold = tiny_fold()
    data = protocol_data(fold, "holdout", seed=3)
    assert _speakers(data.train).isdisjoint(_speakers(data.score))
    assert _speakers(data.train) | _speakers(data.score) == _speakers(fold.search) | _speakers(fold.train)
    assert not (set(data.train.ids) | set(data.score.ids)) & set(fold.test.ids)


def test_holdout_groups_are_seeded_and_never_empty_nor_everyone():
    speakers = [f"s{i}" for i in range(8)]
    assert holdout_speakers(speakers, 0) == holdout_speakers(speakers, 0)
    assert len({tuple(holdout_speakers(speakers, s)) for s in range(10)}) > 1
    assert 1 <= len(holdout_speakers(speakers[:2], 0)) < 2
    with pytest.raises(ConfigError, match="at least 2 training speakers"):
        holdout_speakers(["only"], 0)


def test_unknown_protocol_is_refused_before_any_work(tmp_path):
    with pytest.raises(ConfigError, match="valid: paper, full, paper_equal, holdout"):
        run_retrain(tiny_fold(), "cnn", tiny_net(), train_cfg(protocol="oracle"), tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_full_protocol_never_lets_a_test_speaker_reach_training_or_selection(tmp_path):
    """The run's own record of what it trained and selected on names no test utterance or
    speaker, and scrambling the test split changes nothing but the test score."""
    fold = tiny_fold()
    result = run_retrain(fold, "cnn", tiny_net(), train_cfg(epochs=2, protocol="full"), tmp_path / "a")
    config = json.loads((tmp_path / "a" / "config.json").read_text())["protocol"]
    test_ids, test_speakers = set(fold.test.ids), set(fold.test.speakers)
    assert config["name"] == "full" and config["select"] is None
    assert not set(config["train"]["ids"]) & test_ids and not set(config["train"]["speakers"]) & test_speakers
    assert set(config["score"]["ids"]) == test_ids
    assert result.best_epoch == 2  # nothing selected: the last epoch is kept

    other = tiny_fold()
    rng = np.random.default_rng(7)
    other.test = Split(X=rng.standard_normal(fold.test.X.shape).astype(np.float32), y=rng.permutation(fold.test.y),
                       ids=fold.test.ids, speakers=fold.test.speakers)
    again = run_retrain(other, "cnn", tiny_net(), train_cfg(epochs=2, protocol="full"), tmp_path / "b")
    strip = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h]  # noqa: E731
    assert strip(again.history) == strip(result.history)
    assert all(r["val_ua"] is None for r in result.history)


def test_study_tags_and_protocol_land_in_the_run_files(tmp_path):
    tags = {"dataset": "toy", "protocol": "paper", "model": "cnn", "scope": "", "fold": 1, "seed": 0, "arch": None}
    run_retrain(tiny_fold(), "cnn", tiny_net(), train_cfg(epochs=1), tmp_path / "r", study=tags)
    assert json.loads((tmp_path / "r" / "config.json").read_text())["study"] == tags
    result = json.loads((tmp_path / "r" / "result.json").read_text())
    assert result["protocol"] == "paper" and result["scored_on"] == "test speakers"


def test_updates_per_epoch_counts_the_loaders_batches():
    assert [updates_per_epoch(n, 16) for n in (1, 15, 16, 17, 18, 32, 33)] == [1, 1, 1, 1, 2, 2, 2]
    with pytest.raises(ConfigError, match="at least one utterance"):
        updates_per_epoch(0, 16)


def test_paper_equal_has_papers_splits_and_fulls_number_of_updates(tmp_path):
    """paper_equal trains and selects as paper does, for the epochs that make at least as many
    weight updates as full at the configured epochs, and no more than one epoch beyond."""
    fold = tiny_fold()
    data, paper = protocol_data(fold, "paper_equal"), protocol_data(fold, "paper")
    assert (data.train.ids, data.select.ids, data.score.ids) == (paper.train.ids, paper.select.ids, paper.score.ids)
    n_full, n_paper = len(fold.search.y) + len(fold.train.y), len(fold.train.y)
    epochs = equal_update_epochs(fold, 3, 4)
    full_updates, per_epoch = 3 * updates_per_epoch(n_full, 4), updates_per_epoch(n_paper, 4)
    assert (epochs - 1) * per_epoch < full_updates <= epochs * per_epoch and epochs > 3
    run_retrain(fold, "cnn", tiny_net(), train_cfg(epochs=3, protocol="paper_equal"), tmp_path / "r")
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert config["train"]["epochs"] == epochs and config["protocol"]["select"]["ids"] == fold.search.ids
    lines = (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == epochs
    # resuming with the same configured epochs finds the same derived run
    again = run_retrain(fold, "cnn", tiny_net(), train_cfg(epochs=3, protocol="paper_equal"), tmp_path / "r",
                        resume=True)
    assert len(again.history) == epochs
