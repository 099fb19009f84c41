"""Schemas of how items are chosen and scored: the arms' filters, rating, IFD, analysis, noise.

Which prompt names and strategies exist is checked against the registries by
alpagasus/validation.py, a layer above these schemas."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING

from alpagasus.config.checks import _positive
from alpagasus.config.enums import BudgetScope, RateMode, SelectOrder, SelectScore, UnparsedPolicy
from alpagasus.config.judge import JudgeConfig
from alpagasus.errors import ConfigError


@dataclass
class FilterConfig:
    """How arm A's items are chosen: a registered selection strategy and its options."""

    name: str = MISSING
    # A registered strategy (alpagasus/selection): judge | random | all | ...
    method: str = "judge"
    # A rating prompt template (alpagasus/prompts.py; alpagasus/validation.py checks the name).
    prompt: str = "accuracy"
    unparsed_policy: UnparsedPolicy = UnparsedPolicy.exclude
    # Strategy options (only the strategies that read them put them in their artifact key).
    path: str | None = None  # released: the released filtered file
    model: str | None = None  # per-item scorers (ifd): the scoring model

@dataclass
class BaselineConfig(FilterConfig):
    """Arm B: the training set arm A is compared with (default: all items, the paper's)."""

    name: str = "all"
    method: str = "all"
    # Only for method=judge: the judge that rates for this arm (a `judge` group option).
    judge: JudgeConfig | None = None
    threshold: float | None = None  # None: the study's `threshold`
    # None: every item that passes; N; or "match": the other arm's size.
    size: Any = None
    seed: int | None = None  # None: the study's `seed`


@dataclass
class SelectConfig:
    order: SelectOrder = SelectOrder.draw  # how `size` cuts the items that pass
    # What threshold and top-N read: the parsed score, or the expected score (needs a judge
    # with score_mode=expected or logits; docs/expected-scores.md).
    score: SelectScore = SelectScore.score


@dataclass
class IFDConfig:
    """Per-item Instruction-Following Difficulty (stage=ifd; filter=ifd ranks by it)."""

    # The scoring LM: an HF id, a local folder or "embedded:NAME"; filter.model overrides it.
    model: str = "embedded:smollm2"
    batch_tokens: int = 4096  # padded tokens per forward pass (length-sorted batches)
    max_length: int = 1024  # prompt + response tokens; a longer response is cut
    dtype: str = "auto"  # auto: bf16 (CPU, recent GPUs) | float32 | bfloat16 | float16
    # Per-item scores of every scorer: shared by runs and sweep jobs, resumes a crash.
    cache: str = "${paths.root}/cache/ifd.sqlite"
    progress: bool = True

    def __post_init__(self) -> None:
        _positive("ifd.batch_tokens", self.batch_tokens)
        _positive("ifd.max_length", self.max_length)
        if self.dtype not in ("auto", "float32", "bfloat16", "float16"):
            raise ConfigError(f"ifd.dtype={self.dtype}: one of auto, float32, bfloat16, float16")


@dataclass
class AnalyzeConfig:
    """stage=analyze: compare selections, against each other and a reference label set."""

    # Filter options (the `filter` group) whose selections one job compares, each composed
    # with this job's other overrides; empty: this job's two arms.
    compare: list[str] = field(default_factory=list)
    # A released filtered file: membership of each item is the reference label (ROC AUC,
    # precision, recall of each selection).
    reference: str | None = None
    # Items a judge keeps at each of these thresholds.
    thresholds: list[float] = field(default_factory=lambda: [3.0, 3.5, 4.0, 4.5, 5.0])


@dataclass
class NoiseConfig:
    """stage=noise: re-rate a sample of items `repeats` times to measure the judge's own noise
    (alpagasus/noise.py computes it; docs/noise.md)."""

    sample: int | None = 200  # distinct items drawn (seeded); null: every distinct item
    seed: int = 0  # the draw, the perturbed orders and the local judge's sampling
    repeats: int = 5  # ratings per item; repeat 0 is the plain rating (see docs/noise.md)
    # null: the judge's own temperature; else every repeat samples at this one.
    temperature: float | None = None
    # Repeats 1.. show the item's instruction/input/response blocks in another order.
    perturb_order: bool = False

    def __post_init__(self) -> None:
        _positive("noise.sample", self.sample)
        _positive("noise.temperature", self.temperature, allow_zero=True)
        if self.repeats < 2:
            raise ConfigError(f"noise.repeats={self.repeats}: must be >= 2 (a spread needs "
                              "two ratings of an item)")


@dataclass
class RateConfig:
    """How the `rate` stage talks to an API judge (alpagasus/judges/engine.py)."""

    mode: RateMode = RateMode.online
    dry_run: bool = False  # print the estimate (items, cached, tokens, dollars) and stop
    # Stop sending before the spend could pass this many dollars; counted over `budget_scope`.
    max_cost_usd: float | None = None
    budget_scope: BudgetScope = BudgetScope.cache
    # Re-score the replies stored in the cache with the current parser; sends nothing.
    reparse: bool = False
    # A released rating file (JSON list of {"triplet" | instruction/input/output, "review"})
    # to load into the cache before rating: those items are then not sent.
    import_path: str | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        _positive("rate.max_cost_usd", self.max_cost_usd)
