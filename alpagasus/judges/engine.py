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
import email.utils
import json
import logging
import math
import os
import random
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiolimiter import AsyncLimiter
from tqdm.auto import tqdm

from alpagasus.config import JudgeConfig
from alpagasus.errors import AlpagasusError
from alpagasus.expected import LogprobsError, compact_logprobs, openai_logprobs
from alpagasus.judges import JudgeReply, Messages, ScoreFormat, judge_identity
from alpagasus.judges.cache import CachedReply, Claim, ReplyCache, judge_key, new_owner, request_key
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


REPLIES_CACHED = "every reply received so far is cached"


class JudgeRequestError(AlpagasusError, RuntimeError):
    """A non-retryable API error (bad request, auth, unknown model): the provider's message."""

    exit_code = 2
    hint = ("check the key in the variable judge.api_key_env names, judge.model and "
            f"judge.base_url; {REPLIES_CACHED}")


class NoLogprobs(JudgeRequestError):
    """score_mode=expected, and the server answered without the logprobs it was asked for."""

    hint = ("use judge.score_mode=text (scores from the reply text only), or a server that "
            "returns logprobs (OpenAI, vLLM); docs/expected-scores.md")


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


def mode_value(x: Any) -> str:
    """A mode as its string: Enum members (str-mixin or not) and plain strings alike."""
    return str(getattr(x, "value", x))


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


# --- providers: one request each, errors classified ------------------------------------------

# Where a judge's key might be by mistake: named in the log when the judge's own is unset.
_KNOWN_KEY_VARS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OPENAI_COMPATIBLE_API_KEY")


def _api_key(cfg: JudgeConfig) -> str:
    key = os.environ.get(cfg.api_key_env) if cfg.api_key_env else None
    if key:
        return key
    if cfg.base_url:  # a self-hosted server usually ignores the key, but the SDKs want one
        others = [v for v in _KNOWN_KEY_VARS if v != cfg.api_key_env and os.environ.get(v)]
        read = cfg.api_key_env or "(none: judge.api_key_env is not set)"
        if others:
            log.warning(
                "judge '%s' reads its API key from %s, which is not set, so requests to %s "
                "carry no real key (fine for a server without auth). %s is set but this judge "
                "does not read it: export %s=... or set judge.api_key_env=%s if the server "
                "needs it.", cfg.name, read, cfg.base_url, " and ".join(others),
                cfg.api_key_env or "NAME", others[0])
        else:
            log.info("judge '%s' reads its API key from %s, which is not set: requests to %s "
                     "carry no real key", cfg.name, read, cfg.base_url)
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
        self.url = str(self.client.base_url).rstrip("/") + "/chat/completions"

    def body(self, messages: Messages) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.cfg.model, "messages": messages,
                                "temperature": self.cfg.temperature,
                                "max_tokens": self.cfg.max_tokens}
        if self.cfg.top_p != 1.0:
            body["top_p"] = self.cfg.top_p
        if expects_logprobs(self.cfg):  # expected scores: the tokens' probabilities
            body["logprobs"] = True
            body["top_logprobs"] = self.cfg.top_logprobs
        return body

    async def send(self, messages: Messages) -> tuple[str, int, int, list | None]:
        # client.post (the SDKs' documented route for raw requests) with a body we built
        # ourselves: the same auth, URL, timeout and error classes as chat.completions.create,
        # without its typed-params transform and response models, about half the client CPU
        # per request (benchmarks/rating_throughput.py).
        try:
            r = await self.client.post("/chat/completions", body=self.body(messages),
                                       cast_to=object)
        except Exception as e:
            raise _classify(self.sdk, "OpenAI", e, self.key, self.url) from e
        return reply_from_openai(r, self.url)

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
        self.url = str(self.client.base_url).rstrip("/") + "/v1/messages"

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

    async def send(self, messages: Messages) -> tuple[str, int, int, list | None]:
        # As for OpenAI: client.post with our own body. It also carries temperature/top_p,
        # which this SDK's messages.create() no longer names but the Messages API reads.
        try:
            r = await self.client.post("/v1/messages", body=self.body(messages),
                                       cast_to=object)
        except Exception as e:
            raise _classify(self.sdk, "Anthropic", e, self.key, self.url) from e
        return reply_from_anthropic(r, self.url)

    async def aclose(self) -> None:
        await self.client.close()


