"""Speaker-independent folds per corpus protocol, stratified seeded 70/30 split, load_fold."""

import json
from collections import Counter
from types import SimpleNamespace

import numpy as np
import pytest

from data_fixtures import (SMALL_CFG, make_crema_d, make_emodb, make_iemocap, make_msp_improv,
                           make_msp_podcast, make_ravdess)
from data_prep import load_fold
from data_prep.corpora import PAPER_CLASSES, read_corpus
from data_prep.errors import DataError
from data_prep.folds import Fold, balanced_groups, make_fold, make_folds, save_folds
from data_prep.prepare import prepare

MAKERS = {"iemocap": make_iemocap, "msp_improv": make_msp_improv, "msp_podcast": make_msp_podcast,
          "emodb": make_emodb, "ravdess": make_ravdess, "crema_d": make_crema_d}


def _store_like(corpus, root):
    """What make_folds reads from a store, straight from the reader (no features needed)."""
    utts = read_corpus(corpus, root)
    return SimpleNamespace(corpus=corpus, ids=[u.id for u in utts], speakers=[u.speaker for u in utts],
                           genders=[u.gender for u in utts], sessions=[u.session for u in utts],
                           y=np.array([PAPER_CLASSES.index(u.label) for u in utts]))


@pytest.fixture(scope="module", params=sorted(MAKERS))
def corpus_store(request, tmp_path_factory):
    root = MAKERS[request.param](tmp_path_factory.mktemp(request.param))
    return _store_like(request.param, root)


def test_folds_are_speaker_independent_disjoint_and_stratified(corpus_store):
    s = corpus_store
    spk = dict(zip(s.ids, s.speakers))
    label = dict(zip(s.ids, s.y.tolist()))
    folds = make_folds(s, seed=3)
    assert [f.index for f in folds] == list(range(1, len(folds) + 1))
    assert sorted(sp for f in folds for sp in f.test_speakers) == sorted(set(s.speakers))
    for f in folds:
        test, search, train = set(f.test), set(f.search), set(f.train)
        assert not (test & search or test & train or search & train)
        assert test | search | train == set(s.ids)
        assert {spk[i] for i in test} == set(f.test_speakers)
        assert not {spk[i] for i in search | train} & set(f.test_speakers)
        rest = Counter(label[i] for i in search | train)
        in_search = Counter(label[i] for i in search)
        for c, n in rest.items():
            assert abs(in_search[c] - 0.7 * n) <= 1, (c, n, in_search[c])


def test_split_is_seeded_but_test_speakers_are_not(corpus_store):
    a, b, c = (make_folds(corpus_store, seed=s) for s in (0, 0, 1))
    assert a == b
    assert [f.test for f in a] == [f.test for f in c]
    assert [f.search for f in a] != [f.search for f in c]
    assert [make_fold(corpus_store, k, seed=1) for k in range(1, len(c) + 1)] == c  # one fold alone, the same
    with pytest.raises(DataError, match=rf"fold {len(c) + 1} does not exist .* valid folds: 1\.\.{len(c)}"):
        make_fold(corpus_store, len(c) + 1)


def test_protocols(tmp_path):
    iemo = make_folds(_store_like("iemocap", make_iemocap(tmp_path / "i")))
    assert [f.test_speakers for f in iemo] == [["Ses01M", "Ses02F"], ["Ses02M", "Ses03F"],
                                               ["Ses03M", "Ses04F"], ["Ses04M", "Ses05F"],
                                               ["Ses01F", "Ses05M"]]
    msp = make_folds(_store_like("msp_improv", make_msp_improv(tmp_path / "m")))
    assert [f.test_speakers for f in msp] == [[f"F0{k}", f"M0{k}"] for k in range(1, 7)]
    emodb = make_folds(_store_like("emodb", make_emodb(tmp_path / "e")))
    assert [f.test_speakers for f in emodb] == [["03", "08"], ["09", "10"], ["11", "13"],
                                                ["12", "14"], ["15", "16"]]
    rav = make_folds(_store_like("ravdess", make_ravdess(tmp_path / "r")))
    assert len(rav) == 5
    for f in rav:  # 5 male + 5 female actors: one of each per fold
        assert sorted(int(a[-2:]) % 2 for a in f.test_speakers) == [0, 1]


def test_balanced_groups_balance_gender_and_size():
    speakers = {f"m{i}": "M" for i in range(7)} | {f"f{i}": "F" for i in range(6)} | {"x": None}
    groups = balanced_groups(speakers, Counter({s: 10 for s in speakers}))
    assert sorted(len(g) for g in groups) == [2, 3, 3, 3, 3]
    for g in groups:
        assert sum(s.startswith("m") for s in g) in (1, 2) and sum(s.startswith("f") for s in g) in (1, 2)
    with pytest.raises(DataError, match="3 speakers cannot make 5"):
        balanced_groups({"a": "M", "b": "F", "c": "M"}, Counter())


def test_saved_folds_record_every_field(tmp_path, corpus_store):
    """folds.json, the record of the folds a store's runs used, holds each fold whole."""
    folds = make_folds(corpus_store)
    save_folds(folds, tmp_path / "folds.json")
    saved = json.loads((tmp_path / "folds.json").read_text())
    assert saved["format"] == 1 and [Fold(**f) for f in saved["folds"]] == folds


def test_load_fold_from_store_and_from_corpus_root(tmp_path, monkeypatch):
    monkeypatch.setenv("EMODARTS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("EMODARTS_CONFIG_DIR", str(tmp_path / "config"))  # nothing registered
    for var in ("EMODARTS_EMODB", "EMODARTS_EMODB_ROOT"):
        monkeypatch.delenv(var, raising=False)
    root = make_emodb(tmp_path / "emodb", letters="WFNT", takes="a")
    prepare("emodb", root, tmp_path / "store", feature_config=SMALL_CFG, jobs=1, progress=False)
    fd = load_fold("emodb", tmp_path / "store", 2, seed=0)
    assert fd.classes == PAPER_CLASSES and fd.fold.index == 2
    assert fd.fold.test_speakers == ["09", "10"] and set(fd.test.speakers) == {"09", "10"}
    assert len(fd.test) == 8 and len(fd.search) + len(fd.train) == 32
    for split in (fd.search, fd.train, fd.test):
        assert split.X.shape == (len(split), 128, 128) and split.X.dtype == np.float32
        assert split.y.dtype == np.int64 and len(split.ids) == len(split.speakers) == len(split)
    with pytest.raises(DataError, match="fold 6 does not exist.*1..5"):
        load_fold("emodb", tmp_path / "store", 6)
    with pytest.raises(DataError, match="holds corpus 'emodb', not 'ravdess'"):
        load_fold("ravdess", tmp_path / "store", 1)
    with pytest.raises(DataError, match="unknown dataset 'berlin'"):
        load_fold("berlin", tmp_path / "store", 1)
    with pytest.raises(DataError, match="needs data_dir"):
        load_fold("emodb", None, 1)
    from_root = load_fold("emodb", root, 2)  # a corpus root: prepared into the cache, not the corpus
    assert not (root / ".emodarts_store").exists()
    assert list((tmp_path / "cache" / "stores" / "emodb").glob("*/store.json"))
    assert from_root.test.ids == fd.test.ids and from_root.search.ids == fd.search.ids
