"""The notebooks' exercises: every self-check rejects a wrong answer and the unanswered
placeholder, and accepts the worked solution of notebooks/solutions/.

Each exercise is taken from the notebook itself: its answer cell (the placeholders) and its
self-check cell (one call of `emodarts_core.teaching.exercises`) run in a namespace that
holds, at a tiny size, the objects the notebook has made by then (a fold, a search run, a
retraining run, a study). The solution's code block from `notebooks/solutions/<name>.md`
runs in place of the answer, so a solution or a check that goes stale fails here.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from data_prep.features import default_config, mfcc_matrix
from data_prep.folds import make_folds
from data_prep.toy import toy_fold
from emodarts_core.config import SearchConfig, TrainConfig, preset
from emodarts_core.darts.collapse import DEMO_NETWORK, DEMO_SEARCH, demo_fold
from emodarts_core.darts.search import run_search
from emodarts_core.space.cells import MixedOp
from emodarts_core.space.genotypes import parse
from emodarts_core.space.search_network import SearchNetwork
from emodarts_core.space.search_space import CNN_PRIMITIVES
from emodarts_core.study import results, stats
from emodarts_core.teaching import exercises
from emodarts_core.training.train import run_retrain

from loop_helpers import single_thread  # noqa: F401  (one torch thread for this module)

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = tuple(exercises.CHECKS)


def _source(cell) -> str:
    return "".join(cell["source"])


def _cells(name: str) -> list[dict]:
    return json.loads((ROOT / "notebooks" / f"{name}.ipynb").read_text(encoding="utf-8"))["cells"]


def exercise_cells(name: str) -> list[tuple[str, str]]:
    """(answer cell, self-check cell) sources of the notebook's exercises, in order."""
    cells = _cells(name)
    answers = [_source(c) for c in cells if "exercise-answer" in c.get("metadata", {}).get("tags", [])]
    checks = [_source(c) for c in cells if "exercise-check" in c.get("metadata", {}).get("tags", [])]
    assert len(answers) == len(checks), name
    return list(zip(answers, checks))


def solution_blocks(name: str) -> list[str]:
    """The python block of each '## Exercise N' section of notebooks/solutions/<name>.md."""
    text = (ROOT / "notebooks" / "solutions" / f"{name}.md").read_text(encoding="utf-8")
    sections = re.split(r"^## Exercise (\d+)\b.*$", text, flags=re.M)[1:]
    blocks = {}
    for number, body in zip(sections[::2], sections[1::2]):
        code = re.findall(r"```python\n(.*?)```", body, flags=re.S)
        assert len(code) == 1, f"{name} exercise {number}: one python block expected"
        blocks[int(number)] = code[0]
    assert sorted(blocks) == list(range(1, len(blocks) + 1)), name
    return [blocks[i] for i in sorted(blocks)]


def _check(namespace: dict, source: str) -> exercises.Verdict:
    verdict = eval(compile(source.strip(), "<self-check cell>", "eval"), namespace)
    assert isinstance(verdict, exercises.Verdict)
    return verdict


# --------------------------------------------------------------------------- notebook namespaces

@pytest.fixture(scope="module")
def ns_01():
    """An EmoDB-shaped store (10 speakers, one utterance per class each), its folds, a fold."""
    males, females = ["03", "10", "11", "12", "15"], ["08", "09", "13", "14", "16"]
    speakers = [s for s in males + females for _ in range(4)]
    store = SimpleNamespace(corpus="emodb", speakers=speakers, genders=["M" if s in males else "F" for s in speakers],
                            sessions=[None] * len(speakers), y=np.tile(np.arange(4), 10),
                            ids=[f"{s}_{i}" for i, s in enumerate(speakers)])
    return {"np": np, "feature_cfg": default_config("synthetic"), "store": store, "seed": 0,
            "folds": make_folds(store, seed=0), "fold_data": toy_fold()}


@pytest.fixture(scope="module")
def ns_02():
    """The reference mixed op after a training-mode pass (as the notebook leaves it), its
    input, and a memory table."""
    torch.manual_seed(0)
    mixed = MixedOp(2, stride=1, primitives=CNN_PRIMITIVES)
    x = torch.randn(1, 2, 8, 8)
    with torch.no_grad():
        mixed.train()(x, F.softmax(torch.zeros(len(CNN_PRIMITIVES)), dim=-1))
    cnn_mem = pd.DataFrame({"op": CNN_PRIMITIVES[1:], "activation MiB": np.linspace(0.5, 4.0, len(CNN_PRIMITIVES) - 1)})
    return {"np": np, "torch": torch, "F": F, "CNN_PRIMITIVES": CNN_PRIMITIVES, "parse": parse,
            "mixed": mixed.eval(), "x": x, "cnn_mem": cnn_mem}


