"""A generated corpus of speech-like emotional audio, so a fresh clone runs with no download.

Each utterance is a sequence of syllables: a voiced segment (a jittered glottal sawtooth
through a one-pole spectral-tilt filter and three formant resonators of a random vowel),
often preceded by a short noise consonant, with pauses between syllables, over a low
noise floor. Emotions differ, on average, in

- pitch level, pitch range and contour direction (happiness rises, sadness falls),
- syllable rate, loudness, spectral tilt (anger bright, sadness dull), jitter, breathiness,

but every parameter is drawn per utterance around its emotion's mean with a spread that
makes neighbouring emotions overlap (anger vs. happiness, neutral vs. sadness), and
speakers differ in base pitch (by gender), formant scale (vocal-tract length), speaking
rate, expressiveness and recording gain. The corpus is therefore learnable but not
trivial: a speaker-independent classifier on mean MFCC is well above chance and well
below 100 %.

Files are ``<root>/wav/<spkNN>_<G>_<label>_<nnn>.wav`` (16-bit PCM), read by
``read_corpus("synthetic", root)``; ``<root>/corpus.json`` records the generator
parameters. Everything is deterministic from ``seed``.

Generation has the feature store's safeguards (``data_prep.store``): it writes into a
hidden build folder beside ``root``, locked while this process writes it, and renames
it into place when complete; a generation killed part-way leaves that folder, which the
next generation deletes once no live process holds its lock. A cache that is full,
read-only or not a folder is a :class:`DataError` naming the path and what to do.
"""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from .corpora import PAPER_CLASSES
from .errors import DataError
from .store import BUILDER, STALE_UNLOCKED_S, clean_stale_builds, discard_build, new_build_dir, write_json_atomic

GENERATOR_VERSION = 1

# Emotion means. f0: pitch scale; range: semitone spread of syllable pitch targets;
# slope: contour direction inside syllables (semitones); rate: syllables per second;
# level: dBFS of voiced speech; tilt: one-pole low-pass coefficient (higher = duller);
# jitter: relative period perturbation; breath: aspiration noise relative level.
EMOTIONS = {
    "anger":     dict(f0=1.22, range=3.5, slope=-1.5, rate=4.9, level=-9.0, tilt=0.42, jitter=0.018, breath=0.04),
    "happiness": dict(f0=1.28, range=5.0, slope=+2.5, rate=4.6, level=-13.0, tilt=0.62, jitter=0.010, breath=0.05),
    "neutral":   dict(f0=1.00, range=2.2, slope=-0.5, rate=4.0, level=-16.0, tilt=0.74, jitter=0.007, breath=0.06),
    "sadness":   dict(f0=0.94, range=1.6, slope=-1.0, rate=3.3, level=-20.0, tilt=0.86, jitter=0.011, breath=0.12),
}
# Relative spread of each parameter around its emotion mean, per utterance.
SPREAD = dict(f0=0.06, range=0.3, slope=1.0, rate=0.10, level=2.5, tilt=0.07, jitter=0.3, breath=0.3)

VOWELS = np.array([[730, 1090, 2440], [530, 1840, 2480], [270, 2290, 3010],
                   [570, 840, 2410], [300, 870, 2240]], dtype=float)


def _speakers(seed: int, n: int) -> list[dict]:
    """Speaker traits: alternating F/M, base pitch by gender, formant scale, rate, gain."""
    rng = np.random.default_rng([seed, 10_000])
    out = []
    for i in range(n):
        g = "F" if i % 2 == 0 else "M"
        out.append(dict(
            id=f"spk{i:02d}", gender=g,
            f0=rng.uniform(175, 235) if g == "F" else rng.uniform(95, 135),
            formant=rng.uniform(1.08, 1.20) if g == "F" else rng.uniform(0.92, 1.04),
            rate=rng.uniform(0.85, 1.15), express=rng.uniform(0.75, 1.2),
            gain=rng.uniform(-2.5, 2.5), tilt=rng.uniform(-0.08, 0.08),
        ))
    return out


def _draw(emotion: str, spk: dict, rng: np.random.Generator) -> dict:
    """One utterance's parameters: emotion mean, scaled by the speaker, plus spread."""
    m = EMOTIONS[emotion]
    neutral = EMOTIONS["neutral"]
    e = spk["express"]  # an inexpressive speaker's emotions lie closer to neutral
    p = {k: neutral[k] + e * (m[k] - neutral[k]) for k in m}
    p["f0"] *= np.exp(rng.normal(0, SPREAD["f0"]))
    p["range"] *= np.exp(rng.normal(0, SPREAD["range"]))
    p["slope"] += rng.normal(0, SPREAD["slope"])
    p["rate"] *= spk["rate"] * np.exp(rng.normal(0, SPREAD["rate"]))
    p["level"] += spk["gain"] + rng.normal(0, SPREAD["level"])
    p["tilt"] = float(np.clip(p["tilt"] + spk["tilt"] + rng.normal(0, SPREAD["tilt"]), 0.2, 0.95))
    p["jitter"] *= np.exp(rng.normal(0, SPREAD["jitter"]))
    p["breath"] *= np.exp(rng.normal(0, SPREAD["breath"]))
    return p


