"""A study's run directories as one file: `runs.parquet`, beside the study's tables.

A sweep writes one run directory per search, retraining or candidate (docs/SWEEPS.md),
a dozen small files each: thousands of files for a study. Packed, every run keeps every
text file it wrote (configuration, metrics, α history, genotype, normalisation, result
with its per-utterance predictions, FINISHED) verbatim in one row of a Parquet table, so
the tables regenerate from the pack exactly as from the folders, and `unpack` gives the
folders back byte for byte. Weights, checkpoints, TensorBoard events and lock files are
not packed: they are how a run ran or resumes, not what it found.

The table has one row per run: `run`, the run directory relative to the study folder
(POSIX, "." for the folder itself); `modified`, the newest modification time of its
packed files (seconds since the epoch); and one nullable string column per file name.
Its key-value metadata names the format and its version (`PACK_FORMAT`, `PACK_VERSION`), and
holds the sweep's manifest (`sweep.json` of the results folder above the study folder,
`emodarts_core.study.sweep.status`) as it was when packed, which `unpack` puts back.

Readers see a study as a list of `RunFiles` (`find_runs`): the run directories on disk
and, for every run not on disk, its packed copy. Packing merges: a run directory replaces
its packed copy, unless the packed copy is newer and differs (then `PackRefused`, unless
forced), and packed runs without a directory are kept.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

#: The pack's file name inside a study folder.
PACK_NAME = "runs.parquet"
PACK_FORMAT = "emodarts.runs"
PACK_VERSION = 1
#: Files whose presence makes a folder a run directory (`choices.json`: a fold's nested
#: choices with their provenance, emodarts_core.study.nested, kept so that a packed study
#: still shows who judged each choice).
MARKERS = ("config.json", "result.json", "genotype.json", "alpha_history.json", "choices.json")
#: A run's files that are packed: its text records. Anything else (checkpoints, tb/, .lock) is left out.
PACKED_SUFFIXES = (".json", ".jsonl", ".csv", ".txt")
PACKED_NAMES = ("FINISHED",)
#: The sweep's manifest, in the folder above a study folder (`--results`).
MANIFEST_NAME = "sweep.json"
#: Parquet compression: zstd at this level (docs/SWEEPS.md, "Packing a study", for the measurement).
ZSTD_LEVEL = 19


#: The repository's results folder: beside the package in a clone or an editable install.
REPOSITORY_RESULTS = Path(__file__).resolve().parents[3] / "results"


def repository_study(name: str = "emodb") -> Path | None:
    """The study committed with the repository, `results/<name>` (its pack or its run
    directories), found from the package rather than the working folder, so that a
    notebook run from a copy (`python -m emodarts_core.notebooks copy`) finds it too; None
    where the package is installed without the repository."""
    folder = REPOSITORY_RESULTS / name
    return folder if (folder / PACK_NAME).is_file() or run_directories(folder) else None


class PackError(ValueError):
    """A pack file that cannot be read as one: the message names the file and the problem."""


class PackRefused(RuntimeError):
    """Packing or unpacking would silently replace newer or different data; nothing was written."""


class RunFiles:
    """The files of one run directory, on disk or in a pack: `path` is where the directory
    is (or was, for a packed run), `rel` the same relative to the study folder."""

    def __init__(self, root: Path, rel: str):
        self.root, self.rel = Path(root), rel

    @property
    def path(self) -> Path:
        return self.root if self.rel == "." else self.root / self.rel

    def names(self) -> list[str]:
        raise NotImplementedError

    def has(self, name: str) -> bool:
        return name in self.names()

    def text(self, name: str) -> str:
        raise NotImplementedError

    def json(self, name: str):
        """The parsed JSON of file `name` (ValueError or OSError when unreadable)."""
        return json.loads(self.text(name))

    def jsonl(self, name: str) -> list:
        """The parsed lines of JSON Lines file `name`, blank lines skipped."""
        return [json.loads(line) for line in self.text(name).splitlines() if line.strip()]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"


class DiskRun(RunFiles):
    """A run directory on disk."""

    def names(self) -> list[str]:
        return sorted(p.name for p in self.path.iterdir() if p.is_file())

    def has(self, name: str) -> bool:
        return (self.path / name).is_file()

    def text(self, name: str) -> str:
        return (self.path / name).read_bytes().decode("utf-8")

    def packable(self) -> tuple[dict[str, str], float, list[str]]:
        """The files a pack keeps (name -> text), their newest modification time, and what
        is left out (links, undecodable files, subfolders are other runs or logs)."""
        files, newest, left_out = {}, 0.0, []
        for p in sorted(self.path.iterdir()):
            if p.name.startswith(".") or not (p.suffix in PACKED_SUFFIXES or p.name in PACKED_NAMES):
                continue
            if p.is_symlink():
                left_out.append(f"{p} (a symbolic link)")
                continue
            if not p.is_file():
                continue
            try:
                files[p.name] = p.read_bytes().decode("utf-8")
            except UnicodeDecodeError:
                left_out.append(f"{p} (not UTF-8 text)")
                continue
            newest = max(newest, p.stat().st_mtime)
        return files, newest, left_out


class PackedRun(RunFiles):
    """A run directory kept in a pack."""

    def __init__(self, root: Path, rel: str, files: dict[str, str], modified: float):
        super().__init__(root, rel)
        self.files, self.modified = files, modified

    def names(self) -> list[str]:
        return sorted(self.files)

    def has(self, name: str) -> bool:
        return name in self.files

    def text(self, name: str) -> str:
        try:
            return self.files[name]
        except KeyError:
            raise FileNotFoundError(f"{self.path / name} (packed run without {name})") from None


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write `text` (UTF-8) to `path` through the suite's one safe writer
    (`data_prep.store.write_atomic`): a temporary file beside it, renamed over it, so a
    reader never sees half a file and a link planted at `path` is replaced, never written
    through. Parent folders are created."""
    from data_prep.store import write_atomic

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda fh: fh.write(text.encode("utf-8")), binary=True)
    return path


