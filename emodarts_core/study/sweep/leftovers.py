"""Ray processes a killed sweep leaves behind, and stopping them when the sweep restarts.

A sweep without `--address` starts a private Ray instance (GCS server, raylet, their
agents and workers) as child processes of its driver. Ending normally, the driver shuts
it down. Killed with SIGKILL, it cannot, and the instance runs on with nobody to use it.
So after starting its instance the driver records the processes it started (pid, start
time and name, from /proc) in `<results>/.sweep.ray.json`, and a sweep started again in
the same results folder stops those still running (SIGTERM, then SIGKILL) before it
starts its own. A process is only stopped when its pid still has the recorded start time
(a reused pid is another program) and the recorded driver is gone (a live driver still
uses them). What this cannot reach, and what to do then, is in docs/SWEEPS.md ("After a
kill"). Linux only (it reads /proc); elsewhere nothing is recorded.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

RECORD = ".sweep.ray.json"
PROC = Path("/proc")


def _start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (/proc/PID/stat field 22), or None."""
    try:
        fields = (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if fields[0] == "Z":  # a zombie has ended; only its parent's wait is missing
        return None
    return int(fields[19])


def _children() -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            out.setdefault(ppid, []).append(int(entry.name))
    return out


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (children, their children, ...)."""
    children, found, todo = _children(), [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _name(pid: int) -> str:
    try:
        return (PROC / str(pid) / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")[:200]
    except OSError:
        return ""


def record(results_dir) -> Path | None:
    """Record this driver and the processes it has started (its private Ray instance)."""
    if not PROC.is_dir():
        return None
    me = os.getpid()
    processes = [{"pid": p, "start": _start_time(p), "name": _name(p)} for p in descendants(me)]
    path = Path(results_dir) / RECORD
    tmp = path.with_name(f".{path.name}.{me}.tmp")
    tmp.write_text(json.dumps({"driver": {"pid": me, "start": _start_time(me)},
                               "processes": [p for p in processes if p["start"] is not None]}, indent=1))
    os.replace(tmp, path)
    return path


def forget(results_dir) -> None:
    """The instance was shut down: nothing is left to stop."""
    try:
        (Path(results_dir) / RECORD).unlink()
    except FileNotFoundError:
        pass


def stop_stale(results_dir, grace: float = 5.0) -> list[int]:
    """Stop the recorded processes of a driver that is gone; returns the pids stopped."""
    path = Path(results_dir) / RECORD
    try:
        data = json.loads(path.read_text())
        driver = data["driver"]
        processes = [(int(p["pid"]), p["start"]) for p in data["processes"]]
    except FileNotFoundError:
        return []
    except (OSError, ValueError, KeyError, TypeError):
        forget(results_dir)  # unreadable: nothing can be matched safely
        return []
    if driver.get("start") is not None and _start_time(int(driver["pid"])) == driver["start"]:
        return []  # the driver that started them is alive and uses them
    alive = [pid for pid, start in processes if start is not None and _start_time(pid) == start]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in alive:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.time() + grace
        while time.time() < deadline and any(_start_time(p) is not None for p in alive):
            time.sleep(0.1)
        alive = [p for p in alive if _start_time(p) is not None]
        if not alive:
            break
    forget(results_dir)
    return [pid for pid, start in processes if start is not None]
