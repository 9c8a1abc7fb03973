"""The figures of whether a search's α moved (emodarts_core.plots.alpha)."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402

from emodarts_core.plots.alpha import MIN_LIFT, plot_alpha_diagnostics, plot_alpha_moves  # noqa: E402
from emodarts_core.darts import diagnostics  # noqa: E402

PRIMS = {"normal": ["none", "skip_connect", "sep_conv_3x3"], "seq": ["none", "skip_connect", "rnn_1", "lstm_1"]}


def _alpha_file():
    uniform = {k: np.full((2, len(v)), 1 / len(v)).tolist() for k, v in PRIMS.items()}
    moved = {"normal": [[0.1, 0.1, 0.8], [0.2, 0.6, 0.2]], "seq": [[0.1, 0.1, 0.7, 0.1], [0.25] * 4]}
    epochs = [{"epoch": 1, "probs": uniform, "alpha_updates": 0},
              {"epoch": 2, "probs": moved, "alpha_updates": 5}]
    return {"primitives": PRIMS, "initial": {"probs": uniform}, "epochs": epochs}


def test_moves_start_at_the_initial_alpha_and_mark_the_uniform_level(tmp_path):
    fig = plot_alpha_moves(_alpha_file(), tmp_path / "moves.png")
    assert (tmp_path / "moves.png").stat().st_size > 0
    top = fig.axes[:2] if len(fig.axes) == 4 else None
    assert top is not None  # two rows of two cell types
    for ax, k in zip(fig.axes[:2], (3, 4)):
        levels = [line.get_ydata()[0] for line in ax.get_lines() if line.get_linestyle() == ":"]
        assert levels and np.allclose(levels, 1 / k)
        op_lines = [line for line in ax.get_lines() if line.get_label() in PRIMS["normal"] + PRIMS["seq"]]
        assert list(op_lines[0].get_xdata()) == [0, 1, 2]  # epoch 0 is the initial α


def test_diagnostics_plot_the_recorded_lift_against_alpha_steps(tmp_path):
    file = _alpha_file()
    records = []
    for entry in file["epochs"]:
        d = diagnostics.epoch_diagnostics(entry["probs"], PRIMS, {"normal": [], "seq": []})
        records.append({"epoch": entry["epoch"], "alpha_updates": entry["alpha_updates"], **d,
                        "agreement_previous": {"normal": 1.0, "seq": 0.5}})
    fig = plot_alpha_diagnostics(records, tmp_path / "diag.png")
    lift_ax = fig.axes[0]
    lines = {line.get_label(): line for line in lift_ax.get_lines()}
    np.testing.assert_allclose(lines["CNN normal cell"].get_ydata(), [r["lift"]["normal"] for r in records])
    assert list(lines["CNN normal cell"].get_xdata()) == [0, 5]
    assert lines[f"{MIN_LIFT}: α barely moved below"].get_ydata()[0] == diagnostics.MIN_LIFT
    assert lift_ax.get_xlabel() == "α steps taken"
