"""The API judge engine: cached, concurrent, rate-limited, retried, budgeted requests.

One engine for every API judge (OpenAI, Anthropic, any OpenAI-protocol server), used by the
`rate` stage and the evaluation `judge` stage through ``make_judge``:

* every request is first looked up in the reply cache (alpagasus/judges/cache.py); only the
  missing ones are sent, so rerunning an interrupted command resumes it;
* before anything is sent: prompt tokens are counted, too-long prompts are skipped with a
  reason, and the estimate (items, cached, tokens, dollars) is logged; ``dry_run`` stops there;
* ``concurrency`` workers pull requests from one iterator, through an RPM and a TPM limiter
  (aiolimiter); 408/409/429/5xx, timeouts and connection errors are retried with exponential
  backoff and full jitter, or after the server's ``retry-after-ms`` / ``Retry-After``; other
  4xx stop the run with the provider's message (what was already received stays cached);
* every reply is committed to the cache as it arrives;
* ``max_cost_usd``: a request is only sent if the spend so far plus the worst case of the
  requests in flight and of this one (prompt + max_tokens) stays within the budget.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiolimiter import AsyncLimiter
from tqdm.auto import tqdm

from alpagasus.config import JudgeConfig
from alpagasus.errors import AlpagasusError
from alpagasus.judges import JudgeReply, Messages, ScoreFormat, judge_identity
from alpagasus.judges.cache import ReplyCache, judge_key, request_key
from alpagasus.judges.tokens import TokenCounter
from alpagasus.parsing import PARSER_VERSION, parse_pair, parse_rating

log = logging.getLogger(__name__)
# The SDKs' HTTP clients log every request at INFO: 52k lines that bury the progress bar.
for _name in ("httpx", "httpx2"):
    logging.getLogger(_name).setLevel(logging.WARNING)

_sleep = asyncio.sleep  # a seam for tests that check the waits
_timeout = getattr(asyncio, "timeout", None)  # Python >= 3.11
RETRYABLE_STATUS = {408, 409, 429}  # and every 5xx (Anthropic's 529 "overloaded" included)
MAX_RETRY_AFTER_S = 600.0


class JudgeStop(AlpagasusError):
    """The judge stopped before every request had a reply; the cache keeps what it got."""

    exit_code = 2


class DryRun(JudgeStop):
    exit_code = 0  # an expected stop: the estimate is the result


class BudgetExceeded(JudgeStop):
    hint = "raise rate.max_cost_usd and run the same command again: cached replies are not paid twice"


class BatchPending(JudgeStop):
    """Batch jobs were submitted or are still running: rerun the command later."""

    exit_code = 0


class MissingReplies(JudgeStop):
    """reparse: some requests have no stored reply, and reparse sends nothing."""

    hint = "run without rate.reparse=true first, so every item gets a reply"


class JudgeRequestError(AlpagasusError, RuntimeError):
    """A non-retryable API error (bad request, auth, unknown model): the provider's message."""

    exit_code = 2
    hint = ("check the key in the variable judge.api_key_env names, judge.model and "
            "judge.base_url; every reply received so far is cached")


@dataclass
class EngineOptions:
    mode: str = "online"  # online | batch
    dry_run: bool = False
    max_cost_usd: float | None = None
    offline: bool = False  # reparse: read the cache only
    progress: bool = True


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


def parse_for_cache(score_format: ScoreFormat, text: str) -> tuple[str, Any]:
    if score_format == "rating":
        r = parse_rating(text)
        return r.status, r.score
    p = parse_pair(text)
    return p.status, list(p.scores) if p.scores else None


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


# --- providers: one request each, errors classified ------------------------------------------


def _api_key(cfg: JudgeConfig) -> str:
    key = os.environ.get(cfg.api_key_env) if cfg.api_key_env else None
    if key:
        return key
    if cfg.base_url:  # a self-hosted server usually ignores the key, but the SDKs want one
        return "not-needed"
    raise JudgeRequestError(
        f"judge '{cfg.name}' needs an API key in the environment variable "
        f"{cfg.api_key_env or '(judge.api_key_env is not set)'}"
    )


