"""Where each corpus lives on this machine, and where its feature stores are cached.

A corpus location is resolved in this order (docs/DATA.md):

1. the ``data_dir`` argument (``load_fold``, the notebooks' ``-p data_dir``);
2. the environment variable ``EMODARTS_<NAME>_ROOT`` (e.g. ``EMODARTS_IEMOCAP_ROOT``;
   ``EMODARTS_EMODB`` is also read for EmoDB);
3. the user configuration file ``config.json`` in platformdirs' user config directory
   (``~/.config/emodarts`` on Linux; ``EMODARTS_CONFIG_DIR`` overrides it), written by
   ``python -m data_prep register NAME PATH``.

A location is a corpus root (read by :mod:`data_prep.corpora`) or a feature store.
A corpus root is never written to: its store is built in the cache, platformdirs' user
cache directory (``EMODARTS_CACHE`` overrides it), under
``stores/<corpus>/<feature key>-<input hash>``. A class can share one cache: a read-only
folder named by ``EMODARTS_SHARED_CACHE`` (or the config file's ``shared_cache``) is
consulted first, with the same layout, so a store a teacher builds there once is used
by every student whose corpus path and configuration match.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .corpora import CORPORA, corpus_classes
from .errors import DataError

ENV_CONFIG_DIR = "EMODARTS_CONFIG_DIR"
ENV_CACHE = "EMODARTS_CACHE"
ENV_SHARED_CACHE = "EMODARTS_SHARED_CACHE"
CONFIG_NAME = "config.json"
SHORT_ENV_NAMES = {"emodb": "EMODARTS_EMODB"}  # read after EMODARTS_<NAME>_ROOT

#: Corpora distributed only under a signed licence, with where to ask for them.
LICENSED = {
    "iemocap": "request it from USC SAIL: https://sail.usc.edu/iemocap/",
    "msp_improv": "request it from the MSP lab, UT Dallas: https://ecs.utdallas.edu/research/researchlabs/msp-lab/",
    "msp_podcast": "request it from the MSP lab, UT Dallas: https://ecs.utdallas.edu/research/researchlabs/msp-lab/",
}
#: How to get the freely available corpora.
FREE = {
    "emodb": "python -m data_prep download emodb --out data/  (then: python -m data_prep register emodb data/emodb)",
    "ravdess": "download Audio_Speech_Actors_01-24.zip from https://zenodo.org/record/1188976",
    "crema_d": "clone https://github.com/CheyneyComputerScience/CREMA-D (AudioWAV/, git-lfs)",
    "synthetic": "generated on first use; needs nothing",
}


class CorpusNotFoundError(DataError):
    """No location is known for a corpus; the message lists the ways to give one."""


@dataclass(frozen=True)
class Location:
    """Where ``corpus`` resolved: ``path`` (None for the generated corpus) and from which ``source``."""

    corpus: str
    path: Path | None
    source: str


# ----------------------------------------------------------------------------- config file


def env_name(corpus: str) -> str:
    """``EMODARTS_<NAME>_ROOT`` for a corpus name."""
    return f"EMODARTS_{corpus.upper()}_ROOT"


def config_dir() -> Path:
    """The user configuration folder: ``$EMODARTS_CONFIG_DIR`` or platformdirs' user config dir."""
    if os.environ.get(ENV_CONFIG_DIR):
        return Path(os.environ[ENV_CONFIG_DIR]).expanduser()
    import platformdirs

    return Path(platformdirs.user_config_dir("emodarts", appauthor=False))


def config_file() -> Path:
    return config_dir() / CONFIG_NAME


_SHAPE = '{"corpora": {name: "path", ...}, "shared_cache": "path"}'


def read_config() -> dict:
    """The user configuration (``{"corpora": {name: path}, "shared_cache": path}``); {} when absent.

    Anything else (not JSON, a path that is not a string) is a :class:`DataError`
    naming the file and the entry, so that a hand edit gone wrong says where it is.
    """
    path = config_file()
    try:
        cfg = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise DataError(f"unreadable emodarts configuration ({exc}); fix or delete it", path) from None
    if not isinstance(cfg, dict) or not isinstance(cfg.get("corpora", {}), dict):
        raise DataError(f"not an emodarts configuration (expected {_SHAPE}); fix or delete it", path)
    for name, value in cfg.get("corpora", {}).items():
        if not isinstance(value, str) or not value:
            raise DataError(f"corpus entry {name!r} is {value!r}, not a folder path (expected {_SHAPE}); "
                            f"fix it, or register it again: python -m data_prep register {name} PATH", path)
    shared = cfg.get("shared_cache")
    if shared is not None and not isinstance(shared, str):
        raise DataError(f"shared_cache is {shared!r}, not a folder path (expected {_SHAPE})", path)
    return cfg


