"""environment.yml (conda) and pyproject.toml (pip) declare the same packages: a package added
to one and not the other installs on one path and fails on the other."""

import re
import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
#: conda-forge's names for packages whose PyPI name differs.
CONDA_TO_PYPI = {"pytorch": "torch", "pysoundfile": "soundfile", "ray-default": "ray"}
#: What a conda environment needs that is no package of the project's.
CONDA_ONLY = {"python", "pip"}


def _name(requirement: str) -> str:
    return re.match(r"\s*([A-Za-z0-9_.-]+)", requirement).group(1).lower().replace("_", "-")


def pyproject_packages() -> set[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    requirements = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        requirements += extra
    return {_name(r) for r in requirements if _name(r) != project["name"]}


def environment_packages() -> set[str]:
    names = set()
    for item in yaml.safe_load((REPO / "environment.yml").read_text(encoding="utf-8"))["dependencies"]:
        if isinstance(item, dict):
            names |= {_name(r) for r in item.get("pip", []) if not r.startswith("-e")}
        else:
            names.add(CONDA_TO_PYPI.get(_name(item), _name(item)))
    return names - CONDA_ONLY


def test_environment_yml_and_pyproject_toml_declare_the_same_packages():
    conda, pip = environment_packages(), pyproject_packages()
    assert not pip - conda, f"in pyproject.toml, missing from environment.yml: {sorted(pip - conda)}"
    assert not conda - pip, f"in environment.yml, missing from pyproject.toml: {sorted(conda - pip)}"


def test_the_package_names_are_read_as_written():
    assert _name("torch>=2.3  # comment") == "torch" and _name("ray-default>=2.9,<3") == "ray-default"
    assert _name("scikit_learn[all]>=1") == "scikit-learn"
    assert {"torch", "scipy", "scikit-learn", "opensmile", "seaborn", "pyarrow"} <= pyproject_packages()
