"""Corpus readers: turn a corpus folder into a list of labelled utterances.

Each reader knows one corpus's real folder layout and file-name code (see
``docs/CORPORA.md``) and yields :class:`Utterance` records with normalised label names.
Label names are the paper's four classes (:data:`PAPER_CLASSES`, whose order is the label
index order everywhere) plus, for the all-class modes, extra names such as ``boredom``.

A reader never guesses: a file whose name does not follow the corpus's code, or an
utterance without a label, is returned in :attr:`CorpusScan.skipped` with the reason, so
that ``prepare`` can record and report it (or fail in strict mode). Utterances that are
well-formed but outside the requested classes (or, for MSP-Podcast, have no known
speaker) are merely counted in :attr:`CorpusScan.excluded`.
"""

from __future__ import annotations

import csv
import inspect
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from .errors import DataError

PAPER_CLASSES = ("anger", "happiness", "neutral", "sadness")
CORPORA = ("iemocap", "msp_improv", "msp_podcast", "emodb", "ravdess", "crema_d", "synthetic")


@dataclass(frozen=True)
class Utterance:
    """One labelled recording. ``gender`` is "M"/"F" where the corpus says so."""

    id: str
    path: str
    speaker: str
    gender: str | None
    session: str | None
    label: str


@dataclass
class CorpusScan:
    """What a reader found: usable utterances, skipped files with reasons, excluded counts."""

    utterances: list[Utterance] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)
    excluded: Counter = field(default_factory=Counter)

    def skip(self, path, reason: str) -> None:
        self.skipped.append({"path": str(path), "reason": reason})


# --------------------------------------------------------------------------- helpers


def _audio_files(folder: Path, pattern: str = "*.wav") -> list[Path]:
    """Sorted audio files under ``folder``, ignoring macOS resource forks (``._x.wav``)."""
    return sorted(p for p in folder.rglob(pattern) if p.is_file() and not p.name.startswith("._"))


def _keep(scan: CorpusScan, wanted: tuple[str, ...], utt: Utterance) -> None:
    if utt.label in wanted:
        scan.utterances.append(utt)
    else:
        scan.excluded[f"class {utt.label} not selected"] += 1


def _find_dir(root: Path, name_re: str) -> list[Path]:
    rx = re.compile(name_re)
    return sorted(p for p in root.iterdir() if p.is_dir() and rx.fullmatch(p.name))


# --------------------------------------------------------------------------- IEMOCAP

IEMOCAP_LABELS = {
    "ang": "anger", "hap": "happiness", "neu": "neutral", "sad": "sadness",
    "exc": "excitement", "fru": "frustration", "sur": "surprise", "fea": "fear",
    "dis": "disgust",
}
_IEMOCAP_LINE = re.compile(r"^\[[^\]]*\]\s+(Ses\d\d[FM]_\S+)\s+(\w+)\s+\[")


