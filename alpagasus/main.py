"""The `alpagasus` entry point: one Hydra app; `stage=` picks the target.

A stage runs what it needs first, reusing every artifact that already exists, so
`stage=report` (alias `pipeline`, the default) is the whole rate -> select -> train ->
generate -> judge -> report chain, and rerunning it redoes nothing.
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from alpagasus.artifacts import ArtifactStore
from alpagasus.config import STAGES, register_configs
from alpagasus.context import RunContext
from alpagasus.errors import register_resolvers, run_cli
from alpagasus.tracking import Tracker

log = logging.getLogger("alpagasus")
CONF_DIR = str(Path(__file__).resolve().parent.parent / "conf")

register_configs()
register_resolvers()  # ${alpagasus.run_id:} in conf/config.yaml's run folders


def run(cfg: DictConfig) -> float | None:
    """Run the target stage (and what it needs); return the winning score if judged."""
    from alpagasus.stages import export, generate, judge, rate, report, select, train

    if cfg.stage not in STAGES:
        raise ValueError(f"stage must be one of {', '.join(STAGES)}, got '{cfg.stage}'")
    # Validate every input the target needs before any model is loaded or API called.
    needs_tests = cfg.stage in ("generate", "judge", "report", "pipeline")
    needs_train = cfg.stage not in ("rate", "select")
    if needs_train:
        train.validate(cfg)
    ctx = RunContext(cfg=cfg, store=ArtifactStore(cfg.paths.artifacts), tracker=Tracker.off())
    _ = ctx.items
    if needs_tests:
        _ = ctx.testsets
    if needs_train:
        # LoRA targets and context length from the model's config: still no weights loaded,
        # and before rating, so a typo does not cost a rating pass first.
        train.preflight(cfg, ctx.cache_dir)
    # Only once the inputs are known good: a bad file leaves no W&B run behind either.
    ctx.tracker = Tracker(cfg.logger, OmegaConf.to_container(cfg, resolve=True), cfg.paths.wandb)
    try:
        targets = {
            "rate": lambda: rate.run(ctx),
            "select": lambda: select.run(ctx),
            "train": lambda: (train.run(ctx, "selected"), train.run(ctx, "full")),
            "export": lambda: export.run(ctx),
            "generate": lambda: (generate.run(ctx, "selected"), generate.run(ctx, "full")),
            "judge": lambda: judge.run(ctx),
            "report": lambda: report.run(ctx),
            "pipeline": lambda: report.run(ctx),
        }
        targets[cfg.stage]()
        reused = sum(a.reused for a in ctx.done.values())
        log.info("done: %d artifacts, %d reused, %d built", len(ctx.done), reused,
                 len(ctx.done) - reused)
        if "report" in ctx.done:
            return ctx.done["report"].counts.get("winning_score")
        return None
    finally:
        ctx.tracker.finish()


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def main(cfg: DictConfig) -> float | None:
    # Our errors print as a line or two plus a fix, exit 1 (2: budget or provider stops);
    # HYDRA_FULL_ERROR=1 or ALPAGASUS_VERBOSE=1 shows the traceback (alpagasus/errors.py).
    return run_cli(run, cfg)


if __name__ == "__main__":
    main()
