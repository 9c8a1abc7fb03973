"""A sweep killed with SIGKILL leaves its private Ray instance running; the next sweep in
the same results folder stops those processes (emodarts_core.study.sweep.leftovers).

Stand-ins for Ray's processes are started by a stand-in driver here, so that the test
runs in seconds without Ray; the killed-and-restarted real sweep is test_sweep.py's.
"""

import json
import subprocess
import sys
import time

import pytest

from emodarts_core.study.sweep import leftovers

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

DRIVER = """
import subprocess, sys, time
from emodarts_core.study.sweep import leftovers
procs = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"]) for _ in range(3)]
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
            "driver": {"pid": 2 ** 22 + 1, "start": 1},  # gone
            "processes": [{"pid": other.pid, "start": start - 1, "name": "raylet"}]}))  # another program now
        leftovers.stop_stale(tmp_path)
        assert leftovers._start_time(other.pid) == start
    finally:
        other.kill()
        other.wait()
