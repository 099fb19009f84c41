"""The sweep's table: one row per job and test set, as sweep.csv and as markdown."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from alpagasus import shared_models
from alpagasus.shared_files import replaced_on_success


def parse_override(text: str) -> tuple[str, str] | None:
    """"threshold=4.5" -> ("threshold", "4.5"); "+comparison=x" -> ("comparison", "x")."""
    if "=" not in text:
        return None
    key, value = text.split("=", 1)
    return key.lstrip("+~"), value


def swept_keys(results: list[dict[str, Any]]) -> list[str]:
    """The override keys whose value differs between jobs, in the order they first appear."""
    values: dict[str, set[str]] = {}
    order: list[str] = []
    for result in results:
        for text in result.get("job", {}).get("overrides", []):
            parsed = parse_override(text)
            if parsed is None:
                continue
            key, value = parsed
            if key not in values:
                values[key] = set()
                order.append(key)
            values[key].add(value)
    jobs_per_key = {k: sum(1 for r in results if k in _override_map(r)) for k in order}
    return [k for k in order if len(values[k]) > 1 or 0 < jobs_per_key[k] < len(results)]


def _override_map(result: dict[str, Any]) -> dict[str, str]:
    pairs = (parse_override(t) for t in result.get("job", {}).get("overrides", []))
    return dict(p for p in pairs if p is not None)


# Columns of sweep.csv / sweep.md rows taken from the report's table rows, in this order; any
# other field a row has (confidence intervals, categories) follows in the CSV.
TABLE_FIELDS = ("win", "tie", "lose", "unparsed", "n", "winning_score", "ci_low", "ci_high",
                "order_agreement")


def rows(results: list[dict[str, Any]], swept: list[str]) -> list[dict[str, Any]]:
    """One row per job and test set (one row with an empty test set for a job without a
    report table: failed, stopped, or a sweep that ends before `report`)."""
    out = []
    models = shared_models.shared_models(results)  # arms with the same items share a model
    for result in results:
        job = result.get("job", {})
        overrides = _override_map(result)
        arms = result.get("arms") or {}
        rating = result.get("rating") or {}
        training = result.get("training") or {}
        error = result.get("error") or {}
        base: dict[str, Any] = {
            "job": job.get("num"), "status": result.get("status"),
            **{key: overrides.get(key, "") for key in swept},
            "arm_a": arms.get("a", {}).get("label", ""), "arm_b": arms.get("b", {}).get("label", ""),
            "kept_a": arms.get("a", {}).get("kept"), "kept_b": arms.get("b", {}).get("kept"),
            **shared_models.row_models(result, models),
            "rating_input_tokens": rating.get("input_tokens"),
            "rating_output_tokens": rating.get("output_tokens"),
            "rating_cost_usd": rating.get("cost_usd"),
            "rating_cost_usd_this_job": rating.get("cost_usd_this_job"),
            "train_seconds_this_job": training.get("seconds_this_job"),
            "train_tokens_this_job": training.get("tokens_this_job"),
            "job_seconds": result.get("seconds"),
            "error": f"{error.get('type', '')}: {error.get('message', '')}" if error else "",
            "job_dir": job.get("dir", ""),
        }
        table = (result.get("report") or {}).get("table") or {}
        if not table:
            out.append({**base, "test_set": ""})
            continue
        for name, row in table.items():
            ordered = {k: row.get(k) for k in TABLE_FIELDS if k in row}
            extra = {k: v for k, v in row.items() if k not in TABLE_FIELDS}
            out.append({**base, "test_set": name, **ordered, **extra})
    return out


def write_csv(path: Path, table: list[dict[str, Any]]) -> None:
    columns: list[str] = []
    for row in table:
        columns += [k for k in row if k not in columns]
    with replaced_on_success(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        for row in table:
            writer.writerow({k: _csv_value(v) for k, v in row.items()})


def _csv_value(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, dict | list) else value


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(table: list[dict[str, Any]], swept: list[str]) -> str:
    has_ci = any(r.get("ci_low") is not None for r in table)
    has_models = any(shared_models.cell(r) for r in table)
    head = ["job", "status", *swept, "arm A", "arm B", *(["model A / B"] if has_models else []),
            "test set", "win", "tie", "lose", "N", "winning score", *(["95% CI"] if has_ci else [])]
    lines = ["| " + " | ".join(head) + " |",
             "|" + "|".join("---:" if h in ("win", "tie", "lose", "N", "winning score") else "---"
                            for h in head) + "|"]
    for r in table:
        ci = (f"{_fmt(r.get('ci_low'))}-{_fmt(r.get('ci_high'))}"
              if r.get("ci_low") is not None else "")
        cells = [r["job"], r["status"], *(r.get(k, "") for k in swept), r["arm_a"], r["arm_b"],
                 *([shared_models.cell(r)] if has_models else []), r["test_set"], r.get("win"),
                 r.get("tie"), r.get("lose"), r.get("n"), r.get("winning_score"),
                 *([ci] if has_ci else [])]
        lines.append("| " + " | ".join(_fmt(c) for c in cells) + " |")
    return "\n".join(lines)


def jobs_table(results: list[dict[str, Any]]) -> str:
    lines = ["| job | status | overrides | rating tokens (in/out) | rating $ (this job) "
             "| trained here (s / tokens) | job s | error |",
             "|---|---|---|---:|---:|---:|---:|---|"]
    for r in results:
        job, rating, training = r.get("job", {}), r.get("rating") or {}, r.get("training") or {}
        error = r.get("error") or {}
        tokens = (f"{rating.get('input_tokens', 0):,}/{rating.get('output_tokens', 0):,}"
                  if rating.get("judges") else "")
        cost = (f"{rating.get('cost_usd', 0):.2f} ({rating.get('cost_usd_this_job', 0):.2f})"
                if rating.get("judges") else "")
        trained = (f"{training.get('seconds_this_job', 0):.0f} / "
                   f"{training.get('tokens_this_job', 0):,}" if training.get("arms") else "")
        message = f"{error.get('type')}: {error.get('message', '')}"[:200] if error else ""
        cells = [job.get("num"), r.get("status"), " ".join(job.get("overrides", [])), tokens,
                 cost, trained, _fmt(r.get("seconds"), 0), message]
        lines.append("| " + " | ".join(_fmt(c) for c in cells) + " |")
    return "\n".join(lines)
