"""tools/pilot_search_budget.py: the pilot's table applies the criterion written down before it
ran, and its trajectory reports the two seeds' agreement epoch by epoch (results/emodb/README.md).
Its records are two files (the module's docstring): every search's row in rows.json, which a
resumed pilot reads to skip the searches done and two seeds' processes write side by side
without losing a row, and every budget's trajectory in trajectories.csv."""

import csv
import json
import multiprocessing
import re

import pytest
from tool_modules import load_tool


@pytest.fixture(scope="module")
def pilot():
    return load_tool("pilot_search_budget")


CNN = {"normal": [["sep_conv_3x3", 0], ["skip_connect", 1]], "reduce": [["max_pool_3x3", 0], ["dil_conv_3x3", 1]]}


def row(seed, seq, *, lift=2.0, settled=True, collapsed=False, run="b"):
    return {"run": run, "seed": seed, "alpha_lr": 0.01, "alpha_steps": 300, "epochs": 52, "collapse_remedy": "beta_decay",
            "lift": {"normal": lift, "reduce": lift, "seq": lift}, "mean_lift": lift, "entropy": {"seq": 0.9},
            "genotype_settled": settled, "seq_collapsed": collapsed, "genotype": {**CNN, "seq": seq}, "compute_s": 60}


def read_trajectories(path):
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.parametrize("second, verdict", [
    (row(1, [["rnn_1", 0], ["lstm_1", 1]]), "pass"),  # every edge shared, moved, settled
    (row(1, [["rnn_2", 0], ["lstm_2", 1]], lift=1.4), "fail"),  # the α did not move enough
    (row(1, [["rnn_1", 0], ["lstm_1", 1]], settled=False), "fail"),  # still changing at the end
])
def test_summary_applies_the_criterion(pilot, tmp_path, second, verdict):
    first = row(0, [["rnn_1", 0], ["lstm_1", 1]])
    for r in (first, second):
        pilot.add_row(tmp_path, r)
    lines = [line for line in pilot.summary(tmp_path).splitlines() if line.startswith("| b ")]
    assert len(lines) == 2 and all(f"| {verdict} |" in line for line in lines)


def test_summary_fails_when_the_seeds_share_too_few_edges(pilot, tmp_path):
    other = {"normal": [["avg_pool_3x3", 0], ["sep_conv_5x5", 1]], "reduce": [["avg_pool_3x3", 0], ["sep_conv_5x5", 1]],
             "seq": [["rnn_2", 0], ["lstm_2", 1]]}
    pilot.add_row(tmp_path, row(0, [["rnn_1", 0], ["lstm_1", 1]]))
    pilot.add_row(tmp_path, {**row(1, []), "genotype": other})
    assert "| 0.00 | fail |" in pilot.summary(tmp_path)


def test_rows_are_one_file_keyed_by_budget_and_seed(pilot, tmp_path):
    pilot.add_row(tmp_path, row(1, [], run="lr1e-2"))
    pilot.add_row(tmp_path, row(0, [], run="lr1e-2"))
    pilot.add_row(tmp_path, row(0, [], run="lr1e-2", lift=3.0))  # the same search again replaces its row
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == ["rows.json"]
    stored = json.loads((tmp_path / "rows.json").read_text())
    assert list(stored) == ["lr1e-2_seed0", "lr1e-2_seed1"] and stored["lr1e-2_seed0"]["mean_lift"] == 3.0


def test_a_resumed_pilot_skips_a_search_whose_row_exists(pilot, tmp_path, monkeypatch):
    done = {**row(0, [], run="lr1e-2"), "val_ua": 41.5}
    pilot.add_row(tmp_path, done)
    searched = []

    def search(fold, net, cfg, run_dir, resume):
        searched.append(run_dir.name)
        raise RuntimeError("searched")

    monkeypatch.setattr(pilot, "run_search", search)
    assert pilot.run_one(None, "lr1e-2", 0, tmp_path / "work", tmp_path) == done
    assert searched == []
    with pytest.raises(RuntimeError, match="searched"):  # the seed without a row is searched
        pilot.run_one(None, "lr1e-2", 1, tmp_path / "work", tmp_path)
    assert searched == ["lr1e-2_seed1"]


def add_rows(pilot, out, seed, start, n):
    start.wait(30)
    for k in range(n):
        pilot.add_row(out, row(seed, [], run=f"r{k:02d}"))


def test_two_writers_side_by_side_lose_no_row(pilot, tmp_path):
    """Two processes (two seeds, as the README runs them) add rows to one rows.json at once:
    each read-update-rewrite holds the lock, so neither overwrites the other's rows."""
    n = 25
    ctx = multiprocessing.get_context("fork")
    start = ctx.Event()
    writers = [ctx.Process(target=add_rows, args=(pilot, tmp_path, seed, start, n)) for seed in (0, 1)]
    for w in writers:
        w.start()
    start.set()
    for w in writers:
        w.join(60)
    assert [w.exitcode for w in writers] == [0, 0]
    stored = pilot.read_rows(tmp_path)
    assert sorted(stored) == sorted(f"r{k:02d}_seed{s}" for k in range(n) for s in (0, 1))


