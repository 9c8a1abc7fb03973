"""Each epoch's test UA of a retraining, written to a file that nothing in training reads.

The authors' `augment.py` reports the best test UA over its epochs, which selects the
epoch on the test speakers (docs/REFERENCE_CODE.md). To measure how much that choice
inflates a number, a `full` retraining (which selects nothing and keeps its last epoch)
can score the test speakers after every epoch and append the score to
`<run>/test_trace.jsonl`. The file is an observation of the run and never an input to
it: no selection, stopping rule or setting reads it, and scoring it changes nothing the
run computes (eval mode, no gradients, and the random state put back, so the run is the
same with the trace as without it). `emodarts_core.study.optimism` turns the traces into
the gap between the best epoch and the honest last-epoch score, a measurement of a bias
and never a result of the study.
"""

from __future__ import annotations

import json
from typing import Callable

import torch

from emodarts_core.training.loop import evaluate
from emodarts_core.training.rundir import RunDir

TEST_TRACE = "test_trace.jsonl"


def trace_callback(rd: RunDir, model: torch.nn.Module, test_loader, device, precision) -> Callable[[dict], None]:
    """A per-epoch callback (`training.run.Run.on_epoch`) that scores `model` on the test
    speakers and appends {"epoch", "test_ua", "test_wa"} to `rd/test_trace.jsonl`; lines of
    epochs at or after the one being written (left by an interrupted run) are dropped."""
    def record(epoch_record: dict) -> None:
        with torch.random.fork_rng(devices=[]):  # a loader's iterator draws from the global generator
            test = evaluate(model, test_loader, device, precision)
        epoch = int(epoch_record["epoch"])
        lines = [json.loads(line) for line in _read(rd)]
        lines = [line for line in lines if line["epoch"] < epoch]
        lines.append({"epoch": epoch, "test_ua": float(test["ua"]), "test_wa": float(test["acc"])})
        rd.atomic_write_text(TEST_TRACE, "".join(json.dumps(line) + "\n" for line in lines))

    return record


def _read(rd: RunDir) -> list[str]:
    if not rd.exists(TEST_TRACE):
        return []
    return [line for line in rd.file(TEST_TRACE).read_text(encoding="utf-8").splitlines() if line.strip()]


def read_trace(run_dir) -> list[dict]:
    """The per-epoch test scores of a retraining (empty when it kept none)."""
    return [json.loads(line) for line in _read(RunDir(run_dir))]


__all__ = ["TEST_TRACE", "read_trace", "trace_callback"]
