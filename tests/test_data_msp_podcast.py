"""MSP-Podcast in its release layout: register checks the audio, the console counts skips.

Release 1.12 ships ``Labels/labels_consensus.csv`` and ``Audios/``. ``register`` checks
that a sample of the audio files the reader lists exists (a folder of labels alone is
refused instead of accepted and then skipped file by file), the summary of ``prepare``
counts skipped files per reason, and ``--strict`` fails on missing files before any
audio is read (docs/DATA.md).
"""

import json
import os
from collections import Counter

import pytest

import data_prep.prepare
from data_fixtures import make_msp_podcast
from data_prep.cli import main, skip_kind
from data_prep.errors import DataError
from data_prep.registry import config_file, register


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    for var in [v for v in os.environ if v.startswith("EMODARTS_") and v.endswith("_ROOT")]:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("EMODARTS_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("EMODARTS_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("EMODARTS_SHARED_CACHE", raising=False)


def test_register_checks_a_sample_of_the_listed_audio_and_says_what_it_found(tmp_path):
    root = make_msp_podcast(tmp_path / "MSP-PODCAST-Publish-1.12")
    path, found = register("msp_podcast", root)
    assert "40 utterances of 10 speakers" in found and "20 of 20 sampled audio files found in Audios/" in found
    listed = sorted((root / "Audios").glob("*.wav"))
    for wav in listed[::4]:  # a quarter of the audio is missing
        os.unlink(wav)
    _, found = register("msp_podcast", root)
    assert "sampled audio files found in Audios/; missing, e.g." in found
    os.unlink(config_file())
    for wav in (root / "Audios").glob("*.wav"):  # labels unpacked, audio not
        os.unlink(wav)
    with pytest.raises(DataError, match=r"none of 20 sampled audio files the msp_podcast reader listed exists, "
                                        r"e\.g\. .*Audios/MSP-PODCAST_\S+\.wav \(looked in Audios/\)") as info:
        register("msp_podcast", root)
    assert info.value.path == str(root.resolve()) and not config_file().exists()


def test_prepare_counts_skips_per_reason_and_strict_fails_before_reading_audio(tmp_path, capsys, monkeypatch):
    root = make_msp_podcast(tmp_path / "release")
    wavs = sorted((root / "Audios").glob("MSP-PODCAST_000*.wav"))
    for wav in wavs[:3]:
        os.unlink(wav)
    for wav in wavs[3:5]:
        wav.write_bytes(b"")
    wavs[5].write_bytes(b"RIFF0000WAVEjunk")
    args = ["prepare", "--corpus", "msp_podcast", "--root", str(root), "--out", str(tmp_path / "store"), "--jobs",
            "1", "--duration", "0.5", "--sample-rate", "8000", "--no-progress"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "utterances 34:" in out
    assert "skipped 6 file(s): 3 file not found, 2 empty file, 1 corrupt or unsupported audio" in out
    skipped = json.loads((tmp_path / "store" / "manifest.json").read_text())["skipped"]
    assert Counter(skip_kind(s["reason"]) for s in skipped) == {"file not found": 3, "empty file": 2,
                                                               "corrupt or unsupported audio": 1}
    monkeypatch.setattr(data_prep.prepare, "_run_extraction", lambda *a, **k: pytest.fail("read audio"))
    assert main(args + ["--strict", "--out", str(tmp_path / "strict")]) == 2  # the later --out counts
    err = capsys.readouterr().err
    assert "file not found (strict mode; 5 file(s) unusable;" in err and "MSP-PODCAST_0000_A.wav" in err
    assert not (tmp_path / "strict").exists()
