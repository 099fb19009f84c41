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

# CONF_DIR (re-exported): shipped inside the package, so a wheel install finds it.
from alpagasus.conf import CONF_DIR as CONF_DIR
from alpagasus.config import register_configs
from alpagasus.context import RunContext
from alpagasus.errors import register_resolvers, run_cli
from alpagasus.help import register_resolvers as register_help_resolvers
from alpagasus.planning import fit
from alpagasus.selection import get_strategy
from alpagasus.shipped import register_resolver as register_shipped_resolver
from alpagasus.stages import STAGES, generate, rate, train_checks
from alpagasus.sweep import JobRecord
from alpagasus.sweep import register_resolvers as register_sweep_resolvers
from alpagasus.tracking import Tracker
from alpagasus.validation import validate

log = logging.getLogger("alpagasus")

register_configs()
register_resolvers()  # ${alpagasus.run_id:} in conf/config.yaml's run folders
register_sweep_resolvers()  # ${alpagasus.sweep_group:}: one W&B group per sweep
register_help_resolvers()  # the stage and experiment lists of `alpagasus --help`
register_shipped_resolver()  # ${alpagasus.shipped:testsets}: the test sets in the package


def run(cfg: DictConfig) -> float | None:
    """Run the target stage (and what it needs); return the winning score if judged.

    In a Hydra job, result.json (alpagasus/sweep.py) records how it went, failures included."""
    with JobRecord(cfg) as record:
        return _run(cfg, record)


def _run(cfg: DictConfig, record: JobRecord) -> float | None:
    # Every check that needs no data: types, ranges, modes, URLs, sizes (alpagasus/config),
    # then the registries' (alpagasus/validation.py): prompt names, strategies, benchmarks.
    validate(cfg)
    spec = STAGES[getattr(cfg.stage, "value", cfg.stage)]
    if spec.trains:
        train_checks.validate(cfg)
    if spec.trains or spec.loads_models:
        # Before any download or load: refuse a step that cannot fit this machine.
        fit.check(cfg, spec.name, trains=spec.trains, generates=spec.needs_testsets)
    _warn_demo_threshold(cfg)
    store = ArtifactStore(cfg.paths.artifacts, cfg.paths.lock, cfg.paths.lock_timeout_s)
    ctx = record.ctx = RunContext(cfg=cfg, store=store, tracker=Tracker.off())
    if spec.plans:  # spends nothing: what is missing is listed in the plan, not raised
        spec.target(ctx)
        return None
    # Then every input the target needs, before any model is loaded or API called.
    for arm in ctx.arms.values():
        get_strategy(arm.method).check_data(arm, len(ctx.items))
    if spec.needs_testsets:
        _ = ctx.testsets
    if cfg.rate.import_path:
        rate.read_import_file(Path(cfg.rate.import_path).expanduser())
    if spec.trains:
        # LoRA targets and context length from the model's config: still no weights loaded,
        # and before rating, so a typo does not cost a rating pass first.
        train_checks.preflight(cfg, ctx.cache_dir)
    if spec.needs_testsets:  # the stages that generate: can the generator run here?
        generate.preflight(cfg)
    if spec.check is not None:
        spec.check(ctx)
    # Only once the inputs are known good: a bad file leaves no W&B run behind either.
    ctx.tracker = Tracker(cfg.logger, OmegaConf.to_container(cfg, resolve=True, enum_to_str=True),
                          cfg.paths.wandb)
    try:
        spec.target(ctx)
        reused = sum(a.reused for a in ctx.done.values())
        log.info("done: %d artifacts, %d reused, %d built", len(ctx.done), reused,
                 len(ctx.done) - reused)
        if "report" in ctx.done:
            return ctx.done["report"].counts.get("winning_score")
        return None
    finally:
        ctx.tracker.finish()


def _warn_demo_threshold(cfg: DictConfig) -> None:
    """filter=local sets the embedded judge's demo threshold (1.5): say so when another judge
    was picked with `judge=` alone, which keeps that threshold."""
    if cfg.filter.name == "local" and cfg.judge.name != "local" and cfg.threshold == 1.5:
        log.warning("judge=%s with filter=local keeps the embedded demo's threshold 1.5; for "
                    "a real judge use filter=%s (threshold 4.5) or set threshold=",
                    cfg.judge.name, "openai_compatible" if cfg.judge.backend == "openai"
                    else cfg.judge.name)


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    # Our errors print as a line or two plus a fix, exit 1 (2: budget or provider stops);
    # HYDRA_FULL_ERROR=1 or ALPAGASUS_VERBOSE=1 shows the traceback (alpagasus/errors.py).
    # A job counts as started once it opened its W&B run (after every input check): one that
    # failed before leaves no run folder. errors.py asks us; it knows nothing of tracking.
    opened = Tracker.opened
    return run_cli(run, cfg, started=lambda: Tracker.opened != opened)


if __name__ == "__main__":
    main()
