"""`judge`: keep the items a judge rated >= threshold; `size` draws from them (seeded) or,
with `select.order=top`, keeps the best-scored (ties broken by a seeded hash of the item).
`select.score=expected` reads each row's expected score instead of the parsed one."""

from __future__ import annotations

import json
import random
from typing import Any

from alpagasus.selection import Ranking, SelectionError, Strategy, register_strategy, seeded_order
from alpagasus.stages import rate


@register_strategy
class JudgeFilter(Strategy):
    name = "judge"
    needs_judge = True
    uses_threshold = True

    def key(self, arm) -> dict[str, Any]:
        key = {"threshold": arm.threshold, "unparsed_policy": arm.unparsed_policy,
               "order": arm.order, "seed": arm.seed}
        if arm.score_by == "expected":  # only then: the paper's keys stay as they were
            key["score_by"] = "expected"
        return key

    def inputs(self, ctx, arm):
        return {"ratings": rate.run(ctx, arm)}

    def scores(self, upstream):
        return rate.read_ratings(upstream["ratings"])

    def choose(self, arm, items, scores, size):
        texts = [json.dumps(it.to_dict(), sort_keys=True) for it in items]
        return choose_by_score(scores_by(arm, scores), arm.threshold, size,
                               arm.unparsed_policy == "include", arm.order, arm.seed, texts)

    def ranking(self, arm, items, scores):
        include = arm.unparsed_policy == "include"
        scores = scores_by(arm, scores)
        return Ranking([r["score"] for r in scores],
                       [(r["score"] is not None and r["score"] >= arm.threshold)
                        or (include and r["score"] is None) for r in scores])


def scores_by(arm, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows with ``score`` = the score the arm selects on (select.score)."""
    if arm.score_by != "expected":
        return rows
    if rows and all(r.get("expected_score") is None for r in rows):
        raise SelectionError(
            f"arm {arm.role}: select.score=expected, but judge {arm.judge.name}'s ratings hold "
            "no expected score: set judge.score_mode=expected (an OpenAI-protocol judge or the "
            "local one); docs/expected-scores.md")
    return [{**r, "score": r.get("expected_score")} for r in rows]


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
