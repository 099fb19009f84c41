"""What every judge is: chat requests in, ``JudgeReply``s out, and the identity that keys them.

A judge turns chat requests into replies; callers parse replies (alpagasus.parsing), so a
stored reply can always be re-scored with a newer parser without asking the judge again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from alpagasus.config import JudgeConfig
from alpagasus.expected import Expected, expected_scores, from_stored

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
    key: str | None = None  # the reply cache key (API judges)
    source: str = "local"  # local | online | batch | import
    cached: bool = False  # True: read from the cache, not sent in this run
    # score_mode=expected: the reply's tokens with their top alternatives (as stored by
    # alpagasus.expected.compact_logprobs), or, from the local judge, the expected scores.
    logprobs: list | None = None
    expected: list[Expected] | None = None

    def expected_scores(self, values: Sequence[float] | None,
                        scale: tuple[float, float]) -> list[Expected] | None:
        """The expected score of each parsed value (None: no logprobs, or no parsed score)."""
        if self.expected is not None:
            return self.expected if values else None
        if self.logprobs is None:
            return None
        return expected_scores(from_stored(self.logprobs), values, scale)


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
        if cfg.score_mode == "logits" and cfg.temperature > 0:
            # Sampled digits (local.py), not the expectation: keys of their own.
            identity["logits_sampling"] = "digit-v1"
    elif cfg.score_mode == "expected":  # the requests ask for this many alternatives
        identity["top_logprobs"] = cfg.top_logprobs
    return identity


def reads_expected(cfg: JudgeConfig) -> bool:
    """Whether this judge's replies carry expected scores (then the artifacts that read
    them carry the expected-score version in their key)."""
    return cfg.score_mode == "expected" or (cfg.backend == "local" and cfg.score_mode == "logits")
