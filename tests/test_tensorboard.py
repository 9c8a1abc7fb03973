"""TensorBoard event files in run directories (emodarts_core.training.tblog), read back with
TensorBoard's own EventAccumulator: the scalars equal the epoch records, the α images and
the genotype text are those of the run, and a resumed run shows each step exactly once."""

import csv
import io
import json
import shutil
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tensorboard.backend.event_processing import event_accumulator  # tensorboard is a dependency: no skip
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

from data_prep import FoldData, Split, load_fold
from emodarts_core.config import ConfigError, preset
from emodarts_core.darts.search import ALPHA_HISTORY, GENOTYPE, run_search
from emodarts_core.space import genotypes
from emodarts_core.training import tblog
from emodarts_core.training.rundir import RunDir
from emodarts_core.training.tblog import CELL_SCALARS, SCALARS, TB_DIR, alpha_image
from emodarts_core.training.train import RESULT, run_retrain
from loop_helpers import kill_search_after_checkpoint, search_cfg, single_thread, tiny_fold, tiny_net, train_cfg  # noqa: F401,E501

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
CELLS = ("normal", "reduce", "seq")


# -- reading event files back ------------------------------------------------------------
def accumulate(run_dir: Path) -> event_accumulator.EventAccumulator:
    """Everything TensorBoard shows for `<run_dir>/tb` (no sampling: size guidance 0 keeps all)."""
    keep_all = {event_accumulator.SCALARS: 0, event_accumulator.IMAGES: 0, event_accumulator.TENSORS: 0}
    return event_accumulator.EventAccumulator(str(run_dir / TB_DIR), size_guidance=keep_all).Reload()


def texts(acc, tag: str) -> list[tuple[int, str]]:
    """(step, text) of a text tag (SummaryWriter.add_text stores it as `<tag>/text_summary`)."""
    return [(e.step, e.tensor_proto.string_val[0].decode()) for e in acc.Tensors(f"{tag}/text_summary")]


def raw_steps(run_dir: Path, tag: str) -> list[int]:
    """Steps of `tag` in the event files as written, before TensorBoard's purge on restart."""
    steps = []
    for path in sorted((run_dir / TB_DIR).glob("events.out.tfevents.*")):
        for event in EventFileLoader(str(path)).Load():
            steps += [event.step for value in event.summary.value if value.tag == tag]
    return steps


def f32(x) -> float:
    """What a TensorBoard scalar holds for x (scalars are stored as float32)."""
    return float(np.float32(x))


