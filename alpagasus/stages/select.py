"""Stage `select`: an arm's training set, chosen by its registered strategy (alpagasus/selection).

Output: selected.json (Alpaca format, data order), selection.jsonl (index, score, kept),
unparsed.jsonl (items whose rating could not be read, with the reply). The key holds the
strategy's own key, the resolved size and its inputs (data, ratings), not the arm's role, so
two comparisons that need the same training set share it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from alpagasus.arms import Arm
from alpagasus.artifacts import Artifact
from alpagasus.context import RunContext
from alpagasus.selection import SelectionError, get_strategy

SELECTED = "selected.json"

__all__ = ["SelectionError", "run", "read_selected", "resolve_size"]


def run(ctx: RunContext, arm: Arm) -> Artifact:
    return ctx.once(f"select/{arm.role}", lambda: _run(ctx, arm))


def resolve_size(ctx: RunContext, arm: Arm) -> int | None:
    """size=match: the number of items the other arm keeps (its selection runs first)."""
    if arm.size != "match":
        return arm.size
    other = ctx.arms[arm.other]
    return run(ctx, other).counts["kept"]


def _run(ctx: RunContext, arm: Arm) -> Artifact:
    strategy = get_strategy(arm.method)
    size = resolve_size(ctx, arm)
    upstream = strategy.inputs(ctx, arm)
    config = {"method": arm.method, **strategy.key(arm), "size": size}
    inputs = {"data": ctx.data_key, **{name: a.key for name, a in upstream.items()}}
    items = ctx.items

    def build(workdir: Path) -> dict[str, Any]:
        kept = strategy.choose(arm, items, upstream, size)
        if not kept:
            raise SelectionError(
                f"arm {arm.role} ({arm.label()}): no item kept of {len(items)}; lower the "
                "threshold or check the ratings histogram"
            )
        kept_set = set(kept)
        (workdir / SELECTED).write_text(
            json.dumps([items[i].to_dict() for i in kept], indent=1, ensure_ascii=False)
        )
        rows = strategy.scores(upstream)
        with open(workdir / "selection.jsonl", "w") as f:
            for i in range(len(items)):
                score = rows[i]["score"] if rows else None
                f.write(json.dumps({"index": i, "score": score, "kept": i in kept_set}) + "\n")
        unparsed = [r for r in rows or [] if r["score"] is None]
        with open(workdir / "unparsed.jsonl", "w") as f:
            for r in unparsed:
                f.write(json.dumps({"index": r["index"], "status": r["status"],
                                    "reply": r["reply"], **items[r["index"]].to_dict()},
                                   ensure_ascii=False) + "\n")
        return {"items": len(items), "kept": len(kept), "unparsed": len(unparsed),
                "kept_fraction": round(len(kept) / len(items), 4),
                # data.empty_policy: items with an empty instruction/output, dropped or kept
                "empty_items": len(ctx.loaded.empty), "dropped_items": len(ctx.loaded.dropped)}

    artifact = ctx.store.ensure("select", config, inputs, build, meta={"arm": arm.describe()})
    return ctx.finish_stage(artifact, name=f"select/{arm.name}")


def read_selected(artifact: Artifact) -> list[dict[str, str]]:
    return json.loads((artifact.path / SELECTED).read_text())
