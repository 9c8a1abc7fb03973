"""A sweep killed with SIGKILL leaves its private Ray instance running; the next sweep in
the same results folder stops those processes (emodarts_core.study.sweep.leftovers).

Stand-ins for Ray's processes are started by a stand-in driver here, so that the test
runs in seconds without Ray; the killed-and-restarted real sweep is test_sweep.py's.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

from emodarts_core.study.sweep import leftovers
from loop_helpers import session_pids

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

DRIVER = """
import subprocess, sys, time
from emodarts_core.study.sweep import leftovers
leftovers.tag_children()  # as run_sweep does before it starts Ray
procs = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"]) for _ in range(2)]
# the third shows no environment, as a Ray process that retitled itself does (its /proc environ is overwritten)
procs.append(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], env={}))
leftovers.record(sys.argv[1])
print("recorded", flush=True)
time.sleep(120)
"""


def _driver(results):
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, str(results)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "recorded"
    return proc, [p["pid"] for p in json.loads((results / leftovers.RECORD).read_text())["processes"]]


def _alive(pids):
    return [p for p in pids if leftovers._start_time(p) is not None]


def test_the_processes_of_a_killed_driver_are_stopped_by_the_next_sweep(tmp_path):
    driver, pids = _driver(tmp_path)
    try:
        assert (tmp_path / leftovers.RECORD).stat().st_mode & 0o022 == 0  # only this user may write it
        assert len(pids) == 3 and len(_alive(pids)) == 3
        assert leftovers.stop_stale(tmp_path) == []  # its driver is alive: they are in use
        assert len(_alive(pids)) == 3
        driver.kill()  # SIGKILL: its children run on, as Ray's did
        driver.wait()
        time.sleep(0.2)
        assert len(_alive(pids)) == 3
        assert sorted(leftovers.stop_stale(tmp_path)) == sorted(pids)
        assert not _alive(pids) and not (tmp_path / leftovers.RECORD).exists()
    finally:
        for pid in _alive(pids):
            subprocess.run(["kill", "-9", str(pid)], check=False)
        driver.kill()


def test_a_reused_pid_is_left_alone(tmp_path):
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        start = leftovers._start_time(other.pid)
        (tmp_path / leftovers.RECORD).write_text(json.dumps({
            "format": leftovers.RECORD_FORMAT, "uid": os.getuid(), "tag": f"{os.getpid()}-tag",
            "driver": {"pid": 2 ** 22 + 1, "start": 1},  # gone
            "processes": [{**_entry(other), "start": start - 1, "parent": 2 ** 22 + 1}]}))  # another program now
        leftovers.stop_stale(tmp_path)
        assert leftovers._start_time(other.pid) == start
    finally:
        other.kill()
        other.wait()


def _killed_driver(results):
    """A driver killed with SIGKILL, and the pids of its three children that run on."""
    driver, pids = _driver(results)
    driver.kill()
    driver.wait()
    return pids


def _sleeper(**kwargs):
    """An unrelated process of this user, started by this test (not by any sweep)."""
    return subprocess.Popen(["sleep", "60"], **kwargs)


def _entry(proc):
    return {"pid": proc.pid, "start": leftovers._start_time(proc.pid), "parent": os.getpid(),
            "cmdline": leftovers._cmdline(proc.pid)}


@pytest.mark.parametrize("environment", [None, {}], ids=["own environment", "no environment"])
def test_a_planted_record_naming_an_unrelated_process_stops_nothing(tmp_path, environment):
    # A planted record copies everything /proc shows about the victim: its pid, start time,
    # command line and parent, and claims that parent as its (gone) driver. The victim
    # lacks the sweep's tag; without any environment to show it, its parent gives it away
    # (alive, with another start time than the record says). The earlier check (pid and
    # start time) sent it SIGTERM.
    victim = _sleeper(env=environment)
    try:
        record = {"format": leftovers.RECORD_FORMAT, "uid": os.getuid(), "tag": f"{os.getpid()}-forged",
                  "driver": {"pid": os.getpid(), "start": 1}, "processes": [_entry(victim)]}
        (tmp_path / leftovers.RECORD).write_text(json.dumps(record))
        assert leftovers.stop_stale(tmp_path, grace=0.5) == []
        time.sleep(0.2)
        assert victim.poll() is None
    finally:
        victim.kill()
        victim.wait()


def test_a_genuine_record_with_an_unrelated_process_added_stops_only_the_sweeps(tmp_path):
    pids = _killed_driver(tmp_path)
    victim = _sleeper()
    try:
        path = tmp_path / leftovers.RECORD
        record = json.loads(path.read_text())
        record["processes"].append({**_entry(victim), "parent": record["driver"]["pid"]})  # tag is the sweep's
        path.write_text(json.dumps(record))
        assert sorted(leftovers.stop_stale(tmp_path)) == sorted(pids)
        assert not _alive(pids)
        assert victim.poll() is None
    finally:
        for pid in _alive(pids):
            subprocess.run(["kill", "-9", str(pid)], check=False)
        victim.kill()
        victim.wait()


@pytest.mark.parametrize("how", ["symlink", "hardlink", "other user", "writable by the group", "older format"])
def test_a_record_that_proves_nothing_stops_nothing(tmp_path, how):
    pids = _killed_driver(tmp_path)
    try:
        path = tmp_path / leftovers.RECORD
        if how in ("symlink", "hardlink"):
            real = tmp_path / "elsewhere.json"
            path.rename(real)
            (path.symlink_to if how == "symlink" else path.hardlink_to)(real)
        elif how == "other user":
            if os.getuid() != 0:
                pytest.skip("only root can give a file to another user")
            os.chown(path, 65534, 65534)
        elif how == "writable by the group":
            path.chmod(0o664)
        else:
            record = json.loads(path.read_text())
            del record["format"], record["uid"], record["tag"]
            path.write_text(json.dumps(record))
        with pytest.warns(RuntimeWarning, match="not used to stop"):
            assert leftovers.stop_stale(tmp_path, grace=0.5) == []
        assert len(_alive(pids)) == 3
    finally:
        for pid in _alive(pids):
            subprocess.run(["kill", "-9", str(pid)], check=False)


def test_a_process_with_another_command_line_is_left_alone(tmp_path):
    pids = _killed_driver(tmp_path)
    try:
        path = tmp_path / leftovers.RECORD
        record = json.loads(path.read_text())
        record["processes"][0]["cmdline"] = ["raylet", "--node"]
        path.write_text(json.dumps(record))
        assert sorted(leftovers.stop_stale(tmp_path)) == sorted(pids[1:])
        assert _alive(pids) == pids[:1]
    finally:
        for pid in _alive(pids):
            subprocess.run(["kill", "-9", str(pid)], check=False)


def test_recording_without_the_tag_is_refused(tmp_path, monkeypatch):
    monkeypatch.delenv(leftovers.TAG_ENV, raising=False)
    with pytest.raises(RuntimeError, match="tag_children"):
        leftovers.record(tmp_path)


RAY_DRIVER = """
import logging, os, signal, sys
from emodarts_core.study.sweep import leftovers
import ray
leftovers.tag_children()  # the order of run_sweep: tag, start Ray, record
try:
    ray.init(address="local", num_cpus=1, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
except Exception as exc:  # Ray gives its node 30 s to start, which an overloaded machine may miss
    print(exc, file=sys.stderr)
    sys.exit(3)
ray.get(ray.remote(lambda: 0).remote())  # a worker, as a task would start
leftovers.record(sys.argv[1])
os.kill(os.getpid(), signal.SIGKILL)  # killed: no shutdown
"""


RAY_LATE_AGENTS = ("ray::DashboardAgent", "ray::RuntimeEnvAgent")


@pytest.mark.slow
def test_a_real_ray_instance_left_by_a_killed_driver_is_stopped(tmp_path):
    """Ray's agents outlive a killed driver and retitle themselves (ray::DashboardAgent),
    which overwrites the environment /proc shows: the record and the checks must still
    prove them the sweep's. The stand-ins above cannot show that."""
    pytest.importorskip("ray")

    ray_tmp = tempfile.mkdtemp(prefix="rl", dir="/tmp")  # Ray's socket paths must stay short
    env = {**os.environ, "RAY_TMPDIR": ray_tmp}
    env.pop("RAY_ADDRESS", None)
    driver = subprocess.Popen([sys.executable, "-c", RAY_DRIVER, str(tmp_path)], env=env, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        err = driver.communicate(timeout=300)[1]
        if driver.returncode == 3 and "timed out during startup" in err:
            pytest.skip("Ray's node did not start within Ray's own 30 s limit (an overloaded machine)")
        assert driver.returncode == -9 and (tmp_path / leftovers.RECORD).exists(), err[-3000:]
        recorded = [p["pid"] for p in json.loads((tmp_path / leftovers.RECORD).read_text())["processes"]]
        assert recorded
        time.sleep(1)
        left = _alive(recorded)
        assert sorted(leftovers.stop_stale(tmp_path)) == sorted(left)
        assert not _alive(recorded)
        deadline = time.time() + 10  # nothing of the killed sweep's session is left, recorded or not
        while session_pids(driver.pid) and time.time() < deadline:
            time.sleep(0.2)
        survivors = [(leftovers._cmdline(p) or [""])[0] for p in session_pids(driver.pid)]
        if survivors and all(name in RAY_LATE_AGENTS for name in survivors):
            # Ray starts these agents after ray.init returns and retitles them, so a record
            # taken at once can miss them: a known gap, reported as such, never a pass.
            pytest.xfail(f"Ray's late agents outlived the killed driver: {survivors}")
        assert not survivors, survivors
    finally:
        for pid in session_pids(driver.pid):  # anything of this test's session still there
            os.kill(pid, 9)
        shutil.rmtree(ray_tmp, ignore_errors=True)
