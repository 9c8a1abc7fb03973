"""tools/gpu_check.py's dry run (`--device cpu --quick`) writes the report the GPU run would.

Whoever has a GPU only now and then runs everything that needs one with one command
(tools/gpu_check.py), so it must not fail for a reason a CPU could have shown: this runs it
end to end in a subprocess, on CPU, at its quick settings, and checks the report's parts and keys. Its
figures are not checked: nothing here is timed.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_gpu_check_dry_run_writes_a_complete_report(tmp_path):
    out = tmp_path / "report.json"
    env = {k: v for k, v in os.environ.items() if k != "EMODARTS_TEST_DEVICE"} | {"OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "gpu_check.py"), "--device", "cpu", "--quick",
                           "--out", str(out), "--work-dir", str(tmp_path / "runs")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.is_file(), proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert proc.returncode == 0 and report["ok"], json.dumps(report, indent=1)[-4000:]

    assert {"tool", "quick", "device", "environment", "decisions", "tests", "bench", "search", "retrain", "ok",
            "wall_seconds", "budget_seconds", "started", "finished"} <= report.keys()
    assert report["quick"] is True and report["device"] == "cpu"
    env_keys = {"torch", "cuda", "cudnn", "device_name", "python", "load_average"}
    assert env_keys <= report["environment"].keys()
    assert report["decisions"]["pin_memory"] is False
    assert report["wall_seconds"] > 0

    tests = report["tests"]
    assert tests["returncode"] == 0 and tests["tests"] >= 5 and tests["failed"] == []
    assert tests["env"] == {"EMODARTS_TEST_DEVICE": "cpu"}

    assert [(b["batch"], b["amp"]) for b in report["bench"]] == [(2, True), (2, False)]
    for b in report["bench"]:
        assert b["preset"] == "smoke" and len(b["step_seconds"]) == 1
        assert b["plain"]["form"] == "plain"
        assert {"speedup", "cpu_time_ratio", "memory_ratio", "peak_rss_mb", "arithmetic_floor_seconds"} <= b.keys()

    assert [s["K"] for s in report["stacking"]] == [1, 2]  # on a GPU: 1 and 16
    assert all(s["speedup"] > 0 and s["memory_per_search_mb"]["stacked"] > 0 for s in report["stacking"])

    search, retrain = report["search"], report["retrain"]
    assert search["ok"] and search["dataset"] == "synthetic" and len(search["history"]) == 1
    assert search["genotype"]["seq"]
    assert retrain["ok"] and 0.0 <= retrain["test_ua"] <= 1.0 and len(retrain["history"]) == 1
