"""The study's tables as Markdown, for results/<dataset>/README.md and the project README.

`python -m emodarts_core.results ROOT --markdown FILE` writes them from the same frames as
summary.csv and study.csv (`results.summarise_study`, `results.collect_study`), so a table
in a README is regenerated, never retyped, when more seeds come in. The columns follow the
study's plan (results/emodb/README.md): mean ± SD over (fold, seed) cells, UA with its 95 %
interval over speakers, and the comparison of the searched genotype with each model over
speakers (primary) and over fold × seed cells (secondary).
"""

from __future__ import annotations

import math

import pandas as pd

#: Row titles and order of the study's models.
MODEL_TITLES = {"emodarts": "emoDARTS (searched)", "prior": "prior (the search with its α frozen at the start)",
                # the selection rules that read the searches (docs/SELECTION.md)
                "emodarts_pt": "emoDARTS selected by perturbation (darts-pt)",
                "prior_pt": "prior selected by perturbation (darts-pt's fixed α)",
                "consensus": "consensus of the seeds' α",
                "random": "random architectures",
                "random_reseed": "random architectures, second training seed (the ceiling)",
                "random_search": "random search (same compute)", "cnn": "CNN (w/o DARTS)",
                "cnn_lstm": "CNN+LSTM (w/o DARTS)", "cnn_lstm_att": "CNN+LSTM-att (w/o DARTS)",
                "classic": "classic (MFCC statistics)",
                "egemaps": "eGeMAPS (openSMILE functionals)"}


def _title(model: str, scope: str) -> str:
    title = MODEL_TITLES.get(model, model)
    return title if not scope or scope in (model, "emodarts") else f"{title} [{scope}]"


def _order(frame: pd.DataFrame) -> pd.DataFrame:
    rank = {m: i for i, m in enumerate(MODEL_TITLES)}
    return frame.assign(_rank=frame["model"].map(lambda m: rank.get(m, len(rank)))).sort_values(
        ["_rank", "model", "scope"]).drop(columns="_rank")


def _num(value, digits: int = 1) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) or pd.isna(value) \
        else f"{value:.{digits}f}"


def _p(value) -> str:
    if value is None or pd.isna(value):
        return ""
    return f"{value:.3g}" if value >= 1e-3 else "< 0.001"


def _params(value) -> str:
    if pd.isna(value):
        return ""
    return f"{value / 1e6:.2f} M" if value >= 1e6 else f"{value / 1e3:.1f} K"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _interval(value, low, high, signed: bool = False) -> str:
    """'74.9 [72.8, 77.9]' (signed: '+6.8 [+3.9, +9.8]'); 'n/a' without a value."""
    if value is None or pd.isna(value):
        return "n/a"
    f = "{:+.1f}" if signed else "{:.1f}"
    return f"{f.format(value)} [{f.format(low)}, {f.format(high)}]"


#: What the secondary column assumes, printed under each summary table.
PERMUTATION_NOTE = ("UA mean ± SD is over the (fold, seed) cells, each cell's runs (the random architectures) "
                    "averaged first. The p-values in the speaker columns are exact: a sign-flip permutation test over "
                    "the test speakers' paired UA differences with every one of the 2^n sign patterns, Holm-adjusted "
                    "over a protocol's comparisons; the intervals beside them come from the bootstrap over speakers. "
                    "The fold × seed column pairs the mean UA of each (fold, seed) cell and tests it with a sign-flip "
                    "permutation test, which assumes the cells are independent and exchangeable; the seeds of a fold "
                    "share its test speakers and the searches of a seed share their initialisation across folds, so "
                    "it overstates the evidence. The speaker intervals resample speakers, then their utterances, with "
                    "each utterance's correctness averaged over seeds (and architectures) first; n/a where the runs "
                    "hold no per-utterance predictions (runs from before they were recorded).")


def exact_floor_line(summary: pd.DataFrame, protocol: str) -> str:
    """The smallest p the exact speaker test can give under `protocol`, with and without Holm."""
    part = summary[(summary["protocol"] == protocol)]
    if "p_exact_min" not in part or part["p_exact_min"].dropna().empty:
        return ""
    floor, family = float(part["p_exact_min"].dropna().min()), int(part["p_exact"].notna().sum())
    speakers = int(part.loc[part["p_exact_min"].notna(), "n_speakers"].max())
    return (f"With {speakers} test speakers the exact test's smallest attainable p is 2 / 2^{speakers} = "
            f"{_p(floor)}; after Holm over the {family} comparisons it is at least {_p(min(1.0, family * floor))}.")


