"""Selection strategies: how an arm's training items are chosen. One registry.

A strategy is a class registered with ``@register_strategy``; adding one is one module (listed
in ``BUILTIN`` below, or imported by the user before the run) plus one YAML in
``conf/filter/`` (and ``conf/baseline/`` to use it as arm B). No stage changes. A strategy
declares what it needs (a judge's ratings, per-item scores of a model, nothing), what enters
its artifact key, and chooses indices from those inputs with a pure function.

Exact duplicate items are collapsed before a strategy sees them (stages/select.py): ``choose``
gets the unique items and their score rows re-indexed to match, and its indices are mapped
back to the data's by the stage.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from alpagasus.errors import AlpagasusError, ConfigError
from alpagasus.registry import Registry

if TYPE_CHECKING:
    from alpagasus.arms import Arm
    from alpagasus.artifacts import Artifact
    from alpagasus.context import RunContext
    from alpagasus.data import Item

# The strategies shipped with alpagasus, imported on first lookup: the one place they are listed.
BUILTIN = ("judge", "random", "all", "ifd", "longest", "released")


class SelectionError(AlpagasusError, ValueError):
    """A selection no training could use (nothing kept, a size that cannot be met)."""


@dataclass(frozen=True)
class Ranking:
    """How a strategy orders the items, for analysis (ROC AUC against a reference, agreement).

    ``values[i]``: what item i is ranked by, higher chosen first (None: never chosen);
    ``passes[i]``: whether it passes the strategy's own cutoff (a judge's threshold, IFD < 1).
    """

    values: list[float | None]
    passes: list[bool]


class Strategy:
    """Base class; subclasses set ``name`` and override what they use."""

    name: ClassVar[str]
    needs_judge: ClassVar[bool] = False  # rate with the arm's judge first
    uses_threshold: ClassVar[bool] = False
    uses_seed: ClassVar[bool] = False
    needs_size: ClassVar[bool] = False  # size is required (random)
    takes_size: ClassVar[bool] = True  # size is meaningful at all

    def check(self, spec: Any, size: Any, prefix: str) -> None:
        """Config checks that need no data (run by validation.validate before anything)."""
        if self.needs_size and size is None:
            raise ConfigError(f"{prefix}method={self.name} needs a size: "
                              f"{'size' if prefix == 'filter.' else 'baseline.size'}=N or match")
        if not self.takes_size and size is not None:
            raise ConfigError(f"{prefix}method={self.name} keeps a fixed set; it takes no size "
                              f"(got {size}); use method=random for a sample")

    def check_data(self, arm: Arm, n_items: int) -> None:
        """Checks that need the loaded data, still before any request or model load."""
        if isinstance(arm.size, int) and arm.size > n_items:
            raise SelectionError(f"arm {arm.role} ({arm.filter_name}): size={arm.size} is "
                                 f"larger than the data ({n_items} items)")

    def key(self, arm: Arm) -> dict[str, Any]:
        """What, besides the inputs and size, changes the selection (the artifact key)."""
        return {}

    def inputs(self, ctx: RunContext, arm: Arm) -> dict[str, Artifact]:
        """Upstream artifacts the choice reads (ratings, per-item scores)."""
        return {}

    def scores(self, upstream: dict[str, Artifact]) -> list[dict[str, Any]] | None:
        """Per-item rows {"index", "score", "status", ...} for selection.jsonl, if any."""
        return None

    def choose(self, arm: Arm, items: list[Item], scores: list[dict[str, Any]] | None,
               size: int | None) -> list[int]:
        """Indices into ``items`` (unique items), any order; ``scores``: ``self.scores`` rows
        re-indexed to ``items`` (None when the strategy has none)."""
        raise NotImplementedError

    def ranking(self, arm: Arm, items: list[Item],
                scores: list[dict[str, Any]] | None) -> Ranking | None:
        """The order the strategy picks items in (None: it has none, e.g. a random draw)."""
        return None

    def counts(self, arm: Arm, items: list[Item],
               scores: list[dict[str, Any]] | None) -> dict[str, Any]:
        """Extra counts for the selection's manifest (e.g. how many released items matched)."""
        return {}


REGISTRY: Registry[Strategy] = Registry("selection strategy", __name__, BUILTIN, "filter.method")
register_strategy = REGISTRY.register
strategies = REGISTRY.all


def get_strategy(name: str, key: str = "filter.method") -> Strategy:
    return REGISTRY.get(name, key)


def item_text(item: Item) -> str:
    """The identity of an item's content (exact duplicates share it)."""
    import json

    return json.dumps([item.instruction, item.input, item.output], ensure_ascii=False)


def seeded_order(seed: int, texts: list[str]) -> Callable[[int], str]:
    """A tie-breaker: a seeded hash of each item's text, independent of file order."""
    import hashlib

    return lambda i: hashlib.sha256(f"{seed}\0{texts[i]}".encode()).hexdigest()
