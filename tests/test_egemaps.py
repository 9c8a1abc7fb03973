"""The egemaps baseline: openSMILE's eGeMAPS functionals from the audio, cached per corpus,
and the classic linear classifier with its C chosen on training speakers only."""

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pytest

from data_prep import DataError, FoldData, Split, load_fold
from data_prep.egemaps import N_FEATURES, egemaps_of_file, egemaps_table, feature_names
from data_prep.folds import Fold
from data_prep.prepare import prepare
from data_prep.synthetic import generate
from data_prep.toy import toy_fold
from data_fixtures import SMALL_CFG, make_emodb, write_wav
from emodarts_core.config import ConfigError, TrainConfig
from emodarts_core.study.results import collect_study
from emodarts_core.study.sweep import Task, execute_task, load_params, plan_tasks
from emodarts_core.training.classic import forget_choices
from emodarts_core.training.egemaps import EgemapsConfig, run_egemaps
from emodarts_core.training.protocols import protocol_data

EMODB = Path(os.environ.get("EMODARTS_EMODB")
             or Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "emodb")


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    """Every test's eGeMAPS cache (and any store) in its own folder, never the user's."""
    monkeypatch.setenv("EMODARTS_CACHE", str(tmp_path / "cache"))


def _cfg(protocol="full", seed=0):
    return TrainConfig(protocol=protocol, seed=seed, device="cpu", progress=False)


def _tone(path, label: int, seed: int) -> str:
    """1 s at 16 kHz whose pitch and loudness depend on the class (something to learn)."""
    import soundfile as sf

    rng = np.random.default_rng(seed)
    t = np.arange(16000) / 16000
    f0 = 110 * 2 ** (label / 2) * (1 + 0.01 * rng.standard_normal())
    x = (0.1 + 0.1 * label) * np.sin(2 * np.pi * f0 * t) + 0.01 * rng.standard_normal(t.size)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, x.astype(np.float32), 16000, subtype="PCM_16")
    return str(path)


def _audio_fold(root: Path, n_search=24, n_train=24, n_test=12) -> FoldData:
    """A fold whose utterances are WAV files: labels cycle over 4 classes, 4 training and 2
    test speakers; X is a placeholder (the egemaps baseline reads the audio)."""
    def split(n, prefix, speakers, seed):
        y = np.arange(n, dtype=np.int64) % 4
        ids = [f"{prefix}{i}" for i in range(n)]
        paths = [_tone(root / f"{i}.wav", int(c), seed + k) for k, (i, c) in enumerate(zip(ids, y))]
        return Split(np.zeros((n, 4, 4), np.float32), y, ids, [speakers[i % len(speakers)] for i in range(n)], paths)

    search = split(n_search, "s", ["a", "b", "c", "d"], 100)
    train = split(n_train, "t", ["a", "b", "c", "d"], 200)
    test = split(n_test, "x", ["e", "f"], 300)
    fold = Fold(index=1, test_speakers=["e", "f"], test=test.ids, search=search.ids, train=train.ids, seed=0)
    return FoldData(search, train, test, ("c0", "c1", "c2", "c3"), fold)


@pytest.mark.emodb
@pytest.mark.skipif(not (EMODB / "wav").is_dir(), reason=f"no EmoDB copy at {EMODB}")
def test_real_EmoDB_recordings_give_88_finite_functionals():
    files = sorted((EMODB / "wav").glob("*.wav"))[:2]
    rows = [egemaps_of_file(f) for f in files]
    assert all(r.shape == (N_FEATURES,) and np.all(np.isfinite(r)) for r in rows)
    assert len(feature_names()) == N_FEATURES and feature_names()[0].startswith("F0semitone")
    assert not np.array_equal(rows[0], rows[1])


def test_the_generated_corpus_gives_88_finite_functionals(tmp_path):
    corpus = generate(tmp_path / "corpus", seed=3, n_speakers=2, per_class_per_speaker=1)
    table = egemaps_table(sorted((corpus / "wav").glob("*.wav")))
    assert table.shape == (8, N_FEATURES) and np.all(np.isfinite(table))


