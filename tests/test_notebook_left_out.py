"""Notebook 01 on an IEMOCAP-shaped corpus: what the feature store leaves out is listed
with counts per reason (by rule: labels outside the four classes, the scripted dialogs;
unusable files one by one), and `fold_scheme` is a parameter of the notebooks whose folds
depend on it (01 tabulates them, 03 searches on one, 04 retrains on one)."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from data_fixtures import make_iemocap

ROOT = Path(__file__).resolve().parent.parent


def _parameters(name: str) -> set[str]:
    notebook = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", 4)
    cell = next(c for c in notebook.cells if "parameters" in c.metadata.get("tags", []))
    return {line.split("=")[0].strip() for line in cell.source.splitlines() if "=" in line and not line[0].isspace()}


def test_fold_scheme_is_a_parameter_where_the_folds_are_made():
    for name in ("01_features", "03_search", "04_retrain"):
        assert "fold_scheme" in _parameters(name), name
        source = (ROOT / "notebooks" / f"{name}.ipynb").read_text()
        assert "fold_scheme=fold_scheme" in source, name  # and reaches load_fold


def _text(cell) -> str:
    return "\n".join(o.get("text", "") or o.get("data", {}).get("text/plain", "") for o in cell.get("outputs", []))


@pytest.mark.slow
def test_notebook_01_lists_what_the_store_left_out_and_takes_the_session_folds(tmp_path):
    root = make_iemocap(tmp_path / "corpus")
    broken = next((root / "IEMOCAP_full_release" / "Session2" / "sentences" / "wav").rglob("*impro*/*.wav"))
    broken.write_bytes(b"RIFF but not a wave file at all")
    source = shutil.copy(ROOT / "notebooks" / "01_features.ipynb", tmp_path)
    executed = tmp_path / "out.ipynb"
    run = subprocess.run([sys.executable, "-m", "papermill", source, str(executed), "-k", "python3", "--no-progress-bar",
                          "-p", "dataset", "iemocap", "-p", "data_dir", str(root), "-p", "fold_scheme", "session",
                          "-p", "run_dir", str(tmp_path / "runs")],
                         capture_output=True, text=True, cwd=tmp_path, timeout=600,
                         env={**os.environ, "EMODARTS_CACHE": str(tmp_path / "cache")})
    assert run.returncode == 0, run.stdout + run.stderr
    assert "unknown parameter" not in run.stderr.lower() and "fold_scheme" not in run.stderr, run.stderr
    cells = {c.id: c for c in nbformat.read(executed, 4).cells}

    left_out = _text(cells["01-04"])
    # the fixture: per session, one scripted dialog of 12 utterances, and in its improvised
    # dialog one `exc` (excitement) and one `fru` (frustration) per speaker; one improvised
    # file is broken
    assert "left out: 81 utterances (80 excluded by rule, 1 unusable files)" in left_out, left_out
    for reason, count in (("scripted dialog", 60), ("class excitement not selected", 10),
                          ("class frustration not selected", 10), ("unusable file    corrupt or unsupported audio", 1)):
        line = next(l for l in left_out.splitlines() if reason in l)
        assert line.split()[-1] == str(count), line
    assert f"  {broken}: corrupt or unsupported audio" in left_out  # each unusable file, with its reason

    fold_test = _text(cells["01-13"]).splitlines()[0]
    assert fold_test.startswith("fold 1: test speakers") and "Ses01" in fold_test and "Ses02" not in fold_test
    with (tmp_path / "runs" / "folds.csv").open() as table:
        held_out = [row["test speakers"].split() for row in csv.DictReader(table)]
    assert [sorted({speaker[:5] for speaker in fold}) for fold in held_out] == [[f"Ses0{k}"] for k in range(1, 6)]
