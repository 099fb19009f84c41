"""The API judge as the senders (online.py, batch.py) see it: what they read and call.

``engine.ApiJudge`` is the one implementation; this Protocol lets the senders name its type
without importing the engine, which imports them.
"""

from __future__ import annotations

import random
from typing import Any, Protocol

from alpagasus.config import JudgeConfig
from alpagasus.judges.base import ScoreFormat
from alpagasus.judges.budget import Budget, Plan, Usage
from alpagasus.judges.cache import CachedReply, ReplyCache
from alpagasus.judges.options import EngineOptions


class SendingJudge(Protocol):
    cfg: JudgeConfig
    options: EngineOptions
    judge: str  # the judge's key in the reply cache
    cache: ReplyCache
    owner: str  # this run's claims and paid replies carry it
    http_client: Any
    usage: Usage
    budget: Budget | None
    stored_here: set[str]
    _rng: random.Random

    def make_budget(self, plan: Plan, batch: bool = False) -> Budget: ...

    def reply_cost(self, r: CachedReply) -> float: ...

    def spend_report(self, plan: Plan) -> str: ...

    def store(self, key: str, score_format: ScoreFormat, text: str, n_in: int, tin: int,
              tout: int, latency: float, source: str,
              logprobs: list | None = None) -> tuple[float, bool]: ...
