"""eGeMAPS functionals of each utterance, read from the corpus audio and cached per corpus.

The extended Geneva Minimalistic Acoustic Parameter Set (Eyben et al., "The Geneva
Minimalistic Acoustic Parameter Set (GeMAPS) for Voice Research and Affective Computing",
IEEE Trans. Affective Computing 7(2), 2016), version 02 as openSMILE ships it: 88
functionals per utterance of pitch, jitter, shimmer, loudness, harmonics-to-noise ratio,
formants, spectral balance and MFCC 1-4 and of the rates and lengths of voiced and
unvoiced segments. The `egemaps` baseline (`emodarts_core/training/egemaps.py`,
docs/SWEEPS.md) classifies them.

Unlike the MFCC matrices (`data_prep.features`), they are computed from the whole
recording, as the feature set is defined, after the checks of :func:`features.load_audio`
(an unreadable, corrupt, truncated, empty, silent or too short file is a
:class:`DataError` naming it), at the recording's own sampling rate by default
(``sample_rate=None``: the shared EmoDB copy's 22.05 kHz files are analysed at 22.05 kHz,
not resampled to 16 kHz first): openSMILE's eGeMAPS configuration analyses any rate, and its
reference values are those of the native audio. A fixed ``sample_rate`` resamples every
file to it first (soxr, as the MFCCs are).

The table of a corpus is cached in ``<cache>/egemaps/`` (``EMODARTS_CACHE``, docs/DATA.md),
one file per corpus folder, written atomically under a file lock (concurrent sweep tasks
extract once). Its rows are keyed by each file's path, size and modification time and the
file by the extraction's settings and openSMILE's version: a changed or added recording is
extracted again, the others are read back.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import DataError

FEATURE_SET = "eGeMAPSv02"
N_FEATURES = 88
SAMPLE_RATE = None  # the recording's own rate
EGEMAPS_VERSION = 2  # bump when the extraction here changes, so that cached tables are redone
WHOLE_S = 24 * 3600.0  # "the whole recording", as a duration for FeatureConfig


@lru_cache(maxsize=1)
def _smile():
    try:
        import opensmile
    except ImportError:
        raise DataError("the egemaps baseline needs the opensmile package: pip install opensmile") from None
    return opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02,
                           feature_level=opensmile.FeatureLevel.Functionals)


def feature_names() -> list[str]:
    """The 88 functionals' names, in the order of the table's columns."""
    return list(_smile().feature_names)


def settings_key(sample_rate: int | None = SAMPLE_RATE) -> str:
    """What a cached table depends on besides the files: feature set, rate, versions."""
    _smile()  # a clear error when opensmile is not installed
    import opensmile

    blob = json.dumps({"v": EGEMAPS_VERSION, "set": FEATURE_SET, "level": "functionals",
                       "sample_rate": sample_rate or "native", "opensmile": opensmile.__version__}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def egemaps_of_signal(audio, sample_rate: int, where=None) -> np.ndarray:
    """[88] float64: the eGeMAPS functionals of mono ``audio``; ``where`` names it in errors."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Segment too short": its NaN are refused below
        try:
            values = _smile().process_signal(np.asarray(audio, dtype=np.float32), sample_rate)
        except Exception as exc:
            raise DataError(f"openSMILE cannot analyse it ({type(exc).__name__}: {exc})", where) from None
    values = values.to_numpy(dtype=np.float64).reshape(-1)
    if values.shape != (N_FEATURES,):
        raise DataError(f"openSMILE gave {values.size} eGeMAPS values, not {N_FEATURES}", where)
    if not np.all(np.isfinite(values)):
        raise DataError("its eGeMAPS functionals are not finite (too short or too quiet for openSMILE's "
                        "pitch and loudness analysis?)", where)
    return values


def native_rate(path) -> int:
    """The sampling rate in a recording's header; an unreadable file is a DataError naming it."""
    import soundfile as sf

    try:
        return int(sf.info(os.fspath(path)).samplerate)
    except Exception as exc:  # a missing, empty or corrupt file: load_audio names the problem precisely
        from .features import FeatureConfig, load_audio

        load_audio(path, FeatureConfig(duration_s=WHOLE_S))
        raise DataError(f"cannot read its header ({type(exc).__name__}: {exc})", path) from None


