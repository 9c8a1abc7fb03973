"""OpenMP's wait policy: chosen from the tasks that keep a core busy, not from a blip."""

import os

from emodarts_core.fast import threads


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
    assert threads.choose_wait_policy() == "ACTIVE"


def test_a_busy_machine_gets_passive_threads(monkeypatch):
    monkeypatch.setenv("OMP_WAIT_POLICY", "unset")  # so that monkeypatch restores the original after the test
    monkeypatch.delenv("OMP_WAIT_POLICY")
    monkeypatch.setattr(threads, "busy_cpu", lambda: True)
    assert threads.choose_wait_policy() == "PASSIVE"
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
