"""The generated corpus: size, speakers, determinism, and the cached load_fold path."""

import os
from collections import Counter

import pytest

from data_prep import load_fold
from data_prep.corpora import PAPER_CLASSES, read_corpus
from data_prep.errors import DataError
from data_prep.synthetic import generate


@pytest.fixture(scope="session")
def synthetic_cache(tmp_path_factory):
    """Generate + prepare the default synthetic corpus once into a temporary cache."""
    cache = tmp_path_factory.mktemp("emodarts_cache")
    old = os.environ.get("EMODARTS_CACHE")
    os.environ["EMODARTS_CACHE"] = str(cache)
    try:
        first = load_fold("synthetic", None, 1)
        yield cache, first
    finally:
        if old is None:
            del os.environ["EMODARTS_CACHE"]
        else:
            os.environ["EMODARTS_CACHE"] = old


def test_default_corpus_shape(synthetic_cache):
    cache, _ = synthetic_cache
    utts = read_corpus("synthetic", cache / "synthetic-seed0" / "corpus")
    assert len(utts) == 8 * 4 * 13 >= 400
    assert Counter(u.label for u in utts) == {c: 104 for c in PAPER_CLASSES}
    genders = {u.speaker: u.gender for u in utts}
    assert len(genders) == 8 and Counter(genders.values()) == {"F": 4, "M": 4}


def test_load_fold_synthetic_uses_and_reuses_the_cache(synthetic_cache):
    cache, first = synthetic_cache
    store = cache / "synthetic-seed0" / "store"
    mtime = os.stat(store / "X.npy").st_mtime_ns
    total = len(first.search) + len(first.train) + len(first.test)
    assert total == 416 and first.classes == PAPER_CLASSES
    assert not set(first.test.speakers) & set(first.search.speakers + first.train.speakers)
    again = load_fold("synthetic", None, 5, seed=1)
    assert os.stat(store / "X.npy").st_mtime_ns == mtime  # reused, not rebuilt
    assert again.fold.index == 5 and again.fold.seed == 1


def test_generation_is_deterministic_and_refuses_foreign_folders(tmp_path):
    a = generate(tmp_path / "a", seed=7, n_speakers=2, per_class_per_speaker=1)
    b = generate(tmp_path / "b", seed=7, n_speakers=2, per_class_per_speaker=1)
    c = generate(tmp_path / "c", seed=8, n_speakers=2, per_class_per_speaker=1)
    names = sorted(p.name for p in (a / "wav").iterdir())
    assert len(names) == 8 and names == sorted(p.name for p in (b / "wav").iterdir())
    assert all((a / "wav" / n).read_bytes() == (b / "wav" / n).read_bytes() for n in names)
    assert any((a / "wav" / n).read_bytes() != (c / "wav" / n).read_bytes() for n in names)
    assert generate(a, seed=7, n_speakers=2, per_class_per_speaker=1) == a  # same params: reused
    with pytest.raises(DataError, match="not empty"):
        generate(a, seed=9, n_speakers=2, per_class_per_speaker=1)


def test_generation_shows_its_progress_only_when_asked(tmp_path, capsys):
    generate(tmp_path / "quiet", seed=7, n_speakers=2, per_class_per_speaker=1)
    assert capsys.readouterr().err == ""
    generate(tmp_path / "shown", seed=7, n_speakers=2, per_class_per_speaker=1, progress=True)
    err = capsys.readouterr().err
    assert "generating the corpus" in err and "8/8" in err  # 2 speakers x 4 classes x 1
    generate(tmp_path / "shown", seed=7, n_speakers=2, per_class_per_speaker=1, progress=True)
    assert capsys.readouterr().err == ""  # found in place: nothing to show
