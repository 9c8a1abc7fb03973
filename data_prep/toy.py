"""A toy fold of random "spectrograms" with a learnable class signal, for tests and demos.

The class of an utterance shifts the mean of one band of coefficients, so a network has
something to fit in a second or two per epoch on CPU. It is not speech: the generated
corpus (`data_prep.synthetic`) is what stands in for a real corpus.
"""

from __future__ import annotations

import numpy as np

from data_prep.folds import Fold


def toy_split(n: int, size=(16, 16), n_classes: int = 4, seed: int = 0, prefix: str = "u"):
    """`n` utterances of shape `size`, labels cycling over the classes, three pseudo-speakers."""
    from data_prep import Split

    rng = np.random.default_rng(seed)
    y = np.arange(n, dtype=np.int64) % n_classes
    X = rng.standard_normal((n, *size)).astype(np.float32)
    band = size[0] // n_classes
    for i, c in enumerate(y):
        X[i, c * band:(c + 1) * band] += 1.0
    return Split(X=X, y=y, ids=[f"{prefix}{i}" for i in range(n)], speakers=[f"{prefix}spk{i % 3}" for i in range(n)])


def toy_fold(n_search: int = 16, n_train: int = 12, n_test: int = 8, size=(16, 16), n_classes: int = 4):
    """A `FoldData` of three toy splits with disjoint ids and speakers (seeds 1, 2, 3)."""
    from data_prep import FoldData

    search, train, test = (toy_split(n_search, size, n_classes, 1, "s"), toy_split(n_train, size, n_classes, 2, "t"),
                           toy_split(n_test, size, n_classes, 3, "x"))
    fold = Fold(index=1, test_speakers=sorted(set(test.speakers)), test=test.ids, search=search.ids,
                train=train.ids, seed=0)
    return FoldData(search, train, test, tuple(f"c{i}" for i in range(n_classes)), fold)
