"""Feature extraction: the paper's 128 x 128 MFCC, and bad audio named in the error."""

import os

import librosa
import numpy as np
import pytest
import soundfile as sf

from data_fixtures import SMALL_CFG, SR, write_wav
from data_prep.errors import DataError
from data_prep.features import FeatureConfig, default_config, extract, mfcc_matrix


def test_paper_geometry_and_defaults():
    paper = default_config("iemocap")
    assert (paper.sample_rate, paper.duration_s) == (32750, 8.0)
    assert paper.hop_length == 512 and paper.shape == (128, 128)
    emodb = default_config("emodb")
    assert (emodb.sample_rate, emodb.duration_s, emodb.hop_length) == (22050, 2.0, 86)
    for cfg in (paper, emodb, SMALL_CFG, default_config("synthetic")):
        assert 1 + cfg.n_samples // cfg.hop_length >= cfg.n_frames * cfg.time_pool


def test_key_is_stable_and_tracks_every_field():
    a, b = FeatureConfig(sample_rate=8000, duration_s=0.5), FeatureConfig(sample_rate=8000, duration_s=0.5)
    assert a.key() == b.key() and len(a.key()) == 16
    assert a.key() != FeatureConfig(sample_rate=8000, duration_s=0.6).key()
    assert a.key() != FeatureConfig(sample_rate=8000, duration_s=0.5, n_fft=1024).key()


def test_invalid_config_lists_problems():
    with pytest.raises(DataError, match="sample_rate must be a positive int"):
        FeatureConfig(sample_rate=0)
    with pytest.raises(DataError, match="too short"):
        FeatureConfig(sample_rate=8000, duration_s=0.01)


def test_output_matches_librosa_mfcc_then_max_pool(tmp_path):
    path = write_wav(tmp_path / "a.wav", seconds=0.7)  # longer than 0.5 s: truncated
    out = extract(path, SMALL_CFG)
    assert out.features.shape == (128, 128) and out.features.dtype == np.float32
    assert out.duration_s == pytest.approx(0.7) and out.notes == []
    y, _ = sf.read(path, dtype="float32")
    ref = librosa.feature.mfcc(y=y[:SMALL_CFG.n_samples], sr=SR, n_mfcc=128, n_fft=2048,
                               hop_length=SMALL_CFG.hop_length, n_mels=128)[:, :512]
    np.testing.assert_allclose(out.features, ref.reshape(128, 128, 4).max(-1), rtol=1e-4, atol=1e-3)


def test_short_audio_is_zero_padded(tmp_path):
    y = np.random.default_rng(0).standard_normal(1000).astype(np.float32) * 0.1
    padded = np.concatenate([y, np.zeros(SMALL_CFG.n_samples - 1000, np.float32)])
    np.testing.assert_array_equal(mfcc_matrix(y, SMALL_CFG), mfcc_matrix(padded, SMALL_CFG))


def test_other_sample_rate_is_resampled_with_note(tmp_path):
    out = extract(write_wav(tmp_path / "b.wav", sr=16000), SMALL_CFG)
    assert out.features.shape == (128, 128)
    assert out.notes == ["resampled from 16000 Hz to 8000 Hz"]


def test_stereo_is_downmixed_or_refused_in_strict_mode(tmp_path):
    path = write_wav(tmp_path / "st.wav", channels=2)
    assert extract(path, SMALL_CFG).notes == ["downmixed 2 channels to mono"]
    with pytest.raises(DataError, match=r"st\.wav: 2 channels"):
        extract(path, SMALL_CFG, strict=True)


@pytest.mark.parametrize("kind, message", [
    ("empty", "empty file"),
    ("corrupt", "corrupt or unsupported audio"),
    ("silent", "silent recording"),
    ("nan", "NaN or infinite"),
    ("no_samples", "no audio samples"),
    ("missing", "file not found"),
])
def test_bad_audio_raises_data_error_naming_the_file(tmp_path, kind, message):
    path = tmp_path / f"{kind}.wav"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "corrupt":
        good = write_wav(tmp_path / "good.wav").read_bytes()
        path.write_bytes(good[:20] + b"\x00garbage" * 10)
    elif kind == "silent":
        sf.write(path, np.zeros(2000, np.float32), SR)
    elif kind == "nan":
        sf.write(path, np.full(2000, np.nan, np.float32), SR, subtype="FLOAT")
    elif kind == "no_samples":
        sf.write(path, np.zeros(0, np.float32), SR)
    with pytest.raises(DataError, match=message) as info:
        extract(path, SMALL_CFG)
    assert str(path) in str(info.value) and info.value.path == str(path)


def test_unreadable_file(tmp_path, monkeypatch):
    path = write_wav(tmp_path / "locked.wav")
    if os.geteuid() == 0:  # root reads any file: make the read itself fail as it would
        def deny(*a, **k):
            raise PermissionError(13, "Permission denied")
        monkeypatch.setattr(sf, "SoundFile", deny)
    else:
        path.chmod(0)
    with pytest.raises(DataError, match="locked.wav: unreadable"):
        extract(path, SMALL_CFG)


def test_folder_named_like_audio(tmp_path):
    (tmp_path / "dir.wav").mkdir()
    with pytest.raises(DataError, match="dir.wav: not a regular file"):
        extract(tmp_path / "dir.wav", SMALL_CFG)
