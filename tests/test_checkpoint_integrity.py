"""A damaged checkpoint is never loaded silently: flipped bytes in a tensor's data or in
the pickled structure, or a truncated file, give `DamagedFileError` naming the file and
the last good epoch (the checkpoint kept as checkpoint.prev.pt), and resuming from that
epoch ends exactly as a run that was never interrupted."""

import struct
import zipfile

import pytest
import torch

from data_prep.errors import EmodartsError
from emodarts_core.darts.search import run_search
from emodarts_core.training.archives import DamagedFileError
from emodarts_core.training.rundir import CHECKPOINT, PREVIOUS_CHECKPOINT, RunDir
from loop_helpers import search_cfg, single_thread, tiny_fold, tiny_net, without_timing  # noqa: F401


def _member_offset(path, member_suffix):
    """Where the data of the archive member whose name ends with `member_suffix` starts."""
    with zipfile.ZipFile(path) as archive:
        info = next(i for i in archive.infolist() if i.filename.endswith(member_suffix))
    with open(path, "rb") as fh:
        fh.seek(info.header_offset + 26)
        name_len, extra_len = struct.unpack("<HH", fh.read(4))
    return info.header_offset + 30 + name_len + extra_len, info.file_size


def _flip(path, member_suffix, count=8, at=0.5):
    """Flip `count` bytes of the member's data, starting at the fraction `at` of it."""
    start, size = _member_offset(path, member_suffix)
    data = bytearray(path.read_bytes())
    first = start + int(size * at)
    for i in range(first, first + count):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def _state(epoch):
    return {"epoch": epoch, "w": torch.arange(256, dtype=torch.float32) + epoch, "history": [{"epoch": epoch}]}


def _two_checkpoints(tmp_path):
    rd = RunDir(tmp_path / "run")
    rd.save_checkpoint(_state(1))
    rd.save_checkpoint(_state(2))
    return RunDir(tmp_path / "run")  # a fresh object, as a resumed run has


def test_intact_checkpoints_load_and_the_previous_one_is_kept(tmp_path):
    rd = _two_checkpoints(tmp_path)
    assert rd.load_checkpoint()["epoch"] == 2
    assert rd.load_torch(PREVIOUS_CHECKPOINT)["epoch"] == 1
    rd.mark_finished({"done": True})
    assert not rd.exists(PREVIOUS_CHECKPOINT) and rd.load_checkpoint()["epoch"] == 2


@pytest.mark.parametrize("member", ["data/0", "data.pkl"])
def test_flipped_bytes_give_a_clear_error_naming_the_file_and_the_last_good_epoch(tmp_path, member):
    rd = _two_checkpoints(tmp_path)
    path = rd.file(CHECKPOINT)
    _flip(path, member, at=0.5 if member == "data/0" else 0.3)
    with pytest.raises(DamagedFileError) as err:
        rd.load_checkpoint()
    message = str(err.value)
    assert isinstance(err.value, EmodartsError) and err.value.last_good_epoch == 1
    assert str(path) in message and member in message and "CRC" in message
    assert "last good epoch is 1" in message and str(rd.file(PREVIOUS_CHECKPOINT)) in message
    rd.file(PREVIOUS_CHECKPOINT).replace(path)  # what the message says to do
    assert RunDir(rd.path).load_checkpoint()["epoch"] == 1


def test_a_damaged_only_checkpoint_says_there_is_no_good_epoch(tmp_path):
    rd = RunDir(tmp_path / "run")
    rd.save_checkpoint(_state(1))
    _flip(rd.file(CHECKPOINT), "data/0")
    with pytest.raises(DamagedFileError, match="no last good epoch") as err:
        RunDir(rd.path).load_checkpoint()
    assert err.value.last_good_epoch is None


def test_a_truncated_checkpoint_and_a_damaged_model_are_named(tmp_path):
    rd = _two_checkpoints(tmp_path)
    path = rd.file(CHECKPOINT)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DamagedFileError, match=r"checkpoint\.pt is damaged: it is not an intact archive"):
        rd.load_checkpoint()
    rd.atomic_save_torch("model.pt", {"w": torch.ones(64)})
    _flip(rd.file("model.pt"), "data/0", count=4)
    with pytest.raises(DamagedFileError, match=r"model\.pt is damaged: its member .*data/0"):
        rd.load_torch("model.pt")


def test_a_search_resumed_from_the_last_good_epoch_equals_an_uninterrupted_one(tmp_path, monkeypatch):
    cfg = search_cfg(epochs=3)
    reference = run_search(tiny_fold(), tiny_net(), cfg, tmp_path / "ref")
    real_append = RunDir.append_epoch

    def interrupt_second(self, record):  # after epoch 2's checkpoint is written
        if record["epoch"] == 2:
            raise KeyboardInterrupt
        real_append(self, record)

    monkeypatch.setattr(RunDir, "append_epoch", interrupt_second)
    with pytest.raises(KeyboardInterrupt):
        run_search(tiny_fold(), tiny_net(), cfg, tmp_path / "run")
    monkeypatch.setattr(RunDir, "append_epoch", real_append)
    rd = RunDir(tmp_path / "run")
    _flip(rd.file(CHECKPOINT), "data/0")  # flipped bytes in the weights of epoch 2's checkpoint
    with pytest.raises(DamagedFileError, match="last good epoch is 1"):
        run_search(tiny_fold(), tiny_net(), cfg, tmp_path / "run", resume=True)
    rd.file(PREVIOUS_CHECKPOINT).replace(rd.file(CHECKPOINT))
    result = run_search(tiny_fold(), tiny_net(), cfg, tmp_path / "run", resume=True)
    assert result.genotype == reference.genotype
    assert without_timing(result.history) == without_timing(reference.history)
    ckpt, ref = RunDir(tmp_path / "run").load_checkpoint(), RunDir(tmp_path / "ref").load_checkpoint()
    for name, value in ref["model"].items():
        assert torch.equal(ckpt["model"][name], value), name
