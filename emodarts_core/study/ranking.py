"""How well a trained supernet ranks architectures: one-shot scores of the study's random
architectures against their stand-alone UA (Sciuto et al., "Evaluating the search phase
of neural architecture search", ICLR 2020; Yang et al., "NAS evaluation is frustratingly
hard", ICLR 2020).

**The one-shot score.** Each architecture is applied inside a finished search's supernet
as a one-hot choice over the mixed ops, node inputs included (`darts.subnet`), and scored
on that fold's α-validation half, training speakers only. The BatchNorm mode is stated
with every score (`darts.subnet.BN_MODES`): batch statistics, as the one-shot literature
evaluates, and statistics recalibrated per sub-network on `recal_batches` batches of the
weight-training half (the standard remedy); eval mode with the supernet's own statistics
is kept beside them to show why it is not used.

**Against what.** Per fold and supernet, Kendall's τ and Spearman's ρ
(`scipy.stats.kendalltau`, `spearmanr`) between the one-shot UA and (a) the stand-alone
test UA under protocol `full`, (b) a stand-alone score that uses no test speaker (the
`paper` retraining's best UA on the fold's search split, `best_val_ua`), each with a
percentile bootstrap interval over architectures and the overlap of the two top-5 sets.
**The ceiling** is τ between two stand-alone scores of the same architectures
(`seed_ceiling`): a supernet can only be read against it. τ near 0 under a clearly higher
ceiling says that no rule reading this supernet can select well; τ clearly above 0 puts
the fault on the selection rule. `chance_gap` says how far the one-hot sub-networks are
from chance.

**Where the supernets come from.** A search keeps its last epoch's weights and α in
`<search>/checkpoint.pt` (`darts.search`; `*.pt` is not committed, so it stays on the
machine that ran the sweep). `rank_supernet` scores right after a sweep from that file,
one `ranking.json` per search, resumable. Where the file is gone (a committed study),
`rerun_search` re-runs the search from its `config.json` into a scratch folder and checks
that it ends with the committed genotype before anything is scored.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import stats

from emodarts_core.config import NetworkConfig, SearchConfig, from_dict
from emodarts_core.darts import subnet
from emodarts_core.space import genotypes
from emodarts_core.space.genotypes import Genotype
from emodarts_core.study.results.pack import run_files
from emodarts_core.training.loop import ADDED_DEFAULTS
from emodarts_core.training.rundir import RunDir

RANKING = "ranking.json"
#: The BatchNorm modes `rank_supernet` scores in, by default.
DEFAULT_MODES = ("batch", "recalibrated", "running")
#: Columns of `ranking_table`.
RANKING_COLUMNS = ("fold", "supernet", "supernet_seed", "bn_mode", "target", "n", "tau", "tau_p", "tau_low",
                   "tau_high", "rho", "rho_p", "rho_low", "rho_high", "top5_overlap", "one_shot_ua_mean",
                   "chance", "above_chance")


def _rank_correlations(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Kendall's τ-b and Spearman's ρ of each row pair of `x` and `y` ([B, n], no row
    constant), bit for bit what `scipy.stats.kendalltau` and `spearmanr` return for each.

    The bootstrap calls these thousands of times per table row, and scipy's per-call
    overhead made them nearly all of a study's table rebuild; on [B, n, n] pair arrays the
    same numbers come at once. They are the same bits because every sum is exact: τ's
    numerator and tie counts are integers, and ρ's centred average ranks are half-integers
    (the ranks of n values sum to n(n+1)/2, so their mean is (n+1)/2), whose products sum
    exactly in any order; what follows are the same float operations as scipy's (τ-b:
    `(con - dis) / sqrt(tot - x_ties) / sqrt(tot - y_ties)`; ρ: `numpy.corrcoef` of the
    ranks) in the same order."""
    n = x.shape[1]
    pairs = n * (n - 1) // 2

    def order(v):  # [B, n, n]: sign(v_i - v_j) and ties (the diagonal included)
        diff = v[:, :, None] - v[:, None, :]
        return np.sign(diff).astype(np.int8), diff == 0

    sx, tx = order(x)
    sy, ty = order(y)
    con_minus_dis = (sx * sy).sum(axis=(1, 2)) // 2
    x_ties, y_ties = (tx.sum(axis=(1, 2)) - n) // 2, (ty.sum(axis=(1, 2)) - n) // 2
    tau = con_minus_dis / np.sqrt(pairs - x_ties) / np.sqrt(pairs - y_ties)
    tau = np.minimum(1.0, np.maximum(-1.0, tau))

    def centred_ranks(v_less, ties):  # average ranks (1 to n) minus their mean (n + 1) / 2
        return v_less.sum(axis=2) + (ties.sum(axis=2) + 1) / 2 - (n + 1) / 2

    rx, ry = centred_ranks(sx > 0, tx), centred_ranks(sy > 0, ty)
    scale = 1.0 / (n - 1)  # numpy.cov multiplies by the reciprocal of its degrees of freedom
    cov, var_y, var_x = ((u * v).sum(axis=1) * scale for u, v in ((rx, ry), (ry, ry), (rx, rx)))
    return tau, np.clip(cov / np.sqrt(var_y) / np.sqrt(var_x), -1.0, 1.0)


