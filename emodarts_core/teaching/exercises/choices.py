"""The multiple-choice questions of the exercises: the options the notebooks print, the
right letter, and feedback for each wrong one (a test keeps the notebooks' text in step)."""

from __future__ import annotations

#: The multiple-choice questions: the options the notebooks print, the right letter, and
#: feedback for each letter.
CHOICES: dict[str, dict] = {
    "test_speakers": {
        "question": "Why must a fold's test speakers never reach training (nor the choice of an epoch)?",
        "options": {
            "a": "Because the test split would otherwise be too small to score.",
            "b": "Because a network that has heard a speaker learns that voice: the score would then measure "
                 "how well it recognises emotions of speakers it already knows, not of new speakers, and would "
                 "be too optimistic.",
            "c": "Because the test speakers' recordings are of lower quality.",
        },
        "answer": "b",
        "feedback": {
            "a": "size is not the reason: the protocol holds out whole speakers even when that makes the test "
                 "split smaller than a random split would.",
            "c": "nothing marks the test speakers as different: every speaker is a test speaker in one fold.",
        },
    },
    "epoch_selection": {
        "question": "Why is the epoch chosen by its UA on the search split and not on the test speakers?",
        "options": {
            "a": "Choosing the epoch is part of fitting the model: if the test speakers chose it, the test "
                 "score would be the best of many tries on those speakers and would overstate how well the "
                 "model does on new speakers. The search split holds training speakers only.",
            "b": "Because the search split is larger than the test split, so its UA is less noisy; otherwise "
                 "either would do.",
            "c": "Because the search split contains the test speakers' utterances too.",
        },
        "answer": "a",
        "feedback": {
            "b": "size is not the point: even a large test split must not choose anything, or its score is no "
                 "longer an unbiased estimate (docs/REFERENCE_CODE.md, defect 4).",
            "c": "no: the search split holds training speakers only; the test speakers are in no split but test.",
        },
    },
    "p_value": {
        "question": "What does the paired permutation p-value of emoDARTS vs random architectures over the "
                    "study's n (fold, seed) cells say?",
        "options": {
            "a": "It is the probability that emoDARTS is better than random architectures.",
            "b": "It is the share of the 2^n sign flips of the n paired differences whose mean is at least as far "
                 "from 0 as the observed one: how surprising the observed difference would be if the two models "
                 "were exchangeable in every cell. It is not the size of the lead (the mean difference and its "
                 "interval say that), and the test takes the cells as independent, which the seeds of one fold "
                 "(the same test speakers) are not.",
            "c": "It is the probability that the two models perform the same, so a p above 0.05 shows that they "
                 "do.",
        },
        "answer": "b",
        "feedback": {
            "a": "a p-value is computed assuming there is no difference; it is not the probability of a "
                 "hypothesis.",
            "c": "a p-value is computed assuming the models are exchangeable, so it cannot be the probability that "
                 "they are; a p above 0.05 is absence of evidence, not evidence of no difference: read the mean "
                 "difference and its interval with it.",
        },
    },
}


def choice_text(key: str) -> str:
    """The question and its options as markdown, as the notebooks show them."""
    item = CHOICES[key]
    return "\n".join([item["question"], ""] + [f"- ({letter}) {text}" for letter, text in item["options"].items()])
