"""Small fold data and configurations shared by the search/retrain/resume tests.

`tiny_fold` builds a real `data_prep.FoldData` from random arrays with a learnable signal
(the class shifts the mean of a band of coefficients), so the loops have something to fit
while staying within a second or two per epoch on CPU.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from data_prep.toy import toy_fold
from emodarts_core.config import SearchConfig, TrainConfig, preset
from emodarts_core.training.rundir import RunDir


tiny_fold = toy_fold  # the loops' tests share the library's toy fold


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    """Run a test module's torch work on one thread (import this into the module to use it).

    The CI box has 2 cores shared by several jobs; with 2 OpenMP threads contending for
    them a tiny step takes seconds instead of milliseconds. Also makes CPU results
    independent of the machine's core count.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


SIZE = (16, 16)


def tiny_net(**overrides):
    """The smoke preset at a 16x16 input (both reductions, one SeqNN cell)."""
    return preset("smoke", **{"input_size": SIZE, **overrides})


def without_timing(history: list[dict]) -> list[dict]:
    """Epoch records minus wall-clock time, which legitimately differs between runs."""
    return [{k: v for k, v in r.items() if k != "seconds"} for r in history]


def search_cfg(**overrides) -> SearchConfig:
    base = SearchConfig(epochs=2, batch_size=4, device="cpu", seed=0, progress=False)
    return dataclasses.replace(base, **overrides)


def train_cfg(**overrides) -> TrainConfig:
    base = TrainConfig(epochs=2, batch_size=4, device="cpu", seed=0, progress=False)
    return dataclasses.replace(base, **overrides)


_SEARCH_CHILD = textwrap.dedent("""
    import sys, time, torch
    sys.path.insert(0, {tests!r})
    torch.set_num_threads(1)
    from emodarts_core.training.rundir import RunDir
    from emodarts_core.darts.search import run_search
    from loop_helpers import search_cfg, tiny_fold, tiny_net
    save = RunDir.save_checkpoint
    def slow_save(self, state):  # widen the window for the kill; computation is unchanged
        save(self, state)
        time.sleep(0.5)
    RunDir.save_checkpoint = slow_save
    run_search(tiny_fold(), tiny_net(), search_cfg(epochs={epochs}), {run_dir!r})
""")


def kill_search_after_checkpoint(run_dir, epochs: int, min_epoch: int = 2, timeout: float = 120.0) -> int:
    """Run a tiny search of `epochs` in a child process into `run_dir` and SIGKILL it once
    a checkpoint of epoch >= `min_epoch` is on disk; return the child's return code."""
    code = _SEARCH_CHILD.format(tests=str(Path(__file__).resolve().parent), epochs=epochs, run_dir=str(run_dir))
    child = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "OMP_NUM_THREADS": "1"},
                             stderr=subprocess.PIPE)
    rd = RunDir(run_dir)
    deadline = time.monotonic() + timeout
    try:
        while True:
            assert child.poll() is None, f"search exited early: {child.stderr.read().decode()[-2000:]}"
            assert time.monotonic() < deadline, f"no checkpoint of epoch {min_epoch} within {timeout:.0f} s"
            ckpt = rd.load_checkpoint() if rd.exists("checkpoint.pt") else None
            if ckpt is not None and ckpt["epoch"] >= min_epoch:
                break
            time.sleep(0.05)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stderr.close()
    return child.returncode


def session_pids(sid: int) -> list[int]:
    """Live (non-zombie) processes of session `sid` (a process started with start_new_session, and its children)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[3]) == sid and fields[0] != "Z":
            pids.append(int(entry.name))
    return pids


def pids_naming(text: str) -> list[int]:
    """Processes whose command line contains `text` (e.g. a test's private Ray temp dir)."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and text.encode() in (entry / "cmdline").read_bytes():
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def budget_between_gb(net_cfg, batch_size: int) -> float:
    """A memory budget (GiB) halfway between the predicted search step with every mixed op
    checkpointed and with none: one that only some edges meet (darts.memory.plan_checkpointing)."""
    from emodarts_core.darts.memory import estimate_search_memory

    plain, every = (estimate_search_memory(net_cfg, batch_size, checkpointing=on).bytes for on in (False, True))
    return (plain + every) / 2 / 2**30
