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
    assert [len(paper.paper_table(n)) for n in (3, 4, 5, 7)] == [4, 6, 3, 15]
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


# --------------------------------------------------------------------------- the seeds/controls study

def _study_run(root, protocol, model, fold, seed, ua, confusion, arch=None, scope="", finished=True):
    path = root / protocol / model / f"fold{fold}" / f"seed{seed}" / (f"arch{arch}" if arch is not None else "retrain")
    path.mkdir(parents=True)
    study = {"dataset": "emodb", "protocol": protocol, "model": model, "scope": scope, "fold": fold, "seed": seed,
             "arch": arch}
    (path / "config.json").write_text(json.dumps({"kind": "retrain", "study": study, "data": {"index": fold}}))
    if finished:
        conf = np.asarray(confusion)
        (path / "result.json").write_text(json.dumps(
            {"test_ua": ua, "test_wa": ua + 0.01, "confusion": conf.tolist(), "params": 1000.0 * (1 + (arch or 0)),
             "n_test": int(conf.sum())}))
    return path


EMO_UA = {(1, 0): 0.70, (1, 1): 0.72, (2, 0): 0.60, (2, 1): 0.64}
EMO_CONF = {(1, 0): [[4, 1], [1, 4]], (1, 1): [[5, 0], [2, 3]], (2, 0): [[3, 2], [2, 3]], (2, 1): [[4, 1], [2, 3]]}
RANDOM_OFFSETS = (0.04, 0.06, 0.08)  # random architecture k of a cell scores emoDARTS' UA minus this


@pytest.fixture
def study_dir(tmp_path):
    root = tmp_path / "results" / "emodb_study"
    for (fold, seed), ua in EMO_UA.items():
        _study_run(root, "paper", "emodarts", fold, seed, ua, EMO_CONF[(fold, seed)], scope="emodarts")
        for arch, offset in enumerate(RANDOM_OFFSETS):
            _study_run(root, "paper", "random", fold, seed, ua - offset, [[3, 2], [2, 3]], arch=arch,
                       scope="emodarts")
    _study_run(root, "paper", "cnn", 1, 0, 0.65, [[4, 1], [2, 3]])  # the baseline ran with seed 0 only
    _study_run(root, "paper", "cnn", 2, 0, 0.50, [[3, 2], [3, 2]])
    _study_run(root, "paper", "cnn", 2, 1, None, None, finished=False)  # still running: a gap
    _study_run(root, "full", "emodarts", 1, 0, 0.80, [[5, 0], [1, 4]], scope="emodarts")
    _study_run(root, "full", "random_search", 1, 0, 0.75, [[4, 1], [1, 4]], scope="emodarts")
    _study_run(root, "full", "rnn_only", 1, 0, 0.70, [[4, 1], [2, 3]], scope="rnn_only")
    _retrain_run(root / "older" / "fold1" / "emodarts", 1, "emodarts", 0.5, 0.5, 10)  # no "study": not listed
    return root


def test_collect_study_one_row_per_study_run(study_dir):
    study = results.collect_study(study_dir)
    assert list(study.columns) == [*results.STUDY_COLUMNS, "confusion", "predictions", "problem"]
    assert len(study) == 4 + 12 + 3 + 3  # the older run is not a study run
    assert study["run_dir"].str.contains("older").sum() == 0
    random = study[study["model"] == "random"]
    assert len(random) == 12 and set(random["arch"]) == {0, 1, 2}
    assert study.loc[study["model"] == "emodarts", "arch"].isna().all()
    emo = study[(study["protocol"] == "paper") & (study["model"] == "emodarts")]
    assert emo["ua"].tolist() == pytest.approx([70.0, 72.0, 60.0, 64.0])  # sorted by fold, seed; in percent
    assert emo["wa"].tolist() == pytest.approx([71.0, 73.0, 61.0, 65.0])
    assert emo["n_test"].tolist() == [10.0] * 4
    gap = study[(study["model"] == "cnn") & (study["seed"] == 1)].iloc[0]
    assert math.isnan(gap["ua"]) and gap["confusion"] is None
    assert len(results.collect_study(study_dir / "nothing_here")) == 0


def test_collect_runs_names_study_runs_by_their_study_model(study_dir):
    runs = results.collect_runs(study_dir)
    assert (runs["model"] == "random").sum() == 12
    assert runs.loc[runs["run_dir"].str.contains("rnn_only"), ["model", "scope"]].iloc[0].tolist() == [
        "emodarts", "rnn_only"]
    older = runs[runs["run_dir"].str.contains("older")].iloc[0]
    assert older["model"] == "emodarts" and older["ua"] == pytest.approx(50.0)


