"""Every plot renders headless and writes its file; cells are drawn edge by edge."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from emodarts_core import plots  # noqa: E402
from emodarts_core.study import paper  # noqa: E402
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


def test_alpha_heatmap_is_centred_on_uniform_and_spans_the_deviation():
    probs = {"normal": np.full((3, 4), 0.25) + np.array([[0.002, -0.002, 0.0, 0.0]] * 3)}
    fig = plots.plot_alpha_heatmap(probs, {"normal": ["a", "b", "c", "d"]})
    image = fig.axes[0].images[0]
    assert image.norm.vmin == pytest.approx(0.248) and image.norm.vmax == pytest.approx(0.252)
    # the tiny differences use the whole colour range (not a flat block)
    colours = image.cmap(image.norm(probs["normal"]))
    assert np.abs(colours[0, 0] - colours[0, 1]).max() > 0.3
    plt.close(fig)


def test_collapse_curves_that_coincide_stay_distinguishable():
    same = [{"epoch": e, "param_free": {"seq": 0.5}} for e in (1, 2, 3)]
    fig = plots.plot_collapse({"none": same, "darts_minus": same, "skip_cap": same})
    lines = fig.axes[0].get_lines()
    assert len(lines) == 3 and all(np.array_equal(l.get_ydata(), lines[0].get_ydata()) for l in lines)
    styles = {(l.get_linestyle(), l.get_marker(), l.get_markersize()) for l in lines}
    assert len(styles) == 3 and all(l.get_fillstyle() == "none" for l in lines)
    plt.close(fig)


def test_genotype_edge_labels_do_not_overlap():
    genotype = {"normal": [["sep_conv_3x3", 0], ["sep_conv_5x5", 1], ["dil_conv_3x3", 0], ["dil_conv_5x5", 1],
                           ["max_pool_3x3", 0], ["avg_pool_3x3", 1]],
                "normal_concat": [2, 3, 4], "reduce": [], "reduce_concat": [], "seq": [], "seq_concat": []}
    fig, ax = plt.subplots(figsize=(8, 3.4))
    plots.draw_cell(genotype, "normal", ax=ax)
    renderer = fig.canvas.get_renderer()
    ops = {op for op, _ in genotype["normal"]}
    boxes = [t.get_window_extent(renderer) for t in ax.texts if t.get_text() in ops]
    nodes = [t.get_window_extent(renderer) for t in ax.texts if t.get_text() not in ops and t.get_text()]
    assert len(boxes) == 6 and len(nodes) == 6  # two inputs, three nodes, the output
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    assert not any(a.overlaps(n) for a in boxes for n in nodes)
    plt.close(fig)