def _read_iemocap(root: Path, wanted, *, merge_excited: bool = False) -> CorpusScan:
    """IEMOCAP, improvised dialogs only (the paper's subset); the scripted dialogs'
    utterances are counted as excluded, so that ``prepare`` reports them.

    Labels come from ``SessionN/dialog/EmoEvaluation/<dialog>.txt``; ``exc`` joins
    ``hap`` only with ``merge_excited=True`` (off by default, as in the paper). The
    speaker is the session plus the F/M letter that starts the utterance's last id field
    (``Ses01F_impro01_M003`` -> ``Ses01M``).
    """
    base = root / "IEMOCAP_full_release" if (root / "IEMOCAP_full_release").is_dir() else root
    sessions = _find_dir(base, r"Session\d")
    if not sessions:
        raise DataError("no IEMOCAP SessionN folders found (expected SessionN/dialog/EmoEvaluation)", base)
    scan = CorpusScan()
    for sess in sessions:
        labels: dict[str, str] = {}
        eval_dir = sess / "dialog" / "EmoEvaluation"
        for txt in sorted(eval_dir.glob("*.txt")):
            if txt.name.startswith("._"):
                continue
            if "impro" not in txt.stem:
                n = sum(1 for line in txt.read_text(errors="replace").splitlines() if _IEMOCAP_LINE.match(line))
                scan.excluded["scripted dialog (the paper uses the improvised ones)"] += n
                continue
            for line in txt.read_text(errors="replace").splitlines():
                m = _IEMOCAP_LINE.match(line)
                if m:
                    labels[m.group(1)] = m.group(2)
        wav_root = sess / "sentences" / "wav"
        dialogs = sorted({*(u.rsplit("_", 1)[0] for u in labels),
                          *(d.name for d in wav_root.glob("*impro*") if d.is_dir())})
        for dialog in dialogs:
            utts = {u for u in labels if u.rsplit("_", 1)[0] == dialog}
            utts |= {p.stem for p in _audio_files(wav_root / dialog)} if (wav_root / dialog).is_dir() else set()
            for uid in sorted(utts):
                path = wav_root / dialog / f"{uid}.wav"
                code = labels.get(uid)
                if code is None:
                    scan.skip(path, f"missing label: {uid} is not in {eval_dir}/{dialog}.txt")
                    continue
                if merge_excited and code == "exc":
                    code = "hap"
                if code not in IEMOCAP_LABELS:
                    scan.excluded[f"label {code}"] += 1
                    continue
                gender = uid.rsplit("_", 1)[1][0]
                if gender not in "FM":
                    scan.skip(path, f"cannot tell the speaker from utterance id {uid}")
                    continue
                session = uid[:5]
                _keep(scan, wanted, Utterance(uid, str(path), session + gender, gender, session,
                                              IEMOCAP_LABELS[code]))
    return scan


# --------------------------------------------------------------------------- MSP-IMPROV

MSP_IMPROV_LABELS = {"A": "anger", "H": "happiness", "S": "sadness", "N": "neutral"}
_MSP_IMPROV_NAME = re.compile(r"^.*-S\d+([A-Z])-([FM])(\d+)-([A-Z])-[A-Z]*\d+$")


def _read_msp_improv(root: Path, wanted) -> CorpusScan:
    """MSP-IMPROV: ``<root>/<sessionK>/<...>/<condition>/*.wav``.

    In ``MSP-IMPROV-S01A-F01-R-FM01.wav`` the emotion is the last letter of the sentence
    field ``S01A`` (fourth field from the end: A, H, S, N), the speaker is ``F01``
    (gender F, session 1); docs/CORPORA.md.
    """
    scan = CorpusScan()
    files = _audio_files(root)
    if not files:
        raise DataError("no .wav files found (expected <sessionK>/<...>/<condition>/*.wav)", root)
    for path in files:
        m = _MSP_IMPROV_NAME.match(path.stem)
        if not m:
            scan.skip(path, "file name does not follow MSP-IMPROV-SxxE-Gnn-C-XXnn")
            continue
        emo, gender, num, _cond = m.groups()
        if emo not in MSP_IMPROV_LABELS:
            scan.skip(path, f"missing label: unknown emotion letter {emo!r}")
            continue
        speaker = f"{gender}{num}"
        _keep(scan, wanted, Utterance(path.stem, str(path), speaker, gender,
                                      f"session{int(num)}", MSP_IMPROV_LABELS[emo]))
    return scan


# --------------------------------------------------------------------------- MSP-Podcast

MSP_PODCAST_LABELS = {
    "A": "anger", "H": "happiness", "S": "sadness", "N": "neutral", "C": "contempt",
    "U": "surprise", "D": "disgust", "F": "fear",
}


#: The consensus label file's names: release 1.12's spelling, and the misspelling of older releases.
MSP_PODCAST_LABEL_FILES = ("labels_consensus.csv", "labels_concensus.csv")
#: Audio folders, in the order looked in: release 1.12 ships ``Audios/``; ``Audio/`` where present.
MSP_PODCAST_AUDIO_DIRS = ("Audios", "Audio")


