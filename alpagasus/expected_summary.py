"""Both score kinds of a rating side by side: counts for the manifest and the histogram.

A rating row holds ``score`` (parsed from the reply: the paper's half-point grid) and, when
the judge gives probabilities, ``expected_score`` (continuous; alpagasus.expected). The
histogram shows the parsed scores' bars and, beside them, the expected scores in 0.1-wide
bins, so one sees what the grid hides.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

THRESHOLDS = [x / 2 for x in range(11)]  # 0, 0.5, ..., 5: items kept at each
BIN = 0.1


def expected_values(rows: list[dict[str, Any]]) -> list[float]:
    return [r["expected_score"] for r in rows if r.get("expected_score") is not None]


def expected_counts(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Manifest counts of the expected scores ({} when no row has one)."""
    values = expected_values(rows)
    if not values:
        return {}
    masses = [r["expected_mass"] for r in rows if r.get("expected_mass") is not None]
    scored = [(r["score"], r["expected_score"]) for r in rows
              if r.get("score") is not None and r.get("expected_score") is not None]
    distinct_parsed = len({s for s, _ in scored})
    return {
        "expected_scored": len(values),
        "expected_mean": round(statistics.fmean(values), 4),
        "expected_sd": round(statistics.pstdev(values), 4),
        "expected_min": round(min(values), 4),
        "expected_max": round(max(values), 4),
        # How much of the top list's probability went to score tokens (1: all of it).
        "expected_mass_mean": round(statistics.fmean(masses), 4) if masses else None,
        "kept_at_expected": {str(t): sum(1 for v in values if v >= t) for t in THRESHOLDS},
        # Ties the grid makes and the expected scores break: distinct values of each.
        "distinct_scores": distinct_parsed,
        "distinct_expected": len({round(e, 6) for _, e in scored}),
    }


def plot_both(histogram: dict[str, int], rows: list[dict[str, Any]], counts: dict[str, Any],
              title: str, path: Path) -> None:
    """Left: parsed scores (0-5 in 0.5 steps, labelled with counts, like the paper's
    Figure 2); right, when there are any: expected scores in 0.1-wide bins."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    expected = expected_values(rows)
    values = {float(k): v for k, v in histogram.items()}
    xs = sorted(set(THRESHOLDS) | set(values))
    ys = [values.get(x, 0) for x in xs]
    fig, axes = plt.subplots(1, 2 if expected else 1, figsize=(12 if expected else 7, 3.6),
                             squeeze=False)
    ax = axes[0][0]
    bars = ax.bar(range(len(xs)), ys, color="#4c72b0")
    ax.bar_label(bars, fontsize=8)
    ax.set_xticks(range(len(xs)), [f"{x:g}" for x in xs])
    ax.set_xlabel("score (parsed from the reply)")
    ax.set_ylabel("items")
    if expected:
        ax2 = axes[0][1]
        edges = [round(i * BIN, 2) for i in range(int(5 / BIN) + 1)]
        ax2.hist(expected, bins=edges, color="#dd8452")
        ax2.set_xlim(0, 5)
        ax2.set_xlabel(f"expected score ({BIN:g}-wide bins)")
        ax2.set_title(f"{len(expected)} expected scores: mean {statistics.fmean(expected):.2f}, "
                      f"{counts.get('distinct_expected', '?')} distinct values vs "
                      f"{counts.get('distinct_scores', '?')} parsed", fontsize=9)
    fig.suptitle(f"{title}\n{counts['items']} items, {counts['unparsed']} unparsed, "
                 f"{counts['too_long']} too long", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
