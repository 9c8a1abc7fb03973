"""IEMOCAP's two fold schemes and what preparing it leaves out (docs/DATA.md).

"reference" (the default) holds out the speaker pairs across sessions of the authors'
preparation (Ses01 M + Ses02 F, ...); "session" holds out one session's two speakers,
as the paper's text (section IV-A) describes. Both on the tiny IEMOCAP fixture in the
real folder layout; `prepare` reports every excluded group with its count, the scripted
dialogs included.
"""

import pytest

from data_fixtures import make_emodb, make_iemocap
from data_prep import load_fold
from data_prep.cli import main
from data_prep.corpora import scan_corpus
from data_prep.errors import DataError
from data_prep import folds as folds_module
from data_prep.folds import make_folds
from data_prep.prepare import prepare

REFERENCE = [["Ses01M", "Ses02F"], ["Ses02M", "Ses03F"], ["Ses03M", "Ses04F"], ["Ses04M", "Ses05F"],
             ["Ses01F", "Ses05M"]]
SESSION = [[f"Ses0{k}F", f"Ses0{k}M"] for k in range(1, 6)]
SCRIPTED = 5 * 12  # the fixture: one scripted dialog per session, 12 labelled lines each


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return make_iemocap(tmp_path_factory.mktemp("iemocap"))


@pytest.fixture(scope="module")
def store(root, tmp_path_factory):
    from data_fixtures import SMALL_CFG
    return prepare("iemocap", root, tmp_path_factory.mktemp("store") / "s", feature_config=SMALL_CFG, jobs=1,
                   progress=False)


@pytest.mark.parametrize("scheme, groups", [("reference", REFERENCE), ("session", SESSION)])
def test_each_scheme_holds_out_its_speakers(store, scheme, groups):
    folds = make_folds(store, seed=0, scheme=scheme)
    assert [f.test_speakers for f in folds] == groups and {f.scheme for f in folds} == {scheme}
    speaker = dict(zip(store.ids, store.speakers))
    for f in folds:
        assert {speaker[i] for i in f.test} == set(f.test_speakers)
        assert not {speaker[i] for i in f.search + f.train} & set(f.test_speakers)
        assert sorted(f.test + f.search + f.train) == sorted(store.ids)


def test_the_reference_scheme_is_the_default(store):
    assert make_folds(store, seed=0) == make_folds(store, seed=0, scheme="reference")


def test_load_fold_takes_the_scheme(store):
    fd = load_fold("iemocap", store.path, 2, fold_scheme="session")
    assert fd.fold.test_speakers == ["Ses02F", "Ses02M"] and fd.fold.scheme == "session"
    assert set(fd.test.speakers) == {"Ses02F", "Ses02M"} and len(fd.test) == 16  # 2 x 4 classes x 2
    assert load_fold("iemocap", store.path, 2).fold.test_speakers == ["Ses02M", "Ses03F"]


def test_an_unknown_scheme_or_one_another_corpus_lacks_is_refused(store, tmp_path):
    with pytest.raises(DataError, match="unknown fold_scheme 'speaker' for iemocap; valid: reference, session"):
        load_fold("iemocap", store.path, 1, fold_scheme="speaker")
    with pytest.raises(DataError, match="only IEMOCAP has a second scheme"):
        folds_module.test_speaker_groups("emodb", ["03", "08"], ["M", "F"], [None, None], "session")
    emodb = make_emodb(tmp_path / "emodb", letters="WF", takes="a")
    with pytest.raises(DataError, match="unknown fold_scheme 'session' for emodb"):
        load_fold("emodb", emodb, 1, fold_scheme="session")


def test_a_session_with_one_speaker_is_refused(store):
    keep = [k for k, s in enumerate(store.speakers) if s != "Ses03F"]
    with pytest.raises(DataError, match="five sessions of two speakers"):
        folds_module.test_speaker_groups("iemocap", [store.speakers[k] for k in keep], [store.genders[k] for k in keep],
                            [store.sessions[k] for k in keep], "session")


def test_scripted_dialogs_are_counted_as_excluded(root):
    scan = scan_corpus("iemocap", root)
    assert scan.excluded["scripted dialog (the paper uses the improvised ones)"] == SCRIPTED
    assert scan.excluded["class excitement not selected"] == scan.excluded["class frustration not selected"] == 10
    assert all("script" not in u.id for u in scan.utterances)


@pytest.mark.parametrize("scheme", ["reference", "session"])
def test_prepare_reports_every_excluded_group_and_the_schemes_folds(root, tmp_path, capsys, scheme):
    assert main(["prepare", "--corpus", "iemocap", "--root", str(root), "--out", str(tmp_path / "s"),
                 "--jobs", "1", "--no-progress", "--sample-rate", "8000", "--duration", "0.5",
                 "--fold-scheme", scheme]) == 0
    out = capsys.readouterr().out
    assert f"excluded {SCRIPTED}: scripted dialog" in out
    for label in ("excitement", "frustration"):
        assert f"excluded 10: class {label} not selected" in out
    groups = REFERENCE if scheme == "reference" else SESSION
    for k, pair in enumerate(groups, start=1):
        assert f"fold {k}: test {'+'.join(pair)} 16," in out
    assert ("written to" in out) == (scheme == "reference")
