"""Stage `select`: keep the items rated >= threshold (at most `size`), or a random sample.

Output: selected.json (Alpaca format, data order), selection.jsonl (index, score, kept),
unparsed.jsonl (items whose rating could not be read, with the reply).
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from alpagasus.artifacts import Artifact
from alpagasus.context import RunContext
from alpagasus.errors import AlpagasusError
from alpagasus.stages import rate

SELECTED = "selected.json"


class SelectionError(AlpagasusError, ValueError):
    pass


def choose_by_score(
    ratings: list[dict[str, Any]], threshold: float, size: int | None, include_unparsed: bool
) -> list[int]:
    """Indices kept: score >= threshold, best first when capped at ``size``, data order."""
    passing = [r for r in ratings if r["score"] is not None and r["score"] >= threshold]
    if include_unparsed:
        passing += [r for r in ratings if r["score"] is None]
    if size is not None and len(passing) > size:
        # Stable sort: among equal scores the earlier item wins, so the cut is reproducible.
        passing = sorted(passing, key=lambda r: -(r["score"] if r["score"] is not None else -1))[:size]
    return sorted(r["index"] for r in passing)


def choose_random(n_items: int, size: int, seed: int) -> list[int]:
    if size > n_items:
        raise SelectionError(f"size={size} is larger than the data ({n_items} items)")
    return sorted(random.Random(seed).sample(range(n_items), size))


def run(ctx: RunContext) -> Artifact:
    return ctx.once("select", lambda: _run(ctx))


def _run(ctx: RunContext) -> Artifact:
    cfg = ctx.cfg
    method = cfg.filter.method
    if method == "random":
        if cfg.size is None:
            raise SelectionError("filter=random needs size=N (e.g. size=9229 for the paper's random 9k)")
        config = {"method": "random", "size": cfg.size, "seed": cfg.seed}
        inputs = {"data": ctx.data_key}
        ratings = None
    elif method == "judge":
        if cfg.filter.unparsed_policy not in ("exclude", "include"):
            raise SelectionError("filter.unparsed_policy must be exclude or include")
        config = {"method": "judge", "threshold": cfg.threshold, "size": cfg.size,
                  "unparsed_policy": cfg.filter.unparsed_policy}
        rated = rate.run(ctx)
        inputs = {"ratings": rated.key}
        ratings = rate.read_ratings(rated)
    else:
        raise SelectionError(f"unknown filter.method '{method}' (judge | random)")

    def build(workdir: Path) -> dict[str, Any]:
        if ratings is None:
            kept = choose_random(len(ctx.items), cfg.size, cfg.seed)
        else:
            kept = choose_by_score(ratings, cfg.threshold, cfg.size,
                                   cfg.filter.unparsed_policy == "include")
        if not kept:
            raise SelectionError(
                f"no item passes threshold {cfg.threshold} (of {len(ctx.items)}); "
                "lower the threshold or check the ratings histogram"
            )
        kept_set = set(kept)
        (workdir / SELECTED).write_text(
            json.dumps([ctx.items[i].to_dict() for i in kept], indent=1, ensure_ascii=False)
        )
        with open(workdir / "selection.jsonl", "w") as f:
            for i in range(len(ctx.items)):
                score = ratings[i]["score"] if ratings else None
                f.write(json.dumps({"index": i, "score": score, "kept": i in kept_set}) + "\n")
        unparsed = [r for r in ratings or [] if r["score"] is None]
        with open(workdir / "unparsed.jsonl", "w") as f:
            for r in unparsed:
                f.write(json.dumps({"index": r["index"], "status": r["status"],
                                    "reply": r["reply"], **ctx.items[r["index"]].to_dict()},
                                   ensure_ascii=False) + "\n")
        return {"items": len(ctx.items), "kept": len(kept), "unparsed": len(unparsed),
                "kept_fraction": round(len(kept) / len(ctx.items), 4)}

    artifact = ctx.store.ensure("select", config, inputs, build)
    return ctx.finish_stage(artifact)


def read_selected(artifact: Artifact) -> list[dict[str, str]]:
    return json.loads((artifact.path / SELECTED).read_text())
