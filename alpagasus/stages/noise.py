"""Stage `noise`: how much of a rating is the judge's own noise.

A seeded sample of distinct items (``noise.sample``, ``noise.seed``) is rated
``noise.repeats`` times by arm A's judge (arm B's when only B rates) with its prompt, at the
judge's temperature or ``noise.temperature``; with ``noise.perturb_order=true`` repeats 1..
show each item's instruction/input/response blocks in another seeded order. The figures
(alpagasus/noise.py): per-item spread, keep/drop flips at the arm's threshold, Krippendorff's
alpha across repeats, the expected overlap of two independently filtered sets.

Nothing is paid twice: each repeat is its own artifact (``noise_repeat/``), and an API judge's
requests for repeat r >= 1 carry ``noise_repeat: r`` in their reply-cache key, so a repeat is
a reply of its own yet rerunning (or raising ``noise.repeats``) sends only what is missing.
Repeat 0 at the judge's own temperature is exactly stage=rate's request: an API judge's
cached rating is reused, and for the local judge an existing rate artifact is read.

Output: noise.json, noise.md (printed) and noise.png in the artifact and in the run folder.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from alpagasus import noise
from alpagasus.arms import Arm
from alpagasus.artifacts import Artifact, artifact_key
from alpagasus.context import RunContext
from alpagasus.data import fingerprint
from alpagasus.judges import make_judge
from alpagasus.judges.engine import make_engine_options
from alpagasus.parsing import parse_rating
from alpagasus.prompts import ORDER_VERSION, rating_messages, rating_prompt, reordered
from alpagasus.selection import SelectionError
from alpagasus.stages import rate, select
from alpagasus.sweep import copy_to_run_dir

log = logging.getLogger(__name__)

NOISE_JSON = "noise.json"
NOISE_MD = "noise.md"
NOISE_PNG = "noise.png"
REPEAT_ROWS = rate.RATINGS  # read back with rate.read_ratings


def run(ctx: RunContext) -> Artifact:
    return ctx.once("noise", lambda: _run(ctx))


def judged_arm(ctx: RunContext) -> Arm:
    """Arm A when it rates with a judge, else arm B; neither: a clear stop."""
    for arm in ctx.arms.values():
        if arm.judge is not None:
            return arm
    raise SelectionError("stage=noise measures a judge, and neither arm rates with one "
                         f"({', '.join(a.method for a in ctx.arms.values())}): use a judge "
                         "filter, e.g. filter=local or filter=chatgpt")


def check(ctx: RunContext) -> None:
    """Up front: a judge to measure, and a note when its repeats cannot differ."""
    arm = judged_arm(ctx)
    judge_cfg = noise_judge(arm.judge, ctx.cfg.noise.temperature)
    if (judge_cfg.backend == "local" and judge_cfg.temperature == 0
            and not ctx.cfg.noise.perturb_order):
        log.warning("[noise] the local judge at temperature 0 is deterministic: every repeat "
                    "will give the same score. Set noise.temperature (e.g. 0.7) or "
                    "noise.perturb_order=true to measure its noise")


def noise_judge(judge_cfg: Any, temperature: float | None) -> Any:
    """The judge at ``noise.temperature`` (None: unchanged)."""
    if temperature is None:
        return judge_cfg
    return OmegaConf.merge(judge_cfg, {"temperature": float(temperature)})


def _run(ctx: RunContext) -> Artifact:
    cfg, ncfg = ctx.cfg, ctx.cfg.noise
    arm = judged_arm(ctx)
    judge_cfg = noise_judge(arm.judge, ncfg.temperature)
    template = rating_prompt(arm.prompt)
    firsts, _ = select.unique_positions(ctx.items)
    positions = noise.sample_positions(len(firsts), ncfg.sample, ncfg.seed)
    indices = [firsts[p] for p in positions]  # data index of each sampled distinct item
    sample_key = fingerprint([{"data": ctx.data_key, "indices": indices}])[:16]
    threshold = float(arm.threshold if arm.threshold is not None else cfg.threshold)
    shared = noise.repeat_shares_rating(0, arm.judge.temperature, ncfg.temperature)
    log.info("[noise] %d items x %d repeats with judge %s at temperature %g: %d requests, "
             "%s (cached replies are not sent again)", len(indices), ncfg.repeats,
             judge_cfg.name, judge_cfg.temperature, len(indices) * ncfg.repeats,
             f"{len(indices)} of them stage=rate's own" if shared else "none shared with stage=rate")
    repeats = [_repeat(ctx, arm, judge_cfg, template, indices, sample_key, r)
               for r in range(int(ncfg.repeats))]
    setup = {"judge": judge_cfg.name, "model": judge_cfg.model, "prompt": template.name,
             "temperature": float(judge_cfg.temperature),
             "judge_temperature": ncfg.temperature is None,
             "perturb_order": bool(ncfg.perturb_order), "sample": len(indices),
             "seed": int(ncfg.seed), "threshold": threshold,
             "repeat0_shared": shared}
    config = {"version": noise.NOISE_ANALYSIS_VERSION, "setup": setup}
    inputs = {f"repeat_{r}": a.key for r, a in enumerate(repeats)}

    def build(workdir: Path) -> dict[str, Any]:
        rows = [rate.read_ratings(a) for a in repeats]
        scores = [[rows[r][i]["score"] for r in range(len(rows))] for i in range(len(indices))]
        result = {"setup": setup, **noise.analyze(scores, threshold)}
        for row, index in zip(result["per_item"], indices, strict=True):
            row["index"] = index
        (workdir / NOISE_JSON).write_text(json.dumps(result, indent=2, ensure_ascii=False))
        (workdir / NOISE_MD).write_text(noise.to_markdown(result))
        plot_noise(result, workdir / NOISE_PNG)
        return headline(result)

    artifact = ctx.store.ensure("noise", config, inputs, build)
    print("\n" + (artifact.path / NOISE_MD).read_text())
    copied = copy_to_run_dir(artifact.path, (NOISE_JSON, NOISE_MD, NOISE_PNG))
    print(f"files: {copied or artifact.path}")
    ctx.tracker.log_image("noise/plot", artifact.path / NOISE_PNG)
    return ctx.finish_stage(artifact)


def headline(result: dict[str, Any]) -> dict[str, Any]:
    """The manifest's counts (and W&B metrics): the figures as flat numbers."""
    s, f, o = result["spread"], result["flips"], result["overlap"]
    return {"items": result["items"], "repeats": result["repeats"],
            "mean_std": s["mean_std"], "mean_range": s["mean_range"], "varied": s["varied"],
            "flip_rate": f["items_flipping"], "pairwise_flip_rate": f["pairwise"],
            "alpha": result["alpha"]["alpha"], "jaccard_observed": o["jaccard_observed"],
            "kept_again_observed": o["kept_again_observed"],
            "jaccard_expected": o["jaccard_expected"],
            "identical_repeats": result["identical_repeats"]}