def egemaps_of_file(path, sample_rate: int | None = SAMPLE_RATE) -> np.ndarray:
    """[88] float64: the eGeMAPS functionals of one recording, at its own rate
    (``sample_rate=None``) or resampled to ``sample_rate``."""
    from .features import FeatureConfig, load_audio

    rate = native_rate(path) if sample_rate is None else sample_rate
    audio, _, _ = load_audio(path, FeatureConfig(sample_rate=rate, duration_s=WHOLE_S))
    return egemaps_of_signal(audio, rate, path)


def _identity(path: str) -> str:
    try:
        st = os.stat(path)
        return f"{path}\0{st.st_size}\0{st.st_mtime_ns}"
    except OSError:
        return f"{path}\0missing"


def cache_file(paths: Sequence[str], folder=None) -> Path:
    """The cache file of the corpus holding ``paths`` (named after their common folder)."""
    from .registry import cache_dir

    common = os.path.commonpath(paths) if len(paths) > 1 else os.path.dirname(paths[0])
    tag = hashlib.sha256(common.encode()).hexdigest()[:12]
    name = "-".join(Path(common).parts[-2:])  # e.g. emodb-wav, for a person looking at the cache
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip("-_") or "root"
    return Path(folder if folder is not None else cache_dir() / "egemaps") / f"{name}-{tag}.npz"


def _read_cache(file: Path, key: str) -> dict[str, np.ndarray]:
    """identity -> row of a cache file made with ``key``; empty when absent, stale or unreadable."""
    try:
        with np.load(file, allow_pickle=False) as z:
            if str(z["key"]) != key:
                return {}
            return dict(zip((str(i) for i in z["identity"]), np.asarray(z["features"], dtype=np.float64)))
    except (OSError, ValueError, KeyError, EOFError):
        return {}


def _write_cache(file: Path, key: str, rows: dict[str, np.ndarray]) -> None:
    from .store import write_atomic

    features = np.array(list(rows.values()), dtype=np.float64).reshape(len(rows), N_FEATURES)
    write_atomic(file, lambda fh: np.savez(fh, key=np.array(key), identity=np.array(list(rows), dtype=str),
                                           features=features), binary=True, suffix=".npz")


def egemaps_table(paths: Sequence, *, sample_rate: int | None = SAMPLE_RATE, cache_folder=None,
                  progress: bool = False) -> np.ndarray:
    """[N, 88] float64: the eGeMAPS functionals of each file of ``paths``, from the cache where
    it holds the file unchanged, extracted (and added to the cache) otherwise.

    A file that cannot be used raises :class:`DataError` naming it. A cache that cannot be
    written (a read-only folder) is a warning: the table is still returned."""
    from filelock import FileLock

    paths = [os.path.abspath(os.fspath(p)) for p in paths]
    if not paths:
        return np.zeros((0, N_FEATURES))
    key, file = settings_key(sample_rate), cache_file(paths, cache_folder)
    lock = None
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(file) + ".lock")
        lock.acquire()
    except OSError as exc:
        warnings.warn(f"cannot use the eGeMAPS cache {file} ({exc}); extracting without it", stacklevel=2)
        lock = None
    try:
        known = _read_cache(file, key) if lock is not None else {}
        wanted = [_identity(p) for p in paths]
        missing = sorted({i for i, ident in enumerate(wanted) if ident not in known}, key=lambda i: paths[i])
        if missing:
            from tqdm import tqdm

            for i in tqdm(missing, desc="eGeMAPS", unit="utt", disable=not progress, file=sys.stderr, mininterval=2.0):
                known[wanted[i]] = egemaps_of_file(paths[i], sample_rate)
            if lock is not None:
                current = {k: v for k, v in known.items() if _identity(k.split("\0", 1)[0]) == k}
                try:
                    _write_cache(file, key, current)
                except OSError as exc:
                    warnings.warn(f"cannot write the eGeMAPS cache {file} ({exc})", stacklevel=2)
        return np.stack([known[ident] for ident in wanted])
    finally:
        if lock is not None:
            lock.release()


__all__ = ["FEATURE_SET", "N_FEATURES", "SAMPLE_RATE", "cache_file", "egemaps_of_file", "egemaps_of_signal",
           "egemaps_table", "feature_names", "native_rate", "settings_key"]
