"""Building a feature store when things go wrong: a full disk, a kill, an unwritable cache.

The feature array is a memory map, which on a full disk dies of SIGBUS with no message;
so the free space is checked and the blocks reserved first, and the error says how much
is needed and where. A killed build leaves its hidden `.building-*` folder (a whole
corpus's features), which the next build deletes unless a live build holds it, and no
worker process behind. Any failed write ends in a DataError naming the folder and what
to do (EMODARTS_CACHE), not a raw OSError. `--strict` counts every unusable file.
"""

import errno
import fcntl
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import data_prep.folds
import data_prep.prepare
import data_prep.store
from data_fixtures import SMALL_CFG, make_emodb, write_wav
from data_prep.cli import main
from data_prep.errors import DataError
from data_prep.prepare import prepare
from data_prep.store import BUILDER

TESTS = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_emodb(tmp_path_factory.mktemp("c") / "emodb", letters="WFNT", takes="a")


def _builds(folder: Path) -> list[Path]:
    return sorted(folder.glob(".*.building-*"))


def _prepare(corpus, out, **kw):
    return prepare("emodb", corpus, out, feature_config=SMALL_CFG, jobs=1, progress=False, **kw)


def test_too_little_free_space_is_a_clear_error_before_the_memory_map(corpus, tmp_path, monkeypatch):
    real = data_prep.store.shutil.disk_usage
    monkeypatch.setattr(data_prep.store.shutil, "disk_usage", lambda p: real(p)._replace(free=10_000))
    with pytest.raises(DataError, match=r"not enough free space .* needs [0-9.]+ (KiB|MiB) and .* has 9\.8 KiB free; .*"
                                        "EMODARTS_CACHE") as info:
        _prepare(corpus, tmp_path / "store")
    assert info.value.path == str(tmp_path)
    assert not (tmp_path / "store").exists() and not _builds(tmp_path)


def test_a_disk_that_fills_while_reserving_is_a_clear_error(corpus, tmp_path, monkeypatch):
    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(data_prep.store.os, "posix_fallocate", full, raising=False)
    with pytest.raises(DataError, match="not enough free space"):
        _prepare(corpus, tmp_path / "store")
    assert not (tmp_path / "store").exists() and not _builds(tmp_path)


@pytest.mark.parametrize("code, fix", [(errno.ENOSPC, "free some space"), (errno.EROFS, "make the folder writable"),
                                       (errno.EACCES, "make the folder writable")])
def test_a_failed_write_is_a_data_error_with_what_to_do(corpus, tmp_path, monkeypatch, code, fix):
    def fail(*args, **kwargs):
        raise OSError(code, os.strerror(code))
    monkeypatch.setattr(data_prep.store, "write_json_atomic", fail)  # while writing store.json
    with pytest.raises(DataError, match=rf"cannot write the feature store store here .*{fix}.*EMODARTS_CACHE"):
        _prepare(corpus, tmp_path / "store")
    assert not (tmp_path / "store").exists() and not _builds(tmp_path)


def test_a_read_only_cache_names_emodarts_cache_and_the_cli_says_it_in_one_line(corpus, tmp_path, monkeypatch,
                                                                                capsys):
    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))
    monkeypatch.setattr(data_prep.store, "mkdtemp_shared", read_only)
    with pytest.raises(DataError, match="Read-only file system.*set EMODARTS_CACHE to a writable folder"):
        _prepare(corpus, tmp_path / "cache" / "store")
    assert main(["prepare", "--corpus", "emodb", "--root", str(corpus), "--out", str(tmp_path / "s2"),
                 "--jobs", "1", "--no-progress", "--sample-rate", "8000", "--duration", "0.5"]) == 2
    err = capsys.readouterr().err
    assert "EMODARTS_CACHE" in err and "Traceback" not in err


def test_abandoned_build_folders_are_deleted_and_live_ones_kept(corpus, tmp_path):
    out = tmp_path / "store"
    abandoned, live, old, fresh = (tmp_path / f".store.building-{n}" for n in ("dead", "live", "old", "new"))
    for folder in (abandoned, live, old, fresh):
        folder.mkdir()
        (folder / "X_all.npy").write_bytes(b"\0" * 4096)
    for folder in (abandoned, live):
        (folder / BUILDER).touch()
    held = open(live / BUILDER, "a")
    fcntl.flock(held, fcntl.LOCK_EX)  # a build still running
    os.utime(old, (time.time() - 7 * 3600,) * 2)  # no lock file (an older version's build), 7 h old
    try:
        store = _prepare(corpus, out)
    finally:
        held.close()
    assert len(store) == 40 and not (out / BUILDER).exists()
    assert _builds(tmp_path) == sorted([live, fresh])


KILLED_CHILD = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    from data_fixtures import SMALL_CFG
    from data_prep.prepare import prepare
    prepare("emodb", {corpus!r}, {out!r}, feature_config=SMALL_CFG, jobs=2, progress=False)
