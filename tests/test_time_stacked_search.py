"""tools/time_stacked_search.py: both arms run the real searches, K of them, and the summary
divides what it should (docs/PERFORMANCE.md, "Many searches in one step")."""

import argparse

import pytest

from loop_helpers import single_thread, tiny_fold  # noqa: F401 (fixture)
from tool_modules import load_tool


@pytest.fixture(scope="module")
def tool():
    return load_tool("time_stacked_search")


def _args(**over):
    params = {"network": {"preset": "smoke", "input_size": [16, 16]},
              "search": {"batch_size": 4, "warmup_epochs": 1}}
    return argparse.Namespace(**{"params": params, "dataset": "synthetic", "data_dir": None, "fold": 1, "K": 2,
                                 "epochs": 2, "threads": 1, **over})


def test_each_arm_runs_its_searches_and_records_every_epoch(tool, monkeypatch):
    monkeypatch.setattr("data_prep.load_fold", lambda *args, **kwargs: tiny_fold())
    rows = [tool.run_arm(arm, _args()) for arm in ("separate", "stacked", "single")]
    assert [r["searches"] for r in rows] == [2, 2, 1]
    for r in rows:
        assert len(r["epoch_seconds"]) == r["searches"] and all(len(e) == 2 for e in r["epoch_seconds"])
        assert r["wall_s"] > 0 and r["peak_rss_bytes"] > 0
    out = tool.summary(rows, 2)
    assert out["per_search_throughput_ratio"] == pytest.approx(rows[0]["wall_s"] / rows[1]["wall_s"])
    assert out["memory_per_search_mb"]["stacked"] == pytest.approx(rows[1]["peak_rss_bytes"] / 2 / 2**20)
    assert out["memory_per_search_mb"]["single"] == pytest.approx(rows[2]["peak_rss_bytes"] / 2**20)


def test_epoch_seconds_count_a_stack_once_and_every_separate_search():
    tool = load_tool("time_stacked_search")
    separate = {"arm": "separate", "searches": 2, "wall_s": 8.0, "peak_rss_bytes": 2**20,
                "epoch_seconds": [[1.0, 3.0], [1.0, 5.0]]}
    stacked = {"arm": "stacked", "searches": 2, "wall_s": 4.0, "peak_rss_bytes": 2**21,
               "epoch_seconds": [[1.0, 2.0], [1.0, 2.0]]}  # the stack's epochs, recorded by each copy
    two = {"arm": "stacked", "searches": 4, "wall_s": 4.0, "peak_rss_bytes": 2**21, "epoch_seconds": [],
           "per_process": [stacked, stacked]}
    out = tool.summary([separate, stacked], 2)
    assert out["epoch_s_per_search"] == {"separate": pytest.approx((2.0 + 8.0) / 2 / 2),
                                         "stacked": pytest.approx((1.0 + 2.0) / 2 / 2)}
    assert out["per_search_throughput_ratio"] == 2.0
    assert tool.summary([separate, two], 2)["epoch_s_per_search"]["stacked"] == pytest.approx((2.0 + 4.0) / 2 / 4)
