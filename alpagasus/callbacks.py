"""The Hydra callback of every alpagasus run (``hydra.callbacks.sweep`` in conf/config.yaml).

* ``on_job_start``: in a job that submitit runs as several tasks (``tasks_per_node`` > 1 on
  SLURM, one per GPU), export the torch.distributed variables (RANK, WORLD_SIZE, LOCAL_RANK,
  MASTER_ADDR/PORT) from SLURM's, so the tasks train together as under ``torchrun``.
* ``on_job_end``: in a multirun, a failed job is logged with its error and, with
  ``keep_going`` (default), does not stop the sweep: Hydra would otherwise raise at the end of
  the batch and skip the report. Its result.json says it failed (main.run writes it; this
  callback writes one if the job failed before main.run could).
* ``on_multirun_end``: write the sweep report (alpagasus/sweep/: sweep.csv, sweep.md, the
  figure), print the table, log it once to W&B in the sweep's group, and exit with status 1
  if a job failed (a dry run or a pending provider batch is not a failure).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from alpagasus import sweep
from alpagasus.planning import study

log = logging.getLogger("alpagasus.sweep")


def is_multirun(config: DictConfig) -> bool:
    mode = OmegaConf.select(config, "hydra.mode")
    return getattr(mode, "name", str(mode)).upper() == "MULTIRUN"


def export_submitit_distributed() -> bool:
    """Under a submitit job of several tasks, export torch.distributed's env:// variables.
    Each task keeps every GPU of the node visible and uses the one of its LOCAL_RANK (what
    accelerate and the Trainer do under torchrun). False where there is nothing to do."""
    if not os.environ.get("SUBMITIT_EXECUTOR") or "RANK" in os.environ:
        return False
    import submitit

    env = submitit.JobEnvironment()
    if env.num_tasks <= 1:
        return False
    submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
    log.info("submitit task %d of %d (node %s): torch.distributed via env://", env.global_rank,
             env.num_tasks, env.hostname)
    return True


class SweepCallback(Callback):
    def __init__(self, keep_going: bool = True, wandb: bool = True, print_table: bool = True):
        self.keep_going = keep_going
        self.wandb = wandb
        self.print_table = print_table

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        export_submitit_distributed()

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if job_return.status != JobStatus.FAILED or not is_multirun(config):
            return
        error = job_return._return_value
        output_dir = Path(str(OmegaConf.select(config, "hydra.runtime.output_dir")))
        log.error("job %s failed (%s): %s: %s", OmegaConf.select(config, "hydra.job.num"),
                  " ".join(job_return.overrides or []), type(error).__name__, error,
                  exc_info=error if isinstance(error, BaseException)
                  and not getattr(error, "reported", False) else None)
        if not (output_dir / sweep.RESULT).is_file() and isinstance(error, BaseException):
            # Failed before main.run (e.g. in composing the job's config): record it here.
            sweep.write_result(output_dir, {
                "version": sweep.RESULT_VERSION, "status": sweep.JobStatus.failed.value,
                "error": sweep.error_info(error),
                "job": {"num": OmegaConf.select(config, "hydra.job.num"),
                        "overrides": list(job_return.overrides or []),
                        "output_dir": str(output_dir)}})
        if self.keep_going:
            # The sweep goes on and its report shows this job as failed; the exit status of
            # the whole multirun says so at the end (on_multirun_end).
            job_return.status = JobStatus.COMPLETED
            job_return.return_value = None

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if sweep.process_rank() != 0:
            # `torchrun -m alpagasus -m ...`: every rank runs the sweep; rank 0 reports it
            # (the others write no result.json, so their sweep would look failed).
            return
        sweep_dir = Path(str(config.hydra.sweep.dir))
        if str(OmegaConf.select(config, "stage")) in ("plan", "Stage.plan"):
            # -m ... stage=plan: the jobs' plans merged into the study plan, nothing run.
            plan = study.write_study_plan(sweep_dir)
            if plan is not None and self.print_table:
                print("\n" + study.markdown(plan, f"Study plan ({plan['jobs']} jobs)")
                      + f"\nwritten: {sweep_dir / study.PLAN_JSON}", flush=True)
            return
        report = sweep.write_report(sweep_dir)
        if self.print_table:
            print("\n" + sweep.summary(report), flush=True)
        if self.wandb and OmegaConf.select(config, "logger.enabled", default=False):
            try:
                sweep.log_to_wandb(report, config.logger, str(config.paths.wandb),
                                   sweep.wandb_group(sweep_dir))
            except Exception:  # the report on disk is what matters
                log.warning("could not log the sweep report to W&B", exc_info=True)
        if report.failed:
            log.error("%d of %d jobs failed (%s); see %s", report.failed,
                      len(report.results), ", ".join(f"{n} {s}" for s, n in report.counts.items()),
                      sweep_dir / sweep.MARKDOWN)
            sys.exit(1)
