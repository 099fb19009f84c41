"""Stage `plan`: what the run would cost before anything is spent (alpagasus/planning).

``alpagasus stage=plan <overrides>`` plans this run's pipeline, prints a table and writes
plan.json and plan.md into the run directory. Under ``-m`` every job writes its own and the
multirun's end (alpagasus/callbacks.py) merges them into the study plan in the sweep
directory, counting shared work once. No API request, no model download or load, no W&B run.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

from alpagasus.context import RunContext
from alpagasus.planning import study
from alpagasus.planning.job import plan_job
from alpagasus.sweep import hydra_job

log = logging.getLogger(__name__)


def output_dir(ctx: RunContext) -> Path:
    """The Hydra run (or job) directory; outside Hydra, ``paths.root``/plan."""
    job = hydra_job()
    if job is not None and job.get("output_dir"):
        return Path(job["output_dir"])
    return Path(ctx.cfg.paths.root) / "plan"


def offline() -> None:
    """A plan asks no server: hub lookups (data, configs) read the local cache only. For this
    process, which plans and does nothing else."""
    os.environ["HF_HUB_OFFLINE"] = os.environ["HF_DATASETS_OFFLINE"] = "1"
    for module, attr in (("huggingface_hub.constants", "HF_HUB_OFFLINE"),
                         ("datasets.config", "HF_HUB_OFFLINE"),
                         ("datasets.config", "HF_DATASETS_OFFLINE")):
        if hasattr(sys.modules.get(module), attr):
            setattr(sys.modules[module], attr, True)


def run(ctx: RunContext) -> dict[str, Any]:
    offline()
    plan = plan_job(ctx)
    job = hydra_job() or {}
    plan["job"] = job.get("num") if job.get("mode") == "multirun" else None
    path = study.write(plan, output_dir(ctx))
    if job.get("mode") == "multirun":  # the sweep's end prints the merged study plan
        t = plan["totals"]
        log.info("plan of job %s: %d requests, $%.2f, %.2f GPU-hours, fits %s (%s)", plan["job"],
                 t["requests"], t["usd"], t["gpu_hours"], plan["fits"], path)
    else:
        print("\n" + study.markdown(plan) + f"\nwritten: {path} and {path.with_suffix('.md')}",
              flush=True)
    return plan
