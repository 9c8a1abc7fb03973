"""The parameter files, installed with the package: `path("ci")`, `load("cpu")`, `names()`.

They live here as package data so that a notebook or a sweep finds them wherever it runs
(an installed wheel, Colab, Binder, a folder outside the repository), without looking
for the repository. Papermill takes one with `-f`:

    papermill 03_search.ipynb out.ipynb -f "$(python -m emodarts_core.params ci)"

- `ci.yaml`: CI's tiny settings; every notebook runs in seconds on the generated corpus.
- `cpu.yaml`: the notebooks on a 2-core CPU.
- `classroom.yaml`: a lesson: each notebook in at most 3 minutes on a 2-core CPU
  (timed with tools/time_notebooks.py).
- `paper.yaml`, `paper_<dataset>.yaml`: the paper's settings (a GPU in practice).
- `sweep_*.yaml`, `study_emodb.yaml`: profiles for `python -m emodarts_core.sweep --params NAME`.
"""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path

import yaml


def names() -> list[str]:
    """The names of the installed parameter files (without `.yaml`), sorted."""
    return sorted(entry.name[:-5] for entry in resources.files(__name__).iterdir() if entry.name.endswith(".yaml"))


def path(name: str) -> Path:
    """The file of parameter set `name` (`"ci"` or `"ci.yaml"`); KeyError lists the known names.

    Wheels and editable installs unpack package data as plain files, so the path can be
    handed to papermill (`-f`) or to the sweep as is."""
    stem = name[:-5] if name.endswith(".yaml") else name
    entry = resources.files(__name__) / f"{stem}.yaml"
    if not entry.is_file():
        raise KeyError(f"no parameter file {stem!r}; known: {', '.join(names())}")
    return Path(str(entry))


def load(name: str) -> dict:
    """Parameter set `name` as a dict (what papermill's `-f` would pass)."""
    return yaml.safe_load(path(name).read_text(encoding="utf-8")) or {}


def main(argv: list[str] | None = None) -> int:
    """`python -m emodarts_core.params [NAME ...]`: print each file's path, or list them all."""
    args = sys.argv[1:] if argv is None else argv
    try:
        for name in args or names():
            print(path(name))
    except KeyError as error:
        print(error.args[0], file=sys.stderr)
        return 2
    return 0
