"""The corpus registry and the store cache (docs/DATA.md).

Where a corpus is: data_dir, then EMODARTS_<NAME>_ROOT (EMODARTS_EMODB for EmoDB), then
the user config file written by `python -m data_prep register`; nothing known is a short
CorpusNotFoundError listing the three ways. Stores of a corpus root go to the cache (a
shared, read-only cache is consulted first), never into the corpus, and created files
and folders follow the umask.
"""

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from data_fixtures import SMALL_CFG, make_emodb
from data_prep import CorpusNotFoundError, DataError, load_fold, resolve
from data_prep.cli import main
from data_prep.prepare import prepare
from data_prep import registry
from data_prep.registry import cached_prepare, config_file
from emodarts_core.training.rundir import RunDir

ROOT = Path(__file__).resolve().parents[1]
ENV_VARS = ("EMODARTS_EMODB", "EMODARTS_EMODB_ROOT", "EMODARTS_IEMOCAP_ROOT", "EMODARTS_SHARED_CACHE")


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Nothing registered, no corpus variables, a private cache and config folder."""
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("EMODARTS_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("EMODARTS_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A tiny EmoDB layout: 10 speakers x the 4 paper classes, one take (40 files)."""
    return make_emodb(tmp_path_factory.mktemp("corpus") / "emodb", letters="WFNT", takes="a")


def _snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (p.stat().st_mode, p.stat().st_size, p.stat().st_mtime_ns)
            for p in [folder, *folder.rglob("*")]}


def test_nothing_registered_is_a_short_error_naming_the_three_ways():
    with pytest.raises(CorpusNotFoundError) as info:
        resolve("iemocap")
    msg = str(info.value)
    assert isinstance(info.value, DataError) and msg.count("\n") < 10
    for part in ("data_dir", "EMODARTS_IEMOCAP_ROOT", "python -m data_prep register iemocap",
                 str(config_file()), "iemocap is licensed", "msp_improv, msp_podcast",
                 "python -m data_prep download emodb"):
        assert part in msg, part
    with pytest.raises(CorpusNotFoundError, match="needs data_dir"):
        load_fold("iemocap", None, 1)  # what notebook 03 and the sweep call
    assert resolve("synthetic").path is None  # the generated corpus needs nothing


def test_resolution_order(tmp_path, monkeypatch):
    dirs = {k: (tmp_path / "corpora" / k) for k in ("arg", "env", "legacy", "config")}
    for d in dirs.values():
        d.mkdir(parents=True)
    config_file().parent.mkdir(parents=True)
    config_file().write_text(json.dumps({"corpora": {"emodb": str(dirs["config"])}}))
    assert resolve("emodb").path == dirs["config"] and resolve("emodb").source.startswith("config file")
    monkeypatch.setenv("EMODARTS_EMODB", str(dirs["legacy"]))  # the variable CI already sets
    assert resolve("emodb").path == dirs["legacy"] and resolve("emodb").source == "environment EMODARTS_EMODB"
    monkeypatch.setenv("EMODARTS_EMODB_ROOT", str(dirs["env"]))
    assert resolve("emodb").path == dirs["env"] and resolve("emodb").source == "environment EMODARTS_EMODB_ROOT"
    assert resolve("emodb", dirs["arg"]).path == dirs["arg"]
    assert resolve("emodb", dirs["arg"]).source == "argument data_dir"
    monkeypatch.setenv("EMODARTS_EMODB_ROOT", str(tmp_path / "moved"))
    with pytest.raises(CorpusNotFoundError, match="EMODARTS_EMODB_ROOT.*does not exist"):
        resolve("emodb")


def test_register_and_list_cli(corpus, tmp_path, capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "iemocap      licensed" in out and "emodb        free" in out and "not set" in out
    assert main(["register", "iemocap", str(corpus)]) == 2  # EmoDB files are no IEMOCAP layout
    assert "no IEMOCAP SessionN folders" in capsys.readouterr().err
    assert not config_file().exists()
    assert main(["register", "emodb", str(corpus)]) == 0
    assert "40 utterances of 10 speakers" in capsys.readouterr().out
    assert json.loads(config_file().read_text())["corpora"]["emodb"] == str(corpus.resolve())
    assert main(["list"]) == 0
    line = next(l for l in capsys.readouterr().out.splitlines() if l.startswith("emodb"))
    assert str(corpus.resolve()) in line and f"config file {config_file()}" in line
    assert resolve("emodb").path == corpus.resolve()
    # the module entry point too, as a user runs it
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "data_prep", "list"], env=env, capture_output=True, text=True)
    assert done.returncode == 0 and str(corpus.resolve()) in done.stdout


