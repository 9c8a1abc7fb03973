"""`python -m data_prep stores`: the cache's stores, which are stale, and removing them.

A corpus that moves or changes gets a new store beside the old one; the command names the
old one stale (with why) and `--remove-stale` deletes it with any abandoned build, never a
current store or a live build.
"""

import fcntl
import os

import pytest

from data_fixtures import SMALL_CFG, make_emodb, write_wav
from data_prep.cli import main
from data_prep.registry import cached_prepare
from data_prep.stale import BUILDING, CURRENT, STALE, UNFINISHED, cache_entries
from data_prep.store import BUILDER


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EMODARTS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("EMODARTS_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.delenv("EMODARTS_SHARED_CACHE", raising=False)


def _build(root):
    return cached_prepare("emodb", root, feature_config=SMALL_CFG, jobs=1, progress=False)


def test_stale_stores_are_named_with_their_reason_and_removed(tmp_path, capsys):
    moved = make_emodb(tmp_path / "moved", speakers=("03", "08"), letters="WF", takes="a")
    changed = make_emodb(tmp_path / "changed", speakers=("03", "08"), letters="WF", takes="a")
    kept = make_emodb(tmp_path / "kept", speakers=("03", "08"), letters="WF", takes="a")
    stores = {name: _build(root).path for name, root in (("moved", moved), ("changed", changed), ("kept", kept))}
    os.rename(moved, tmp_path / "elsewhere")
    rewritten = sorted((changed / "wav").glob("*.wav"))[0]
    write_wav(rewritten, seed=77)  # one file rewritten: its size or mtime changes
    os.utime(rewritten, ns=(1, 1))
    abandoned = stores["kept"].with_name(f".{stores['kept'].name}.building-dead")
    live = stores["kept"].with_name(f".{stores['kept'].name}.building-live")
    for folder in (abandoned, live):
        folder.mkdir()
        (folder / BUILDER).touch()
        (folder / "X_all.npy").write_bytes(b"\0" * 8192)
    held = open(live / BUILDER, "a")
    fcntl.flock(held, fcntl.LOCK_EX)
    try:
        states = {e.path: (e.state, e.reason) for e in cache_entries(tmp_path / "cache")}
        assert states[stores["kept"]][0] == CURRENT
        assert states[stores["moved"]][0] == STALE and "no longer exists" in states[stores["moved"]][1]
        assert states[stores["changed"]][0] == STALE and "changed or went missing" in states[stores["changed"]][1]
        assert states[abandoned][0] == UNFINISHED and states[live][0] == BUILDING
        assert main(["stores"]) == 0
        out = capsys.readouterr().out
        assert "3 stale or unfinished" in out and "--remove-stale" in out and str(stores["moved"]) in out
        assert all(p.exists() for p in (*stores.values(), abandoned, live))
        assert main(["stores", "--remove-stale"]) == 0
        assert "removed 3" in capsys.readouterr().out
    finally:
        held.close()
    assert stores["kept"].exists() and live.exists()
    assert not stores["moved"].exists() and not stores["changed"].exists() and not abandoned.exists()
    write_wav(kept / "wav" / "03a99Wa.wav", seed=78)  # a file added to the corpus
    assert {e.path: e.state for e in cache_entries(tmp_path / "cache")}[stores["kept"]] == STALE
