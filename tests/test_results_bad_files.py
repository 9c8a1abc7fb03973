"""A shared results folder may hold damaged or hostile run files: each is a gap named with its
file, never a crash, and nothing the results command writes goes through a planted link."""

import json
import math

import pytest

from emodarts_core.study import results


def _study_run(root, name, result, model="emodarts"):
    path = root / model / "fold1" / "seed0" / name
    path.mkdir(parents=True)
    study = {"dataset": "emodb", "protocol": "full", "model": model, "scope": "", "fold": 1, "seed": 0}
    (path / "config.json").write_text(json.dumps({"kind": "retrain", "study": study}))
    (path / "result.json").write_text(result if isinstance(result, str) else json.dumps(result))
    (path / "metrics.jsonl").write_text('{"epoch": 1, "seconds": 2}\n')
    return path


BAD = {"null": "null", "list": "[]", "string_score": {"test_ua": "n/a", "test_wa": 0.5},
       "ragged_confusion": {"test_ua": 0.5, "test_wa": 0.5, "confusion": [[1, 2], [3]]},
       "bool_params": {"test_ua": 0.5, "params": True},
       "broken_predictions": {"test_ua": 0.5, "predictions": {"ids": [1, 2], "speakers": ["a"], "y_true": [0],
                                                              "y_pred": [0]}},
       "truncated": '{"test_ua": 0.5, "conf'}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_result_json_of_the_wrong_type_is_a_gap_named_with_its_file(tmp_path, case, capsys):
    root = tmp_path / "emodb"
    good = _study_run(root, "good", {"test_ua": 0.75, "test_wa": 0.8, "params": 10, "confusion": [[3, 1], [1, 3]]})
    bad = _study_run(root, "bad", BAD[case], model="cnn")
    study = results.collect_study(root).set_index("run_dir")
    assert study.loc[str(good), "ua"] == 75.0 and study.loc[str(good), "problem"] == ""
    assert str(bad / "result.json") in study.loc[str(bad), "problem"]
    runs = results.collect_runs(root).set_index("run_dir")
    assert str(bad / "result.json") in runs.loc[str(bad), "problem"]
    assert results.main([str(root), "--markdown", str(root / "tables.md")]) == 0
    assert f"gap: {bad / 'result.json'}" in capsys.readouterr().err
    summary = results.summarise_study(results.collect_study(root), n_resamples=50, n_permutations=50)
    assert summary.set_index("model").loc["emodarts", "ua_mean"] == 75.0


def test_fields_of_a_partly_damaged_result_keep_what_is_good(tmp_path):
    root = tmp_path / "emodb"
    bad = _study_run(root, "bad", {"test_ua": "n/a", "test_wa": 0.5, "params": 10, "confusion": [[1, 2], [3]]})
    row = results.collect_study(root).iloc[0]
    assert math.isnan(row["ua"]) and row["wa"] == 50.0 and row["params"] == 10 and row["confusion"] is None
    assert "test_ua is \"n/a\", not a number" in row["problem"]
    assert "confusion is not a square matrix" in row["problem"] and str(bad) in row["problem"]


def test_a_config_json_of_the_wrong_type_is_a_gap(tmp_path):
    run = tmp_path / "emodb" / "cnn" / "fold1"
    run.mkdir(parents=True)
    (run / "config.json").write_text("[1, 2]")
    (run / "result.json").write_text(json.dumps({"test_ua": 0.5}))
    (run / "metrics.jsonl").write_text("not json\n")
    row = results.collect_runs(tmp_path / "emodb").iloc[0]
    assert row["ua"] == 50.0 and f"{run / 'config.json'}: holds [1, 2], not a JSON object" in row["problem"]
    assert len(results.collect_study(tmp_path / "emodb")) == 0
    assert len(results.wall_times(tmp_path / "emodb")) == 0


def test_the_results_command_replaces_planted_links_instead_of_writing_through_them(tmp_path):
    root = tmp_path / "emodb"
    _study_run(root, "good", {"test_ua": 0.75, "test_wa": 0.8, "params": 10, "confusion": [[3, 1], [1, 3]]})
    victims = {}
    for name in ("summary.csv", "study.csv", "wall_time.csv", "tables.md"):
        victims[name] = tmp_path / f"precious_{name}"
        victims[name].write_text("keep me")
        (root / name).symlink_to(victims[name])
    assert results.main([str(root), "--markdown", str(root / "tables.md")]) == 0
    for name, victim in victims.items():
        assert victim.read_text() == "keep me", f"{name} was written through its link"
        assert not (root / name).is_symlink() and (root / name).stat().st_size > 0


def test_write_summary_replaces_a_planted_link(tmp_path):
    run = tmp_path / "emodb" / "fold1" / "cnn"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"kind": "retrain", "model": {"baseline": "cnn"},
                                                 "data": {"index": 1}}))
    (run / "result.json").write_text(json.dumps({"test_ua": 0.5, "test_wa": 0.5}))
    victim = tmp_path / "precious.csv"
    victim.write_text("keep me")
    (tmp_path / "emodb" / "summary.csv").symlink_to(victim)
    summary = results.write_summary(tmp_path / "emodb")
    assert victim.read_text() == "keep me"
    assert not (tmp_path / "emodb" / "summary.csv").is_symlink()
    assert set(summary.loc[summary["model"] == "cnn", "ua_mean"].dropna()) == {50.0}
