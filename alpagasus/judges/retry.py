"""Retrying and pacing API requests: Retry-After, backoff with jitter, RPM/TPM limiters."""

from __future__ import annotations

import email.utils
import random
import time
from typing import Any

from aiolimiter import AsyncLimiter

from alpagasus.config import JudgeConfig
from alpagasus.judges.errors import REPLIES_CACHED

RETRYABLE_STATUS = {408, 409, 429}  # and every 5xx (Anthropic's 529 "overloaded" included)
MAX_RETRY_AFTER_S = 600.0


def retry_after_s(headers: Any) -> float | None:
    """Seconds the server asks us to wait: ``retry-after-ms``, then ``Retry-After``."""
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return min(float(ms) / 1000, MAX_RETRY_AFTER_S)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return min(float(value), MAX_RETRY_AFTER_S)
    except ValueError:
        when = email.utils.parsedate_to_datetime(value)  # an HTTP date
        return None if when is None else max(0.0, min(when.timestamp() - time.time(),
                                                      MAX_RETRY_AFTER_S))


def backoff_s(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """Full jitter (AWS architecture blog): uniform in [0, min(cap, base * 2**attempt)]."""
    return rng.uniform(0, min(cap, base * 2 ** attempt))


def make_limiter(per_minute: float, largest: float) -> AsyncLimiter:
    """A leaky bucket for ``per_minute`` that drains over about one second, not a minute.

    Providers enforce minute limits over shorter windows too (OpenAI: 60,000 RPM may be
    enforced as 1,000 per second), so a bucket holding a whole minute would let a burst
    through at start. The bucket must still hold the largest single acquisition.
    """
    capacity = max(per_minute / 60, largest, 1)
    return AsyncLimiter(capacity, 60 * capacity / per_minute)


class _Retryable(Exception):
    def __init__(self, kind: str, wait: float | None, message: str = ""):
        super().__init__(kind)
        self.kind, self.wait, self.message = kind, wait, message


def give_up_hint(kind: str, cfg: JudgeConfig, url: str) -> str:
    """What to do when every attempt of a request failed the same way: one hint per reason."""
    cached = f"{REPLIES_CACHED}: rerun to resume"
    if kind == "timeout":
        return (f"no reply within judge.request_timeout_s={cfg.request_timeout_s}s: is the "
                f"server at {url} up and reachable from this machine (curl {url}/models)? A "
                "slow or busy model needs a larger judge.request_timeout_s or a lower "
                f"judge.concurrency; {cached}")
    if kind == "connection error":
        return (f"nothing answers at {url}: start the server, or fix judge.base_url (host, "
                f"port, http/https); {cached}")
    if kind == "http 429":
        return ("rate limited on every attempt: lower judge.concurrency or set "
                "judge.requests_per_minute / judge.tokens_per_minute to your quota, or raise "
                f"judge.max_retries; {cached}")
    return (f"the server at {url} failed on every attempt ({kind}): check its log or status "
            f"page, or raise judge.max_retries; {cached}")
