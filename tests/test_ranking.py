"""Ranking by a supernet: rank statistics, the one-shot scores of a finished search, tables."""

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

sys.path.insert(0, str(Path(__file__).parent))
from loop_helpers import search_cfg, single_thread, tiny_fold, tiny_net  # noqa: E402,F401

from emodarts_core.darts.search import run_search  # noqa: E402
from emodarts_core.space.sampling import random_genotypes  # noqa: E402
from emodarts_core.study import ranking  # noqa: E402


def test_rank_agreement_matches_scipy_and_counts_the_top_five():
    rng = np.random.default_rng(0)
    a = rng.normal(size=15)
    b = a + rng.normal(scale=0.5, size=15)
    out = ranking.rank_agreement(a, b, n_boot=300)
    assert out["tau"] == pytest.approx(stats.kendalltau(a, b).statistic)
    assert out["rho"] == pytest.approx(stats.spearmanr(a, b).statistic)
    assert out["tau_low"] <= out["tau"] <= out["tau_high"]
    assert out["n"] == 15
    top_a, top_b = set(np.argsort(-a)[:5]), set(np.argsort(-b)[:5])
    assert out["top5_overlap"] == len(top_a & top_b) / 5
    same = ranking.rank_agreement(a, a, n_boot=50)
    assert same["tau"] == pytest.approx(1.0) and same["top5_overlap"] == 1.0 and same["tau_low"] == pytest.approx(1.0)
    reversed_ = ranking.rank_agreement(a, -a, n_boot=50)
    assert reversed_["tau"] == pytest.approx(-1.0) and reversed_["top5_overlap"] == 0.0


def test_the_bootstrap_is_scipys_per_resample_bit_for_bit():
    """rank_agreement's vectorised bootstrap gives the intervals that one scipy call per
    resample gives, from the same draws; ties (many in UAs of 15 test utterances) included."""
    rng = np.random.default_rng(3)
    for a, b in ((rng.normal(size=12), rng.normal(size=12)),
                 (rng.integers(0, 4, 12).astype(float), rng.integers(0, 3, 12).astype(float))):
        draws, taus, rhos = np.random.default_rng(0), [], []
        for _ in range(200):
            idx = draws.integers(12, size=12)
            if np.ptp(a[idx]) and np.ptp(b[idx]):
                taus.append(stats.kendalltau(a[idx], b[idx]).statistic)
                rhos.append(stats.spearmanr(a[idx], b[idx]).statistic)
        out, q = ranking.rank_agreement(a, b, n_boot=200), [100 * (1 - 0.95) / 2, 100 * (1 + 0.95) / 2]
        assert [out["tau_low"], out["tau_high"]] == np.nanpercentile(taus, q).tolist()
        assert [out["rho_low"], out["rho_high"]] == np.nanpercentile(rhos, q).tolist()
        x, y = a[rng.integers(12, size=(100, 12))], b[rng.integers(12, size=(100, 12))]
        ranked = (np.ptp(x, axis=1) != 0) & (np.ptp(y, axis=1) != 0)
        tau, rho = ranking._rank_correlations(x[ranked], y[ranked])
        assert tau.tolist() == [stats.kendalltau(u, v).statistic for u, v in zip(x[ranked], y[ranked])]
        assert rho.tolist() == [stats.spearmanr(u, v).statistic for u, v in zip(x[ranked], y[ranked])]


def test_rank_agreement_drops_missing_scores_and_refuses_mismatched_ones():
    out = ranking.rank_agreement([1, 2, np.nan, 4], [1, 2, 3, 4], n_boot=20)
    assert out["n"] == 3 and out["tau"] == pytest.approx(1.0)
    assert np.isnan(ranking.rank_agreement([1, 2], [2, 1])["tau"])
    with pytest.raises(ValueError, match="same architectures"):
        ranking.rank_agreement([1, 2, 3], [1, 2])


def test_chance_gap():
    out = ranking.chance_gap([0.25, 0.25, 0.5, 0.3], 4)
    assert out["chance"] == 0.25 and out["one_shot_ua_mean"] == pytest.approx(0.325)
    assert out["gap"] == pytest.approx(0.075) and out["above_chance"] == 0.5


