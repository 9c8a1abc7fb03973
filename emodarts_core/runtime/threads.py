"""OpenMP's threads on a CPU shared with other work: the wait policy and, once torch is loaded, the thread count.

libgomp's default lets a thread spin briefly between parallel regions before it sleeps.
On an idle machine that runs the search step faster than ``OMP_WAIT_POLICY=PASSIVE``
(sleep at once: the wake-ups of thousands of small regions add up); with a core busy
elsewhere the spinning threads fight that work for the CPU and the step becomes much
slower than with PASSIVE (docs/PERFORMANCE.md, "Threads", has the figures). So the policy
is the default when no other task is running, and PASSIVE when one is.

libgomp reads ``OMP_WAIT_POLICY`` once, when torch loads it, so the policy has two levers:

- ``choose_wait_policy()`` (run when ``emodarts_core`` is imported) sets
  ``OMP_WAIT_POLICY=PASSIVE`` on a busy machine, which works when torch is not loaded yet;
- ``spin_safe_threads()`` (entered by each run, ``emodarts_core.runtime.tuned_run``) covers
  the other case: when OpenMP was loaded spinning (torch imported before
  ``emodarts_core``, or the machine was idle then) and the machine is busy now, the run
  uses only the cores that are free, at least one, and gives torch its thread count back
  at the end. With one thread torch runs no parallel region, so nothing spins.

An explicit ``OMP_WAIT_POLICY`` always wins (neither lever acts), and so does
``EMODARTS_FAST=0`` (OpenMP is left as it is). This module imports torch only inside
``spin_safe_threads``: ``choose_wait_policy`` must run before torch loads.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator

from emodarts_core import fast

_lock = threading.Lock()
_depth = 0
_outer_threads: int | None = None
# OMP_WAIT_POLICY as OpenMP read it, when known: set by choose_wait_policy
_read_by_openmp: str | None = None


def _runnable_others() -> int:
    """Runnable tasks on the machine now, this process excluded (from /proc/loadavg)."""
    with open("/proc/loadavg") as fh:
        return int(fh.read().split()[3].split("/")[0]) - 1


def busy_cores(samples: int = 5, interval: float = 0.05, runnable=_runnable_others) -> int:
    """How many cores other tasks keep busy now.

    Counts the runnable tasks (ours excluded) `samples` times, `interval` seconds apart,
    and takes the median: a long-running job (another search, a sweep worker) is counted,
    a passing blip (a shell pipeline, a one-line command started beside a run) is not
    (docs/PERFORMANCE.md, "Threads"). Where /proc is missing, the 1-minute load average
    decides; where that is missing too, one busy core is assumed.
    """
    counts = []
    try:
        for i in range(samples):
            counts.append(runnable())
            if i < samples - 1:
                time.sleep(interval)
    except (OSError, ValueError, IndexError):
        try:
            return int(os.getloadavg()[0])
        except OSError:  # no load figures on this platform: assume the worst
            return 1
    return max(0, sorted(counts)[len(counts) // 2])


def busy_cpu(samples: int = 5, interval: float = 0.05, runnable=_runnable_others) -> bool:
    """Whether another task is keeping a core busy now (`busy_cores` >= 1)."""
    return busy_cores(samples, interval, runnable) >= 1


def choose_wait_policy() -> str:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` on a busy machine if nobody has set it and torch has not
    loaded OpenMP yet; return the policy OpenMP reads (or has read)."""
    global _read_by_openmp
    if "torch" in sys.modules:  # OpenMP has read the environment already: changing it would only mislead
        _read_by_openmp = os.environ.get("OMP_WAIT_POLICY", "default")
        return _read_by_openmp
    if "OMP_WAIT_POLICY" not in os.environ and fast.enabled() and busy_cpu():
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    return os.environ.get("OMP_WAIT_POLICY", "default")


def openmp_wait_policy() -> str:
    """The wait policy of torch's OpenMP in this process: "PASSIVE", "ACTIVE" or "default"
    (spin, then sleep). Known exactly when ``emodarts_core`` was imported either before
    torch or after it; otherwise the environment now stands for what OpenMP read."""
    value = _read_by_openmp if _read_by_openmp is not None else os.environ.get("OMP_WAIT_POLICY", "default")
    return value.strip().upper() if value.strip().upper() in ("PASSIVE", "ACTIVE") else "default"


def free_cores(cpus: int, busy: int) -> int:
    """The cores left to this process when other tasks keep `busy` of `cpus` busy (at least one)."""
    return max(1, cpus - busy)


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@contextlib.contextmanager
def spin_safe_threads(active: bool = True, busy: Callable[[], int] | None = None) -> Iterator[int]:
    """Within the block torch uses only the free cores when its OpenMP threads would spin on a
    busy machine; yields the thread count in effect.

    Acts only where the policy is libgomp's default (not PASSIVE, and not set by the user),
    the fast paths are on and `busy()` (cores kept busy by other tasks; `busy_cores` by
    default) is at least one;
    `active=False` (e.g. a CUDA run) leaves the count alone. Nested blocks share the
    outermost one's count; the outermost gives torch its count back when it ends.
    """
    global _depth, _outer_threads
    import torch

    with _lock:
        if _depth == 0:
            _outer_threads = None
            explicit = _read_by_openmp not in (None, "default") or (
                _read_by_openmp is None and "OMP_WAIT_POLICY" in os.environ)
            if active and fast.enabled() and not explicit and openmp_wait_policy() == "default":
                others = (busy or busy_cores)()
                if others >= 1:
                    before = torch.get_num_threads()
                    wanted = min(before, free_cores(_usable_cpus(), others))
                    if wanted < before:
                        _outer_threads = before
                        torch.set_num_threads(wanted)
        _depth += 1
        in_effect = torch.get_num_threads()
    try:
        yield in_effect
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _outer_threads is not None:
                torch.set_num_threads(_outer_threads)
                _outer_threads = None


__all__ = ["busy_cores", "busy_cpu", "choose_wait_policy", "free_cores", "openmp_wait_policy",
           "spin_safe_threads"]