def make_histories(work, name):
    """Two seeds' run directories of budget `name`: they agree at epoch 1 and part at epoch 2."""
    lean, against = [[0.4, 0.3, 0.2, 0.1]], [[0.1, 0.2, 0.3, 0.4]]
    for seed, late in ((0, lean), (1, against)):
        run = work / f"{name}_seed{seed}"
        run.mkdir(parents=True)
        epochs = []
        for epoch, probs in ((1, lean), (2, late)):
            seq = [["rnn_1", 0], ["lstm_1", 1]] if epoch == 1 or seed == 0 else [["rnn_2", 0], ["lstm_2", 1]]
            epochs.append({"epoch": epoch, "genotype": {**CNN, "seq": seq}, "lift": {"normal": 1.5, "seq": 1.5},
                           "probs": {"normal": probs, "reduce": probs, "seq": probs}})
        (run / "alpha_history.json").write_text(json.dumps({"epochs": epochs}))
        (run / "metrics.jsonl").write_text("".join(json.dumps({"alpha_updates": 6 * e}) + "\n" for e in (1, 2)))


def test_trajectory_follows_the_two_seeds_epoch_by_epoch(pilot, tmp_path):
    work, out = tmp_path / "work", tmp_path / "out"
    make_histories(work, "lr1e-2")
    returned = pilot.trajectory("lr1e-2", [0, 1], work, out, every=1)
    rows = read_trajectories(out / "trajectories.csv")
    assert [r["budget"] for r in rows] == ["lr1e-2", "lr1e-2"] and list(rows[0])[0] == "budget"
    assert [{k: v for k, v in r.items() if k != "budget"} for r in rows] == [
        {k: str(v) for k, v in r.items()} for r in returned]
    assert [r["alpha_steps"] for r in rows] == ["6", "12"]
    assert float(rows[0]["shared_all"]) == 1.0 and float(rows[0]["alpha_corr_seq"]) == pytest.approx(1.0)
    assert float(rows[1]["shared_seq"]) == 0.0 and float(rows[1]["alpha_corr_normal"]) == pytest.approx(-1.0)
    assert float(rows[1]["shared_all"]) == pytest.approx(4 / 6, abs=1e-3)


def test_trajectory_replaces_its_budget_and_keeps_the_others(pilot, tmp_path, capsys):
    work, out = tmp_path / "work", tmp_path / "out"
    make_histories(work, "lr1e-2")
    other = [{"epoch": "1", "alpha_steps": "", "shared_all": "0.083", "alpha_corr_seq": ""},
             {"epoch": "5", "alpha_steps": "18", "shared_all": "0.667", "alpha_corr_seq": "0.624"}]
    pilot.write_trajectory(out, "lr3e-3", other)
    pilot.write_trajectory(out, "lr1e-2", [{"epoch": "9", "alpha_steps": "99"}] * 3)  # an earlier, longer run
    pilot.main(["--trajectory", "lr1e-2", "--seeds", "0", "1", "--work", str(work), "--out", str(out)])
    pilot.main(["--trajectory", "lr1e-2", "--seeds", "0", "1", "--work", str(work), "--out", str(out)])
    rows = read_trajectories(out / "trajectories.csv")
    assert [r["budget"] for r in rows] == ["lr1e-2", "lr1e-2", "lr3e-3", "lr3e-3"]
    assert [r["epoch"] for r in rows[:2]] == ["1", "2"]
    assert [{k: r[k] for k in other[0]} for r in rows[2:]] == other  # as written, blanks included
    printed = capsys.readouterr().out.split("\n\n")[0].splitlines()  # the first call's print: lr1e-2 alone
    assert printed[0].startswith("epoch,alpha_steps,shared_all") and len(printed) == 3
    assert [line.split(",")[:2] for line in printed[1:]] == [["1", "6"], ["2", "12"]]


def test_a_corrupt_rows_file_is_an_error_naming_it(pilot, tmp_path):
    path = tmp_path / "rows.json"
    path.write_text('{"lr1e-2_seed0": {"run": "lr1e-2", ')  # cut off mid-write by hand
    with pytest.raises(pilot.PilotFileError, match=re.escape(str(path))):
        pilot.summary(tmp_path)
    with pytest.raises(pilot.PilotFileError, match=re.escape(str(path))):  # never read as "no rows" and rerun
        pilot.run_one(None, "lr1e-2", 0, tmp_path / "work", tmp_path)
    with pytest.raises(SystemExit, match=re.escape(str(path))):
        pilot.main(["--summary", "--out", str(tmp_path)])
    path.write_text("[1, 2]")
    with pytest.raises(pilot.PilotFileError, match=re.escape(str(path))):
        pilot.summary(tmp_path)