def summary_table(summary: pd.DataFrame, protocol: str) -> str:
    """One protocol's rows of summary.csv as a Markdown table: UA mean ± SD over cells, the
    speaker-level figures (UA and the difference from emoDARTS with bootstrap intervals over
    speakers, the exact speaker p and its Holm adjustment), then the fold × seed comparison
    as a secondary column (`PERMUTATION_NOTE`)."""
    part = _order(summary[summary["protocol"] == protocol])
    rows = []
    for r in part.itertuples(index=False):
        runs = f"{r.n_runs} ({r.n_folds} × {r.n_seeds}" + (f" × {r.n_archs}" if r.n_archs else "") + ")"
        if getattr(r, "n_one_class", 0):  # runs whose test predictions are all one class
            runs += f", {r.n_one_class} one class"
        cells = "" if pd.isna(r.cmp_diff) else (f"{_interval(r.cmp_diff, r.cmp_diff_low, r.cmp_diff_high, True)}"
                                                f" (n = {r.cmp_n}), p {'' if r.p_perm < 1e-3 else '= '}{_p(r.p_perm)}")
        speaker_diff = getattr(r, "speaker_diff", None)
        is_reference = pd.isna(r.cmp_diff) and (speaker_diff is None or pd.isna(speaker_diff))
        rows.append([_title(r.model, r.scope), runs, f"{_num(r.ua_mean)} ± {_num(r.ua_std)}",
                     _interval(getattr(r, "speaker_ua", None), getattr(r, "speaker_ua_low", None),
                               getattr(r, "speaker_ua_high", None)),
                     "" if is_reference else _interval(speaker_diff, getattr(r, "speaker_diff_low", None),
                                                       getattr(r, "speaker_diff_high", None), True),
                     "" if is_reference else _p(getattr(r, "p_exact", None)) or "n/a",
                     "" if is_reference else _p(getattr(r, "p_exact_holm", None)) or "n/a",
                     cells, f"{_num(r.wa_mean)} ± {_num(r.wa_std)}", _params(r.params_mean)])
    return _table(["model", "runs (folds × seeds)", "UA mean ± SD over cells", "UA [95 % CI, speakers]",
                   "emoDARTS − model [95 % CI, speakers]", "p exact (speakers)", "p exact (speakers, Holm)",
                   "emoDARTS − model over fold × seed cells [95 % CI], p (permutation)", "WA mean ± SD over cells",
                   "params"],
                  rows)


def protocol_effects_table(summary: pd.DataFrame) -> str:
    """What less data and fewer weight updates each cost, per model: UA (mean over cells)
    under ``paper``, ``paper_equal`` (the 30 % split at ``full``'s number of updates) and
    ``full``, with ``paper_equal`` − ``paper`` (the updates' effect, same data) and ``full`` −
    ``paper_equal`` (the data's effect, same updates). Empty without all three protocols."""
    wanted = ("paper", "paper_equal", "full")
    if not set(wanted) <= set(summary["protocol"]):
        return ""
    means = summary.pivot_table(index=["model", "scope"], columns="protocol", values="ua_mean", aggfunc="first")
    rows = []
    for (model, scope), r in _order(means.reset_index()).set_index(["model", "scope"]).iterrows():
        paper, equal, full = (r.get(p) for p in wanted)
        rows.append([_title(model, scope), _num(paper), _num(equal), _num(full),
                     "" if pd.isna(paper) or pd.isna(equal) else f"{round(equal - paper, 1) + 0.0:+.1f}",
                     "" if pd.isna(equal) or pd.isna(full) else f"{round(full - equal, 1) + 0.0:+.1f}"])
    return _table(["model", "paper", "paper_equal", "full", "more updates (paper_equal − paper)",
                   "more data (full − paper_equal)"], rows)


def per_fold_table(study: pd.DataFrame) -> str:
    """Test UA per (protocol, model) and fold: the mean over seeds (and, for the random
    architectures, over their architectures), with the number of seeds behind it."""
    done = study[study["ua"].notna()]
    folds = sorted(int(f) for f in done["fold"].dropna().unique())
    rows = []
    for (protocol, model, scope), part in done.groupby(["protocol", "model", "scope"], sort=True):
        cells = []
        for fold in folds:
            at = part[part["fold"] == fold]
            cells.append("" if at.empty else f"{at['ua'].mean():.1f} ({at['seed'].nunique()})")
        rows.append((protocol, MODEL_TITLES.get(model, model), model, scope, cells))
    rank = {m: i for i, m in enumerate(MODEL_TITLES)}
    rows.sort(key=lambda r: (r[0], rank.get(r[2], len(rank)), r[2], r[3]))
    return _table(["protocol", "model", *[f"fold {f}" for f in folds]],
                  [[p, _title(m, s), *c] for p, _, m, s, c in rows])


