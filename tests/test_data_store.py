"""prepare + feature store: build, reuse, rebuild, skip/strict, atomicity, clear load errors."""

import json
import os

import numpy as np
import pytest

import data_prep.store as store_mod
from data_fixtures import SMALL_CFG, make_emodb, write_wav
from data_prep.errors import DataError
from data_prep.features import FeatureConfig
from data_prep.prepare import prepare
from data_prep.store import load_store


def _corpus(tmp_path):
    # 2 speakers x 5 emotions x 2 takes: 16 usable + 4 boredom (excluded)
    return make_emodb(tmp_path / "emodb", speakers=("03", "08"), letters="WFNTL", takes="ab")


def _prep(root, out, **kw):
    kw.setdefault("feature_config", SMALL_CFG)
    return prepare("emodb", root, out, jobs=1, progress=False, **kw)


def test_build_then_reuse_then_rebuild_on_config_or_input_change(tmp_path):
    root, out = _corpus(tmp_path), tmp_path / "store"
    s1 = _prep(root, out)
    assert not s1.info["reused"] and len(s1) == 16
    assert s1.X.shape == (16, 128, 128) and s1.X.dtype == np.float32 and s1.y.dtype == np.int64
    assert s1.classes == ("anger", "happiness", "neutral", "sadness") and s1.corpus == "emodb"
    assert s1.info["excluded"] == {"class boredom not selected": 4}
    assert (out / "manifest.csv").is_file() and (out / "folds-seed0.json").is_file()
    row = s1.manifest[0]
    assert set(row) >= {"id", "speaker", "gender", "session", "label", "path", "duration_s"}
    x_mtime = os.stat(out / "X.npy").st_mtime_ns

    s2 = _prep(root, out)
    assert s2.info["reused"] and s2.key == s1.key and os.stat(out / "X.npy").st_mtime_ns == x_mtime

    s3 = _prep(root, out, feature_config=FeatureConfig(sample_rate=8000, duration_s=0.6))
    assert not s3.info["reused"] and s3.key != s1.key

    write_wav(root / "wav" / "16b09Wa.wav", seed=99)  # new input file
    s4 = _prep(root, out, feature_config=FeatureConfig(sample_rate=8000, duration_s=0.6))
    assert not s4.info["reused"] and len(s4) == 17
    assert sorted(p.name for p in tmp_path.iterdir()) == ["emodb", "store"]  # no temp leftovers


def test_skipped_files_are_recorded_and_strict_fails(tmp_path):
    root, out = _corpus(tmp_path), tmp_path / "store"
    (root / "wav" / "03a09Wz.wav").write_bytes(b"RIFF not really")
    (root / "wav" / "03a08Wz.wav").write_bytes(b"")
    write_wav(root / "wav" / "bad_name.wav")
    store = _prep(root, out)
    assert len(store) == 16
    reasons = {os.path.basename(s["path"]): s["reason"] for s in store.skipped}
    assert set(reasons) == {"03a09Wz.wav", "03a08Wz.wav", "bad_name.wav"}
    assert "corrupt" in reasons["03a09Wz.wav"] and "empty" in reasons["03a08Wz.wav"]
    csv_text = (out / "manifest.csv").read_text()
    assert csv_text.count(",skipped,") == 3 and csv_text.count(",ok,") == 16
    with pytest.raises(DataError, match="bad_name.wav: file name does not follow"):
        _prep(root, tmp_path / "strict", strict=True)
    os.unlink(root / "wav" / "bad_name.wav")
    with pytest.raises(DataError, match=r"03a0[89]Wz\.wav: (corrupt|empty)"):
        _prep(root, tmp_path / "strict", strict=True)
    assert not (tmp_path / "strict").exists()


def test_parallel_extraction_equals_serial(tmp_path):
    root = _corpus(tmp_path)
    serial = _prep(root, tmp_path / "s1")
    parallel = prepare("emodb", root, tmp_path / "s2", feature_config=SMALL_CFG, jobs=2, progress=False)
    assert serial.ids == parallel.ids
    np.testing.assert_array_equal(np.asarray(serial.X), np.asarray(parallel.X))


def test_interrupted_build_leaves_no_store(tmp_path, monkeypatch):
    root, out = _corpus(tmp_path), tmp_path / "store"

    def crash(*a, **k):
        raise KeyboardInterrupt("simulated crash while writing the manifest")

    monkeypatch.setattr(store_mod, "_write_manifest", crash)
    with pytest.raises(KeyboardInterrupt):
        _prep(root, out)
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["emodb"]

    monkeypatch.undo()
    good = _prep(root, out)  # a crash while rebuilding keeps the old store intact
    monkeypatch.setattr(store_mod, "_write_manifest", crash)
    with pytest.raises(KeyboardInterrupt):
        _prep(root, out, feature_config=FeatureConfig(sample_rate=8000, duration_s=0.6))
    assert load_store(out).key == good.key


def test_refuses_to_overwrite_a_folder_that_is_not_a_store(tmp_path):
    root, out = _corpus(tmp_path), tmp_path / "precious"
    out.mkdir()
    (out / "thesis.tex").write_text("keep me")
    with pytest.raises(DataError, match="precious: exists and is not a feature store"):
        _prep(root, out)
    assert (out / "thesis.tex").read_text() == "keep me"


def test_all_files_unusable(tmp_path):
    root = tmp_path / "emodb"
    (root / "wav").mkdir(parents=True)
    (root / "wav" / "03a01Wa.wav").write_bytes(b"\x00" * 100)
    with pytest.raises(DataError, match="no usable utterances.*03a01Wa.wav"):
        _prep(root, tmp_path / "store")


def test_load_store_errors_are_clear(tmp_path):
    with pytest.raises(DataError, match="nope: feature store not found"):
        load_store(tmp_path / "nope")
    with pytest.raises(DataError, match="no store.json"):
        load_store(tmp_path)
    out = tmp_path / "store"
    _prep(_corpus(tmp_path), out)
    (out / "manifest.json").write_text("{broken")
    with pytest.raises(DataError, match="store: corrupt feature store metadata"):
        load_store(out)
    os.unlink(out / "manifest.json")
    with pytest.raises(DataError, match="manifest.json is missing"):
        load_store(out)
    info = json.loads((out / "store.json").read_text())
    (out / "store.json").write_text(json.dumps({**info, "format": 99}))
    with pytest.raises(DataError, match="format 99"):
        load_store(out)