def rank_agreement(one_shot, stand_alone, *, top: int = 5, n_boot: int = 2000, level: float = 0.95,
                   seed: int = 0) -> dict:
    """Kendall's τ and Spearman's ρ (with p-values) between two scores of the same
    architectures, a percentile bootstrap interval of each over architectures, and the
    share of the `top` best by one score that are among the `top` best by the other.

    The `n_boot` resamples draw n architectures with replacement each (one
    `rng.integers(n, size=(n_boot, n))`, the same draws as one call per resample); a
    resample in which either score is constant has no rank correlation and is dropped.
    Their τ and ρ come from `_rank_correlations`, equal to scipy's bit for bit."""
    a, b = np.asarray(one_shot, dtype=np.float64), np.asarray(stand_alone, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"two scores of the same architectures are needed, got shapes {a.shape} and {b.shape}")
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    n = len(a)
    out = {"n": n, "tau": np.nan, "tau_p": np.nan, "rho": np.nan, "rho_p": np.nan, "tau_low": np.nan,
           "tau_high": np.nan, "rho_low": np.nan, "rho_high": np.nan, "top5_overlap": np.nan}
    if n < 3:
        return out
    k = min(top, n)
    best_a, best_b = set(np.argsort(-a, kind="stable")[:k]), set(np.argsort(-b, kind="stable")[:k])
    out["top5_overlap"] = len(best_a & best_b) / k
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return out  # one score is the same for every architecture: it ranks nothing
    tau = stats.kendalltau(a, b)
    rho = stats.spearmanr(a, b)
    out.update(tau=float(tau.statistic), tau_p=float(tau.pvalue), rho=float(rho.statistic), rho_p=float(rho.pvalue))
    idx = np.random.default_rng(seed).integers(n, size=(n_boot, n))
    ra, rb = a[idx], b[idx]
    ranked = (np.ptp(ra, axis=1) != 0) & (np.ptp(rb, axis=1) != 0)  # a constant resample ranks nothing
    if ranked.any():
        taus, rhos = _rank_correlations(ra[ranked], rb[ranked])
        q = [100 * (1 - level) / 2, 100 * (1 + level) / 2]
        out["tau_low"], out["tau_high"] = (float(v) for v in np.nanpercentile(taus, q))
        out["rho_low"], out["rho_high"] = (float(v) for v in np.nanpercentile(rhos, q))
    return out


def chance_gap(uas, n_classes: int) -> dict:
    """How far one-shot UAs are from chance (1 / n_classes, the UA of any constant guess):
    their mean, the chance level, the mean gap and the share of architectures above chance."""
    u = np.asarray(uas, dtype=np.float64)
    chance = 1.0 / n_classes
    return {"one_shot_ua_mean": float(np.mean(u)), "chance": chance, "gap": float(np.mean(u) - chance),
            "above_chance": float(np.mean(u > chance + 1e-12))}