def test_load_fold_uses_a_registered_store(corpus, tmp_path):
    store = prepare("emodb", corpus, tmp_path / "store", feature_config=SMALL_CFG, jobs=1, progress=False)
    assert main(["register", "emodb", str(store.path)]) == 0
    fd = load_fold("emodb", None, 2)
    assert fd.fold.test_speakers == ["09", "10"] and len(fd.test) == 8


def test_read_only_corpus_prepares_into_the_cache_and_stays_untouched(corpus, tmp_path, monkeypatch):
    import data_prep.features

    monkeypatch.setattr(data_prep.features, "default_config", lambda corpus, **kw: SMALL_CFG)  # fast
    files = [corpus, *corpus.rglob("*")]
    modes = {p: p.stat().st_mode for p in files}
    for p in files:
        os.chmod(p, modes[p] & ~0o222)
    try:
        before = _snapshot(corpus)
        store = cached_prepare("emodb", corpus, feature_config=SMALL_CFG, jobs=1, progress=False)
        assert _snapshot(corpus) == before  # nothing written, nothing touched
        assert store.path.is_relative_to(tmp_path / "cache" / "stores" / "emodb")
        assert len(store) == 40 and not store.info["reused"]
        again = cached_prepare("emodb", corpus, feature_config=SMALL_CFG, jobs=1, progress=False)
        assert again.info["reused"] and again.path == store.path
        fd = load_fold("emodb", corpus, 2)  # the path notebooks take: the same cached store
        assert len(fd.test) == 8 and _snapshot(corpus) == before
        assert len(list((tmp_path / "cache" / "stores" / "emodb").iterdir())) == 1
    finally:
        for p in files:
            os.chmod(p, modes[p])


