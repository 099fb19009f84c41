"""The selections of a finished sweep, compared: the sweep report's section, built from the
jobs' select (and analyze) artifacts."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from alpagasus.analysis.compare import Features, SelectionView, analyze
from alpagasus.analysis.figures import plot_overlap
from alpagasus.analysis.markdown import to_markdown
from alpagasus.selection import strategies

log = logging.getLogger("alpagasus.analysis")


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