def _json_body(body: Any, where: str) -> dict[str, Any]:
    if not isinstance(body, dict):  # a 200 that is not JSON: no retry would fix the server
        raise JudgeRequestError(f"the judge server at {where} replied with non-JSON: "
                                f"{str(body)[:200]!r}")
    return body


def _not_a_reply(where: str, body: dict[str, Any], what: str) -> JudgeRequestError:
    return JudgeRequestError(
        f"the judge server at {where} replied with JSON that is not {what}: "
        f"{json.dumps(body, ensure_ascii=False)[:300]}. Is judge.base_url right (the server's "
        "API root, e.g. http://HOST:PORT/v1 for OpenAI-protocol servers) and judge.backend the "
        "protocol it speaks?")


def reply_from_openai(body: Any, where: str = "?") -> tuple[str, int, int, list | None]:
    """(text, prompt tokens, reply tokens, logprobs as the cache stores them or None)."""
    body = _json_body(body, where)
    choices = body.get("choices")
    if not (isinstance(choices, list) and choices and isinstance(choices[0], dict)
            and isinstance(choices[0].get("message"), dict)):
        raise _not_a_reply(where, body, "a chat completion (no 'choices[0].message')")
    usage = body.get("usage") or {}
    text = choices[0]["message"].get("content") or ""
    try:
        tokens = openai_logprobs(choices[0])
    except LogprobsError as e:
        raise _not_a_reply(where, body, f"chat completion logprobs ({e})") from e
    return (text, usage.get("prompt_tokens") or 0, usage.get("completion_tokens") or 0,
            None if tokens is None else compact_logprobs(tokens))


def reply_from_anthropic(body: Any, where: str = "?") -> tuple[str, int, int, list | None]:
    body = _json_body(body, where)
    content = body.get("content")
    if not isinstance(content, list):
        raise _not_a_reply(where, body, "a Messages API reply (no 'content' list)")
    usage = body.get("usage") or {}
    text = "".join(b.get("text", "") for b in content
                   if isinstance(b, dict) and b.get("type") == "text")
    return text, usage.get("input_tokens") or 0, usage.get("output_tokens") or 0, None


