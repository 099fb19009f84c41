"""How a run uses the API judge engine: ``EngineOptions``, from the ``rate`` config."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from alpagasus.config import JudgeConfig


def mode_value(x: Any) -> str:
    """A mode as its string: Enum members (str-mixin or not) and plain strings alike."""
    return str(getattr(x, "value", x))


def expects_logprobs(cfg: JudgeConfig) -> bool:
    return cfg.backend == "openai" and mode_value(cfg.score_mode) == "expected"


@dataclass
class EngineOptions:
    mode: str = "online"  # online | batch
    dry_run: bool = False
    max_cost_usd: float | None = None
    # What max_cost_usd caps: "cache" = everything the cache has spent on these requests
    # with this judge (earlier runs and other jobs included), "run" = this run's spend.
    budget_scope: str = "cache"
    offline: bool = False  # reparse: read the cache only
    progress: bool = True
    journal: str = "wal"  # the cache's SQLite journal: wal | delete (NFS)
    lease_s: float = 60.0  # a claim not renewed for this long may be taken over
    poll_s: float = 0.5  # how often to look for replies another job is fetching



def make_engine_options(rate_cfg: Any, journal: Any = "wal") -> EngineOptions:
    return EngineOptions(mode=rate_cfg.mode, dry_run=rate_cfg.dry_run,
                         max_cost_usd=rate_cfg.max_cost_usd,
                         budget_scope=mode_value(getattr(rate_cfg, "budget_scope", "cache")),
                         offline=rate_cfg.reparse, progress=rate_cfg.progress,
                         journal=mode_value(journal))
