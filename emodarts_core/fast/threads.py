"""The OpenMP thread policy, chosen once before torch loads its OpenMP runtime.

On an idle machine libgomp's default (threads spin briefly between parallel regions) runs
the search step about twice as fast as ``OMP_WAIT_POLICY=PASSIVE`` (they sleep at once:
the wake-ups of thousands of small regions add up); with one core busy elsewhere the
spinning makes it several times slower than PASSIVE (docs/PERFORMANCE.md, "Threads").
So: the default when no other task is running, PASSIVE when one is. An explicit
``OMP_WAIT_POLICY`` always wins, and ``EMODARTS_FAST=0`` leaves OpenMP alone.

This module must not import torch: it runs before torch's first import.
"""

from __future__ import annotations

import os
import time


def _runnable_others() -> int:
    """Runnable tasks on the machine now, this process excluded (from /proc/loadavg)."""
    with open("/proc/loadavg") as fh:
        return int(fh.read().split()[3].split("/")[0]) - 1


def busy_cpu(samples: int = 5, interval: float = 0.05, runnable=_runnable_others) -> bool:
    """Whether another task is keeping a core busy now.

    Counts the runnable tasks (ours excluded) `samples` times, `interval` seconds apart,
    and takes the median: a long-running job (another search, a sweep worker) is counted,
    a passing blip is not. The span matters: sampled over a much shorter one, a short
    command started beside a bench (a shell pipeline, a Python one-liner) once made it
    choose PASSIVE on an idle machine, and the second-order paper-preset step took more
    than twice as long (docs/PERFORMANCE.md, "Threads"). Where /proc is missing, the
    1-minute load average decides.
    """
    counts = []
    try:
        for i in range(samples):
            counts.append(runnable())
            if i < samples - 1:
                time.sleep(interval)
    except (OSError, ValueError, IndexError):
        try:
            return os.getloadavg()[0] >= 1.0
        except OSError:  # no load figures on this platform: assume the worst
            return True
    return sorted(counts)[len(counts) // 2] >= 1


def choose_wait_policy() -> str:
    """Set ``OMP_WAIT_POLICY`` for this process if nobody has; return the policy in force."""
    if "OMP_WAIT_POLICY" not in os.environ and _fast_on() and busy_cpu():
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    return os.environ.get("OMP_WAIT_POLICY", "default")


def _fast_on() -> bool:
    from emodarts_core.fast import enabled  # the switch lives in the package, torch-free

    return enabled()
