"""The settings each fold chose, read back from the study's own records for tables.md:
a fold's nested choices and every classic run's leave-one-speaker-out choice."""

import json

import pandas as pd

from emodarts_core.study.results import collect_study
from emodarts_core.study.settings_report import classic_choices_table, nested_choices_table, settings_sections


def _classic_run(root, fold, seed, protocol, choice):
    path = root / "classic" / f"fold{fold}" / f"seed{seed}" / f"retrain-{protocol}"
    path.mkdir(parents=True)
    study = {"dataset": "emodb", "protocol": protocol, "model": "classic", "scope": "", "fold": fold, "seed": seed,
             "arch": None}
    (path / "config.json").write_text(json.dumps({"kind": "retrain", "study": study}))
    loso = {"logistic n_mfcc=13 C=1": 0.70, "rbf n_mfcc=20 C=10": 0.77, "rbf n_mfcc=40 C=10": 0.74}
    (path / "result.json").write_text(json.dumps({
        "test_ua": 0.8, "test_wa": 0.8, "confusion": [[4, 1], [1, 4]], "params": 10,
        "choice": {**choice, "loso_ua": loso, "judged_by": ["09", "10"], "test_speakers": ["03", "08"]}}))


def _study(tmp_path):
    root = tmp_path / "emodb"
    _classic_run(root, 1, 0, "full", {"model": "rbf", "n_mfcc": 20, "C": 10.0})
    _classic_run(root, 1, 1, "full", {"model": "rbf", "n_mfcc": 40, "C": 10.0})  # a seed that chose otherwise
    nested = root / "nested" / "fold1"
    nested.mkdir(parents=True)
    (nested / "choices.json").write_text(json.dumps({
        "fold": 1, "baselines": {"cnn": {"setting": "adam-none"}, "cnn_lstm": {"setting": "sgd-none"}},
        "search_space": {"normalise": "coefficient"},
        "provenance": {"test_speakers": ["03", "08"], "judged_by": ["09", "10", "12", "14"],
                       "groups": {"0": ["12", "14"], "1": ["09", "10"], "2": ["09", "10"]}}}))
    return root


def test_the_folds_choices_are_read_from_their_records(tmp_path):
    root = _study(tmp_path)
    nested = nested_choices_table(root)
    assert nested.to_dict("records") == [{"fold": 1, "test_speakers": "03, 08", "judged_by": "09, 10, 12, 14",
                                          "groups": "12 + 14; 09 + 10; 09 + 10", "search_space": "coefficient",
                                          "cnn": "adam-none", "cnn_lstm": "sgd-none"}]
    classic = classic_choices_table(collect_study(root), root)
    row = classic.iloc[0]
    assert (row["family"], row["C"], row["n_mfcc"]) == ("rbf", 10.0, 20)
    assert row["loso_ua"] == 77.0 and row["seeds_agreeing"] == "1 of 2"  # seed 0's choice, its LOSO UA


def test_the_section_shows_both_tables_and_is_absent_without_records(tmp_path):
    root = _study(tmp_path)
    text = settings_sections(root, collect_study(root))
    assert "## Settings chosen inside each fold" in text
    assert "| 1 | 03, 08 | 09, 10, 12, 14 | 12 + 14; 09 + 10; 09 + 10 | coefficient | adam-none | sgd-none |" in text
    assert "| classic | full | 1 | rbf | 10 | 20 | 77.0 | 1 of 2 |" in text
    empty = tmp_path / "none"
    empty.mkdir()
    assert settings_sections(empty, pd.DataFrame()) == ""
