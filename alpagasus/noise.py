"""The judge's own noise: what k ratings of the same items say about one rating.

Pure functions (no model, no judge, no files) that stage=noise (alpagasus/stages/noise.py)
calls: which items are drawn, which order each repeat shows the fields in, how many requests a
noise config sends (for the plan), and the figures:

* per item: the spread of its k scores (sample std, range max - min);
* the keep/drop flip rate at the threshold: items whose k ratings do not all agree on kept,
  and the chance that two ratings of an item disagree;
* Krippendorff's alpha (interval) with the repeats as coders (the `krippendorff` package);
* the expected overlap of two filtered sets, each made by one independent rating of the
  sample: observed over every pair of repeats (Jaccard, and the share of a kept set a second
  rating keeps again), and estimated from each item's keep rate.

A score matrix is ``scores[i][r]``: item i's score in repeat r, None when the reply held no
score (it counts as dropped, as ``filter.unparsed_policy=exclude`` drops it, and is left out
of the spread and alpha).
"""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter
from collections.abc import Sequence
from typing import Any

# Bumped when a figure's definition changes, so stored noise reports are recomputed.
NOISE_ANALYSIS_VERSION = 1
# The rating prompt's blocks in the paper's order (alpagasus.prompts.PAPER_ORDER).
FIELDS = ("instruction", "input", "output")

Scores = Sequence[Sequence[float | None]]


# --- what is sent ----------------------------------------------------------------------------


def sample_size(sample: int | None, n_items: int) -> int:
    """Distinct items drawn: ``noise.sample`` capped at what the data has (None: all)."""
    return n_items if sample is None else min(int(sample), n_items)


def sample_positions(n_items: int, sample: int | None, seed: int) -> list[int]:
    """Which of ``n_items`` distinct items are re-rated: a seeded draw, in data order."""
    size = sample_size(sample, n_items)
    if size == n_items:
        return list(range(n_items))
    return sorted(random.Random(seed).sample(range(n_items), size))


def repeat_shares_rating(repeat: int, judge_temperature: float,
                         noise_temperature: float | None) -> bool:
    """True when this repeat's requests are exactly stage=rate's: repeat 0 (the paper's field
    order) at the judge's own temperature. Its replies are the rating's, paid once."""
    return repeat == 0 and (noise_temperature is None
                            or float(noise_temperature) == float(judge_temperature))


def noise_request_count(cfg: Any, n_items: int) -> int:
    """Judge requests stage=noise sends beyond what stage=rate sends for the same items, for
    ``n_items`` distinct items in the data: what a plan adds to price a noise run.

    ``cfg`` is the run config (``cfg.noise``, ``cfg.judge``). Every repeat rates the sample
    once; repeat 0 at the judge's own temperature is the plain rating (same requests, same
    cache keys), so it costs nothing on top of stage=rate. Replies already cached cost nothing
    either: this is the count before the cache is consulted."""
    size = sample_size(cfg.noise.sample, n_items)
    repeats = int(cfg.noise.repeats)
    shared = repeat_shares_rating(0, cfg.judge.temperature, cfg.noise.temperature)
    return size * (repeats - 1 if shared else repeats)


def field_order(seed: int, position: int, repeat: int, perturb: bool) -> tuple[str, ...]:
    """The block order repeat ``repeat`` shows item ``position`` in: the paper's for repeat 0
    or without ``perturb``; else a seeded choice among the five other orders, so every
    perturbed rating really is perturbed."""
    if not perturb or repeat == 0:
        return FIELDS
    others = [p for p in itertools.permutations(FIELDS) if p != FIELDS]
    return random.Random(f"noise-order:{seed}:{position}:{repeat}").choice(others)


# --- the figures -----------------------------------------------------------------------------


def _mean(values: Sequence[float]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def _std(values: Sequence[float]) -> float:
    """Sample standard deviation (n - 1)."""
    m = sum(values) / len(values)
    return math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))


def item_spread(scores: Scores) -> list[dict[str, Any]]:
    """Per item: its parsed scores, their sample std and range (None with fewer than two)."""
    rows = []
    for row in scores:
        got = [float(s) for s in row if s is not None]
        two = len(got) >= 2
        rows.append({"scores": list(row), "n": len(got),
                     "mean": _mean(got),
                     "std": round(_std(got), 4) if two else None,
                     "range": round(max(got) - min(got), 4) if two else None})
    return rows