@pytest.fixture(scope="module")
def ns_03(tmp_path_factory):
    """A finished one-epoch search of the smoke space on the toy fold, as the notebook's."""
    runs = tmp_path_factory.mktemp("runs03")
    fold_data, net_cfg = toy_fold(), preset("smoke", input_size=(16, 16))
    search_cfg = SearchConfig(epochs=1, batch_size=4, device="cpu", seed=0, progress=False)
    run_path = runs / "search_main"
    result = run_search(fold_data, net_cfg, search_cfg, run_path)
    return {"np": np, "Path": Path, "fold_data": fold_data, "net_cfg": net_cfg, "search_cfg": search_cfg,
            "run_path": run_path, "result": result, "run_search": run_search, "SearchConfig": SearchConfig,
            "SearchNetwork": SearchNetwork, "preset": preset, "DEMO_NETWORK": DEMO_NETWORK,
            "DEMO_SEARCH": DEMO_SEARCH, "demo_fold": demo_fold}


@pytest.fixture(scope="module")
def ns_04(tmp_path_factory):
    """A finished two-epoch retraining of an (untrained) genotype on the toy fold."""
    runs = tmp_path_factory.mktemp("runs04")
    fold_data, net_cfg = toy_fold(), preset("smoke", input_size=(16, 16))
    torch.manual_seed(0)
    genotype = SearchNetwork(net_cfg).genotype()
    train_cfg = TrainConfig(epochs=2, batch_size=4, device="cpu", seed=0, progress=False)
    run_path = runs / "retrain_main"
    result = run_retrain(fold_data, genotype, net_cfg, train_cfg, run_path)
    return {"np": np, "pd": pd, "Path": Path, "fold_data": fold_data, "net_cfg": net_cfg, "train_cfg": train_cfg,
            "run_path": run_path, "result": result, "history": pd.DataFrame(result.history),
            "run_retrain": run_retrain}


def _study_run(root: Path, protocol: str, model: str, fold: int, ua: float, arch: int | None = None,
               seed: int = 0) -> None:
    """A finished study retraining: config.json with its "study" entry and a result.json."""
    path = root / model / f"fold{fold}" / f"seed{seed}" / (f"arch{arch}" if arch is not None else f"retrain-{protocol}")
    path.mkdir(parents=True)
    study = {"dataset": "emodb", "protocol": protocol, "model": model, "scope": "emodarts", "fold": fold,
             "seed": seed, "arch": arch}
    (path / "config.json").write_text(json.dumps({"kind": "retrain", "study": study}))
    correct = round(10 * ua)
    confusion = [[correct, 10 - correct], [10 - correct, correct]]
    (path / "result.json").write_text(json.dumps({"test_ua": ua, "test_wa": ua, "confusion": confusion,
                                                  "params": 1000, "n_test": 20}))


@pytest.fixture(scope="module")
def ns_05(tmp_path_factory):
    """A study like the committed one: 5 folds x 3 seeds (15 cells), emoDARTS and two random
    architectures per cell, two protocols; the sign of emoDARTS' lead varies from cell to cell."""
    root = tmp_path_factory.mktemp("study05")
    for protocol, gap in (("full", 0.02), ("paper", -0.02)):
        for fold in range(1, 6):
            for seed in range(3):
                ua = 0.5 + 0.05 * fold + 0.01 * seed
                swing = 0.1 if (fold + seed) % 2 else -0.1
                _study_run(root / protocol, protocol, "emodarts", fold, ua, seed=seed)
                for arch in range(2):
                    _study_run(root / protocol, protocol, "random", fold, ua - gap + swing, arch, seed=seed)
    return {"np": np, "pd": pd, "results": results, "stats": stats, "folds": 5, "study": results.collect_study(root)}


