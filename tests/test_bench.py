"""The bench CLI prints one JSON object with the figures docs/PERFORMANCE.md quotes, the plain
form's row measured in the same process and their ratios. No figure is checked against
a time: only that each is there and consistent."""

import json

import pytest

from emodarts_core.config import preset
from emodarts_core.networks import search_network
from emodarts_core.perf import bench, resident
from emodarts_core.perf.bench import main
from loop_helpers import budget_between_gb, single_thread  # noqa: F401


def test_bench_json_is_one_object(capsys):
    assert main(["--preset", "smoke", "--batch", "2", "--steps", "2", "--warmup", "0", "--device", "cpu",
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["preset"] == "smoke" and result["order"] == 1 and len(result["step_seconds"]) == 2
    assert result["supernet_parameters"] > 0 and result["seconds_per_step"] > 0
    assert result["samples_per_second"] == 2 / result["seconds_per_step"]
    assert result["peak_rss_mb"] > 0
    # the arithmetic floor: the step's counted GFLOP at this machine's matrix-product rate
    assert result["gflop_per_step"] > 0 and result["matmul_gflops"] > 0
    assert result["arithmetic_floor_seconds"] == result["gflop_per_step"] / result["matmul_gflops"]
    assert result["fraction_of_matmul_rate"] == result["arithmetic_floor_seconds"] / result["seconds_per_step"]
    assert "gflop_per_step" not in result["plain"]


def test_no_floor_skips_the_count(capsys):
    assert main(["--preset", "smoke", "--batch", "2", "--steps", "1", "--warmup", "0", "--device", "cpu",
                 "--no-plain", "--no-estimate", "--no-floor", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert "gflop_per_step" not in result and "arithmetic_floor_seconds" not in result


def test_bench_measures_the_plain_form_in_the_same_run(capsys):
    """Both rows at the same preset, batch, order and device, from the same weights; the ratios
    are the plain form's figure over the fast one's."""
    assert main(["--preset", "smoke", "--batch", "2", "--steps", "2", "--warmup", "0", "--device", "cpu",
                 "--plain-steps", "1", "--no-floor", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    ref = result["plain"]
    assert result["form"] == "fast" and ref["form"] == "plain"
    for key in ("preset", "order", "batch", "input", "device", "precision", "supernet_parameters",
                "alpha_parameters"):
        assert ref[key] == result[key], key
    assert len(ref["step_seconds"]) == 1 and ref["warmup_steps"] == 0
    assert ref["retained_heap"] is False and "predicted_peak_mb" not in ref
    assert result["speedup"] == ref["seconds_per_step"] / result["seconds_per_step"]
    assert result["cpu_time_ratio"] == ref["cpu_seconds_per_step"] / result["cpu_seconds_per_step"]
    assert result["memory_ratio"] == ref["peak_rss_mb"] / result["peak_rss_mb"]
    assert result["memory_measure"] == "peak_rss_mb"
    for r in (result, ref):
        assert r["peak_rss_mb"] > 0 and r["peak_rss_method"].startswith("kernel") == resident.reset_kernel_peak()


def test_bench_text_shows_both_rows_and_the_ratio(capsys):
    assert main(["--preset", "smoke", "--batch", "2", "--steps", "1", "--warmup", "0", "--device", "cpu",
                 "--no-estimate"]) == 0
    text = capsys.readouterr().out
    assert "  fast      :" in text and "  plain     :" in text and "arithmetic floor" in text
    assert "speed-up" in text and "memory ratio" in text


def test_no_plain_skips_it_and_says_so(capsys):
    assert main(["--preset", "smoke", "--batch", "2", "--steps", "1", "--warmup", "0", "--device", "cpu",
                 "--no-plain", "--no-floor", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["plain"] is None and result["plain_skipped"] == "--no-plain"
    assert "speedup" not in result and "memory_ratio" not in result


def test_bench_second_order_with_checkpointing(capsys):
    """The plain form has no checkpointing: its row runs without, and says so."""
    assert main(["--preset", "smoke", "--batch", "2", "--steps", "1", "--warmup", "0", "--order", "2",
                 "--checkpointing", "--no-floor", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["order"] == 2 and result["checkpointing"] is True
    assert result["plain"]["order"] == 2 and result["plain"]["checkpointing"] is False


def test_bench_checkpoints_the_edges_a_memory_budget_needs(capsys):
    """--memory-budget times the plan of darts.memory.plan_checkpointing: some mixed ops only,
    and the prediction is for that plan and within the budget."""
    budget_gb = budget_between_gb(preset("smoke"), 4)
    assert main(["--preset", "smoke", "--batch", "4", "--steps", "1", "--warmup", "0", "--device", "cpu",
                 "--memory-budget", str(budget_gb), "--no-plain", "--no-floor", "--json"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert result["checkpointing"] is True and result["memory_budget_gb"] == budget_gb
    assert 0 < len(result["checkpointed_edges"]) < result["n_edges"] == 20
    assert result["predicted_peak_mb"] * 2**20 <= budget_gb * 2**30
    assert f"{len(result['checkpointed_edges'])} of 20 edges" in captured.err

    assert main(["--preset", "smoke", "--batch", "4", "--steps", "1", "--warmup", "0", "--device", "cpu",
                 "--memory-budget", "inf", "0", "--no-plain", "--no-estimate", "--no-floor", "--json"]) == 0
    loose, tight = json.loads(capsys.readouterr().out)  # one row per budget, in one process
    assert loose["checkpointed_edges"] == [] and loose["checkpointing"] is False and loose["memory_budget_gb"] is None
    assert len(tight["checkpointed_edges"]) == tight["n_edges"] == 20
    with pytest.raises(SystemExit):  # every edge, or a budget: not both
        main(["--preset", "smoke", "--checkpointing", "--memory-budget", "1"])


def test_the_plain_form_refuses_partial_channels():
    with pytest.raises(ValueError, match="exact DARTS"):
        bench.benchmark_network("smoke", batch=2, steps=1, warmup=0, device="cpu", partial_channels=2,
                                form="plain")


def test_peak_memory_without_a_resettable_kernel_mark_is_sampled_and_says_so(monkeypatch):
    """Without /proc/self/clear_refs the process-lifetime high-water mark would hold an earlier
    configuration's peak, so it is not read; a sampling thread measures instead."""
    monkeypatch.setattr(resident, "reset_kernel_peak", lambda: False)
    monkeypatch.setattr(resident, "kernel_peak", lambda: 1 << 50)
    with resident.PeakRSS() as rss:
        block = bytearray(32 << 20)
    del block
    assert rss.method.startswith("sampled") and "clear_refs" in rss.method
    assert 0 < rss.peak < 1 << 50


def test_bench_reports_prediction_profile_and_partial_channels(capsys):
    assert main(["--preset", "smoke", "--order", "1", "2", "--batch", "2", "--steps", "1", "--warmup", "0",
                 "--device", "cpu", "--partial-channels", "2", "--no-floor", "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert [r["order"] for r in results] == [1, 2]
    for r in results:
        assert r["partial_channels"] == 2 and r["predicted_peak_mb"] > 0
        assert r["plain"] is None and "different algorithm" in r["plain_skipped"]
        assert "profile_table" not in r
    # the profiler's table of one configuration (building it takes longer than the step)
    assert main(["--preset", "smoke", "--batch", "2", "--steps", "1", "--warmup", "0", "--device", "cpu",
                 "--profile", "--no-plain", "--no-estimate", "--no-floor", "--json"]) == 0
    assert "Self CPU" in json.loads(capsys.readouterr().out)["profile_table"]


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


def test_params_profile_sets_the_study_step(monkeypatch, capsys):
    """`--params study_emodb` times the EmoDB study's search step: its preset and overrides,
    batch, order and checkpointing, read from the profile (no step runs here)."""
    import yaml
    from emodarts_core import params
    profile = yaml.safe_load(params.path("study_emodb").read_text())
    calls = []
    monkeypatch.setattr(bench, "benchmark", lambda *args, **kwargs: calls.append((args, kwargs)) or {"x": 1})
    assert main(["--params", "study_emodb", "--device", "cpu", "--json"]) == 0
    (args, kwargs), = calls
    network = {k: v for k, v in profile["network"].items() if k != "preset"}
    assert args[:3] == (profile["network"]["preset"], profile["search"]["order"], profile["search"]["batch_size"])
    assert args[5] is False and profile["search"]["checkpointing"] == "off"  # no edge checkpointed
    assert kwargs["network"] == network
    assert json.loads(capsys.readouterr().out)["params"] == "study_emodb"

    # its overrides reach the network that is built and timed
    monkeypatch.setattr(params, "load", lambda name: {"network": {"preset": "smoke", "nodes": 1},
                                                      "search": {"batch_size": 2, "order": 1, "checkpointing": "on"}})
    calls.clear()
    assert main(["--params", "study_emodb", "--device", "cpu", "--json"]) == 0
    (args, kwargs), = calls
    assert args[:3] == ("smoke", 1, 2) and kwargs["network"] == {"nodes": 1}
    assert len(args[5]) == len(search_network(preset("smoke", nodes=1)).mixed_ops())  # "on": every edge


def test_params_profile_errors_name_the_file(monkeypatch, capsys):
    from emodarts_core import params
    with pytest.raises(SystemExit):  # the profile sets these
        main(["--params", "study_emodb", "--preset", "small"])
    assert "drop --preset" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--params", "no_such_profile"])
    assert "no parameter file 'no_such_profile'" in capsys.readouterr().err
    monkeypatch.setattr(params, "load", lambda name: {"search": {"batch_size": 2}})
    with pytest.raises(SystemExit):
        main(["--params", "study_emodb"])
    assert "study_emodb.yaml: needs a network section" in capsys.readouterr().err
    monkeypatch.setattr(params, "load", lambda name: {"network": {"preset": "small", "nodez": 2}, "search": {}})
    with pytest.raises(SystemExit):
        main(["--params", "study_emodb"])
    assert "study_emodb.yaml" in capsys.readouterr().err