def test_summarise_study_means_pooled_ua_and_paired_comparisons(study_dir):
    from emodarts_core.study import stats

    study = results.collect_study(study_dir)
    summary = results.summarise_study(study, n_resamples=2000)
    assert list(summary.columns) == list(results.STUDY_SUMMARY_COLUMNS)
    row = summary.set_index(["protocol", "model"])
    emo = row.loc[("paper", "emodarts")]
    assert (emo["n_runs"], emo["n_folds"], emo["n_seeds"], emo["n_archs"]) == (4, 2, 2, 0)
    assert emo["ua_mean"] == pytest.approx(66.5) and emo["ua_std"] == pytest.approx(np.std([70, 72, 60, 64]))
    assert emo["wa_mean"] == pytest.approx(67.5) and emo["params_mean"] == pytest.approx(1000.0)
    summed = np.sum([np.asarray(c) for c in EMO_CONF.values()], axis=0)  # [[16, 4], [7, 13]]
    assert emo["pooled_ua"] == pytest.approx(100 * (16 / 20 + 13 / 20) / 2)
    assert emo["pooled_ua"] == pytest.approx(100 * stats.unweighted_accuracy_from_confusion(summed))
    assert emo["pooled_ua_low"] <= emo["pooled_ua"] <= emo["pooled_ua_high"] and emo["n_test"] == 40
    assert pd.isna(emo["cmp_n"]) and math.isnan(emo["p_perm"])  # no comparison with itself

    rand = row.loc[("paper", "random")]
    assert (rand["n_runs"], rand["n_archs"]) == (12, 3)
    # the std spans (fold, seed) cells, each cell's 3 architectures averaged first
    all_random = [100 * (ua - off) for ua in EMO_UA.values() for off in RANDOM_OFFSETS]
    cells = [100 * (ua - np.mean(RANDOM_OFFSETS)) for ua in EMO_UA.values()]
    assert rand["n_cells"] == 4 and rand["ua_mean"] == pytest.approx(np.mean(all_random))
    assert rand["ua_std"] == pytest.approx(np.std(cells)) and rand["ua_std"] < np.std(all_random)
    # paired on (fold, seed) after averaging the 3 architectures: emoDARTS is 6 points ahead in all 4 cells
    assert rand["cmp_n"] == 4 and rand["cmp_diff"] == pytest.approx(6.0)
    assert rand["cmp_diff_low"] == pytest.approx(6.0) and rand["cmp_diff_high"] == pytest.approx(6.0)
    assert rand["p_perm"] == pytest.approx(2 / 16)  # exact: only all-plus and all-minus signs are as extreme
    assert rand["p_boot"] == pytest.approx(1 / 2001)  # the shifted null is all zeros: never as extreme

    cnn = row.loc[("paper", "cnn")]
    assert (cnn["n_runs"], cnn["n_seeds"]) == (2, 1)  # the unfinished run is a gap
    assert cnn["cmp_n"] == 2 and cnn["cmp_diff"] == pytest.approx(((70 - 65) + (60 - 50)) / 2)
    assert cnn["p_perm"] == pytest.approx(2 / 4)
    # Holm over the paper protocol's two comparisons: 2 * 0.125 and max(0.25, 1 * 0.5)
    assert rand["p_perm_holm"] == pytest.approx(0.25) and cnn["p_perm_holm"] == pytest.approx(0.5)

    full = row.loc["full"]
    assert set(full.index) == {"emodarts", "random_search", "rnn_only"}
    assert full.loc["random_search", "cmp_n"] == 1 and full.loc["random_search", "cmp_diff"] == pytest.approx(5.0)
    assert full.loc["random_search", "p_perm"] == 1.0  # one pair: both signs are as extreme
    assert full.loc["rnn_only", "cmp_diff"] == pytest.approx(10.0)


def test_compare_study_table(study_dir):
    comparisons = results.compare_study(results.collect_study(study_dir), n_resamples=500)
    assert list(comparisons.columns) == list(results.COMPARISON_COLUMNS)
    assert len(comparisons) == 2 + 2  # paper: random, cnn; full: random_search, rnn_only
    assert set(comparisons["reference"]) == {"emodarts"}
    rand = comparisons[comparisons["model"] == "random"].iloc[0]
    assert rand["mean_reference"] == pytest.approx(66.5) and rand["mean_model"] == pytest.approx(60.5)


def test_write_study_writes_both_csvs_atomically_and_cli_prints(study_dir, capsys):
    study, summary, cells = results.write_study(study_dir, n_resamples=500)
    assert cells is None  # only with complete_only
    on_disk = pd.read_csv(study_dir / "study.csv")
    assert "confusion" not in on_disk.columns and list(on_disk.columns) == list(results.STUDY_COLUMNS)
    assert len(on_disk) == len(study)
    table = pd.read_csv(study_dir / "summary.csv")
    assert list(table.columns) == list(results.STUDY_SUMMARY_COLUMNS) and len(table) == len(summary) == 6
    assert not list(study_dir.glob(".*.tmp"))
    assert results.main([str(study_dir)]) == 0
    out = capsys.readouterr().out
    assert "protocol paper:" in out and "protocol full:" in out and "random_search" in out


