"""Damaged audio and damaged stores are refused with a reason, never used silently (docs/DATA.md).

A WAV cut short behind an intact header (libsndfile reads what is there, which padding
would turn into silence) or a recording below the duration floor is skipped with its
reason in the manifest (an error in strict mode); a store whose X.npy no longer matches
the checksum in store.json is refused, naming the file and how to rebuild it.
"""

import dataclasses
import json
import os

import numpy as np
import pytest

from data_fixtures import SMALL_CFG, make_emodb, write_wav
from data_prep import DataError, load_fold
from data_prep.features import extract, header_mismatch
from data_prep.prepare import prepare
from data_prep.store import load_store


def _truncate(path, keep: int) -> None:
    with open(path, "r+b") as fh:
        fh.truncate(keep)


def test_wav_truncated_behind_its_header_is_refused(tmp_path):
    path = write_wav(tmp_path / "a.wav", seconds=1.0)
    assert header_mismatch(path, 8000, 1, 8000, "PCM_16") is None
    _truncate(path, 2000)  # header intact, 1956 of 16000 data bytes left (0.12 s of 1 s)
    with pytest.raises(DataError, match=r"truncated: the header declares 1\.000 s .* holds 0\.122 s") as info:
        extract(path, SMALL_CFG)
    assert info.value.path == str(path)
    long_enough = write_wav(tmp_path / "b.wav", seconds=1.0)
    _truncate(long_enough, 44 + 2 * 4800)  # still 0.6 s, above the floor: the header disagrees all the same
    with pytest.raises(DataError, match="truncated"):
        extract(long_enough, SMALL_CFG)


def test_short_audio_is_refused_below_a_configurable_floor(tmp_path):
    path = write_wav(tmp_path / "short.wav", seconds=0.1)
    with pytest.raises(DataError, match=r"too short: 0\.100 s .* 0\.25 s floor"):
        extract(path, SMALL_CFG)
    assert extract(path, dataclasses.replace(SMALL_CFG, min_duration_s=0.05)).duration_s == pytest.approx(0.1)
    with pytest.raises(DataError, match="min_duration_s must be >= 0"):
        dataclasses.replace(SMALL_CFG, min_duration_s=-1)


def _set_wav_rate(path, rate: int) -> None:
    """Rewrite a canonical 44-byte-header WAV's sample rate (and byte rate), as a damaged header would."""
    data = bytearray(path.read_bytes())
    channels, bits = int.from_bytes(data[22:24], "little"), int.from_bytes(data[34:36], "little")
    data[24:28] = rate.to_bytes(4, "little")
    data[28:32] = (rate * channels * bits // 8).to_bytes(4, "little")
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("rate", [1, 100, 1_000_000])
def test_an_implausible_sample_rate_is_refused_naming_the_file(tmp_path, rate):
    """A 1 Hz header turned 1 s of samples into an 8000 s utterance that was kept."""
    path = write_wav(tmp_path / "odd_rate.wav", seconds=1.0)
    _set_wav_rate(path, rate)
    with pytest.raises(DataError, match=rf"implausible sample rate {rate} Hz .*header is probably damaged") as info:
        extract(path, SMALL_CFG)
    assert info.value.path == str(path)
    _set_wav_rate(path, 8000)
    assert extract(path, SMALL_CFG).duration_s == pytest.approx(1.0)


def test_prepare_skips_damaged_files_with_their_reason(tmp_path):
    root = make_emodb(tmp_path / "emodb", letters="WFNT", takes="a")
    wavs = sorted((root / "wav").glob("*.wav"))
    truncated, short = wavs[0], wavs[1]
    write_wav(truncated, seconds=1.0)
    _truncate(truncated, 2000)
    write_wav(short, seconds=0.1)
    store = prepare("emodb", root, tmp_path / "store", feature_config=SMALL_CFG, jobs=1, progress=False)
    reasons = {s["path"]: s["reason"] for s in store.skipped}
    assert reasons[str(truncated)].startswith("truncated: the header declares")
    assert reasons[str(short)].startswith("too short")
    assert len(store) == len(wavs) - 2
    csv_text = (store.path / "manifest.csv").read_text()
    assert "skipped" in csv_text and "truncated" in csv_text
    with pytest.raises(DataError, match="truncated") as info:
        prepare("emodb", root, tmp_path / "strict", feature_config=SMALL_CFG, strict=True, jobs=1, progress=False)
    assert info.value.path == str(truncated)


def test_tampered_store_is_refused_and_rebuilt_on_prepare(tmp_path):
    root = make_emodb(tmp_path / "emodb", letters="WFNT", takes="a")
    out = tmp_path / "store"
    store = prepare("emodb", root, out, feature_config=SMALL_CFG, jobs=1, progress=False)
    assert set(store.info["checksums"]) == {"X.npy", "manifest.json"}
    load_store(out)  # verified (and remembered) once
    X = out / "X.npy"
    st = X.stat()
    with open(X, "r+b") as fh:  # same-size garbage in the middle of the feature array
        fh.seek(st.st_size // 2)
        fh.write(np.full(64, np.nan, np.float32).tobytes())
    os.utime(X, ns=(st.st_atime_ns, st.st_mtime_ns))  # even with the old mtime
    assert X.stat().st_size == st.st_size
    with pytest.raises(DataError, match=r"X\.npy does not match the SHA-256 .* rebuild it") as info:
        load_store(out)
    assert info.value.path == str(out)
    with pytest.raises(DataError, match="X.npy does not match"):
        load_fold("emodb", out, 1)
    with pytest.warns(UserWarning, match="not reusing a damaged feature store"):
        rebuilt = prepare("emodb", root, out, feature_config=SMALL_CFG, jobs=1, progress=False)
    assert not rebuilt.info["reused"] and np.all(np.isfinite(np.asarray(rebuilt.X)))
    load_store(out)


def test_store_without_checksums_is_refused(tmp_path):
    root = make_emodb(tmp_path / "emodb", letters="WFNT", takes="a")
    out = tmp_path / "store"
    prepare("emodb", root, out, feature_config=SMALL_CFG, jobs=1, progress=False)
    info = json.loads((out / "store.json").read_text())
    del info["checksums"]
    (out / "store.json").write_text(json.dumps(info))
    with pytest.raises(DataError, match="no checksums .* rebuild it"):
        load_store(out)


def test_space_messages_give_sizes_in_a_unit_that_shows_them():
    """Before: "it needs 0.01 GiB and ... has 0.00 GiB free"."""
    from pathlib import Path

    from data_prep.store import format_size, space_problem

    message = space_problem(Path("/cache"), needed=int(0.01 * 2 ** 30), free=4000)
    assert "needs 10.2 MiB and /cache has 3.9 KiB free" in message and "0.00" not in message
    assert [format_size(n) for n in (0, 1023, 1024, 3 * 2 ** 30)] == ["0 bytes", "1023 bytes", "1.0 KiB", "3.0 GiB"]
