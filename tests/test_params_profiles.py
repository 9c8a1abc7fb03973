"""The notebook parameter profiles (`emodarts_core/params/*.yaml`) say only what the notebooks take.

papermill passes unknown keys on with a warning and nothing else, so a misspelt key
(`epoch: 3`) would leave a notebook at its default without anyone noticing. Each key of a
notebook profile must be a parameter of at least one notebook, and the network and
search settings it gives must validate.
"""

import ast
import dataclasses
import json
from pathlib import Path

import pytest

from emodarts_core import params
from emodarts_core.config import NetworkConfig, SearchConfig

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOK_PROFILES = ["ci", "cpu", "classroom", "demo", "paper", "paper_emodb", "paper_iemocap", "paper_msp_improv",
                     "paper_msp_podcast"]


def notebook_parameters() -> dict[str, set[str]]:
    """Each notebook's parameter names: the assignments of its cell tagged `parameters`."""
    out = {}
    for path in sorted(NOTEBOOKS.glob("[0-9]*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        source = next("".join(c["source"]) for c in cells if "parameters" in c.get("metadata", {}).get("tags", []))
        names = set()
        for node in ast.parse(source).body:
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    elts = target.elts if isinstance(target, ast.Tuple) else [target]
                    names |= {t.id for t in elts if isinstance(t, ast.Name)}
        out[path.stem] = names
    return out


def test_every_notebook_profile_is_installed():
    assert set(NOTEBOOK_PROFILES) <= set(params.names())


def unknown_keys(values: dict) -> list[str]:
    return sorted(set(values) - set().union(*notebook_parameters().values()))


@pytest.mark.parametrize("profile", NOTEBOOK_PROFILES)
def test_profile_keys_are_notebook_parameters_and_validate(profile):
    values = params.load(profile)
    assert not unknown_keys(values), f"{profile}.yaml: not a parameter of any notebook: {unknown_keys(values)}"
    net = {f.name for f in dataclasses.fields(NetworkConfig)}
    search = {f.name for f in dataclasses.fields(SearchConfig)}
    NetworkConfig(**{k: v for k, v in values.items() if k in net}).validate()
    SearchConfig(**{k: v for k, v in values.items() if k in search}).validate()


def test_a_misspelt_key_is_caught():
    assert unknown_keys({"epochs": 3, "epoch": 3, "height": 8}) == ["epoch"]  # height: a tuple target in 02


NOTEBOOK_PATHS = sorted(NOTEBOOKS.glob("[0-9]*.ipynb"))


@pytest.mark.parametrize("profile", NOTEBOOK_PROFILES)
def test_a_profile_for_one_notebook_holds_exactly_that_notebooks_keys(profile):
    for notebook in NOTEBOOK_PATHS:
        own = params.for_notebook(profile, notebook)
        assert set(own) == set(params.load(profile)) & notebook_parameters()[notebook.stem], notebook.stem
        assert params.notebook_parameters(notebook) == notebook_parameters()[notebook.stem]


def test_the_smoke_copies_pass_no_key_their_notebook_lacks(tmp_path):
    import sys
    sys.path.insert(0, str(NOTEBOOKS.parent / "tools"))
    from prepare_smoke_notebooks import smoke_parameters
    for name, values in smoke_parameters(tmp_path).items():
        assert set(values) <= notebook_parameters()[name], (name, set(values) - notebook_parameters()[name])


def test_papermill_warns_only_about_a_real_typo(tmp_path, monkeypatch, caplog, capsys):
    """With the per-notebook file, papermill's unknown-parameter warning is silent; a
    misspelt key in it is the one warning."""
    import logging

    import papermill
    import yaml
    monkeypatch.setenv("EMODARTS_CACHE", str(tmp_path / "cache"))
    notebook = NOTEBOOKS / "03_search.ipynb"
    assert params.main(["ci", "--notebook", str(notebook)]) == 0
    own = Path(capsys.readouterr().out.strip())
    assert own.is_relative_to(tmp_path / "cache") and yaml.safe_load(own.read_text()) == params.for_notebook(
        "ci", notebook)
    with caplog.at_level(logging.WARNING, logger="papermill"):
        papermill.execute_notebook(notebook, tmp_path / "out.ipynb", parameters=yaml.safe_load(own.read_text()),
                                   prepare_only=True, progress_bar=False)
    assert "unknown parameter" not in caplog.text
    with caplog.at_level(logging.WARNING, logger="papermill"):
        papermill.execute_notebook(notebook, tmp_path / "out.ipynb", parameters={**params.for_notebook("ci", notebook),
                                                                                 "epoch": 1},
                                   prepare_only=True, progress_bar=False)
    assert "Passed unknown parameter: epoch" in caplog.text
