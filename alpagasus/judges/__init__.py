"""LLM judges: one interface for the local model and the API providers.

A judge turns chat requests into replies; callers parse replies (alpagasus.parsing), so a
stored reply can always be re-scored with a newer parser without asking the judge again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from alpagasus.config import JudgeConfig

Messages = list[dict[str, str]]
# What the reply must hold: one 0-5 rating, or two 1-10 pairwise scores. The local judge in
# score_mode=logits uses it to read digits off the next-token distribution.
ScoreFormat = Literal["rating", "pair"]


@dataclass
class JudgeReply:
    text: str
    status: str = "ok"  # ok | too_long | error
    input_tokens: int = 0
    output_tokens: int = 0
    latency_s: float = 0.0
    error: str | None = None


class Judge(Protocol):
    def complete(
        self, requests: list[Messages], score_format: ScoreFormat, desc: str
    ) -> list[JudgeReply]: ...

    def close(self) -> None: ...


# Bumped when the in-process judge's scoring code changes what it replies.
LOCAL_JUDGE_VERSION = 2


def judge_identity(cfg: JudgeConfig) -> dict:
    """The part of a judge config that changes its replies (cache and artifact keys)."""
    identity = {
        "backend": cfg.backend,
        "model": cfg.model,
        "base_url": cfg.base_url,
        "temperature": cfg.temperature,
        "top_p": cfg.top_p,
        "max_tokens": cfg.max_tokens,
        "score_mode": cfg.score_mode,
        "context_tokens": cfg.context_tokens,
    }
    if cfg.backend == "local":
        identity["local_judge_version"] = LOCAL_JUDGE_VERSION
    return identity


def make_judge(cfg: JudgeConfig, cache_dir: str | Path) -> Judge:
    if cfg.backend == "local":
        from alpagasus.judges.local import LocalJudge

        return LocalJudge(cfg, cache_dir)
    raise ValueError(
        f"judge backend '{cfg.backend}' is not available in this build (local only)"
    )
