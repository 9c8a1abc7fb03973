"""The paper's input features: 128 MFCC x 128 frames per utterance, float32.

Audio is loaded at the configuration's sample rate, cut or zero-padded to ``duration_s``,
turned into 128 MFCC over exactly ``n_frames * time_pool`` (= 512) frames, and max-pooled
in time by ``time_pool`` (4) to ``[128, 128]``. The hop is derived from the duration so
that any duration gives 512 frames (``hop = samples // 511``; librosa's centred framing
then yields at least 512 frames and the surplus at the end is dropped).

Per-corpus defaults (:func:`default_config`): EmoDB's copy here is 2 s at 22 050 Hz;
IEMOCAP and the MSP corpora are loaded at 32 750 Hz (sic), as the authors' official code
does, with the paper's 8 s; the generated corpus is 2 s at 16 kHz.

:func:`extract` validates what it reads and raises :class:`DataError` naming the file for
an unreadable, corrupt, empty, silent or non-finite recording, for one shorter than
``min_duration_s`` (0.25 s; padding it to the full duration would make a feature matrix of
mostly silence), and for one whose header declares more audio than the file holds (a copy
cut short: libsndfile silently reads what is there; see :func:`header_mismatch`). Stereo is averaged to mono
(with a note) unless ``strict``; another sample rate is resampled (with a note).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass, field
from functools import lru_cache

import numpy as np

from .errors import DataError

FEATURE_VERSION = 1  # bump when the extraction itself changes, so old stores rebuild


@dataclass(frozen=True)
class FeatureConfig:
    """How an utterance becomes a ``[n_mfcc, n_frames]`` matrix."""

    sample_rate: int = 16000
    duration_s: float = 8.0
    n_mfcc: int = 128
    n_frames: int = 128
    time_pool: int = 4
    n_fft: int = 2048
    n_mels: int = 128
    silence_peak: float = 1e-4  # a file whose peak |sample| is below this is "silent"
    min_duration_s: float = 0.25  # a shorter recording is skipped (docs/DATA.md)

    def __post_init__(self):
        problems = []
        if not (isinstance(self.sample_rate, int) and self.sample_rate > 0):
            problems.append(f"sample_rate must be a positive int, not {self.sample_rate!r}")
        if not self.duration_s > 0:
            problems.append(f"duration_s must be > 0, not {self.duration_s!r}")
        if not (isinstance(self.min_duration_s, (int, float)) and self.min_duration_s >= 0):
            problems.append(f"min_duration_s must be >= 0, not {self.min_duration_s!r}")
        for name in ("n_mfcc", "n_frames", "time_pool", "n_fft", "n_mels"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) > 0):
                problems.append(f"{name} must be a positive int")
        if self.n_mfcc > self.n_mels:
            problems.append(f"n_mfcc ({self.n_mfcc}) cannot exceed n_mels ({self.n_mels})")
        if not problems and self.n_samples // (self.n_frames * self.time_pool - 1) < 1:
            problems.append(f"{self.duration_s} s at {self.sample_rate} Hz is too short for "
                            f"{self.n_frames * self.time_pool} frames")
        if problems:
            raise DataError("invalid FeatureConfig: " + "; ".join(problems))

    @property
    def n_samples(self) -> int:
        """Samples per utterance after padding/truncation."""
        return int(round(self.sample_rate * self.duration_s))

    @property
    def hop_length(self) -> int:
        """Hop giving at least ``n_frames * time_pool`` centred frames over ``n_samples``."""
        return self.n_samples // (self.n_frames * self.time_pool - 1)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.n_mfcc, self.n_frames)

    def to_dict(self) -> dict:
        return asdict(self)

    def key(self) -> str:
        """Stable hash of the configuration (and the extraction version), 16 hex chars."""
        blob = json.dumps({"v": FEATURE_VERSION, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


_DEFAULTS = {
    "emodb": dict(sample_rate=22050, duration_s=2.0),
    "iemocap": dict(sample_rate=32750, duration_s=8.0),
    "msp_improv": dict(sample_rate=32750, duration_s=8.0),
    "msp_podcast": dict(sample_rate=32750, duration_s=8.0),
    "ravdess": dict(sample_rate=16000, duration_s=8.0),
    "crema_d": dict(sample_rate=16000, duration_s=8.0),
    "synthetic": dict(sample_rate=16000, duration_s=2.0),
}


def default_config(corpus: str, **overrides) -> FeatureConfig:
    """The feature configuration used for ``corpus`` unless told otherwise."""
    base = dict(_DEFAULTS.get(corpus, {}))
    base.update({k: v for k, v in overrides.items() if v is not None})
    return FeatureConfig(**base)


@dataclass
class Extracted:
    """Features of one file plus what was noticed on the way (resampled, downmixed)."""

    features: np.ndarray
    duration_s: float
    notes: list[str] = field(default_factory=list)


_PCM_BYTES = {"PCM_S8": 1, "PCM_U8": 1, "PCM_16": 2, "PCM_24": 3, "PCM_32": 4, "FLOAT": 4, "DOUBLE": 8,
              "ULAW": 1, "ALAW": 1}
_STREAMING_SIZES = (0, 0xFFFFFFFF)  # written by a recorder that never went back to fix the header


def _wav_data_chunk(path: str) -> tuple[int, int] | None:
    """``(declared size, bytes present)`` of a RIFF/WAVE file's ``data`` chunk, else None."""
    import struct

    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        head = fh.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        pos = 12
        while pos + 8 <= size:
            fh.seek(pos)
            chunk, length = struct.unpack("<4sI", fh.read(8))
            if chunk == b"data":
                return length, size - pos - 8
            pos += 8 + length + (length & 1)
    return None