def spread_summary(spread: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and largest std and range over the items with two or more scores, the share of
    them whose scores are not all equal, and how many items have each range."""
    rated = [r for r in spread if r["std"] is not None]
    if not rated:
        return {"items": 0, "mean_std": None, "max_std": None, "mean_range": None,
                "max_range": None, "varied": None, "ranges": {}}
    ranges = Counter(f"{r['range']:g}" for r in rated)
    return {"items": len(rated),
            "mean_std": _mean([r["std"] for r in rated]),
            "max_std": max(r["std"] for r in rated),
            "mean_range": _mean([r["range"] for r in rated]),
            "max_range": max(r["range"] for r in rated),
            "varied": round(sum(r["range"] > 0 for r in rated) / len(rated), 4),
            "ranges": dict(sorted(ranges.items(), key=lambda kv: float(kv[0])))}


def kept_matrix(scores: Scores, threshold: float) -> list[list[bool]]:
    """kept[i][r]: item i passes the threshold in repeat r (no score: dropped)."""
    return [[s is not None and float(s) >= threshold for s in row] for row in scores]


def flip_rates(scores: Scores, threshold: float) -> dict[str, Any]:
    """Keep/drop flips at ``threshold`` over the items with two or more scores:

    * ``items_flipping``: the share whose ratings do not all agree on kept vs dropped;
    * ``pairwise``: the chance that two different ratings of the same item disagree
      (for an item kept m times of k: 2 m (k - m) / (k (k - 1)), averaged over items)."""
    flips, pair_rates = 0, []
    for row in scores:
        got = [float(s) >= threshold for s in row if s is not None]
        k = len(got)
        if k < 2:
            continue
        m = sum(got)
        flips += 0 < m < k
        pair_rates.append(2 * m * (k - m) / (k * (k - 1)))
    n = len(pair_rates)
    return {"threshold": threshold, "items": n,
            "items_flipping": round(flips / n, 4) if n else None,
            "flipping_count": flips,
            "pairwise": round(sum(pair_rates) / n, 4) if n else None}


def krippendorff_alpha(scores: Scores) -> dict[str, Any]:
    """Krippendorff's alpha (interval) with each repeat as a coder and each item as a unit.

    Undefined (None, with the reason) when fewer than two items have two scores, or when
    every score is the same value (no variation to be reliable about). Repeats that agree on
    every item while items differ give 1.0: a deterministic judge (temperature 0, greedy) is
    perfectly reliable with itself, which says nothing about whether it is right."""
    import krippendorff
    import numpy as np

    pairable = [row for row in scores if sum(s is not None for s in row) >= 2]
    values = {float(s) for row in pairable for s in row if s is not None}
    if len(pairable) < 2:
        return {"alpha": None, "reason": "fewer than two items have two scores"}
    if len(values) < 2:
        return {"alpha": None, "reason": f"every score is {next(iter(values)):g}: "
                                         "no variation"}
    if all(len({s for s in row if s is not None}) == 1 for row in pairable):
        return {"alpha": 1.0, "reason": "every item got the same score in every repeat"}
    k = max(len(row) for row in scores)
    data = np.full((k, len(scores)), np.nan)
    for i, row in enumerate(scores):
        for r, s in enumerate(row):
            if s is not None:
                data[r, i] = float(s)
    alpha = float(krippendorff.alpha(reliability_data=data, level_of_measurement="interval"))
    return {"alpha": round(alpha, 4) if math.isfinite(alpha) else None,
            "reason": None if math.isfinite(alpha) else "the package returned no finite value"}


def _jaccard(a: set[int], b: set[int]) -> float | None:
    union = a | b
    return len(a & b) / len(union) if union else None


def expected_overlap(scores: Scores, threshold: float) -> dict[str, Any]:
    """How alike two filtered sets are when each comes from one independent rating.

    Observed over every pair of repeats (r, s): the Jaccard index of their kept sets, and
    ``kept_again``: of the items r keeps, the share s keeps too (ordered pairs). Estimated
    from each item's keep rate: with item i kept m_i times of k, P(kept in both) is
    m_i (m_i - 1) / (k (k - 1)) and P(kept in one) m_i / k, so E|A ∩ B| = Σ both_i,
    E|A| = Σ one_i and the Jaccard estimate is E|A ∩ B| / (2 E|A| - E|A ∩ B|)."""
    kept = kept_matrix(scores, threshold)
    k = max((len(row) for row in kept), default=0)
    sets = [{i for i, row in enumerate(kept) if r < len(row) and row[r]} for r in range(k)]
    jaccards, again = [], []
    for r, s in itertools.permutations(range(k), 2):
        if r < s:
            j = _jaccard(sets[r], sets[s])
            if j is not None:
                jaccards.append(j)
        if sets[r]:
            again.append(len(sets[r] & sets[s]) / len(sets[r]))
    both = sum(sum(row) * (sum(row) - 1) / (len(row) * (len(row) - 1))
               for row in kept if len(row) >= 2)
    one = sum(sum(row) / len(row) for row in kept if row)
    union = 2 * one - both
    return {"threshold": threshold,
            "kept_per_repeat": [len(s) for s in sets],
            "jaccard_observed": _mean(jaccards),
            "kept_again_observed": _mean(again),
            "expected_kept": round(one, 4),
            "expected_both": round(both, 4),
            "jaccard_expected": round(both / union, 4) if union > 0 else None}


def analyze(scores: Scores, threshold: float) -> dict[str, Any]:
    """Every figure for a score matrix (items x repeats) at ``threshold``."""
    spread = item_spread(scores)
    k = max((len(row) for row in scores), default=0)
    per_repeat = []
    for r in range(k):
        got = [float(row[r]) for row in scores if r < len(row) and row[r] is not None]
        per_repeat.append({"repeat": r, "rated": len(got),
                           "unparsed": sum(1 for row in scores if r < len(row) and row[r] is None),
                           "mean": _mean(got)})
    identical = all(len(set(row)) <= 1 for row in scores)
    return {"items": len(scores), "repeats": k, "per_repeat": per_repeat,
            "spread": spread_summary(spread), "flips": flip_rates(scores, threshold),
            "alpha": krippendorff_alpha(scores), "overlap": expected_overlap(scores, threshold),
            "identical_repeats": identical, "per_item": spread}


# --- the report ------------------------------------------------------------------------------


def _fmt(value: Any, pct: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{100 * value:.1f}%" if pct else f"{value:g}"


def to_markdown(result: dict[str, Any]) -> str:
    """noise.md: the settings, the headline figures, a note when the repeats cannot differ."""
    s, f, a, o = result["spread"], result["flips"], result["alpha"], result["overlap"]
    setup = result.get("setup", {})
    lines = [f"# Judge noise: {setup.get('judge', '?')}, prompt {setup.get('prompt', '?')}", ""]
    if setup:
        lines += [f"{result['items']} items re-rated {result['repeats']} times at temperature "
                  f"{_fmt(setup.get('temperature'))}"
                  f"{' (the judge’s own)' if setup.get('judge_temperature') else ''}, field "
                  f"order {'perturbed in repeats 1..' if setup.get('perturb_order') else 'the paper’s'}"
                  f"; sample seed {setup.get('seed')}. Repeat 0 "
                  f"{'is the plain rating (shared with stage=rate)' if setup.get('repeat0_shared') else 'is rated at these settings'}.",
                  ""]
    lines += ["| figure | value |", "|---|---:|",
              f"| items with ≥ 2 scores | {s['items']} |",
              f"| mean per-item std | {_fmt(s['mean_std'])} |",
              f"| largest per-item std | {_fmt(s['max_std'])} |",
              f"| mean per-item range | {_fmt(s['mean_range'])} |",
              f"| largest per-item range | {_fmt(s['max_range'])} |",
              f"| items whose scores vary | {_fmt(s['varied'], pct=True)} |",
              f"| items flipping keep/drop at {f['threshold']:g} | "
              f"{_fmt(f['items_flipping'], pct=True)} ({f['flipping_count']}) |",
              f"| two ratings disagree on keep/drop | {_fmt(f['pairwise'], pct=True)} |",
              f"| Krippendorff's alpha (interval) | {_fmt(a['alpha'])} |",
              f"| Jaccard of two filtered sets (observed) | {_fmt(o['jaccard_observed'])} |",
              f"| kept again by a second rating (observed) | "
              f"{_fmt(o['kept_again_observed'], pct=True)} |",
              f"| Jaccard of two filtered sets (expected) | {_fmt(o['jaccard_expected'])} |",
              f"| kept per repeat | {', '.join(str(n) for n in o['kept_per_repeat'])} |", ""]
    if a.get("reason"):
        lines += [f"Alpha: {a['reason']}.", ""]
    if result["identical_repeats"]:
        lines += ["Every repeat gave every item the same score: the judge is "
                  "deterministic at these settings (temperature 0 is greedy decoding). Set "
                  "noise.temperature > 0 or noise.perturb_order=true to measure its noise.", ""]
    if s["ranges"]:
        lines += ["Per-item range: " + ", ".join(f"{r}: {n}" for r, n in s["ranges"].items()),
                  ""]
    return "\n".join(lines)
