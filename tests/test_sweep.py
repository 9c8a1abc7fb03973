"""Sweeps: task planning, parameters and skip logic without Ray; a killed and restarted Ray sweep.

The end-to-end test runs the sweep CLI on a private local Ray instance (2 workers) over
the generated corpus, SIGKILLs its whole session once one run has finished and another
has a checkpoint but is unfinished, restarts it, and checks that the results folder is
complete, that the finished runs were not touched, and that the interrupted ones resumed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from emodarts_core import params as packaged_params
from emodarts_core.study import sweep
from emodarts_core.config import ConfigError
from emodarts_core.training.rundir import RunDir, RunExistsError
from emodarts_core.study.sweep import Task, TaskStatus, execute_task, load_params, plan_tasks, run_sweep
from loop_helpers import SIZE, pids_naming, session_pids, single_thread, tiny_fold  # noqa: F401  (single_thread: autouse fixture)

REPO = Path(__file__).resolve().parents[1]

# The smoke preset at the generated corpus's 128 x 128 input, shrunk to 16 x 16 by the stem.
SMOKE_PARAMS = {"network": {"preset": "smoke", "input_size": [128, 128], "stem_stride": 8},
                "search": {"epochs": 2, "batch_size": 16}, "train": {"epochs": 2, "batch_size": 16}}
TINY_PARAMS = {"network": {"preset": "smoke", "input_size": list(SIZE)},
               "search": {"epochs": 1, "batch_size": 4, "device": "cpu"},
               "train": {"epochs": 1, "batch_size": 4, "device": "cpu"}}


# -- planning and parameters (no Ray) -------------------------------------------------------
def test_plan_spans_datasets_folds_scopes_and_baselines():
    tasks = plan_tasks(["synthetic", "emodb"], [1, 2], ["emodarts", "rnn_only"], ["cnn"])
    assert len(tasks) == 2 * 2 * 2 + 2 * 2
    assert tasks[0] == Task("synthetic", 1, "darts", "emodarts")
    assert [t.kind for t in tasks].count("baseline") == 4
    assert len({t.key for t in tasks}) == len(tasks)
    assert tasks[0].stages == ("search", "retrain-paper") and tasks[-1].stages == ("retrain-paper",)


def test_plan_spans_seeds_protocols_and_controls_cell_by_cell():
    tasks = plan_tasks(["synthetic"], [1, 2], ["emodarts"], ["cnn"], seeds=[0, 1], protocols=["paper", "full"],
                       controls=["random", "random_search"],
                       control_settings=sweep.ControlConfig(random=5))
    assert len(tasks) == 2 * 2 * (1 + 5 + 1 + 1)
    assert [(t.seed, t.fold) for t in tasks[:8]] == [(0, 1)] * 8  # whole (fold, seed) cells first
    assert [t.arch for t in tasks if t.kind == "random"][:5] == [0, 1, 2, 3, 4]
    assert tasks[0].stages == ("search", "retrain-paper", "retrain-full")
    assert tasks[1].key == "synthetic/random/fold1/seed0/arch0" and tasks[1].stages == ("retrain-paper", "retrain-full")
    assert len({t.key for t in tasks}) == len(tasks)


def test_run_dirs_follow_the_results_layout(tmp_path):
    chain, base = Task("emodb", 3, "darts", "lstm_only"), Task("emodb", 3, "baseline", "cnn_lstm", seed=2)
    control = Task("emodb", 3, "random", "random", seed=1, arch=4, protocols=("full",))
    assert chain.run_dir(tmp_path, "search") == tmp_path / "emodb" / "lstm_only" / "fold3" / "seed0" / "search"
    assert base.run_dir(tmp_path, "retrain-paper") == tmp_path / "emodb/cnn_lstm/fold3/seed2/retrain-paper"
    assert control.run_dir(tmp_path, "retrain-full") == tmp_path / "emodb/random/fold3/seed1/arch4/retrain-full"


@pytest.mark.parametrize("kwargs, message", [
    (dict(datasets=["nope"]), "unknown dataset 'nope'"),
    (dict(scopes=["lstm"]), "unknown scope 'lstm'"),
    (dict(baselines=["resnet"]), "unknown baseline 'resnet'"),
    (dict(folds=[0]), "1-based"),
    (dict(folds=[1, 1]), "twice"),
    (dict(scopes=[], baselines=[]), "at least one scope, baseline or control"),
    (dict(protocols=["oracle"]), "unknown protocol 'oracle'"),
    (dict(controls=["grid"]), "unknown control 'grid'"),
    (dict(seeds=[-1]), "seeds are integers"),
    (dict(seeds=[]), "at least one dataset, fold, seed and protocol"),
])
def test_plan_rejects_bad_requests(kwargs, message):
    request = dict(datasets=["synthetic"], folds=[1], scopes=["emodarts"], baselines=[]) | kwargs
    with pytest.raises(ConfigError, match=message):
        plan_tasks(**request)


def test_params_from_yaml_preset_with_overrides_and_scope_per_task(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump({**SMOKE_PARAMS, "fold_seed": 3}))
    params = load_params(path)
    assert params.network.init_channels == 2 and params.network.stem_stride == 8
    assert params.network.input_size == (128, 128)
    assert params.search.epochs == 2 and params.train.batch_size == 16 and params.fold_seed == 3
    assert params.network_for("rnn_att_only").scope == "rnn_att_only"
    assert load_params(params) is params


@pytest.mark.parametrize("bad, message", [
    ({"netwrk": {}}, "unknown parameter sections"),
    ({"network": {"preset": "huge"}}, "unknown network preset"),
    ({"search": {"epoch": 3}}, "unknown SearchConfig keys"),
    ({"train": {"epochs": 0}}, "epochs must be >= 1"),
])
def test_params_errors_name_the_problem(bad, message):
    with pytest.raises(ConfigError, match=message):
        load_params(bad)


def test_params_differences_ignore_resumable_settings():
    a = load_params(TINY_PARAMS).to_dict()
    b = load_params({**TINY_PARAMS, "search": {**TINY_PARAMS["search"], "device": "cuda", "epochs": 5}}).to_dict()
    assert sweep.params_differences(a, b) == ["search.epochs"]


def _finish(run_dir: Path, ua: float | None = None) -> None:
    rd = RunDir(run_dir)
    rd.write_config({"kind": "retrain" if ua is not None else "search"})
    if ua is not None:
        rd.atomic_write_json("result.json", {"test_ua": ua, "test_wa": ua, "params": 10, "best_epoch": 1})
    rd.mark_finished({})


def test_stage_state_and_finished_tasks(tmp_path):
    task = Task("synthetic", 1, "darts", "emodarts")
    assert sweep.stage_state(task.run_dir(tmp_path, "search")) == {"state": "new"}
    _finish(task.run_dir(tmp_path, "search"))
    RunDir(task.run_dir(tmp_path, "retrain-paper")).append_epoch({"epoch": 1})
    assert not task.is_finished(tmp_path) and task.has_run(tmp_path)
    assert sweep.stage_state(task.run_dir(tmp_path, "search")) == {"state": "finished"}
    assert sweep.stage_state(task.run_dir(tmp_path, "retrain-paper")) == {"state": "resumed", "epochs_done": 1}
    _finish(task.run_dir(tmp_path, "retrain-paper"), 0.5)
    assert task.is_finished(tmp_path)


def _no_ray(*_args, **_kwargs):
    raise AssertionError("Ray must not start when every task is finished")


def test_finished_sweep_is_skipped_without_starting_ray(tmp_path, monkeypatch):
    monkeypatch.setattr(sweep.cluster, "init_ray", _no_ray)
    for task in plan_tasks(["synthetic"], [1, 2], ["rnn_only"], ["cnn"]):
        for stage in task.stages:
            _finish(task.run_dir(tmp_path, stage), 0.25 if stage.startswith("retrain") else None)
    report = run_sweep(["synthetic"], [1, 2], ["rnn_only"], ["cnn"], TINY_PARAMS, tmp_path, progress=False)
    assert report.ok and report.counts["done"] == 4 and all(t.reused for t in report.tasks)
    manifest = json.loads((tmp_path / "sweep.json").read_text())
    assert manifest["state"] == "finished" and manifest["counts"]["done"] == 4
    assert manifest["tasks"][0]["result"]["test_ua"] == 0.25
    assert "finished earlier" in report.table()


def test_changed_params_or_no_resume_are_refused_before_ray(tmp_path, monkeypatch):
    monkeypatch.setattr(sweep.cluster, "init_ray", _no_ray)
    task = Task("synthetic", 1, "baseline", "cnn")
    _finish(task.run_dir(tmp_path, "retrain-paper"), 0.3)
    run_sweep(["synthetic"], [1], [], ["cnn"], TINY_PARAMS, tmp_path, progress=False)
    changed = {**TINY_PARAMS, "train": {**TINY_PARAMS["train"], "epochs": 7}}
    with pytest.raises(ConfigError, match="train.epochs"):
        run_sweep(["synthetic"], [1], [], ["cnn"], changed, tmp_path, progress=False)
    with pytest.raises(RunExistsError, match="synthetic/cnn/fold1"):
        run_sweep(["synthetic"], [1], [], ["cnn"], TINY_PARAMS, tmp_path, progress=False, resume=False)
    with pytest.raises(ConfigError, match="not in the sweep"):
        run_sweep(["synthetic"], [1], [], ["cnn"], TINY_PARAMS, tmp_path, data_dirs={"emodb": tmp_path})


def test_execute_task_runs_a_chain_and_then_finds_it_finished(tmp_path, monkeypatch):
    monkeypatch.setattr("data_prep.load_fold", lambda *args, **kwargs: tiny_fold())
    task, params = Task("synthetic", 1, "darts", "rnn_only"), load_params(TINY_PARAMS)
    first = execute_task(task, params, tmp_path)
    assert first["stages"]["search"]["state"] == "new" and first["stages"]["retrain-paper"]["state"] == "new"
    assert 0.0 <= first["result"]["test_ua"] <= 1.0 and task.is_finished(tmp_path)
    config = json.loads((task.run_dir(tmp_path, "search") / "config.json").read_text())
    assert config["network"]["scope"] == "rnn_only"
    again = execute_task(task, params, tmp_path)
    assert {s["state"] for s in again["stages"].values()} == {"finished"}
    assert again["result"] == first["result"]


def test_controls_train_their_fixed_random_genotypes_under_both_protocols(tmp_path, monkeypatch):
    from emodarts_core.space.sampling import random_genotypes
    monkeypatch.setattr("data_prep.load_fold", lambda *args, **kwargs: tiny_fold())
    params = load_params({**TINY_PARAMS, "controls": {"random": 2, "random_search": 3, "random_search_epochs": 1}})
    protocols = ("paper", "full")
    control = Task("synthetic", 1, "random", "random", seed=1, arch=1, protocols=protocols)
    execute_task(control, params, tmp_path)
    stored = json.loads((control.base_dir(tmp_path) / "genotype.json").read_text())
    drawn = random_genotypes(params.network_for("emodarts"), 2, seed=1, fold=1)[1]
    assert stored == drawn.to_dict()
    for p in protocols:
        config = json.loads((control.run_dir(tmp_path, f"retrain-{p}") / "config.json").read_text())
        assert config["study"] == {"dataset": "synthetic", "protocol": p, "model": "random", "scope": "emodarts",
                                   "fold": 1, "seed": 1, "arch": 1}
        assert config["train"]["seed"] == 1 and config["train"]["protocol"] == p

    search = Task("synthetic", 1, "random_search", "random_search", seed=0, protocols=protocols)
    execute_task(search, params, tmp_path)
    choice = json.loads((search.base_dir(tmp_path) / "choice.json").read_text())
    assert len(choice["holdout_ua"]) == 3 and choice["chosen"] == max(range(3), key=lambda j: (choice["holdout_ua"][j], -j))
    for j in range(3):  # candidates are scored on held-out training speakers, never on the test speakers
        config = json.loads((search.base_dir(tmp_path) / "candidates" / f"arch{j}" / "config.json").read_text())
        assert config["train"]["protocol"] == "holdout" and "study" not in config
        assert not set(config["protocol"]["score"]["ids"]) & set(tiny_fold().test.ids)
    chosen = json.loads((search.base_dir(tmp_path) / "genotype.json").read_text())
    config = json.loads((search.run_dir(tmp_path, "retrain-full") / "config.json").read_text())
    assert config["model"]["genotype"] == chosen and config["study"]["model"] == "random_search"


def test_cnn_darts_scope_searches_the_cnn_alone_and_is_reported_as_table_3(tmp_path, monkeypatch):
    from emodarts_core.study import results
    monkeypatch.setattr("data_prep.load_fold", lambda *args, **kwargs: tiny_fold())
    params = load_params(TINY_PARAMS)
    assert params.network_for("cnn_darts").seq_cells == 0
    task = plan_tasks(["synthetic"], [1], scopes=["cnn_darts"])[0]
    execute_task(task, params, tmp_path)
    genotype = json.loads((task.run_dir(tmp_path, "search") / "genotype.json").read_text())
    assert genotype["seq"] == [] and genotype["normal"]
    runs = results.collect_runs(tmp_path)
    assert set(runs["model"]) == {"cnn_darts"}


def test_gpus_per_task_is_checked_before_and_against_the_cluster():
    assert sweep.cluster.parse_gpus("auto") == "auto" and sweep.cluster.parse_gpus("0.5") == 0.5
    with pytest.raises(ConfigError, match="number >= 0"):
        sweep.cluster.parse_gpus("many")
    assert sweep.cluster.resolve_gpus("auto", 4.0) == 1.0 and sweep.cluster.resolve_gpus("auto", 0.0) == 0.0
    with pytest.raises(ConfigError, match="has 0 GPU"):
        sweep.cluster.resolve_gpus(1.0, 0.0)


def test_table_shows_failures_with_their_reason():
    statuses = [TaskStatus(Task("synthetic", 1, "baseline", "cnn"), status="failed", error="DataError: no wav"),
                TaskStatus(Task("synthetic", 2, "baseline", "cnn"))]
    table = sweep.format_table(statuses)
    assert "0/2 done" in table and "1 failed" in table and "1 pending" in table
    assert "DataError: no wav" in table


def test_cli_passes_data_dirs_and_workers_to_run_sweep(tmp_path, monkeypatch):
    seen = {}

    def fake_run_sweep(*args, **kwargs):
        seen.update(args=args, kwargs=kwargs)
        return sweep.SweepReport(tmp_path, tmp_path / "sweep.json", [], 0.0)

    monkeypatch.setattr(sweep.cli, "run_sweep", fake_run_sweep)
    code = sweep.main(["--datasets", "emodb", "iemocap", "--folds", "1", "2", "--baselines", "cnn", "--params",
                       "p.yaml", "--results", "r", "--workers", "3", "--data-dir", "emodb=/d/e", "iemocap=/d/i"])
    assert code == 0 and seen["args"] == (["emodb", "iemocap"], [1, 2], [], ["cnn"], "p.yaml", "r")
    assert seen["kwargs"]["data_dirs"] == {"emodb": "/d/e", "iemocap": "/d/i"}
    assert seen["kwargs"]["num_workers"] == 3 and seen["kwargs"]["resume"] is True


def test_cli_reports_configuration_errors(tmp_path, capsys):
    params = tmp_path / "p.yaml"
    params.write_text(yaml.safe_dump(TINY_PARAMS))
    code = sweep.main(["--datasets", "synthetic", "--folds", "1", "--scopes", "bogus", "--params", str(params),
                       "--results", str(tmp_path / "r")])
    assert code == 2 and "unknown scope 'bogus'" in capsys.readouterr().err


# -- the killed and restarted Ray sweep ------------------------------------------------------
def _kill_session(sid: int, wait: float = 20.0) -> None:
    """SIGKILL every process of session `sid` (started by this test), by id, until none is left."""
    deadline = time.time() + wait
    while (pids := session_pids(sid)) and time.time() < deadline:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.2)
    assert not session_pids(sid), f"processes of session {sid} survived SIGKILL"


def _mtimes(run_dir: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in run_dir.iterdir()}


def _snapshot(results: Path) -> tuple[dict, dict]:
    """(finished run dirs -> file mtimes, unfinished run dirs that hold a checkpoint -> epochs)."""
    finished, partial = {}, {}
    for marker in results.rglob("config.json"):
        rd = RunDir(marker.parent)
        if rd.is_finished():
            finished[rd.path] = _mtimes(rd.path)
        elif rd.exists("checkpoint.pt"):
            partial[rd.path] = len(rd.read_epochs())
    return finished, partial


@pytest.mark.slow
def test_killed_sweep_restarts_without_recomputing_finished_runs(tmp_path):
    pytest.importorskip("ray")
    from emodarts_core.study.results import collect_runs

    params, results = tmp_path / "smoke.yaml", tmp_path / "results"
    # three epochs a run, and the kill comes while a run has one done: it then has two to go,
    # so it cannot finish between the last look and the kill (with two epochs, a run seen
    # half done could, and did once the smoke search got faster)
    params.write_text(yaml.safe_dump({**SMOKE_PARAMS, "search": {**SMOKE_PARAMS["search"], "epochs": 3},
                                      "train": {**SMOKE_PARAMS["train"], "epochs": 3}}))
    ray_tmp = tempfile.mkdtemp(prefix="rs", dir="/tmp")  # short: Ray's socket paths must stay < 108 chars
    env = {**os.environ, "RAY_TMPDIR": ray_tmp, "PYTHONUNBUFFERED": "1"}
    env.pop("RAY_ADDRESS", None)
    command = [sys.executable, "-m", "emodarts_core.study.sweep", "--datasets", "synthetic", "--folds", "1", "2",
               "--scopes", "emodarts", "rnn_only", "--baselines", "cnn", "--params", str(params),
               "--results", str(results), "--workers", "2"]
    sessions = []

    def start(log_name):
        log = open(tmp_path / log_name, "wb")
        proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        sessions.append(proc.pid)
        return proc

    try:
        first = start("first.log")
        deadline = time.time() + 300
        while time.time() < deadline and first.poll() is None:
            finished, partial = _snapshot(results) if results.exists() else ({}, {})
            if finished and 1 in partial.values():
                break
            time.sleep(0.1)
        assert first.poll() is None, "the sweep ended before it could be interrupted:\n" + \
            (tmp_path / "first.log").read_text()[-3000:]
        _kill_session(first.pid)
        first.wait()
        finished, partial = _snapshot(results)
        assert finished and partial

        second = start("second.log")
        assert second.wait(timeout=360) == 0, (tmp_path / "second.log").read_text()[-3000:]
        # Ray's workers leave a moment after the driver ends; on a loaded machine that moment
        # is seconds, so wait for them (a process left behind for good stays past the wait).
        linger_deadline = time.time() + 60
        while session_pids(second.pid) and time.time() < linger_deadline:
            time.sleep(0.5)
        assert not session_pids(second.pid), "the restarted sweep left Ray processes behind"
    finally:
        for sid in sessions:
            _kill_session(sid)
        shutil.rmtree(ray_tmp, ignore_errors=True)

    manifest = json.loads((results / "sweep.json").read_text())
    assert manifest["state"] == "finished" and manifest["counts"]["done"] == 6
    tasks = {t["key"]: t for t in manifest["tasks"]}
    for run_dir, mtimes in finished.items():  # finished before the kill: not a byte rewritten
        assert _mtimes(run_dir) == mtimes, f"{run_dir} was recomputed"
    for run_dir, epochs in partial.items():  # interrupted with a checkpoint: resumed, not restarted
        rd = RunDir(run_dir)
        assert rd.is_finished()
        assert [r["epoch"] for r in rd.read_epochs()] == list(range(1, len(rd.read_epochs()) + 1))
        key, stage = "/".join(run_dir.relative_to(results).parts[:4]), run_dir.name
        assert tasks[key]["stages"][stage]["state"] == "resumed"
        assert tasks[key]["stages"][stage]["epochs_done"] >= epochs
    for key, task in tasks.items():
        assert task["status"] == "done" and task["error"] is None and task["result"]["test_ua"] is not None
        planned = Task(task["dataset"], task["fold"], task["kind"], task["name"], task["seed"], task["arch"],
                       tuple(task["protocols"]))
        whole = all(planned.run_dir(results, s) in finished for s in task["stages"])
        assert task["reused"] == whole, key

    runs = collect_runs(results)
    retrained = runs[runs["kind"] == "retrain"]
    assert set(retrained["status"]) == {"finished"} and set(retrained["dataset"]) == {"synthetic"}
    assert sorted(zip(retrained["model"], retrained["scope"].fillna(""), retrained["fold"])) == sorted(
        [("cnn", "", f) for f in (1, 2)] + [("emodarts", s, f) for s in ("emodarts", "rnn_only") for f in (1, 2)])
    assert len(runs[runs["kind"] == "search"]) == 4


@pytest.mark.slow
def test_failed_tasks_do_not_stop_the_others(tmp_path, monkeypatch):
    pytest.importorskip("ray")
    ray_tmp = tempfile.mkdtemp(prefix="rs", dir="/tmp")
    monkeypatch.setenv("RAY_TMPDIR", ray_tmp)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    empty = tmp_path / "no_emodb"
    empty.mkdir()
    try:
        params = TINY_PARAMS | {"network": SMOKE_PARAMS["network"]}
        report = run_sweep(["synthetic", "emodb"], [1, 99], [], ["cnn"], params, tmp_path / "results",
                           num_workers=2, data_dirs={"emodb": empty}, progress=False)
    finally:
        for pid in pids_naming(ray_tmp):  # Ray processes this test started, if shutdown missed any
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(ray_tmp, ignore_errors=True)
    status = {t.task.key: t for t in report.tasks}
    assert status["synthetic/cnn/fold1/seed0"].status == "done"
    assert not report.ok and len(report.failures) == 3
    assert "fold 99 does not exist" in status["synthetic/cnn/fold99/seed0"].error
    assert "Traceback" in status["synthetic/cnn/fold99/seed0"].traceback
    assert status["emodb/cnn/fold1/seed0"].error.startswith("preparing emodb: DataError")
    manifest = json.loads(report.manifest.read_text())
    assert manifest["counts"] == {"done": 1, "running": 0, "failed": 3, "pending": 0}
    assert "fold 99" in report.table()


def test_a_first_try_that_started_no_run_does_not_lock_the_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(sweep.cluster, "init_ray", _no_ray)
    task = Task("synthetic", 1, "baseline", "cnn")
    _finish(task.run_dir(tmp_path, "retrain-paper"), 0.3)
    first = tmp_path / "first"  # a folder whose manifest exists but where no run began
    first.mkdir()
    RunDir(first).atomic_write_json("sweep.json", {"params": load_params(TINY_PARAMS).to_dict()})
    changed = {**TINY_PARAMS, "train": {**TINY_PARAMS["train"], "epochs": 7}}
    sweep.status.check_params_match(first, load_params(changed))  # nothing ran: the new settings are accepted
    RunDir(tmp_path).atomic_write_json("sweep.json", {"params": load_params(TINY_PARAMS).to_dict()})
    with pytest.raises(ConfigError, match="train.epochs"):
        sweep.status.check_params_match(tmp_path, load_params(changed))


def test_a_network_that_does_not_fit_the_features_is_refused_with_the_fix():
    params = load_params({"network": {"preset": "smoke"}})
    with pytest.raises(ConfigError, match=r"128 x 128 but network.input_size is 32 x 32.*input_size: \[128, 128\]"):
        sweep.check_input_size("synthetic", [128, 128], params.network)
    sweep.check_input_size("synthetic", [128, 128], load_params(packaged_params.path("sweep_smoke")).network)
    assert load_params("sweep_smoke") == load_params(packaged_params.path("sweep_smoke"))  # an installed file, by name
    with pytest.raises(ConfigError, match="installed parameter files: .*sweep_smoke"):
        load_params("no_such_params")