def test_a_corrupt_or_missing_recording_is_an_error_naming_it(tmp_path):
    good = _tone(tmp_path / "good.wav", 1, 0)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + os.urandom(64))
    with pytest.raises(DataError, match="bad.wav") as err:
        egemaps_table([good, bad])
    assert "corrupt" in str(err.value) or "truncated" in str(err.value)
    with pytest.raises(DataError, match="gone.wav.*not found"):
        egemaps_table([good, tmp_path / "gone.wav"])


def test_the_cache_reads_back_unchanged_files_and_redoes_changed_ones(tmp_path, monkeypatch):
    import data_prep.egemaps as egemaps

    paths = [_tone(tmp_path / "wav" / f"{i}.wav", i % 4, i) for i in range(4)]
    first = egemaps_table(paths)
    calls = []
    real = egemaps.egemaps_of_file
    monkeypatch.setattr(egemaps, "egemaps_of_file", lambda p, sr: calls.append(p) or real(p, sr))
    np.testing.assert_array_equal(egemaps_table(paths), first)
    assert calls == []  # all from the cache
    _tone(Path(paths[2]), 3, 99)  # the recording changed: other audio, so other size or mtime
    os.utime(paths[2], ns=(0, 1))
    again = egemaps_table(paths)
    assert calls == [paths[2]]
    np.testing.assert_array_equal(again[[0, 1, 3]], first[[0, 1, 3]])
    assert not np.array_equal(again[2], first[2])


