"""The API judge engine: cached, concurrent, rate-limited, retried, budgeted requests.

One engine for every API judge (OpenAI, Anthropic, any OpenAI-protocol server), used by the
`rate` stage and the evaluation `judge` stage through ``make_judge``:

* every request is first looked up in the reply cache (alpagasus/judges/cache.py); only the
  missing ones are sent, so rerunning an interrupted command resumes it;
* no request is paid twice, even by jobs running at the same time: a key is claimed in the
  cache before it is sent, and a key another live job holds is waited for, not sent;
* before anything is sent: prompt tokens are counted, too-long prompts are skipped with a
  reason, and the estimate (items, cached, tokens, dollars) is logged; ``dry_run`` stops there;
* ``concurrency`` workers pull requests from one queue, through an RPM and a TPM limiter
  (aiolimiter); 408/409/429/5xx, timeouts and connection errors are retried with exponential
  backoff and full jitter, or after the server's ``retry-after-ms`` / ``Retry-After`` (the
  first failure of each kind is logged at once); other 4xx stop the run with the provider's
  message (what was already received stays cached);
* every reply is committed to the cache as it arrives, with what it cost;
* ``max_cost_usd`` (see ``Budget``): a request is only sent if what is spent (per
  ``budget_scope``) plus the worst case of the requests in flight and of this one stays
  within the cap.
"""

from __future__ import annotations

import asyncio
import logging
import random
from pathlib import Path
from typing import Any

from alpagasus.config import JudgeConfig
from alpagasus.judges.base import JudgeReply, Messages, ScoreFormat, judge_identity
from alpagasus.judges.batch import run_batches
from alpagasus.judges.budget import Budget, Plan, Usage, reply_price
from alpagasus.judges.cache import CachedReply, ReplyCache, judge_key, new_owner, request_key
from alpagasus.judges.errors import (
    BatchPending,
    BudgetExceeded,
    DryRun,
    JudgeRequestError,
    JudgeStop,
    MissingReplies,
    NoLogprobs,
)
from alpagasus.judges.online import run_online
from alpagasus.judges.options import (
    EngineOptions,
    expects_logprobs,
    make_engine_options,
    mode_value,
)
from alpagasus.judges.providers import (
    AnthropicProvider,
    OpenAIProvider,
    make_provider,
    reply_from_anthropic,
    reply_from_openai,
)
from alpagasus.judges.retry import make_limiter
from alpagasus.judges.tokens import TokenCounter
from alpagasus.parsing import PARSER_VERSION, parse_pair, parse_rating

# Imported from here by callers and tests before the engine was split into modules.
__all__ = [
    "AnthropicProvider", "ApiJudge", "BatchPending", "Budget", "BudgetExceeded", "DryRun",
    "EngineOptions", "JudgeRequestError", "JudgeStop", "MissingReplies", "NoLogprobs",
    "OpenAIProvider", "Plan", "Usage", "make_engine_options", "make_limiter", "make_provider",
    "parse_for_cache", "reply_from_anthropic", "reply_from_openai",
]

log = logging.getLogger(__name__)
# The SDKs' HTTP clients log every request at INFO: 52k lines that bury the progress bar.
for _name in ("httpx", "httpx2"):
    logging.getLogger(_name).setLevel(logging.WARNING)


def parse_for_cache(score_format: ScoreFormat, text: str) -> tuple[str, Any]:
    if score_format == "rating":
        r = parse_rating(text)
        return r.status, r.score
    p = parse_pair(text)
    return p.status, list(p.scores) if p.scores else None


# --- the engine ------------------------------------------------------------------------------