def local_seed(seed: int, repeat: int) -> int:
    """The local judge's sampling seed for one repeat (distinct per repeat and noise.seed)."""
    return int(seed) * 100_003 + repeat


def _repeat(ctx: RunContext, arm: Arm, judge_cfg: Any, template: Any, indices: list[int],
            sample_key: str, repeat: int) -> Artifact:
    ncfg = ctx.cfg.noise
    shared = noise.repeat_shares_rating(repeat, arm.judge.temperature, ncfg.temperature)
    local = judge_cfg.backend == "local"
    perturbed = bool(ncfg.perturb_order) and repeat > 0
    orders = [noise.field_order(ncfg.seed, i, repeat, bool(ncfg.perturb_order)) for i in indices]
    seed = local_seed(ncfg.seed, repeat) if local and judge_cfg.temperature > 0 else None
    config = {**rate.judge_prompt_identity(judge_cfg, template), "repeat": repeat,
              "shares_rating": shared,
              "orders": {"version": ORDER_VERSION, "seed": int(ncfg.seed)} if perturbed else None,
              "seed": seed}

    def build(workdir: Path) -> dict[str, Any]:
        rows = _from_rating(ctx, arm, template, indices) if shared and local else None
        if rows is None:
            rows = _rate(ctx, judge_cfg, template, indices, orders, repeat, shared, seed)
        with open(workdir / REPEAT_ROWS, "w") as f:
            f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        return {"items": len(rows), "rated": sum(r["score"] is not None for r in rows),
                "cached": sum(bool(r["cached"]) for r in rows), "source": rows[0]["source"]
                if rows else None}

    return ctx.store.ensure("noise_repeat", config, {"data": ctx.data_key, "sample": sample_key},
                            build, meta={"repeat": repeat})