def test_a_fold_without_audio_is_refused(tmp_path):
    with pytest.raises(DataError, match="no audio paths"):
        run_egemaps(toy_fold(), _cfg(), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_load_fold_gives_each_utterance_its_audio_file_from_any_folder(tmp_path, monkeypatch):
    """A store built from a relative corpus root still names files that exist after a
    change of working folder, and a protocol's splits keep each path with its utterance."""
    make_emodb(tmp_path / "corpora" / "emodb")
    monkeypatch.chdir(tmp_path / "corpora")
    prepare("emodb", "emodb", tmp_path / "store", feature_config=SMALL_CFG, jobs=1, progress=False)
    monkeypatch.chdir(tmp_path)
    fd = load_fold("emodb", tmp_path / "store", 1)
    for split in (fd.search, fd.train, fd.test):
        assert [Path(p).stem for p in split.paths] == split.ids
        assert all(os.path.isabs(p) and os.path.isfile(p) for p in split.paths)
    for protocol in ("paper", "full"):
        splits = protocol_data(fd, protocol)
        assert [Path(p).stem for p in splits.train.paths] == splits.train.ids
        assert [Path(p).stem for p in splits.score.paths] == splits.score.ids


@pytest.mark.parametrize("protocol", ["full", "paper"])
def test_no_test_speaker_reaches_the_standardisation_or_the_C_choice(tmp_path, monkeypatch, protocol):
    """Every standardisation fitted (those of the leave-one-speaker-out choice of C and the
    final one) and the chosen C are the same when the test speakers' recordings are
    replaced by other audio; only the scores change."""
    from sklearn.preprocessing import StandardScaler

    fitted = []
    fit = StandardScaler.fit

    def spy(self, X, y=None, **kw):
        out = fit(self, X, y, **kw)
        fitted.append((self.mean_.copy(), self.scale_.copy()))
        return out

    monkeypatch.setattr(StandardScaler, "fit", spy)
    fold = _audio_fold(tmp_path / "audio")
    forget_choices()  # each run makes its own choice, rather than reuse one made on the same training data
    run_egemaps(fold, _cfg(protocol), tmp_path / "a")
    clean, fitted[:] = list(fitted), []
    forget_choices()
    loud = [_tone(tmp_path / "other" / f"{i}.wav", 3 - int(c), 7 + k) for k, (i, c) in
            enumerate(zip(fold.test.ids, fold.test.y))]
    run_egemaps(dataclasses.replace(fold, test=dataclasses.replace(fold.test, paths=loud)), _cfg(protocol),
                tmp_path / "b")
    assert len(fitted) == len(clean) > 2
    for (m0, s0), (m1, s1) in zip(clean, fitted):
        np.testing.assert_array_equal(m0, m1)
        np.testing.assert_array_equal(s0, s1)
    a, b = (json.loads((tmp_path / n / "result.json").read_text()) for n in "ab")
    assert a["choice"] == b["choice"]
    assert a["predictions"] != b["predictions"]  # the replaced recordings did reach the scoring


def test_bad_settings_are_refused():
    with pytest.raises(ConfigError, match="egemaps model"):
        EgemapsConfig(model="forest").validate()
    with pytest.raises(ConfigError, match="sample_rate"):
        EgemapsConfig(sample_rate=100).validate()
    with pytest.raises(ConfigError, match="sample_rate"):
        load_params({"baselines": {"egemaps": {"sample_rate": 16000.5}}})
    with pytest.raises(ConfigError, match="egemaps Cs"):
        load_params({"baselines": {"egemaps": {"Cs": []}}})


def test_the_sweep_plans_and_runs_egemaps_on_a_generated_corpus(tmp_path):
    """A small generated corpus, prepared like any other, through the sweep under both
    protocols: the runs enter the study as the `egemaps` model, with the classic baseline's keys."""
    corpus = generate(tmp_path / "corpus", seed=5, n_speakers=10, per_class_per_speaker=2)
    store = prepare("synthetic", corpus, tmp_path / "store", feature_config=SMALL_CFG, jobs=1, progress=False)
    params = load_params({"baselines": {"egemaps": {"Cs": [0.01, 1.0]}}})
    tasks = plan_tasks(["synthetic"], [1], [], ["egemaps"], seeds=[0], protocols=["paper", "full"])
    assert [t.key for t in tasks] == ["synthetic/egemaps/fold1/seed0"]
    out = execute_task(tasks[0], params, tmp_path / "results", data_dir=store.path)
    assert set(out["stages"]) == {"retrain-paper", "retrain-full"}
    study = collect_study(tmp_path / "results")
    assert set(study["model"]) == {"egemaps"} and set(study["protocol"]) == {"paper", "full"}
    run = tmp_path / "results" / "synthetic" / "egemaps" / "fold1" / "seed0" / "retrain-full"
    result = json.loads((run / "result.json").read_text())
    assert result["choice"]["C"] in (0.01, 1.0) and result["params"] == 4 * N_FEATURES + 4
    assert result["predictions"]["ids"] == json.loads((run / "config.json").read_text())["protocol"]["score"]["ids"]
    assert (run / "FINISHED").is_file()
    again = execute_task(Task("synthetic", 1, "baseline", "egemaps", protocols=("paper", "full")), params,
                         tmp_path / "results", data_dir=store.path)
    assert again["stages"]["retrain-full"]["state"] == "finished"


def test_recordings_are_analysed_at_their_own_rate_unless_a_rate_is_given(tmp_path):
    """By default openSMILE reads each file at its own rate: a 22.05 kHz recording gives the
    functionals of its own samples, not of a 16 kHz resampling; a rate given resamples."""
    import soundfile as sf

    from data_prep.egemaps import egemaps_of_signal, native_rate, settings_key

    rng = np.random.default_rng(5)
    t = np.arange(22050) / 22050
    x = (0.3 * np.sin(2 * np.pi * 180 * t) * (1 + 0.3 * np.sin(2 * np.pi * 3 * t))
         + 0.01 * rng.standard_normal(t.size)).astype(np.float32)
    path = tmp_path / "a.wav"
    sf.write(path, x, 22050, subtype="FLOAT")
    assert native_rate(path) == 22050
    native = egemaps_of_file(path)
    np.testing.assert_array_equal(native, egemaps_of_signal(x, 22050))
    resampled = egemaps_of_file(path, sample_rate=16000)
    assert not np.allclose(native, resampled, rtol=1e-3)  # a different analysis, as the bug report measured
    assert settings_key(None) != settings_key(16000)  # a cached 16 kHz table is never read back as native
    with pytest.raises(DataError, match="missing.wav"):
        native_rate(tmp_path / "missing.wav")