@contextmanager
def _config_locked():
    """Hold the configuration's lock file (``config.json.lock``) around a read-modify-write,
    so that two ``register`` commands at once both keep their entry."""
    from .locks import held_lock

    path = config_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    with held_lock(path.with_name(path.name + ".lock"), timeout=60):
        yield


def update_config(change) -> Path:
    """Apply ``change(cfg)`` to the user configuration under its lock and write it atomically."""
    with _config_locked():
        cfg = read_config()
        change(cfg)
        return write_config(cfg)


def write_config(cfg: dict) -> Path:
    """Write the user configuration atomically (the folder is created); a read-modify-write
    goes through :func:`update_config`, which holds the lock."""
    from .store import write_json_atomic

    path = config_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, cfg)
    return path


# ----------------------------------------------------------------------------- resolution


def _check_name(corpus: str) -> None:
    if corpus not in CORPORA:
        raise DataError(f"unknown dataset {corpus!r}; valid names: {', '.join(CORPORA)}")


def locate(corpus: str, data_dir=None) -> Location | None:
    """The first location given for ``corpus`` (argument, environment, config file), or None."""
    _check_name(corpus)
    if data_dir is not None:
        return Location(corpus, Path(data_dir).expanduser(), "argument data_dir")
    for var in (env_name(corpus), SHORT_ENV_NAMES.get(corpus)):
        if var and os.environ.get(var):
            return Location(corpus, Path(os.environ[var]).expanduser(), f"environment {var}")
    if corpus == "synthetic":  # needs nothing, so a broken configuration file does not stop it
        try:
            path = read_config().get("corpora", {}).get(corpus)
        except DataError as exc:
            warnings.warn(f"{exc} (ignored for the generated corpus)", stacklevel=2)
            path = None
    else:
        path = read_config().get("corpora", {}).get(corpus)
    if path:
        return Location(corpus, Path(path).expanduser(), f"config file {config_file()}")
    if corpus == "synthetic":
        return Location(corpus, None, "generated in the cache")
    return None


def not_found_message(corpus: str) -> str:
    """What to do when no location is known for ``corpus``: the three ways, licence, EmoDB."""
    example = f"/path/to/{corpus}"
    lines = [f"dataset {corpus!r} needs data_dir, or a location set once. Give it one of three ways:",
             f"  1. pass data_dir={example!r} (papermill: -p data_dir {example}; prepare: --root {example})",
             f"  2. set the environment variable {env_name(corpus)}={example}",
             f"  3. register it once per machine: python -m data_prep register {corpus} {example}",
             f"     (recorded in {config_file()})"]
    if corpus in LICENSED:
        lines.append(f"{corpus} is licensed: {LICENSED[corpus]}.")
    elif corpus in FREE:
        lines.append(f"{corpus} is freely available: {FREE[corpus]}.")
    lines.append(f"Licensed corpora: {', '.join(LICENSED)}. EmoDB is free: {FREE['emodb']}.")
    return "\n".join(lines)


def resolve(corpus: str, data_dir=None) -> Location:
    """Where ``corpus`` is, or :class:`CorpusNotFoundError` saying how to tell the project.

    A location from the environment or the config file that no longer exists is an
    error naming where it came from (a moved or unmounted corpus).
    """
    loc = locate(corpus, data_dir)
    if loc is None:
        raise CorpusNotFoundError(not_found_message(corpus))
    if loc.path is not None and loc.source != "argument data_dir" and not loc.path.is_dir():
        raise CorpusNotFoundError(f"{corpus} is set to {loc.path} by {loc.source}, but that folder does not "
                                  f"exist (moved or unmounted?); fix it, or register the new location: "
                                  f"python -m data_prep register {corpus} PATH")
    return loc


def register(corpus: str, path) -> tuple[Path, str]:
    """Check that ``path`` holds ``corpus`` (a corpus root or a feature store) and record it.

    The layout is validated once, with the corpus reader; returns the recorded absolute
    path and a one-line description of what was found there.
    """
    from .corpora import scan_corpus
    from .store import load_store

    _check_name(corpus)
    path = Path(path).expanduser().resolve()
    if (path / "store.json").is_file():
        store = load_store(path)
        if store.corpus != corpus:
            raise DataError(f"store holds corpus {store.corpus!r}, not {corpus!r}", path)
        found = f"feature store with {len(store)} utterances"
    else:
        scan = scan_corpus(corpus, path)
        if not scan.utterances:
            raise DataError(f"no usable {corpus} utterances found (the reader skipped {len(scan.skipped)} "
                            "file(s))", path)
        found = (f"{len(scan.utterances)} utterances of {len({u.speaker for u in scan.utterances})} speakers"
                 + (f", {len(scan.skipped)} file(s) unusable" if scan.skipped else "")
                 + f"; {audio_sample(corpus, path, [u.path for u in scan.utterances])}")
    update_config(lambda cfg: cfg.setdefault("corpora", {}).__setitem__(corpus, str(path)))
    return path, found