@pytest.fixture(scope="module")
def ns_06(tmp_path_factory):
    """Notebook 06's objects at a tiny size: two searches and their consensus, three random
    architectures scored in the supernet and retrained under full (with their test traces),
    and a perturbation selection without fine-tuning."""
    from emodarts_core.darts import subnet
    from emodarts_core.darts.perturbation import PerturbationConfig, select_by_perturbation
    from emodarts_core.space.sampling import random_genotypes
    from emodarts_core.study import consensus, ranking, stability
    from emodarts_core.training.optimism_trace import read_trace

    runs = tmp_path_factory.mktemp("runs06")
    fold_data, net_cfg = toy_fold(), preset("smoke", input_size=(16, 16), scope="rnn_att_only")
    search_cfg = SearchConfig(epochs=1, batch_size=4, device="cpu", seed=0, progress=False, alpha_lr=0.05,
                              warmup_epochs=0)
    train_cfg = TrainConfig(epochs=2, batch_size=4, device="cpu", seed=0, progress=False, protocol="full")
    searches = [run_search(fold_data, net_cfg, dataclasses.replace(search_cfg, seed=s), runs / f"s{s}")
                for s in (0, 1)]
    consensus_genotype = consensus.consensus_genotype([consensus.final_probs(r.run_dir) for r in searches], net_cfg)
    archs = {f"arch{k}": g for k, g in enumerate(random_genotypes(net_cfg, 3, seed=0, fold=1))}
    scores = pd.DataFrame(ranking.rank_supernet(searches[0].run_dir, fold_data, archs, runs / "ranking.json",
                                                modes=("batch",), recal_batches=1))
    stand_alone = {k: 100 * run_retrain(fold_data, g, net_cfg, train_cfg, runs / k).test_ua for k, g in archs.items()}
    scores["test_ua_full"] = scores["arch"].map(stand_alone)
    model = subnet.load_supernet(net_cfg, ranking.supernet_state(searches[0].run_dir), torch.device("cpu"))
    pt_genotype, _ = select_by_perturbation(model, fold_data, net_cfg, search_cfg, runs / "selection",
                                            PerturbationConfig(tune_epochs=0))
    return {"np": np, "pd": pd, "stability": stability, "consensus_genotype": consensus_genotype,
            "seed_genotypes": [r.genotype.to_dict() for r in searches], "batch": scores.sort_values("arch"),
            "alpha_genotype": searches[0].genotype, "pt_genotype": pt_genotype,
            "stand_alone": stand_alone, "traces": {k: read_trace(runs / k) for k in archs}}


# --------------------------------------------------------------------------- wrong answers

#: Per notebook, per exercise: code run after the answer cell that gives a wrong answer.
WRONG = {
    "01_features": [
        "column_ms = 1000 * feature_cfg.duration_s / feature_cfg.n_frames\naudio_columns = 128",
        "test_speakers = folds[k % len(folds)].test_speakers\nwhy = 'b'",
        "wa_percent = 100.0\nua_percent = 100.0",
    ],
    "02_mixed_op_relaxation": [
        "alpha_exercise = np.zeros(9)\nalpha_exercise[CNN_PRIMITIVES.index('sep_conv_5x5')] = 3.0",
        "with torch.no_grad():\n"
        "    mean_of_ops = torch.stack([op(x) for n, op in mixed.ops.items() if n != 'none']).mean(0)\n"
        "uniform_output = mean_of_ops",
        "edges = 2 * nodes\nmib = edges * cnn_mem['activation MiB'].sum()",
    ],
    "03_search": [
        "n_alpha = 1",
        "rnn_run_dir = run_path\nrnn_seq_ops = set()\nrnn_collapsed = False",
        "collapsed_dir = run_path\nfixed_dir = run_path",
    ],
    "04_retrain": [
        "baseline_dir = run_path\nua_difference = 0.0",
        "selected_epoch = 99\nselection_speakers = list(fold_data.fold.test_speakers)\nwhy = 'b'",
        "ua_percent = 0.5\nwa_percent = 101.0",
    ],
    "05_paper_figures": [
        "p_by_hand = 0.0625",
        "seeds_needed = 1",
        "p_random = 0.5\nmeaning = 'c'",
    ],
    "06_does_the_search_help": [
        "share = 1.5",
        "tau = 2.0",
        "pt_share = -1.0",
        "gap = -50.0",
    ],
}

CASES = [(name, i) for name in NOTEBOOKS for i in range(len(exercises.CHECKS[name]))]
#: Solutions that run more than a few seconds of search (03.3: two searches of the collapse demo's size).
SLOW = {("03_search", 2)}


