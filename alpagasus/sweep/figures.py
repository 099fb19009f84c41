"""The sweep's figure, whose type follows the swept keys (``FIGURES``): winning score vs
threshold, vs training-set size, or grouped bars (one bar per job, per test set) otherwise."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from alpagasus.shared_files import replaced_on_success
from alpagasus.sweep.results import JobStatus
from alpagasus.sweep.tables import _override_map


class FigureKind(str, Enum):  # noqa: UP042
    threshold = "threshold"
    size = "size"
    ablation = "ablation"


@dataclass(frozen=True)
class LineAxis:
    """A swept key plotted as the x axis of a line figure."""

    key: str  # the override key that selects this figure when it is swept
    label: str
    x: Callable[[dict[str, Any]], float | None]  # from a job's result


def _arm_a(result: dict[str, Any], field_name: str) -> Any:
    return (result.get("arms") or {}).get("a", {}).get(field_name)


# The first swept key found here picks a line figure; no such key: grouped bars (an ablation).
FIGURES: dict[FigureKind, LineAxis] = {
    FigureKind.threshold: LineAxis("threshold", "rating threshold of arm A",
                                   lambda r: _arm_a(r, "threshold")),
    FigureKind.size: LineAxis("size", "training items of arm A", lambda r: _arm_a(r, "kept")),
}


def figure_kind(swept: list[str]) -> FigureKind:
    for kind, axis in FIGURES.items():
        if axis.key in swept:
            return kind
    return FigureKind.ablation


def figure_rows(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The rows a figure shows: the test sets and "all" (not per-category rows)."""
    table = (result.get("report") or {}).get("table") or {}
    names = set((result.get("config") or {}).get("testsets") or []) | {"all"}
    return {k: v for k, v in table.items() if k in names and v.get("winning_score") is not None}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _yerr(points: list[tuple[float, dict[str, Any]]]) -> list[list[float]] | None:
    if not all(p.get("ci_low") is not None and p.get("ci_high") is not None for _, p in points):
        return None
    return [[p["winning_score"] - p["ci_low"] for _, p in points],
            [p["ci_high"] - p["winning_score"] for _, p in points]]


def plot_lines(results: list[dict[str, Any]], swept: list[str], axis: LineAxis,
               path: Path, title: str) -> None:
    """Winning score against ``axis``: one line per test set when only that key is swept,
    else one line per value of the other swept keys (overall score)."""
    others = [k for k in swept if k != axis.key]
    series: dict[str, list[tuple[float, dict[str, Any]]]] = {}
    for result in results:
        x = axis.x(result)
        if x is None:
            continue
        table = figure_rows(result)
        if others:
            overrides = _override_map(result)
            name = ", ".join(f"{k}={overrides.get(k, '')}" for k in others)
            if "all" in table:
                series.setdefault(name, []).append((float(x), table["all"]))
        else:
            for name, row in table.items():
                series.setdefault(name, []).append((float(x), row))
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name in sorted(series, key=lambda n: (n == "all", n)):
        points = sorted(series[name], key=lambda p: p[0])
        xs = [x for x, _ in points]
        ys = [p["winning_score"] for _, p in points]
        bold = name == "all" and not others
        ax.errorbar(xs, ys, yerr=_yerr(points), marker="o", capsize=3, label=name,
                    linewidth=2.5 if bold else 1.4, color="black" if bold else None)
    ax.axhline(1.0, color="#888888", linestyle="--", linewidth=1)
    ax.set_xlabel(axis.label)
    ax.set_ylabel("winning score (win - lose) / N + 1")
    ax.set_ylim(0, 2)
    ax.set_title(title, fontsize=9)
    if series:
        ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    with replaced_on_success(path) as tmp:  # a reader never sees half a figure
        fig.savefig(tmp, dpi=120)
    plt.close(fig)


def plot_bars(results: list[dict[str, Any]], path: Path, title: str) -> None:
    """Grouped bars: one group per test set ("all" last), one bar per job."""
    jobs = [(r, figure_rows(r)) for r in results]
    jobs = [(r, t) for r, t in jobs if t]
    names = sorted({n for _, t in jobs for n in t}, key=lambda n: (n == "all", n))
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(names) * max(len(jobs), 1) ** 0.5 + 2), 4.4))
    width = 0.8 / max(len(jobs), 1)
    for i, (result, table) in enumerate(jobs):
        xs = [j + (i - (len(jobs) - 1) / 2) * width for j in range(len(names))]
        ys = [table.get(n, {}).get("winning_score") or 0.0 for n in names]
        bars = ax.bar(xs, ys, width=width * 0.95, label=_job_label(result))
        ax.bar_label(bars, fmt="%.2f", fontsize=7)
        points = [(0.0, table[n]) for n in names if n in table]
        if len(points) == len(names):
            err = _yerr(points)
            if err:
                ax.errorbar(xs, ys, yerr=err, fmt="none", ecolor="black", capsize=2)
    ax.axhline(1.0, color="#888888", linestyle="--", linewidth=1)
    ax.set_xticks(range(len(names)), names)
    ax.set_ylabel("winning score (win - lose) / N + 1")
    ax.set_ylim(0, 2.2)
    ax.set_title(title, fontsize=9)
    if jobs:
        ax.legend(fontsize=7, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.12),
                  ncol=1)
    fig.tight_layout()
    with replaced_on_success(path) as tmp:  # a reader never sees half a figure
        fig.savefig(tmp, dpi=120)
    plt.close(fig)


def _job_label(result: dict[str, Any]) -> str:
    arms = result.get("arms") or {}
    a, b = arms.get("a", {}).get("label", "A"), arms.get("b", {}).get("label", "B")
    return f"#{result.get('job', {}).get('num')}: {a} vs {b}"


def plot(results: list[dict[str, Any]], swept: list[str], sweep_dir: Path) -> Path | None:
    done = [r for r in results if r.get("status") == JobStatus.completed.value and figure_rows(r)]
    if not done:
        return None
    kind = figure_kind(swept)
    path = sweep_dir / f"sweep_{kind.value}.png"
    judges = sorted({(r.get("config") or {}).get("eval_judge.name") or "?" for r in done})
    missing = len(results) - len(done)
    title = (f"AlpaGasus sweep: winning score of arm A over arm B (judge {', '.join(judges)})"
             + (f"\n{missing} job(s) without a result not shown" if missing else ""))
    if kind is FigureKind.ablation:
        plot_bars(done, path, title)
    else:
        baselines = sorted({_arm_b_name(r) for r in done})
        plot_lines(done, swept, FIGURES[kind], path,
                   title + f"\narm B: {', '.join(baselines)}")
    return path


def _arm_b_name(result: dict[str, Any]) -> str:
    b = (result.get("arms") or {}).get("b", {})
    return b.get("filter") or b.get("method") or "?"
