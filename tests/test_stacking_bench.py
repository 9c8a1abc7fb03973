"""`python -m emodarts_core.bench --stack K`: the stacked-search bench runs and reports both arms."""

import json

from emodarts_core.perf import bench
from loop_helpers import single_thread  # noqa: F401


def test_bench_stack_reports_both_arms_per_k_and_thread_count(capsys):
    assert bench.main(["--stack", "1", "2", "--preset", "smoke", "--batch", "2", "--threads", "1",
                       "--steps", "1", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["K"] for r in rows] == [1, 2] and all(r["threads"] == 1 for r in rows)
    for r in rows:
        assert r["speedup"] == r["separate_s"] / r["stacked_s"] > 0
        assert set(r["memory_per_search_mb"]) == {"stacked", "separate"} and r["process_mb"] > 0
        assert r["gflop_per_search_step"] > 0 and 0 < r["matmul_fraction"]["stacked"]
        assert r["per_search_steps_per_s"]["stacked"] == r["K"] / r["stacked_s"]