def _namespace(request, name: str) -> dict:
    return dict(request.getfixturevalue(f"ns_{name[:2]}"), exercises=exercises)


# --------------------------------------------------------------------------- the tests

def test_every_notebook_ends_with_its_exercises():
    """2-4 exercises per notebook, after an "Exercises" heading; each answer cell is followed
    by a self-check cell that calls the notebook's check for it; no solution in the notebook."""
    for name in NOTEBOOKS:
        cells = _cells(name)
        heading = next(i for i, c in enumerate(cells) if _source(c).startswith("## Exercises"))
        assert heading > 1 and all(c["cell_type"] == "markdown" or c["id"].startswith("exercise")
                                   for c in cells[heading:])
        pairs = exercise_cells(name)
        assert 2 <= len(pairs) <= 4 and len(pairs) == len(exercises.CHECKS[name]) == len(solution_blocks(name))
        for (answer, check), fn in zip(pairs, exercises.CHECKS[name]):
            assert re.fullmatch(rf"exercises\.{fn.__name__}\([^()]*\)", check.strip()), check
            assert "None" in answer
        for answer, _ in pairs:  # the notebook never gives an answer variable a value but None
            for var in re.findall(r"^(\w+) = None", answer, flags=re.M):
                given = [line for c in cells for line in _source(c).splitlines()
                         if re.match(rf"\s*{var}\s*=(?!=)(?!\s*None\b)", line)]
                assert not given, f"{name}: the notebook answers {var}: {given}"


def test_choice_options_shown_in_the_notebooks_are_the_checked_ones():
    text = "\n".join(_source(c) for name in NOTEBOOKS for c in _cells(name))
    for key in exercises.CHOICES:
        assert exercises.choice_text(key) in text, key


@pytest.mark.parametrize("name,index", CASES, ids=[f"{n[:2]}.{i + 1}" for n, i in CASES])
def test_unanswered_placeholder_says_so_and_does_not_raise(request, name, index):
    ns = _namespace(request, name)
    answer, check = exercise_cells(name)[index]
    exec(answer, ns)
    verdict = _check(ns, check)
    assert verdict.status == exercises.UNANSWERED and not verdict.passed
    assert "not answered yet" in str(verdict)


@pytest.mark.parametrize("name,index", CASES, ids=[f"{n[:2]}.{i + 1}" for n, i in CASES])
def test_wrong_answer_is_rejected_with_a_reason(request, name, index):
    ns = _namespace(request, name)
    answer, check = exercise_cells(name)[index]
    exec(answer, ns)
    exec(WRONG[name][index], ns)
    verdict = _check(ns, check)
    assert verdict.status == exercises.INCORRECT, str(verdict)
    assert "✗" in str(verdict)


@pytest.mark.parametrize("name,index", [pytest.param(n, i, marks=[pytest.mark.slow] if (n, i) in SLOW else [])
                                        for n, i in CASES], ids=[f"{n[:2]}.{i + 1}" for n, i in CASES])
@pytest.mark.filterwarnings("ignore::emodarts_core.darts.search.CollapseWarning")  # 03.3 collapses on purpose
def test_solution_is_accepted(request, name, index, tmp_path, monkeypatch):
    """The solution's block, run in place of the answer, passes the notebook's self-check."""
    monkeypatch.chdir(tmp_path)
    ns = _namespace(request, name)
    answer, check = exercise_cells(name)[index]
    exec(answer, ns)
    exec(solution_blocks(name)[index], ns)
    verdict = _check(ns, check)
    assert verdict.passed, str(verdict)


def test_partial_and_malformed_answers_are_verdicts_not_errors(ns_01):
    ns = dict(ns_01, exercises=exercises)
    half = exercises.check_column_time(ns["feature_cfg"], 1.2, 1000 * ns["feature_cfg"].hop_length
                                       * ns["feature_cfg"].time_pool / ns["feature_cfg"].sample_rate, None)
    assert half.status == exercises.INCOMPLETE and "audio_columns" in str(half)
    garbled = exercises.check_column_time(ns["feature_cfg"], 1.2, "fast", [1, 2])
    assert garbled.status == exercises.INCORRECT and "could not be checked" in str(garbled)
    missing = exercises.check_rnn_only_search(None, "/nonexistent/run", {"rnn_1"}, False)
    assert missing.status == exercises.INCORRECT and "not a run directory" in str(missing)
    choice = exercises.check_fold_test_speakers(ns["store"], 3, 0, ns["folds"][2].test_speakers, "z")
    assert choice.status == exercises.INCORRECT and "'a'" in str(choice)