def _formant_filter(signal: np.ndarray, formants: np.ndarray, sr: int) -> np.ndarray:
    """Cascade of second-order resonators at ``formants`` (Hz)."""
    from scipy.signal import lfilter

    den = np.array([1.0])
    gain = 1.0
    for i, f in enumerate(formants):
        bw = 70.0 + 30.0 * i
        r = np.exp(-np.pi * bw / sr)
        den = np.convolve(den, [1.0, -2.0 * r * np.cos(2.0 * np.pi * f / sr), r * r])
        gain *= 1.0 - r
    return lfilter([gain], den, signal)


def _utterance(p: dict, spk: dict, sr: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """Synthesize one utterance of ``n`` samples from parameters ``p``."""
    from scipy.signal import lfilter

    out = np.zeros(n)
    voiced = np.zeros(n, dtype=bool)
    t = rng.uniform(0.03, 0.25)
    base = spk["f0"] * p["f0"]
    while True:
        dur = rng.uniform(0.55, 0.9) / p["rate"]
        start, stop = int(t * sr), int((t + dur) * sr)
        if stop >= n - int(0.02 * sr):
            break
        if rng.random() < 0.6:  # a fricative-like consonant before the vowel
            c = int(rng.uniform(0.02, 0.06) * sr)
            c0 = max(0, start - c)
            burst = np.diff(rng.standard_normal(start - c0 + 1)) * 0.15
            out[c0:start] += burst * np.hanning(start - c0)
        m = stop - start
        u = np.linspace(0.0, 1.0, m)
        semis = rng.normal(0, p["range"] / 2) + p["slope"] * (u - 0.5)
        jit = np.repeat(rng.standard_normal(m // 48 + 1), 48)[:m] * p["jitter"]
        f0 = base * 2.0 ** (semis / 12.0) * (1.0 + jit)
        phase = np.cumsum(f0 / sr)
        source = 2.0 * (phase % 1.0) - 1.0
        source = lfilter([1.0 - p["tilt"]], [1.0, -p["tilt"]], source)
        source += rng.standard_normal(m) * p["breath"]
        vowel = VOWELS[rng.integers(len(VOWELS))] * spk["formant"] * rng.uniform(0.95, 1.05)
        seg = _formant_filter(source, vowel, sr)
        shimmer = 1.0 + 0.3 * p["jitter"] * 10 * np.repeat(rng.standard_normal(m // 96 + 1), 96)[:m]
        seg *= np.sin(np.pi * u) ** 0.6 * shimmer
        out[start:stop] += seg
        voiced[start:stop] = True
        t += dur + rng.uniform(0.15, 0.45) / p["rate"]
    rms = np.sqrt(np.mean(out[voiced] ** 2)) if voiced.any() else 1.0
    out *= 10.0 ** (p["level"] / 20.0) / max(rms, 1e-9)
    out += rng.standard_normal(n) * 10.0 ** (rng.uniform(-62, -50) / 20.0)
    return np.clip(out, -1.0, 1.0).astype(np.float32)


def _write_problem(exc: OSError, root: Path) -> DataError:
    """The error for a cache the corpus cannot be written to: where, why, and what to do."""
    where = Path(exc.filename) if exc.filename else root
    if exc.errno in (errno.ENOTDIR, errno.EEXIST):
        where = next((p for p in reversed([where, *where.parents]) if p.exists() and not p.is_dir()), where)
        why = f"{where} is not a folder (a file stands where a folder of the cache must be)"
        fix = "remove or rename that file, or generate the corpus elsewhere"
    elif exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        why, fix = f"{where}: {exc.strerror or exc}", "free some space, or generate it on another disk"
    else:
        why, fix = f"{where}: {exc.strerror or exc}", "make the folder writable, or generate it in a writable one"
    return DataError(f"cannot write the generated corpus here ({why}); {fix}: set EMODARTS_CACHE to a writable "
                     "folder (docs/DATA.md); nothing was left behind", root)


def _clean_unlocked_leftovers(root: Path) -> None:
    """Delete ``.<name>.tmp-*`` folders of generations that ran without a build lock (an
    earlier version of this module), once older than the store's limit for unlocked builds."""
    for folder in root.parent.glob(f".{root.name}.tmp-*"):
        try:
            if folder.is_symlink() or not folder.is_dir() or (folder / BUILDER).exists():
                continue
            if time.time() - folder.stat().st_mtime >= STALE_UNLOCKED_S:
                shutil.rmtree(folder, ignore_errors=True)
        except OSError:  # someone else's folder: theirs to clean
            continue


def _clean_leftovers(root: Path) -> None:
    """Delete the folders that killed generations of ``root`` left (none that a live one holds);
    a cache this process cannot write keeps them."""
    try:
        clean_stale_builds(root)
        _clean_unlocked_leftovers(root)
    except OSError:
        pass


def _wav_bytes(audio: np.ndarray, sample_rate: int) -> bytes:
    """16-bit PCM WAV bytes, made in memory so that writing them to disk fails, when it
    does, with the operating system's error (a full disk) rather than libsndfile's."""
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, audio, sample_rate, subtype="PCM_16", format="WAV")
    return buf.getvalue()


def generate(root, seed: int = 0, n_speakers: int = 8, per_class_per_speaker: int = 13,
             duration_s: float = 2.0, sample_rate: int = 16000, progress: bool = False) -> Path:
    """Write the generated corpus to ``root`` (atomically) and return ``root``.

    If ``root`` already holds a corpus generated with the same parameters it is reused;
    any other non-empty ``root`` is refused rather than overwritten. ``progress`` shows a
    text bar on stderr, which a terminal, a notebook and ``papermill --log-output`` all show.
    """
    from tqdm import tqdm

    root = Path(root)
    params = dict(version=GENERATOR_VERSION, seed=seed, n_speakers=n_speakers,
                  per_class_per_speaker=per_class_per_speaker, duration_s=duration_s,
                  sample_rate=sample_rate, classes=list(PAPER_CLASSES))
    meta = root / "corpus.json"
    if meta.is_file():
        try:
            if json.loads(meta.read_text()) == params:
                _clean_leftovers(root)  # of a generation killed while another finished this corpus
                return root
        except ValueError:
            pass
    if n_speakers < 2 or per_class_per_speaker < 1:
        raise DataError("need n_speakers >= 2 and per_class_per_speaker >= 1")
    try:
        if root.exists() and any(root.iterdir()):
            raise DataError("folder is not empty and holds no generated corpus with these "
                            "parameters; choose another folder", root)
        tmp = new_build_dir(root)  # locked; abandoned builds of earlier generations are deleted
        _clean_unlocked_leftovers(root)
    except OSError as exc:
        raise _write_problem(exc, root) from None
    try:
        _generate_into(tmp, root, params, progress, tqdm)
    except OSError as exc:
        raise _write_problem(exc, root) from None
    finally:
        discard_build(tmp)  # gives the lock back; after the rename there is nothing left to delete
    return root


def _generate_into(tmp: Path, root: Path, params: dict, progress: bool, tqdm) -> None:
    """Write the corpus of ``params`` into the build folder ``tmp``, then rename it to ``root``."""
    seed, n_speakers, sample_rate = params["seed"], params["n_speakers"], params["sample_rate"]
    per_class_per_speaker, duration_s = params["per_class_per_speaker"], params["duration_s"]
    meta = root / "corpus.json"
    (tmp / "wav").mkdir()
    n = int(round(duration_s * sample_rate))
    total = n_speakers * len(PAPER_CLASSES) * per_class_per_speaker
    with tqdm(total=total, desc="generating the corpus", unit="utt", disable=not progress,
              file=sys.stderr, mininterval=2.0) as bar:
        for s, spk in enumerate(_speakers(seed, n_speakers)):
            for c, emotion in enumerate(PAPER_CLASSES):
                for k in range(per_class_per_speaker):
                    rng = np.random.default_rng([seed, s, c, k])
                    audio = _utterance(_draw(emotion, spk, rng), spk, sample_rate, n, rng)
                    name = f"{spk['id']}_{spk['gender']}_{emotion}_{k:03d}.wav"
                    (tmp / "wav" / name).write_bytes(_wav_bytes(audio, sample_rate))
                    bar.update()
    write_json_atomic(tmp / "corpus.json", params)
    os.unlink(tmp / BUILDER)  # the lock file stays out of the corpus; the lock is held until discard_build
    if root.exists():
        root.rmdir()  # empty, checked above
    try:
        os.replace(tmp, root)
    except OSError:
        # Another process finished the same corpus first: use it if it matches.
        if not (meta.is_file() and json.loads(meta.read_text()) == params):
            raise