def seed_ceiling(first, second, **kwargs) -> dict:
    """τ, ρ and their intervals between two stand-alone scores of the same architectures
    (two retrainings under different seeds): the most any one-shot score can reach."""
    return rank_agreement(first, second, **kwargs)


# --- supernets --------------------------------------------------------------------------

def search_configs(search_dir) -> tuple[NetworkConfig, SearchConfig, dict]:
    """The network and search settings a search ran with (its `config.json`), and the config."""
    config = RunDir(search_dir).read_config()
    if not config or config.get("kind") != "search":
        raise FileNotFoundError(f"{Path(search_dir) / 'config.json'}: not the configuration of a search run")
    def section(name: str) -> dict:  # a key added after the run was made has the value it ran with
        added = {k.split(".", 1)[1]: v for k, v in ADDED_DEFAULTS.items() if k.startswith(name + ".")}
        return {**added, **config[name]}

    return from_dict(NetworkConfig, section("network")), from_dict(SearchConfig, section("search")), config


def supernet_state(search_dir) -> dict:
    """The finished search's last weights and α (`checkpoint.pt`'s model state)."""
    rd = RunDir(search_dir)
    if not rd.is_finished():
        raise FileNotFoundError(f"{rd.path}: the search has not finished (no FINISHED)")
    ckpt = rd.load_checkpoint()
    if ckpt is None:
        raise FileNotFoundError(f"{rd.file('checkpoint.pt')}: no supernet weights (a committed study does not keep "
                                "them); re-run the search with emodarts_core.study.ranking.rerun_search")
    return ckpt["model"]


def rerun_search(search_dir, out_dir, fold_data) -> Path:
    """Re-run the search of `search_dir` from its `config.json` into `out_dir` (resumable)
    and check that it ends with the committed genotype; returns `out_dir`. The fold must be
    the one the search ran on (its utterance ids are compared with the config's)."""
    from emodarts_core.darts.search import run_search

    net_cfg, search_cfg, config = search_configs(search_dir)
    recorded = config["data"]["splits"]["search"]["ids"]
    if list(fold_data.search.ids) != list(recorded):
        raise ValueError(f"{Path(search_dir) / 'config.json'}: the fold given is not the one this search ran on "
                         "(its search split's utterances differ)")
    result = run_search(fold_data, net_cfg, search_cfg, out_dir, resume=True)
    committed = genotypes.load(Path(search_dir) / "genotype.json")
    if result.genotype.to_dict() != committed.to_dict():
        raise RuntimeError(f"the search re-run in {out_dir} ended with {genotypes.to_text(result.genotype)}, not the "
                           f"committed {genotypes.to_text(committed)}: it is not the same supernet")
    return Path(out_dir)


def score_architectures(state: dict, net_cfg: NetworkConfig, search_cfg: SearchConfig, fold_data,
                        architectures: dict[str, Genotype], modes=DEFAULT_MODES, recal_batches: int = 10,
                        device: str = "cpu") -> list[dict]:
    """One row per (architecture, BatchNorm mode): its one-shot WA, UA and loss inside the
    supernet `state` on the fold's α-validation half."""
    dev = torch.device(device)
    model = subnet.load_supernet(net_cfg, state, dev)
    train_set, val_set = subnet.search_halves(fold_data, search_cfg)
    rows = []
    for key, genotype in architectures.items():
        for mode in modes:
            # the same recalibration batches for every architecture: the loader's generator restarts
            recal, val = subnet.loaders(train_set, val_set, search_cfg.batch_size, search_cfg.eval_batch_size,
                                        search_cfg.seed, dev)
            out = subnet.score_genotype(model, genotype, val, dev, mode, recal_loader=recal,
                                        recal_batches=recal_batches)
            rows.append({"arch": key, "bn_mode": mode, "one_shot_acc": out["acc"], "one_shot_ua": out["ua"],
                         "one_shot_loss": out["loss"]})
    return rows


