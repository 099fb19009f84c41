"""Stage `select`: an arm's training set, chosen by its registered strategy (alpagasus/selection).

Output: selected.json (Alpaca format, data order), selection.jsonl (per item: index, score,
kept; for strategies that rank, rank_value and passes, read by stage=analyze; duplicate_of
for an exact duplicate of an earlier item), unparsed.jsonl (items without a score: a rating
that could not be read, with the reply). Exact duplicates are collapsed before the strategy
chooses (``duplicates`` in the manifest). The key holds the strategy's own key, the resolved
size and its inputs (data, ratings), not the arm's role, so two comparisons that need the
same training set share it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from alpagasus.arms import Arm
from alpagasus.artifacts import Artifact
from alpagasus.context import RunContext
from alpagasus.data import Item, fingerprint
from alpagasus.selection import SelectionError, get_strategy, item_text

SELECTED = "selected.json"

__all__ = ["SelectionError", "items_key", "run", "read_selected", "read_selection",
           "resolve_size", "unique_positions"]


def run(ctx: RunContext, arm: Arm) -> Artifact:
    return ctx.once(f"select/{arm.role}", lambda: _run(ctx, arm))


def resolve_size(ctx: RunContext, arm: Arm) -> int | None:
    """size=match: the number of items the other arm keeps (its selection runs first)."""
    if arm.size != "match":
        return arm.size
    other = ctx.arms[arm.other]
    return run(ctx, other).counts["kept"]


def unique_positions(items: list[Item]) -> tuple[list[int], list[int]]:
    """(index of each distinct item's first occurrence, in data order; for every item, the
    position of its content among those)."""
    first: dict[str, int] = {}
    where = []
    for item in items:
        where.append(first.setdefault(item_text(item), len(first)))
    firsts = [0] * len(first)
    for i in reversed(range(len(items))):
        firsts[where[i]] = i
    return firsts, where


def selection_spec(arm: Arm, size: Any, data_key: str,
                   upstream: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The select artifact's (config, inputs); stage=plan uses it too."""
    config = {"method": arm.method, **get_strategy(arm.method).key(arm), "size": size}
    return config, {"data": data_key, **upstream}


def _run(ctx: RunContext, arm: Arm) -> Artifact:
    strategy = get_strategy(arm.method)
    size = resolve_size(ctx, arm)
    upstream = strategy.inputs(ctx, arm)
    config, inputs = selection_spec(arm, size, ctx.data_key,
                                    {name: a.key for name, a in upstream.items()})
    items = ctx.items

    def build(workdir: Path) -> dict[str, Any]:
        # Exact duplicates are collapsed first: a strategy sees each distinct item once (its
        # first occurrence), and a duplicate is never trained on twice.
        firsts, where = unique_positions(items)
        unique = [items[i] for i in firsts]
        rows = strategy.scores(upstream)
        unique_rows = None if rows is None else [{**rows[i], "index": pos}
                                                 for pos, i in enumerate(firsts)]
        if isinstance(size, int) and size > len(unique):
            raise SelectionError(f"arm {arm.role} ({arm.label()}): size={size} but the data "
                                 f"has {len(unique)} distinct items "
                                 f"({len(items) - len(unique)} exact duplicates collapsed)")
        kept = sorted(firsts[p] for p in strategy.choose(arm, unique, unique_rows, size))
        if not kept:
            raise SelectionError(
                f"arm {arm.role} ({arm.label()}): no item kept of {len(items)}; lower the "
                "threshold or check the ratings histogram"
            )
        kept_set = set(kept)
        ranking = strategy.ranking(arm, unique, unique_rows)
        (workdir / SELECTED).write_text(
            json.dumps([items[i].to_dict() for i in kept], indent=1, ensure_ascii=False)
        )
        with open(workdir / "selection.jsonl", "w") as f:
            for i in range(len(items)):
                row: dict[str, Any] = {"index": i, "score": rows[i]["score"] if rows else None,
                                       "kept": i in kept_set}
                if rows and rows[i].get("expected_score") is not None:
                    row["expected_score"] = rows[i]["expected_score"]
                if ranking is not None:
                    row["rank_value"] = ranking.values[where[i]]
                    row["passes"] = ranking.passes[where[i]]
                if firsts[where[i]] != i:
                    row["duplicate_of"] = firsts[where[i]]
                f.write(json.dumps(row) + "\n")
        unparsed = [r for r in rows or [] if r["score"] is None]
        with open(workdir / "unparsed.jsonl", "w") as f:
            for r in unparsed:
                f.write(json.dumps({"index": r["index"], "status": r["status"],
                                    "reply": r.get("reply"), **items[r["index"]].to_dict()},
                                   ensure_ascii=False) + "\n")
        return {"items": len(items), "unique": len(unique),
                "duplicates": len(items) - len(unique), "kept": len(kept),
                "unparsed": len(unparsed), "kept_fraction": round(len(kept) / len(items), 4),
                **strategy.counts(arm, unique, unique_rows),
                # data.empty_policy: items with an empty instruction/output, dropped or kept
                "empty_items": len(ctx.loaded.empty), "dropped_items": len(ctx.loaded.dropped)}

    artifact = ctx.store.ensure("select", config, inputs, build, meta={"arm": arm.describe()})
    return ctx.finish_stage(artifact, name=f"select/{arm.name}")


def read_selected(artifact: Artifact) -> list[dict[str, str]]:
    return json.loads((artifact.path / SELECTED).read_text())


def items_key(selected: list[dict[str, str]]) -> str:
    """The content key of a training set (selected.json's items, in order): what training is
    keyed by, so two selections of the same items train one model."""
    return fingerprint(selected)[:16]


def read_selection(artifact: Artifact) -> list[dict[str, Any]]:
    """selection.jsonl: one row per data item."""
    with open(artifact.path / "selection.jsonl") as f:
        return [json.loads(line) for line in f]
