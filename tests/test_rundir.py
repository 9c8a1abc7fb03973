"""The run directory: atomic writes, metric files, checkpoints and the overwrite guard."""

import json
import os

import pytest
import torch

from emodarts_core.training.rundir import RunDir, RunExistsError


def test_atomic_json_leaves_no_temporary_files(tmp_path):
    rd = RunDir(tmp_path / "run")
    rd.atomic_write_json("a.json", {"x": 1})
    rd.atomic_write_json("a.json", {"x": 2})
    assert rd.read_json("a.json") == {"x": 2}
    assert os.listdir(rd.path) == ["a.json"]


def test_failed_write_keeps_previous_file(tmp_path):
    rd = RunDir(tmp_path)
    rd.atomic_write_json("a.json", {"x": 1})
    with pytest.raises(TypeError):
        rd.atomic_write_json("a.json", {"x": object()})
    assert rd.read_json("a.json") == {"x": 1}
    assert sorted(os.listdir(tmp_path)) == ["a.json"]


def test_append_and_rewrite_epochs(tmp_path):
    rd = RunDir(tmp_path)
    records = [{"epoch": i, "loss": 0.5 / i, "share": {"seq": 0.1 * i}, "genotype": [1, 2]} for i in (1, 2, 3)]
    for r in records:
        rd.append_epoch(r)
    assert rd.read_epochs() == records
    lines = (tmp_path / "metrics.csv").read_text().splitlines()
    assert lines[0] == "epoch,loss,share.seq"  # nested dicts flattened, lists left out
    assert len(lines) == 4
    rd.rewrite_epochs(records[:2])
    assert rd.read_epochs() == records[:2]
    assert len((tmp_path / "metrics.csv").read_text().splitlines()) == 3


def test_checkpoint_round_trip_with_weights_only(tmp_path):
    rd = RunDir(tmp_path)
    assert rd.load_checkpoint() is None
    state = {"epoch": 3, "w": torch.arange(4.0), "history": [{"a": 1.5, "b": True}], "rng": (3, (1, 2), None)}
    rd.save_checkpoint(state)
    loaded = rd.load_checkpoint()
    assert loaded["epoch"] == 3 and torch.equal(loaded["w"], state["w"]) and loaded["history"] == state["history"]


def test_claim_never_overwrites(tmp_path):
    rd = RunDir(tmp_path / "run")
    assert rd.claim(resume=False) == "fresh"
    rd.write_config({"kind": "search"})
    assert rd.claim(resume=False) == "fresh"  # stopped before computing anything: nothing to lose
    rd.append_epoch({"epoch": 1})
    with pytest.raises(RunExistsError, match="unfinished"):
        rd.claim(resume=False)
    assert rd.claim(resume=True) == "resume"
    rd.mark_finished({"done": True})
    assert rd.is_finished()
    with pytest.raises(RunExistsError, match="finished run"):
        rd.claim(resume=False)
    assert rd.claim(resume=True) == "finished"
    assert json.loads((rd.path / "FINISHED").read_text()) == {"done": True}
