"""The API judge engine at the HTTP layer: Retry-After, non-retryable errors, the budget, the
dry run, and both providers' batch APIs, with the providers' documented payloads.

The openai/anthropic SDKs installed here run on httpx2, which respx does not patch, so the
fake provider is an ``httpx2.MockTransport`` handed to the SDK client (the same seam: every
request goes through the SDK's real HTTP code and is answered by the handler below).
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx2
import pytest

from alpagasus.config import JudgeConfig
from alpagasus.judges import online as engine_mod
from alpagasus.judges.cache import ReplyCache
from alpagasus.judges.engine import (
    ApiJudge,
    BatchPending,
    BudgetExceeded,
    DryRun,
    EngineOptions,
    JudgeRequestError,
)

MESSAGES = [[{"role": "system", "content": "Rate it."},
             {"role": "user", "content": f"item {i}"}] for i in range(6)]


def judge_cfg(backend: str = "openai", **kw: Any) -> JudgeConfig:
    base = {"name": "t", "backend": backend, "model": "m", "base_url": "http://fake.test/v1"
            if backend == "openai" else "http://fake.test", "api_key_env": "FAKE_KEY",
            "concurrency": 1, "backoff_base_s": 0.01, "max_tokens": 16, "context_tokens": 4096}
    return JudgeConfig(**{**base, **kw})


def openai_completion(text: str, tin: int = 10, tout: int = 4) -> dict[str, Any]:
    return {"id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": tin, "completion_tokens": tout, "total_tokens": tin + tout}}


def anthropic_message(text: str, tin: int = 10, tout: int = 4) -> dict[str, Any]:
    return {"id": "msg_1", "type": "message", "role": "assistant", "model": "m",
            "content": [{"type": "text", "text": text}], "stop_reason": "end_turn",
            "stop_sequence": None, "usage": {"input_tokens": tin, "output_tokens": tout}}


def make(tmp_path, handler, cfg: JudgeConfig | None = None, **opts: Any) -> ApiJudge:
    client = httpx2.AsyncClient(transport=httpx2.MockTransport(handler))
    return ApiJudge(cfg or judge_cfg(), tmp_path / "cache.sqlite",
                    EngineOptions(progress=False, **opts), http_client=client, seed=0)


@pytest.fixture(autouse=True)
def _key(monkeypatch):
    monkeypatch.setenv("FAKE_KEY", "sk-test")


@pytest.fixture
def sleeps(monkeypatch) -> list[float]:
    """Record the engine's retry waits instead of sleeping them."""
    waits: list[float] = []

    async def fake_sleep(s: float) -> None:
        waits.append(s)

    monkeypatch.setattr(engine_mod, "_sleep", fake_sleep)
    return waits


