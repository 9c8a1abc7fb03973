"""OpenMP's threads on a shared CPU: the wait policy follows the tasks that keep a core busy,
not a blip, and takes effect whether torch or emodarts_core is imported first."""

import json
import os
import subprocess
import sys

from emodarts_core.runtime import threads


def _counts(*values):
    it = iter(values)
    return lambda: next(it)


def test_a_passing_blip_does_not_make_the_machine_busy():
    # a short command runnable for one or two of the five samples (0.2 s apart in all)
    assert not threads.busy_cpu(interval=0, runnable=_counts(0, 2, 1, 0, 0))


def test_a_long_running_task_makes_the_machine_busy():
    assert threads.busy_cpu(interval=0, runnable=_counts(1, 1, 0, 2, 1))


def test_without_proc_the_load_average_decides(monkeypatch):
    def unreadable():
        raise OSError("no /proc/loadavg")

    monkeypatch.setattr(os, "getloadavg", lambda: (1.5, 0.0, 0.0))
    assert threads.busy_cpu(interval=0, runnable=unreadable)
    monkeypatch.setattr(os, "getloadavg", lambda: (0.2, 0.0, 0.0))
    assert not threads.busy_cpu(interval=0, runnable=unreadable)


def test_an_explicit_policy_always_wins(monkeypatch):
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    monkeypatch.setattr(threads, "busy_cpu", lambda: True)
    monkeypatch.setattr(threads, "_read_by_openmp", None)
    assert threads.choose_wait_policy() == "ACTIVE"


def test_a_busy_machine_gets_passive_threads(monkeypatch):
    monkeypatch.setenv("OMP_WAIT_POLICY", "unset")  # so that monkeypatch restores the original after the test
    monkeypatch.delenv("OMP_WAIT_POLICY")
    monkeypatch.setattr(threads, "busy_cpu", lambda: True)
    monkeypatch.delitem(sys.modules, "torch")  # as before torch's first import (restored after the test)
    monkeypatch.setattr(threads, "_read_by_openmp", None)
    assert threads.choose_wait_policy() == "PASSIVE"
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"


IMPORT_ORDER = r"""
import json, os, sys
FIRST
from emodarts_core.runtime import threads
import torch
torch.set_num_threads(4)
cpus = len(os.sched_getaffinity(0))
with threads.spin_safe_threads(busy=lambda: max(cpus - 1, 1)) as inside:  # every core but one busy
    pass
print(json.dumps({"env": os.environ.get("OMP_WAIT_POLICY"), "openmp": threads.openmp_wait_policy(),
                  "inside": inside, "after": torch.get_num_threads()}))
"""


def _import_order(first: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "EMODARTS_FAST")}
    done = subprocess.run([sys.executable, "-c", IMPORT_ORDER.replace("FIRST", first)], capture_output=True,
                          text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_torch_imported_first_gets_the_policy_through_its_thread_count():
    # OpenMP read its (unset) policy when torch loaded, so it spins: the environment is left
    # alone, and a run on a busy machine uses the one free core, then gives the count back
    r = _import_order("import torch\nimport emodarts_core")
    assert r["env"] is None and r["openmp"] == "default"
    assert r["inside"] == 1 and r["after"] == 4


def test_emodarts_core_imported_first_gets_the_policy_one_way_or_the_other():
    # busy at import: PASSIVE before torch loads, and the count stays; idle then: the count drops
    r = _import_order("import emodarts_core")
    assert (r["env"] == r["openmp"] == "PASSIVE" and r["inside"] == 4) or (r["env"] is None and r["inside"] == 1)
    assert r["after"] == 4


def test_an_explicit_policy_leaves_the_thread_count_alone(monkeypatch):
    import torch

    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    monkeypatch.setattr(threads, "_read_by_openmp", None)
    before = torch.get_num_threads()
    with threads.spin_safe_threads(busy=lambda: 64) as inside:
        assert inside == before


def test_free_cores_leave_at_least_one():
    assert threads.free_cores(2, 1) == 1 and threads.free_cores(2, 5) == 1 and threads.free_cores(16, 3) == 13
