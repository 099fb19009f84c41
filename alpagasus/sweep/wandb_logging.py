"""W&B: every job of a sweep and its report are one group, named after the sweep directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from alpagasus.config import LoggerConfig
from alpagasus.sweep.report import SweepReport
from alpagasus.sweep.results import hydra_job
from alpagasus.sweep.tables import _csv_value
from alpagasus.tracking import Tracker


def wandb_group(sweep_dir: str | Path) -> str:
    """The W&B group of every job of a sweep and of its report: the sweep directory."""
    text = str(sweep_dir)
    return text if len(text) <= 128 else "…" + text[-127:]


def sweep_group() -> str | None:
    """Resolver ``${alpagasus.sweep_group:}``: the sweep's W&B group in a multirun job, else
    None (a single run has no group)."""
    job = hydra_job()
    if job is None or job["mode"] != "multirun" or not job["sweep_dir"]:
        return None
    return wandb_group(job["sweep_dir"])


def register_resolvers() -> None:
    if not OmegaConf.has_resolver("alpagasus.sweep_group"):
        OmegaConf.register_new_resolver("alpagasus.sweep_group", sweep_group)


def log_to_wandb(report: SweepReport, logger_cfg: Any, wandb_dir: str | Path,
                 group: str) -> None:
    """Log the sweep's table and figure once, as one run of the sweep's W&B group."""
    logger = OmegaConf.merge(OmegaConf.structured(_logger_schema()), logger_cfg,
                             {"group": group})
    tracker = Tracker(logger, {"sweep_dir": str(report.sweep_dir), "swept": report.swept,
                               "jobs": report.counts}, wandb_dir, name="sweep-report")
    try:
        if not tracker.enabled:
            return
        columns: list[str] = []
        for row in report.table:
            columns += [k for k in row if k not in columns]
        tracker.log_table("sweep/table", columns,
                          [[_csv_value(row.get(c)) for c in columns] for row in report.table])
        if report.figure is not None:
            tracker.log_image(f"sweep/{report.figure.stem}", report.figure)
    finally:
        tracker.finish()


def _logger_schema() -> Any:
    return LoggerConfig(name="wandb")