def header_mismatch(path, frames: int, channels: int, samplerate: int, subtype: str) -> str | None:
    """Why the header and the data of an audio file disagree, or None when they agree.

    A WAV whose ``data`` chunk declares more bytes than the file holds was cut short (a
    partial copy or download); libsndfile then reads only what is there, so without this
    check a 2 s recording truncated to a few hundred bytes would be zero-padded into a
    feature matrix of silence. For other uncompressed formats the frames soundfile reports
    are compared with the file size.
    """
    path = os.fspath(path)
    width = _PCM_BYTES.get(subtype)
    wav = _wav_data_chunk(path)
    if wav is not None:
        declared, present = wav
        if declared not in _STREAMING_SIZES and present < declared:
            if width:
                rate = width * max(channels, 1) * samplerate
                return (f"truncated: the header declares {declared / rate:.3f} s of audio but the file holds "
                        f"{max(present, 0) / rate:.3f} s ({present} of {declared} data bytes)")
            return f"truncated: the header declares {declared} data bytes but the file holds {present}"
        return None
    if width and frames * channels * width > os.path.getsize(path):
        return (f"truncated: the header declares {frames} frames ({frames * channels * width} bytes) but "
                f"the file has {os.path.getsize(path)} bytes")
    return None


#: The sample rates (Hz) a speech recording can have, from narrow-band telephone speech
#: with margin to studio rates: outside them the header is damaged (a 1 Hz header would
#: make 2 s of samples a 9-hour utterance).
PLAUSIBLE_SAMPLE_RATES = (4000, 384000)


