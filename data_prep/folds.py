"""Speaker-independent cross-validation folds, one protocol per corpus.

A fold holds out whole speakers as ``test``; the remaining utterances are split into
``search`` (architecture search, 70 %) and ``train`` (training the derived model, 30 %),
stratified by label and seeded. Protocols (paper section IV-A):

- ``iemocap``: a fold scheme chooses between the two the paper's work knows
  (docs/DATA.md): ``"reference"`` (the default), the speaker pairs across sessions of the
  authors' preparation (1 = Ses01 M + Ses02 F, 2 = Ses02 M + Ses03 F, 3 = Ses03 M + Ses04
  F, 4 = Ses04 M + Ses05 F, 5 = Ses05 M + Ses01 F), and ``"session"``, one session (both
  its speakers) out, as the paper's text (section IV-A) describes;
- ``msp_improv``: one session out (6 folds);
- ``emodb``: 5 folds of one male + one female speaker, the sorted males
  (03, 10, 11, 12, 15) paired with the sorted females (08, 09, 13, 14, 16);
- ``msp_podcast``, ``ravdess``, ``crema_d``, ``synthetic`` (and any other corpus):
  5 speaker groups, filled per gender so that genders and utterance counts balance.

Folds are saved as JSON (:func:`save_folds`) so a run records exactly what it used.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import asdict, dataclass

import numpy as np

from .errors import DataError
from .store import write_json_atomic

IEMOCAP_FOLDS = (("Ses01M", "Ses02F"), ("Ses02M", "Ses03F"), ("Ses03M", "Ses04F"),
                 ("Ses04M", "Ses05F"), ("Ses05M", "Ses01F"))
N_GROUP_FOLDS = 5
#: Fold schemes: "reference" is every corpus's protocol above; IEMOCAP also has "session".
FOLD_SCHEMES = ("reference", "session")
DEFAULT_SCHEME = "reference"


@dataclass
class Fold:
    """One fold: 1-based ``index``, held-out speakers, and utterance ids per split."""

    index: int
    test_speakers: list[str]
    test: list[str]
    search: list[str]
    train: list[str]
    seed: int
    scheme: str = DEFAULT_SCHEME


def _emodb_groups(speakers: dict[str, str | None]) -> list[list[str]]:
    males = sorted(s for s, g in speakers.items() if g == "M")
    females = sorted(s for s, g in speakers.items() if g == "F")
    if len(males) != len(females) or not males:
        raise DataError(f"EmoDB folds pair one male with one female speaker; found "
                        f"males {males} and females {females}")
    return [[m, f] for m, f in zip(males, females)]


def _session_groups(speaker_sessions: dict[str, str | None]) -> list[list[str]]:
    by_session: dict[str, list[str]] = defaultdict(list)
    for spk, sess in speaker_sessions.items():
        if sess is None:
            raise DataError(f"speaker {spk} has no session; one-session-out folds need sessions")
        by_session[sess].append(spk)
    return [sorted(by_session[s]) for s in sorted(by_session)]


def balanced_groups(speakers: dict[str, str | None], counts: Counter,
                    n_groups: int = N_GROUP_FOLDS) -> list[list[str]]:
    """Speakers in ``n_groups`` groups, gender by gender, most utterances first.

    Each speaker goes to the group with the fewest utterances of its gender so far
    (then fewest utterances overall, then lowest index), so both genders and group
    sizes stay balanced. Deterministic: it depends on names and counts only.
    """
    if len(speakers) < n_groups:
        raise DataError(f"{len(speakers)} speakers cannot make {n_groups} speaker-independent folds")
    groups: list[list[str]] = [[] for _ in range(n_groups)]
    total = [0] * n_groups
    for gender in ("M", "F", None):
        pool = sorted((s for s, g in speakers.items() if g == gender), key=lambda s: (-counts[s], s))
        within = [0] * n_groups
        for spk in pool:
            k = min(range(n_groups), key=lambda j: (within[j], total[j], j))
            groups[k].append(spk)
            within[k] += counts[spk]
            total[k] += counts[spk]
    return [sorted(g) for g in groups]


def check_scheme(corpus: str, scheme: str) -> str:
    """``scheme`` if ``corpus`` has it (IEMOCAP: reference or session; others: reference)."""
    valid = FOLD_SCHEMES if corpus == "iemocap" else (DEFAULT_SCHEME,)
    if scheme not in valid:
        raise DataError(f"unknown fold_scheme {scheme!r} for {corpus}; valid: {', '.join(valid)}"
                        + ("" if corpus == "iemocap" else " (only IEMOCAP has a second scheme)"))
    return scheme


def test_speaker_groups(corpus: str, speakers: list[str], genders: list, sessions: list,
                        scheme: str = DEFAULT_SCHEME) -> list[list[str]]:
    """The held-out speakers of each fold, in fold order, for ``corpus``'s protocol
    (``scheme``: see the module's docstring)."""
    gender_of = dict(zip(speakers, genders))
    check_scheme(corpus, scheme)
    if corpus == "iemocap" and scheme == "session":
        groups = _session_groups(dict(zip(speakers, sessions)))
        incomplete = [g for g in groups if len(g) != 2]
        if len(groups) != 5 or incomplete:
            raise DataError(f"IEMOCAP's one-session-out folds need five sessions of two speakers each; found "
                            f"{groups}")
        return groups
    if corpus == "iemocap":
        missing = sorted({s for pair in IEMOCAP_FOLDS for s in pair} - set(speakers))
        if missing:
            raise DataError(f"IEMOCAP folds need all ten speakers; missing {missing}")
        return [list(p) for p in IEMOCAP_FOLDS]
    if corpus == "msp_improv":
        return _session_groups(dict(zip(speakers, sessions)))
    if corpus == "emodb":
        return _emodb_groups(gender_of)
    return balanced_groups(gender_of, Counter(speakers))


def split_search_train(ids: list[str], labels: list, fraction: float, rng: np.random.Generator
                       ) -> tuple[list[str], list[str]]:
    """Stratified split of ``ids``: ``fraction`` of each label to search, the rest to train.

    Each label with at least two utterances puts at least one in each part. Order of the
    input is kept inside each part.
    """
    if not 0.0 < fraction < 1.0:
        raise DataError(f"search_fraction must be between 0 and 1, not {fraction}")
    to_search = set()
    by_label: dict = defaultdict(list)
    for i, lab in enumerate(labels):
        by_label[lab].append(i)
    for lab in sorted(by_label):
        idx = np.array(by_label[lab])
        rng.shuffle(idx)
        n = len(idx)
        k = int(round(fraction * n))
        if n >= 2:
            k = min(max(k, 1), n - 1)
        to_search.update(idx[:k].tolist())
    search = [ids[i] for i in range(len(ids)) if i in to_search]
    train = [ids[i] for i in range(len(ids)) if i not in to_search]
    return search, train


def make_folds(store, *, seed: int = 0, search_fraction: float = 0.7,
               scheme: str = DEFAULT_SCHEME) -> list[Fold]:
    """The folds of a feature store (protocol chosen by ``store.corpus`` and ``scheme``)."""
    return _folds(store, seed, search_fraction, scheme, None)


def make_fold(store, index: int, *, seed: int = 0, search_fraction: float = 0.7,
              scheme: str = DEFAULT_SCHEME) -> Fold:
    """Fold ``index`` (1-based) of a feature store, as :func:`make_folds` makes it, without
    splitting the others (each fold's split has its own seed)."""
    return _folds(store, seed, search_fraction, scheme, index)[0]


def _folds(store, seed: int, search_fraction: float, scheme: str, only: int | None) -> list[Fold]:
    groups = test_speaker_groups(store.corpus, list(store.speakers), list(store.genders),
                                 list(store.sessions), scheme)
    if only is not None and not 1 <= only <= len(groups):
        raise DataError(f"fold {only!r} does not exist for {store.corpus}; valid folds: 1..{len(groups)}")
    labels = list(np.asarray(store.y))
    folds = []
    for k, test_speakers in enumerate(groups, start=1):
        if only is not None and k != only:
            continue
        held = set(test_speakers)
        test = [i for i, s in zip(store.ids, store.speakers) if s in held]
        if not test:
            raise DataError(f"fold {k} ({test_speakers}) has no test utterances")
        rest = [j for j, s in enumerate(store.speakers) if s not in held]
        search, train = split_search_train([store.ids[j] for j in rest], [labels[j] for j in rest],
                                           search_fraction, np.random.default_rng([seed, k]))
        folds.append(Fold(k, sorted(test_speakers), test, search, train, seed, scheme))
    return folds


def save_folds(folds: list[Fold], path) -> None:
    """Write folds as JSON, atomically."""
    write_json_atomic(path, {"format": 1, "folds": [asdict(f) for f in folds]})

