"""Comparing selections: pure statistics (scipy, scikit-learn) and markdown/PNG writers.

Inputs are plain lists, one entry per distinct data item: which items each selection keeps,
its scores (a judge's 0-5, IFD) and ranking when it has them, and optionally reference labels
(membership in a released filtered file). `stage=analyze` (alpagasus/stages/analyze.py)
builds them from artifacts; `sweep_section` does the same from a finished sweep's results.
"""

from __future__ import annotations

import json
import logging
import math
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


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


# --- statistics ----------------------------------------------------------------------------


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


# --- writers -------------------------------------------------------------------------------


def _fmt(x: Any, spec: str = ".3f") -> str:
    if x is None:
        return "n/a"
    if isinstance(x, float):
        return format(x, spec)
    if isinstance(x, int):
        return f"{x:,}"
    return str(x)


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.0%}"


def selections_table(result: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """The main table (markdown and W&B): one row per selection."""
    columns = ["selection", "method", "kept", "of", "resp. chars kept", "resp. chars dropped",
               "with input kept", "with input dropped"]
    has_ref = result.get("reference") is not None
    if has_ref:
        columns += ["precision", "recall", "AUC (kept)", "AUC (ranking)", "AUC (score)"]
    rows = []
    for s in result["selections"]:
        kept, dropped = s["kept_vs_dropped"]["kept"], s["kept_vs_dropped"]["dropped"]
        row = [s["label"], s["method"], s["kept"], s["of"], kept["response_chars_mean"],
               dropped["response_chars_mean"], kept["with_input"], dropped["with_input"]]
        if has_ref:
            ref = s.get("reference") or {}
            row += [ref.get("precision"), ref.get("recall"), ref.get("auc_kept"),
                    ref.get("auc_ranking"), ref.get("auc_score")]
        rows.append(row)
    return columns, rows


def _md_table(columns: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(columns) + " |",
            "|" + "|".join("---" if i == 0 else "---:" for i in range(len(columns))) + "|",
            *("| " + " | ".join(r) + " |" for r in rows)]


def to_markdown(result: dict[str, Any], title: str = "Selections compared") -> str:
    labels = {s["name"]: s["label"] for s in result["selections"]}
    lines = [f"## {title}", ""]
    ref = result.get("reference")
    if ref:
        lines += [f"Reference labels: `{ref.get('path')}`: {_fmt(ref.get('released'))} items, "
                  f"{_fmt(ref.get('positives'))} of the {_fmt(result['items'])} distinct data "
                  f"items are in it ({_fmt(ref.get('unmatched'))} of its items are not in the "
                  "data).", ""]
    columns, rows = selections_table(result)
    text_rows = []
    for row in rows:
        cells = [row[0], row[1], _fmt(row[2]), _fmt(row[3]), _fmt(row[4], ".0f"),
                 _fmt(row[5], ".0f"), _pct(row[6]), _pct(row[7])]
        cells += [_fmt(v) for v in row[8:]]
        text_rows.append(cells)
    lines += _md_table(columns, text_rows)
    if ref:
        lines += ["", "Precision and recall: of the kept items against the reference; AUC "
                  "(kept): ROC AUC of the kept/dropped indicator; (ranking): of the order the "
                  "strategy picks in; (score): of its raw scores (higher = in the reference)."]
    if result["overlap"]:
        lines += ["", "### Overlap", ""]
        lines += _md_table(["A", "B", "both", "only A", "only B", "Jaccard", "Cohen's kappa"], [
            [labels[o["a"]], labels[o["b"]], _fmt(o["both"]), _fmt(o["only_a"]),
             _fmt(o["only_b"]), _fmt(o["jaccard"]), _fmt(o["kappa"])]
            for o in result["overlap"]])
    if result["agreement"]:
        lines += ["", "### Score agreement", "",
                  "Over the items both scored; kappa and the confusion matrix of passing each "
                  "one's cutoff (rows A fails/passes, columns B fails/passes).", ""]
        lines += _md_table(["A", "B", "items", "Spearman", "kappa", "confusion"], [
            [f"{labels[g['a']]}: {g['score_a']}", f"{labels[g['b']]}: {g['score_b']}",
             _fmt(g["n"]), _fmt(g["spearman"]), _fmt(g["kappa"]), json.dumps(g["confusion"])]
            for g in result["agreement"]])
    judged = [s for s in result["selections"] if s.get("kept_at")]
    if judged:
        thresholds = list(judged[0]["kept_at"])
        lines += ["", "### Kept at each threshold", ""]
        lines += _md_table(["scores", *thresholds], [
            [f"{s['label']}: {s.get('score_name')}{kind}", *(_fmt(s[key][t]) for t in thresholds)]
            for s in judged for key, kind in (("kept_at", ""), ("kept_at_expected", " (expected)"))
            if key in s])
    categories = sorted({c for s in result["selections"]
                         for side in ("kept", "dropped")
                         for c in s["kept_vs_dropped"][side]["categories"]})
    if categories:
        lines += ["", "### Categories (share of kept items)", ""]
        lines += _md_table(["selection", *categories], [
            [s["label"], *(_pct(s["kept_vs_dropped"]["kept"]["categories"].get(c, 0)
                                / max(s["kept"], 1)) for c in categories)]
            for s in result["selections"]])
    return "\n".join(lines) + "\n"


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


# --- sweeps --------------------------------------------------------------------------------


def sweep_section(results: list[dict[str, Any]], sweep_dir: Path) -> str:
    """The selections of a finished sweep, compared: markdown for the sweep report.

    ``results``: each job's result.json. Each job's selection artifacts are found under
    ``paths.artifacts`` (keys under "artifacts"/"select", or the arms' "select" entries);
    selections over the same data are compared (counts, overlaps, length stats, and, when
    the job ran stage=analyze with a reference, its precision/recall/AUC). Anything missing
    is skipped, never an error: the sweep report must still be written. Also writes
    ``selections.json`` and ``overlap.png`` into ``sweep_dir``.
    """
    views, references, by_data = _sweep_selections(results)
    if not views:
        return ""
    sections = []
    for data_key, names in by_data.items():
        group = [views[n] for n in names]
        n_items = len(group[0][0].kept)
        if any(len(v.kept) != n_items for v, _ in group):
            log.warning("sweep report: selections of data %s differ in length; skipped", data_key)
            continue
        features = _merge_features([f for _, f in group])
        selections = [v for v, _ in group]
        result = analyze(features, selections)
        # Reference metrics come from the jobs' own stage=analyze outputs, when present.
        for row in result["selections"]:
            found = references.get(row["name"])
            if found is not None:
                row["reference"], result["reference"] = found
        title = "Selections across the sweep" + (f" (data {data_key})" if len(by_data) > 1
                                                 else "")
        sections.append(to_markdown(result, title) + f"\n{len(selections)} selections of "
                        f"{n_items:,} distinct items.\n")
        try:
            suffix = f"_{data_key}" if len(by_data) > 1 else ""
            (Path(sweep_dir) / f"selections{suffix}.json").write_text(json.dumps(result, indent=2))
            if len(selections) > 1:
                plot_overlap(result, Path(sweep_dir) / f"overlap{suffix}.png")
        except OSError as e:
            log.warning("sweep report: could not write the selection files: %s", e)
    return "\n".join(sections)


def _merge_features(parts: list[Features]) -> Features:
    """Per item, what any selection that kept it knows."""
    n = len(parts[0].response_chars)
    chars: list[int | None] = [None] * n
    inputs: list[bool | None] = [None] * n
    for f in parts:
        for i in range(n):
            if chars[i] is None and f.response_chars[i] is not None:
                chars[i], inputs[i] = f.response_chars[i], f.has_input[i]
    return Features(chars, inputs, [None] * n)


def _walk_artifacts(obj: Any, stage: str) -> list[str]:
    """Every path-like string under a result dict that points into ``<artifacts>/<stage>/``."""
    found = []
    if isinstance(obj, dict):
        for v in obj.values():
            found += _walk_artifacts(v, stage)
    elif isinstance(obj, list):
        for v in obj:
            found += _walk_artifacts(v, stage)
    elif isinstance(obj, str) and f"/{stage}/" in obj.replace("\\", "/"):
        found.append(obj)
    return found


def _sweep_selections(results: list[dict[str, Any]]):
    """{name: (SelectionView, Features)}, {name: (reference metrics, the reference)},
    {data key: [names]}."""
    views: dict[str, tuple[SelectionView, Features]] = {}
    references: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
    by_data: dict[str, list[str]] = {}
    seen_paths: set[Path] = set()
    for result in results:
        if not isinstance(result, dict):
            continue
        for raw in _walk_artifacts(result, "select"):
            path = _artifact_dir(Path(raw), "select")
            if path is None or path in seen_paths:
                continue
            seen_paths.add(path)
            loaded = _load_selection(path)
            if loaded is None:
                continue
            view, features, data_key = loaded
            name = view.name
            if name in views:  # two artifacts with one arm name (different data or inputs)
                name = f"{name}@{path.name[:6]}"
                view = SelectionView(**{**view.__dict__, "name": name,
                                        "label": f"{view.label} [{path.name[:6]}]"})
            views[name] = (view, features)
            by_data.setdefault(data_key, []).append(name)
        for raw in _walk_artifacts(result, "analyze"):
            path = _artifact_dir(Path(raw), "analyze")
            if path is None or not (path / "analysis.json").is_file():
                continue
            try:
                analysis = json.loads((path / "analysis.json").read_text())
            except (OSError, ValueError):
                continue
            for row in analysis.get("selections", []):
                if row.get("reference") and analysis.get("reference"):
                    references.setdefault(row.get("name"),
                                          (row["reference"], analysis["reference"]))
    return views, references, by_data


def _artifact_dir(path: Path, stage: str) -> Path | None:
    """The artifact directory <root>/<stage>/<key> for a path inside it (or itself)."""
    parts = path.parts
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == stage:
            candidate = Path(*parts[: i + 2])
            return candidate if (candidate / "manifest.json").is_file() else None
    return None


def _threshold_label(arm: dict[str, Any]) -> str:
    """"≥4.5" for a strategy that cuts at a threshold, as Arm.label writes it."""
    from alpagasus.selection import strategies

    strategy = strategies().get(str(arm.get("method")))
    threshold = arm.get("threshold")
    if strategy is None or not strategy.uses_threshold or not isinstance(threshold, int | float):
        return ""
    return f"≥{threshold:g}"


def _load_selection(path: Path) -> tuple[SelectionView, Features, str] | None:
    """A select artifact as a SelectionView over its distinct items (None if unreadable)."""
    try:
        manifest = json.loads((path / "manifest.json").read_text())
        rows = [json.loads(line) for line in (path / "selection.jsonl").read_text().splitlines()]
        selected = json.loads((path / "selected.json").read_text())
    except (OSError, ValueError) as e:
        log.warning("sweep report: skipping %s: %s", path, e)
        return None
    rows = [r for r in rows if "duplicate_of" not in r]
    arm = (manifest.get("meta") or {}).get("arm") or {}
    kept = [bool(r.get("kept")) for r in rows]
    if len(selected) != sum(kept):
        log.warning("sweep report: skipping %s: selected.json and selection.jsonl disagree", path)
        return None
    # Only the kept items' texts are stored with a selection: the others' are unknown here
    # (a sweep whose jobs have baseline=all sees every item through that selection).
    texts = iter(selected)
    known = [next(texts) if k else None for k in kept]
    features = Features([None if it is None else len(it.get("output", "")) for it in known],
                        [None if it is None else bool(str(it.get("input") or "").strip())
                         for it in known], [None] * len(kept))
    scores = [r.get("score") for r in rows]
    has_scores = any(s is not None for s in scores)
    expected = [r.get("expected_score") for r in rows]
    name = arm.get("name") or path.name
    label = f"{arm.get('filter', name)}{_threshold_label(arm)} ({sum(kept):,})"
    view = SelectionView(
        name=name, label=label, method=arm.get("method") or manifest["config"].get("method", "?"),
        kept=kept, scores=scores if has_scores else None,
        score_name=(f"{arm.get('judge')} score" if arm.get("judge") else "score")
        if has_scores else None,
        judged=bool(arm.get("judge")),
        rank=[r.get("rank_value") for r in rows] if any("rank_value" in r for r in rows) else None,
        passes=[bool(r.get("passes")) for r in rows] if any("passes" in r for r in rows) else None,
        expected=expected if any(e is not None for e in expected) else None,
        threshold=arm.get("threshold") if isinstance(arm.get("threshold"), int | float) else None,
    )
    return view, features, str((manifest.get("inputs") or {}).get("data", "?"))