def test_shared_cache_is_consulted_first(corpus, tmp_path, monkeypatch):
    teacher = cached_prepare("emodb", corpus, feature_config=SMALL_CFG, jobs=1, progress=False)
    monkeypatch.setenv("EMODARTS_SHARED_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("EMODARTS_CACHE", str(tmp_path / "student"))
    shared = [teacher.path, *teacher.path.rglob("*")]
    modes = {p: p.stat().st_mode for p in shared}
    for p in shared:
        os.chmod(p, modes[p] & ~0o222)  # the class's cache is read-only for students
    try:
        student = cached_prepare("emodb", corpus, feature_config=SMALL_CFG, jobs=1, progress=False, seed=3)
    finally:
        for p in shared:
            os.chmod(p, modes[p])
    assert student.path == teacher.path and student.info["reused"]
    assert not (tmp_path / "student").exists()


@pytest.mark.parametrize("umask", [0o002, 0o077])
def test_created_files_follow_the_umask(corpus, tmp_path, umask):
    old = os.umask(umask)
    try:
        store = prepare("emodb", corpus, tmp_path / "a" / "store", feature_config=SMALL_CFG, jobs=1,
                        progress=False)
        rd = RunDir(tmp_path / "run")
        rd.atomic_write_json("config.json", {"x": 1})
        rd.save_checkpoint({"epoch": 1})
    finally:
        os.umask(old)
    expect_dir, expect_file = 0o777 & ~umask, 0o666 & ~umask
    assert stat.S_IMODE(store.path.stat().st_mode) == expect_dir
    for name in ("X.npy", "store.json", "manifest.json", "manifest.csv", "folds-seed0.json"):
        assert stat.S_IMODE((store.path / name).stat().st_mode) == expect_file, name
    for name in ("config.json", "checkpoint.pt"):
        assert stat.S_IMODE((rd.path / name).stat().st_mode) == expect_file, name


def _register_at(barrier, corpus, path, errors):
    """One `register` of a separate process, started with the others at the barrier."""
    from data_prep.registry import register
    try:
        barrier.wait(timeout=60)
        register(corpus, path)
    except BaseException as exc:  # noqa: BLE001 -- report to the parent, which asserts
        errors.put(f"{corpus}: {exc!r}")


@pytest.fixture(scope="module")
def six_corpora(tmp_path_factory):
    from data_fixtures import make_crema_d, make_iemocap, make_msp_improv, make_msp_podcast, make_ravdess
    base = tmp_path_factory.mktemp("six")
    return {"emodb": make_emodb(base / "emodb", letters="WF", takes="a"), "ravdess": make_ravdess(base / "ravdess"),
            "crema_d": make_crema_d(base / "crema_d"), "iemocap": make_iemocap(base / "iemocap"),
            "msp_improv": make_msp_improv(base / "msp_improv"), "msp_podcast": make_msp_podcast(base / "msp_podcast")}


def test_concurrent_registers_lose_no_entry(six_corpora, tmp_path, monkeypatch):
    """Six processes register six corpora at the same moment, three times over in fresh
    configuration folders: every entry is in the file afterwards (without the lock, a
    read-modify-write lost entries while both commands printed 'registered')."""
    import multiprocessing as mp
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    for trial in range(3):
        monkeypatch.setenv("EMODARTS_CONFIG_DIR", str(tmp_path / f"config{trial}"))
        barrier, errors = ctx.Barrier(len(six_corpora)), ctx.Queue()
        procs = [ctx.Process(target=_register_at, args=(barrier, name, path, errors))
                 for name, path in six_corpora.items()]
        for p in procs:
            p.start()
        for p in procs:
            p.join(120)
        assert all(p.exitcode == 0 for p in procs) and errors.empty(), errors.get_nowait()
        recorded = json.loads(config_file().read_text())["corpora"]
        assert recorded == {name: str(path.resolve()) for name, path in six_corpora.items()}, trial
        assert not list(config_file().parent.glob(".config.json.*"))  # no temporary file left


@pytest.mark.parametrize("text, entry", [('{"corpora": {"emodb": 5}}', "'emodb' is 5"),
                                         ('{"corpora": {"emodb": ""}}', "'emodb' is ''"),
                                         ('{"corpora": {}, "shared_cache": [1]}', "shared_cache is [1]"),
                                         ('{"corpora": [1]}', "not an emodarts configuration")])
def test_a_malformed_entry_is_a_clear_error_naming_the_file(text, entry, corpus, capsys):
    config_file().parent.mkdir(parents=True)
    config_file().write_text(text)
    with pytest.raises(DataError) as info:
        resolve("emodb")
    assert str(config_file()) in str(info.value) and entry in str(info.value)
    assert main(["list"]) == 2  # the CLI says the same in one line, no traceback
    err = capsys.readouterr().err
    assert str(config_file()) in err and "Traceback" not in err


@pytest.mark.parametrize("text", ["{not json", '{"corpora": {"emodb": 5}}'])
def test_a_corrupt_config_does_not_block_the_generated_corpus(text):
    config_file().parent.mkdir(parents=True)
    config_file().write_text(text)
    with pytest.warns(UserWarning, match="ignored for the generated corpus"):
        assert resolve("synthetic").path is None
    with pytest.warns(UserWarning, match="shared_cache is ignored"):
        assert registry.shared_cache_dir() is None
    with pytest.raises(DataError, match=str(config_file())):
        resolve("emodb")  # a real corpus still says the file is broken


def test_unregister_forgets_one_corpus_keeps_the_others_and_the_folder(corpus, tmp_path, capsys, monkeypatch):
    assert main(["register", "emodb", str(corpus)]) == 0
    other = tmp_path / "ravdess"
    registry.update_config(lambda cfg: cfg["corpora"].__setitem__("ravdess", str(other)))
    capsys.readouterr()
    before = _snapshot(corpus)
    assert main(["unregister", "emodb"]) == 0
    out = capsys.readouterr().out
    assert f"unregistered emodb: {corpus.resolve()}" in out and str(config_file()) in out
    assert json.loads(config_file().read_text())["corpora"] == {"ravdess": str(other)}
    with pytest.raises(CorpusNotFoundError, match="python -m data_prep register emodb"):
        resolve("emodb")
    assert _snapshot(corpus) == before  # the corpus folder is untouched
    assert main(["unregister", "emodb"]) == 0  # again: nothing to forget, said plainly
    assert "emodb was not registered; nothing changed" in capsys.readouterr().out
    monkeypatch.setenv("EMODARTS_EMODB_ROOT", str(corpus))
    assert main(["unregister", "emodb"]) == 0
    assert "EMODARTS_EMODB_ROOT still gives emodb a location" in capsys.readouterr().out
    assert registry.unregister("ravdess") == str(other) and registry.unregister("ravdess") is None
