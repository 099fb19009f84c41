"""Stage `analyze`: compare selections with each other and with a reference label set.

What is compared: this job's two arms, or with ``analyze.compare=[released,random,ifd,...]``
one selection per listed `filter` option, each composed with this job's other overrides
(size, seed, data, filter.path, ...) and selected like any arm (artifacts shared with every
other run). With ``analyze.reference=FILE`` (a released filtered file), each distinct data
item's membership in it is the reference label.

Output (alpagasus/analysis.py computes it): analysis.json, analysis.md (printed), and
overlap.png, scores.png (each scored selection's distribution), roc.png (against the
reference); the tables also go to W&B. Per selection: kept count, response length and share
with an input (and category, when the data has one) kept vs dropped, and against the
reference precision, recall and ROC AUC of the kept set, of the strategy's ranking and of
its raw scores. Per pair: overlap counts, Jaccard, Cohen's kappa; for two score sets
(two judges, a judge and IFD) Spearman's rho, kappa at each one's cutoff and the confusion
matrix; for judges, items kept at each of ``analyze.thresholds``. Exact duplicates count once.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from alpagasus import analysis
from alpagasus.arms import Arm
from alpagasus.artifacts import Artifact
from alpagasus.conf import CONF_DIR
from alpagasus.config import ConfigError
from alpagasus.context import RunContext
from alpagasus.selection import SelectionError, get_strategy
from alpagasus.selection.released import load_released, membership
from alpagasus.stages import select
from alpagasus.validation import validate

log = logging.getLogger(__name__)

ANALYSIS = "analysis.json"
REPORT = "analysis.md"
# Overrides of this job that do not carry over to a composed comparison.
_NOT_CARRIED = ("filter=", "stage=", "analyze.compare=", "+analyze.compare=")


@dataclass(frozen=True)
class Compared:
    ctx: RunContext
    arm: Arm


def run(ctx: RunContext) -> Artifact:
    return ctx.once("analyze", lambda: _run(ctx))


def compared(ctx: RunContext) -> list[Compared]:
    """The selections to compare: one per ``analyze.compare`` entry, else this job's arms.
    Every one is validated (config and data checks) before any is computed."""
    names = list(ctx.cfg.analyze.compare)
    if not names:
        return [Compared(ctx, arm) for arm in ctx.arms.values()]
    if len(set(names)) != len(names):
        raise SelectionError(f"analyze.compare={names}: a filter is listed twice")
    out = []
    for name in names:
        variant = RunContext(cfg=compose_variant(name), store=ctx.store, tracker=ctx.tracker)
        if variant.data_key != ctx.data_key:
            raise SelectionError(f"analyze.compare: filter={name} composes different data")
        arm = variant.arms["a"]
        get_strategy(arm.method).check_data(arm, len(ctx.items))
        out.append(Compared(variant, arm))
    return out


def compose_variant(filter_name: str) -> DictConfig:
    """This job's config with ``filter=filter_name``: composed again from the job's own
    overrides (Hydra records them), so a filter option's judge and threshold come with it."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    overrides: list[str] = []
    config_name = "config"
    if HydraConfig.initialized():
        overrides = [o for o in HydraConfig.get().overrides.task
                     if not o.lstrip("~+").startswith(_NOT_CARRIED)]
        config_name = HydraConfig.get().job.config_name or config_name
    overrides.append(f"filter={filter_name}")
    try:
        if GlobalHydra.instance().is_initialized():
            cfg = compose(config_name=config_name, overrides=overrides)
        else:
            with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
                cfg = compose(config_name=config_name, overrides=overrides)
        validate(cfg)
    except Exception as e:  # an unknown filter option, a bad override, a size it cannot take
        raise ConfigError(f"analyze.compare: filter={filter_name}: {e}") from e
    return cfg


def _reference(path: str | None, items) -> tuple[list[bool] | None, dict[str, Any] | None]:
    if not path:
        return None, None

    released, fp = load_released(path)
    labels, n_released, unmatched = membership(items, released)
    return labels, {"path": str(path), "fingerprint": fp, "released": n_released,
                    "positives": sum(labels), "unmatched": unmatched}