def _from_rating(ctx: RunContext, arm: Arm, template: Any,
                 indices: list[int]) -> list[dict[str, Any]] | None:
    """The sampled items' rows of an existing rate artifact of this judge (local judge)."""
    key = artifact_key(rate.rate_config(arm.judge, template), {"data": ctx.data_key})
    found = ctx.store.find("rate", key)
    if found is None:
        return None
    log.info("[noise] repeat 0: the rating in %s", found.path)
    rows = rate.read_ratings(found)
    return [{"index": i, "order": list(noise.FIELDS), "score": rows[i]["score"],
             "status": rows[i]["status"], "reply": rows[i]["reply"],
             "source": f"rate/{found.key}", "cached": True} for i in indices]


def _rate(ctx: RunContext, judge_cfg: Any, template: Any, indices: list[int],
          orders: list[tuple[str, ...]], repeat: int, shared: bool,
          seed: int | None) -> list[dict[str, Any]]:
    cfg = ctx.cfg
    requests = [rating_messages(reordered(template, order), ctx.items[i])
                for i, order in zip(indices, orders, strict=True)]
    # Repeat 0 at the judge's settings asks exactly what stage=rate asks (its cached reply);
    # every other repeat is a reply of its own in the cache.
    judge = make_judge(judge_cfg, ctx.cache_dir, cfg.paths.judge_cache,
                       make_engine_options(cfg.rate, cfg.paths.judge_cache_journal),
                       variant=None if shared else {"noise_repeat": repeat}, seed=seed)
    try:
        replies = judge.complete(requests, "rating", desc=f"noise repeat {repeat}")
    finally:
        judge.close()
    rows = []
    for i, order, reply in zip(indices, orders, replies, strict=True):
        parsed = parse_rating(reply.text, dimension=template.criterion,
                              revision=str(judge_cfg.revision_policy)) \
            if reply.status == "ok" else None
        rows.append({"index": i, "order": list(order),
                     "score": parsed.score if parsed else None,
                     "status": parsed.status if parsed else reply.status,
                     "reply": reply.text, "source": reply.source, "cached": reply.cached})
    return rows


def plot_noise(result: dict[str, Any], path: Path) -> None:
    """Left: each item's scores across repeats (sorted by mean), the threshold as a line.
    Right: how many items have each per-item range."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    setup = result["setup"]
    items = sorted((r for r in result["per_item"] if r["mean"] is not None),
                   key=lambda r: r["mean"])
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8),
                                      gridspec_kw={"width_ratios": [2, 1]})
    for x, row in enumerate(items):
        got = [s for s in row["scores"] if s is not None]
        left.vlines(x, min(got), max(got), color="#999999", linewidth=1)
        left.scatter([x] * len(got), got, s=10, color="#4c72b0", alpha=0.6)
    left.axhline(setup["threshold"], color="#c44e52", linestyle="--", linewidth=1,
                 label=f"threshold {setup['threshold']:g}")
    left.set_xlabel("item (sorted by mean score)")
    left.set_ylabel("score")
    left.legend(fontsize=8, loc="upper left")
    ranges = result["spread"]["ranges"]
    bars = right.bar(range(len(ranges)), list(ranges.values()), color="#55a868")
    right.set_xticks(range(len(ranges)), list(ranges))
    right.bar_label(bars, fontsize=8)
    right.set_xlabel("per-item range (max - min)")
    right.set_ylabel("items")
    alpha = result["alpha"]["alpha"]
    flips = result["flips"]["items_flipping"]
    fig.suptitle(f"{setup['judge']} ({setup['model']}), T={setup['temperature']:g}"
                 f"{', orders perturbed' if setup['perturb_order'] else ''}: "
                 f"{result['items']} items x {result['repeats']} repeats, alpha "
                 f"{'n/a' if alpha is None else f'{alpha:.3f}'}, flips "
                 f"{'n/a' if flips is None else f'{100 * flips:.1f}%'}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
