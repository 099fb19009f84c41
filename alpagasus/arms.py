"""Arms: the two training sets a study compares head to head.

An arm is a training set given by a selection: a registered strategy (alpagasus/selection),
its judge and prompt when it rates, a threshold, a size (a number, or "match" = the other
arm's size) and a seed. Arm A is the top-level `filter`/`threshold`/`size`/`seed`; arm B is
the `baseline` node (default `all`: the paper's AlpaGasus vs Alpaca). Every stage takes the
arm it works on; artifacts are keyed by what the arm selects, not by its role, so a model
two comparisons need is trained once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig

from alpagasus.selection import get_strategy

ROLES = ("a", "b")


@dataclass(frozen=True)
class Arm:
    role: str  # "a" | "b": its side in the comparison
    method: str  # a registered selection strategy
    filter_name: str  # the filter/baseline option it came from (for labels)
    judge: Any  # JudgeConfig node, for strategies that rate; else None
    prompt: str
    threshold: float | None
    size: int | str | None  # int, "match" or None (all that pass)
    seed: int
    order: str  # SelectOrder value
    unparsed_policy: str
    path: str | None = None
    model: str | None = None
    # Which score of a rating row a threshold reads: "score" (parsed) or "expected".
    score_by: str = "score"

    @property
    def other(self) -> str:
        return "b" if self.role == "a" else "a"

    @property
    def name(self) -> str:
        """A short, filesystem- and W&B-safe name that says what the arm selects."""
        strategy = get_strategy(self.method)
        parts = [self.filter_name]
        if strategy.uses_threshold and self.threshold is not None:
            parts.append(f"t{self.threshold:g}")
        if self.size is not None:
            parts.append(f"n{self.size}")
        if strategy.uses_seed or (self.size is not None and strategy.uses_threshold):
            parts.append(f"s{self.seed}")
        if strategy.needs_judge and self.score_by == "expected":
            parts.append("expected")
        return "_".join(parts)

    def label(self, kept: int | None = None) -> str:
        """For reports and plots: "chatgpt≥4.5 (9,229)", "random (9,229)", "all (52,002)"."""
        text = self.filter_name
        if get_strategy(self.method).uses_threshold and self.threshold is not None:
            text += f"≥{self.threshold:g}"
        if get_strategy(self.method).needs_judge and self.score_by == "expected":
            text += " (expected)"
        return f"{text} ({kept:,})" if kept is not None else text

    def describe(self) -> dict[str, Any]:
        """The arm as plain data (manifests, result.json, W&B)."""
        return {"role": self.role, "name": self.name, "method": self.method,
                "filter": self.filter_name, "threshold": self.threshold, "size": self.size,
                "seed": self.seed, "order": self.order, "score_by": self.score_by,
                "judge": None if self.judge is None else self.judge.name}


def arms_from_config(cfg: DictConfig) -> dict[str, Arm]:
    """Arm A from the top-level filter, arm B from `baseline`."""
    a_strategy = get_strategy(cfg.filter.method)
    arm_a = Arm(
        role="a", method=cfg.filter.method, filter_name=cfg.filter.name,
        judge=cfg.judge if a_strategy.needs_judge else None, prompt=cfg.filter.prompt,
        threshold=cfg.threshold, size=cfg.size, seed=cfg.seed,
        order=_value(cfg.select.order), unparsed_policy=_value(cfg.filter.unparsed_policy),
        path=cfg.filter.path, model=cfg.filter.model, score_by=_value(cfg.select.score),
    )
    b = cfg.baseline
    arm_b = Arm(
        role="b", method=b.method, filter_name=b.name,
        judge=b.judge if get_strategy(b.method).needs_judge else None, prompt=b.prompt,
        threshold=cfg.threshold if b.threshold is None else b.threshold, size=b.size,
        seed=cfg.seed if b.seed is None else b.seed, order=_value(cfg.select.order),
        unparsed_policy=_value(b.unparsed_policy), path=b.path, model=b.model,
        score_by=_value(cfg.select.score),
    )
    return {"a": arm_a, "b": arm_b}


def _value(v: Any) -> Any:
    return getattr(v, "value", v)