class OpenAIProvider:
    name = "openai"

    def __init__(self, cfg: JudgeConfig, http_client: Any = None):
        import openai

        self.cfg, self.sdk = cfg, openai
        self.key = _api_key(cfg)
        # max_retries=0: the engine retries (backoff, Retry-After, counting) itself.
        self.client = openai.AsyncOpenAI(api_key=self.key, base_url=cfg.base_url,
                                         max_retries=0, timeout=cfg.request_timeout_s,
                                         http_client=http_client)

    def body(self, messages: Messages) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.cfg.model, "messages": messages,
                                "temperature": self.cfg.temperature,
                                "max_tokens": self.cfg.max_tokens}
        if self.cfg.top_p != 1.0:
            body["top_p"] = self.cfg.top_p
        return body

    async def send(self, messages: Messages) -> tuple[str, int, int]:
        # client.post (the SDKs' documented route for raw requests) with a body we built
        # ourselves: the same auth, URL, timeout and error classes as chat.completions.create,
        # without its typed-params transform and response models, about half the client CPU
        # per request (benchmarks/rating_throughput.py).
        try:
            r = await self.client.post("/chat/completions", body=self.body(messages),
                                       cast_to=object)
        except Exception as e:
            raise _classify(self.sdk, "OpenAI", e, self.key) from e
        return reply_from_openai(r)

    async def aclose(self) -> None:
        await self.client.close()


class AnthropicProvider:
    name = "anthropic"

    def __init__(self, cfg: JudgeConfig, http_client: Any = None):
        import anthropic

        self.cfg, self.sdk = cfg, anthropic
        self.key = key = _api_key(cfg)
        # This SDK sends the key as "Authorization: Bearer"; the Messages API documents (and
        # Anthropic-protocol servers such as llm-katan require) the x-api-key header.
        self.client = anthropic.AsyncAnthropic(api_key=key, base_url=cfg.base_url,
                                               max_retries=0, timeout=cfg.request_timeout_s,
                                               http_client=http_client,
                                               default_headers={"x-api-key": key})

    def body(self, messages: Messages) -> dict[str, Any]:
        # Anthropic takes the system prompt as a parameter, not as a message.
        system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
        body: dict[str, Any] = {"model": self.cfg.model, "max_tokens": self.cfg.max_tokens,
                                "temperature": self.cfg.temperature,
                                "messages": [m for m in messages if m["role"] != "system"]}
        if system:
            body["system"] = system
        if self.cfg.top_p != 1.0:  # recent models refuse temperature and top_p together
            body["top_p"] = self.cfg.top_p
        return body

    async def send(self, messages: Messages) -> tuple[str, int, int]:
        # As for OpenAI: client.post with our own body. It also carries temperature/top_p,
        # which this SDK's messages.create() no longer names but the Messages API reads.
        try:
            r = await self.client.post("/v1/messages", body=self.body(messages),
                                       cast_to=object)
        except Exception as e:
            raise _classify(self.sdk, "Anthropic", e, self.key) from e
        return reply_from_anthropic(r)

    async def aclose(self) -> None:
        await self.client.close()


def _json_body(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):  # a 200 that is not JSON: no retry would fix the server
        raise JudgeRequestError(f"the judge server replied with non-JSON: {str(body)[:200]!r}")
    return body


def reply_from_openai(body: dict[str, Any]) -> tuple[str, int, int]:
    body = _json_body(body)
    usage = body.get("usage") or {}
    text = body["choices"][0]["message"].get("content") or ""
    return text, usage.get("prompt_tokens") or 0, usage.get("completion_tokens") or 0


def reply_from_anthropic(body: dict[str, Any]) -> tuple[str, int, int]:
    body = _json_body(body)
    usage = body.get("usage") or {}
    text = "".join(b.get("text", "") for b in body.get("content", []) if b.get("type") == "text")
    return text, usage.get("input_tokens") or 0, usage.get("output_tokens") or 0


