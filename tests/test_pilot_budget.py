"""tools/pilot_search_budget.py: the pilot's table applies the criterion written down before it
ran, and its trajectory reports the two seeds' agreement epoch by epoch (results/emodb/README.md)."""

import csv
import json

import pytest
from tool_modules import load_tool



@pytest.fixture(scope="module")
def pilot():
    return load_tool("pilot_search_budget")


CNN = {"normal": [["sep_conv_3x3", 0], ["skip_connect", 1]], "reduce": [["max_pool_3x3", 0], ["dil_conv_3x3", 1]]}


def row(seed, seq, *, lift=2.0, settled=True, collapsed=False):
    return {"run": "b", "seed": seed, "alpha_lr": 0.01, "alpha_steps": 300, "epochs": 52, "collapse_remedy": "beta_decay",
            "lift": {"normal": lift, "reduce": lift, "seq": lift}, "mean_lift": lift, "entropy": {"seq": 0.9},
            "genotype_settled": settled, "seq_collapsed": collapsed, "genotype": {**CNN, "seq": seq}, "compute_s": 60}


@pytest.mark.parametrize("second, verdict", [
    (row(1, [["rnn_1", 0], ["lstm_1", 1]]), "pass"),  # every edge shared, moved, settled
    (row(1, [["rnn_2", 0], ["lstm_2", 1]], lift=1.4), "fail"),  # the α did not move enough
    (row(1, [["rnn_1", 0], ["lstm_1", 1]], settled=False), "fail"),  # still changing at the end
])
def test_summary_applies_the_criterion(pilot, tmp_path, second, verdict):
    first = row(0, [["rnn_1", 0], ["lstm_1", 1]])
    for r in (first, second):
        (tmp_path / f"b_seed{r['seed']}.json").write_text(json.dumps(r))
    lines = [line for line in pilot.summary(tmp_path).splitlines() if line.startswith("| b ")]
    assert len(lines) == 2 and all(f"| {verdict} |" in line for line in lines)


def test_summary_fails_when_the_seeds_share_too_few_edges(pilot, tmp_path):
    other = {"normal": [["avg_pool_3x3", 0], ["sep_conv_5x5", 1]], "reduce": [["avg_pool_3x3", 0], ["sep_conv_5x5", 1]],
             "seq": [["rnn_2", 0], ["lstm_2", 1]]}
    (tmp_path / "b_seed0.json").write_text(json.dumps(row(0, [["rnn_1", 0], ["lstm_1", 1]])))
    (tmp_path / "b_seed1.json").write_text(json.dumps({**row(1, []), "genotype": other}))
    assert "| 0.00 | fail |" in pilot.summary(tmp_path)


def test_trajectory_follows_the_two_seeds_epoch_by_epoch(pilot, tmp_path):
    lean, against = [[0.4, 0.3, 0.2, 0.1]], [[0.1, 0.2, 0.3, 0.4]]
    work, out = tmp_path / "work", tmp_path / "out"
    out.mkdir()
    for seed, late in ((0, lean), (1, against)):
        run = work / f"lr1e-2_seed{seed}"
        run.mkdir(parents=True)
        epochs = []
        for epoch, probs in ((1, lean), (2, late)):
            seq = [["rnn_1", 0], ["lstm_1", 1]] if epoch == 1 or seed == 0 else [["rnn_2", 0], ["lstm_2", 1]]
            epochs.append({"epoch": epoch, "genotype": {**CNN, "seq": seq}, "lift": {"normal": 1.5, "seq": 1.5},
                           "probs": {"normal": probs, "reduce": probs, "seq": probs}})
        (run / "alpha_history.json").write_text(json.dumps({"epochs": epochs}))
        (run / "metrics.jsonl").write_text("".join(json.dumps({"alpha_updates": 6 * e}) + "\n" for e in (1, 2)))
    path = pilot.trajectory("lr1e-2", [0, 1], work, out, every=1)
    rows = list(csv.DictReader(path.open()))
    assert [r["alpha_steps"] for r in rows] == ["6", "12"]
    assert float(rows[0]["shared_all"]) == 1.0 and float(rows[0]["alpha_corr_seq"]) == pytest.approx(1.0)
    assert float(rows[1]["shared_seq"]) == 0.0 and float(rows[1]["alpha_corr_normal"]) == pytest.approx(-1.0)
    assert float(rows[1]["shared_all"]) == pytest.approx(4 / 6, abs=1e-3)
