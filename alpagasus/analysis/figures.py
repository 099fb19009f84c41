"""The comparison as PNG figures: overlap heat map, score histograms, ROC curves."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from alpagasus.analysis.compare import SelectionView


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_overlap(result: dict[str, Any], path: Path) -> None:
    """Jaccard similarity of every pair of selections, as a heat map."""
    plt = _plt()
    names = [s["name"] for s in result["selections"]]
    labels = [s["label"] for s in result["selections"]]
    matrix = [[1.0 if a == b else 0.0 for b in names] for a in names]
    for o in result["overlap"]:
        i, j = names.index(o["a"]), names.index(o["b"])
        matrix[i][j] = matrix[j][i] = o["jaccard"] or 0.0
    fig, ax = plt.subplots(figsize=(1.3 * len(names) + 2.5, 1.1 * len(names) + 1.5))
    im = ax.imshow(matrix, vmin=0, vmax=1, cmap="Blues")
    ax.set_xticks(range(len(names)), labels, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(len(names)), labels, fontsize=8)
    for i in range(len(names)):
        for j in range(len(names)):
            ax.text(j, i, f"{matrix[i][j]:.2f}", ha="center", va="center", fontsize=8,
                    color="white" if matrix[i][j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, label="Jaccard")
    ax.set_title("Overlap of the selections", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_scores(selections: list[SelectionView], path: Path) -> bool:
    """One histogram per scored selection (a judge's ratings, IFD); False if none has any."""
    scored = [s for s in selections if s.scores is not None]
    if not scored:
        return False
    plt = _plt()
    fig, axes = plt.subplots(1, len(scored), figsize=(4.2 * len(scored), 3.2), squeeze=False)
    for ax, s in zip(axes[0], scored, strict=True):
        values = [v for v in s.scores if v is not None]
        if s.judged:
            counts = Counter(values)
            xs = sorted(counts)
            ax.bar([f"{x:g}" for x in xs], [counts[x] for x in xs], color="#4c72b0")
        elif values:
            ax.hist(values, bins=40, color="#4c72b0")
            ax.locator_params(axis="x", nbins=5)
        ax.set_title(f"{s.label}: {s.score_name}", fontsize=9)
        ax.set_ylabel("items")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def plot_roc(selections: list[SelectionView], labels: list[bool], path: Path) -> bool:
    """ROC curves against the reference labels: each ranking, and each kept set as a point."""
    from sklearn.metrics import roc_curve

    if len(set(labels)) < 2:
        return False
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    ax.plot([0, 1], [0, 1], color="#999999", linewidth=0.8, linestyle="--")
    positives = sum(labels)
    for n, s in enumerate(selections):
        color = f"C{n % 10}"
        if s.rank is not None and any(v is not None for v in s.rank):
            floor = min(v for v in s.rank if v is not None) - 1.0
            fpr, tpr, _ = roc_curve(labels, [floor if v is None else v for v in s.rank])
            ax.plot(fpr, tpr, linewidth=1.2, color=color, label=f"{s.label} ranking")
        tp = sum(1 for y, k in zip(labels, s.kept, strict=True) if y and k)
        fp = sum(s.kept) - tp
        ax.scatter([fp / max(len(labels) - positives, 1)], [tp / max(positives, 1)],
                   color=color, marker="o", zorder=3, label=f"{s.label} kept")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate (recall)")
    ax.set_title("Against the reference labels", fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True
