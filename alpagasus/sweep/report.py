"""The sweep report: sweep.csv, sweep.md and the figure written into the multirun directory,
plus the optional ``SECTIONS`` (see alpagasus/sweep/__init__.py)."""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alpagasus.shared_files import exclusive_lock, write_text_atomic
from alpagasus.sweep.collect import load_results
from alpagasus.sweep.figures import figure_kind, plot
from alpagasus.sweep.results import FAILED
from alpagasus.sweep.tables import jobs_table, markdown_table, rows, swept_keys, write_csv

CSV = "sweep.csv"
MARKDOWN = "sweep.md"
SECTIONS: tuple[str, ...] = ("alpagasus.shared_models:sweep_section",
                             "alpagasus.analysis:sweep_section")



@dataclass
class SweepReport:
    sweep_dir: Path
    results: list[dict[str, Any]]
    swept: list[str]
    table: list[dict[str, Any]]
    figure: Path | None
    markdown: str
    sections: list[str] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.results:
            out[r.get("status", "?")] = out.get(r.get("status", "?"), 0) + 1
        return out

    @property
    def failed(self) -> int:
        """Jobs that failed, died without a result, or never started (not: a dry run, a
        pending provider batch, which stop as asked)."""
        return sum(n for s, n in self.counts.items() if s in FAILED)


def run_sections(results: list[dict[str, Any]], sweep_dir: Path,
                 sections: Iterable[str] = SECTIONS) -> list[str]:
    out = []
    for spec in sections:
        module_name, _, func_name = spec.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name is not None and module_name.startswith(e.name):
                continue  # that section is not installed
            raise
        text = getattr(module, func_name)(results, sweep_dir)
        if text:
            out.append(text.strip())
    return out


def write_report(sweep_dir: str | Path, sections: Iterable[str] = SECTIONS) -> SweepReport:
    """Collect the sweep's results; write sweep.csv, sweep.md and the figure into it. Two
    writers at once (the sweep's callback, ``alpagasus-report``) take turns on a lock, and
    each file is replaced whole, so a reader never sees a torn or mixed report."""
    sweep_dir = Path(sweep_dir)
    with exclusive_lock(sweep_dir / ".sweep-report.lock"):
        return _write_report(sweep_dir, sections)


def _write_report(sweep_dir: Path, sections: Iterable[str]) -> SweepReport:
    results = load_results(sweep_dir)
    swept = swept_keys(results)
    table = rows(results, swept)
    write_csv(sweep_dir / CSV, table)
    figure = plot(results, swept, sweep_dir)
    report = SweepReport(sweep_dir, results, swept, table, figure, "")
    report.sections = run_sections(results, sweep_dir, sections)
    counts = ", ".join(f"{n} {s.replace('_', ' ')}" for s, n in sorted(report.counts.items()))
    parts = [f"# Sweep {sweep_dir}", "",
             f"{len(results)} jobs: {counts}. Swept: {', '.join(swept) or 'nothing'}.", "",
             markdown_table(table, swept), ""]
    if figure is not None:
        parts += [f"Figure: {figure.name} ({figure_kind(swept).value})", ""]
    parts += ["## Jobs", "", jobs_table(results), ""]
    for text in report.sections:
        parts += [text, ""]
    report.markdown = "\n".join(parts)
    write_text_atomic(sweep_dir / MARKDOWN, report.markdown)
    return report


def summary(report: SweepReport) -> str:
    """What the console shows at the end of a sweep: the table and where the files are."""
    counts = ", ".join(f"{n} {s.replace('_', ' ')}" for s, n in sorted(report.counts.items()))
    lines = [f"sweep {report.sweep_dir}: {len(report.results)} jobs ({counts}); swept: "
             f"{', '.join(report.swept) or 'nothing'}", "", markdown_table(report.table, report.swept),
             "", f"table: {report.sweep_dir / CSV}", f"report: {report.sweep_dir / MARKDOWN}"]
    if report.figure is not None:
        lines.append(f"figure: {report.figure}")
    return "\n".join(lines)
