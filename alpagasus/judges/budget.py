"""What a run plans, sends and pays: ``Plan``, ``Usage``, and the ``max_cost_usd`` ``Budget``."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from alpagasus.judges.base import Messages


def reply_price(cfg: Any, input_tokens: int, output_tokens: int, batch: bool = False) -> float:
    """What one reply costs at the judge config's prices (batch: at its batch discount)."""
    cost = (input_tokens * cfg.price_input_per_mtok
            + output_tokens * cfg.price_output_per_mtok) / 1e6
    return cost * (cfg.batch_price_factor if batch else 1.0)


@dataclass
class Usage:
    """What this run sent and paid (replies from the cache cost nothing)."""

    requests: int = 0  # successful API calls
    attempts: int = 0  # including retried ones
    retries: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)
    # Requests another job was sending when this one wanted them: waited for, not sent.
    waited_for: int = 0


@dataclass
class Plan:
    keys: list[str]  # one per request
    cached: dict[str, Any]  # key -> CachedReply
    todo: list[tuple[str, Messages, int]]  # (key, messages, prompt tokens), unique keys
    too_long: dict[str, tuple[int, str]]  # key -> (prompt tokens, reason)
    token_method: str
    input_tokens: int = 0

    @property
    def summary(self) -> dict[str, Any]:
        return {"requests": len(self.keys), "unique": len(set(self.keys)),
                "cached": len(self.cached), "to_send": len(self.todo),
                "too_long": len(self.too_long), "input_tokens_to_send": self.input_tokens,
                "token_count": self.token_method}


class Budget:
    """max_cost_usd: may the next request be sent? Pure bookkeeping, no I/O.

    ``spent`` is what is paid already (per the scope, from the cache) plus every reply as it
    arrives, charged what its ``usage`` says. A request in flight may still cost its worst
    case: its prompt (counted, times the largest prompt under-count seen) plus ``max_tokens``
    of reply -- or, when replies are bounded only by the context (``context_bound``: the
    server may ignore max_tokens, and does so as soon as one reply is longer), the whole
    context at the dearer of the two prices. The next request is sent only if spent +
    in-flight worst cases + its own worst case <= cap, so the cap holds whatever the
    server replies, provided its usage stays within the context.
    """

    def __init__(self, cap: float | None, spent: float, price_in: float, price_out: float,
                 max_tokens: int, context_tokens: int, context_bound: bool,
                 prompt_margin: float = 1.0):
        self.cap, self.spent = cap, spent
        self.price_in, self.price_out = price_in / 1e6, price_out / 1e6  # per token
        self.max_tokens, self.context_tokens = max_tokens, context_tokens
        self.context_bound = context_bound
        self.prompt_margin = prompt_margin  # >= the largest reported/counted prompt ratio
        self.in_flight = 0
        self.in_flight_prompt = 0  # counted prompt tokens of the requests in flight

    def worst(self, n_in: int) -> float:
        if self.context_bound:
            return self.context_tokens * max(self.price_in, self.price_out)
        return (math.ceil(n_in * self.prompt_margin) * self.price_in
                + self.max_tokens * self.price_out)

    def reserved(self) -> float:
        if self.context_bound:
            return self.in_flight * self.worst(0)
        return (math.ceil(self.in_flight_prompt * self.prompt_margin) * self.price_in
                + self.in_flight * self.max_tokens * self.price_out)

    def fits(self, n_in: int) -> bool:
        # A little slack for float rounding only; everything else is counted.
        return self.cap is None or \
            self.spent + self.reserved() + self.worst(n_in) <= self.cap + 1e-12

    def start(self, n_in: int) -> None:
        self.in_flight += 1
        self.in_flight_prompt += n_in

    def finish(self, n_in: int) -> None:
        self.in_flight -= 1
        self.in_flight_prompt -= n_in

    def charge(self, cost: float, n_in: int = 0, tin: int = 0, tout: int = 0) -> bool:
        """Add one reply's cost; learn from its usage. True when it shows, for the first
        time, that the server does not stop at max_tokens."""
        self.spent += cost
        if n_in and tin > n_in * self.prompt_margin:
            self.prompt_margin = tin / n_in
        if tout > self.max_tokens and not self.context_bound:
            self.context_bound = True
            return True
        return False
