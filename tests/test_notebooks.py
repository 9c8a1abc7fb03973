"""The six notebooks run headless, in order, with the CI parameters, and say what they should.

Papermill executes copies (never the committed notebooks) with the installed `ci`
parameter file, in a temporary folder outside the repository that is also the kernel's
working directory, so the notebooks can only rely on the installed package: 01 and 02
write their figures to their default `runs/` folder there, 03 writes a genotype, 04
retrains it, 05 reads both runs. Cells tagged `check` must print known, deterministic
text. A separate check asserts that the committed notebooks carry no outputs.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import papermill
import pytest
from tool_modules import load_tool

ROOT = Path(__file__).resolve().parent.parent
prepare_smoke = load_tool("prepare_smoke_notebooks")

pytestmark = pytest.mark.slow

#: Notebooks run with their default run directory (under the working directory), as a
#: user who opens them anywhere would; the others get the chained run directories.
DEFAULT_RUN_DIRS = {"01_features": "runs/01_features_synthetic", "02_mixed_op_relaxation": "runs/02_mixed_op"}


def _check_text(notebook: nbformat.NotebookNode) -> str:
    """Everything the `check`-tagged cells printed or displayed (plain text)."""
    parts = []
    for cell in notebook.cells:
        if "check" in cell.metadata.get("tags", []):
            for output in cell.get("outputs", []):
                parts.append(output.get("text", "") or output.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """Run all six notebooks once, in order; name -> (executed notebook, its parameters).

    Each notebook is first copied to a temporary folder outside the repository, which is
    also the kernel's working directory. 01 and 02 get only the installed ci file, so
    their figures go to their default `runs/...` there (`params["run_dir"]` records where).
    The kernels run without MPLBACKEND, as `make demo` runs them (the test targets export
    MPLBACKEND=Agg, which a kernel would inherit, and an executed notebook would then hold
    no figures)."""
    out_dir = tmp_path_factory.mktemp("notebooks")
    copies = out_dir / "copies"
    copies.mkdir()
    done = {}
    monkey = pytest.MonkeyPatch()
    monkey.delenv("MPLBACKEND", raising=False)
    for name, params in prepare_smoke.smoke_parameters(out_dir).items():
        source = shutil.copy(ROOT / "notebooks" / f"{name}.ipynb", copies)
        if name in DEFAULT_RUN_DIRS:
            params = {k: v for k, v in params.items() if k != "run_dir"}
        notebook = papermill.execute_notebook(source, out_dir / f"{name}.ipynb", parameters=params,
                                              cwd=str(out_dir), kernel_name="python3", progress_bar=False,
                                              execution_timeout=600)
        if name in DEFAULT_RUN_DIRS:
            params = {**params, "run_dir": str(out_dir / DEFAULT_RUN_DIRS[name])}
        done[name] = (notebook, params)
    monkey.undo()
    return done


def test_notebooks_run_outside_the_repository(executed):
    """Opened anywhere, a notebook needs only the installed package: no repository lookup,
    parameters from package data, figures under the working directory's `runs/`."""
    out_dir = Path(executed["01_features"][1]["run_dir"]).parents[1]
    assert not any((p / "pyproject.toml").exists() for p in [out_dir, *out_dir.parents])
    assert ROOT not in out_dir.parents
    assert (out_dir / "runs" / "01_features_synthetic" / "utterance.png").exists()
    assert (out_dir / "runs" / "02_mixed_op" / "op_memory.csv").exists()
    assert executed["01_features"][0].metadata["papermill"]["parameters"]["dataset"] == "synthetic"
    # each notebook is handed only its own keys from the profile: 02 has no corpus
    assert "dataset" not in executed["02_mixed_op_relaxation"][0].metadata["papermill"]["parameters"]


def _images(notebook) -> int:
    return sum("image/png" in output.get("data", {}) for cell in notebook.cells for output in cell.get("outputs", []))


def test_executed_notebooks_hold_their_figures(executed):
    """What `make demo` writes: the executed search notebook shows its figures inline."""
    assert _images(executed["03_search"][0]) >= 3


def test_01_features_tables(executed):
    notebook, params = executed["01_features"]
    text = _check_text(notebook)
    for label in ("anger", "happiness", "neutral", "sadness"):
        assert label in text
    assert "104" in text  # 8 generated speakers x 13 utterances per class
    assert "spk01 spk02" in text  # fold 1 holds out one female and one male speaker
    assert (Path(params["run_dir"]) / "utterance.png").exists()


