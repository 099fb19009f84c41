"""Sweeps: every job's ``result.json``, and one report over a finished multirun directory.

Each job writes ``result.json`` into its Hydra job directory (``main.run`` via ``JobRecord``,
also when the job fails): its overrides, both arms (spec, label, items kept, selection key),
the keys of the artifacts it used and whether it built or reused them, the rating's tokens
and cost, training time and tokens, and the report's table (win/tie/lose, winning score and
whatever else the report puts in each row, per test set and overall).

The collector (``write_report``) reads a multirun directory and writes next to it
``sweep.csv`` and ``sweep.md`` (one row per job and test set; a job that failed, crashed or
never started is a row with its status, not a missing row) and one figure whose type follows
the swept keys (``FIGURES``): winning score vs threshold, vs training-set size, or grouped bars
(one bar per job, per test set) for anything else (an ablation). It runs at the end of every
multirun (``alpagasus.callbacks.SweepCallback``) and on demand: ``alpagasus-report DIR``.

Sections: ``SECTIONS`` lists optional extra parts of the report as "module:function". Each is
imported when a report is written, and skipped when its module is not installed; it is called
as ``section(results, sweep_dir)`` with the list of job results (the ``result.json``
dicts, plus ``status`` for jobs without one) and the sweep directory, may write its own files
(PNG) there, and returns markdown appended to ``sweep.md`` (an empty string: nothing).

Modules, one job each, importing downward: ``results`` (the job's result.json), ``collect``
(read a multirun's results back), ``tables`` (rows, sweep.csv, markdown), ``figures``,
``report`` (sweep.md, the sections, the console summary), ``wandb_logging`` (one W&B group
per sweep), ``cli`` (``alpagasus-report``). Their public names are re-exported here.
"""

from __future__ import annotations

from alpagasus.sweep.cli import main
from alpagasus.sweep.collect import expected_jobs, load_results, sweep_jobs
from alpagasus.sweep.figures import (
    FIGURES,
    FigureKind,
    LineAxis,
    figure_kind,
    figure_rows,
    plot,
    plot_bars,
    plot_lines,
)
from alpagasus.sweep.report import (
    CSV,
    MARKDOWN,
    SECTIONS,
    SweepReport,
    run_sections,
    summary,
    write_report,
)
from alpagasus.sweep.results import (
    FAILED,
    RESULT,
    RESULT_VERSION,
    STOP_STATUS,
    JobRecord,
    JobStatus,
    arms_summary,
    config_summary,
    copy_to_run_dir,
    error_info,
    hydra_job,
    job_result,
    process_rank,
    rating_summary,
    report_summary,
    status_of,
    training_summary,
    write_result,
)
from alpagasus.sweep.tables import (
    TABLE_FIELDS,
    jobs_table,
    markdown_table,
    parse_override,
    rows,
    swept_keys,
    write_csv,
)
from alpagasus.sweep.wandb_logging import (
    log_to_wandb,
    register_resolvers,
    sweep_group,
    wandb_group,
)

__all__ = [
    "CSV", "FAILED", "FIGURES", "MARKDOWN", "RESULT", "RESULT_VERSION", "SECTIONS", "STOP_STATUS",
    "TABLE_FIELDS", "FigureKind", "JobRecord", "JobStatus", "LineAxis", "SweepReport",
    "arms_summary", "config_summary", "error_info", "expected_jobs", "figure_kind",
    "copy_to_run_dir", "figure_rows", "hydra_job", "job_result", "jobs_table", "load_results", "log_to_wandb",
    "main", "markdown_table", "parse_override", "plot", "plot_bars", "plot_lines",
    "process_rank", "rating_summary", "register_resolvers", "report_summary", "rows",
    "run_sections", "status_of", "summary", "sweep_group", "sweep_jobs", "swept_keys",
    "training_summary", "wandb_group", "write_csv", "write_report", "write_result",
]
