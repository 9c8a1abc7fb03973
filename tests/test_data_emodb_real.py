"""The real EmoDB copy (2 s, 22.05 kHz): 339 utterances, 4 classes, 10 speakers, 5 folds of 2.

Skipped unless the corpus is present: ``EMODARTS_EMODB`` or ``../shared/data/emodb``
relative to the repository root.
"""

import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from data_prep import load_fold
from data_prep.corpora import PAPER_CLASSES, read_corpus
from data_prep.folds import make_folds
from data_prep.prepare import prepare

EMODB = Path(os.environ.get("EMODARTS_EMODB")
             or Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "emodb")

pytestmark = [pytest.mark.emodb,
              pytest.mark.skipif(not (EMODB / "wav").is_dir(), reason=f"no EmoDB copy at {EMODB}")]


@pytest.fixture(scope="session")
def emodb_store(tmp_path_factory):
    return prepare("emodb", EMODB, tmp_path_factory.mktemp("emodb") / "store", progress=False)


def test_reader_counts():
    utts = read_corpus("emodb", EMODB)
    assert len(utts) == 339
    assert Counter(u.label for u in utts) == {"anger": 127, "happiness": 71, "neutral": 79, "sadness": 62}
    assert len(read_corpus("emodb", EMODB, classes="all")) == 535


def test_store_and_folds(emodb_store):
    s = emodb_store
    assert len(s) == 339 and not s.skipped and s.classes == PAPER_CLASSES
    assert s.X.shape == (339, 128, 128) and s.X.dtype == np.float32
    assert np.all(np.isfinite(np.asarray(s.X)))
    assert len(set(s.speakers)) == 10 and (s.info["config"]["sample_rate"], s.info["config"]["duration_s"]) == (22050, 2.0)
    folds = make_folds(s)
    assert len(folds) == 5
    gender = dict(zip(s.speakers, s.genders))
    for f in folds:
        assert len(f.test_speakers) == 2 and sorted(gender[x] for x in f.test_speakers) == ["F", "M"]
        assert len(f.test) + len(f.search) + len(f.train) == 339
    assert sorted(x for f in folds for x in f.test_speakers) == sorted(set(s.speakers))


def test_load_fold_on_real_store(emodb_store):
    fd = load_fold("emodb", emodb_store.path, 1)
    assert fd.fold.test_speakers == ["03", "08"]
    assert set(fd.test.speakers) == {"03", "08"}
    assert not {"03", "08"} & set(fd.search.speakers + fd.train.speakers)
    assert len(fd.search) / (len(fd.search) + len(fd.train)) == pytest.approx(0.7, abs=0.02)
