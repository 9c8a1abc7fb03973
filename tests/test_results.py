"""Results collection: run directories -> per-run table -> mean ± std summary, gaps as NaN."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from emodarts_core.study import paper, results


def _retrain_run(path, fold, model, ua, wa, params, scope="emodarts", finished=True):
    path.mkdir(parents=True)
    spec = {"baseline": model} if model in results.BASELINES else {"genotype": {"normal": []}}
    config = {"kind": "retrain", "model": spec, "network": {"scope": scope, "seq_cells": 2},
              "data": {"index": fold, "classes": ["anger", "happiness", "neutral", "sadness"]}}
    (path / "config.json").write_text(json.dumps(config))
    if finished:
        (path / "result.json").write_text(json.dumps(
            {"test_ua": ua, "test_wa": wa, "params": params, "best_epoch": 3, "confusion": [[1]]}))
        (path / "FINISHED").write_text("{}")


@pytest.fixture
def results_dir(tmp_path):
    root = tmp_path / "results" / "emodb"
    for fold, ua in ((1, 0.60), (2, 0.70), (3, 0.80)):
        _retrain_run(root / f"fold{fold}" / "emodarts", fold, "emodarts", ua, ua + 0.05, 1000 * fold)
    for fold, ua in ((1, 0.50), (2, 0.54)):
        _retrain_run(root / f"fold{fold}" / "cnn", fold, "cnn", ua, ua, 35_000)
    _retrain_run(root / "fold3" / "cnn", 3, "cnn", None, None, None, finished=False)  # crashed run
    _retrain_run(root / "fold1" / "rnn_only", 1, "emodarts", 0.40, 0.42, 500, scope="rnn_only")
    search = root / "fold1" / "search_emodarts"
    search.mkdir(parents=True)
    (search / "genotype.json").write_text("{}")
    (search / "config.json").write_text(json.dumps({"kind": "search", "network": {"scope": "emodarts"},
                                                    "data": {"index": 1}}))
    return root


def test_collect_runs_reads_every_run_and_infers_dataset_from_path(results_dir):
    runs = results.collect_runs(results_dir)
    assert len(runs) == 8
    assert set(runs["dataset"]) == {"emodb"}
    assert runs["kind"].value_counts().to_dict() == {"retrain": 7, "search": 1}
    crashed = runs[(runs["model"] == "cnn") & (runs["fold"] == 3)].iloc[0]
    assert crashed["status"] == "unfinished" and math.isnan(crashed["ua"])
    assert runs.loc[runs["scope"] == "rnn_only", "ua"].iloc[0] == pytest.approx(40.0)


def test_summary_mean_std_in_percent_over_finished_folds(results_dir):
    summary = results.summarise(results.collect_runs(results_dir))
    emo = summary[(summary["model"] == "emodarts") & (summary["scope"] == "emodarts")].iloc[0]
    assert emo["n_folds"] == 3 and emo["folds"] == "1 2 3"
    assert emo["ua_mean"] == pytest.approx(70.0)
    assert emo["ua_std"] == pytest.approx(np.std([60.0, 70.0, 80.0]))
    assert emo["wa_mean"] == pytest.approx(75.0)
    assert emo["params_mean"] == pytest.approx(2000.0)
    cnn = summary[summary["model"] == "cnn"].iloc[0]
    assert cnn["n_folds"] == 2 and cnn["ua_mean"] == pytest.approx(52.0)  # the crashed fold is a gap


def test_summary_lists_missing_models_as_nan_rows(results_dir):
    summary = results.summarise(results.collect_runs(results_dir))
    assert len(summary) == len(results.EXPECTED_MODELS)
    missing = summary[summary["model"] == "cnn_lstm_att"].iloc[0]
    assert missing["n_folds"] == 0 and math.isnan(missing["ua_mean"]) and math.isnan(missing["ua_std"])
    single = summary[summary["scope"] == "rnn_only"].iloc[0]
    assert single["ua_mean"] == pytest.approx(40.0) and single["ua_std"] == pytest.approx(0.0)


def test_per_fold_table_has_gaps(results_dir):
    table = results.per_fold(results.collect_runs(results_dir), folds=range(1, 6))
    assert list(table.columns) == [1, 2, 3, 4, 5]
    assert math.isnan(table.loc[("emodb", "cnn"), 3]) and math.isnan(table.loc[("emodb", "cnn"), 5])
    assert table.loc[("emodb", "emodarts:emodarts"), 2] == pytest.approx(70.0)


def test_write_summary_csv_and_empty_folder(results_dir, tmp_path):
    summary = results.write_summary(results_dir)
    on_disk = pd.read_csv(results_dir / "summary.csv")
    assert list(on_disk.columns) == list(results.SUMMARY_COLUMNS)
    assert len(on_disk) == len(summary)
    empty = results.summarise(results.collect_runs(tmp_path / "nothing_here"), datasets=["emodb"])
    assert len(empty) == len(results.EXPECTED_MODELS) and empty["ua_mean"].isna().all()


def test_format_mean_std():
    assert results.format_mean_std(76.561, 4.031) == "76.56 ± 4.03"
    assert results.format_mean_std(math.nan, 1.0) == "—"
    assert results.format_mean_std(57.3, math.nan) == "57.30"


def test_paper_tables_hold_the_published_numbers():
    t7 = paper.paper_table(7)
    assert len(t7) == 15 and set(t7["dataset"]) == {"iemocap", "msp_improv", "msp_podcast"}
    rnn = t7[(t7["dataset"] == "iemocap") & (t7["scope"] == "rnn_only")].iloc[0]
    assert (rnn["ua_mean"], rnn["ua_std"], rnn["params"]) == (70.42, 8.32, 356_492)
    t4 = paper.paper_table(4)
    assert t4[(t4["dataset"] == "msp_podcast") & (t4["model"] == "emodarts")]["wa_mean"].iloc[0] == 62.33
    assert paper.paper_table(3)["params"].iloc[2] == 35_000
    assert len(paper.all_tables()) == 4 + 6 + 3 + 15
    with pytest.raises(ValueError, match="tables"):
        paper.paper_table(6)


def test_search_killed_before_its_first_epoch_is_still_a_search(tmp_path):
    """A search run dir with only config.json (killed before epoch 1) is a search, not a retrain."""
    run = tmp_path / "emodb" / "emodarts" / "fold1" / "search"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"kind": "search", "network": {"scope": "emodarts"},
                                                 "data": {"index": 1}}))
    row = results.collect_runs(tmp_path).iloc[0]
    assert row["kind"] == "search" and row["status"] == "unfinished"
