"""`judge`: keep the items a judge rated >= threshold; `size` draws from them (seeded) or,
with `select.order=top`, keeps the best-scored (ties broken by a seeded hash of the item)."""

from __future__ import annotations

import json
import random
from typing import Any

from alpagasus.selection import Ranking, SelectionError, Strategy, register_strategy, seeded_order


@register_strategy
class JudgeFilter(Strategy):
    name = "judge"
    needs_judge = True
    uses_threshold = True

    def key(self, arm) -> dict[str, Any]:
        return {"threshold": arm.threshold, "unparsed_policy": arm.unparsed_policy,
                "order": arm.order, "seed": arm.seed}

    def inputs(self, ctx, arm):
        from alpagasus.stages import rate

        return {"ratings": rate.run(ctx, arm)}

    def scores(self, upstream):
        from alpagasus.stages import rate

        return rate.read_ratings(upstream["ratings"])

    def choose(self, arm, items, scores, size):
        texts = [json.dumps(it.to_dict(), sort_keys=True) for it in items]
        return choose_by_score(scores, arm.threshold, size, arm.unparsed_policy == "include",
                               arm.order, arm.seed, texts)

    def ranking(self, arm, items, scores):
        include = arm.unparsed_policy == "include"
        return Ranking([r["score"] for r in scores],
                       [(r["score"] is not None and r["score"] >= arm.threshold)
                        or (include and r["score"] is None) for r in scores])


def choose_by_score(ratings: list[dict[str, Any]], threshold: float, size: int | None,
                    include_unparsed: bool, order: str, seed: int,
                    texts: list[str]) -> list[int]:
    """Indices kept, in data order: score >= threshold, then `size` of them.

    order=draw: `size` drawn uniformly with `seed` (the paper's 3k/6k from the 9k);
    order=top: the `size` best-scored, ties broken by a seeded hash of the item's text, so
    the cut depends neither on file order nor on luck of the draw.
    """
    passing = [r["index"] for r in ratings
               if (r["score"] is not None and r["score"] >= threshold)
               or (include_unparsed and r["score"] is None)]
    if size is None or size >= len(passing):
        if size is not None and size > len(passing):
            raise SelectionError(f"size={size} but only {len(passing)} items pass threshold "
                                 f"{threshold}: lower the size or the threshold")
        return sorted(passing)
    if order == "top":
        score = {r["index"]: (r["score"] if r["score"] is not None else -1.0) for r in ratings}
        tie = seeded_order(seed, texts)
        return sorted(sorted(passing, key=lambda i: (-score[i], tie(i)))[:size])
    return sorted(random.Random(seed).sample(sorted(passing), size))
