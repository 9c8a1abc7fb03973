"""The study's Markdown tables: the protocols' effects and the exact test's floor."""

import pandas as pd

from emodarts_core.study.report import exact_floor_line, markdown_report, protocol_effects_table


def _summary():
    rows = []
    for protocol, uas in (("paper", (60.0, 70.0)), ("paper_equal", (65.0, 71.0)), ("full", (75.0, 72.5))):
        for model, ua in zip(("emodarts", "cnn"), uas):
            rows.append({"dataset": "emodb", "protocol": protocol, "model": model, "scope": "", "ua_mean": ua,
                         "p_exact": None if model == "emodarts" else 0.5,
                         "p_exact_min": None if model == "emodarts" else 2 / 1024,
                         "n_speakers": 10})
    return pd.DataFrame(rows)


def test_the_protocol_table_separates_fewer_updates_from_less_data():
    table = protocol_effects_table(_summary())
    lines = table.splitlines()
    assert lines[0].startswith("| model | paper | paper_equal | full | more updates")
    assert "| emoDARTS (searched) | 60.0 | 65.0 | 75.0 | +5.0 | +10.0 |" in lines
    assert "| CNN (w/o DARTS) | 70.0 | 71.0 | 72.5 | +1.0 | +1.5 |" in lines
    assert protocol_effects_table(_summary().query("protocol != 'paper_equal'")) == ""
    tiny = _summary()
    tiny.loc[(tiny["model"] == "cnn") & (tiny["protocol"] == "paper_equal"), "ua_mean"] = 70.0 - 1e-12
    assert "| CNN (w/o DARTS) | 70.0 | 70.0 | 72.5 | +0.0 | +2.5 |" in protocol_effects_table(tiny)  # never -0.0


def test_the_exact_floor_is_stated_with_and_without_holm():
    line = exact_floor_line(_summary(), "full")
    assert "2 / 2^10 = 0.00195" in line and "1 comparisons it is at least 0.00195" in line
    summary = _summary().assign(n_runs=1, n_folds=1, n_seeds=1, n_archs=0, ua_std=0.0, wa_mean=0.0, wa_std=0.0,
                                params_mean=1e3, cmp_diff=float("nan"), cmp_n=0)
    text = markdown_report(summary, pd.DataFrame(columns=["protocol", "model", "scope", "fold", "seed", "ua"]))
    assert "smallest attainable p" in text and "more data (full − paper_equal)" in text