def rank_supernet(search_dir, fold_data, architectures: dict[str, Genotype], out_path, *, state: dict | None = None,
                  modes=DEFAULT_MODES, recal_batches: int = 10, device: str = "cpu") -> list[dict]:
    """Score `architectures` with the supernet of `search_dir` (its checkpoint, or `state`)
    and write the rows to `out_path` (atomically); an existing file with the same
    architectures and settings is returned as it is."""
    out_path = Path(out_path)
    settings = {"search_dir": str(search_dir), "architectures": {k: g.to_dict() for k, g in architectures.items()},
                "modes": list(modes), "recal_batches": recal_batches,
                "scored_on": "the fold's α-validation half (training speakers only)"}
    if out_path.is_file():
        stored = json.loads(out_path.read_text(encoding="utf-8"))
        if {k: stored.get(k) for k in settings if k != "search_dir"} == {k: v for k, v in settings.items()
                                                                          if k != "search_dir"}:
            return stored["rows"]
    net_cfg, search_cfg, _ = search_configs(search_dir)
    rows = score_architectures(supernet_state(search_dir) if state is None else state, net_cfg, search_cfg,
                               fold_data, architectures, modes, recal_batches, device)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    RunDir(out_path.parent).atomic_write_json(out_path.name, {**settings, "rows": rows})
    return rows


# --- tables -----------------------------------------------------------------------------

def stand_alone_scores(study: pd.DataFrame, root=None, model: str = "random") -> pd.DataFrame:
    """Per architecture of `model` (fold, seed, arch): the stand-alone test UA under `full`
    ("test_ua_full", %) and the no-test-speaker score of its `paper` retraining
    ("search_split_ua", %: the best UA on the fold's search split, from its result.json,
    read through the study's runs under `root`, packed or not)."""
    part = study[study["model"] == model]
    full = part[part["protocol"] == "full"].set_index(["fold", "seed", "arch"])["ua"].rename("test_ua_full")
    paper = part[part["protocol"] == "paper"]
    runs = run_files(root) if root is not None else {}
    held = {}
    for row in paper.itertuples():
        run = runs.get(str(row.run_dir))
        if run is not None and run.has("result.json"):
            value = run.json("result.json").get("best_val_ua")
            held[(row.fold, row.seed, row.arch)] = np.nan if value is None else 100.0 * value
    out = pd.concat([full, pd.Series(held, name="search_split_ua", dtype=float)], axis=1).reset_index()
    out.columns = ["fold", "seed", "arch", "test_ua_full", "search_split_ua"]
    out["key"] = [f"seed{int(s)}/arch{int(a)}" for s, a in zip(out["seed"], out["arch"])]
    return out


def ranking_table(scores: pd.DataFrame, stand_alone: pd.DataFrame, n_classes: int, **kwargs) -> pd.DataFrame:
    """`RANKING_COLUMNS`: one row per (fold, supernet, supernet seed, BatchNorm mode, target).

    `scores` has columns fold, supernet, supernet_seed, arch (the key `seed<s>/arch<k>`),
    bn_mode, one_shot_ua (a fraction); `stand_alone` is `stand_alone_scores`."""
    rows = []
    for (fold, supernet, seed, mode), part in scores.groupby(["fold", "supernet", "supernet_seed", "bn_mode"]):
        merged = part.merge(stand_alone[stand_alone["fold"] == fold], left_on="arch", right_on="key")
        gap = chance_gap(merged["one_shot_ua"], n_classes)
        for target in ("test_ua_full", "search_split_ua"):
            agree = rank_agreement(merged["one_shot_ua"], merged[target], **kwargs)
            rows.append({"fold": fold, "supernet": supernet, "supernet_seed": seed, "bn_mode": mode,
                         "target": target, **agree, "one_shot_ua_mean": gap["one_shot_ua_mean"],
                         "chance": gap["chance"], "above_chance": gap["above_chance"]})
    return pd.DataFrame(rows, columns=list(RANKING_COLUMNS))


