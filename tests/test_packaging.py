"""`pip install -e .` builds quietly and gives a plain path entry (pyproject.toml).

With both packages at the repository's root and no package folder named, setuptools
installs an editable build through a meta path finder and warns about it on every
install (InformationOnly: "Editable installation ... Please be careful with folders
...", and that package-data may have no effect). Naming the root as the package folder
makes it a `.pth` entry holding the repository's root, with no warning.
"""

import os
import shutil
import warnings
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_editable_build_warns_about_nothing_and_is_a_path_entry(tmp_path, monkeypatch):
    from setuptools import build_meta
    project = tmp_path / "project"
    project.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, project)
    for package in ("emodarts_core", "data_prep"):
        shutil.copytree(ROOT / package, project / package, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.chdir(project)
    (project / "dist").mkdir()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        wheel = build_meta.build_editable(str(project / "dist"))
    assert not [f"{w.category.__name__}: {w.message}" for w in caught if "setuptools" in w.filename
                or "Setuptools" in w.category.__name__ or w.category.__name__ == "InformationOnly"]
    with zipfile.ZipFile(project / "dist" / wheel) as whl:
        pth = [n for n in whl.namelist() if n.endswith(".pth")]
        assert len(pth) == 1 and whl.read(pth[0]).decode().strip() == os.fspath(project)
