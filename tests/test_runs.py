"""Notebook run directories are named by their settings, and a retraining finds the newest
search's genotype with the network it was searched with, on the fold it was searched on."""

from __future__ import annotations

import dataclasses
import json
import os

import pytest

from emodarts_core.darts.search import run_search
from emodarts_core.training.runs import newest_genotype, run_directory, searched_genotype, settings_hash
from loop_helpers import search_cfg, single_thread, tiny_fold, tiny_net  # noqa: F401  (single_thread: autouse)


def test_the_same_settings_name_the_same_folder_and_other_settings_another(tmp_path):
    settings = ["emodb", "None", 1, {"nodes": 3, "epochs": 10}]
    first = run_directory(None, "search", "emodb", 1, "rnn_only", settings, root=tmp_path)
    assert first == run_directory(None, "search", "emodb", 1, "rnn_only", [*settings[:3], {"epochs": 10, "nodes": 3}],
                                  root=tmp_path)  # key order does not matter
    assert first.name == f"search_emodb_fold1_rnn_only_{settings_hash(settings)}" and first.parent == tmp_path
    assert len(settings_hash(settings)) == 8
    other = run_directory(None, "search", "emodb", 1, "rnn_only", [*settings[:3], {"nodes": 3, "epochs": 11}],
                          root=tmp_path)
    assert other != first
    assert run_directory(tmp_path / "mine", "search", "emodb", 1, "x", settings) == tmp_path / "mine"


def test_a_retraining_takes_the_newest_search_with_its_network_on_its_fold(tmp_path):
    fold = tiny_fold()
    older = run_search(fold, tiny_net(), search_cfg(epochs=1), tmp_path / "search_a")
    newer = run_search(fold, tiny_net(nodes=3), search_cfg(epochs=1), tmp_path / "search_b")
    stamp = (older.run_dir / "genotype.json").stat().st_mtime
    os.utime(newer.run_dir / "genotype.json", (stamp + 10, stamp + 10))
    assert newest_genotype(tmp_path) == newer.run_dir / "genotype.json"

    found = searched_genotype(None, fold, root=tmp_path, init_channels=4, seq_dim=None)
    assert found.path == newer.run_dir / "genotype.json" and found.genotype == newer.genotype
    assert found.network == dataclasses.replace(tiny_net(nodes=3), init_channels=4)  # None leaves the search's
    assert sorted(found.test_speakers) == sorted(fold.fold.test_speakers)
    assert searched_genotype(older.run_dir / "genotype.json").network == tiny_net()

    elsewhere = dataclasses.replace(fold, fold=dataclasses.replace(fold.fold, test_speakers=["spk99"]))
    with pytest.raises(ValueError, match=r"searched with test speakers .* this fold tests \['spk99'\]"):
        searched_genotype(None, elsewhere, root=tmp_path)


def test_no_search_and_a_genotype_without_its_run_are_refused_with_the_way_out(tmp_path):
    with pytest.raises(FileNotFoundError, match="run notebook 03 first"):
        searched_genotype(None, root=tmp_path)
    loose = tmp_path / "genotype.json"
    loose.write_text(json.dumps({"normal": []}))
    with pytest.raises(FileNotFoundError, match=r"config.json does not exist"):
        searched_genotype(loose)
    (tmp_path / "config.json").write_text("{\"network\": {}}")
    with pytest.raises(ValueError, match=r"config.json is not a search run's config.json.*test_speakers"):
        searched_genotype(loose)
