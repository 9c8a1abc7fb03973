"""Working copies of the notebooks, and the clean check that reads what git holds.

A class works in copies (`python -m emodarts_core.notebooks copy DEST`, `make lab`), so
JupyterLab's autosave never writes outputs into the tracked notebooks; and the check that
`make test` runs first looks at the committed notebooks, so a working file someone ran in
place does not fail it while a dirty staged or committed one does.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from emodarts_core.notebooks import REPOSITORY_NOTEBOOKS, CopyRefused, copy_notebooks

ROOT = Path(__file__).resolve().parent.parent
CHECK = ROOT / "tools" / "check_notebooks_clean.py"


def _copy_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "emodarts_core.notebooks", "copy", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd)


def test_copy_holds_every_notebook_and_says_how_to_open_them_but_no_solutions(tmp_path):
    dest = tmp_path / "class"
    done = _copy_cli(dest)
    assert done.returncode == 0, done.stderr
    notebooks = sorted(p.name for p in REPOSITORY_NOTEBOOKS.glob("*.ipynb"))
    assert {"01_features.ipynb", "05_paper_figures.ipynb"} <= set(notebooks)  # the teaching notebooks, and any added
    assert sorted(p.name for p in dest.glob("*.ipynb")) == notebooks
    for name in notebooks:
        assert (dest / name).read_bytes() == (REPOSITORY_NOTEBOOKS / name).read_bytes(), name
    assert not (dest / "solutions").exists()  # a student's copy: the exercises' answers stay out
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()) == notebooks
    assert f"jupyter lab {dest.resolve()}" in done.stdout and "--with-solutions" in done.stdout


def test_copy_with_solutions_holds_them_too(tmp_path):
    dest = tmp_path / "teacher"
    done = _copy_cli(dest, "--with-solutions")
    assert done.returncode == 0, done.stderr
    solutions = sorted(p.name for p in (REPOSITORY_NOTEBOOKS / "solutions").iterdir() if p.is_file())
    assert solutions
    for name in [p.name for p in REPOSITORY_NOTEBOOKS.glob("*.ipynb")] + [f"solutions/{n}" for n in solutions]:
        assert (dest / name).read_bytes() == (REPOSITORY_NOTEBOOKS / name).read_bytes(), name


def test_copy_refuses_to_overwrite_someones_work_unless_forced(tmp_path):
    dest = tmp_path / "class"
    assert _copy_cli(dest).returncode == 0
    worked = dest / "03_search.ipynb"
    worked.write_text('{"my": "answers"}')
    again = _copy_cli(dest)
    assert again.returncode == 1 and "--force" in again.stderr and str(dest.resolve()) in again.stderr
    assert worked.read_text() == '{"my": "answers"}'
    forced = _copy_cli(dest, "--force")
    assert forced.returncode == 0
    assert worked.read_bytes() == (REPOSITORY_NOTEBOOKS / "03_search.ipynb").read_bytes()


def test_copy_refuses_a_folder_inside_the_tracked_notebooks_and_a_source_without_notebooks(tmp_path):
    with pytest.raises(CopyRefused, match="outside"):
        copy_notebooks(REPOSITORY_NOTEBOOKS / "mine")
    assert not (REPOSITORY_NOTEBOOKS / "mine").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CopyRefused, match="--source"):
        copy_notebooks(tmp_path / "dest", source=empty)
    assert not (tmp_path / "dest").exists()


# ------------------------------------------------------------------ the clean check

def _notebook(outputs: bool) -> nbformat.NotebookNode:
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")])
    if outputs:
        notebook.cells[0].outputs = [nbformat.v4.new_output("execute_result", {"text/plain": "2"}, execution_count=1)]
        notebook.cells[0].execution_count = 1
    return notebook


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=test", "-c", "user.email=test@example.org", *args],
                   cwd=repo, check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path):
    """A git checkout holding the check and one clean committed notebook."""
    repo = tmp_path / "repo"
    (repo / "tools").mkdir(parents=True)
    (repo / "notebooks").mkdir()
    shutil.copy(CHECK, repo / "tools")
    nbformat.write(_notebook(outputs=False), repo / "notebooks" / "a.ipynb")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "clean")
    return repo


def _check(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(repo / "tools" / CHECK.name), *args], cwd=repo,
                          capture_output=True, text=True)


def test_clean_check_reads_the_committed_notebook_not_the_working_file(repo):
    nbformat.write(_notebook(outputs=True), repo / "notebooks" / "a.ipynb")  # JupyterLab's autosave
    assert _check(repo).returncode == 0
    worktree = _check(repo, "--worktree")
    assert worktree.returncode == 1 and "a.ipynb" in worktree.stdout
    _git(repo, "add", "notebooks/a.ipynb")  # staged dirty: the next commit would hold outputs
    staged = _check(repo)
    assert staged.returncode == 1 and "(as committed)" in staged.stdout and "output(s)" in staged.stdout
    assert _check(repo, "--strip").returncode == 0
    assert json.loads((repo / "notebooks" / "a.ipynb").read_text())["cells"][0]["outputs"] == []
    _git(repo, "add", "notebooks/a.ipynb")
    assert _check(repo).returncode == 0


def test_clean_check_reads_the_files_outside_a_git_checkout(repo, tmp_path):
    plain = tmp_path / "plain"
    shutil.copytree(repo, plain, ignore=shutil.ignore_patterns(".git"))
    assert _check(plain).returncode == 0
    nbformat.write(_notebook(outputs=True), plain / "notebooks" / "a.ipynb")
    dirty = _check(plain)
    assert dirty.returncode == 1 and "execution_count 1" in dirty.stdout


def test_a_notebook_executed_in_place_and_staged_equals_the_committed_one(repo):
    """The git filter that `make demo`, `make lab` and `make setup` install (the Makefile's
    `notebook-filter`): papermill's run in place (outputs, its run record with paths and
    parameters, the injected-parameters cell, empty tag lists, the kernel's language_info)
    never reaches git."""
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# a notebook"),
        nbformat.v4.new_code_cell("seed = 0", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("print('seed', seed)\nseed * 2"),
    ])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.metadata["language_info"] = {"name": "python"}
    path = repo / "notebooks" / "b.ipynb"
    nbformat.write(notebook, path)
    (repo / "pyproject.toml").write_text("")  # the Makefile's install stamp depends on it: older than the stamp
    os.utime(repo / "pyproject.toml", (0, 0))
    venv = Path(sys.executable).parent.parent
    assert (venv / ".installed").exists(), "the tests run in the venv `make setup` made"
    make = subprocess.run(["make", "-s", "-f", str(ROOT / "Makefile"), "notebook-filter", f"VENV={venv}"],
                          cwd=repo, capture_output=True, text=True)
    assert make.returncode == 0, make.stdout + make.stderr
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "b")
    committed = (repo / "notebooks" / "b.ipynb").read_bytes()

    run = subprocess.run([sys.executable, "-m", "papermill", "notebooks/b.ipynb", "notebooks/b.ipynb", "-p", "seed", "7",
                          "-k", "python3", "--no-progress-bar"], cwd=repo, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    executed = json.loads(path.read_text())
    assert executed["metadata"]["papermill"]["parameters"] == {"seed": 7}  # it did run, and recorded it
    assert any(cell.get("outputs") for cell in executed["cells"])
    _git(repo, "add", "notebooks/b.ipynb")
    status = subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True, check=True)
    assert status.stdout == "", status.stdout
    staged = subprocess.run(["git", "show", ":notebooks/b.ipynb"], cwd=repo, capture_output=True, check=True).stdout
    assert staged == committed
    assert _check(repo).returncode == 0


def test_the_filter_passes_what_is_not_a_notebook_through_unchanged(repo):
    for text in ("not json {", "[1, 2]", '{"cells": 3}'):
        done = subprocess.run([sys.executable, str(repo / "tools" / CHECK.name), "--filter"], input=text,
                              capture_output=True, text=True)
        assert done.returncode == 0 and done.stdout == text


def test_clean_check_names_an_injected_parameters_cell_and_strip_removes_it(repo):
    notebook = _notebook(outputs=False)
    notebook.cells.insert(0, nbformat.v4.new_code_cell("# Parameters\nseed = 7", metadata={"tags": ["injected-parameters"]}))
    notebook.cells[1].metadata["tags"] = []
    nbformat.write(notebook, repo / "notebooks" / "a.ipynb")
    dirty = _check(repo, "--worktree")
    assert dirty.returncode == 1 and "cell 0: papermill's injected parameters" in dirty.stdout
    assert _check(repo, "--strip").returncode == 0
    cells = json.loads((repo / "notebooks" / "a.ipynb").read_text())["cells"]
    assert ["".join(c["source"]) for c in cells] == ["1 + 1"] and cells[0]["metadata"] == {}