def stability_lines(stability: dict) -> str:
    """The search-stability figures of `stability.search_stability` as Markdown bullets."""
    if not stability.get("n_searches"):
        return "- no finished search"
    curve = ", ".join(f"{v:.2f}" for v in stability["mean_agreement_per_epoch"])
    lines = [f"- agreement of each epoch's genotype with the final one, mean over "
             f"{stability['n_searches']} searches, epochs 1-{stability['epochs']}: {curve}",
             f"- searches whose genotype no longer changes in the second half of the budget: "
             f"{stability['settled_in_second_half']:.0%}"]
    lift = stability.get("final_lift")
    if lift:
        lines.append(f"- lift of the top op over the uniform weight at the end (1 = the α never moved): mean "
                     f"{lift['mean']:.2f}, range {lift['min']:.2f}-{lift['max']:.2f}; searches that moved their α "
                     f"(lift >= 1.2): {lift['moved']:.0%}")
    per_fold = stability.get("seed_agreement_per_fold") or {}
    if per_fold:
        lines.append("- agreement between the final genotypes of different seeds, per fold: " +
                     ", ".join(f"{f} {v:.2f}" for f, v in per_fold.items()))
    corr = stability.get("seed_alpha_correlation_per_fold") or {}
    if corr:
        lines.append("- correlation of different seeds' final op weights, per fold (normal / reduce / seq; "
                     "1 = the same lean, 0 = unrelated): " +
                     ", ".join(f"{f} " + " / ".join(f"{cells[c]:.2f}" if c in cells else "n/a"
                                                   for c in ("normal", "reduce", "seq"))
                               for f, cells in corr.items()))
    return "\n".join(lines)


def times_table(times: pd.DataFrame) -> str:
    """`results.wall_times` (compute per kind of run) as a Markdown table."""
    return _table(["kind of run", "runs", "median s", "total min"],
                  [[r.kind, str(r.runs), f"{r.median_s:.0f}", f"{r.total_min:.1f}"] for r in times.itertuples()])


def cells_lines(cells: pd.DataFrame) -> str:
    """Which (fold, seed) cells the tables hold (`results.complete_cells`), per protocol, and
    what each unfinished cell still lacks: the header of a study's tables while it runs."""
    lines = []
    for (dataset, protocol), part in cells.groupby(["dataset", "protocol"], sort=True):
        done = part[part["complete"]]
        named = ", ".join(f"fold {r.fold} seed {r.seed}" for r in done.itertuples()) or "none"
        lines.append(f"- `{dataset}`, protocol `{protocol}`: {len(done)} complete of {len(part)} begun ({named})")
        for r in part[~part["complete"]].itertuples():
            lines.append(f"  - fold {r.fold} seed {r.seed} left out, still lacking: {r.missing}")
    return "\n".join(lines)


def markdown_report(summary: pd.DataFrame, study: pd.DataFrame, stability: dict | None = None,
                    times: pd.DataFrame | None = None, cells: pd.DataFrame | None = None) -> str:
    """All of the study's tables: per protocol, per fold, the search's stability, compute.

    With `cells` (`results.complete_cells`' state of every cell), the tables are those of a
    study still running, and a header says which cells they hold and which they leave out.
    """
    parts = []
    if cells is not None:
        parts += ["**Partial: these tables hold only the complete (fold, seed) cells**, those in which every model "
                  "has finished, so that no model is compared on folds or seeds another lacks "
                  "(`python -m emodarts_core.results ROOT --complete-cells`). The search-stability lines use every "
                  "finished search.", "", cells_lines(cells), ""]
    for protocol in sorted(summary["protocol"].unique()):
        parts += [f"**Protocol `{protocol}`**", "", summary_table(summary, protocol), ""]
        floor = exact_floor_line(summary, protocol)
        parts += [floor, ""] if floor else []
    parts += [PERMUTATION_NOTE, ""]
    effects = protocol_effects_table(summary)
    if effects:
        parts += ["UA % (mean over cells) per protocol: `paper_equal` trains on `paper`'s 30 % split for as many "
                  "weight updates as `full` makes, so it separates the cost of fewer updates from the cost of "
                  "less data.", "", effects, ""]
    parts += ["Test UA % per fold: mean over seeds (number of seeds); random architectures: mean over their "
              "architectures too.", "", per_fold_table(study), ""]
    if stability is not None:
        parts += ["Stability of the searched genotypes (`emodarts_core/study/stability.py`):", "",
                  stability_lines(stability), ""]
    if times is not None:
        parts += ["Compute per run (sum of its epoch times, `wall_time.csv`):", "", times_table(times), ""]
    return "\n".join(parts)


__all__ = ["MODEL_TITLES", "exact_floor_line", "protocol_effects_table", "cells_lines", "summary_table", "per_fold_table", "stability_lines", "times_table", "markdown_report"]
