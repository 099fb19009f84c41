"""Online requests: ``concurrency`` workers, rate limits, retries, claims, the budget."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque

from tqdm.auto import tqdm

from alpagasus.judges.base import Messages, ScoreFormat
from alpagasus.judges.budget import Plan
from alpagasus.judges.cache import CachedReply, Claim
from alpagasus.judges.errors import BudgetExceeded, JudgeRequestError
from alpagasus.judges.options import expects_logprobs, mode_value
from alpagasus.judges.providers import make_provider
from alpagasus.judges.retry import _Retryable, backoff_s, give_up_hint, make_limiter
from alpagasus.judges.sending import SendingJudge

log = logging.getLogger(__name__)

_sleep = asyncio.sleep  # a seam for tests that check the waits
_timeout = getattr(asyncio, "timeout", None)  # Python >= 3.11


async def run_online(judge: SendingJudge, plan: Plan, score_format: ScoreFormat, desc: str) -> None:
    cfg, opts, usage, cache, owner = judge.cfg, judge.options, judge.usage, judge.cache, judge.owner
    budget = judge.budget or judge.make_budget(plan)
    todo = plan.todo
    provider = make_provider(cfg, judge.http_client)
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
                budget.spent += judge.reply_cost(r)
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
                    backoff_s(attempt, cfg.backoff_base_s, cfg.backoff_max_s, judge._rng)
                await _sleep(wait)
                continue
            usage.requests += 1
            _, overrun = judge.store(key, score_format, text, n_in, tin, tout,
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
            f"rate.max_cost_usd={opts.max_cost_usd} reached: {judge.spend_report(plan)}; "
            f"the next request could cost up to ${stop[0]:.4f}. Every reply paid for is "
            "cached: rerun with a higher rate.max_cost_usd to continue")

