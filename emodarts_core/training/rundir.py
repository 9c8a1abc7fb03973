"""The run directory: every file a search or retraining run leaves behind, written atomically.

Layout (search and retraining alike, unless marked):

    config.json          configurations, fold ids and data description (written before work)
    metrics.jsonl        one JSON object per finished epoch
    metrics.csv          the same, flattened to scalar columns
    checkpoint.pt        last finished epoch: weights, optimiser/scheduler/RNG states, history
    alpha_history.json   (search) per-epoch alpha softmax, genotype and parameter-free share
    genotype.json        (search) the final genotype
    model.pt             (retrain) the selected (best validation UA) weights
    result.json          (retrain) test UA/WA, confusion matrix, parameters, best epoch
    FINISHED             JSON summary; present only once the run completed

Every whole-file write goes to a temporary file in the same directory, is flushed to disk
and then renamed over the target (`os.replace`), so a crash never leaves a half-written
file. Metric lines are appended; after a crash they are rewritten from the checkpoint's
history on resume, so they never hold an epoch the checkpoint does not.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from pathlib import Path

import torch

CONFIG = "config.json"
CHECKPOINT = "checkpoint.pt"
METRICS_JSONL = "metrics.jsonl"
METRICS_CSV = "metrics.csv"
FINISHED = "FINISHED"


class RunExistsError(RuntimeError):
    """The run directory already holds a run that the caller did not ask to resume."""


def _flatten(record: dict, prefix: str = "") -> dict:
    """Scalar columns of a (possibly nested) record; lists are left out of the CSV."""
    flat = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, name + "."))
        elif not isinstance(value, (list, tuple)):
            flat[name] = value
    return flat


class RunDir:
    """A run directory at `path` (created on first write)."""

    def __init__(self, path):
        self.path = Path(path)

    def file(self, name: str) -> Path:
        return self.path / name

    def exists(self, name: str) -> bool:
        return self.file(name).exists()

    # -- atomic whole-file writes -------------------------------------------------------
    def _atomic_write(self, name: str, write) -> Path:
        self.path.mkdir(parents=True, exist_ok=True)
        target = self.file(name)
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=self.path)
        try:
            with os.fdopen(fd, "wb") as fh:
                write(fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return target

    def atomic_write_text(self, name: str, text: str) -> Path:
        return self._atomic_write(name, lambda fh: fh.write(text.encode("utf-8")))

    def atomic_write_json(self, name: str, obj) -> Path:
        return self.atomic_write_text(name, json.dumps(obj, indent=2, sort_keys=False) + "\n")

    def read_json(self, name: str):
        return json.loads(self.file(name).read_text(encoding="utf-8"))

    def write_config(self, config: dict) -> Path:
        return self.atomic_write_json(CONFIG, config)

    def read_config(self) -> dict | None:
        return self.read_json(CONFIG) if self.exists(CONFIG) else None

    # -- per-epoch metrics --------------------------------------------------------------
    def append_epoch(self, record: dict) -> None:
        """Append one epoch's record to metrics.jsonl and metrics.csv (header on first line)."""
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.file(METRICS_JSONL), "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
        flat = _flatten(record)
        csv_path = self.file(METRICS_CSV)
        new = not csv_path.exists() or csv_path.stat().st_size == 0
        with open(csv_path, "a", encoding="utf-8", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(flat), extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow(flat)

    def rewrite_epochs(self, history: list[dict]) -> None:
        """Replace both metric files with exactly `history` (used on resume)."""
        self.atomic_write_text(METRICS_JSONL, "".join(json.dumps(r) + "\n" for r in history))
        buf = io.StringIO()
        if history:
            rows = [_flatten(r) for r in history]
            writer = csv.DictWriter(buf, fieldnames=list(rows[0]), extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
        self.atomic_write_text(METRICS_CSV, buf.getvalue())

    def read_epochs(self) -> list[dict]:
        if not self.exists(METRICS_JSONL):
            return []
        return [json.loads(line) for line in self.file(METRICS_JSONL).read_text().splitlines() if line]

    # -- checkpoint ---------------------------------------------------------------------
    def atomic_save_torch(self, name: str, obj) -> Path:
        """Atomically `torch.save` `obj` (tensors, numbers, strings, lists, dicts) as `name`."""
        return self._atomic_write(name, lambda fh: torch.save(obj, fh))

    def load_torch(self, name: str, map_location="cpu"):
        """Load a file written by `atomic_save_torch` with `weights_only=True` (no pickled code)."""
        return torch.load(self.file(name), map_location=map_location, weights_only=True)

    def save_checkpoint(self, state: dict) -> Path:
        """Atomically write the training state to checkpoint.pt."""
        return self.atomic_save_torch(CHECKPOINT, state)

    def load_checkpoint(self, map_location="cpu") -> dict | None:
        """The last checkpoint, or None."""
        return self.load_torch(CHECKPOINT, map_location) if self.exists(CHECKPOINT) else None

    # -- lifecycle ----------------------------------------------------------------------
    def is_finished(self) -> bool:
        return self.exists(FINISHED)

    def mark_finished(self, summary: dict) -> None:
        self.atomic_write_json(FINISHED, summary)

    def has_run(self) -> bool:
        """True when a run (finished or not) has already started here."""
        return any(self.exists(n) for n in (CONFIG, CHECKPOINT, METRICS_JSONL, FINISHED))

    def claim(self, resume: bool) -> str:
        """Decide how a new run may use this directory: 'fresh', 'resume' or 'finished'.

        Never silently overwrites: a finished run is returned as such only with
        `resume=True`, and an unfinished one without `resume=True` is an error.
        """
        if self.is_finished():
            if resume:
                return "finished"
            raise RunExistsError(f"{self.path} holds a finished run; choose a new run directory, "
                                 "delete this one, or pass resume=True to load its result")
        if self.has_run():
            if resume:
                for stale in self.path.glob(".*.tmp"):  # a write cut short by a kill
                    stale.unlink()
                return "resume"
            raise RunExistsError(f"{self.path} holds an unfinished run; pass resume=True to continue it "
                                 "or choose a new run directory")
        return "fresh"