def test_cli_without_study_runs_writes_the_per_fold_summary(results_dir, capsys):
    assert results.main([str(results_dir)]) == 0
    assert list(pd.read_csv(results_dir / "summary.csv").columns) == list(results.SUMMARY_COLUMNS)
    assert not (results_dir / "study.csv").exists()
    empty = results.summarise_study(results.collect_study(results_dir))
    assert empty.empty and list(empty.columns) == list(results.STUDY_SUMMARY_COLUMNS)


def test_random_distribution_figure_data(study_dir):
    import matplotlib.pyplot as plt

    from emodarts_core import plots

    study = results.collect_study(study_dir)
    fig = plots.plot_random_distribution(study, "paper")
    ax = fig.axes[0]
    bars = [p for p in ax.patches if p.get_gid() == "random:hist"]
    assert sum(p.get_height() for p in bars) == 12  # every random architecture of every cell
    lines = {line.get_gid(): line for line in ax.lines}
    assert sorted(lines["runs:emodarts"].get_xdata()) == pytest.approx([60.0, 64.0, 70.0, 72.0])
    assert lines["mean:emodarts"].get_xdata()[0] == pytest.approx(66.5)
    assert lines["mean:random"].get_xdata()[0] == pytest.approx(60.5)
    assert lines["mean:cnn"].get_xdata()[0] == pytest.approx(57.5)
    band = next(p for p in ax.patches if p.get_gid() == "band:emodarts")
    assert band.get_x() == pytest.approx(66.5 - np.std([70, 72, 60, 64]))
    assert any("above" in t for t in ax.get_legend_handles_labels()[1])
    full = plots.plot_random_distribution(study, "full").axes[0]
    assert {line.get_gid() for line in full.lines} >= {"mean:emodarts", "mean:random_search", "mean:rnn_only"}
    assert any("no run yet: random" in t.get_text() for t in full.texts)
    plt.close("all")


def test_wall_times_add_up_epoch_seconds_per_kind_of_run(tmp_path):
    from emodarts_core.study.results import wall_times

    def run(name, config, seconds):
        d = tmp_path / name
        d.mkdir(parents=True)
        (d / "config.json").write_text(json.dumps(config))
        (d / "metrics.jsonl").write_text("".join(json.dumps({"epoch": i + 1, "seconds": s}) + "\n"
                                                 for i, s in enumerate(seconds)))
    run("a/search", {"kind": "search"}, [10.0, 20.0])
    run("a/retrain-full", {"kind": "retrain", "study": {"protocol": "full"}, "train": {"protocol": "full"}}, [3.0])
    run("b/retrain-full", {"kind": "retrain", "study": {"protocol": "full"}, "train": {"protocol": "full"}}, [5.0])
    run("a/candidates/arch0", {"kind": "retrain", "train": {"protocol": "holdout"}}, [1.0, 1.0])
    for name, seconds in (("a_pt/selection", 12.0), ("b_pt/selection", 18.0)):  # a selection's own record
        (tmp_path / name).mkdir(parents=True)
        (tmp_path / name / "genotype.json").write_text("{}")
        (tmp_path / name / "selection.json").write_text(json.dumps({"seconds": seconds, "evaluations": 154}))
    times = wall_times(tmp_path).set_index("kind")
    assert times.loc["selection by perturbation", "runs"] == 2
    assert times.loc["selection by perturbation", "median_s"] == 15.0
    assert times.loc["search", "runs"] == 1 and times.loc["search", "median_s"] == 30.0
    assert times.loc["retrain (full)", "median_s"] == 4.0 and times.loc["retrain (full)", "total_min"] == 8.0 / 60
    assert times.loc["random-search candidate", "runs"] == 1


def test_markdown_report_is_written_from_the_same_numbers(study_dir, capsys):
    out = study_dir / "tables.md"
    assert results.main([str(study_dir), "--markdown", str(out)]) == 0
    text = out.read_text()
    summary = pd.read_csv(study_dir / "summary.csv")
    rand = summary[(summary.protocol == "paper") & (summary.model == "random")].iloc[0]
    assert "**Protocol `full`**" in text and "**Protocol `paper`**" in text
    assert "| UA mean ± SD over cells |" in text and "| p exact (speakers) | p exact (speakers, Holm) |" in text
    row = next(line for line in text.splitlines() if line.startswith("| random architectures | 12 (2 × 2 × 3)"))
    assert f"{rand.ua_mean:.1f} ± {rand.ua_std:.1f}" in row and f"{rand.cmp_diff:+.1f}" in row and "(n = 4)" in row
    # per fold: the mean over seeds (and architectures), with the number of seeds behind it
    assert "| paper | emoDARTS (searched) | 71.0 (2) | 62.0 (2) |" in text
    assert "| paper | random architectures | 65.0 (2) | 56.0 (2) |" in text
    assert "| paper | CNN (w/o DARTS) | 65.0 (1) | 50.0 (1) |" in text
    assert "| full | rnn_only | 70.0 (1) |  |" in text
    lines = [line for line in text.splitlines() if line.startswith("| paper |")]
    assert [line.split(" | ")[1] for line in lines][:3] == ["emoDARTS (searched)", "random architectures",
                                                             "CNN (w/o DARTS)"]
    assert "no finished search" in text  # the fixture has retrainings only