def scatter_scores(scores: pd.DataFrame, stand_alone: pd.DataFrame, bn_mode: str = "recalibrated") -> pd.DataFrame:
    """One row per (fold, supernet, architecture) for `plots.plot_ranking`: the one-shot UA in
    `bn_mode` averaged over the fold's supernet seeds (each seed's supernet scores the same
    architectures), beside the architecture's stand-alone scores. Arguments as `ranking_table`."""
    part = scores[scores["bn_mode"] == bn_mode]
    if part.empty:
        raise ValueError(f"no one-shot scores with BatchNorm mode {bn_mode!r} (modes: "
                         f"{', '.join(sorted(set(scores['bn_mode'])))})")
    mean = part.groupby(["fold", "supernet", "arch"], as_index=False)["one_shot_ua"].mean()
    merged = mean.merge(stand_alone.drop(columns=["arch"]), left_on=["fold", "arch"], right_on=["fold", "key"])
    return merged.drop(columns=["key"]).sort_values(["fold", "supernet", "arch"], ignore_index=True)


def fold_architectures(study: pd.DataFrame, runs: dict, fold: int, model: str = "random") -> dict[str, Genotype]:
    """The architectures of `model` retrained in `fold` (key `seed<s>/arch<k>`), read from
    their `full` retrainings' config.json (`runs`: `study.results.pack.run_files`)."""
    part = study[(study["model"] == model) & (study["fold"] == fold) & (study["protocol"] == "full")]
    out = {}
    for row in part.sort_values(["seed", "arch"]).itertuples():
        run = runs.get(str(row.run_dir))
        if run is not None and run.has("config.json"):
            genotype = run.json("config.json")["model"]["genotype"]
            out[f"seed{int(row.seed)}/arch{int(row.arch)}"] = genotypes.from_dict(genotype)
    return out


def rank_study(root, data_dir=None, *, supernets=("emodarts", "prior"), modes=DEFAULT_MODES, recal_batches: int = 10,
               device: str = "cpu", fold_seed: int = 0, log=print) -> pd.DataFrame:
    """Score every fold's random architectures with every finished search of `supernets`
    under the study folder `root` (`<root>/<model>/fold<k>/seed<s>/search`) that still has
    its checkpoint, each into `<search>/ranking.json` (resumable), and write all the rows
    to `<root>/ranking.csv`. Run it after the sweep, before packing (the pack keeps
    ranking.json but not the checkpoints)."""
    from data_prep import load_fold
    from emodarts_core.study.results import collect_study

    root = Path(root)
    study, runs = collect_study(root), run_files(root)
    rows, folds = [], {}
    for model in supernets:
        for search in sorted((root / model).glob("fold*/seed*/search")):
            fold, seed = int(search.parent.parent.name[4:]), int(search.parent.name[4:])
            if not (search / "checkpoint.pt").is_file() and not (search / RANKING).is_file():
                log(f"skipped {search}: no checkpoint.pt (re-run it with rerun_search)")
                continue
            archs = fold_architectures(study, runs, fold)
            if fold not in folds:
                folds[fold] = load_fold(root.name, data_dir, fold, seed=fold_seed)
            scored = rank_supernet(search, folds[fold], archs, search / RANKING, modes=modes,
                                   recal_batches=recal_batches, device=device)
            rows += [{**r, "fold": fold, "supernet": model, "supernet_seed": seed} for r in scored]
            log(f"scored {len(archs)} architectures with {search}")
    scores = pd.DataFrame(rows)
    if not scores.empty:
        RunDir(root).atomic_write_text("ranking.csv", scores.to_csv(index=False))
    return scores


def ceiling_table(study: pd.DataFrame, first: str = "random", second: str = "random_reseed", **kwargs) -> pd.DataFrame:
    """Per fold, `seed_ceiling` between the `full` test UA of the same architectures
    retrained twice (`first` and `second`, paired by seed and architecture)."""
    full = study[study["protocol"] == "full"]
    a = full[full["model"] == first].set_index(["fold", "seed", "arch"])["ua"]
    b = full[full["model"] == second].set_index(["fold", "seed", "arch"])["ua"]
    both = pd.concat([a.rename("a"), b.rename("b")], axis=1, join="inner").reset_index()
    rows = [{"fold": fold, **seed_ceiling(g["a"], g["b"], **kwargs)} for fold, g in both.groupby("fold")]
    return pd.DataFrame(rows)