def msp_podcast_audio_dirs(root: Path) -> list[Path]:
    """The audio folders of an MSP-Podcast release at ``root`` (see :data:`MSP_PODCAST_AUDIO_DIRS`)."""
    return [root / d for d in MSP_PODCAST_AUDIO_DIRS if (root / d).is_dir()]


def _read_msp_podcast(root: Path, wanted) -> CorpusScan:
    """MSP-Podcast: ``labels_consensus.csv`` (FileName, EmoClass, SpkrID, Split_Set, and
    Gender where present) under ``Labels/`` or at the root; audio under ``Audios/`` (the
    release's folder) and ``Audio/`` where present (docs/CORPORA.md).

    A file listed in both audio folders is read from ``Audios/``. Rows with an unknown
    speaker, or EmoClass O/X (other, no agreement), are excluded.
    """
    candidates = [folder / name for folder in (root / "Labels", root) for name in MSP_PODCAST_LABEL_FILES]
    csv_path = next((c for c in candidates if c.is_file()), None)
    if csv_path is None:
        raise DataError("labels_consensus.csv not found (looked in Labels/ and the root)", root)
    folders = msp_podcast_audio_dirs(root)
    if not folders:
        raise DataError(f"no audio folder: expected {' or '.join(d + '/' for d in MSP_PODCAST_AUDIO_DIRS)} beside "
                        "Labels/, as the release ships it", root)

    dirs = [str(folder) for folder in folders]  # joined as strings: a release lists ~150 k files

    def audio_path(name: str) -> str:
        if len(dirs) > 1:
            for folder in dirs:
                if os.path.isfile(os.path.join(folder, name)):
                    return os.path.join(folder, name)
        return os.path.join(dirs[0], name)

    scan = CorpusScan()
    with open(csv_path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        missing = {"FileName", "EmoClass", "SpkrID"} - set(reader.fieldnames or ())
        if missing:
            raise DataError(f"missing columns {sorted(missing)}", csv_path)
        for row in reader:
            name = (row.get("FileName") or "").strip()
            if not name:
                scan.skip(csv_path, "a row without FileName")
                continue
            path = audio_path(name)
            emo = (row.get("EmoClass") or "").strip()
            spk = (row.get("SpkrID") or "").strip()
            if not emo:
                scan.skip(path, "missing label: empty EmoClass")
                continue
            if not spk or spk.lower() == "unknown":
                scan.excluded["unknown speaker"] += 1
                continue
            if emo not in MSP_PODCAST_LABELS:
                scan.excluded[f"label {emo}"] += 1
                continue
            g = (row.get("Gender") or "").strip()[:1].upper()
            _keep(scan, wanted, Utterance(os.path.splitext(os.path.basename(name))[0], path, spk,
                                          g if g in ("M", "F") else None, None,
                                          MSP_PODCAST_LABELS[emo]))
    return scan


# --------------------------------------------------------------------------- EmoDB

EMODB_LABELS = {"W": "anger", "F": "happiness", "N": "neutral", "T": "sadness",
                "L": "boredom", "E": "disgust", "A": "fear"}
EMODB_SPEAKERS = {"03": "M", "10": "M", "11": "M", "12": "M", "15": "M",
                  "08": "F", "09": "F", "13": "F", "14": "F", "16": "F"}
_EMODB_NAME = re.compile(r"^(\d\d)([ab]\d\d)([A-Z])([a-z])$")


def _read_emodb(root: Path, wanted) -> CorpusScan:
    """EmoDB: ``wav/SSTTTEV.wav`` (speaker, text, German emotion initial, take)."""
    folder = root / "wav" if (root / "wav").is_dir() else root
    files = _audio_files(folder)
    if not files:
        raise DataError("no .wav files found (expected wav/SSTTTEV.wav)", folder)
    scan = CorpusScan()
    for path in files:
        m = _EMODB_NAME.match(path.stem)
        if not m:
            scan.skip(path, "file name does not follow the EmoDB code SSTTTEV")
            continue
        spk, _text, emo, _take = m.groups()
        if emo not in EMODB_LABELS:
            scan.skip(path, f"missing label: unknown emotion letter {emo!r}")
            continue
        if spk not in EMODB_SPEAKERS:
            scan.skip(path, f"unknown EmoDB speaker {spk!r}")
            continue
        _keep(scan, wanted, Utterance(path.stem, str(path), spk, EMODB_SPEAKERS[spk], None,
                                      EMODB_LABELS[emo]))
    return scan


# --------------------------------------------------------------------------- RAVDESS

RAVDESS_LABELS = {"01": "neutral", "02": "calm", "03": "happiness", "04": "sadness",
                  "05": "anger", "06": "fear", "07": "disgust", "08": "surprise"}
_RAVDESS_NAME = re.compile(r"^(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)$")


def _read_ravdess(root: Path, wanted) -> CorpusScan:
    """RAVDESS speech: ``Actor_XX/03-01-EE-II-SS-RR-AA.wav`` (odd actor = male).

    Song recordings (vocal channel 02) are excluded; the speaker is ``Actor_XX``.
    """
    files = [p for p in _audio_files(root) if p.parent.name.startswith("Actor_")]
    if not files:
        raise DataError("no Actor_XX/*.wav files found", root)
    scan = CorpusScan()
    for path in files:
        m = _RAVDESS_NAME.match(path.stem)
        if not m:
            scan.skip(path, "file name does not follow MM-VV-EE-II-SS-RR-AA")
            continue
        _mod, channel, emo, _inten, _stmt, _rep, actor = m.groups()
        if channel != "01":
            scan.excluded["song (vocal channel 02)"] += 1
            continue
        if emo not in RAVDESS_LABELS:
            scan.skip(path, f"missing label: unknown emotion code {emo!r}")
            continue
        gender = "M" if int(actor) % 2 else "F"
        _keep(scan, wanted, Utterance(path.stem, str(path), f"Actor_{actor}", gender, None,
                                      RAVDESS_LABELS[emo]))
    return scan


# --------------------------------------------------------------------------- CREMA-D

CREMA_D_LABELS = {"ANG": "anger", "DIS": "disgust", "FEA": "fear", "HAP": "happiness",
                  "NEU": "neutral", "SAD": "sadness"}
_CREMA_NAME = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{1,2})$")


