"""A killed build goes on from its last journalled block; skipped rows are compacted in place.

A build writes each block of features to the build folder's array as it arrives and
journals the blocks on disk (data_prep.building); the next build of the same store takes
the folder over, extracts only what the journal lacks, and ends with the same store as a
build that was never interrupted. Files that cannot be used are removed from the array
in place, so the build never holds a second full-size array.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import data_prep.prepare
from data_fixtures import SMALL_CFG, make_emodb
from data_prep.building import ALL_ROWS, JOURNAL, FeatureWriter, npy_header
from data_prep.features import extract
from data_prep.integrity import npy_layout
from data_prep.prepare import prepare

TESTS = Path(__file__).resolve().parent

CHILD = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    import data_prep.building
    data_prep.building.SYNC_S = 0.0  # journal every block, so the kill finds some
    from data_fixtures import SMALL_CFG
    from data_prep.prepare import prepare
    prepare("emodb", {corpus!r}, {out!r}, feature_config=SMALL_CFG, jobs=1, progress=False)
""")


def _journal_lines(folder: Path) -> int:
    try:
        return len((folder / JOURNAL).read_text().splitlines())
    except OSError:
        return 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SIGKILL")
def test_a_killed_build_resumes_from_its_journal_and_equals_an_uninterrupted_one(tmp_path, monkeypatch):
    corpus = make_emodb(tmp_path / "emodb", takes="abcdefgh")  # 320 utterances, 20 blocks of 16
    out = tmp_path / "store"
    child = subprocess.Popen([sys.executable, "-c", CHILD.format(tests=str(TESTS), corpus=str(corpus), out=str(out))],
                             env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 120
    folder = None
    while time.time() < deadline and child.poll() is None:
        found = sorted(tmp_path.glob(".store.building-*"))
        if found and _journal_lines(found[0]) >= 3:
            folder = found[0]
            break
        time.sleep(0.02)
    assert folder is not None, "the build journalled no block before it ended"
    child.send_signal(signal.SIGKILL)
    child.wait()
    journalled = sum(len(json.loads(line)[1]) for line in (folder / JOURNAL).read_text().splitlines()
                     if line.strip())
    assert not out.exists() and 48 <= journalled < 320

    extracted = []
    real = data_prep.prepare._extract_chunk

    def counting(items, cfg, strict):
        extracted.extend(i for i, _ in items)
        return real(items, cfg, strict)

    monkeypatch.setattr(data_prep.prepare, "_extract_chunk", counting)
    resumed = prepare("emodb", corpus, out, feature_config=SMALL_CFG, jobs=1, progress=False)
    assert len(extracted) == 320 - journalled and resumed.info["resumed_utterances"] == journalled
    assert not sorted(tmp_path.glob(".store.building-*"))
    monkeypatch.undo()
    whole = prepare("emodb", corpus, tmp_path / "whole", feature_config=SMALL_CFG, jobs=1, progress=False)
    assert resumed.ids == whole.ids and resumed.key == whole.key
    np.testing.assert_array_equal(np.asarray(resumed.X), np.asarray(whole.X))


def test_skipped_rows_are_compacted_in_place_and_the_array_is_cut(tmp_path):
    root = make_emodb(tmp_path / "emodb", speakers=("03", "08"), letters="WFNT", takes="ab")
    wavs = sorted((root / "wav").glob("*.wav"))
    for bad in (wavs[0], wavs[5], wavs[6]):
        bad.write_bytes(b"RIFF0000WAVEjunk")  # found only when read: a row reserved, then dropped
    store = prepare("emodb", root, tmp_path / "store", feature_config=SMALL_CFG, jobs=1, progress=False)
    assert len(store) == len(wavs) - 3
    offset, shape, _ = npy_layout(store.path / "X.npy")
    assert shape == (len(store), 128, 128)
    assert (store.path / "X.npy").stat().st_size == offset + len(store) * 128 * 128 * 4
    assert not (store.path / ALL_ROWS).exists() and not (store.path / JOURNAL).exists()
    with threadpool_limits(limits=1):  # as the build extracts: BLAS's sums in one order
        for k, path in enumerate(store.audio_paths()):
            np.testing.assert_array_equal(store.X[k], extract(path, SMALL_CFG).features)


def test_the_writer_keeps_no_rows_and_its_header_fits_any_smaller_count(tmp_path):
    writer = FeatureWriter(tmp_path, "k", 40, (3, 2))
    rows = np.arange(40 * 6, dtype=np.float32).reshape(40, 3, 2)
    writer.write([(i, rows[i], 1.0, []) if i % 3 else (i, None, None, "bad") for i in range(40)])
    keep = [i for i in range(40) if i % 3]
    writer.compact(keep, tmp_path / "X.npy")
    np.testing.assert_array_equal(np.load(tmp_path / "X.npy"), rows[keep])
    for n in (1, 10 ** 6, 10 ** 12):
        assert len(npy_header((n, 128, 128), 128)) == 128
    with pytest.raises(ValueError, match="does not fit"):
        npy_header((1, 128, 128), 32)


def test_extraction_runs_with_one_blas_thread(tmp_path, monkeypatch):
    from threadpoolctl import threadpool_info

    seen = []
    real = data_prep.prepare.extract

    def spy(path, cfg, strict=False):
        seen.append({p["num_threads"] for p in threadpool_info()})
        return real(path, cfg, strict=strict)

    monkeypatch.setattr(data_prep.prepare, "extract", spy)
    root = make_emodb(tmp_path / "emodb", speakers=("03", "08"), letters="WF", takes="a")
    prepare("emodb", root, tmp_path / "store", feature_config=SMALL_CFG, jobs=1, progress=False)
    assert seen and all(s <= {1} for s in seen)


def test_an_interrupted_build_keeps_its_blocks_and_the_next_goes_on(tmp_path, monkeypatch, capsys):
    corpus = make_emodb(tmp_path / "emodb", speakers=("03", "08"), letters="WFNT", takes="abcd")  # 32: 2 blocks
    real = data_prep.prepare._extract_chunk
    done = []

    def interrupted(items, cfg, strict):
        if done:
            raise KeyboardInterrupt
        done.append(len(items))
        return real(items, cfg, strict)

    monkeypatch.setattr(data_prep.prepare, "_extract_chunk", interrupted)
    with pytest.raises(KeyboardInterrupt):
        prepare("emodb", corpus, tmp_path / "store", feature_config=SMALL_CFG, jobs=1, progress=False)
    assert "keeps its 16 extracted utterances" in capsys.readouterr().err
    assert len(sorted(tmp_path.glob(".store.building-*"))) == 1 and not (tmp_path / "store").exists()
    monkeypatch.setattr(data_prep.prepare, "_extract_chunk", real)
    store = prepare("emodb", corpus, tmp_path / "store", feature_config=SMALL_CFG, jobs=1, progress=False)
    assert store.info["resumed_utterances"] == 16 and len(store) == 32
    assert not sorted(tmp_path.glob(".store.building-*"))
