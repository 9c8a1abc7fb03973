"""plots.plot_per_fold: each model's UA per (fold, seed) cell, seaborn's box and strip plots."""

import matplotlib
import numpy as np
import pandas as pd

from emodarts_core import plots

matplotlib.use("Agg")


def _study() -> pd.DataFrame:
    rows = []
    for fold in (1, 2, 3):
        for seed in (0, 1):
            rows.append({"protocol": "full", "model": "cnn", "fold": fold, "seed": seed, "arch": None,
                         "ua": 50.0 + fold + seed})
            rows.append({"protocol": "full", "model": "emodarts", "fold": fold, "seed": seed, "arch": None,
                         "ua": 60.0 + 2 * fold})
            for arch, offset in ((0, -4.0), (1, 2.0)):  # a cell's random architectures: their mean is the cell's
                rows.append({"protocol": "full", "model": "random", "fold": fold, "seed": seed, "arch": arch,
                             "ua": 55.0 + offset})
    rows.append({"protocol": "full", "model": "prior", "fold": 1, "seed": 0, "arch": None, "ua": np.nan})
    rows.append({"protocol": "paper", "model": "cnn", "fold": 1, "seed": 0, "arch": None, "ua": 10.0})
    return pd.DataFrame(rows)


def test_one_point_per_cell_in_a_box_per_model(tmp_path):
    fig = plots.plot_per_fold(_study(), "full", path=tmp_path / "per_fold.png")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["emodarts", "cnn", "random"]  # emoDARTS first
    points = np.concatenate([c.get_offsets() for c in ax.collections if len(c.get_offsets())])
    assert len(points) == 3 * 6  # three models x six (fold, seed) cells, the random architectures averaged
    by_model = {round(x): sorted(points[np.round(points[:, 0]) == round(x), 1]) for x in (0, 1, 2)}
    assert by_model[0] == sorted(60.0 + 2 * f for f in (1, 2, 3) for _ in (0, 1))
    assert by_model[2] == [54.0] * 6
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["fold 1", "fold 2", "fold 3"]
    assert any("no run yet: prior" in t.get_text() for t in ax.texts)
    assert (tmp_path / "per_fold.png").stat().st_size > 0


def test_the_order_can_be_given_and_other_protocols_stay_out():
    ax = plots.plot_per_fold(_study(), "full", models=["random", "cnn"]).axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["random", "cnn"]
    points = np.concatenate([c.get_offsets() for c in ax.collections if len(c.get_offsets())])
    assert 10.0 not in points[:, 1]
