"""Ray processes a killed sweep leaves behind, and stopping them when the sweep restarts.

A sweep without `--address` starts a private Ray instance (GCS server, raylet, their
agents and workers) as child processes of its driver. Ending normally, the driver shuts
it down. Killed with SIGKILL, it cannot, and the instance runs on with nobody to use it.
So after starting its instance the driver records the processes it started in
`<results>/.sweep.ray.json`, and a sweep started again in the same results folder stops
those still running (SIGTERM, then SIGKILL) before it starts its own.

A results folder may be shared, and anyone can read a pid, its start time and its command
line from /proc, so a record alone proves nothing: a planted one could name any process.
A process is stopped only when all of these hold (docs/SWEEPS.md, "After a kill"):

- the record is a plain file (not a symbolic link, one name) owned by this user and
  writable by nobody else (so its contents are this user's), written for this user;
- the recorded driver is gone (a live driver still uses its instance);
- the process runs as this user, still has its recorded start time (a reused pid is
  another program) and its recorded command line (a Ray process may since have given
  itself a title `ray::...`);
- its ancestry is the recorded one: its recorded parent is the driver or another
  recorded process; while that parent lives (the same pid with its recorded start
  time) the process is still its child, and a process whose parent's pid is the
  recorded one is that parent, so the recorded start time must be the parent's;
- it carries the sweep's tag: before starting Ray the driver puts a random tag in its
  environment (`tag_children`), which every process it starts inherits and which the
  record names. Only this user (or root) can read a process's environment, and an
  unrelated process does not have the tag. A process that retitled itself (Ray's agents
  and workers) has overwritten its environment's original copy, the only one /proc
  shows; for such a process, whose environment shows no variable at all, the other
  checks decide.

Linux only (it reads /proc); elsewhere nothing is recorded.
"""

from __future__ import annotations

import json
import os
import secrets
import select
import signal
import stat
import time
import warnings
from pathlib import Path

from data_prep.store import write_atomic