def test_study_p_without_a_study_checks_only_the_meaning():
    """Notebook 05 on a folder without a study (the smoke run): the p-value cannot be
    checked there, and the verdict says so instead of failing."""
    empty = pd.DataFrame(columns=[*results.STUDY_COLUMNS, "confusion"])
    verdict = exercises.check_study_p(empty, 0.0625, "b")
    assert verdict.status == exercises.UNCHECKABLE and "results/emodb" in str(verdict)
    assert exercises.check_study_p(empty, 0.0625, "a").status == exercises.INCORRECT


def _fake_search(path: Path, net_cfg, search_cfg, fold_data, seq_ops: list[str]) -> Path:
    """A finished search run directory as run_search leaves it, without searching."""
    from emodarts_core.config import to_dict
    from emodarts_core.space.genotypes import Genotype, save
    from emodarts_core.training.loop import describe_fold

    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"kind": "search", "network": to_dict(net_cfg),
                                                  "search": to_dict(search_cfg), "data": describe_fold(fold_data)}))
    (path / "FINISHED").write_text("{}")
    cnn = [("sep_conv_3x3", 0), ("skip_connect", 1)] * net_cfg.nodes
    seq = [(op, j % 2) for j, op in enumerate(seq_ops)]
    save(Genotype(cnn, list(range(2, 2 + net_cfg.nodes)), cnn, list(range(2, 2 + net_cfg.nodes)), seq,
                  list(range(2, 2 + net_cfg.seq_nodes))), path / "genotype.json")
    return path


def test_collapse_exercise_wants_a_setting_of_ones_own_and_only_the_remedy_changed(tmp_path):
    """The demo's own configuration does not count, and the fixed run may differ from the
    collapsed one in its remedy only."""
    import dataclasses

    net = preset("smoke", **DEMO_NETWORK)
    skips, rnns = ["skip_connect"] * 2 * net.seq_nodes, ["rnn_1"] * 2 * net.seq_nodes
    demo = SearchConfig(**DEMO_SEARCH)
    plain = _fake_search(tmp_path / "demo_none", net, demo, demo_fold(), skips)
    fixed = _fake_search(tmp_path / "demo_cap", net, dataclasses.replace(demo, collapse_remedy="skip_cap"),
                         demo_fold(), rnns)
    verdict = exercises.check_collapse_and_fix(plain, fixed)
    assert verdict.status == exercises.INCORRECT and "demo configuration" in str(verdict)
    own = dataclasses.replace(demo, seed=7)
    plain = _fake_search(tmp_path / "own_none", net, own, demo_fold(), skips)
    fixed = _fake_search(tmp_path / "own_cap", net, dataclasses.replace(own, collapse_remedy="skip_cap"),
                         demo_fold(), rnns)
    assert exercises.check_collapse_and_fix(plain, fixed).passed
    longer = _fake_search(tmp_path / "own_cap_longer", net,
                          dataclasses.replace(own, collapse_remedy="skip_cap", epochs=20), demo_fold(), rnns)
    verdict = exercises.check_collapse_and_fix(plain, longer)
    assert verdict.status == exercises.INCORRECT and "search.epochs" in str(verdict)
    assert not exercises.check_collapse_and_fix(fixed, plain).passed  # swapped: neither side holds


def test_column_count_matches_the_padding_in_real_features():
    """The reference of exercise 01.1 describes the features: column audio_columns - 1 holds
    the utterance, and every column whose frames' windows all start after it is padding."""
    cfg = default_config("synthetic")
    for seconds in (0.4, 1.2):
        t = np.arange(int(round(seconds * cfg.sample_rate))) / cfg.sample_rate
        X = mfcc_matrix((0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), cfg)
        step = cfg.hop_length * cfg.time_pool
        columns = math.ceil(len(t) / step)
        verdict = exercises.check_column_time(cfg, seconds, 1000 * step / cfg.sample_rate, columns)
        assert verdict.passed, str(verdict)
        silent = X[:, -1]
        first_padding = math.ceil((len(t) + cfg.n_fft // 2) / step)
        assert not np.allclose(X[:, columns - 1], silent)
        assert np.allclose(X[:, first_padding:], silent[:, None])
