"""Notebook 05 reads the study committed with the repository wherever it runs, and its exercise 3
is right about that study: the answer it marks right, and the premises of its options, are
checked here against results/emodb itself."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

from emodarts_core.study import results, stats
from emodarts_core.teaching import exercises

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "05_paper_figures.ipynb"
SOLUTIONS = REPO / "notebooks" / "solutions" / "05_paper_figures.md"


def _cells() -> list[dict]:
    return json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"]


def _source(cell: dict) -> str:
    return "".join(cell["source"])


@pytest.fixture(scope="module")
def committed_study():
    folder = results.repository_study("emodb")
    assert folder == REPO / "results" / "emodb"
    return results.collect_study(folder)


def test_notebook_05_finds_the_committed_study_from_a_working_copy(tmp_path, monkeypatch):
    """Run from another folder (a `notebooks copy`, lab/), the notebook's set-up cells resolve
    the repository's study through the package, and find its runs in the pack."""
    monkeypatch.chdir(tmp_path)
    cells = _cells()
    parameters = next(c for c in cells if "parameters" in c.get("metadata", {}).get("tags", []))
    setup = cells[cells.index(parameters) + 1]
    namespace: dict = {}
    exec(_source(parameters), namespace)
    exec(_source(setup).replace("from IPython.display import display\n", ""), namespace)
    assert Path(namespace["results_dir"]) == REPO / "results" / "emodb"
    assert not (tmp_path / "results").exists()
    study = results.collect_study(namespace["results_dir"])
    assert len(study) > 0 and {"full", "paper"} <= set(study["protocol"])


def test_exercise_3_is_right_about_the_study_it_cites(committed_study):
    comparisons = results.compare_study(committed_study)
    row = comparisons[(comparisons["model"] == "random") & (comparisons["protocol"] == "full")
                      & (comparisons["reference_scope"] == "emodarts")].iloc[0]
    n = int(row["n"])
    floor = stats.paired_permutation_p(np.ones(n), np.zeros(n))
    assert floor < 0.05, "the solution says the committed study's cells let p go below 0.05"
    text = _source(next(c for c in _cells() if c["source"] and "### Exercise 3" in c["source"][0]))
    cited = {int(v) for v in re.findall(r"n = (\d+) \(fold, seed\) cells", text)}
    assert cited == {n}, f"the exercise cites n = {cited}, the study has {n} cells"
    assert f"n = {n} (fold, seed)" in SOLUTIONS.read_text(encoding="utf-8")
    solution = {"study": committed_study, "results": results}
    block = SOLUTIONS.read_text(encoding="utf-8").split("## Exercise 3")[1].split("```python")[1].split("```")[0]
    exec(block, solution)
    verdict = exercises.check_study_p(committed_study, solution["p_random"], solution["meaning"])
    assert verdict.status == exercises.CORRECT, str(verdict)
    for wrong in ("a", "c"):
        assert exercises.check_study_p(committed_study, row["p_perm"], wrong).status == exercises.INCORRECT


def test_exercise_3_says_when_a_study_is_too_small_to_show_a_lead(committed_study):
    """With one seed (5 cells) p cannot go below 0.0625: the meaning of p is still marked, and
    the verdict says that no lead could be shown at 0.05 on such a study."""
    one_seed = committed_study[committed_study["seed"] == 0]
    comparisons = results.compare_study(one_seed)
    p = comparisons[(comparisons["model"] == "random") & (comparisons["protocol"] == "full")
                    & (comparisons["reference_scope"] == "emodarts")].iloc[0]["p_perm"]
    verdict = exercises.check_study_p(one_seed, p, "b")
    assert verdict.status == exercises.CORRECT and "could not show a lead at 0.05" in str(verdict)
    assert "could not show" not in str(exercises.check_study_p(committed_study, None, "b"))
