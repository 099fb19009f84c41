"""The comparison (``analyze``'s result) as tables: markdown, and the rows W&B logs."""

from __future__ import annotations

import json
from typing import Any


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
