"""`longest`: the `size` items with the longest responses, in characters (the Long-Is-More
baseline, Zhao et al. 2024). Ties are broken by a fixed hash of the item's text, so the cut
depends neither on file order nor on a seed."""

from __future__ import annotations

from alpagasus.selection import Ranking, Strategy, item_text, register_strategy, seeded_order


@register_strategy
class LongestResponses(Strategy):
    name = "longest"
    needs_size = True

    def choose(self, arm, items, scores, size):
        return longest(items, size)

    def ranking(self, arm, items, scores):
        return Ranking([float(len(it.output)) for it in items], [True] * len(items))


def longest(items, size: int) -> list[int]:
    """Indices of the ``size`` longest responses, in data order."""
    tie = seeded_order(0, [item_text(it) for it in items])
    return sorted(sorted(range(len(items)), key=lambda i: (-len(items[i].output), tie(i)))[:size])
