"""The prose of notebooks 01 and 03 quotes no figure of a run: what a run measured (its α
steps, lifts, the collapse table) is printed by the code that ran, so that the text stays
true for `make demo`'s profile, the notebook's defaults and a user's own settings. The
paper's sections are cited one way, as the paper numbers them (§III, §IV-A, §VI-B)."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
RUN_FIGURES = [
    # a budget in α steps (the run prints `search budget: ...`); DARTS's own "20 000" is literature
    re.compile(r"(?<!\d )(?<!\d)\d+\s*α steps"),
    re.compile(r"\blifts?\b[^.\n]{0,20}?\d"),  # a lift's value
    re.compile(r"\d+/\d+\s*`?skip_connect"),  # a count of skip edges from the collapse table
    re.compile(r"margin (of )?(about )?\d"),
]


def _prose(name: str) -> str:
    notebook = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", 4)
    markdown = [c.source for c in notebook.cells if c.cell_type == "markdown"]
    comments = [line.split("#", 1)[1] for c in notebook.cells if c.cell_type == "code"
                for line in c.source.splitlines() if "#" in line]
    return "\n".join(markdown + comments)


@pytest.mark.parametrize("name", ["01_features", "03_search"])
def test_notebook_prose_quotes_no_figure_of_a_run(name):
    prose = _prose(name)
    for pattern in RUN_FIGURES:
        assert not pattern.search(prose), f"{name}: {pattern.search(prose).group(0)!r} belongs in the run's output"


@pytest.mark.parametrize("name", ["01_features", "03_search"])
def test_notebook_cites_the_papers_sections_as_the_paper_numbers_them(name):
    prose = _prose(name)
    assert not re.search(r"[Ss]ection \d", prose), re.search(r"[Ss]ection \d.{0,20}", prose).group(0)
    cited = set(re.findall(r"§([IVX]+(?:-[A-Z])?)", prose))
    assert cited, name
    assert cited <= {"I", "II", "III", "IV", "IV-A", "IV-B", "IV-C", "V", "V-A", "V-B", "V-C", "VI", "VI-A", "VI-B",
                     "VI-C", "VII"}, cited
