"""Committed results hold what runs found, not how they ran: no lock files, no host names."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from emodarts_core.study.sweep import Task, TaskStatus, load_params, node_label
from emodarts_core.study.sweep.driver import SweepRecord
from emodarts_core.study.sweep.status import HOSTS, MANIFEST

REPO = Path(__file__).resolve().parents[1]


def _git(*args) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True)


needs_git = pytest.mark.skipif(shutil.which("git") is None or _git("rev-parse").returncode != 0,
                               reason="not a git checkout")


@needs_git
def test_no_lock_file_is_committed_and_git_ignores_them():
    tracked = _git("ls-files", "results").stdout.splitlines()
    assert not [p for p in tracked if Path(p).name in (".lock", HOSTS)]
    for path in ("results/emodb/cnn/fold1/seed0/retrain-full/.lock", "results/sweep.hosts.json"):
        assert _git("check-ignore", "-q", path).returncode == 0, f"{path} is not ignored"


def test_the_manifest_names_nodes_without_their_host(tmp_path):
    params = load_params({"network": {"preset": "smoke"}, "train": {"epochs": 1}})
    task = Task("synthetic", 1, "baseline", "cnn")
    sweep = SweepRecord([task], params, tmp_path, {"datasets": ["synthetic"]}, progress=False)
    node_id = "1f2e3d4c" + "0" * 48
    sweep.statuses[0].node, sweep.statuses[0].node_id = node_label("build-host-7", node_id), node_id
    sweep.write("running")
    manifest = (tmp_path / MANIFEST).read_text()
    assert "build-host-7" not in manifest
    assert json.loads(manifest)["tasks"][0]["node"] == "1f2e3d4c"
    assert json.loads((tmp_path / HOSTS).read_text()) == {task.key: "build-host-7/1f2e3d4c"}
    status = TaskStatus(task, node="box/9a8b7c6d", node_id="9a8b7c6d")
    assert status.to_dict()["node"] == "box/9a8b7c6d" and status.to_dict(hosts=False)["node"] == "9a8b7c6d"
