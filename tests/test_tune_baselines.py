"""Choosing a baseline's training settings on held-out training speakers, never the test speakers."""

import dataclasses
import json

import numpy as np

from emodarts_core.study.tune_baselines import GRID, TABLE_JSON, choose, markdown, tune
from loop_helpers import single_thread, tiny_fold, tiny_net, train_cfg  # noqa: F401

SMALL_GRID = {name: GRID[name] for name in ("sgd-none", "adam-coefficient")}


def _scores(table):
    return {b: {n: [(r["seed"], r["held_out"], r["holdout_ua"]) for r in s["runs"]] for n, s in runs.items()}
            for b, runs in table["runs"].items()}


def test_the_choice_never_sees_the_test_speakers(tmp_path):
    fold = tiny_fold()
    first = tune(fold, tiny_net(), train_cfg(epochs=1), tmp_path / "a", ["cnn"], SMALL_GRID, seeds=(0, 1),
                 progress=False)
    rng = np.random.default_rng(0)
    wild = dataclasses.replace(fold.test, X=(rng.standard_normal(fold.test.X.shape) * 1e3).astype(np.float32),
                               y=rng.permutation(fold.test.y))
    second = tune(dataclasses.replace(fold, test=wild), tiny_net(), train_cfg(epochs=1), tmp_path / "b", ["cnn"],
                  SMALL_GRID, seeds=(0, 1), progress=False)
    assert _scores(first) == _scores(second) and first["choice"] == second["choice"]
    held_out = {r["held_out"] for s in first["runs"]["cnn"].values() for r in s["runs"]}
    assert not any(spk in text for text in held_out for spk in fold.test.speakers)
    assert json.loads((tmp_path / "a" / TABLE_JSON).read_text())["choice"] == first["choice"]
    assert "| cnn |" in markdown(first)


def test_a_resumed_tuning_reads_its_finished_runs_back(tmp_path):
    fold = tiny_fold()
    first = tune(fold, tiny_net(), train_cfg(epochs=1), tmp_path, ["cnn"], SMALL_GRID, progress=False)
    again = tune(fold, tiny_net(), train_cfg(epochs=1), tmp_path, ["cnn"], SMALL_GRID, progress=False)
    assert _scores(first) == _scores(again)


def test_the_best_mean_wins_and_ties_go_to_the_earlier_setting():
    assert choose({"sgd-none": 0.5, "adam-none": 0.7, "adam-coefficient": 0.6}) == "adam-none"
    assert choose({"adam-coefficient": 0.6, "sgd-coefficient": 0.6}) == "sgd-coefficient"


def test_random_architectures_of_the_space_are_tuned_like_a_baseline(tmp_path):
    from emodarts_core.space.sampling import random_genotypes

    genotype = random_genotypes(tiny_net(), 1, seed=0, fold=1)[0]
    table = tune(tiny_fold(), tiny_net(), train_cfg(epochs=1), tmp_path, {"random0": genotype}, SMALL_GRID,
                 progress=False)
    assert set(table["runs"]["random0"]) == set(SMALL_GRID) and table["choice"]["random0"]["setting"] in SMALL_GRID
    config = json.loads((tmp_path / "random0" / "sgd-none" / "seed0" / "config.json").read_text())
    assert "genotype" in config["model"]
