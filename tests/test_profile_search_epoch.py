"""tools/profile_search_epoch.py: it times the parts of a real search without changing it
(docs/PERFORMANCE.md, "The rerun's search epoch, part by part")."""

import dataclasses
import json
from pathlib import Path

import pytest

from emodarts_core.darts import search as search_module
from emodarts_core.darts import search_steps
from emodarts_core.darts.architect import Architect
from emodarts_core.study.sweep.parameters import load_params
from emodarts_core.training.rundir import RunDir
from loop_helpers import single_thread, tiny_fold, without_timing  # noqa: F401 (fixture)
from tool_modules import load_tool



@pytest.fixture(scope="module")
def tool():
    return load_tool("profile_search_epoch")


def _records(run_dir: Path) -> list[dict]:
    return without_timing([json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()])


@pytest.mark.filterwarnings("ignore::UserWarning")  # 4 α steps barely move the α: expected here
def test_the_profiled_search_is_the_search_and_every_part_is_counted(tool, tmp_path):
    params = load_params({"network": {"preset": "smoke", "input_size": [16, 16]}, "search": {"batch_size": 4}})
    originals = (search_steps.weight_step, search_steps.make_loader, Architect.step, RunDir.save_checkpoint)
    totals, wall, n_epochs = tool.profile(tiny_fold(), params, epochs=3, warmup=1, work=tmp_path / "profiled")
    assert n_epochs == 3
    for label in ("α step (Architect.step)", "weight step", "end-of-epoch evaluation", "checkpoint write",
                  "batches"):
        assert totals[label] > 0, label
    table = tool.table(totals, wall, n_epochs)
    assert sum(v for k, v in totals.items()) <= wall and "run wall time" in table
    # the wrappers are gone afterwards
    assert (search_steps.weight_step, search_steps.make_loader, Architect.step,
            RunDir.save_checkpoint) == originals
    # and the run is the search's own: the same epochs, α history and genotype as an unprofiled run
    cfg = dataclasses.replace(params.search, epochs=3, alpha_steps=None, warmup_epochs=1, progress=False,
                              device="cpu", seed=0)
    plain = search_module.run_search(tiny_fold(), params.network_for("emodarts"), cfg, tmp_path / "plain")
    profiled = tmp_path / "profiled" / "search"
    assert _records(profiled) == _records(plain.run_dir)
    assert json.loads((profiled / "genotype.json").read_text()) == json.loads(
        (plain.run_dir / "genotype.json").read_text())


def test_warmup_must_leave_an_alpha_epoch(tool):
    with pytest.raises(SystemExit, match="--warmup"):
        tool.main(["--epochs", "2", "--warmup", "2"])


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_evaluation_batches_are_compared_in_alternating_rounds(tool, tmp_path, monkeypatch):
    params = load_params({"network": {"preset": "smoke", "input_size": [16, 16]}, "search": {"batch_size": 4}})
    order, real = [], tool.profile

    def spy(fold, params, epochs, warmup, work, eval_batch_size=None):
        order.append(eval_batch_size)
        return real(fold, params, epochs, warmup, work, eval_batch_size)

    monkeypatch.setattr(tool, "profile", spy)
    measured = tool.compare_eval_batches(tiny_fold(), params, [1, 8], rounds=2, epochs=2, warmup=1, work=tmp_path)
    assert order == [1, 8, 8, 1]
    assert {size: len(rows) for size, rows in measured.items()} == {1: 2, 8: 2}
    assert all(0 < ev < wall for rows in measured.values() for ev, wall in rows)
    genotypes = [json.loads((tmp_path / f"round0_eval{size}" / "search" / "genotype.json").read_text())
                 for size in (1, 8)]
    assert genotypes[0] == genotypes[1]  # the evaluation's batch changes nothing the search finds
    table = tool.comparison_table(measured).splitlines()
    assert len(table) == 3 and table[1].split()[0] == "1" and table[1].split()[3] == "1.00"