def load_audio(path, cfg: FeatureConfig, *, strict: bool = False) -> tuple[np.ndarray, float, list[str]]:
    """Mono float32 audio at ``cfg.sample_rate`` plus its original duration and notes."""
    import soundfile as sf

    path = os.fspath(path)
    if not os.path.exists(path):
        raise DataError("file not found", path)
    if not os.path.isfile(path):
        raise DataError("not a regular file", path)
    if os.path.getsize(path) == 0:
        raise DataError("empty file (0 bytes)", path)
    if not os.access(path, os.R_OK):
        raise DataError("unreadable file (permission denied)", path)
    try:
        with sf.SoundFile(path) as fh:  # read only what the duration needs
            sr, total = fh.samplerate, fh.frames
            if not PLAUSIBLE_SAMPLE_RATES[0] <= sr <= PLAUSIBLE_SAMPLE_RATES[1]:
                raise DataError(f"implausible sample rate {sr} Hz in its header (recordings of speech have "
                                f"{PLAUSIBLE_SAMPLE_RATES[0]} to {PLAUSIBLE_SAMPLE_RATES[1]} Hz); the header is "
                                "probably damaged, so its duration cannot be trusted", path)
            mismatch = header_mismatch(path, total, fh.channels, sr, fh.subtype)
            if mismatch:
                raise DataError(mismatch, path)
            audio = fh.read(min(total, math.ceil(cfg.duration_s * sr) + 1), dtype="float32",
                            always_2d=True)
    except DataError:
        raise
    except PermissionError:
        raise DataError("unreadable file (permission denied)", path) from None
    except Exception as exc:  # libsndfile reports corrupt data in many ways
        raise DataError(f"corrupt or unsupported audio ({type(exc).__name__}: {exc})", path) from None
    notes: list[str] = []
    if audio.shape[0] == 0:
        raise DataError("no audio samples (empty recording)", path)
    if not np.all(np.isfinite(audio)):
        raise DataError("audio contains NaN or infinite samples", path)
    if audio.shape[1] > 1:
        if strict:
            raise DataError(f"{audio.shape[1]} channels; expected mono (strict mode)", path)
        notes.append(f"downmixed {audio.shape[1]} channels to mono")
    audio = audio.mean(axis=1)
    duration = max(total, audio.shape[0]) / sr
    if duration < cfg.min_duration_s:
        raise DataError(f"too short: {duration:.3f} s of audio, below the {cfg.min_duration_s} s floor "
                        "(FeatureConfig.min_duration_s, prepare --min-duration)", path)
    if float(np.max(np.abs(audio))) < cfg.silence_peak:
        raise DataError(f"silent recording (peak below {cfg.silence_peak})", path)
    if sr != cfg.sample_rate:
        import librosa

        try:
            audio = librosa.resample(audio, orig_sr=sr, target_sr=cfg.sample_rate, res_type="soxr_hq")
        except Exception as exc:
            raise DataError(f"cannot resample from {sr} Hz ({type(exc).__name__}: {exc})", path) from None
        notes.append(f"resampled from {sr} Hz to {cfg.sample_rate} Hz")
    return audio.astype(np.float32, copy=False), duration, notes


@lru_cache(maxsize=8)
def _mel_basis(sample_rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    import librosa

    return librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels)


def mfcc_matrix(audio: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """``[n_mfcc, n_frames]`` float32 MFCC of mono audio, padded/truncated to the duration.

    Equal to ``librosa.feature.mfcc`` with these settings (a test checks it), computed
    with a cached mel basis and a BLAS matrix product, which is about twice as fast.
    """
    import librosa
    import scipy.fft

    n = cfg.n_samples
    x = np.zeros(n, dtype=np.float32)
    x[: min(n, audio.shape[0])] = audio[:n]
    frames = cfg.n_frames * cfg.time_pool
    power = np.abs(librosa.stft(x, n_fft=cfg.n_fft, hop_length=cfg.hop_length)) ** 2
    mel = _mel_basis(cfg.sample_rate, cfg.n_fft, cfg.n_mels) @ power
    m = scipy.fft.dct(librosa.power_to_db(mel), axis=-2, type=2, norm="ortho")[: cfg.n_mfcc, :frames]
    return m.reshape(cfg.n_mfcc, cfg.n_frames, cfg.time_pool).max(axis=2).astype(np.float32)


def extract(path, cfg: FeatureConfig, *, strict: bool = False) -> Extracted:
    """Load, validate and featurise one file; bad input raises :class:`DataError` naming it."""
    audio, duration, notes = load_audio(path, cfg, strict=strict)
    with np.errstate(all="ignore"):
        feats = mfcc_matrix(audio, cfg)
    if not np.all(np.isfinite(feats)):
        raise DataError("features are not finite (extreme sample values?)", path)
    return Extracted(feats, duration, notes)