def test_02_relaxation_lists_primitives(executed):
    notebook, params = executed["02_mixed_op_relaxation"]
    text = _check_text(notebook)
    assert "CNN candidates: none, max_pool_3x3, avg_pool_3x3, skip_connect, sep_conv_3x3" in text
    assert "lstm_att_1" in text
    assert "plain and fast mixed op agree: True" in text
    assert (Path(params["run_dir"]) / "op_memory.csv").exists()


def test_03_search_writes_genotype_and_figures(executed):
    notebook, params = executed["03_search"]
    run_dir = Path(params["run_dir"])
    text = _check_text(notebook)
    assert f"genotype: {run_dir / 'genotype.json'}" in text
    assert "8/8" in text  # plain DARTS collapses the deep SeqNN demo to all skip_connect
    assert "darts_minus" in text and "skip_cap" in text
    assert (run_dir / "genotype.json").exists() and (run_dir / "FINISHED").exists()
    for figure in ("search_curves.png", "alpha_moves.png", "alpha_diagnostics.png", "alpha_final.png",
                   "genotype.png", "collapse_remedies.png"):
        assert (run_dir / "figures" / figure).exists(), figure


def test_04_retrain_reports_test_scores(executed):
    notebook, params = executed["04_retrain"]
    text = _check_text(notebook)
    assert "test UA %" in text and "selected epoch" in text
    assert (Path(params["run_dir"]) / "result.json").exists()
    assert (Path(params["run_dir"]) / "figures" / "confusion.png").exists()


def test_05_rebuilds_tables_with_gaps(executed):
    notebook, params = executed["05_paper_figures"]
    assert "2 runs (run directories or packed)" in _check_text(notebook)
    figures = Path(params["figures_dir"])
    for name in ("summary.csv", "figure5.png", "figure7.png", "figure6.png"):
        assert (figures / name).exists(), name


def test_06_measures_ranking_perturbation_and_optimism(executed):
    notebook, params = executed["06_does_the_search_help"]
    text = _check_text(notebook)
    assert "seed agreement:" in text and "Kendall's tau" in text and "scored passes" in text
    assert "best test epoch - honest UA" in text
    for figure in ("ranking.png", "optimism.png"):
        assert (Path(params["run_dir"]) / "figures" / figure).exists(), figure


def test_committed_notebooks_are_clean():
    check = subprocess.run([sys.executable, str(ROOT / "tools" / "check_notebooks_clean.py")],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_clean_check_ignores_untracked_executed_copies_and_catches_leaked_paths(tmp_path):
    tool = [sys.executable, str(ROOT / "tools" / "check_notebooks_clean.py")]
    executed = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")])
    executed.cells[0].execution_count = 1
    executed.metadata["papermill"] = {"input_path": "notebooks/03_search.ipynb", "output_path": "/home/me/out.ipynb"}
    copy = ROOT / "build" / "executed_copy_for_test.ipynb"  # build/ is ignored by git
    copy.parent.mkdir(exist_ok=True)
    nbformat.write(executed, copy)
    try:
        default = subprocess.run(tool, capture_output=True, text=True)
        assert default.returncode == 0 and "executed_copy" not in default.stdout + default.stderr
        assert subprocess.run(tool + [str(copy)], capture_output=True, text=True).returncode == 0
    finally:
        copy.unlink()
    leaky = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    leaky.metadata["papermill"] = {"parameters": {"data_dir": "/home/me/corpora/iemocap"}}
    leaky.metadata["custom"] = {"data_dir": "/home/me/corpora/iemocap"}
    path = tmp_path / "leaky.ipynb"
    nbformat.write(leaky, path)
    found = subprocess.run(tool + [str(path)], capture_output=True, text=True)
    assert found.returncode == 1 and "papermill's record" in found.stdout and "local path" in found.stdout


def test_clean_check_fails_on_outputs_and_strip_fixes_it(tmp_path):
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")])
    notebook.cells[0].outputs = [nbformat.v4.new_output("execute_result", {"text/plain": "2"}, execution_count=1)]
    notebook.cells[0].execution_count = 1
    path = tmp_path / "dirty.ipynb"
    nbformat.write(notebook, path)
    tool = [sys.executable, str(ROOT / "tools" / "check_notebooks_clean.py")]
    dirty = subprocess.run(tool + [str(path)], capture_output=True, text=True)
    assert dirty.returncode == 1 and "execution_count 1" in dirty.stdout
    assert subprocess.run(tool + ["--strip", str(path)], capture_output=True).returncode == 0
    assert subprocess.run(tool + [str(path)], capture_output=True).returncode == 0
    assert nbformat.read(path, 4).cells[0].outputs == []
