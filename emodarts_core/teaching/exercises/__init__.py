"""Self-checks for the exercises at the end of notebooks 01-06.

Each notebook ends with an "Exercises" section (in the manner of d2l.ai's sections): per
exercise a task, a cell where the student sets one or more answer variables (``None``
until answered), and a self-check cell that calls one function of this package with the
notebook's objects and the answers. The function returns a :class:`Verdict`, which the
notebook displays: correct, not yet right (with a hint that says what to reconsider),
not answered yet, or cannot be checked here (e.g. notebook 05 on a folder without a
study). A check never raises on an unanswered or malformed answer, so the notebooks still
run headless (papermill, nbval) with every answer left as ``None``; it computes its
reference only once something is answered, so an unanswered check costs nothing.

Every reference answer is computed from the library at check time (the feature settings,
the fold protocol, the genotype parser, the run directories, the statistics), never
written down here, so a change in the library cannot leave a stale number behind. The
worked solutions live outside the student notebooks, in ``notebooks/solutions/``;
``tests/test_exercises.py`` runs them against these checks.

One module per notebook (`features`, `mixed_op`, `search`, `retrain`, `paper_figures`,
`search_helps`)
over the marking core (`marking`); the multiple-choice questions are in
:data:`CHOICES` (`choices`), and the notebooks print the same option texts (a test keeps
the two in step). The notebooks call every check as ``exercises.check_...``.
"""

from .choices import CHOICES, choice_text
from .features import check_column_time, check_fold_test_speakers, check_majority_baseline
from .marking import CORRECT, INCOMPLETE, INCORRECT, UNANSWERED, UNCHECKABLE, Verdict
from .mixed_op import check_cell_memory, check_none_never_parsed, check_uniform_mixture
from .paper_figures import check_permutation_p, check_seeds_needed, check_study_p
from .retrain import check_baseline_comparison, check_confusion_scores, check_epoch_selection
from .search import check_alpha_count, check_collapse_and_fix, check_rnn_only_search
from .search_helps import check_consensus_share, check_optimism_gap, check_pt_agreement, check_ranking_tau

#: The checks of each notebook, in the order of its exercises.
CHECKS = {
    "01_features": (check_column_time, check_fold_test_speakers, check_majority_baseline),
    "02_mixed_op_relaxation": (check_none_never_parsed, check_uniform_mixture, check_cell_memory),
    "03_search": (check_alpha_count, check_rnn_only_search, check_collapse_and_fix),
    "04_retrain": (check_baseline_comparison, check_epoch_selection, check_confusion_scores),
    "05_paper_figures": (check_permutation_p, check_seeds_needed, check_study_p),
    "06_does_the_search_help": (check_consensus_share, check_ranking_tau, check_pt_agreement, check_optimism_gap),
}

__all__ = ["Verdict", "CHOICES", "CHECKS", "choice_text", "CORRECT", "INCORRECT", "UNANSWERED", "INCOMPLETE",
           "UNCHECKABLE", *(fn.__name__ for fns in CHECKS.values() for fn in fns)]