def _read_crema_d(root: Path, wanted) -> CorpusScan:
    """CREMA-D: ``AudioWAV/AAAA_SSS_EEE_LL.wav``; gender from ``VideoDemographics.csv``
    (ActorID, Sex) when it is present at the root, otherwise unknown."""
    folder = root / "AudioWAV" if (root / "AudioWAV").is_dir() else root
    files = _audio_files(folder)
    if not files:
        raise DataError("no .wav files found (expected AudioWAV/AAAA_SSS_EEE_LL.wav)", folder)
    genders: dict[str, str] = {}
    demo = root / "VideoDemographics.csv"
    if demo.is_file():
        with open(demo, newline="", encoding="utf-8-sig") as fh:
            for row in csv.DictReader(fh):
                sex = (row.get("Sex") or "").strip()[:1].upper()
                if sex in ("M", "F"):
                    genders[(row.get("ActorID") or "").strip()] = sex
    scan = CorpusScan()
    for path in files:
        m = _CREMA_NAME.match(path.stem)
        if not m:
            scan.skip(path, "file name does not follow AAAA_SSS_EEE_LL")
            continue
        actor, _sentence, emo, _level = m.groups()
        if emo not in CREMA_D_LABELS:
            scan.skip(path, f"missing label: unknown emotion code {emo!r}")
            continue
        _keep(scan, wanted, Utterance(path.stem, str(path), actor, genders.get(actor), None,
                                      CREMA_D_LABELS[emo]))
    return scan


# --------------------------------------------------------------------------- synthetic

_SYNTH_NAME = re.compile(r"^(spk\d+)_([FM])_([a-z]+)_(\d+)$")


