"""Corpus readers on tiny fixtures in each corpus's real folder layout."""

import os
import shutil
from collections import Counter

import pytest

from data_fixtures import (make_crema_d, make_emodb, make_iemocap, make_msp_improv,
                           make_msp_podcast, make_ravdess, write_wav)
from data_prep.corpora import PAPER_CLASSES, read_corpus, scan_corpus
from data_prep.errors import DataError


def test_iemocap_improvised_four_classes(tmp_path):
    utts = read_corpus("iemocap", make_iemocap(tmp_path))
    assert len(utts) == 5 * 2 * 8  # 5 sessions x 2 speakers x (4 classes x 2)
    assert all("impro" in u.id for u in utts)
    assert Counter(u.label for u in utts) == {c: 20 for c in PAPER_CLASSES}
    assert {u.speaker for u in utts} == {f"Ses0{s}{g}" for s in range(1, 6) for g in "FM"}
    u = next(u for u in utts if u.id == "Ses01F_impro01_M010")
    assert (u.speaker, u.gender, u.session) == ("Ses01M", "M", "Ses01")
    assert u.path.endswith("Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_M010.wav")


def test_iemocap_merge_excited_and_missing_label(tmp_path):
    root = make_iemocap(tmp_path)
    merged = read_corpus("iemocap", root, merge_excited=True)
    assert Counter(u.label for u in merged)["happiness"] == 20 + 10
    stray = write_wav(root / "IEMOCAP_full_release/Session2/sentences/wav/Ses02F_impro01/Ses02F_impro01_F099.wav")
    scan = scan_corpus("iemocap", root)
    assert [s["path"] for s in scan.skipped] == [str(stray)]
    assert "missing label" in scan.skipped[0]["reason"]
    assert scan.excluded["class frustration not selected"] == 10 and scan.excluded["class excitement not selected"] == 10


def test_msp_improv_sessions_and_speakers(tmp_path):
    utts = read_corpus("msp_improv", make_msp_improv(tmp_path))
    assert len(utts) == 6 * 2 * 4 * 2
    u = next(u for u in utts if u.id == "MSP-IMPROV-S03H-M03-R-FM03")
    assert (u.label, u.speaker, u.gender, u.session) == ("happiness", "M03", "M", "session3")
    assert len({u.session for u in utts}) == 6


def test_msp_improv_and_iemocap_in_their_release_folders(tmp_path):
    """MSP-IMPROV's release keeps its audio under Audio/sessionK/...; IEMOCAP's corpus
    folder may be IEMOCAP_full_release itself (docs/CORPORA.md)."""
    make_msp_improv(tmp_path / "MSP-IMPROV" / "Audio")
    utts = read_corpus("msp_improv", tmp_path / "MSP-IMPROV")
    assert len(utts) == 96 and all("/Audio/session" in u.path for u in utts)
    root = make_iemocap(tmp_path / "iemocap")
    assert read_corpus("iemocap", root / "IEMOCAP_full_release") == read_corpus("iemocap", root)


def test_msp_podcast_csv_drops_unknown_speakers(tmp_path):
    scan = scan_corpus("msp_podcast", make_msp_podcast(tmp_path))
    assert len(scan.utterances) == 40 and not scan.skipped
    assert scan.excluded == {"unknown speaker": 1, "label X": 1}
    u = scan.utterances[0]
    assert (u.speaker, u.gender, u.label) == ("100", "M", "anger")
    assert u.path.endswith("Audios/MSP-PODCAST_0000_A.wav")