def _classify(sdk: Any, provider: str, e: Exception, key: str = "") -> Exception:
    if isinstance(e, sdk.APIStatusError):
        status = e.status_code
        # Some servers quote the key they were sent: it must not reach the logs.
        message = e.message.replace(key, "***") if len(key) >= 8 else e.message
        # OpenAI answers an exhausted quota with 429 too, but waiting does not refill it.
        quota = getattr(e, "code", None) == "insufficient_quota"
        if (status in RETRYABLE_STATUS or status >= 500) and not quota:
            return _Retryable(f"http {status}", retry_after_s(e.response.headers), message)
        return JudgeRequestError(f"{provider} API error {status}: {message}")
    if isinstance(e, sdk.APIConnectionError):  # timeouts included
        return _Retryable(type(e).__name__, None, str(e))
    return e


def make_provider(cfg: JudgeConfig, http_client: Any = None) -> OpenAIProvider | AnthropicProvider:
    if cfg.backend == "openai":
        return OpenAIProvider(cfg, http_client)
    if cfg.backend == "anthropic":
        return AnthropicProvider(cfg, http_client)
    raise ValueError(f"unknown API judge backend '{cfg.backend}' (openai | anthropic)")


# --- the engine ------------------------------------------------------------------------------


class ApiJudge:
    def __init__(self, cfg: JudgeConfig, cache_path: str | Path,
                 options: EngineOptions | None = None, http_client: Any = None,
                 seed: int | None = None):
        self.cfg = cfg
        self.options = options or EngineOptions()
        self.identity = judge_identity(cfg)
        self.judge = judge_key(self.identity)
        self.cache = ReplyCache(cache_path)
        self.http_client = http_client
        self.usage = Usage()
        self.plan_summary: dict[str, Any] = {}
        self._rng = random.Random(seed)
        self._counter: TokenCounter | None = None

    def close(self) -> None:
        self.cache.close()

    @property
    def counter(self) -> TokenCounter:
        if self._counter is None:
            self._counter = TokenCounter(self.cfg.backend, self.cfg.model)
        return self._counter

    def key(self, messages: Messages) -> str:
        return request_key(self.identity, messages)

    def price(self, input_tokens: int, output_tokens: int, batch: bool = False) -> float:
        cost = (input_tokens * self.cfg.price_input_per_mtok
                + output_tokens * self.cfg.price_output_per_mtok) / 1e6
        return cost * (self.cfg.batch_price_factor if batch else 1.0)

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
        if self.options.max_cost_usd is not None and cost_max > self.options.max_cost_usd:
            log.warning("[%s] the worst case $%.4f exceeds rate.max_cost_usd=%.4f: sending "
                        "stops before the budget could be passed", desc, cost_max,
                        self.options.max_cost_usd)

    # -- the Judge protocol --------------------------------------------------------------

    def complete(self, requests: list[Messages], score_format: ScoreFormat,
                 desc: str = "judging") -> list[JudgeReply]:
        plan = self.plan(requests)
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
                from alpagasus.judges.batch import run_batches

                asyncio.run(run_batches(self, plan, score_format))
            elif self.options.mode == "online":
                asyncio.run(self._run_online(plan.todo, score_format, desc))
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
                                      cached=key in plan.cached))
        return replies

    # -- online requests -----------------------------------------------------------------

    async def _run_online(self, todo: list[tuple[str, Messages, int]], score_format: ScoreFormat,
                          desc: str) -> None:
        cfg, opts, usage = self.cfg, self.options, self.usage
        provider = make_provider(cfg, self.http_client)
        rpm = make_limiter(cfg.requests_per_minute, 1) if cfg.requests_per_minute else None
        largest = max(n for _, _, n in todo) + cfg.max_tokens
        tpm = make_limiter(cfg.tokens_per_minute, largest) if cfg.tokens_per_minute else None
        pending = iter(todo)
        reserved = 0.0  # worst-case cost of the requests in flight
        stop: list[str] = []
        bar = tqdm(total=len(todo), desc=desc, unit="req", disable=not opts.progress,
                   dynamic_ncols=True, smoothing=0.1)
        last_postfix = 0.0

        def postfix() -> None:
            nonlocal last_postfix
            now = time.monotonic()
            if now - last_postfix > 0.5:  # cheap: tqdm redraws at most a few times a second
                last_postfix = now
                bar.set_postfix_str(f"tok {usage.input_tokens}+{usage.output_tokens} "
                                    f"${usage.cost_usd:.4f} retries {usage.retries}",
                                    refresh=False)

        async def one(key: str, messages: Messages, n_in: int) -> None:
            for attempt in range(cfg.max_retries + 1):
                if rpm:
                    await rpm.acquire()
                if tpm:
                    await tpm.acquire(n_in + cfg.max_tokens)
                usage.attempts += 1
                t0 = time.perf_counter()
                try:
                    if _timeout is not None:  # no extra task per request (Python >= 3.11)
                        async with _timeout(cfg.request_timeout_s):
                            text, tin, tout = await provider.send(messages)
                    else:
                        text, tin, tout = await asyncio.wait_for(provider.send(messages),
                                                                 cfg.request_timeout_s)
                # asyncio.TimeoutError: distinct from TimeoutError before Python 3.11.
                except (_Retryable, asyncio.TimeoutError) as e:  # noqa: UP041
                    kind = e.kind if isinstance(e, _Retryable) else "timeout"
                    usage.errors[kind] = usage.errors.get(kind, 0) + 1
                    if attempt == cfg.max_retries:
                        last = f": {e.message}" if isinstance(e, _Retryable) and e.message else ""
                        raise JudgeRequestError(f"{cfg.name}: giving up after {attempt + 1} "
                                                f"attempts ({kind}{last})") from e
                    usage.retries += 1
                    wait = e.wait if isinstance(e, _Retryable) and e.wait is not None else \
                        backoff_s(attempt, cfg.backoff_base_s, cfg.backoff_max_s, self._rng)
                    await _sleep(wait)
                    continue
                latency = time.perf_counter() - t0
                status, score = parse_for_cache(score_format, text)
                self.cache.put(key, self.judge, cfg.model, text, status=status, score=score,
                               parser_version=PARSER_VERSION, input_tokens=tin,
                               output_tokens=tout, latency_s=latency, source="online")
                usage.requests += 1
                usage.input_tokens += tin
                usage.output_tokens += tout
                usage.cost_usd += self.price(tin, tout)
                return

        async def worker() -> None:
            nonlocal reserved
            for key, messages, n_in in pending:
                if stop:
                    return
                worst = self.price(n_in, cfg.max_tokens)
                if opts.max_cost_usd is not None and \
                        usage.cost_usd + reserved + worst > opts.max_cost_usd:
                    stop.append(f"rate.max_cost_usd={opts.max_cost_usd} reached: spent "
                                f"${usage.cost_usd:.4f}, the next request could cost "
                                f"${worst:.4f}")
                    return
                reserved += worst
                try:
                    await one(key, messages, n_in)
                finally:
                    reserved -= worst
                bar.update(1)
                postfix()

        tasks = [asyncio.create_task(worker())
                 for _ in range(max(1, min(cfg.concurrency, len(todo))))]
        try:
            # The first error that retrying cannot fix stops every worker (Python 3.10 has no
            # TaskGroup); replies already stored stay in the cache.
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                if task.exception() is not None:
                    raise task.exception()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            bar.set_postfix_str(f"tok {usage.input_tokens}+{usage.output_tokens} "
                                f"${usage.cost_usd:.4f} retries {usage.retries}")
            bar.close()
            await provider.aclose()
            log.info("[%s] sent %d requests (%d attempts, %d retried: %s), %d+%d tokens, $%.4f",
                     desc, usage.requests, usage.attempts, usage.retries, usage.errors or "none",
                     usage.input_tokens, usage.output_tokens, usage.cost_usd)
        if stop:
            raise BudgetExceeded(stop[0] + "; the replies already paid for are cached")


def make_engine_options(rate_cfg: Any) -> EngineOptions:
    return EngineOptions(mode=rate_cfg.mode, dry_run=rate_cfg.dry_run,
                         max_cost_usd=rate_cfg.max_cost_usd, offline=rate_cfg.reparse,
                         progress=rate_cfg.progress)

