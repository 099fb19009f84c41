"""`ifd`: Superfiltering / Cherry's Instruction-Following Difficulty (stages/ifd.py): keep
items with IFD < 1 (the instruction helps predict the response), the highest IFD first, and
`size` of them. The scoring model is `filter.model` (baseline.model for arm B), else
`ifd.model` (default the embedded SmolLM2-135M); its scores are an artifact of their own,
reused by every selection and sweep that needs them. Ties are broken by a fixed hash of the
item's text."""

from __future__ import annotations

from typing import Any

from alpagasus.selection import (
    Ranking,
    SelectionError,
    Strategy,
    item_text,
    register_strategy,
    seeded_order,
)
from alpagasus.stages import ifd

# IFD >= 1: the response is no easier to predict with the instruction than without.
MAX_IFD = 1.0


@register_strategy
class IFDFilter(Strategy):
    name = "ifd"

    def inputs(self, ctx, arm):
        return {"ifd": ifd.run(ctx, arm.model)}

    def scores(self, upstream):
        return ifd.read_scores(upstream["ifd"])

    def choose(self, arm, items, scores, size):
        return choose_by_ifd(scores, size, [item_text(it) for it in items])

    def ranking(self, arm, items, scores):
        passes = [_passes(r["score"]) for r in scores]
        return Ranking([r["score"] if ok else None for r, ok in zip(scores, passes, strict=True)],
                       passes)

    def counts(self, arm, items, scores):
        return {"ifd_below_1": sum(_passes(r["score"]) for r in scores),
                "ifd_unscored": sum(r["score"] is None for r in scores)}


def _passes(score: float | None) -> bool:
    return score is not None and score < MAX_IFD


def choose_by_ifd(scores: list[dict[str, Any]], size: int | None, texts: list[str]) -> list[int]:
    """Indices with IFD < 1, the ``size`` highest (all when size is None), in data order."""
    passing = [r["index"] for r in scores if _passes(r["score"])]
    if size is None:
        return sorted(passing)
    if size > len(passing):
        raise SelectionError(f"size={size} but only {len(passing)} items have IFD < 1 "
                             f"(of {len(scores)}): lower the size")
    score = {r["index"]: r["score"] for r in scores}
    tie = seeded_order(0, texts)
    return sorted(sorted(passing, key=lambda i: (-score[i], tie(i)))[:size])