def test_msp_podcast_reads_the_releases_audios_folder_and_audio_where_present(tmp_path):
    """Release 1.12 ships Labels/ and Audios/; an older copy's Audio/ is read too, and a
    file in neither is listed where the release puts it, so the build names it missing."""
    root = make_msp_podcast(tmp_path / "release")
    assert sorted(p.name for p in root.iterdir()) == ["Audios", "Labels"]
    scan = scan_corpus("msp_podcast", root)
    assert len(scan.utterances) == 40 and all("/Audios/" in u.path and os.path.isfile(u.path) for u in scan.utterances)
    old = make_msp_podcast(tmp_path / "old", audio="Audio")
    assert all(os.path.isfile(u.path) for u in scan_corpus("msp_podcast", old).utterances)
    (root / "Audio").mkdir()  # a file moved to Audio/ is still found
    moved = root / "Audios" / "MSP-PODCAST_0003_H.wav"
    os.rename(moved, root / "Audio" / moved.name)
    paths = {u.id: u.path for u in scan_corpus("msp_podcast", root).utterances}
    assert paths["MSP-PODCAST_0003_H"] == str(root / "Audio" / moved.name)
    assert paths["MSP-PODCAST_0003_A"] == str(root / "Audios" / "MSP-PODCAST_0003_A.wav")
    os.rename(root / "Labels" / "labels_consensus.csv", root / "Labels" / "labels_concensus.csv")  # older spelling
    assert len(scan_corpus("msp_podcast", root).utterances) == 40
    shutil.rmtree(root / "Audios")
    shutil.rmtree(root / "Audio")
    with pytest.raises(DataError, match=r"no audio folder: expected Audios/ or Audio/"):
        scan_corpus("msp_podcast", root)


def test_emodb_paper_classes_and_all(tmp_path):
    root = make_emodb(tmp_path)
    four = read_corpus("emodb", root)
    assert len(four) == 10 * 4 * 2 and {u.label for u in four} == set(PAPER_CLASSES)
    assert {u.speaker: u.gender for u in four}["03"] == "M"
    assert {u.speaker: u.gender for u in four}["16"] == "F"
    every = scan_corpus("emodb", root, classes="all")
    assert len(every.utterances) == 140
    assert {u.label for u in every.utterances} == {*PAPER_CLASSES, "boredom", "disgust", "fear"}
    two = read_corpus("emodb", root, classes=["anger", "sadness"])
    assert {u.label for u in two} == {"anger", "sadness"}


def test_emodb_bad_names_are_skipped_with_reason(tmp_path):
    root = make_emodb(tmp_path, speakers=("03",), letters="W")
    bad_letter = write_wav(root / "wav" / "03a01Xa.wav")
    bad_name = write_wav(root / "wav" / "notes.wav")
    scan = scan_corpus("emodb", root)
    reasons = {s["path"]: s["reason"] for s in scan.skipped}
    assert "missing label" in reasons[str(bad_letter)]
    assert "SSTTTEV" in reasons[str(bad_name)]


def test_ravdess_speech_only(tmp_path):
    scan = scan_corpus("ravdess", make_ravdess(tmp_path), classes="all")
    assert len(scan.utterances) == 80 and scan.excluded["song (vocal channel 02)"] == 10
    u = next(u for u in scan.utterances if u.id == "03-01-02-01-01-01-03")
    assert (u.label, u.speaker, u.gender) == ("calm", "Actor_03", "M")
    assert read_corpus("ravdess", tmp_path)[0].label in PAPER_CLASSES


def test_crema_d_with_demographics(tmp_path):
    utts = read_corpus("crema_d", make_crema_d(tmp_path))
    assert len(utts) == 40
    assert {u.speaker: u.gender for u in utts}["1001"] == "M"
    assert {u.speaker: u.gender for u in utts}["1002"] == "F"


def test_unknown_corpus_and_missing_root(tmp_path):
    with pytest.raises(DataError, match="unknown corpus 'timit'.*iemocap"):
        read_corpus("timit", tmp_path)
    with pytest.raises(DataError, match="nowhere.*does not exist"):
        read_corpus("emodb", tmp_path / "nowhere")
    with pytest.raises(DataError, match="no .wav files"):
        read_corpus("emodb", tmp_path)
    with pytest.raises(DataError, match="SessionN"):
        read_corpus("iemocap", tmp_path)


def test_invalid_classes_and_options(tmp_path):
    root = make_emodb(tmp_path, speakers=("03",), letters="W")
    with pytest.raises(DataError, match="invalid classes.*valid"):
        read_corpus("emodb", root, classes=["joy"])
    with pytest.raises(DataError, match="merge_excited"):
        read_corpus("emodb", root, merge_excited=True)
