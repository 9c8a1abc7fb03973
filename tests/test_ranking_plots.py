"""The figures of notebook 06: ranking per fold, optimism."""

import matplotlib
import numpy as np
import pandas as pd
import pytest

matplotlib.use("Agg")

from emodarts_core.plots import plot_optimism, plot_ranking  # noqa: E402


def test_ranking_has_a_panel_per_fold_with_each_supernets_tau(tmp_path):
    rng = np.random.default_rng(0)
    rows = [{"fold": f, "supernet": s, "one_shot_ua": u, "test_ua_full": 100 * u}
            for f in (1, 2) for s in ("prior", "emodarts") for u in rng.uniform(0.2, 0.6, 5)]
    fig = plot_ranking(pd.DataFrame(rows), path=tmp_path / "r.png")
    assert len(fig.axes) == 2 and (tmp_path / "r.png").is_file()
    assert "prior τ=+1.00" in fig.axes[0].get_title() and "emodarts τ=+1.00" in fig.axes[0].get_title()
    with pytest.raises(ValueError, match="score the architectures"):
        plot_ranking(pd.DataFrame(columns=["fold"]))


def test_optimism_draws_each_run_against_the_diagonal():
    gaps = pd.DataFrame({"model": ["a", "b"], "honest_ua": [50.0, 60.0], "best_epoch_ua": [55.0, 61.0]})
    fig = plot_optimism(gaps)
    assert "bias" in fig.axes[0].get_title()
    with pytest.raises(ValueError, match="test_trace"):
        plot_optimism(gaps.iloc[:0])