""")


def _descendants(pid: int) -> set[int]:
    children, found = {}, set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc and PR_SET_PDEATHSIG")
def test_a_build_killed_mid_extraction_leaves_no_worker_and_the_next_cleans_up(tmp_path):
    corpus = make_emodb(tmp_path / "emodb", takes="abcdefgh")  # 320 of the 4 classes: seconds of extraction
    out = tmp_path / "store"
    script = KILLED_CHILD.format(tests=str(TESTS), corpus=str(corpus), out=str(out))
    child = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "OMP_NUM_THREADS": "1"})
    workers: set[int] = set()
    deadline = time.time() + 120
    while time.time() < deadline and not (_builds(tmp_path) and len(workers) >= 2):
        workers |= _descendants(child.pid)
        time.sleep(0.05)
    assert _builds(tmp_path) and workers, "the build did not start its workers"
    time.sleep(0.3)
    workers |= _descendants(child.pid)
    child.send_signal(signal.SIGKILL)
    child.wait()
    deadline = time.time() + 20
    while time.time() < deadline and any(_alive(p) for p in workers):
        time.sleep(0.1)
    assert not [p for p in workers if _alive(p)], "worker processes outlived the killed build"
    assert _builds(tmp_path) and not out.exists()  # what the kill left
    store = _prepare(corpus, out)
    assert len(store) == 320 and not _builds(tmp_path)


def test_strict_counts_every_unusable_file(tmp_path):
    root = make_emodb(tmp_path / "emodb", letters="WF", takes="a")
    wavs = sorted((root / "wav").glob("0*.wav"))
    for path in wavs[:4]:  # the extraction cannot use them
        path.write_bytes(b"RIFF0000WAVEjunk")
    with pytest.raises(DataError, match=r"strict mode; 4 file\(s\) unusable") as info:
        _prepare(root, tmp_path / "strict", strict=True)
    assert info.value.path == str(wavs[0]) and "and 1 more" not in str(info.value)
    assert not (tmp_path / "strict").exists() and not _builds(tmp_path)


def test_strict_fails_at_scan_time_on_what_the_scan_knows(tmp_path, monkeypatch):
    """A reader's skip, a missing file or an empty one is known before any audio is read:
    strict mode fails then, counting all of them, and extracts nothing."""
    root = make_emodb(tmp_path / "emodb", letters="WF", takes="a")
    write_wav(root / "wav" / "bad_name.wav")  # the reader skips it
    wavs = sorted((root / "wav").glob("0*.wav"))
    wavs[0].write_bytes(b"")
    wavs[1].write_bytes(b"RIFF0000WAVEjunk")  # found only by reading it
    monkeypatch.setattr(data_prep.prepare, "_run_extraction", lambda *a, **k: pytest.fail("extracted audio"))
    with pytest.raises(DataError, match=r"file name does not follow .*strict mode; 2 file\(s\) unusable; "
                                        r".*empty file \(0 bytes\)\)") as info:
        _prepare(root, tmp_path / "strict", strict=True)
    assert info.value.path.endswith("bad_name.wav")
    assert not (tmp_path / "strict").exists() and not _builds(tmp_path)


def test_the_cli_does_not_say_written_to_when_the_folds_could_not_be_written(corpus, tmp_path, monkeypatch, capsys):
    """A store in a read-only (shared) cache: its folds are computed on use, and the summary says so."""
    store = _prepare(corpus, tmp_path / "store")
    (store.path / "folds-seed0.json").unlink()

    def read_only(folds, path):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
    monkeypatch.setattr(data_prep.folds, "save_folds", read_only)
    args = ["prepare", "--corpus", "emodb", "--root", str(corpus), "--out", str(store.path), "--jobs", "1",
            "--no-progress", "--sample-rate", "8000", "--duration", "0.5"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "written to" not in out and "not written: cannot write" in out and "computed again on use" in out
    monkeypatch.undo()
    assert main(args) == 0
    assert f"written to {store.path / 'folds-seed0.json'}" in capsys.readouterr().out


UNGUARDED_SCRIPT = textwrap.dedent("""
    from data_prep import load_fold
    fd = load_fold("emodb", {corpus!r}, 1)
    print("test utterances", len(fd.test))
""")


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="load_fold's build uses a pool from 2 CPUs")
def test_load_fold_at_a_scripts_top_level_without_a_main_guard_still_builds(tmp_path):
    """spawn and forkserver run a script's top level again in every worker: the workers stop
    at once with one line, and the build goes on in the script's process, with a warning."""
    corpus = make_emodb(tmp_path / "emodb", letters="WF", takes="a")  # 20 files: two workers
    script = tmp_path / "script.py"
    script.write_text(UNGUARDED_SCRIPT.format(corpus=str(corpus)))
    env = {**os.environ, "EMODARTS_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(TESTS.parent),
           "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "test utterances 4" in done.stdout
    assert "extracting in this process instead" in done.stderr and "Traceback" not in done.stderr
