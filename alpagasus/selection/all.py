"""`all`: no filtering, every item (the paper's Alpaca baseline)."""

from __future__ import annotations

from alpagasus.selection import Strategy, register_strategy


@register_strategy
class AllItems(Strategy):
    name = "all"
    takes_size = False

    def choose(self, arm, items, scores, size):
        return list(range(len(items)))