def _read_synthetic(root: Path, wanted) -> CorpusScan:
    """The generated corpus (``data_prep.synthetic``): ``wav/<spkNN>_<G>_<label>_<nnn>.wav``."""
    folder = root / "wav"
    files = _audio_files(folder) if folder.is_dir() else []
    if not files:
        raise DataError("no generated corpus here (expected wav/spkNN_G_label_nnn.wav; "
                        "make one with data_prep.synthetic.generate)", root)
    scan = CorpusScan()
    for path in files:
        m = _SYNTH_NAME.match(path.stem)
        if not m:
            scan.skip(path, "file name does not follow spkNN_G_label_nnn")
            continue
        spk, gender, label, _n = m.groups()
        if label not in PAPER_CLASSES:
            scan.skip(path, f"missing label: unknown label {label!r}")
            continue
        _keep(scan, wanted, Utterance(path.stem, str(path), spk, gender, None, label))
    return scan


# --------------------------------------------------------------------------- dispatch

_READERS: dict[str, tuple[Callable[..., CorpusScan], dict[str, str]]] = {
    "iemocap": (_read_iemocap, IEMOCAP_LABELS),
    "msp_improv": (_read_msp_improv, MSP_IMPROV_LABELS),
    "msp_podcast": (_read_msp_podcast, MSP_PODCAST_LABELS),
    "emodb": (_read_emodb, EMODB_LABELS),
    "ravdess": (_read_ravdess, RAVDESS_LABELS),
    "crema_d": (_read_crema_d, CREMA_D_LABELS),
    "synthetic": (_read_synthetic, {c: c for c in PAPER_CLASSES}),
}


def corpus_classes(name: str, classes: str | Sequence[str] | None = None) -> tuple[str, ...]:
    """The label names (in label-index order) that ``classes`` selects for a corpus.

    ``None`` -> the paper's four; ``"all"`` -> the four followed by the corpus's other
    labels in alphabetical order; a sequence -> those names, checked against the corpus.
    """
    if name not in _READERS:
        raise DataError(f"unknown corpus {name!r}; valid names: {', '.join(CORPORA)}")
    known = set(_READERS[name][1].values())
    if classes is None:
        return PAPER_CLASSES
    if isinstance(classes, str):
        if classes != "all":
            raise DataError(f"classes must be None, 'all' or a list of names, not {classes!r}")
        return PAPER_CLASSES + tuple(sorted(known - set(PAPER_CLASSES)))
    chosen = tuple(classes)
    bad = [c for c in chosen if c not in known]
    if bad or not chosen or len(set(chosen)) != len(chosen):
        raise DataError(f"invalid classes {list(chosen)} for {name}; valid: {sorted(known)}")
    return chosen


def scan_corpus(name: str, root, *, classes: str | Sequence[str] | None = None, **opts) -> CorpusScan:
    """Read a corpus folder into a :class:`CorpusScan` (utterances, skipped, excluded)."""
    wanted = corpus_classes(name, classes)
    root = Path(root)
    if not root.is_dir():
        raise DataError("corpus root does not exist or is not a folder", root)
    reader = _READERS[name][0]
    allowed = [p.name for p in inspect.signature(reader).parameters.values()
               if p.kind is p.KEYWORD_ONLY]
    bad = sorted(set(opts) - set(allowed))
    if bad:
        raise DataError(f"invalid option(s) {bad} for corpus {name}; valid: {allowed or 'none'}")
    scan = reader(root, wanted, **opts)
    ids = Counter(u.id for u in scan.utterances)
    dup = [i for i, n in ids.items() if n > 1]
    if dup:
        raise DataError(f"duplicate utterance ids in {name}: {dup[:5]}", root)
    return scan


def read_corpus(name: str, root, *, classes: str | Sequence[str] | None = None,
                **opts) -> list[Utterance]:
    """The labelled utterances of corpus ``name`` under ``root`` (see :func:`scan_corpus`)."""
    return scan_corpus(name, root, classes=classes, **opts).utterances
