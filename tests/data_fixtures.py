"""Tiny corpora in each real folder layout, made of short generated WAVs (for data_prep tests).

Audio is 0.3 s at 8 kHz (a tone plus noise, a different pitch per file) so extraction is
fast; tests pair it with :data:`SMALL_CFG` (0.5 s at 8 kHz -> still 128 x 128 features).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import soundfile as sf

from data_prep.features import FeatureConfig

SR = 8000
SMALL_CFG = FeatureConfig(sample_rate=SR, duration_s=0.5)


def write_wav(path, *, seconds: float = 0.3, sr: int = SR, seed: int = 0, channels: int = 1,
              subtype: str = "PCM_16") -> Path:
    """A short tone-plus-noise WAV; the pitch depends on ``seed``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    x = 0.3 * np.sin(2 * np.pi * (120 + 7 * (seed % 40)) * t) + 0.02 * rng.standard_normal(t.size)
    if channels > 1:
        x = np.stack([x * (0.5 + 0.5 * c) for c in range(channels)], axis=1)
    sf.write(path, x.astype(np.float32), sr, subtype=subtype)
    return path


IEMOCAP_EMOS = ["ang", "hap", "neu", "sad", "exc", "fru"]


def make_iemocap(root) -> Path:
    """Five sessions, one improvised and one scripted dialog each, with EmoEvaluation files.

    Each improvised dialog has 2 utterances per speaker for each of ang/hap/neu/sad, one
    ``exc`` and one ``fru``. The scripted dialog's utterances must be ignored.
    """
    base = Path(root) / "IEMOCAP_full_release"
    seed = 0
    for s in range(1, 6):
        sess = base / f"Session{s}"
        for dialog, kind in ((f"Ses0{s}F_impro01", "impro"), (f"Ses0{s}M_script01_1", "script")):
            lines = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
            n = 0
            for spk in "FM":
                for emo in IEMOCAP_EMOS:
                    for _ in range(2 if emo in ("ang", "hap", "neu", "sad") else 1):
                        uid = f"{dialog}_{spk}{n:03d}"
                        n += 1
                        lines.append(f"[{n}.0000 - {n}.5000]\t{uid}\t{emo}\t[2.5000, 2.5000, 2.5000]")
                        lines.append(f"C-E1:\tNeutral;\t()")
                        write_wav(sess / "sentences" / "wav" / dialog / f"{uid}.wav", seed=seed)
                        seed += 1
                        if kind == "script":
                            break
            ev = sess / "dialog" / "EmoEvaluation"
            ev.mkdir(parents=True, exist_ok=True)
            (ev / f"{dialog}.txt").write_text("\n".join(lines) + "\n")
    return Path(root)


def make_msp_improv(root) -> Path:
    """Six sessions, speakers F0k/M0k, 1 utterance per emotion and speaker, 2 conditions."""
    seed = 0
    for s in range(1, 7):
        for g in "FM":
            for emo in "AHSN":
                for cond in "PR":
                    name = f"MSP-IMPROV-S0{s}{emo}-{g}0{s}-{cond}-FM0{s}.wav"
                    write_wav(Path(root) / f"session{s}" / f"S0{s}{emo}" / cond / name, seed=seed)
                    seed += 1
    return Path(root)


def make_msp_podcast(root, n_speakers: int = 10, audio: str = "Audios") -> Path:
    """``Labels/labels_consensus.csv`` and ``Audios/`` (release 1.12's layout; ``audio``
    names another folder); includes an Unknown speaker and an X row."""
    root = Path(root)
    rows = []
    seed = 0
    for k in range(n_speakers):
        for emo in "AHSN":
            name = f"MSP-PODCAST_{k:04d}_{emo}.wav"
            write_wav(root / audio / name, seed=seed)
            seed += 1
            rows.append(dict(FileName=name, EmoClass=emo, EmoAct=3, SpkrID=str(100 + k),
                             Gender="Female" if k % 2 else "Male", Split_Set="Train"))
    for name, emo, spk in (("MSP-PODCAST_9998.wav", "A", "Unknown"), ("MSP-PODCAST_9999.wav", "X", "7")):
        write_wav(root / audio / name, seed=seed)
        rows.append(dict(FileName=name, EmoClass=emo, EmoAct=3, SpkrID=spk, Gender="Male",
                         Split_Set="Train"))
    (root / "Labels").mkdir(parents=True, exist_ok=True)
    with open(root / "Labels" / "labels_consensus.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return root


EMODB_MALES = ("03", "10", "11", "12", "15")
EMODB_FEMALES = ("08", "09", "13", "14", "16")


def make_emodb(root, *, speakers=EMODB_MALES + EMODB_FEMALES, letters="WFNTLEA", takes="ab") -> Path:
    """``wav/SSTTTEV.wav`` for every speaker, emotion letter and take."""
    seed = 0
    for spk in speakers:
        for e in letters:
            for take in takes:
                write_wav(Path(root) / "wav" / f"{spk}a0{seed % 5}{e}{take}.wav", seed=seed)
                seed += 1
    return Path(root)


def make_ravdess(root, actors=range(1, 11)) -> Path:
    """``Actor_XX/03-01-EE-01-01-01-XX.wav`` for all 8 emotions, plus one song file."""
    seed = 0
    for a in actors:
        for e in range(1, 9):
            write_wav(Path(root) / f"Actor_{a:02d}" / f"03-01-{e:02d}-01-01-01-{a:02d}.wav", seed=seed)
            seed += 1
        write_wav(Path(root) / f"Actor_{a:02d}" / f"03-02-01-01-01-01-{a:02d}.wav", seed=seed)
    return Path(root)


def make_crema_d(root, actors=range(1001, 1011)) -> Path:
    """``AudioWAV/AAAA_SSS_EEE_LL.wav`` plus ``VideoDemographics.csv``."""
    root = Path(root)
    seed = 0
    for a in actors:
        for e in ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD"):
            write_wav(root / "AudioWAV" / f"{a}_IEO_{e}_HI.wav", seed=seed)
            seed += 1
    with open(root / "VideoDemographics.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["ActorID", "Age", "Sex", "Race", "Ethnicity"])
        for a in actors:
            w.writerow([a, 30, "Male" if a % 2 else "Female", "Caucasian", "Not Hispanic"])
    return root