def _view(c: Compared, artifact: Artifact, firsts: list[int]) -> analysis.SelectionView:
    rows = select.read_selection(artifact)
    rows = [rows[i] for i in firsts]
    arm = c.arm
    strategy = get_strategy(arm.method)
    scores = [r["score"] for r in rows]
    has_scores = any(s is not None for s in scores)
    expected = [r.get("expected_score") for r in rows]
    ranked = any("rank_value" in r for r in rows)
    return analysis.SelectionView(
        name=arm.name, label=arm.label(artifact.counts.get("kept")), method=arm.method,
        kept=[bool(r["kept"]) for r in rows],
        scores=scores if has_scores else None,
        score_name=(f"{arm.judge.name if arm.judge is not None else arm.method} score"
                    if has_scores else None),
        judged=strategy.needs_judge,
        rank=[r.get("rank_value") for r in rows] if ranked else None,
        passes=[bool(r.get("passes")) for r in rows] if ranked else None,
        expected=expected if any(e is not None for e in expected) else None,
        threshold=arm.threshold if strategy.uses_threshold else None,
    )


def _run(ctx: RunContext) -> Artifact:
    cfg = ctx.cfg.analyze
    sources = compared(ctx)
    firsts, _ = select.unique_positions(ctx.items)
    unique = [ctx.items[i] for i in firsts]
    labels, reference = _reference(cfg.reference, unique)  # a bad file fails before selecting
    built: dict[str, tuple[Compared, Artifact]] = {}
    for c in sources:
        artifact = select.run(c.ctx, c.arm)
        built.setdefault(artifact.key, (c, artifact))  # filter=all baseline=all: once
        if c.ctx is not ctx:  # a composed comparison: its artifacts are this job's too
            for name, done in c.ctx.done.items():
                role = name.removeprefix("select/")
                if role in c.ctx.arms and name != role:
                    name = f"select/{c.ctx.arms[role].name}"
                ctx.done.setdefault(name, done)
    thresholds = [float(t) for t in cfg.thresholds]
    config = {"reference": reference and reference["fingerprint"], "thresholds": thresholds}
    inputs = {"data": ctx.data_key, "selections": ",".join(sorted(built))}

    def build(workdir: Path) -> dict[str, Any]:
        views = [_view(c, artifact, firsts) for c, artifact in built.values()]
        result = analysis.analyze(analysis.Features.of(unique), views, labels, thresholds,
                                  reference)
        (workdir / ANALYSIS).write_text(json.dumps(result, indent=2, ensure_ascii=False))
        (workdir / REPORT).write_text(analysis.to_markdown(result))
        if len(views) > 1:
            analysis.plot_overlap(result, workdir / "overlap.png")
        analysis.plot_scores(views, workdir / "scores.png")
        if labels is not None:
            analysis.plot_roc(views, labels, workdir / "roc.png")
        counts: dict[str, Any] = {"selections": len(views), "items": len(unique)}
        for row in result["selections"]:
            counts[f"{row['name']}/kept"] = row["kept"]
            for key, value in (row.get("reference") or {}).items():
                if isinstance(value, int | float):
                    counts[f"{row['name']}/{key}"] = value
        return counts

    artifact = ctx.store.ensure("analyze", config, inputs, build)
    print("\n" + (artifact.path / REPORT).read_text())
    print(f"files: {artifact.path}")
    result = json.loads((artifact.path / ANALYSIS).read_text())
    columns, rows = analysis.selections_table(result)
    ctx.tracker.log_table("analyze/selections", columns, rows)
    ctx.tracker.log_table("analyze/overlap", ["a", "b", "both", "only_a", "only_b", "jaccard",
                                              "kappa"],
                          [[o[k] for k in ("a", "b", "both", "only_a", "only_b", "jaccard",
                                           "kappa")] for o in result["overlap"]])
    for image in ("overlap.png", "scores.png", "roc.png"):
        if (artifact.path / image).is_file():
            ctx.tracker.log_image(f"analyze/{image.removesuffix('.png')}", artifact.path / image)
    return ctx.finish_stage(artifact)
