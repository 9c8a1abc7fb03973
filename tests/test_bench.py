"""The bench CLI prints one JSON object with the figures docs/PERFORMANCE.md quotes."""

import json

from emodarts_core.darts.bench import main
from loop_helpers import single_thread  # noqa: F401


def test_bench_json_is_one_object(capsys):
    assert main(["--preset", "smoke", "--batch", "2", "--steps", "2", "--warmup", "0", "--device", "cpu",
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["preset"] == "smoke" and result["order"] == 1 and len(result["step_seconds"]) == 2
    assert result["supernet_parameters"] > 0 and result["seconds_per_step"] > 0
    assert result["samples_per_second"] == 2 / result["seconds_per_step"]
    assert result["peak_rss_mb"] > 0


def test_bench_second_order_with_checkpointing(capsys):
    assert main(["--preset", "smoke", "--batch", "2", "--steps", "1", "--warmup", "0", "--order", "2",
                 "--checkpointing", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["order"] == 2 and result["checkpointing"] is True


def test_bench_reports_prediction_profile_and_partial_channels(capsys):
    assert main(["--preset", "smoke", "--order", "1", "2", "--batch", "2", "--steps", "1", "--warmup", "0",
                 "--device", "cpu", "--partial-channels", "2", "--profile", "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert [r["order"] for r in results] == [1, 2]
    for r in results:
        assert r["partial_channels"] == 2 and r["predicted_peak_mb"] > 0
        assert "Self CPU" in r["profile_table"]


def _policy_in_fresh_process(env_extra: dict) -> str:
    import os
    import subprocess
    import sys
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"} | env_extra
    code = "import os, emodarts_core; print(os.environ.get('OMP_WAIT_POLICY', 'default'))"
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True).stdout.strip()


def test_openmp_threads_sleep_when_another_task_keeps_a_core_busy():
    """With a busy loop running beside it, importing emodarts_core picks OMP_WAIT_POLICY=PASSIVE
    (spinning waits made a step 2.6x slower then); an explicit setting always wins."""
    import subprocess
    import sys
    import time
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        assert _policy_in_fresh_process({}) == "PASSIVE"
        assert _policy_in_fresh_process({"OMP_WAIT_POLICY": "ACTIVE"}) == "ACTIVE"
    finally:
        hog.kill()
        hog.wait()
