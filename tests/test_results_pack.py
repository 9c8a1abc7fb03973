"""A study packed into one file (emodarts_core/study/results/pack.py): the tables regenerate from
the pack exactly as from its run directories, unpacking gives every file back, and packing never
silently replaces a newer pack."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from emodarts_core.study import results
from emodarts_core.study.results import pack

REPO = Path(__file__).resolve().parents[1]
TABLE_FILES = ("tables.md", "study.csv", "summary.csv", "wall_time.csv")


def _run(root: Path, rel: str, files: dict) -> Path:
    path = root / rel
    path.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        text = content if isinstance(content, str) else json.dumps(content, indent=2)
        (path / name).write_text(text)
    return path


def _study(root: Path) -> Path:
    """A small seeds study: emodarts and cnn, two folds, two seeds, both protocols, with searches."""
    confusions = {1: [[4, 1], [1, 4]], 2: [[3, 2], [1, 4]]}
    for model in ("emodarts", "cnn"):
        for fold in (1, 2):
            for seed in (0, 1):
                base = f"{model}/fold{fold}/seed{seed}"
                if model == "emodarts":
                    genotype = {"normal": [["skip_connect", 0], ["avg_pool_3x3", 1]],
                                "seq": [["lstm", 0], ["skip_connect" if seed else "rnn", 1]]}
                    epochs = [{"epoch": e, "genotype": genotype, "lift": {"normal": 1.0 + e / 10, "seq": 1.5}}
                              for e in (1, 2, 3)]
                    _run(root, f"{base}/search", {"config.json": {"kind": "search"},
                                                  "alpha_history.json": {"epochs": epochs},
                                                  "genotype.json": genotype, "genotype.txt": "Genotype(...)\n",
                                                  "metrics.jsonl": '{"epoch": 1, "seconds": 2.5}\n',
                                                  "FINISHED": {"kind": "search"}})
                for protocol in ("paper", "full"):
                    conf = confusions[fold] if model == "emodarts" else [[3, 2], [2, 3]]
                    ua = (conf[0][0] / 5 + conf[1][1] / 5) / 2
                    study = {"dataset": "emodb", "protocol": protocol, "model": model, "scope": "", "fold": fold,
                             "seed": seed}
                    _run(root, f"{base}/retrain-{protocol}", {
                        "config.json": {"kind": "retrain", "study": study},
                        "result.json": {"test_ua": ua + seed / 100, "test_wa": ua, "params": 1000, "confusion": conf},
                        "metrics.jsonl": '{"epoch": 1, "seconds": 1.5}\n{"epoch": 2, "seconds": 1.0}\n',
                        "metrics.csv": "epoch,seconds\n1,1.5\n2,1.0\n", "normalisation.json": {"mean": [0.5]},
                        "FINISHED": {"kind": "retrain"}})
    return root


def _tables(root: Path) -> dict[str, bytes]:
    assert results.main([str(root), "--markdown", str(root / "tables.md")]) == 0
    return {name: (root / name).read_bytes() for name in TABLE_FILES}


def _drop_run_dirs(root: Path) -> None:
    for child in root.iterdir():
        if child.is_dir():
            shutil.rmtree(child)


@pytest.fixture
def study(tmp_path):
    return _study(tmp_path / "results" / "emodb")


def test_tables_from_the_pack_equal_those_from_the_run_directories(study, capsys):
    from_dirs = _tables(study)
    report = pack.pack_study(study)
    assert report.written and report.runs == 20 and report.from_disk == 20
    _drop_run_dirs(study)
    for name in TABLE_FILES:
        (study / name).unlink()
    assert _tables(study) == from_dirs
    assert len(results.collect_study(study / pack.PACK_NAME)) == 16  # the pack itself names the study too


def test_unpack_gives_back_every_file_and_the_sweep_manifest_byte_for_byte(study, tmp_path):
    manifest = study.parent / "sweep.json"
    manifest.write_text('{"format": 2, "state": "finished"}\n')
    (study / "emodarts/fold1/seed0/search/checkpoint.pt").write_bytes(b"\x80weights")  # not packed
    (study / "emodarts/fold1/seed0/search/.lock").write_text("1234")  # not packed
    pack.pack_study(study)
    before = {p.relative_to(study): p.read_bytes() for p in study.rglob("*")
              if p.is_file() and p.suffix != ".pt" and p.name not in (".lock", pack.PACK_NAME)}
    dest = tmp_path / "copy" / "emodb"
    assert pack.unpack_study(study / pack.PACK_NAME, dest) == len(before) + 1
    after = {p.relative_to(dest): p.read_bytes() for p in dest.rglob("*") if p.is_file()}
    assert after == before
    assert (dest.parent / "sweep.json").read_text() == manifest.read_text()
    (dest / "cnn/fold1/seed0/retrain-full/result.json").write_text("{}")
    with pytest.raises(pack.PackRefused, match="already holds 1 of the packed files"):
        pack.unpack_study(study / pack.PACK_NAME, dest)


def test_packing_keeps_packed_runs_without_a_directory_and_refuses_a_newer_pack(study):
    pack.pack_study(study)
    shutil.rmtree(study / "cnn")
    report = pack.pack_study(study)
    assert not report.written and report.kept == 8 and report.runs == 20  # nothing lost, nothing rewritten
    result = study / "emodarts/fold1/seed0/retrain-full/result.json"
    packed = {r.rel: r for r in pack.read_pack(study / pack.PACK_NAME)}["emodarts/fold1/seed0/retrain-full"]
    result.write_text('{"test_ua": 0.1}')  # an older state of the run than the packed one
    os.utime(result, (packed.modified - 100, packed.modified - 100))
    for other in result.parent.iterdir():
        os.utime(other, (packed.modified - 100, packed.modified - 100))
    stat = (study / pack.PACK_NAME).stat()
    with pytest.raises(pack.PackRefused, match="newer, different copy of 1 run"):
        pack.pack_study(study)
    assert (study / pack.PACK_NAME).stat().st_mtime_ns == stat.st_mtime_ns  # nothing written
    assert results.main(["pack", str(study)]) == 1
    forced = pack.pack_study(study, force=True)
    assert forced.written and forced.runs == 20


def test_pack_leaves_out_links_and_names_them(study, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("not a run's file")
    (study / "cnn/fold1/seed0/retrain-full/notes.txt").symlink_to(secret)
    report = pack.pack_study(study)
    assert any("notes.txt (a symbolic link)" in item for item in report.left_out)
    packed = {r.rel: r for r in pack.read_pack(study / pack.PACK_NAME)}
    assert not packed["cnn/fold1/seed0/retrain-full"].has("notes.txt")


def test_a_file_that_is_not_a_pack_is_refused_with_its_name(tmp_path, capsys):
    study = tmp_path / "emodb"
    study.mkdir()
    (study / pack.PACK_NAME).write_bytes(b"not parquet at all")
    with pytest.raises(pack.PackError, match=f"{pack.PACK_NAME}: not a readable pack"):
        pack.find_runs(study)
    pq.write_table(pa.table({"run": ["a"]}), study / pack.PACK_NAME)
    assert results.main([str(study)]) == 1
    assert "not a pack of run directories" in capsys.readouterr().err
    table = pa.table({"run": ["a"], "modified": [0.0], "../../escape.txt": ["x"]}).replace_schema_metadata(
        {"emodarts.format": pack.PACK_FORMAT, "emodarts.version": str(pack.PACK_VERSION)})
    pq.write_table(table, study / pack.PACK_NAME)
    with pytest.raises(pack.PackError, match="does not name a file of a run directory"):
        pack.unpack_study(study / pack.PACK_NAME, tmp_path / "out")
    assert not (tmp_path / "escape.txt").exists()


COMMITTED = ("results/emodb", "results/second_study/emodb", "results/first_study/emodb")


@pytest.mark.parametrize("study_path", COMMITTED)
def test_committed_study_rebuilds_its_tables_byte_for_byte_from_its_pack(study_path, tmp_path, monkeypatch):
    """What `python -m emodarts_core.results STUDY --markdown STUDY/tables.md` writes from the
    committed pack alone (a fresh clone holds no run directories), with the study's
    `ranking.csv` where it has one, equals the committed files.
    Each takes seconds: the current study's (12 models, 182 rank-correlation bootstraps) about
    8 s on a busy 2-core machine, since its bootstraps are vectorised (study.ranking)."""
    source = REPO / study_path
    copy = tmp_path / study_path
    copy.mkdir(parents=True)
    shutil.copyfile(source / pack.PACK_NAME, copy / pack.PACK_NAME)
    if (source / "ranking.csv").is_file():  # the supernets' one-shot scores: made from checkpoints, not packed
        shutil.copyfile(source / "ranking.csv", copy / "ranking.csv")
    monkeypatch.chdir(tmp_path)
    assert results.main([study_path, "--markdown", f"{study_path}/tables.md"]) == 0
    for name in TABLE_FILES:
        assert (copy / name).read_bytes() == (source / name).read_bytes(), f"{study_path}/{name} differs"


def _git(*args) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True)


@pytest.mark.skipif(shutil.which("git") is None or _git("rev-parse").returncode != 0, reason="not a git checkout")
def test_the_committed_results_are_a_few_files():
    tracked = [p for p in _git("ls-files", "results").stdout.splitlines() if (REPO / p).is_file()]
    # three studies (a README, a pack and its tables each), the α budget's pilot and a benchmark record
    assert len(tracked) <= 30, f"{len(tracked)} files tracked under results/"
    assert sum((REPO / p).stat().st_size for p in tracked) <= 15 * 2**20
    for study_path in COMMITTED:
        assert f"{study_path}/{pack.PACK_NAME}" in tracked
        assert not pack.run_directories(REPO / study_path), f"{study_path} holds run directories: pack them"


def test_the_provenance_scan_reads_packed_runs_too(study):
    """study.nested.scan_provenance checks who judged a choice in packed results as in folders."""
    from emodarts_core.config import ConfigError
    from emodarts_core.study.nested import scan_provenance

    leak = study / "classic" / "fold1" / "seed0" / "retrain-full"
    _run(study, "classic/fold1/seed0/retrain-full", {
        "config.json": {"kind": "retrain"},
        "result.json": {"test_ua": 0.5, "choice": {"judged_by": ["03", "08"], "test_speakers": ["08"]}}})
    pack.pack_study(study)
    shutil.rmtree(study / "classic")
    with pytest.raises(ConfigError, match=str(leak / "result.json")):
        scan_provenance(study.parent)


def test_a_packed_study_keeps_its_nested_choices_and_their_provenance_is_scanned(study):
    """A fold's choices.json (who trained and judged each nested choice) is packed with the
    study's runs, leaves the tables alone, and a leaky one is still named once packed."""
    from emodarts_core.config import ConfigError
    from emodarts_core.study.nested import scan_provenance

    before = _tables(study)
    record = {"trained_on": ["09", "10"], "judged_by": ["09", "10"], "test_speakers": ["03", "08"]}
    _run(study, "nested/fold1", {"choices.json": {"fold": 1, "provenance": record}})
    after = _tables(study)
    tables = after.pop("tables.md").decode("utf-8")
    assert after == {k: v for k, v in before.items() if k != "tables.md"}  # a choices record is not a retraining
    assert tables.startswith(before["tables.md"].decode("utf-8").rstrip("\n"))  # it only adds its section
    assert "| 1 | 03, 08 | 09, 10 |  |  |" in tables.split("## Settings chosen inside each fold")[1]
    packed = _tables(study)["tables.md"].decode("utf-8")
    pack.pack_study(study)
    shutil.rmtree(study / "nested")
    assert _tables(study)["tables.md"].decode("utf-8") == packed  # the section is read from the pack as well
    assert [p.name for p in scan_provenance(study.parent) if "nested" in p.as_posix()] == ["choices.json"]
    leaky = dict(record, judged_by=["08", "09"])
    _run(study, "nested/fold1", {"choices.json": {"fold": 1, "provenance": leaky}})
    pack.pack_study(study)
    shutil.rmtree(study / "nested")
    with pytest.raises(ConfigError, match="08 of the fold informed a choice"):
        scan_provenance(study.parent)
