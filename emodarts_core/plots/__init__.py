"""Figures for every notebook: features, training curves, the architecture weights, found
cells, results.

Every function returns a matplotlib `Figure` and, when `path` is given, also writes it
there (PNG, parent folders created), so a notebook can show a plot and leave the same
file in its run directory. Nothing here needs a display, graphviz or a GPU, and nothing
here imports the rest of the library, so any notebook or layer may use it:

- `style`: a colour per operation family (`op_colour`), the cells' titles, `save_figure`;
- `features`: the waveform and MFCC image (notebook 01);
- `training`: losses and accuracies per epoch (notebooks 03, 04);
- `search`: softmax(alpha) heatmaps and trajectories, collapse curves (notebook 03);
- `alpha`: whether a search's alpha moved from the uniform start (notebook 03);
- `cells`: the cell-drawing engine, found cells as in the paper's Figure 6 (notebooks 03, 05);
- `results`: confusion matrix, the paper's Figures 5 and 7, random architectures' UA, UA per fold
  (seaborn; notebooks 04, 05);
- `ranking`: one-shot against stand-alone UA per fold, the best-test-epoch optimism (seaborn; notebook 06).
"""

from .alpha import plot_alpha_diagnostics, plot_alpha_moves
from .cells import cell_edges, draw_cell, plot_genotype
from .features import plot_utterance
from .results import plot_confusion, plot_per_fold, plot_random_distribution, plot_ua_bars, plot_ua_scatter
from .ranking import plot_optimism, plot_ranking
from .search import plot_alpha_heatmap, plot_alpha_trajectories, plot_collapse
from .style import CELL_TITLES, op_colour, save_figure
from .training import plot_training_curves

__all__ = ["CELL_TITLES", "op_colour", "save_figure", "plot_utterance", "plot_training_curves",
           "plot_alpha_heatmap", "plot_alpha_trajectories", "plot_collapse", "plot_alpha_moves",
           "plot_alpha_diagnostics", "cell_edges", "draw_cell",
           "plot_genotype", "plot_confusion", "plot_ua_scatter", "plot_ua_bars", "plot_random_distribution",
           "plot_per_fold", "plot_optimism", "plot_ranking"]
