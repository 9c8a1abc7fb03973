"""The paper-size searches' cost, estimated before they start."""

import pytest

from emodarts_core.config import preset
from emodarts_core.study import paper_size
from emodarts_core.study.sweep import load_params


def test_an_emodb_search_takes_the_steps_of_its_alpha_budget():
    search = load_params("study_emodb_v3_paper").search
    # 181 utterances: halves of 91 and 90 give 6 steps of 16 each; 2 warm-up epochs, then
    # ceil(300 / 6) = 50 epochs of α steps
    assert paper_size.search_steps(search) == (2 + 50) * 6


def test_the_estimate_times_the_profiles_own_step_at_the_papers_size():
    asked = {}

    def bench(**kwargs):
        asked.update(kwargs)
        return {"seconds_per_step": 2.0, "device": "cpu", "peak_rss_mb": 900.0, "predicted_peak_mb": 850.0}

    out = paper_size.estimate("study_emodb_v3_paper", [1, 5], [0, 1], bench=bench)
    assert asked["preset_name"] == "paper" and asked["batch"] == 16 and asked["order"] == 1
    assert asked["network"]["init_channels"] == 8 and asked["network"]["stem_stride"] == 1
    assert asked["network"]["nodes"] == 4 and asked["network"]["seq_nodes"] == 3
    preset(asked["preset_name"], partial_channels=asked["partial_channels"], **asked["network"])  # as the bench builds it
    assert out["searches"] == 8 and out["steps_per_search"] == 312
    assert out["hours_total"] == pytest.approx(2.0 * 312 * 8 / 3600)
    assert "8 searches" in paper_size.describe(out)