def ceiling_markdown(table: pd.DataFrame) -> str:
    if table.empty:
        return ""
    lines = ["### The ceiling: two stand-alone retrainings of the same architectures", "",
             "Kendall's τ between the `full` test UA of the random architectures and of the same architectures "
             "retrained under another seed (`random_reseed`): the most a supernet's τ can reach.", "",
             "| fold | n | τ [95 % CI] | ρ | top-5 |", "| --- | --- | --- | --- | --- |"]
    for r in table.itertuples():
        lines.append(f"| {r.fold} | {r.n} | {r.tau:+.2f} [{r.tau_low:+.2f}, {r.tau_high:+.2f}] | {r.rho:+.2f} | "
                     f"{r.top5_overlap:.2f} |")
    return "\n".join(lines) + "\n"


def n_classes_of(study: pd.DataFrame) -> int:
    """The number of classes of the study's runs (the side of their confusion matrices)."""
    for confusion in study.get("confusion", pd.Series(dtype=object)):
        if confusion is not None and np.size(confusion):
            return int(np.shape(confusion)[0])
    raise ValueError("no run of the study has a confusion matrix to count its classes by")


def ranking_markdown(table: pd.DataFrame) -> str:
    """The ranking table as a Markdown section (mean over a fold's supernet seeds)."""
    if table.empty:
        return ""
    lines = ["## How well the supernet ranks architectures", "",
             "Kendall's τ and Spearman's ρ between the one-shot UA of the fold's random architectures "
             "(one-hot inside the supernet, α-validation half, training speakers only) and their stand-alone "
             "UA; 95 % bootstrap intervals over architectures; top-5 overlap; mean over the fold's supernets "
             "(one per seed). `test_ua_full`: test speakers under `full`; `search_split_ua`: no test speaker.",
             "", "| fold | supernet | BatchNorm | against | n | τ [95 % CI] | ρ | top-5 | one-shot UA | chance |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    grouped = table.groupby(["fold", "supernet", "bn_mode", "target"], sort=True)
    for (fold, supernet, mode, target), g in grouped:
        lines.append(f"| {fold} | {supernet} | {mode} | {target} | {int(g['n'].mean())} | "
                     f"{g['tau'].mean():+.2f} [{g['tau_low'].mean():+.2f}, {g['tau_high'].mean():+.2f}] | "
                     f"{g['rho'].mean():+.2f} | {g['top5_overlap'].mean():.2f} | "
                     f"{100 * g['one_shot_ua_mean'].mean():.1f} | {100 * g['chance'].mean():.1f} |")
    return "\n".join(lines) + "\n"


__all__ = ["DEFAULT_MODES", "RANKING", "RANKING_COLUMNS", "chance_gap", "rank_agreement", "rank_supernet",
           "ranking_markdown", "ranking_table", "rerun_search", "scatter_scores", "score_architectures", "search_configs",
           "seed_ceiling", "stand_alone_scores", "supernet_state", "fold_architectures", "rank_study", "main",
           "ceiling_table", "ceiling_markdown"]


def main(argv=None) -> int:
    """`python -m emodarts_core.study.ranking ROOT [--data-dir PATH]`: `rank_study`, then the table."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m emodarts_core.study.ranking", description=rank_study.__doc__)
    parser.add_argument("root", help="the study folder, e.g. results/emodb")
    parser.add_argument("--data-dir", default=None, help="the corpus root or feature store")
    parser.add_argument("--recal-batches", type=int, default=10)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    scores = rank_study(args.root, args.data_dir, recal_batches=args.recal_batches, device=args.device)
    if not scores.empty:
        from emodarts_core.study.results import collect_study

        study = collect_study(args.root)
        table = ranking_table(scores, stand_alone_scores(study, args.root), n_classes=n_classes_of(study))
        print(ranking_markdown(table))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