def _classify(sdk: Any, provider: str, e: Exception, key: str = "", url: str = "?") -> Exception:
    if isinstance(e, sdk.APIStatusError):
        status = e.status_code
        # Some servers quote the key they were sent: it must not reach the logs.
        message = e.message.replace(key, "***") if len(key) >= 8 else e.message
        # OpenAI answers an exhausted quota with 429 too, but waiting does not refill it.
        quota = getattr(e, "code", None) == "insufficient_quota"
        if (status in RETRYABLE_STATUS or status >= 500) and not quota:
            return _Retryable(f"http {status}", retry_after_s(e.response.headers),
                              f"{url}: {message}")
        return JudgeRequestError(f"{provider} API error {status} from {url}: {message}")
    if isinstance(e, sdk.APITimeoutError):
        return _Retryable("timeout", None, f"no reply from {url} in time")
    if isinstance(e, sdk.APIConnectionError):
        cause = e.__cause__ or e.__context__
        return _Retryable("connection error", None,
                          f"cannot connect to {url}: {cause or e} ({type(cause or e).__name__})")
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
        cost = (input_tokens * self.cfg.price_input_per_mtok
                + output_tokens * self.cfg.price_output_per_mtok) / 1e6
        return cost * (self.cfg.batch_price_factor if batch else 1.0)

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
                from alpagasus.judges.batch import run_batches

                asyncio.run(run_batches(self, plan, score_format))
            elif self.options.mode == "online":
                asyncio.run(self._run_online(plan, score_format, desc))
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

    # -- online requests -----------------------------------------------------------------

    async def _run_online(self, plan: Plan, score_format: ScoreFormat, desc: str) -> None:
        cfg, opts, usage, cache, owner = self.cfg, self.options, self.usage, self.cache, self.owner
        budget = self.budget or self.make_budget(plan)
        todo = plan.todo
        provider = make_provider(cfg, self.http_client)
        rpm = make_limiter(cfg.requests_per_minute, 1) if cfg.requests_per_minute else None
        largest = max(n for _, _, n in todo) + cfg.max_tokens
        tpm = make_limiter(cfg.tokens_per_minute, largest) if cfg.tokens_per_minute else None
        scope_cache = mode_value(opts.budget_scope) == "cache"
        # score_mode=expected: the other workers wait until the first reply shows logprobs
        # (a server without them fails after one paid request, not a whole run).
        first_reply = ({"sender": None, "seen": asyncio.Event()} if expects_logprobs(cfg)
                       else None)
        queue = deque(todo)
        held: dict[str, tuple[str, Messages, int]] = {}  # keys another job is sending
        ever_held: set[str] = set()
        waiters: list[asyncio.Future] = []
        stop: list[float] = []  # the worst case of the request that did not fit
        failed: list[BaseException] = []
        loop = asyncio.get_running_loop()
        bar = tqdm(total=len(todo), desc=desc, unit="req", disable=not opts.progress,
                   dynamic_ncols=True, smoothing=0.1)
        last_postfix = 0.0

        def postfix() -> None:
            nonlocal last_postfix
            now = time.monotonic()
            if now - last_postfix > 0.5:  # cheap: tqdm redraws at most a few times a second
                last_postfix = now
                bar.set_postfix_str(f"tok {usage.input_tokens}+{usage.output_tokens} "
                                    f"${budget.spent:.4f} retries {usage.retries}",
                                    refresh=False)

        def wake() -> None:  # something changed: a request ended, a held key resolved
            while waiters:
                f = waiters.pop()
                if not f.done():
                    f.set_result(None)

        async def changed() -> None:
            f = loop.create_future()
            waiters.append(f)
            await f

        def stored_elsewhere(replies: dict[str, CachedReply]) -> None:
            for r in replies.values():
                if scope_cache:  # another job paid: it is this cache's spend on this data
                    budget.spent += self.reply_cost(r)
            bar.update(len(replies))

        async def one(key: str, messages: Messages, n_in: int) -> None:
            if first_reply is not None:  # expected: one request proves the server's logprobs
                if not first_reply["sender"]:
                    first_reply["sender"] = key
                elif first_reply["sender"] != key:
                    await first_reply["seen"].wait()
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
                            text, tin, tout, logprobs = await provider.send(messages)
                    else:
                        text, tin, tout, logprobs = await asyncio.wait_for(
                            provider.send(messages), cfg.request_timeout_s)
                # asyncio.TimeoutError: distinct from TimeoutError before Python 3.11.
                except (_Retryable, asyncio.TimeoutError) as e:  # noqa: UP041
                    if isinstance(e, _Retryable):
                        kind, message = e.kind, e.message
                    else:
                        kind = "timeout"
                        message = f"no reply from {provider.url} in {cfg.request_timeout_s}s"
                    first = kind not in usage.errors
                    usage.errors[kind] = usage.errors.get(kind, 0) + 1
                    if attempt == cfg.max_retries:
                        raise JudgeRequestError(
                            f"{cfg.name}: giving up after {attempt + 1} attempts "
                            f"({kind}: {message})",
                            hint=give_up_hint(kind, cfg, str(provider.client.base_url).rstrip("/"))) from e
                    if first:  # at once, not after a minute of silent retries
                        log.warning("[%s] %s: %s; retrying (up to %d attempts per request, "
                                    "backoff up to %ss)", desc, kind, message,
                                    cfg.max_retries + 1, cfg.backoff_max_s)
                    usage.retries += 1
                    wait = e.wait if isinstance(e, _Retryable) and e.wait is not None else \
                        backoff_s(attempt, cfg.backoff_base_s, cfg.backoff_max_s, self._rng)
                    await _sleep(wait)
                    continue
                usage.requests += 1
                _, overrun = self.store(key, score_format, text, n_in, tin, tout,
                                        time.perf_counter() - t0, "online", logprobs)
                if first_reply is not None:
                    first_reply["seen"].set()
                if overrun:
                    log.warning("[%s] the server replied with %d tokens, more than max_tokens="
                                "%d: it does not stop at max_tokens, so the budget now reserves "
                                "up to context_tokens=%d per request in flight", desc, tout,
                                cfg.max_tokens, cfg.context_tokens)
                return

        async def worker() -> None:
            while not stop:
                if failed:
                    raise failed[0]
                if not queue:
                    if not held:
                        return
                    await changed()
                    continue
                item = queue.popleft()
                key, messages, n_in = item
                if budget.cap is not None and not budget.fits(n_in):
                    queue.appendleft(item)
                    if budget.in_flight:  # wait: what is in flight may cost less than feared
                        await changed()
                        continue
                    stop.append(budget.worst(n_in))
                    wake()
                    return
                claim = cache.claim(key, owner, opts.lease_s)
                if claim is Claim.HELD:
                    if not ever_held:
                        log.info("[%s] another job is sending some of these requests: "
                                 "waiting for its replies instead of paying twice", desc)
                    held[key] = item
                    if key not in ever_held:
                        ever_held.add(key)
                        usage.waited_for += 1
                    continue
                if claim is Claim.STORED:
                    stored_elsewhere(cache.get_many([key]))
                    continue
                budget.start(n_in)
                try:
                    await one(key, messages, n_in)
                finally:
                    budget.finish(n_in)
                    wake()
                bar.update(1)
                postfix()

        async def housekeeping() -> None:
            """Renew our leases; pick up what other jobs stored or gave up."""
            try:
                last_renew = time.monotonic()
                while True:
                    await asyncio.sleep(min(opts.poll_s, opts.lease_s / 3))
                    if time.monotonic() - last_renew >= opts.lease_s / 3:
                        cache.renew(owner, opts.lease_s)
                        last_renew = time.monotonic()
                    if not held:
                        continue
                    stored = cache.get_many(held)
                    for k in stored:
                        del held[k]
                    stored_elsewhere(stored)
                    for k in cache.claimable(held):  # released, expired or dead owner
                        queue.append(held.pop(k))
                    if stored or queue:
                        wake()
            except asyncio.CancelledError:
                raise
            except BaseException as e:  # the workers raise it
                failed.append(e)
                wake()

        tasks = [asyncio.create_task(worker())
                 for _ in range(max(1, min(cfg.concurrency, len(todo))))]
        keeper = asyncio.create_task(housekeeping())
        try:
            # The first error that retrying cannot fix stops every worker (Python 3.10 has no
            # TaskGroup); replies already stored stay in the cache.
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                if task.exception() is not None:
                    raise task.exception()
        finally:
            keeper.cancel()
            for task in tasks:
                task.cancel()
            await asyncio.gather(keeper, *tasks, return_exceptions=True)
            cache.release(owner)
            bar.set_postfix_str(f"tok {usage.input_tokens}+{usage.output_tokens} "
                                f"${budget.spent:.4f} retries {usage.retries}")
            bar.close()
            await provider.aclose()
            log.info("[%s] sent %d requests (%d attempts, %d retried: %s), %d+%d tokens, $%.4f"
                     "%s", desc, usage.requests, usage.attempts, usage.retries,
                     usage.errors or "none", usage.input_tokens, usage.output_tokens,
                     usage.cost_usd, f"; waited for {usage.waited_for} requests another job "
                     "was sending" if usage.waited_for else "")
        if stop:
            raise BudgetExceeded(
                f"rate.max_cost_usd={opts.max_cost_usd} reached: {self.spend_report(plan)}; "
                f"the next request could cost up to ${stop[0]:.4f}. Every reply paid for is "
                "cached: rerun with a higher rate.max_cost_usd to continue")


def make_engine_options(rate_cfg: Any, journal: Any = "wal") -> EngineOptions:
    return EngineOptions(mode=rate_cfg.mode, dry_run=rate_cfg.dry_run,
                         max_cost_usd=rate_cfg.max_cost_usd,
                         budget_scope=mode_value(getattr(rate_cfg, "budget_scope", "cache")),
                         offline=rate_cfg.reparse, progress=rate_cfg.progress,
                         journal=mode_value(journal))