RECORD = ".sweep.ray.json"
RECORD_FORMAT = 2
PROC = Path("/proc")
#: The environment variable that marks the processes a sweep's driver started.
TAG_ENV = "EMODARTS_SWEEP_TAG"
_TAGS: dict[int, str] = {}  # this process's tag, by pid (a forked child makes its own)


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/PID/stat's fields after the command name (field 3 onward), or None."""
    try:
        return (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (/proc/PID/stat field 22), or None."""
    fields = _stat_fields(pid)
    if fields is None or fields[0] == "Z":  # a zombie has ended; only its parent's wait is missing
        return None
    return int(fields[19])


def _parent(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return None if fields is None else int(fields[1])


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


def _cmdline(pid: int) -> list[str] | None:
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return None
    return [part.decode(errors="replace") for part in raw.split(b"\0")[:-1]]


def _uids(pid: int) -> set[int] | None:
    """The process's real, effective, saved and filesystem uids (/proc/PID/status), or None."""
    try:
        for line in (PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith("Uid:"):
                return {int(u) for u in line.split()[1:]}
    except (OSError, ValueError):
        pass
    return None


_CLOBBERED = "clobbered"  # `_tag_of`: the environment shows no variable (see the module's docstring)


def _tag_of(pid: int) -> str | None:
    """The sweep tag in the process's environment (readable only by its user or root), None
    where it has none or cannot be read, or `_CLOBBERED` where it shows no variable at all."""
    try:
        environ = (PROC / str(pid) / "environ").read_bytes()
    except OSError:
        return None
    items = [item for item in environ.split(b"\0") if b"=" in item]
    if not items:
        return _CLOBBERED
    prefix = f"{TAG_ENV}=".encode()
    for item in items:
        if item.startswith(prefix):
            return item[len(prefix):].decode(errors="replace")
    return None


def tag_children() -> str:
    """Put this driver's tag in its environment, so that every process it starts from now
    on (its private Ray instance) inherits it; returns the tag. Call before starting Ray."""
    tag = _TAGS.setdefault(os.getpid(), f"{os.getpid()}-{secrets.token_hex(16)}")
    os.environ[TAG_ENV] = tag
    return tag


def record(results_dir) -> Path | None:
    """Record this driver and the processes it has started (its private Ray instance)."""
    if not PROC.is_dir():
        return None
    me = os.getpid()
    tag = _TAGS.get(me)
    if tag is None or os.environ.get(TAG_ENV) != tag:
        raise RuntimeError("leftovers.record needs leftovers.tag_children() to run before Ray starts")
    processes = []
    for pid in descendants(me):
        start, parent, cmdline = _start_time(pid), _parent(pid), _cmdline(pid)
        if start is not None and parent is not None and cmdline and _tag_of(pid) in (tag, _CLOBBERED):
            processes.append({"pid": pid, "start": start, "parent": parent, "cmdline": cmdline})
    path = Path(results_dir) / RECORD
    write_atomic(path, lambda fh: fh.write(json.dumps({  # writable by this user alone, whatever the umask
        "format": RECORD_FORMAT, "uid": os.getuid(), "tag": tag, "driver": {"pid": me, "start": _start_time(me)},
        "processes": processes}, indent=1)), mode=0o644)
    return path


def forget(results_dir) -> None:
    """The instance was shut down: nothing is left to stop."""
    try:
        (Path(results_dir) / RECORD).unlink()
    except FileNotFoundError:
        pass


class _Untrusted(Exception):
    """The record cannot prove that this user's sweep wrote it."""


def _read_record(path: Path) -> dict:
    """The record's contents, read without following a link; _Untrusted where the file is
    a link, not a plain file of its own, not this user's, or not a record for this user."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise _Untrusted(f"it cannot be opened without following a link ({exc.strerror or exc})") from None
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if path.is_symlink() or not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
            raise _Untrusted("it is not a plain file of its own")
        if st.st_uid != os.getuid():
            raise _Untrusted(f"it belongs to uid {st.st_uid}, not to this user (uid {os.getuid()})")
        if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise _Untrusted(f"others may write it (mode {stat.S_IMODE(st.st_mode):o})")
        try:
            data = json.loads(fh.read())
        except ValueError:
            raise _Untrusted("it is not JSON") from None
    if not isinstance(data, dict) or data.get("format") != RECORD_FORMAT or data.get("uid") != os.getuid():
        raise _Untrusted("it is not a record this version wrote for this user")
    return data


def _same_program(now: list[str] | None, recorded: list[str]) -> bool:
    """The recorded command line, or a Ray worker's title then and now (a worker retitles
    itself `ray::<task>` for each task it runs)."""
    if not now or not recorded:
        return False
    return now == recorded or (now[0].startswith("ray::") and recorded[0].startswith("ray::"))


def _provably_ours(entry: dict, tag: str, recorded: dict[int, int], uid: int) -> bool:
    """Whether the recorded process `entry` is alive and provably one the sweep started."""
    pid, start, parent = entry["pid"], entry["start"], entry["parent"]
    if _start_time(pid) != start or _uids(pid) != {uid} or not _same_program(_cmdline(pid), entry["cmdline"]):
        return False
    if parent not in recorded:  # the driver or another recorded process started it
        return False
    parent_lives = _start_time(parent) == recorded[parent]
    if _parent(pid) == parent and not parent_lives:
        return False  # its parent is the recorded pid, but with another start time: not the record's parent
    if parent_lives and _parent(pid) != parent:
        return False  # its recorded parent lives, yet it is not that parent's child
    return _tag_of(pid) in (tag, _CLOBBERED)


def _candidates(path: Path) -> tuple[str, dict[int, int], list[dict]] | None:
    """The record's tag, its processes' start times by pid (the driver's included) and its
    processes; None where the driver still lives. _Untrusted where it proves nothing."""
    data = _read_record(path)
    try:
        tag, driver = str(data["tag"]), data["driver"]
        recorded = {int(driver["pid"]): driver["start"]}
        entries = [{"pid": int(p["pid"]), "start": p["start"], "parent": int(p["parent"]),
                    "cmdline": list(p["cmdline"])} for p in data["processes"]]
    except (KeyError, TypeError, ValueError):
        raise _Untrusted("its fields are not those of a record") from None
    if driver.get("start") is not None and _start_time(int(driver["pid"])) == driver["start"]:
        return None  # the driver that started them is alive and uses them
    recorded.update((e["pid"], e["start"]) for e in entries)
    return tag, recorded, entries


class _Process:
    """A process to stop, held by a pidfd where Linux has them, so that a signal can never
    reach a later process that reused its pid; elsewhere its start time is checked first."""

    def __init__(self, pid: int, start: int):
        self.pid, self.start = pid, start
        try:
            self.fd = os.pidfd_open(pid)
        except (AttributeError, OSError):
            self.fd = None

    def running(self) -> bool:
        if self.fd is not None:
            return not select.select([self.fd], [], [], 0)[0]  # readable once it has ended
        return _start_time(self.pid) == self.start

    def send(self, sig: int) -> None:
        try:
            if self.fd is not None:
                signal.pidfd_send_signal(self.fd, sig)
            elif self.running():
                os.kill(self.pid, sig)
        except ProcessLookupError:
            pass

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def stop_stale(results_dir, grace: float = 5.0) -> list[int]:
    """Stop the recorded processes of a driver that is gone, where the record proves that
    this user's sweep started them; returns the pids stopped.

    A record that proves nothing (a link, another user's file, a planted or older record)
    stops nothing: it is reported in a warning and left for the next `record` to replace.
    """
    path = Path(results_dir) / RECORD
    try:
        candidates = _candidates(path)
    except FileNotFoundError:
        return []
    except _Untrusted as why:
        warnings.warn(f"{path}: not used to stop a killed sweep's Ray processes, since {why}; stop any "
                      "left over yourself (docs/SWEEPS.md, \"After a kill\")", RuntimeWarning, stacklevel=2)
        return []
    if candidates is None:
        return []
    (tag, recorded, entries), uid, targets = candidates, os.getuid(), []
    for entry in entries:
        process = _Process(entry["pid"], entry["start"])  # held first, then proven: no pid reuse between
        if process.running() and _provably_ours(entry, tag, recorded, uid):
            targets.append(process)
        else:
            process.close()
    try:
        alive = targets
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for process in alive:
                process.send(sig)
            deadline = time.time() + grace
            while time.time() < deadline and any(p.running() for p in alive):
                time.sleep(0.1)
            alive = [p for p in alive if p.running()]
            if not alive:
                break
    finally:
        for process in targets:
            process.close()
    forget(results_dir)
    return [p.pid for p in targets]
