"""Seeds and settings are checked before any work: a sweep refuses a bad seed, fold seed
or GPU share before Ray starts, and notebook 04 checks its settings before it reads the
fold (`-p seed -1` gave a 39-line numpy traceback from load_fold)."""

import json
from pathlib import Path

import pytest

import data_prep
from emodarts_core.config import ConfigError
from emodarts_core.study.sweep import cli, cluster, load_params, run_sweep

NOTEBOOK_04 = Path(__file__).resolve().parents[1] / "notebooks" / "04_retrain.ipynb"
PARAMS = {"network": {"preset": "smoke"}, "search": {"epochs": 1}, "train": {"epochs": 1}}


@pytest.fixture
def no_ray(monkeypatch):
    """Fail the test if the sweep gets as far as starting (or joining) Ray."""
    def started(*args, **kwargs):
        raise AssertionError("Ray was started before the arguments were checked")
    monkeypatch.setattr(cluster, "init_ray", started)


@pytest.mark.parametrize("kwargs, message", [
    (dict(seeds=[2 ** 64]), r"seeds are integers >= 0 \(an integer in \[0, 4294967295\]\), got 18446744073709551616"),
    (dict(seeds=[-1]), "seeds are integers >= 0"),
    (dict(gpus_per_task=float("nan")), "gpus_per_task must be 'auto' or a number >= 0, got nan"),
    (dict(gpus_per_task="inf"), "gpus_per_task must be"),
    (dict(params={**PARAMS, "fold_seed": -1}), r"fold_seed must be an integer in \[0, 4294967295\], got -1"),
    (dict(params={**PARAMS, "fold_seed": 2 ** 64}), "fold_seed must be"),
    (dict(params={**PARAMS, "fold_seed": True}), "fold_seed must be"),
])
def test_a_sweep_refuses_bad_seeds_and_gpu_shares_before_ray_starts(tmp_path, no_ray, kwargs, message):
    request = dict(datasets=["synthetic"], folds=[1], scopes=["emodarts"], baselines=[], params=PARAMS,
                   results_dir=tmp_path / "results", progress=False) | kwargs
    with pytest.raises(ConfigError, match=message):
        run_sweep(**request)
    assert not (tmp_path / "results").exists()


def test_the_sweep_command_says_so_in_one_line(tmp_path, no_ray, capsys):
    params = tmp_path / "p.json"
    params.write_text(json.dumps(PARAMS))
    code = cli.main(["--datasets", "synthetic", "--folds", "1", "--scopes", "emodarts", "--params", str(params),
                     "--results", str(tmp_path / "results"), "--gpus-per-task", "nan", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.strip().splitlines() == ["error: gpus_per_task must be 'auto' or a number >= 0, got 'nan'"]


def test_load_params_checks_the_fold_seed():
    assert load_params({**PARAMS, "fold_seed": 4294967295}).fold_seed == 4294967295
    with pytest.raises(ConfigError, match="fold_seed"):
        load_params({**PARAMS, "fold_seed": "3"})


def _cells_until_the_fold_is_read(notebook: Path) -> tuple[str, list[str]]:
    """The notebook's parameters cell and its code cells up to the one that calls load_fold."""
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    parameters = next(c for c in code if "parameters" in c.get("metadata", {}).get("tags", []))
    rest = code[code.index(parameters) + 1:]
    last = next(i for i, c in enumerate(rest) if "load_fold(" in "".join(c["source"]))
    return "".join(parameters["source"]), ["".join(c["source"]) for c in rest[:last + 1]]


@pytest.mark.parametrize("override, message", [("seed = -1", "seed must be an integer"),
                                               ("epochs = True", "epochs must be"),
                                               ("model = 'cnn'\ninit_channels = 100000", "init_channels must be")])
def test_notebook_04_checks_its_settings_before_reading_the_fold(monkeypatch, override, message):
    def read_fold(*args, **kwargs):
        raise AssertionError("load_fold ran before the settings were checked")
    monkeypatch.setattr(data_prep, "load_fold", read_fold)
    parameters, cells = _cells_until_the_fold_is_read(NOTEBOOK_04)
    namespace = {}
    exec(parameters + "\n" + override, namespace)  # papermill injects `-p` values after the parameters cell
    with pytest.raises(ConfigError, match=message):
        for source in cells:
            exec(source, namespace)


@pytest.mark.parametrize("seed", [-1, 2 ** 32, 1.5, True, "0"])
def test_load_fold_checks_its_seed_before_any_work(tmp_path, seed):
    """Every notebook reads its fold with load_fold(..., seed=seed): a bad seed fails before
    the corpus is read, with one line, instead of a numpy traceback from the split."""
    with pytest.raises(data_prep.DataError, match=r"seed must be an integer in \[0, 4294967295\]"):
        data_prep.load_fold("emodb", tmp_path / "no corpus here", 1, seed=seed)
    assert not (tmp_path / "no corpus here").exists()