def test_ranking_table_per_fold_supernet_and_mode():
    keys = [f"seed0/arch{k}" for k in range(6)]
    stand = pd.DataFrame({"fold": 1, "seed": 0, "arch": range(6), "test_ua_full": [50, 60, 55, 70, 65, 40],
                          "search_split_ua": [40, 41, 42, 43, 44, 45], "key": keys})
    scores = pd.DataFrame({"fold": 1, "supernet": "prior", "supernet_seed": 0, "bn_mode": "batch", "arch": keys,
                           "one_shot_ua": [0.50, 0.60, 0.55, 0.70, 0.65, 0.40]})
    table = ranking.ranking_table(scores, stand, n_classes=4, n_boot=50)
    assert list(table.columns) == list(ranking.RANKING_COLUMNS)
    full = table[table["target"] == "test_ua_full"].iloc[0]
    held = table[table["target"] == "search_split_ua"].iloc[0]
    assert full["tau"] == pytest.approx(1.0) and full["above_chance"] == 1.0
    assert held["tau"] == pytest.approx(stats.kendalltau([50, 60, 55, 70, 65, 40], range(6)).statistic)
    text = ranking.ranking_markdown(table)
    assert "| 1 | prior | batch | test_ua_full | 6 | +1.00" in text


def test_scatter_scores_average_a_fold_s_supernet_seeds_per_architecture():
    keys = ["seed0/arch0", "seed1/arch0"]
    stand = pd.DataFrame({"fold": [1, 1, 2], "seed": [0, 1, 0], "arch": [0, 0, 0], "test_ua_full": [50.0, 70.0, 60.0],
                          "search_split_ua": [40.0, 45.0, 42.0], "key": [*keys, "seed0/arch0"]})
    scores = pd.DataFrame({"fold": 1, "supernet": "emodarts", "supernet_seed": [0, 1, 0, 1, 0],
                           "bn_mode": ["recalibrated"] * 4 + ["batch"], "arch": [keys[0], keys[0], keys[1], keys[1], keys[0]],
                           "one_shot_ua": [0.30, 0.40, 0.50, 0.70, 0.99]})
    frame = ranking.scatter_scores(scores, stand)
    assert frame[["fold", "supernet", "arch"]].values.tolist() == [[1, "emodarts", keys[0]], [1, "emodarts", keys[1]]]
    assert frame["one_shot_ua"].tolist() == pytest.approx([0.35, 0.60])  # the batch-mode score is not mixed in
    assert frame["test_ua_full"].tolist() == [50.0, 70.0]  # fold 2's architecture of the same key is not taken
    with pytest.raises(ValueError, match="'running'"):
        ranking.scatter_scores(scores, stand, bn_mode="running")


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_rank_supernet_scores_a_finished_search_and_keeps_its_file(tmp_path):
    fold, net = tiny_fold(), tiny_net()
    run = tmp_path / "search"
    run_search(fold, net, search_cfg(epochs=2), run)
    archs = {f"seed0/arch{k}": g for k, g in enumerate(random_genotypes(net, 3, seed=0, fold=1))}
    out = tmp_path / "ranking.json"
    rows = ranking.rank_supernet(run, fold, archs, out, modes=("batch", "recalibrated"), recal_batches=2)
    assert len(rows) == 6 and {r["bn_mode"] for r in rows} == {"batch", "recalibrated"}
    assert all(0.0 <= r["one_shot_ua"] <= 1.0 for r in rows)
    stored = json.loads(out.read_text())
    assert stored["rows"] == rows and "training speakers only" in stored["scored_on"]
    # a second call reads the file: the supernet is not needed again
    (run / "checkpoint.pt").rename(tmp_path / "moved.pt")
    assert ranking.rank_supernet(run, fold, archs, out, modes=("batch", "recalibrated"), recal_batches=2) == rows
    with pytest.raises(FileNotFoundError, match="checkpoint.pt"):
        ranking.rank_supernet(run, fold, archs, tmp_path / "other.json", modes=("batch",))


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_rerun_search_reproduces_the_genotype_and_refuses_another_fold(tmp_path):
    fold, net = tiny_fold(), tiny_net()
    run_search(fold, net, search_cfg(epochs=2, alpha_lr=0.05), tmp_path / "committed")  # α that move
    (tmp_path / "committed" / "checkpoint.pt").unlink()  # as in a committed study
    again = ranking.rerun_search(tmp_path / "committed", tmp_path / "again", fold)
    assert ranking.supernet_state(again)
    other = tiny_fold(n_search=18)
    with pytest.raises(ValueError, match="not the one this search ran on"):
        ranking.rerun_search(tmp_path / "committed", tmp_path / "third", other)


