"""LLM judges: one interface for the local model and the API providers.

A judge turns chat requests into replies; callers parse replies (alpagasus.parsing), so a
stored reply can always be re-scored with a newer parser without asking the judge again.
"""

from __future__ import annotations

from pathlib import Path

from alpagasus.config import JudgeConfig
from alpagasus.judges.base import (
    LOCAL_JUDGE_VERSION,
    Judge,
    JudgeReply,
    Messages,
    ScoreFormat,
    judge_identity,
    reads_expected,
)
from alpagasus.judges.engine import ApiJudge
from alpagasus.judges.local import LocalJudge
from alpagasus.judges.options import EngineOptions

__all__ = ["LOCAL_JUDGE_VERSION", "Judge", "JudgeReply", "Messages", "ScoreFormat",
           "judge_identity", "make_judge", "reads_expected"]


def make_judge(cfg: JudgeConfig, cache_dir: str | Path, reply_cache: str | Path | None = None,
               options: EngineOptions | None = None, variant: dict | None = None,
               seed: int | None = None) -> Judge:
    """The judge for ``cfg``: in-process for backend=local, else the cached API engine.

    ``reply_cache`` is the SQLite reply cache (``paths.judge_cache``) the API engine reads
    and writes; ``options`` its run options (rate.mode, dry_run, max_cost_usd, reparse).
    ``variant``: fields added to the API engine's cache keys, so the same request asked
    again on purpose (stage=noise's repeat 1, 2, ...) is a reply of its own, not the cached one.
    ``seed``: the local judge's sampling seed (temperature > 0), so a repeat can be rebuilt.
    """
    if cfg.backend == "local":
        return LocalJudge(cfg, cache_dir, seed=seed)
    if cfg.backend in ("openai", "anthropic"):
        if reply_cache is None:
            reply_cache = Path(cache_dir) / "judge.sqlite"
        return ApiJudge(cfg, reply_cache, options, variant=variant)
    raise ValueError(f"unknown judge backend '{cfg.backend}' (local | openai | anthropic)")