def _sort_key(rel: str):
    return PurePosixPath(rel).parts


def run_directories(root: str | Path) -> list[Path]:
    """Every directory under `root` (itself included) holding a run's marker file, sorted."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted({p.parent for marker in MARKERS for p in root.rglob(marker)})


def study_folder_of(target: str | Path) -> tuple[Path, Path]:
    """(study folder, pack path) for `target`, a study folder or a pack file in one."""
    target = Path(target)
    if target.name == PACK_NAME or target.suffix == ".parquet":
        return target.parent, target
    return target, target / PACK_NAME


def read_pack(path: str | Path, root: str | Path | None = None) -> list[PackedRun]:
    """The runs of pack `path`, placed under `root` (default: the pack's folder).

    PackError names the file when it is not a pack of this format and version. The last
    packs read are kept while their file is unchanged: the results command reads one
    study's pack for each of its tables."""
    path = Path(path)
    root = path.parent if root is None else Path(root)
    try:
        stat = path.stat()
    except OSError as exc:
        raise PackError(f"{path}: not a readable pack of run directories ({exc})") from None
    return list(_read_pack(path.resolve(), stat.st_mtime_ns, stat.st_size, root))


@functools.lru_cache(maxsize=2)
def _read_pack(path: Path, _mtime_ns: int, _size: int, root: Path) -> tuple[PackedRun, ...]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    _check_schema(path)
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise PackError(f"{path}: not a readable pack of run directories ({exc})") from None
    names = [n for n in table.column_names if n not in ("run", "modified")]
    if "run" not in table.column_names or "modified" not in table.column_names:
        raise PackError(f"{path}: a pack without its 'run' and 'modified' columns")
    odd = [n for n in names if not n or n.startswith(".") or "/" in n or "\\" in n]
    if odd:
        raise PackError(f"{path}: column {odd[0]!r} does not name a file of a run directory")
    columns = {n: table.column(n).to_pylist() for n in table.column_names}
    runs = []
    for i, rel in enumerate(columns["run"]):
        if not isinstance(rel, str) or rel.startswith("/") or ".." in PurePosixPath(rel).parts:
            raise PackError(f"{path}: row {i} names the run {rel!r}, not a folder inside the study")
        files = {n: columns[n][i] for n in names if columns[n][i] is not None}
        runs.append(PackedRun(root, rel, files, float(columns["modified"][i] or 0.0)))
    return tuple(runs)


def _check_schema(path: Path) -> dict[bytes, bytes]:
    """The pack's schema metadata; PackError unless it names this format and version."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        meta = pq.read_schema(path).metadata or {}
    except (OSError, pa.ArrowException) as exc:
        raise PackError(f"{path}: not a readable pack of run directories ({exc})") from None
    fmt, version = meta.get(b"emodarts.format", b"").decode(), meta.get(b"emodarts.version", b"").decode()
    if fmt != PACK_FORMAT:
        raise PackError(f"{path}: a Parquet file, but not a pack of run directories (format {fmt or 'unnamed'!r}, "
                        f"expected {PACK_FORMAT!r})")
    if version != str(PACK_VERSION):
        raise PackError(f"{path}: pack version {version!r}; this version of emodarts reads version {PACK_VERSION}")
    return meta


def read_manifest(path: str | Path) -> str | None:
    """The text of the sweep manifest packed with pack `path`, or None."""
    value = _check_schema(Path(path)).get(b"emodarts.manifest")
    return None if value is None else value.decode("utf-8")


def find_runs(target: str | Path) -> list[RunFiles]:
    """A study's runs: the run directories under the study folder, and from its pack
    (`PACK_NAME` in the folder, or `target` itself when it is the pack) every run that has
    no directory on disk. Sorted by their relative path."""
    root, pack = study_folder_of(target)
    runs: dict[str, RunFiles] = {}
    if pack.is_file():
        runs.update((r.rel, r) for r in read_pack(pack, root))
    for d in run_directories(root):
        rel = d.relative_to(root).as_posix()
        runs[rel] = DiskRun(root, rel)
    return [runs[rel] for rel in sorted(runs, key=_sort_key)]


def run_files(target: str | Path) -> dict[str, RunFiles]:
    """`find_runs(target)` by the `run_dir` that study.csv names each run with (its path,
    packed or not): how the study's tables look up a row's files."""
    return {str(run.path): run for run in find_runs(target)}


@dataclass
class PackReport:
    """What `pack_study` did: where, how many runs it holds and from where, what it left out."""
    path: Path
    runs: int = 0
    from_disk: int = 0
    kept: int = 0
    written: bool = False
    left_out: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        verb = "wrote" if self.written else "unchanged:"
        text = (f"{verb} {self.path}: {self.runs} runs ({self.from_disk} from run directories, "
                f"{self.kept} kept from the pack without a directory)")
        if self.left_out:
            text += f"; left out {len(self.left_out)} files, e.g. {self.left_out[0]}"
        return text


def _write_pack(path: Path, rows: list[tuple[str, float, dict[str, str]]], manifest: str | None) -> None:
    """Write the pack atomically: the rows as a zstd-compressed table, the format, version
    and manifest as the file's key-value metadata (once: no second, serialised schema)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from data_prep.store import write_atomic

    names = sorted({n for _, _, files in rows for n in files})
    data = {"run": pa.array([r for r, _, _ in rows], pa.string()),
            "modified": pa.array([m for _, m, _ in rows], pa.float64())}
    for n in names:
        data[n] = pa.array([files.get(n) for _, _, files in rows], pa.string())
    table = pa.table(data)
    meta = {"emodarts.format": PACK_FORMAT, "emodarts.version": str(PACK_VERSION)}
    if manifest is not None:
        meta["emodarts.manifest"] = manifest

    def write(fh):
        with pq.ParquetWriter(fh, table.schema, compression="zstd", compression_level=ZSTD_LEVEL,
                              store_schema=False) as writer:
            writer.add_key_value_metadata(meta)
            writer.write_table(table)

    write_atomic(path, write, binary=True)


def pack_study(target: str | Path, *, force: bool = False) -> PackReport:
    """Pack the run directories of a study folder into its `PACK_NAME`, atomically.

    The pack keeps the runs it already held that have no directory now; a directory
    replaces its packed copy. PackRefused, and nothing written, where a packed copy differs
    from its directory and is newer than it (the directory is an older state of the run),
    unless `force`. An unchanged pack is not rewritten.
    """
    root, pack = study_folder_of(target)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such study folder")
    old = {r.rel: r for r in read_pack(pack, root)} if pack.is_file() else {}
    old_manifest = read_manifest(pack) if pack.is_file() else None
    manifest_path = root.resolve().parent / MANIFEST_NAME
    manifest = (manifest_path.read_text(encoding="utf-8") if manifest_path.is_file() and not manifest_path.is_symlink()
                else old_manifest)
    report = PackReport(pack)
    rows, newer = {}, []
    for d in run_directories(root):
        run = DiskRun(root, d.relative_to(root).as_posix())
        files, modified, left_out = run.packable()
        report.left_out += left_out
        before = old.get(run.rel)
        if before is not None and before.files != files and before.modified > modified and not force:
            newer.append(run.rel)
        rows[run.rel] = (modified, files)
    if newer:
        raise PackRefused(f"{pack} holds a newer, different copy of {len(newer)} run(s) than their directories "
                          f"(e.g. {newer[0]}); nothing was written. Unpack it first "
                          f"(python -m emodarts_core.results unpack {pack} DEST) or pass --force to replace them")
    report.from_disk = len(rows)
    for rel, run in old.items():
        if rel not in rows:
            rows[rel] = (run.modified, run.files)
            report.kept += 1
    report.runs = len(rows)
    unchanged = manifest == old_manifest and rows.keys() == old.keys() and all(
        old[rel].files == files and old[rel].modified == modified for rel, (modified, files) in rows.items())
    if old and unchanged:
        return report
    ordered = [(rel, *rows[rel]) for rel in sorted(rows, key=_sort_key)]
    _write_pack(pack, ordered, manifest)
    report.written = True
    return report


def unpack_study(pack: str | Path, dest: str | Path, *, force: bool = False) -> int:
    """Write the runs of `pack` back as run directories under `dest`, and its sweep manifest
    as `dest/../sweep.json`; return how many files were written. Each file is written
    atomically, never through a link, with the run's packed modification time. PackRefused,
    and nothing written, where one of these files already exists with other content,
    unless `force`."""
    runs, dest = read_pack(pack, dest), Path(dest)
    writes = [(run.path, name, text, run.modified) for run in runs for name, text in run.files.items()]
    manifest = read_manifest(pack)
    if manifest is not None:
        writes.append((dest.resolve().parent, MANIFEST_NAME, manifest, None))
    clash = [folder / name for folder, name, text, _ in writes
             if (folder / name).is_file() and (folder / name).read_bytes() != text.encode("utf-8")]
    if clash and not force:
        raise PackRefused(f"{dest} already holds {len(clash)} of the packed files with other content "
                          f"(e.g. {clash[0]}); nothing was written. Unpack elsewhere or pass --force")
    for folder, name, text, modified in writes:
        path = write_text_atomic(folder / name, text)
        if modified is not None:
            os.utime(path, (modified, modified))
    return len(writes)


__all__ = ["REPOSITORY_RESULTS", "repository_study", "MANIFEST_NAME", "MARKERS", "PACK_FORMAT", "PACK_NAME", "PACK_VERSION", "DiskRun", "PackError", "PackRefused",
           "PackReport", "PackedRun", "RunFiles", "find_runs", "pack_study", "read_pack", "run_directories",
           "read_manifest", "run_files", "study_folder_of", "unpack_study", "write_text_atomic"]
