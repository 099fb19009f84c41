"""The statistics of comparing selections (scipy, scikit-learn), over plain lists: what each
keeps vs drops, how it recovers reference labels, overlaps and score agreement."""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any


@dataclass(frozen=True)
class Features:
    """Per-item facts the kept-vs-dropped comparison reads (None: not known, e.g. in a sweep
    report, which sees only the items some selection kept)."""

    response_chars: list[int | None]
    has_input: list[bool | None]
    category: list[str | None]

    @classmethod
    def of(cls, items: Sequence[Any]) -> Features:
        return cls([len(it.output) for it in items], [bool(it.input.strip()) for it in items],
                   [getattr(it, "category", None) for it in items])


@dataclass(frozen=True)
class SelectionView:
    """One selection, as the analysis sees it (lists aligned with the items)."""

    name: str  # unique among those compared (an arm's name)
    label: str  # for tables: "ifd (500)"
    method: str
    kept: list[bool]
    scores: list[float | None] | None = None  # a judge's ratings, IFD
    score_name: str | None = None  # "chatgpt score", "IFD"
    judged: bool = False  # scores are on the judge's 0-5 scale (kept at each threshold)
    rank: list[float | None] | None = None  # what the strategy picks by, higher first
    passes: list[bool] | None = None  # within the strategy's own cutoff
    # The judge's expected scores beside its parsed ones (judge.score_mode=expected), and
    # the arm's threshold, which both are cut at for their agreement.
    expected: list[float | None] | None = None
    threshold: float | None = None

def _round(x: float | None, digits: int = 4) -> float | None:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return None
    return round(float(x), digits)


def side_stats(features: Features, mask: Sequence[bool]) -> dict[str, Any]:
    idx = [i for i, m in enumerate(mask) if m]
    if any(features.response_chars[i] is None for i in idx):
        return {"n": len(idx), "response_chars_mean": None, "response_chars_median": None,
                "with_input": None, "categories": {}}
    lengths = [features.response_chars[i] for i in idx]
    cats = Counter(features.category[i] for i in idx if features.category[i] is not None)
    return {
        "n": len(idx),
        "response_chars_mean": _round(statistics.fmean(lengths), 1) if lengths else None,
        "response_chars_median": _round(statistics.median(lengths), 1) if lengths else None,
        "with_input": _round(sum(features.has_input[i] for i in idx) / len(idx)) if idx else None,
        "categories": dict(cats.most_common()),
    }


def kept_vs_dropped(features: Features, kept: Sequence[bool]) -> dict[str, Any]:
    return {"kept": side_stats(features, kept),
            "dropped": side_stats(features, [not k for k in kept])}


def _auc(labels: Sequence[bool], values: Sequence[float | None]) -> float | None:
    """ROC AUC of ``values`` (higher = more likely positive); None values rank lowest."""
    from sklearn.metrics import roc_auc_score

    present = [v for v in values if v is not None]
    if not present or len(set(labels)) < 2:
        return None
    floor = min(present) - 1.0
    return _round(roc_auc_score(labels, [floor if v is None else v for v in values]))


def against_reference(labels: Sequence[bool], kept: Sequence[bool],
                      rank: Sequence[float | None] | None = None,
                      scores: Sequence[float | None] | None = None) -> dict[str, Any]:
    """How a selection recovers a reference label set: precision and recall of the kept
    items, ROC AUC of the kept indicator, of the strategy's ranking and of its raw scores."""
    from sklearn.metrics import precision_score, recall_score

    tp = sum(1 for y, k in zip(labels, kept, strict=True) if y and k)
    return {
        "positives": sum(labels),
        "kept_positives": tp,
        "precision": _round(precision_score(labels, kept, zero_division=0)),
        "recall": _round(recall_score(labels, kept, zero_division=0)),
        "auc_kept": _auc(labels, [float(k) for k in kept]),
        "auc_ranking": None if rank is None else _auc(labels, rank),
        "auc_score": None if scores is None else _auc(labels, scores),
    }


def overlap(a: Sequence[bool], b: Sequence[bool]) -> dict[str, Any]:
    """Counts, Jaccard and Cohen's kappa of two kept sets over the same items."""
    from sklearn.metrics import cohen_kappa_score, jaccard_score

    both = sum(1 for x, y in zip(a, b, strict=True) if x and y)
    union = sum(1 for x, y in zip(a, b, strict=True) if x or y)
    return {
        "both": both, "only_a": sum(a) - both, "only_b": sum(b) - both,
        "jaccard": _round(jaccard_score(a, b, zero_division=0.0)) if union else None,
        "kappa": _kappa(cohen_kappa_score, a, b),
    }


