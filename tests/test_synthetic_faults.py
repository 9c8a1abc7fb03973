"""The generated corpus has the feature store's safeguards: a cache that is full,
read-only or not a folder is a DataError naming the path and what to do (not a raw
LibsndfileError, OSError or NotADirectoryError), nothing is left behind, and the
folder of a killed generation is deleted by the next one unless a live one holds it."""

import errno
import os
import pathlib
import subprocess
import sys
import time

import pytest

import data_prep.store
from data_prep import load_fold
from data_prep.errors import DataError
from data_prep.store import STALE_UNLOCKED_S, discard_build, new_build_dir
from data_prep.synthetic import generate

SMALL = dict(seed=7, n_speakers=2, per_class_per_speaker=1)


def _leftovers(folder):
    return sorted(p.name for p in folder.glob(".corpus.*"))


def test_a_cache_that_is_not_a_folder_is_named(tmp_path):
    (tmp_path / "cache").write_text("a file where the cache folder should be\n")
    with pytest.raises(DataError, match=r"cache is not a folder .*remove or rename that file.*EMODARTS_CACHE") as info:
        generate(tmp_path / "cache" / "synthetic" / "corpus", **SMALL)
    assert info.value.path == str(tmp_path / "cache" / "synthetic" / "corpus")
    (tmp_path / "corpus").write_text("a file\n")
    with pytest.raises(DataError, match=r"corpus is not a folder"):
        generate(tmp_path / "corpus", **SMALL)


def test_load_fold_with_a_file_as_the_cache_gives_the_same_error(tmp_path, monkeypatch):
    (tmp_path / "cache").write_text("not a folder\n")
    monkeypatch.setenv("EMODARTS_CACHE", str(tmp_path / "cache"))
    with pytest.raises(DataError, match="is not a folder"):
        load_fold("synthetic", None, 1)


def test_a_read_only_cache_is_a_clear_error(tmp_path, monkeypatch):
    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(tmp_path))
    monkeypatch.setattr(data_prep.store, "mkdtemp_shared", read_only)
    with pytest.raises(DataError, match=r"Read-only file system\); make the folder writable.*EMODARTS_CACHE"):
        generate(tmp_path / "corpus", **SMALL)
    assert list(tmp_path.iterdir()) == []


def test_a_disk_that_fills_during_generation_is_a_clear_error_and_leaves_nothing(tmp_path, monkeypatch):
    real, written = pathlib.Path.write_bytes, []

    def fills_up(self, data):
        if len(written) == 3:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))
        written.append(self)
        return real(self, data)
    monkeypatch.setattr(pathlib.Path, "write_bytes", fills_up)
    with pytest.raises(DataError, match=r"No space left on device\); free some space.*EMODARTS_CACHE"):
        generate(tmp_path / "corpus", **SMALL)
    assert list(tmp_path.iterdir()) == []


def test_a_file_size_limit_hit_by_the_real_writes_is_a_clear_error(tmp_path):
    """The kernel refuses the write itself (RLIMIT_FSIZE, as a quota would): no mock."""
    script = ("import resource, signal, sys\n"
              "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
              "resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))\n"
              "from data_prep.errors import DataError\n"
              "from data_prep.synthetic import generate\n"
              "try:\n"
              "    generate(sys.argv[1], seed=7, n_speakers=2, per_class_per_speaker=1)\n"
              "except DataError as exc:\n"
              "    print(type(exc).__name__, exc)\n")
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path / "corpus")], capture_output=True, text=True,
                         timeout=120)
    assert out.stdout.startswith("DataError") and "File too large" in out.stdout, out.stdout + out.stderr
    assert "EMODARTS_CACHE" in out.stdout and list(tmp_path.iterdir()) == []


KILLED = """
import os, pathlib, signal, sys
from data_prep.synthetic import generate
real, count = pathlib.Path.write_bytes, [0]
def write_then_die(self, data):
    count[0] += 1
    if count[0] == 4:
        os.kill(os.getpid(), signal.SIGKILL)
    return real(self, data)
pathlib.Path.write_bytes = write_then_die
generate(sys.argv[1], seed=7, n_speakers=2, per_class_per_speaker=1)
"""


def test_a_killed_generation_is_cleaned_up_by_the_next_but_a_live_one_is_kept(tmp_path):
    root = tmp_path / "corpus"
    killed = subprocess.run([sys.executable, "-c", KILLED, str(root)], timeout=120)
    assert killed.returncode == -9
    left = _leftovers(tmp_path)
    assert len(left) == 1 and left[0].startswith(".corpus.building-")
    old_style = tmp_path / ".corpus.tmp-old"  # an unlocked leftover of an earlier version, hours old
    recent_style = tmp_path / ".corpus.tmp-recent"
    for folder in (old_style, recent_style):
        (folder / "wav").mkdir(parents=True)
    hours_ago = time.time() - STALE_UNLOCKED_S - 60
    os.utime(old_style, (hours_ago, hours_ago))
    live = new_build_dir(root)  # a generation running now, elsewhere
    try:
        assert generate(root, **SMALL) == root
        assert _leftovers(tmp_path) == sorted([live.name, recent_style.name])
        assert len(list((root / "wav").iterdir())) == 8 and not (root / ".builder").exists()
    finally:
        discard_build(live)


def test_a_complete_corpus_found_in_place_still_clears_a_killed_generations_folder(tmp_path):
    """Two generations at once, one killed: the other finished the corpus, so later calls
    find it in place, and they remove what the killed one left."""
    root = generate(tmp_path / "corpus", **SMALL)
    killed = subprocess.run([sys.executable, "-c", KILLED, str(tmp_path / "other" / "corpus")], timeout=120)
    assert killed.returncode == -9
    (left,) = (tmp_path / "other").glob(".corpus.building-*")
    left.rename(tmp_path / left.name)  # as if it had been a build of this corpus
    assert generate(root, **SMALL) == root and _leftovers(tmp_path) == []
