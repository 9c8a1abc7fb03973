"""Self-checks of notebook 04 (retraining): a searched model against a baseline, the
choice of the epoch on the search split, and UA/WA from a confusion matrix."""

from __future__ import annotations

import numpy as np

from .marking import (RESULT_NEUTRAL, Marking, Verdict, as_integer, as_names, as_number, as_run_dir, differing,
                      is_close, is_finished, is_unset, mark_choice, read_json, self_check)


@self_check("04.1 · the searched genotype against a baseline")
def check_baseline_comparison(m: Marking, run_path, baseline_dir, ua_difference) -> Verdict:
    """A finished baseline retraining on the same fold with the same training settings as
    the genotype's run `run_path`, and the test UA difference genotype - baseline in
    points (read from both runs' result.json)."""
    from emodarts_core.space.baselines import BASELINES

    if is_unset(baseline_dir):
        m.absent("baseline_dir")
    if is_unset(ua_difference):
        m.absent("ua_difference")
    if is_unset(baseline_dir):
        return m.verdict()
    ours = as_run_dir(run_path, "run_path")
    ours_config = read_json(ours, "config.json")
    if "genotype" not in ours_config.get("model", {}):
        m.cannot(f"this notebook trained a baseline ({ours_config.get('model')}), not a searched genotype: run it "
                 "with model='genotype' to compare the two.")
        return m.verdict()
    path = as_run_dir(baseline_dir, "baseline_dir")
    config = read_json(path, "config.json")
    baseline = config.get("model", {}).get("baseline")
    if config.get("kind") != "retrain" or baseline not in BASELINES:
        m.wrong(f"{path} is not a baseline retraining (model {config.get('model')!r}); train one of "
                f"{', '.join(BASELINES)} with run_retrain.")
        return m.verdict()
    if not is_finished(path):
        m.wrong(f"the baseline run in {path} has not finished.")
        return m.verdict()
    if config["data"].get("test_speakers") != ours_config["data"].get("test_speakers"):
        m.wrong(f"the baseline was tested on {config['data'].get('test_speakers')}, the genotype on "
                f"{ours_config['data'].get('test_speakers')}: compare on the same fold.")
    changed = differing(ours_config["train"], config["train"], RESULT_NEUTRAL)
    if changed:
        m.wrong(f"the two trainings differ in {', '.join(changed)}: train the baseline with the same `train_cfg`.")
    else:
        m.right(f"{baseline} trained like the genotype, on the same test speakers.")
    ref = 100.0 * (read_json(ours, "result.json")["test_ua"] - read_json(path, "result.json")["test_ua"])
    if not is_unset(ua_difference):
        given = as_number(ua_difference, "ua_difference")
        if is_close(given, ref, 0.01):
            m.right(f"genotype - {baseline} = {ref:+.2f} UA points.")
        elif is_close(100.0 * given, ref, 0.01):
            m.wrong("`ua_difference` looks like a difference of fractions; give it in UA points (percent).")
        elif is_close(-given, ref, 0.01):
            m.wrong("the sign is reversed: the difference asked for is genotype minus baseline.")
        else:
            m.wrong(f"{given:g} is not it: subtract the baseline's test UA from the genotype's (both in %; "
                    "`result.test_ua` and the baseline's result).")
    m.note("One fold and one seed: a difference of a few points is within the spread between folds; "
           "notebook 05 pairs the models over folds and seeds before it calls a difference real.")
    return m.verdict()


@self_check("04.2 · which epoch, chosen by whom")
def check_epoch_selection(m: Marking, run_path, fold_data, selected_epoch, selection_speakers, why) -> Verdict:
    """The epoch whose weights were kept (result.json's `best_epoch`, the first epoch with
    the best UA on the selection split), the speakers of that split (config.json's
    `protocol.select`), and why it is not the test speakers (multiple choice)."""
    path = as_run_dir(run_path, "run_path")
    result = read_json(path, "result.json")
    select = read_json(path, "config.json")["protocol"]["select"]
    ref_speakers = [] if select is None else sorted(select["speakers"])
    test = sorted(fold_data.fold.test_speakers)
    if is_unset(selected_epoch):
        m.absent("selected_epoch")
    else:
        given = as_integer(selected_epoch, "selected_epoch")
        from emodarts_core.training.rundir import RunDir

        history = RunDir(path).read_epochs()
        best_train = 1 + int(np.argmax([r["train_acc"] for r in history])) if history else None
        if given == result["best_epoch"]:
            how = ("the last epoch (protocol 'full' selects nothing)" if select is None
                   else "the first epoch with the highest `val_ua`")
            m.right(f"epoch {given}: {how}.")
        elif given == best_train and select is not None:
            m.wrong("that is the epoch with the best *training* accuracy; the kept epoch is the one with the best "
                    "`val_ua` on the selection split.")
        else:
            m.wrong(f"epoch {given} is not the one kept: look for the highest `val_ua` in `history` "
                    "(the first, if several tie).")
    if is_unset(selection_speakers):
        m.absent("selection_speakers")
    else:
        given = as_names(selection_speakers, "selection_speakers")
        if given == ref_speakers:
            m.right(f"selected on {len(ref_speakers)} training speakers ({', '.join(ref_speakers) or 'none'}); "
                    f"none of them is a test speaker ({', '.join(test)}).")
        elif set(given) & set(test):
            m.wrong(f"{sorted(set(given) & set(test))} are test speakers: they reach neither training nor selection.")
        else:
            m.wrong("not the selection split's speakers: under protocol 'paper' the epoch is chosen on the fold's "
                    "search split (`fold_data.search.speakers`).")
    mark_choice(m, "epoch_selection", why, "why")
    return m.verdict()


@self_check("04.3 · UA and WA from the confusion matrix")
def check_confusion_scores(m: Marking, result, ua_percent, wa_percent) -> Verdict:
    """Test UA (mean per-class recall) and WA (accuracy) in percent, computed from
    `result.confusion` (rows: true class). Reference: `study.stats.unweighted_accuracy_from_confusion`
    and the run's own `test_ua` / `test_wa`."""
    from emodarts_core.study.stats import unweighted_accuracy_from_confusion

    conf = np.asarray(result.confusion, dtype=float)
    ref = {"ua_percent": 100.0 * unweighted_accuracy_from_confusion(conf),
           "wa_percent": 100.0 * float(np.trace(conf) / conf.sum())}
    for name, value in (("ua_percent", ua_percent), ("wa_percent", wa_percent)):
        if is_unset(value):
            m.absent(name)
            continue
        given = as_number(value, name)
        other = ref["wa_percent" if name == "ua_percent" else "ua_percent"]
        if is_close(given, ref[name], 0.01):
            m.right(f"{name[:2].upper()} = {ref[name]:.2f} %.")
        elif is_close(100.0 * given, ref[name], 0.01):
            m.wrong(f"`{name}` looks like a fraction ({given:g}); give it in percent.")
        elif is_close(given, other, 0.01) and not is_close(other, ref[name], 0.01):
            m.wrong(f"`{name}` is the other metric: UA averages each true class's recall (diagonal / row sum), "
                    "WA divides the whole diagonal by all utterances.")
        else:
            m.wrong(f"`{name}` = {given:g} % is not it (rows of the confusion matrix are the true classes).")
    m.note(f"the run's own scores: test UA {100 * result.test_ua:.2f} %, WA {100 * result.test_wa:.2f} %.")
    return m.verdict()