def test_stand_alone_scores_read_packed_runs(tmp_path):
    import shutil

    from emodarts_core.study.results import collect_study
    from emodarts_core.study.results.pack import pack_study

    root = tmp_path / "emodb"
    for arch, (full, held) in enumerate(((0.6, 0.5), (0.7, None))):
        for protocol, ua in (("full", full), ("paper", 0.4)):
            d = root / "random" / "fold1" / "seed0" / f"arch{arch}" / f"retrain-{protocol}"
            d.mkdir(parents=True)
            study = {"dataset": "emodb", "protocol": protocol, "model": "random", "scope": "emodarts", "fold": 1,
                     "seed": 0, "arch": arch}
            (d / "config.json").write_text(json.dumps({"kind": "retrain", "study": study}))
            (d / "result.json").write_text(json.dumps({"test_ua": ua, "test_wa": ua, "params": 10, "n_test": 8,
                                                       "best_val_ua": held if protocol == "paper" else None}))
    pack_study(root)
    shutil.rmtree(root / "random")  # only the pack is left
    stand = ranking.stand_alone_scores(collect_study(root), root).sort_values("arch")
    assert list(stand["test_ua_full"]) == pytest.approx([60.0, 70.0])
    assert stand["search_split_ua"].iloc[0] == pytest.approx(50.0) and np.isnan(stand["search_split_ua"].iloc[1])
    assert list(stand["key"]) == ["seed0/arch0", "seed0/arch1"]


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_rank_study_scores_the_folds_architectures_and_tables_md_shows_them(tmp_path, monkeypatch):
    from emodarts_core.study.diagnosis import diagnosis_sections
    from emodarts_core.study.results import collect_study

    fold, net = tiny_fold(), tiny_net()
    monkeypatch.setattr("data_prep.load_fold", lambda *args, **kwargs: fold)
    root = tmp_path / "synthetic"
    run_search(fold, net, search_cfg(epochs=2), root / "prior" / "fold1" / "seed0" / "search")
    for k, g in enumerate(random_genotypes(net, 4, seed=0, fold=1)):
        for protocol, ua in (("full", 0.3 + 0.1 * k), ("paper", 0.5)):
            d = root / "random" / "fold1" / "seed0" / f"arch{k}" / f"retrain-{protocol}"
            d.mkdir(parents=True)
            study = {"dataset": "synthetic", "protocol": protocol, "model": "random", "scope": "emodarts",
                     "fold": 1, "seed": 0, "arch": k}
            (d / "config.json").write_text(json.dumps({"kind": "retrain", "study": study,
                                                       "model": {"genotype": g.to_dict()}}))
            (d / "result.json").write_text(json.dumps({"test_ua": ua, "test_wa": ua, "params": 10, "n_test": 8,
                                                       "confusion": np.eye(4, dtype=int).tolist(),
                                                       "best_val_ua": 0.2 + 0.1 * k}))
    scores = ranking.rank_study(root, modes=("batch",), recal_batches=1, log=lambda text: None)
    assert len(scores) == 4 and set(scores["supernet"]) == {"prior"}
    assert (root / "ranking.csv").is_file() and (root / "prior" / "fold1" / "seed0" / "search" / "ranking.json").is_file()
    text = diagnosis_sections(root, collect_study(root))
    assert "How well the supernet ranks" in text and "| 1 | prior | batch | test_ua_full | 4 |" in text


def test_a_score_that_is_the_same_for_every_architecture_ranks_nothing():
    out = ranking.rank_agreement([0.25] * 5, [1, 2, 3, 4, 5], n_boot=10)
    assert np.isnan(out["tau"]) and np.isnan(out["rho"]) and out["n"] == 5


def test_the_ceiling_pairs_the_two_retrainings_of_each_architecture():
    rows = []
    for arch, (a, b) in enumerate(((50, 52), (60, 58), (70, 71), (40, 45))):
        for model, ua in (("random", a), ("random_reseed", b)):
            rows.append({"protocol": "full", "model": model, "fold": 1, "seed": 0, "arch": arch, "ua": ua})
    table = ranking.ceiling_table(pd.DataFrame(rows), n_boot=20)
    assert table.loc[0, "n"] == 4 and table.loc[0, "tau"] == pytest.approx(1.0)
    assert "| 1 | 4 | +1.00" in ranking.ceiling_markdown(table)
