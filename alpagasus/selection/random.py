"""`random`: `size` items drawn uniformly with `seed` (the paper's random-9k baseline;
`size=match` gives the other arm's size, for equal-size comparisons)."""

from __future__ import annotations

import random

from alpagasus.selection import Strategy, register_strategy


@register_strategy
class RandomSample(Strategy):
    name = "random"
    uses_seed = True
    needs_size = True

    def key(self, arm):
        return {"seed": arm.seed}

    def choose(self, arm, items, scores, size):
        return sorted(random.Random(arm.seed).sample(range(len(items)), size))
