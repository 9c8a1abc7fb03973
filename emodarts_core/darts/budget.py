"""A search's budget in α updates, and the seed of its initial weights and α per fold.

**Budget.** Each step of the search takes one α step on a batch of the α half of the
fold's search split and one weight step on a batch of the weight half (DARTS Algorithm 1),
so an epoch holds min(weight batches, α batches) α steps, none during the weight warm-up.
How far the α move is a matter of α steps times the α learning rate: Adam moves a logit by
at most about `alpha_lr` per step. A corpus of a few hundred utterances gives a handful of
α steps per epoch, against the tens of thousands DARTS takes on CIFAR-10 (50 epochs of
about 390 steps) and the paper's 300 epochs on IEMOCAP. `SearchConfig.alpha_steps` states
the budget in α steps; `search_budget` derives the epochs from it (warm-up epochs added),
or counts the α steps that a budget stated in epochs gives.

**Seeds per fold.** The initial weights and α of the search of fold k under seed s come
from `init_seed(s, k)`, a seed made from both by NumPy's `SeedSequence` (a stable hash:
the same on every machine and Python), so that the folds of a study run under one seed do
not all start from the same supernet. A fold without an index starts from seed s itself.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from emodarts_core.config import SearchConfig

#: Mixed into the seed, so that the search's initialisation stream is not the random
#: controls' (`emodarts_core.space.sampling.STREAMS`) under the same (seed, fold).
INIT_STREAM = 0x1A17


def init_seed(seed: int, fold: int | None) -> int:
    """The seed of the initial weights and α of fold `fold` (1-based) under study seed `seed`."""
    if fold is None:
        return int(seed)
    return int(np.random.SeedSequence([INIT_STREAM, int(seed), int(fold)]).generate_state(1, np.uint32)[0])


@dataclass(frozen=True)
class SearchBudget:
    """What a search will run: epochs, of them warm-up epochs, steps per epoch and α steps."""

    epochs: int
    warmup_epochs: int
    steps_per_epoch: int
    alpha_steps: int            # α updates the search takes (0 with the α frozen)
    requested_alpha_steps: int | None
    alpha_lr: float
    frozen: bool

    def describe(self) -> str:
        """One line for the log: the budget in α steps, and how it was derived."""
        search_epochs = self.epochs - self.warmup_epochs
        planned = search_epochs * self.steps_per_epoch
        head = (f"search budget: {self.epochs} epochs ({self.warmup_epochs} warm-up) of {self.steps_per_epoch} "
                f"steps = {planned} α steps at α lr {self.alpha_lr:g}")
        if self.requested_alpha_steps is not None:
            head += f" (alpha_steps={self.requested_alpha_steps}, rounded up to whole epochs)"
        if self.frozen:
            head += "; α frozen at their initial values (the prior control): no α step is taken"
        else:
            head += f"; Adam moves a logit by at most about {planned * self.alpha_lr:.3g} in all"
        return head

    def to_dict(self) -> dict:
        return asdict(self)


def steps_per_epoch(n_weight_half: int, n_alpha_half: int, batch_size: int) -> int:
    """Steps per epoch: one per pair of a weight batch and an α batch (the shorter half
    decides). A shuffled loader drops a last batch of one sample (`training.data.make_loader`)."""
    def batches(n: int) -> int:
        full = math.ceil(n / batch_size)
        return full - 1 if n > 1 and n % batch_size == 1 else full

    return max(0, min(batches(n_weight_half), batches(n_alpha_half)))


def search_budget(search_cfg: SearchConfig, steps: int) -> SearchBudget:
    """The budget of `search_cfg` at `steps` steps per epoch: with `alpha_steps` the epochs
    that reach it (rounded up, warm-up added), with `epochs` the α steps they give."""
    if steps < 1:
        raise ValueError(f"the search split gives {steps} steps per epoch; it needs at least 1")
    warmup = search_cfg.warmup_epochs
    if search_cfg.alpha_steps is not None:
        epochs = warmup + math.ceil(search_cfg.alpha_steps / steps)
    else:
        epochs = search_cfg.epochs
    alpha_steps = 0 if search_cfg.freeze_alpha else (epochs - warmup) * steps
    return SearchBudget(epochs, warmup, steps, alpha_steps, search_cfg.alpha_steps, float(search_cfg.alpha_lr),
                        bool(search_cfg.freeze_alpha))


__all__ = ["INIT_STREAM", "init_seed", "SearchBudget", "steps_per_epoch", "search_budget"]