@pytest.mark.parametrize("headers,expected", [
    ({"retry-after-ms": "1500"}, 1.5),
    ({"retry-after": "7"}, 7.0),
])
def test_retry_after_is_honoured(tmp_path, sleeps, headers, expected):
    calls = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        calls.append(request)
        if len(calls) == 1:
            return httpx2.Response(429, headers=headers, json={"error": {
                "message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}})
        return httpx2.Response(200, json=openai_completion("4.5\nfine"))

    judge = make(tmp_path, handler)
    replies = judge.complete(MESSAGES[:1], "rating")
    assert [r.text for r in replies] == ["4.5\nfine"]
    assert sleeps == [expected] and len(calls) == 2
    assert judge.usage.retries == 1 and judge.usage.errors == {"http 429": 1}


def test_5xx_backs_off_with_jitter_then_gives_up(tmp_path, sleeps):
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(503, json={"error": {"message": "overloaded"}})

    judge = make(tmp_path, handler, judge_cfg(max_retries=4, backoff_base_s=1.0,
                                              backoff_max_s=4.0))
    with pytest.raises(JudgeRequestError, match="giving up after 5 attempts.*overloaded"):
        judge.complete(MESSAGES[:1], "rating")
    assert len(sleeps) == 4
    # Full jitter: each wait in [0, min(cap, base * 2**attempt)].
    assert all(0 <= w <= min(4.0, 2 ** i) for i, w in enumerate(sleeps))


@pytest.mark.parametrize("backend,status,body,message", [
    ("openai", 401, {"error": {"message": "Incorrect API key provided: sk-te**st.",
                               "type": "invalid_request_error", "code": "invalid_api_key"}},
     "Incorrect API key provided"),
    ("openai", 400, {"error": {"message": "The model `m` does not exist",
                               "type": "invalid_request_error", "code": "model_not_found"}},
     "does not exist"),
    ("openai", 429, {"error": {"message": "You exceeded your current quota",
                               "type": "insufficient_quota", "code": "insufficient_quota"}},
     "exceeded your current quota"),
    ("anthropic", 400, {"type": "error", "error": {"type": "invalid_request_error",
                                                   "message": "max_tokens: Field required"}},
     "max_tokens: Field required"),
    ("anthropic", 403, {"type": "error", "error": {"type": "permission_error",
                                                   "message": "no access to model m"}},
     "no access to model m"),
])
def test_non_retryable_errors_stop_with_the_providers_message(tmp_path, sleeps, backend,
                                                              status, body, message):
    calls = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        calls.append(request)
        if len(calls) <= 2:  # two replies arrive before the error
            ok = openai_completion("4") if backend == "openai" else anthropic_message("4")
            return httpx2.Response(200, json=ok)
        return httpx2.Response(status, json=body)

    judge = make(tmp_path, handler, judge_cfg(backend))
    with pytest.raises(JudgeRequestError, match=re.escape(message)) as err:
        judge.complete(MESSAGES, "rating")
    assert str(status) in str(err.value)
    assert len(calls) == 3 and sleeps == []  # not retried
    assert ReplyCache(tmp_path / "cache.sqlite").count() == 2  # what arrived is kept


def test_anthropic_request_payload(tmp_path):
    seen = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append((request.url.path, request.headers, json.loads(request.content)))
        return httpx2.Response(200, json=anthropic_message("5\nok"))

    make(tmp_path, handler, judge_cfg("anthropic")).complete(MESSAGES[:1], "rating")
    path, headers, body = seen[0]
    assert path == "/v1/messages"
    assert "sk-test" in headers.get("x-api-key", "") + headers.get("authorization", "")
    assert body["system"] == "Rate it." and body["messages"] == [MESSAGES[0][1]]
    assert body["max_tokens"] == 16 and body["temperature"] == 0.0


def test_budget_stops_before_it_could_be_exceeded(tmp_path):
    calls = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        calls.append(request)
        return httpx2.Response(200, json=openai_completion("4", tin=100_000, tout=1))

    # $1/Mtok in and out: a request costs <= $0.1 + 16e-6, so $0.25 pays for two of the six
    # when the server is trusted to stop at max_tokens.
    cfg = judge_cfg(price_input_per_mtok=1.0, price_output_per_mtok=1.0, context_tokens=200_000,
                    reply_bound="max_tokens")
    judge = make(tmp_path, handler, cfg, max_cost_usd=0.25)
    judge._counter = type("C", (), {"count": staticmethod(lambda m: 100_000),
                                    "method": "fixed"})()
    with pytest.raises(BudgetExceeded, match="max_cost_usd=0.25") as stop:
        judge.complete(MESSAGES, "rating")
    assert len(calls) == 2 and judge.usage.cost_usd <= 0.25
    assert "spent $0.2000 on these 6 requests" in str(stop.value)  # 2 x (0.1 + 1e-6)
    assert ReplyCache(tmp_path / "cache.sqlite").count() == 2


def test_dry_run_sends_nothing(tmp_path):
    def handler(request: httpx2.Request) -> httpx2.Response:
        raise AssertionError("dry run sent a request")

    judge = make(tmp_path, handler, judge_cfg(price_input_per_mtok=1.0), dry_run=True)
    with pytest.raises(DryRun, match="6 requests would be sent"):
        judge.complete(MESSAGES, "rating")
    assert judge.plan_summary["to_send"] == 6 and judge.plan_summary["cost_usd_input"] > 0


def test_too_long_prompts_are_skipped_with_a_reason(tmp_path):
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, json=openai_completion("3"))

    long = [{"role": "user", "content": "word " * 3000}]
    replies = make(tmp_path, handler, judge_cfg(context_tokens=1000)).complete(
        [MESSAGES[0], long], "rating")
    assert replies[0].status == "ok"
    assert replies[1].status == "too_long" and "> context 1000" in replies[1].error


# --- batch APIs --------------------------------------------------------------------------------


class FakeOpenAIBatches:
    """Files + Batches endpoints as documented: upload JSONL, create, retrieve, content."""

    def __init__(self, fail_first: int = 1):
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.polls: dict[str, int] = {}
        self.fail_first = fail_first  # rows of the first batch that come back failed

    def batch(self, bid: str) -> dict[str, Any]:
        return {"id": bid, "object": "batch", "endpoint": "/v1/chat/completions",
                "errors": None, "completion_window": "24h", "created_at": 0,
                **self.batches[bid]}

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        path = request.url.path
        if request.method == "POST" and path == "/v1/files":
            assert b'name="purpose"' in request.content and b"batch" in request.content
            body = request.content
            jsonl = body[body.index(b"\r\n\r\n", body.index(b'name="file"')) + 4:]
            jsonl = jsonl[:jsonl.index(b"\r\n--")]
            fid = f"file-in{sum(f.startswith('file-in') for f in self.files)}"
            self.files[fid] = jsonl
            return httpx2.Response(200, json={"id": fid, "object": "file", "bytes": len(jsonl),
                                              "created_at": 0, "filename": "x.jsonl",
                                              "purpose": "batch", "status": "processed"})
        if request.method == "POST" and path == "/v1/batches":
            req = json.loads(request.content)
            assert req["endpoint"] == "/v1/chat/completions" and req["completion_window"] == "24h"
            bid = f"batch_{len(self.batches)}"
            self.batches[bid] = {"input_file_id": req["input_file_id"], "status": "validating"}
            self.polls[bid] = 0
            return httpx2.Response(200, json=self.batch(bid))
        m = re.fullmatch(r"/v1/batches/(batch_\d+)", path)
        if m:
            bid = m[1]
            self.polls[bid] += 1
            if self.polls[bid] >= 2 and self.batches[bid]["status"] != "completed":
                self._complete(bid)
            elif self.polls[bid] == 1:
                self.batches[bid]["status"] = "in_progress"
            return httpx2.Response(200, json=self.batch(bid))
        m = re.fullmatch(r"/v1/files/([\w-]+)/content", path)
        if m:
            return httpx2.Response(200, content=self.files[m[1]])
        raise AssertionError(f"unexpected {request.method} {path}")

    def _complete(self, bid: str) -> None:
        lines = [json.loads(x) for x in self.files[self.batches[bid]["input_file_id"]].splitlines()]
        out, err = [], []
        for i, line in enumerate(lines):
            assert line["method"] == "POST" and line["url"] == "/v1/chat/completions"
            assert line["body"]["model"] == "m" and line["body"]["max_tokens"] == 16
            if bid == "batch_0" and i < self.fail_first:
                err.append({"id": f"r{i}", "custom_id": line["custom_id"], "response": {
                    "status_code": 500, "request_id": "x", "body": {"error": {
                        "message": "server error"}}}, "error": None})
            else:
                user = line["body"]["messages"][-1]["content"]
                out.append({"id": f"r{i}", "custom_id": line["custom_id"], "response": {
                    "status_code": 200, "request_id": "x",
                    "body": openai_completion(f"4.5\nbatch reply to {user}")}, "error": None})
        self.files[f"file-out-{bid}"] = "\n".join(json.dumps(x) for x in out).encode()
        self.batches[bid].update(status="completed", output_file_id=f"file-out-{bid}",
                                 request_counts={"total": len(lines), "completed": len(out),
                                                 "failed": len(err)})
        if err:
            self.files[f"file-err-{bid}"] = "\n".join(json.dumps(x) for x in err).encode()
            self.batches[bid]["error_file_id"] = f"file-err-{bid}"


def test_openai_batch_submit_poll_ingest_and_retry_failed_rows(tmp_path):
    fake = FakeOpenAIBatches(fail_first=1)
    cfg = judge_cfg(price_input_per_mtok=2.0, price_output_per_mtok=2.0)

    def run():
        return make(tmp_path, fake, cfg, mode="batch").complete(MESSAGES, "rating")

    with pytest.raises(BatchPending, match="1 openai batch job"):
        run()  # submitted
    cache = ReplyCache(tmp_path / "cache.sqlite")
    assert cache.db.execute("SELECT id, state FROM batches").fetchall() == [("batch_0", "open")]
    with pytest.raises(BatchPending):
        run()  # still in progress: nothing resubmitted
    assert len(fake.batches) == 1
    with pytest.raises(BatchPending, match="1 openai batch job"):
        run()  # completed: 5 stored, the failed row goes into a new batch
    assert cache.count() == 5 and len(fake.batches) == 2
    assert len(fake.files["file-in1"].splitlines()) == 1
    with pytest.raises(BatchPending):
        run()
    judge = make(tmp_path, fake, cfg, mode="batch")
    replies = judge.complete(MESSAGES, "rating")
    assert [r.text for r in replies] == [f"4.5\nbatch reply to item {i}" for i in range(6)]
    assert all(r.source == "batch" for r in replies)
    assert cache.db.execute("SELECT COUNT(*) FROM batches WHERE state='closed'").fetchone() == (2,)


class FakeAnthropicBatches:
    def __init__(self):
        self.batches: dict[str, dict[str, Any]] = {}

    def batch(self, bid: str, ended: bool) -> dict[str, Any]:
        n = len(self.batches[bid]["requests"])
        return {"id": bid, "type": "message_batch",
                "processing_status": "ended" if ended else "in_progress",
                "request_counts": {"processing": 0 if ended else n, "succeeded": n - 1 if ended else 0,
                                   "errored": 1 if ended else 0, "canceled": 0, "expired": 0},
                "ended_at": "2024-09-24T19:37:24Z" if ended else None,
                "created_at": "2024-09-24T18:37:24.100435Z",
                "expires_at": "2024-09-25T18:37:24.100435Z", "cancel_initiated_at": None,
                "archived_at": None,
                "results_url": f"http://fake.test/v1/messages/batches/{bid}/results"
                if ended else None}

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        path = request.url.path
        if request.method == "POST" and path == "/v1/messages/batches":
            body = json.loads(request.content)
            bid = f"msgbatch_{len(self.batches)}"
            for r in body["requests"]:
                assert re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", r["custom_id"])
                assert r["params"]["model"] == "m" and r["params"]["system"] == "Rate it."
            self.batches[bid] = {"requests": body["requests"], "polls": 0}
            return httpx2.Response(200, json=self.batch(bid, False))
        m = re.fullmatch(r"/v1/messages/batches/(msgbatch_\d+)", path)
        if m:
            b = self.batches[m[1]]
            b["polls"] += 1
            return httpx2.Response(200, json=self.batch(m[1], b["polls"] >= 2))
        m = re.fullmatch(r"/v1/messages/batches/(msgbatch_\d+)/results", path)
        if m:
            lines = []
            for i, r in enumerate(self.batches[m[1]]["requests"]):
                if i == 0 and m[1] == "msgbatch_0":
                    result = {"type": "errored", "error": {"type": "error", "error": {
                        "type": "api_error", "message": "Internal server error"}}}
                else:
                    user = r["params"]["messages"][-1]["content"]
                    result = {"type": "succeeded", "message": anthropic_message(f"4\n{user}")}
                lines.append(json.dumps({"custom_id": r["custom_id"], "result": result}))
            return httpx2.Response(200, content="\n".join(lines).encode())
        raise AssertionError(f"unexpected {request.method} {path}")


def test_anthropic_message_batches(tmp_path):
    fake = FakeAnthropicBatches()
    cfg = judge_cfg("anthropic")

    def run():
        return make(tmp_path, fake, cfg, mode="batch").complete(MESSAGES, "rating")

    with pytest.raises(BatchPending):
        run()
    with pytest.raises(BatchPending):
        run()  # in progress
    with pytest.raises(BatchPending):
        run()  # ended: 5 stored, the errored one resubmitted
    assert ReplyCache(tmp_path / "cache.sqlite").count() == 5 and len(fake.batches) == 2
    with pytest.raises(BatchPending):
        run()
    replies = run()
    assert [r.text for r in replies] == [f"4\nitem {i}" for i in range(6)]


def test_a_request_past_its_timeout_is_retried(tmp_path, sleeps):
    import asyncio

    calls = []

    async def handler(request: httpx2.Request) -> httpx2.Response:
        calls.append(request)
        if len(calls) == 1:
            await asyncio.sleep(120)  # hangs (a ceiling): the engine gives up after 2 s
        return httpx2.Response(200, json=openai_completion("4"))

    # 2 s: the instant second reply stays well inside it even on a loaded machine.
    judge = make(tmp_path, handler, judge_cfg(request_timeout_s=2.0))
    assert [r.text for r in judge.complete(MESSAGES[:1], "rating")] == ["4"]
    assert len(calls) == 2 and judge.usage.retries == 1
    assert set(judge.usage.errors) <= {"timeout", "APITimeoutError"}


def test_limiters_drain_per_second_and_hold_the_largest_request():
    from alpagasus.judges.engine import make_limiter

    rpm = make_limiter(6000, 1)  # 100 per 1 s window
    assert (rpm.max_rate, rpm.time_period) == (100, 1)
    slow = make_limiter(3, 1)  # one request per 20 s
    assert (slow.max_rate, slow.time_period) == (1, 20)
    tpm = make_limiter(90_000, 4096)  # 1,500/s, but one request may need 4,096 tokens
    assert tpm.max_rate == 4096 and tpm.time_period == pytest.approx(60 * 4096 / 90_000)
    # Same long-run rate in every case.
    for lim, per_minute in ((rpm, 6000), (slow, 3), (tpm, 90_000)):
        assert lim.max_rate / lim.time_period * 60 == pytest.approx(per_minute)


def test_rate_limited_run_completes(tmp_path):
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, json=openai_completion("4"))

    cfg = judge_cfg(requests_per_minute=60_000, tokens_per_minute=10_000_000, concurrency=4)
    judge = make(tmp_path, handler, cfg)
    assert [r.text for r in judge.complete(MESSAGES, "rating")] == ["4"] * 6


def test_batch_submissions_stay_within_the_cap(tmp_path):
    """Batch prices, worst case per request = the whole context (a custom base_url): the cap
    lets two requests be submitted; while they run nothing more fits, and once they are in
    (costing far less than feared) the next two go."""
    fake = FakeOpenAIBatches(fail_first=0)
    # $1/Mtok in and out, half price: worst case 4,096 tokens x $0.5/M = $0.002048 each.
    cfg = judge_cfg(price_input_per_mtok=1.0, price_output_per_mtok=1.0)

    def run():
        return make(tmp_path, fake, cfg, mode="batch", max_cost_usd=0.0045).complete(
            MESSAGES, "rating")

    with pytest.raises(BatchPending, match="4 not submitted: rate.max_cost_usd=0.0045"):
        run()
    assert [len(fake.files[f].splitlines()) for f in fake.files] == [2]
    with pytest.raises(BatchPending, match="4 not submitted"):
        run()  # in progress: its two requests may still cost their worst case
    assert len(fake.batches) == 1
    with pytest.raises(BatchPending, match="2 not submitted"):
        run()  # ended: 2 stored for $0.000014, two more fit
    assert ReplyCache(tmp_path / "cache.sqlite").count() == 2
    assert len(fake.files["file-in1"].splitlines()) == 2
