"""Weights & Biases logging: one W&B run per alpagasus job, each stage under its own prefix.

Offline by default (files under ``paths.wandb``); ``logger.mode=online`` once logged in.
W&B credentials stay in the environment (WANDB_API_KEY / ``wandb login``), never in a file of
ours. The config logged is the resolved Hydra config, which by construction holds no secret:
judges name the *environment variable* of their key, never the key.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any, ClassVar

from alpagasus.config import LoggerConfig
from alpagasus.errors import exit_code_for

log = logging.getLogger(__name__)


class Tracker:
    """One job's W&B run. Create it only once the job's inputs are validated: a job refused
    for bad input then leaves no run behind, and ``opened`` tells the CLI that it was refused
    before any work started."""

    opened: ClassVar[int] = 0  # real trackers created in this process (Tracker.off() excluded)

    def __init__(self, cfg: LoggerConfig, run_config: dict[str, Any], wandb_dir: str | Path,
                 name: str | None = None):
        self.run = None
        Tracker.opened += 1
        # Under accelerate launch every rank runs the job; only rank 0 keeps a W&B run.
        if not cfg.enabled or cfg.mode == "disabled" or int(os.environ.get("RANK", "0")) != 0:
            return
        import wandb

        Path(wandb_dir).mkdir(parents=True, exist_ok=True)
        os.environ.setdefault("WANDB_SILENT", "true")
        self.run = wandb.init(
            project=cfg.project,
            entity=cfg.entity,
            mode=cfg.mode,
            dir=str(wandb_dir),
            group=cfg.group,
            tags=list(cfg.tags),
            name=name,
            config=run_config,
            reinit="finish_previous",
            settings=wandb.Settings(console="off", x_disable_stats=True),
        )
        log.info("W&B %s run %s in %s", cfg.mode, self.run.id, self.run.dir)

    @classmethod
    def off(cls) -> Tracker:
        tracker = cls.__new__(cls)
        tracker.run = None
        return tracker

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.finish(exit_code_for(exc))

    @property
    def enabled(self) -> bool:
        return self.run is not None

    def log_stage(self, stage: str, metrics: dict[str, Any], reused: bool) -> None:
        if not self.run:
            return
        flat = {f"{stage}/{k}": v for k, v in metrics.items() if isinstance(v, int | float)}
        flat[f"{stage}/reused"] = int(reused)
        self.run.log(flat)
        self.run.summary.update(flat)

    def log_image(self, key: str, path: Path) -> None:
        if self.run:
            import wandb

            self.run.log({key: wandb.Image(str(path))})

    def log_table(self, key: str, columns: list[str], rows: list[list[Any]]) -> None:
        if self.run:
            import wandb

            self.run.log({key: wandb.Table(columns=columns, data=rows)})

    def trainer_callback(self, prefix: str):
        """A transformers TrainerCallback logging the Trainer's metrics under ``prefix``."""
        from transformers import TrainerCallback

        tracker = self

        class _Forward(TrainerCallback):
            def on_log(self, args, state, control, logs=None, **kwargs):
                if logs and tracker.run:
                    tracker.run.log({f"{prefix}/{k}": v for k, v in logs.items()
                                     if isinstance(v, int | float)}
                                    | {f"{prefix}/global_step": state.global_step})

        return _Forward()

    def finish(self, exit_code: int | None = None) -> None:
        """Close the W&B run; a non-zero ``exit_code`` marks it failed.

        None: infer it from the exception being raised, if any, so a ``finally:`` block
        that calls ``finish()`` marks a failing job failed (budget stop 2, Ctrl-C 130, 1).
        """
        if self.run:
            if exit_code is None:
                exit_code = exit_code_for(sys.exc_info()[1])
            self.run.finish(exit_code=exit_code)
            self.run = None