def unregister(corpus: str) -> str | None:
    """Forget the recorded location of ``corpus`` (``register`` undone); return the path
    that was recorded, or None when there was none. The corpus folder and its feature
    stores in the cache are left as they are."""
    _check_name(corpus)
    removed = []
    update_config(lambda cfg: removed.append(cfg.get("corpora", {}).pop(corpus, None)))
    return removed[0]

#: Listed audio files that ``register`` checks exist (spread evenly over the list).
AUDIO_SAMPLE = 20


def audio_sample(corpus: str, root: Path, paths: Sequence[str], n: int = AUDIO_SAMPLE) -> str:
    """Check that ``n`` of the audio files a reader listed (evenly spread) exist, and say
    what was found; none of them is a :class:`DataError` naming one and where the reader
    looked, since a store built from it would skip every file."""
    picks = sorted({round(k * (len(paths) - 1) / max(n - 1, 1)) for k in range(min(n, len(paths)))})
    missing = [paths[k] for k in picks if not os.path.isfile(paths[k])]
    folders = sorted({os.path.relpath(os.path.dirname(p), root) for p in (paths[k] for k in picks)})
    where = ", ".join(f"{f}/" for f in folders[:3]) + (", ..." if len(folders) > 3 else "")
    if len(missing) == len(picks):
        raise DataError(f"none of {len(picks)} sampled audio files the {corpus} reader listed exists, e.g. "
                        f"{missing[0]} (looked in {where}); is this the corpus's release folder "
                        "(docs/CORPORA.md)?", root)
    if missing:
        return (f"{len(picks) - len(missing)} of {len(picks)} sampled audio files found in {where}; missing, e.g. "
                f"{missing[0]} (prepare skips each missing file)")
    return f"{len(picks)} of {len(picks)} sampled audio files found in {where}"


def listing() -> list[dict]:
    """Every corpus: licensed or free, where it resolves (if anywhere) and from which source."""
    rows = []
    for name in CORPORA:
        loc = locate(name)
        rows.append({"corpus": name, "licensed": name in LICENSED,
                     "path": None if loc is None or loc.path is None else str(loc.path),
                     "exists": None if loc is None or loc.path is None else loc.path.is_dir(),
                     "source": "not set" if loc is None else loc.source})
    return rows


# ----------------------------------------------------------------------------- caches


def cache_dir() -> Path:
    """Where generated data and stores are cached: ``$EMODARTS_CACHE`` or platformdirs' user cache dir."""
    if os.environ.get(ENV_CACHE):
        return Path(os.environ[ENV_CACHE]).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("emodarts", appauthor=False))


def shared_cache_dir() -> Path | None:
    """A read-only cache consulted first: ``$EMODARTS_SHARED_CACHE`` or the config's ``shared_cache``."""
    value = os.environ.get(ENV_SHARED_CACHE)
    if not value:
        try:
            value = read_config().get("shared_cache")
        except DataError as exc:  # the corpus itself resolved without the file (data_dir, environment)
            warnings.warn(f"{exc} (its shared_cache is ignored)", stacklevel=2)
    return Path(value).expanduser() if value else None


def store_subdir(corpus: str, root, feature_config, classes: Sequence[str], strict: bool,
                 reader_options: dict) -> Path:
    """``stores/<corpus>/<feature key>-<hash of root, classes, strictness, reader options>``.

    Two copies of a corpus (or two class selections) get two stores instead of evicting
    each other; whether a store is still current is decided by its key (store.json).
    """
    blob = json.dumps([str(Path(root).expanduser().resolve()), list(classes), bool(strict), reader_options],
                      sort_keys=True)
    return Path("stores") / corpus / f"{feature_config.key()}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


def cached_prepare(corpus: str, root, *, feature_config=None, classes=None, seed: int = 0,
                   strict: bool = False, jobs: int | None = None, progress: bool = True, before_build=None,
                   **reader_options):
    """The feature store of the corpus at ``root``, from the shared cache, the user cache, or built.

    The corpus folder is only read, so a read-only or shared corpus works.
    """
    from .features import default_config
    from .prepare import prepare

    cfg = feature_config or default_config(corpus)
    wanted = corpus_classes(corpus, classes)
    sub = store_subdir(corpus, root, cfg, wanted, strict, reader_options)
    shared = shared_cache_dir()
    return prepare(corpus, root, cache_dir() / sub, feature_config=cfg, classes=classes, seed=seed,
                   strict=strict, jobs=jobs, progress=progress, before_build=before_build,
                   reuse_from=[shared / sub] if shared is not None else (), **reader_options)