def test_random_search_candidates_are_not_counted_as_retrained_models(tmp_path):
    """A random-search candidate (protocol holdout) is scored on training speakers: it must
    not enter the per-model test tables as an emoDARTS retraining."""
    def run(name, config, ua):
        d = tmp_path / "emodb" / name
        d.mkdir(parents=True)
        (d / "config.json").write_text(json.dumps(config))
        (d / "result.json").write_text(json.dumps({"test_ua": ua, "test_wa": ua, "params": 10}))
        (d / "FINISHED").write_text("{}")
    run("emodarts/fold1/seed0/retrain-paper", {"kind": "retrain", "study": {"model": "emodarts", "protocol": "paper",
                                                                             "fold": 1}}, 0.8)
    run("random_search/fold1/seed0/candidates/arch0", {"kind": "retrain", "train": {"protocol": "holdout"}}, 0.2)
    runs = results.collect_runs(tmp_path)
    assert sorted(runs["kind"]) == ["candidate", "retrain"]
    assert set(runs.loc[runs["kind"] == "retrain", "protocol"]) == {"paper"}
    summary = results.summarise(runs, expected=None)
    assert summary["n_folds"].tolist() == [1] and summary["ua_mean"].tolist() == [80.0]


def test_complete_cells_keep_only_cells_every_model_has_finished(study_dir):
    """A running study's tables compare models on the same cells: cnn has no seed-1 runs, so
    seed 1 leaves the paper protocol; a random cell with fewer architectures than the others
    is unfinished too; the full protocol's single cell is complete."""
    import shutil

    shutil.rmtree(study_dir / "paper" / "random" / "fold2" / "seed0" / "arch2")
    study = results.collect_study(study_dir)
    kept, cells = results.complete_cells(study)
    state = {(r.protocol, r.fold, r.seed): (r.complete, r.missing) for r in cells.itertuples()}
    assert state[("paper", 1, 0)] == (True, "")
    assert state[("paper", 1, 1)] == (False, "cnn 0/1")
    assert state[("paper", 2, 0)] == (False, "random 2/3")
    assert state[("paper", 2, 1)] == (False, "cnn 0/1")  # its cnn run is unfinished
    assert state[("full", 1, 0)] == (True, "")
    paper = kept[kept.protocol == "paper"]
    assert set(zip(paper["fold"], paper["seed"])) == {(1, 0)}
    assert sorted(paper["model"]) == ["cnn", "emodarts", "random", "random", "random"]
    assert len(kept[kept.protocol == "full"]) == 3


def test_cli_complete_cells_writes_tables_of_the_complete_cells_with_a_header(study_dir, capsys):
    out = study_dir / "tables.md"
    assert results.main([str(study_dir), "--complete-cells", "--markdown", str(out)]) == 0
    summary = pd.read_csv(study_dir / "summary.csv")
    emo = summary[(summary.protocol == "paper") & (summary.model == "emodarts")].iloc[0]
    assert emo.n_runs == 2 and emo.ua_mean == pytest.approx(65.0)  # cells (1, 0) and (2, 0) only
    assert len(pd.read_csv(study_dir / "study.csv")) == 2 * (1 + 3 + 1) + 3
    cells = pd.read_csv(study_dir / "cells.csv")
    assert int(cells["complete"].sum()) == 3 and len(cells) == 5
    text = out.read_text()
    assert text.startswith("**Partial: these tables hold only the complete (fold, seed) cells**")
    assert "protocol `paper`: 2 complete of 4 begun (fold 1 seed 0, fold 2 seed 0)" in text
    assert "fold 1 seed 1 left out, still lacking: cnn 0/1" in text
    # without the flag, every finished run counts and no cells.csv is written
    (study_dir / "cells.csv").unlink()
    assert results.main([str(study_dir)]) == 0
    assert pd.read_csv(study_dir / "summary.csv").query("protocol == 'paper' and model == 'emodarts'").n_runs.item() == 4
    assert not (study_dir / "cells.csv").exists()