class ApiJudge:
    def __init__(self, cfg: JudgeConfig, cache_path: str | Path,
                 options: EngineOptions | None = None, http_client: Any = None,
                 seed: int | None = None, variant: dict[str, Any] | None = None):
        self.cfg = cfg
        self.options = options or EngineOptions()
        if mode_value(self.options.budget_scope) not in ("cache", "run"):
            raise ValueError(f"rate.budget_scope must be cache or run, "
                             f"got '{self.options.budget_scope}'")
        # ``variant`` (e.g. {"noise_repeat": 2}) enters every key, never the request sent.
        self.identity = {**judge_identity(cfg), **(variant or {})}
        self.judge = judge_key(self.identity)
        self.cache = ReplyCache(cache_path, journal=mode_value(self.options.journal))
        self.owner = new_owner()  # this run's claims and paid replies carry it
        self.http_client = http_client
        self.usage = Usage()
        self.plan_summary: dict[str, Any] = {}
        self.budget: Budget | None = None
        self.stored_here: set[str] = set()  # keys whose reply this run received
        self._rng = random.Random(seed)
        self._counter: TokenCounter | None = None

    def close(self) -> None:
        self.cache.release(self.owner)
        self.cache.close()

    @property
    def counter(self) -> TokenCounter:
        if self._counter is None:
            self._counter = TokenCounter(self.cfg.backend, self.cfg.model)
        return self._counter

    def key(self, messages: Messages) -> str:
        return request_key(self.identity, messages)

    def price(self, input_tokens: int, output_tokens: int, batch: bool = False) -> float:
        return reply_price(self.cfg, input_tokens, output_tokens, batch)

    def reply_cost(self, r: CachedReply) -> float:
        """What a stored reply cost: as recorded, else (older rows) at today's prices."""
        if r.cost_usd is not None:
            return r.cost_usd
        if r.source not in ("online", "batch"):  # imported: not paid by this cache
            return 0.0
        return self.price(r.input_tokens, r.output_tokens, batch=r.source == "batch")

    def make_budget(self, plan: Plan, batch: bool = False) -> Budget:
        scope_cache = mode_value(self.options.budget_scope) == "cache"
        spent = sum(self.reply_cost(r) for r in plan.cached.values()) if scope_cache else 0.0
        factor = self.cfg.batch_price_factor if batch else 1.0
        bound = mode_value(self.cfg.reply_bound)
        context_bound = bound == "context" or (bound == "auto" and bool(self.cfg.base_url))
        # Counts from an estimate (no tokenizer) may fall short of what the server bills.
        margin = 1.0 if getattr(self.counter, "exact", True) else 1.3
        return Budget(self.options.max_cost_usd, spent, self.cfg.price_input_per_mtok * factor,
                      self.cfg.price_output_per_mtok * factor, self.cfg.max_tokens,
                      self.cfg.context_tokens, context_bound, margin)

    def spend_report(self, plan: Plan) -> str:
        """The exact spend, from the cache, for the stop message."""
        mine = self.cache.paid_by(self.owner)
        run_cost = sum(self.reply_cost(r) for r in mine)
        if mode_value(self.options.budget_scope) == "run":
            return (f"this run spent ${run_cost:.4f} ({len(mine)} paid replies in the cache, "
                    f"scope run)")
        stored = self.cache.get_many(set(plan.keys))
        paid = [r for r in stored.values() if self.reply_cost(r) > 0]
        total = sum(self.reply_cost(r) for r in paid)
        return (f"the cache has spent ${total:.4f} on these {len(set(plan.keys))} requests "
                f"with judge {self.cfg.name} ({len(paid)} paid replies, ${run_cost:.4f} of it "
                f"in this run; scope cache)")

    # -- planning ------------------------------------------------------------------------

    def plan(self, requests: list[Messages]) -> Plan:
        keys = [self.key(m) for m in requests]
        cached = self.cache.get_many(keys)
        todo, too_long, seen = [], {}, set()
        counter = self.counter if not self.options.offline else None
        for key, messages in zip(keys, requests, strict=True):
            if key in cached or key in seen:
                continue
            seen.add(key)
            if counter is None:
                todo.append((key, messages, 0))
                continue
            n = counter.count(messages)
            if n + self.cfg.max_tokens > self.cfg.context_tokens:
                too_long[key] = (n, f"{n} prompt tokens + {self.cfg.max_tokens} reply tokens > "
                                    f"context {self.cfg.context_tokens}")
            else:
                todo.append((key, messages, n))
        plan = Plan(keys, cached, todo, too_long,
                    counter.method if counter else "not counted (reparse)")
        plan.input_tokens = sum(n for _, _, n in todo)
        return plan

    def log_estimate(self, plan: Plan, desc: str) -> None:
        batch = self.options.mode == "batch"
        out_max = len(plan.todo) * self.cfg.max_tokens
        cost_in = self.price(plan.input_tokens, 0, batch)
        cost_max = self.price(plan.input_tokens, out_max, batch)
        self.plan_summary = {**plan.summary, "output_tokens_max": out_max,
                             "cost_usd_input": round(cost_in, 4),
                             "cost_usd_max": round(cost_max, 4)}
        log.info(
            "[%s] estimate: %d requests (%d unique), %d cached, %d to send, %d too long; "
            "%d prompt tokens (%s), <= %d reply tokens; cost $%.4f input + <= $%.4f output "
            "= <= $%.4f (%s pricing %s/%s per Mtok)",
            desc, len(plan.keys), len(set(plan.keys)), len(plan.cached), len(plan.todo),
            len(plan.too_long), plan.input_tokens, plan.token_method, out_max, cost_in,
            cost_max - cost_in, cost_max, "batch" if batch else "on-demand",
            self.cfg.price_input_per_mtok, self.cfg.price_output_per_mtok)
        cap = self.options.max_cost_usd
        if cap is not None and self.budget is not None:
            b = self.budget
            log.info("[%s] budget: rate.max_cost_usd=%s over %s; spent so far $%.4f; each "
                     "request in flight reserves its worst case (%s)", desc, cap,
                     "what the cache has spent on these requests" if
                     mode_value(self.options.budget_scope) == "cache" else "this run",
                     b.spent, "replies up to the context: the server may ignore max_tokens"
                     if b.context_bound else "prompt + max_tokens")
            if b.spent + cost_max > cap:
                log.warning("[%s] spent $%.4f + the worst case $%.4f exceeds "
                            "rate.max_cost_usd=%.4f: sending stops before the cap could be "
                            "passed", desc, b.spent, cost_max, cap)

    # -- the Judge protocol --------------------------------------------------------------

    def complete(self, requests: list[Messages], score_format: ScoreFormat,
                 desc: str = "judging") -> list[JudgeReply]:
        plan = self.plan(requests)
        if not self.options.offline:
            self.budget = self.make_budget(plan, batch=self.options.mode == "batch")
        self.log_estimate(plan, desc)
        if self.options.dry_run:
            raise DryRun(f"dry run: {len(plan.todo)} requests would be sent, "
                         f"<= ${self.plan_summary['cost_usd_max']:.4f}")
        if plan.todo and self.options.offline:
            raise MissingReplies(
                f"{len(plan.todo)} of {len(set(plan.keys))} requests have no stored reply and "
                "reparse sends nothing: run without rate.reparse=true first")
        if plan.todo:
            if self.options.mode == "batch":
                asyncio.run(run_batches(self, plan, score_format))
            elif self.options.mode == "online":
                asyncio.run(run_online(self, plan, score_format, desc))
            else:
                raise ValueError(f"rate.mode must be online or batch, got '{self.options.mode}'")
        return self.collect(plan, score_format)

    def collect(self, plan: Plan, score_format: ScoreFormat) -> list[JudgeReply]:
        stored = self.cache.get_many(k for k in set(plan.keys) if k not in plan.too_long)
        replies = []
        for key in plan.keys:
            if key in plan.too_long:
                n, reason = plan.too_long[key]
                replies.append(JudgeReply("", status="too_long", input_tokens=n, error=reason,
                                          key=key))
                continue
            r = stored[key]
            if r.parser_version != PARSER_VERSION:  # parsing happens on read: refresh it
                status, score = parse_for_cache(score_format, r.text)
                self.cache.update_parse(key, status, score, PARSER_VERSION)
            replies.append(JudgeReply(r.text, input_tokens=r.input_tokens,
                                      output_tokens=r.output_tokens, latency_s=r.latency_s,
                                      key=key, source=r.source,
                                      cached=key not in self.stored_here,
                                      logprobs=r.logprobs))
        return replies

    def store(self, key: str, score_format: ScoreFormat, text: str, n_in: int, tin: int,
              tout: int, latency: float, source: str,
              logprobs: list | None = None) -> tuple[float, bool]:
        """Commit one paid reply; charge it to the budget. (cost, first overrun seen)."""
        if logprobs is None and expects_logprobs(self.cfg):
            # Not stored: under this judge's key a reply without logprobs would be read as
            # a text score forever after.
            raise NoLogprobs(
                f"{self.cfg.name}: judge.score_mode=expected asked {self.cfg.base_url or 'the server'} "
                f"for logprobs (logprobs: true, top_logprobs: {self.cfg.top_logprobs}) and it "
                f"replied without them (model {self.cfg.model}); nothing more is sent")
        if not tin and not tout:  # the server sent no usage: charge what we count
            tin, tout = n_in, self.counter.count_text(text)
        cost = self.price(tin, tout, batch=source == "batch")
        status, score = parse_for_cache(score_format, text)
        if self.cache.put(key, self.judge, self.cfg.model, text, status=status, score=score,
                          parser_version=PARSER_VERSION, input_tokens=tin, output_tokens=tout,
                          latency_s=latency, source=source, cost_usd=cost, run=self.owner,
                          logprobs=logprobs):
            self.stored_here.add(key)
        u = self.usage
        u.input_tokens += tin
        u.output_tokens += tout
        u.cost_usd += cost
        overrun = self.budget.charge(cost, n_in, tin, tout) if self.budget else False
        return cost, overrun