def assert_scalars_equal_records(acc, run_dir: Path) -> None:
    """Each scalar tag has one value per epoch that recorded it, equal to metrics.jsonl and metrics.csv."""
    records = RunDir(run_dir).read_epochs()
    with open(run_dir / "metrics.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["epoch"]) for r in rows] == [r["epoch"] for r in records]
    tags = set(acc.Tags()["scalars"])
    expected = [(key, tag, [r.get(key) for r in records]) for key, tag in SCALARS]
    expected += [(f"{key}.{c}", f"{tag}/{c}", [(r.get(key) or {}).get(c) for r in records])
                 for key, tag in CELL_SCALARS for c in (records[-1].get(key) or {})]
    checked = 0
    for key, tag, values in expected:
        logged = [(r["epoch"], v) for r, v in zip(records, values) if v is not None]
        if not logged:
            assert tag not in tags, f"{tag} logged although no record has {key}"
            continue
        events = acc.Scalars(tag)
        assert [e.step for e in events] == [epoch for epoch, _ in logged], tag
        assert [e.value for e in events] == [f32(v) for _, v in logged], tag
        csv_values = [float(row[key]) for row in rows if row[key] != ""]
        assert [f32(v) for v in csv_values] == [e.value for e in events], f"{tag} against metrics.csv"
        checked += 1
    assert checked >= 6


# -- a tiny run on the generated corpus ------------------------------------------------------
def _subset(split: Split, per_class: int) -> Split:
    keep = np.concatenate([np.flatnonzero(split.y == c)[:per_class] for c in np.unique(split.y)])
    keep.sort()
    return Split(X=split.X[keep], y=split.y[keep], ids=[split.ids[i] for i in keep],
                 speakers=[split.speakers[i] for i in keep])


@pytest.fixture(scope="module")
def generated_fold():
    """Fold 1 of the generated corpus (data_prep.synthetic), a few utterances per class, so
    that the search and the retraining take a few seconds."""
    fold = load_fold("synthetic", None, 1)
    return FoldData(_subset(fold.search, 8), _subset(fold.train, 4), _subset(fold.test, 4), fold.classes, fold.fold)


GEN_NET = dict(input_size=(128, 128), stem_stride=8)  # the smoke space on the 128x128 features


@pytest.fixture(scope="module")
def searched(generated_fold, tmp_path_factory):
    """Three search epochs, the first a weight warm-up without α steps (so no α loss)."""
    run_dir = tmp_path_factory.mktemp("tb") / "search"
    result = run_search(generated_fold, preset("smoke", **GEN_NET), search_cfg(epochs=3, warmup_epochs=1, batch_size=8),
                        run_dir)
    return result, accumulate(run_dir)


@pytest.fixture(scope="module")
def retrained(generated_fold, searched, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("tb") / "retrain"
    result = run_retrain(generated_fold, searched[0].genotype, preset("smoke", **GEN_NET),
                         train_cfg(epochs=2, batch_size=8), run_dir)
    return result, run_dir, accumulate(run_dir)


def test_search_scalars_equal_the_epoch_records(searched):
    result, acc = searched
    assert_scalars_equal_records(acc, result.run_dir)
    tags = set(acc.Tags()["scalars"])
    assert {"loss/train", "loss/val", "loss/alpha", "UA/val", "WA/val", "lr", "epoch_seconds"} <= tags
    assert [e.step for e in acc.Scalars("loss/alpha")] == [2, 3]  # epoch 1 warmed up the weights only
    assert [e.step for e in acc.Scalars("loss/train")] == [1, 2, 3]


def test_search_alpha_images_are_the_recorded_softmax(searched):
    result, acc = searched
    alpha = json.loads((result.run_dir / ALPHA_HISTORY).read_text())
    assert set(acc.Tags()["images"]) == {f"alpha/{c}" for c in CELLS}
    for cell in CELLS:
        events = acc.Images(f"alpha/{cell}")
        assert [e.step for e in events] == [1, 2, 3]
        for event, entry in zip(events, alpha["epochs"]):
            image = np.asarray(Image.open(io.BytesIO(event.encoded_image_string)).convert("RGB"))
            assert np.array_equal(image, alpha_image(entry["probs"][cell])), (cell, entry["epoch"])
            edges, ops = np.asarray(entry["probs"][cell]).shape
            assert (event.height, event.width) == (edges * tblog.PIXELS, ops * tblog.PIXELS)
            assert ops == len(alpha["primitives"][cell])
    legend = texts(acc, "alpha/legend")
    assert len(legend) == 1 and ", ".join(alpha["primitives"]["seq"]) in legend[0][1]


def test_search_genotype_text_is_to_text_of_the_genotype(searched):
    result, acc = searched
    logged = texts(acc, "genotype")
    alpha = json.loads((result.run_dir / ALPHA_HISTORY).read_text())
    assert logged == [(e["epoch"], genotypes.to_text(genotypes.from_dict(e["genotype"]))) for e in alpha["epochs"]]
    assert logged[-1][1] == genotypes.to_text(genotypes.load(result.run_dir / GENOTYPE))


def test_retrain_scalars_genotype_and_test_ua(retrained, searched):
    result, run_dir, acc = retrained
    assert_scalars_equal_records(acc, run_dir)
    assert "loss/alpha" not in acc.Tags()["scalars"] and not acc.Tags()["images"]
    assert texts(acc, "genotype") == [(0, genotypes.to_text(genotypes.load(searched[0].run_dir / GENOTYPE)))]
    stored = json.loads((run_dir / RESULT).read_text())
    for tag, key in (("test/UA", "test_ua"), ("test/WA", "test_wa")):
        assert [(e.step, e.value) for e in acc.Scalars(tag)] == [(2, f32(stored[key]))]


def test_a_finished_run_loaded_again_writes_no_event_file(retrained, generated_fold, searched):
    _, run_dir, _ = retrained
    before = sorted(p.name for p in (run_dir / TB_DIR).iterdir())
    run_retrain(generated_fold, searched[0].genotype, preset("smoke", **GEN_NET), train_cfg(epochs=2, batch_size=8),
                run_dir, resume=True)
    assert sorted(p.name for p in (run_dir / TB_DIR).iterdir()) == before


# -- resume: one event per step ---------------------------------------------------------------
EPOCHS = 4

def assert_one_event_per_step(run_dir: Path, epochs: int, *, images: bool):
    """Every per-epoch tag holds steps 1..epochs once each, with the records' values."""
    acc = accumulate(run_dir)
    for tag in acc.Tags()["scalars"]:
        if not tag.startswith("test/"):
            assert [e.step for e in acc.Scalars(tag)] == list(range(1, epochs + 1)), tag
    for tag in acc.Tags()["images"]:
        assert [e.step for e in acc.Images(tag)] == list(range(1, epochs + 1)), tag
    assert len(acc.Tags()["images"]) == (3 if images else 0)
    assert_scalars_equal_records(acc, run_dir)
    return acc


@pytest.mark.slow
def test_search_killed_then_resumed_has_one_event_per_step(tmp_path):
    """SIGKILL after epoch k's checkpoint (as tests/test_resume.py does), then resume=True."""
    run_dir = tmp_path / "run"
    assert kill_search_after_checkpoint(run_dir, EPOCHS) == -signal.SIGKILL
    rd = RunDir(run_dir)
    killed_at = rd.load_checkpoint()["epoch"]
    assert 2 <= killed_at < EPOCHS
    # The killed run had logged the epochs before its last checkpoint; the checkpointed epoch
    # itself is logged just after the checkpoint is written, so the kill may have beaten it.
    logged = raw_steps(run_dir, "loss/train")
    assert logged[:killed_at - 1] == list(range(1, killed_at)) and len(logged) <= killed_at

    run_search(tiny_fold(), tiny_net(), search_cfg(epochs=EPOCHS), run_dir, resume=True)
    assert raw_steps(run_dir, "loss/train") == list(range(1, EPOCHS + 1))  # on disk, not only as shown
    assert len(list((run_dir / TB_DIR).iterdir())) == 1
    acc = assert_one_event_per_step(run_dir, EPOCHS, images=True)
    assert [s for s, _ in texts(acc, "genotype")] == list(range(1, EPOCHS + 1))
    assert texts(acc, "genotype")[-1][1] == genotypes.to_text(genotypes.load(run_dir / GENOTYPE))
    assert len(texts(acc, "alpha/legend")) == 1


def test_retrain_interrupted_then_resumed_has_one_event_per_step(tmp_path, monkeypatch):
    """Interrupted after epoch 2's checkpoint but before its record (tests/test_resume.py's way)."""
    real_append = RunDir.append_epoch

    def interrupt_second(self, record):
        if record["epoch"] == 2:
            raise KeyboardInterrupt
        real_append(self, record)

    run_dir, genotype = tmp_path / "run", _a_genotype()
    monkeypatch.setattr(RunDir, "append_epoch", interrupt_second)
    with pytest.raises(KeyboardInterrupt):
        run_retrain(tiny_fold(), genotype, tiny_net(), train_cfg(epochs=3), run_dir)
    monkeypatch.setattr(RunDir, "append_epoch", real_append)
    assert raw_steps(run_dir, "loss/train") == [1]

    result = run_retrain(tiny_fold(), genotype, tiny_net(), train_cfg(epochs=3), run_dir, resume=True)
    assert raw_steps(run_dir, "loss/train") == [1, 2, 3]
    acc = assert_one_event_per_step(run_dir, 3, images=False)
    assert texts(acc, "genotype") == [(0, genotypes.to_text(genotype))]
    assert [(e.step, e.value) for e in acc.Scalars("test/UA")] == [(3, f32(result.test_ua))]


def _a_genotype():
    edges = [("skip_connect", 0), ("sep_conv_3x3", 1), ("max_pool_3x3", 0), ("dil_conv_3x3", 2)]
    seq = [("skip_connect", 0), ("lstm_1", 1), ("skip_connect", 0), ("rnn_1", 2)]
    genotype = genotypes.Genotype(edges, [2, 3], edges, [2, 3], seq, [2, 3])
    genotypes.check_compatible(genotype, tiny_net())
    return genotype


def test_older_event_files_are_replaced_and_hidden_until_then(tmp_path, monkeypatch):
    """Event files left in tb/ (here by an earlier run into a since-emptied directory) are
    deleted once the new file holds the history; until then the new file's purge at step 0
    hides their values from TensorBoard."""
    from torch.utils.tensorboard import SummaryWriter

    stale = SummaryWriter(str(tmp_path / "elsewhere"))
    for step in (1, 2, 3):
        stale.add_scalar("loss/train", 9.0, step)
    stale.close()
    (tmp_path / "run" / TB_DIR).mkdir(parents=True)
    old = tmp_path / "run" / TB_DIR / "events.out.tfevents.0000000001.host.1.0"  # sorts first, as an older file
    next((tmp_path / "elsewhere").iterdir()).rename(old)

    monkeypatch.setattr(tblog.RunLog, "_replace_older_files", lambda self: self._writer.flush())  # killed before
    run_retrain(tiny_fold(), "cnn", tiny_net(), train_cfg(epochs=2), tmp_path / "run")
    assert old.exists() and raw_steps(tmp_path / "run", "loss/train") == [1, 2, 3, 1, 2]
    assert_one_event_per_step(tmp_path / "run", 2, images=False)  # 9.0 at steps 1-3 purged

    monkeypatch.undo()
    run_retrain(tiny_fold(), "cnn", tiny_net(), train_cfg(epochs=2), tmp_path / "run2")
    shutil.copy(old, tmp_path / "run2" / TB_DIR / old.name)
    (tmp_path / "run2" / "FINISHED").unlink()
    run_retrain(tiny_fold(), "cnn", tiny_net(), train_cfg(epochs=2), tmp_path / "run2", resume=True)
    assert not (tmp_path / "run2" / TB_DIR / old.name).exists()
    assert len(list((tmp_path / "run2" / TB_DIR).iterdir())) == 1
    assert raw_steps(tmp_path / "run2", "loss/train") == [1, 2]


# -- the switch and a missing package ----------------------------------------------------------
def test_switched_off_then_resumed_with_it_on_logs_the_whole_history(tmp_path, monkeypatch):
    """tensorboard=False writes no tb/; it may change on resume, and the resumed run logs the
    epochs of the checkpoint too."""
    with pytest.raises(ConfigError, match="tensorboard"):
        train_cfg(tensorboard="yes").validate()
    real_append = RunDir.append_epoch

    def interrupt_third(self, record):
        if record["epoch"] == 3:
            raise KeyboardInterrupt
        real_append(self, record)

    run_dir = tmp_path / "run"
    monkeypatch.setattr(RunDir, "append_epoch", interrupt_third)
    with pytest.raises(KeyboardInterrupt):
        run_retrain(tiny_fold(), "cnn", tiny_net(), train_cfg(epochs=3, tensorboard=False), run_dir)
    monkeypatch.setattr(RunDir, "append_epoch", real_append)
    assert not (run_dir / TB_DIR).exists()

    run_retrain(tiny_fold(), "cnn", tiny_net(), train_cfg(epochs=3), run_dir, resume=True)
    acc = assert_one_event_per_step(run_dir, 3, images=False)
    assert texts(acc, "baseline") == [(0, "cnn")]


def test_without_the_package_the_loops_run_and_warn_once(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails as if not installed
    monkeypatch.setattr(tblog, "_warned", False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for name in ("a", "b"):
            result = run_retrain(tiny_fold(), "cnn", tiny_net(), train_cfg(epochs=1), tmp_path / name)
            assert np.isfinite(result.test_ua)
    unavailable = [w for w in caught if issubclass(w.category, tblog.TensorBoardUnavailableWarning)]
    assert len(unavailable) == 1 and "pip install tensorboard" in str(unavailable[0].message)
    assert not (tmp_path / "a" / TB_DIR).exists() and not (tmp_path / "b" / TB_DIR).exists()


# -- pieces ------------------------------------------------------------------------------------
def test_alpha_image_colours_are_centred_on_uniform():
    probs = np.array([[0.25, 0.25, 0.25, 0.25], [0.55, 0.25, 0.15, 0.05]])
    image = alpha_image(probs, pixels=3)
    assert image.shape == (6, 12, 3) and image.dtype == np.uint8
    block = image[::3, ::3]
    assert (block[0] == 255).all()  # uniform: white
    assert tuple(block[1, 0]) == (178, 24, 43)  # the largest deviation above uniform: the red end
    assert tuple(block[1, 1]) == (255, 255, 255)
    assert block[1, 3, 0] < block[1, 2, 0] < 255  # further below uniform: bluer (less red)
    assert block[1, 3, 2] < block[1, 2, 2] < 255 and block[1, 3, 2] >= 172
    assert (image[:3, :3] == image[0, 0]).all()  # one block per entry


def test_event_files_are_ignored_by_git_and_by_the_results_reader(tmp_path):
    from emodarts_core.study.results import find_run_dirs

    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    name = "results/emodb/emodarts/fold1/seed0/search/tb/events.out.tfevents.1790000000.host.1.0"
    assert subprocess.run(["git", "check-ignore", "-q", "--no-index", name], cwd=ROOT).returncode == 0
    run = tmp_path / "emodb" / "emodarts" / "fold1" / "search"
    (run / TB_DIR).mkdir(parents=True)
    (run / "config.json").write_text("{}")
    (run / TB_DIR / "events.out.tfevents.1790000000.host.1.0").write_bytes(b"")
    assert find_run_dirs(tmp_path) == [run]