def _kappa(fn, a: Sequence[bool], b: Sequence[bool]) -> float | None:
    if len(set(a)) < 2 and len(set(b)) < 2:
        return None  # two constant raters: kappa is undefined
    return _round(fn(a, b))


def agreement(scores_a: Sequence[float | None], scores_b: Sequence[float | None],
              passes_a: Sequence[bool], passes_b: Sequence[bool]) -> dict[str, Any]:
    """Two rating sets over the items both scored: Spearman's rho of the scores, Cohen's
    kappa and the confusion matrix of passing each one's cutoff (rows: A fails/passes;
    columns: B fails/passes)."""
    import warnings

    from scipy.stats import spearmanr
    from sklearn.metrics import cohen_kappa_score, confusion_matrix

    idx = [i for i in range(len(scores_a)) if scores_a[i] is not None and scores_b[i] is not None]
    if len(idx) < 2:
        return {"n": len(idx), "spearman": None, "spearman_p": None, "kappa": None,
                "confusion": None}
    x = [scores_a[i] for i in idx]
    y = [scores_b[i] for i in idx]
    pa = [bool(passes_a[i]) for i in idx]
    pb = [bool(passes_b[i]) for i in idx]
    with warnings.catch_warnings():  # a constant input: rho is undefined (reported as None)
        warnings.simplefilter("ignore")
        rho, p = spearmanr(x, y)
    return {
        "n": len(idx),
        "spearman": _round(rho),
        "spearman_p": None if p is None or math.isnan(p) else float(f"{p:.3g}"),
        "kappa": _kappa(cohen_kappa_score, pa, pb),
        "confusion": confusion_matrix(pa, pb, labels=[False, True]).tolist(),
    }


def kept_at(scores: Sequence[float | None], thresholds: Sequence[float]) -> dict[str, int]:
    return {f"{t:g}": sum(1 for s in scores if s is not None and s >= t) for t in thresholds}


def analyze(features: Features, selections: list[SelectionView],
            labels: list[bool] | None = None, thresholds: Sequence[float] = (),
            reference: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every comparison, as JSON-able data (what analysis.json holds)."""
    n = len(features.response_chars)
    for s in selections:
        for field in ("kept", "scores", "rank", "passes", "expected"):
            values = getattr(s, field)
            if values is not None and len(values) != n:
                raise ValueError(f"selection {s.name}: {field} has {len(values)} entries for "
                                 f"{n} items")
    out: dict[str, Any] = {"items": n, "reference": reference, "selections": [], "overlap": [],
                           "agreement": []}
    for s in selections:
        row: dict[str, Any] = {"name": s.name, "label": s.label, "method": s.method,
                               "kept": sum(s.kept), "of": n,
                               "kept_vs_dropped": kept_vs_dropped(features, s.kept)}
        if labels is not None:
            row["reference"] = against_reference(labels, s.kept, s.rank, s.scores)
        if s.scores is not None and s.judged and thresholds:
            row["kept_at"] = kept_at(s.scores, thresholds)
        if s.scores is not None:
            row["score_name"] = s.score_name
            row["scored"] = sum(v is not None for v in s.scores)
        if s.expected is not None:
            row["expected_scored"] = sum(v is not None for v in s.expected)
            if thresholds:
                row["kept_at_expected"] = kept_at(s.expected, thresholds)
        out["selections"].append(row)
    for s in selections:  # a judge's two score kinds, against each other
        if s.expected is not None and s.scores is not None and s.threshold is not None:
            cut = [[v is not None and v >= s.threshold for v in values]
                   for values in (s.scores, s.expected)]
            out["agreement"].append({"a": s.name, "b": s.name, "score_a": s.score_name,
                                     "score_b": f"{s.score_name} (expected)",
                                     **agreement(s.scores, s.expected, *cut)})
    # A selection of every item (the `all` baseline) overlaps each other one trivially; two
    # selections cut from one rating set (a threshold sweep) agree trivially: both skipped.
    for a, b in combinations(selections, 2):
        if not all(a.kept) and not all(b.kept):
            out["overlap"].append({"a": a.name, "b": b.name, **overlap(a.kept, b.kept)})
        if (a.scores is not None and b.scores is not None and a.passes and b.passes
                and a.scores != b.scores):
            out["agreement"].append({"a": a.name, "b": b.name, "score_a": a.score_name,
                                     "score_b": b.score_name,
                                     **agreement(a.scores, b.scores, a.passes, b.passes)})
    return out
