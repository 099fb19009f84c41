"""Provider batch APIs (half price, results within 24 h): ``rate.mode=batch``.

A run first polls the batch jobs it (or an earlier run) submitted for this judge, whose ids
live in the reply cache, and stores every finished result there; then it submits the requests
that still have no reply and are not in a running job (so failed rows are retried), records
the new job ids, and stops with BatchPending. Rerun the same command to poll again; once
every request has a reply the stage completes like an online run, from the cache.

OpenAI Batch: upload a JSONL file (purpose "batch") of
``{"custom_id", "method": "POST", "url": "/v1/chat/completions", "body"}`` lines, create a
batch on it, and read the output file (``{"custom_id", "response": {"status_code",
"body"}, "error"}`` lines) and the error file when the batch is completed, expired or
cancelled. Anthropic Message Batches: create with ``requests=[{"custom_id", "params"}]``,
and once ``processing_status`` is "ended" stream the results (``{"custom_id", "result":
{"type": "succeeded", "message"}}`` or errored/canceled/expired).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from alpagasus.judges.base import ScoreFormat
from alpagasus.judges.budget import Plan
from alpagasus.judges.cache import Claim
from alpagasus.judges.errors import BatchPending, BudgetExceeded, JudgeRequestError
from alpagasus.judges.providers import (
    AnthropicProvider,
    OpenAIProvider,
    make_provider,
    reply_from_anthropic,
    reply_from_openai,
)
from alpagasus.judges.sending import SendingJudge

log = logging.getLogger(__name__)

# Well under both providers' limits (OpenAI 50,000 requests / 200 MB per file, Anthropic
# 100,000 requests / 256 MB per batch), so a failed job costs little to resubmit.
BATCH_SIZE = 10_000
_OPENAI_ENDED = {"completed", "failed", "expired", "cancelled"}


async def run_batches(judge: SendingJudge, plan: Plan, score_format: ScoreFormat) -> None:
    provider = make_provider(judge.cfg, judge.http_client)
    try:
        await _run(judge, provider, plan, score_format)
    finally:
        await provider.aclose()


async def _run(judge: SendingJudge, provider: Any, plan: Plan, score_format: ScoreFormat) -> None:
    running: set[str] = set()
    n_running = 0
    for batch_id, name, keys in list(judge.cache.open_batches(judge.judge)):
        if name != provider.name:
            continue
        try:
            ended, stored, failed = await _poll(judge, provider, batch_id, score_format, plan)
        except Exception as e:
            sdk = provider.sdk
            if isinstance(e, sdk.APIStatusError) and e.status_code < 500 and e.status_code != 429:
                raise JudgeRequestError(f"{provider.name} batch {batch_id}: API error "
                                        f"{e.status_code}: {e.message}") from e
            raise
        if ended:
            detail = f"{stored} stored, {failed} failed"
            judge.cache.close_batch(batch_id, detail)
            log.info("batch %s ended: %s", batch_id, detail)
        else:
            running |= set(keys)
            n_running += 1
    stored_now = judge.cache.get_many(k for k, _, _ in plan.todo)
    remaining = [t for t in plan.todo if t[0] not in stored_now and t[0] not in running]
    if not remaining and not n_running:
        return
    held, capped = 0, 0
    if remaining:
        # Claim before submitting, so that two jobs do not submit (and pay for) the same
        # requests; once the job id is recorded the open batch itself marks them as taken.
        try:
            claims = [(t, judge.cache.claim(t[0], judge.owner, judge.options.lease_s))
                      for t in remaining]
            held = sum(c is Claim.HELD for _, c in claims)
            remaining = [t for t, c in claims if c is Claim.CLAIMED]
            if remaining:
                in_flight = [t for t in plan.todo if t[0] in running]
                kept = _within_budget(judge, remaining, in_flight)
                capped, remaining = len(remaining) - len(kept), kept
                if not kept and not n_running:
                    raise BudgetExceeded(
                        f"rate.max_cost_usd={judge.options.max_cost_usd} reached: "
                        f"{judge.spend_report(plan)}; not even one more request fits")
            for start in range(0, len(remaining), BATCH_SIZE):
                chunk = remaining[start:start + BATCH_SIZE]
                batch_id = await _submit(provider, chunk)
                judge.cache.add_batch(batch_id, provider.name, judge.judge,
                                      [k for k, _, _ in chunk])
                n_running += 1
                log.info("submitted %s batch %s with %d requests", provider.name, batch_id,
                         len(chunk))
        finally:
            judge.cache.release(judge.owner)
    notes = [f"{held} being submitted by another job"] if held else []
    if capped:
        notes.append(f"{capped} not submitted: rate.max_cost_usd={judge.options.max_cost_usd} "
                     "leaves no room for them while the running jobs may still cost their "
                     "worst case")
    raise BatchPending(
        f"{n_running} {provider.name} batch job(s) running for "
        f"{len(running) + len(remaining)} requests ({len(stored_now)} stored now"
        f"{''.join('; ' + n for n in notes)}); job ids are kept in {judge.cache.path}: "
        "rerun the same command later to collect the results")


def _within_budget(judge: SendingJudge, todo: list[tuple[str, Any, int]],
                   in_flight: list[tuple[str, Any, int]]) -> list[tuple[str, Any, int]]:
    """The requests that may be submitted: spent + the worst case of the jobs still running
    and of every request submitted stays within the cap (batch prices)."""
    budget = judge.budget
    if budget is None or budget.cap is None:
        return todo
    for _, _, n in in_flight:
        budget.start(n)
    kept = []
    for t in todo:
        if not budget.fits(t[2]):
            break
        budget.start(t[2])
        kept.append(t)
    if len(kept) < len(todo):
        log.warning("rate.max_cost_usd=%s: submitting %d of %d requests (spent $%.4f, worst "
                    "case of everything running $%.4f)", budget.cap, len(kept), len(todo),
                    budget.spent, budget.reserved())
    return kept


async def _submit(provider: Any, chunk: list[tuple[str, Any, int]]) -> str:
    if isinstance(provider, OpenAIProvider):
        lines = [json.dumps({"custom_id": key, "method": "POST", "url": "/v1/chat/completions",
                             "body": provider.body(messages)}, ensure_ascii=False)
                 for key, messages, _ in chunk]
        data = ("\n".join(lines) + "\n").encode()
        f = await provider.client.files.create(file=("alpagasus-batch.jsonl", data),
                                               purpose="batch")
        batch = await provider.client.batches.create(
            input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h")
        return batch.id
    assert isinstance(provider, AnthropicProvider)
    batch = await provider.client.messages.batches.create(
        requests=[{"custom_id": key, "params": provider.body(messages)}
                  for key, messages, _ in chunk])
    return batch.id


async def _poll(judge: SendingJudge, provider: Any, batch_id: str, score_format: ScoreFormat,
                plan: Plan) -> tuple[bool, int, int]:
    """(ended, replies stored, rows failed) for one job."""
    stored = failed = 0

    n_in = {k: n for k, _, n in plan.todo}

    def store(key: str, text: str, tin: int, tout: int, logprobs: list | None) -> None:
        nonlocal stored
        if key in judge.stored_here or judge.cache.get_many([key]):
            return  # a job polled by two runs: charged once
        judge.store(key, score_format, text, n_in.get(key, 0), tin, tout, 0.0, "batch",
                    logprobs)
        stored += 1

    if isinstance(provider, OpenAIProvider):
        batch = await provider.client.batches.retrieve(batch_id)
        if batch.status not in _OPENAI_ENDED:
            log.info("batch %s: %s (%s)", batch_id, batch.status, batch.request_counts)
            return False, 0, 0
        if batch.output_file_id:
            content = await provider.client.files.content(batch.output_file_id)
            for line in content.text.splitlines():
                if not line.strip():
                    continue
                row = json.loads(line)
                response = row.get("response") or {}
                if row.get("error") or response.get("status_code") != 200:
                    failed += 1
                    continue
                store(row["custom_id"], *reply_from_openai(response["body"], f"batch {batch_id}"))
        if batch.error_file_id:
            content = await provider.client.files.content(batch.error_file_id)
            failed += sum(1 for line in content.text.splitlines() if line.strip())
        if batch.status != "completed":
            log.warning("batch %s ended %s: %s", batch_id, batch.status, batch.errors)
        return True, stored, failed
    batch = await provider.client.messages.batches.retrieve(batch_id)
    if batch.processing_status != "ended":
        log.info("batch %s: %s (%s)", batch_id, batch.processing_status, batch.request_counts)
        return False, 0, 0
    results = await provider.client.messages.batches.results(batch_id)
    async for row in results:
        if row.result.type == "succeeded":
            store(row.custom_id, *reply_from_anthropic(row.result.message.model_dump(),
                                                      f"batch {batch_id}"))
        else:
            failed += 1
    return True, stored, failed
