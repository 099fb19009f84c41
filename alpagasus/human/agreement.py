"""Agreement statistics of the human study, on verdicts for arm A (win | tie | lose).

Between annotators: Krippendorff's alpha (nominal; the `krippendorff` package, which takes
any number of annotators and prompts labelled by only some of them) and Fleiss' kappa (on
the prompts every annotator labelled; implemented here after Fleiss 1971, tested on his
worked example). Against the LLM judge: Cohen's kappa (scikit-learn), raw agreement and
the confusion matrix. A figure that is undefined (one label used throughout, fewer than two
annotators on any prompt) is None, never a made-up 0 or 1.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

from alpagasus.stats import winning_score

VERDICTS = ("win", "tie", "lose")  # arm A's result, as the LLM judge's verdicts


def tally(verdicts: Sequence[str]) -> dict[str, Any]:
    """Win/tie/lose for arm A and the paper's winning score, (win - lose) / n + 1."""
    c = Counter(verdicts)
    score = winning_score(c["win"], c["tie"], c["lose"])
    return {"win": c["win"], "tie": c["tie"], "lose": c["lose"],
            "n": c["win"] + c["tie"] + c["lose"],
            "winning_score": None if score is None else round(score, 4)}


def majority(verdicts: Sequence[str]) -> str | None:
    """The verdict most annotators gave; None when the top is shared (1 win, 1 lose)."""
    counts = Counter(verdicts).most_common()
    if not counts or (len(counts) > 1 and counts[0][1] == counts[1][1]):
        return None
    return counts[0][0]


def value_counts(units: Sequence[Sequence[str]]) -> list[list[int]]:
    """Per prompt, how many annotators gave each verdict (columns: VERDICTS)."""
    for unit in units:
        for v in unit:
            if v not in VERDICTS:
                raise ValueError(f"verdict {v!r} is not one of {', '.join(VERDICTS)}")
    return [[list(unit).count(v) for v in VERDICTS] for unit in units]


def krippendorff_alpha(units: Sequence[Sequence[str]]) -> float | None:
    """Nominal alpha over prompts, each with the verdicts of those who labelled it; prompts
    with one label carry no pair and are left out (as alpha's definition does)."""
    import krippendorff
    import numpy as np

    counts = [row for row in value_counts(units) if sum(row) >= 2]
    if not counts:
        return None
    with np.errstate(divide="ignore", invalid="ignore"):
        a = krippendorff.alpha(value_counts=np.array(counts), value_domain=list(VERDICTS),
                               level_of_measurement="nominal")
    return round(float(a), 4) if math.isfinite(a) else None


def fleiss_kappa(counts: Sequence[Sequence[int]]) -> float | None:
    """Fleiss' kappa from a prompts x categories table of counts, the same number of
    raters (>= 2) on every prompt."""
    rows = [list(map(int, r)) for r in counts]
    if not rows:
        return None
    raters = sum(rows[0])
    if raters < 2 or any(sum(r) != raters for r in rows):
        raise ValueError("Fleiss' kappa needs the same number (>= 2) of ratings per prompt, "
                         f"got {sorted({sum(r) for r in rows})}")
    n = len(rows)
    p_j = [sum(r[j] for r in rows) / (n * raters) for j in range(len(rows[0]))]
    p_i = [(sum(c * c for c in r) - raters) / (raters * (raters - 1)) for r in rows]
    p_bar, p_e = sum(p_i) / n, sum(p * p for p in p_j)
    if p_e >= 1:  # one category throughout: chance agreement is total, kappa undefined
        return None
    return round((p_bar - p_e) / (1 - p_e), 4)


def cohen(human: Sequence[str], llm: Sequence[str]) -> dict[str, Any]:
    """Human vs LLM-judge verdicts on the same prompts: Cohen's kappa (sklearn), raw
    agreement and the confusion matrix (rows: human, columns: LLM; win, tie, lose)."""
    from sklearn.metrics import cohen_kappa_score, confusion_matrix

    n = len(human)
    out: dict[str, Any] = {"n": n, "kappa": None, "agreement": None,
                           "labels": list(VERDICTS), "confusion": [[0] * 3 for _ in VERDICTS]}
    if n == 0:
        return out
    out["confusion"] = confusion_matrix(list(human), list(llm), labels=list(VERDICTS)).tolist()
    out["agreement"] = round(sum(h == m for h, m in zip(human, llm, strict=True)) / n, 4)
    # Undefined when chance agreement is 1 (both raters used one and the same label).
    if len(set(human) | set(llm)) > 1:
        out["kappa"] = round(float(cohen_kappa_score(list(human), list(llm),
                                                     labels=list(VERDICTS))), 4)
    return out
