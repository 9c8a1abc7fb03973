"""Every plot renders headless and writes its file; cells are drawn edge by edge."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from emodarts_core.study import paper, plots# noqa: E402
from emodarts_core.space.genotypes import Genotype, parse  # noqa: E402
from emodarts_core.space.search_space import CNN_PRIMITIVES, SEQ_PRIMITIVES  # noqa: E402

PRIMS = {"normal": CNN_PRIMITIVES, "reduce": CNN_PRIMITIVES, "seq": SEQ_PRIMITIVES}


def _probs(rng, nodes, ops):
    raw = rng.random((sum(2 + i for i in range(nodes)), len(ops)))
    return raw / raw.sum(axis=1, keepdims=True)


@pytest.fixture
def genotype():
    rng = np.random.default_rng(0)
    normal, nc = parse(_probs(rng, 4, CNN_PRIMITIVES), CNN_PRIMITIVES, 4)
    reduce, rc = parse(_probs(rng, 4, CNN_PRIMITIVES), CNN_PRIMITIVES, 4)
    seq, sc = parse(_probs(rng, 3, SEQ_PRIMITIVES), SEQ_PRIMITIVES, 3)
    return Genotype(normal, nc, reduce, rc, seq, sc)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _written(path):
    return path.exists() and path.stat().st_size > 1000


def test_cell_edges_follow_the_genotype(genotype):
    edges, nodes = plots.cell_edges(genotype, "seq")
    assert nodes == 3 and len(edges) == 6
    assert [target for _, _, target in edges] == [0, 0, 1, 1, 2, 2]
    assert [(op, src) for op, src, _ in edges] == genotype.seq


def test_draw_cell_labels_every_edge(genotype):
    ax = plots.draw_cell(genotype, "normal")
    texts = [t.get_text() for t in ax.texts]
    assert sorted(t for t in texts if t in CNN_PRIMITIVES) == sorted(op for op, _ in genotype.normal)
    assert {"$c_{k-2}$", "$c_{k-1}$", "$c_{k}$", "0", "3"} <= set(texts)


def test_genotype_figure_from_object_and_json_dict(genotype, tmp_path):
    fig = plots.plot_genotype(genotype, tmp_path / "cells.png", title="found cells")
    assert len(fig.axes) == 3 and _written(tmp_path / "cells.png")
    cnn_only = Genotype(genotype.normal, genotype.normal_concat, genotype.reduce, genotype.reduce_concat)
    assert len(plots.plot_genotype(cnn_only.to_dict()).axes) == 2


def test_training_curves_and_alpha_plots(tmp_path):
    history = [{"epoch": e, "train_loss": 1.0 / e, "val_loss": 1.1 / e, "train_acc": 0.2 * e, "val_ua": 0.1 * e,
                "param_free": {"normal": 0.5}, "lr": 0.01} for e in range(1, 5)]
    fig = plots.plot_training_curves(history, tmp_path / "curves.png")
    loss_ax, acc_ax = fig.axes
    assert {line.get_label() for line in loss_ax.lines} == {"train_loss", "val_loss"}
    assert {line.get_label() for line in acc_ax.lines} == {"train_acc", "val_ua"}
    rng = np.random.default_rng(1)
    alpha_history = [{"normal": _probs(rng, 2, CNN_PRIMITIVES), "reduce": _probs(rng, 2, CNN_PRIMITIVES),
                      "seq": _probs(rng, 2, SEQ_PRIMITIVES)} for _ in range(3)]
    fig = plots.plot_alpha_trajectories(alpha_history, PRIMS, tmp_path / "traj.png")
    assert len(fig.axes[0].lines) == len(CNN_PRIMITIVES) and len(fig.axes[2].lines) == len(SEQ_PRIMITIVES)
    plots.plot_alpha_heatmap(alpha_history[-1], PRIMS, tmp_path / "heat.png")
    assert all(_written(tmp_path / n) for n in ("curves.png", "traj.png", "heat.png"))


def test_confusion_and_utterance(tmp_path):
    cm = np.array([[5, 1, 0, 0], [2, 3, 1, 0], [0, 0, 4, 2], [0, 1, 0, 6]])
    fig = plots.plot_confusion(cm, ["anger", "happiness", "neutral", "sadness"], tmp_path / "cm.png")
    assert "5\n83%" in [t.get_text() for t in fig.axes[0].texts]
    plots.plot_utterance(np.random.rand(128, 128), np.random.randn(16000), 16000, "utt", tmp_path / "utt.png")
    assert _written(tmp_path / "cm.png") and _written(tmp_path / "utt.png")


def test_ua_scatter_and_bars_show_gaps(tmp_path):
    t7 = paper.paper_table(7)
    ours = pd.DataFrame({"dataset": "emodb", "scope": ["emodarts", "rnn_only"], "ua_mean": [80.0, np.nan],
                         "ua_std": [3.0, np.nan], "params": [1e5, np.nan]})
    frame = pd.concat([t7, ours], ignore_index=True)
    fig = plots.plot_ua_scatter(frame, path=tmp_path / "fig7.png")
    assert len(fig.axes) == 4
    assert any("no run yet: rnn_only" in t.get_text() for t in fig.axes[3].texts)
    bars = pd.DataFrame({"dataset": ["iemocap", "iemocap", "emodb", "emodb"],
                         "model": ["cnn_lstm_att", "emodarts"] * 2, "ua_mean": [53.5, 76.5, np.nan, 80.0],
                         "ua_std": [2.5, 4.0, np.nan, 2.0]})
    fig = plots.plot_ua_bars(bars, path=tmp_path / "fig5.png")
    assert any(t.get_text() == "n/a" for t in fig.axes[0].texts)
    assert _written(tmp_path / "fig7.png") and _written(tmp_path / "fig5.png")


def test_op_colours_group_families():
    assert plots.op_colour("lstm_att_2") != plots.op_colour("lstm_2")
    assert plots.op_colour("max_pool_3x3") == plots.op_colour("avg_pool_3x3")
    assert plots.op_colour("rnn_att_1") != plots.op_colour("rnn_1")
