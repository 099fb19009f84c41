"""judge.score_mode=expected over HTTP: the engine asks an OpenAI-protocol server for
logprobs, stores them with the reply, and a server that sends none stops the run after one
request. The fake server answers at the HTTP layer (httpx2.MockTransport handed to the SDK,
as in test_rating_http.py; an in-process HTTP server for the rate stage); llm-katan, a real
server without logprobs, checks the error end to end."""

from __future__ import annotations

import json
import math
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx2
import pytest

from alpagasus.config import JudgeConfig
from alpagasus.expected import RATING_SCALE
from alpagasus.judges.cache import ReplyCache
from alpagasus.judges.engine import ApiJudge, EngineOptions, NoLogprobs
from tests.servers import katan

MESSAGES = [[{"role": "user", "content": f"item {i}"}] for i in range(6)]


def judge_cfg(**kw: Any) -> JudgeConfig:
    base = {"name": "t", "backend": "openai", "model": "m", "base_url": "http://fake.test/v1",
            "api_key_env": "FAKE_KEY", "concurrency": 4, "backoff_base_s": 0.01,
            "max_tokens": 16, "context_tokens": 4096, "score_mode": "expected",
            "top_logprobs": 5}
    return JudgeConfig(**{**base, **kw})


@pytest.fixture(autouse=True)
def _key(monkeypatch):
    monkeypatch.setenv("FAKE_KEY", "sk-test")


def entry(token: str, top: dict[str, float]) -> dict[str, Any]:
    """One ``logprobs.content`` entry as OpenAI documents it."""
    return {"token": token, "logprob": math.log(top[token]),
            "bytes": list(token.encode()),
            "top_logprobs": [{"token": t, "logprob": math.log(p), "bytes": list(t.encode())}
                             for t, p in top.items()]}


def rating_completion(first: dict[str, float], point: float, half: float,
                      logprobs: bool = True) -> dict[str, Any]:
    """A "D.5" reply: ``first`` the distribution of the first digit (the written digit is
    its most likely; non-digit tokens allowed); after the digit "." with prob ``point``
    (else a newline); after "." "5" with prob ``half`` (else "0")."""
    digit = max((t for t in first if t.strip().isdigit()), key=first.get)
    content = [entry(digit, first), entry(".", {".": point, "\n": 1 - point}),
               entry("5", {"5": half, "0": 1 - half}), entry("\n", {"\n": 1.0}),
               entry("Fine", {"Fine": 0.9, "Good": 0.1})]
    text = "".join(e["token"] for e in content)
    choice: dict[str, Any] = {"index": 0, "message": {"role": "assistant", "content": text},
                              "finish_reason": "stop"}
    if logprobs:
        choice["logprobs"] = {"content": content, "refusal": None}
    return {"id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": "m",
            "choices": [choice], "usage": {"prompt_tokens": 10, "completion_tokens": 5,
                                           "total_tokens": 15}}


def hand_expected(first: dict[str, float], point: float, half: float) -> float:
    """What the docs say the expected score is, computed by hand."""
    digits: dict[int, float] = {}
    for t, p in first.items():  # " 4" and "4" are both the score 4
        if t.strip().isdigit() and int(t) <= 5:
            digits[int(t)] = digits.get(int(t), 0.0) + p
    written = max(digits, key=digits.get)
    value = {d: d for d in digits}
    value[written] = point * (written + half * 0.5) + (1 - point) * written
    return sum(p * value[d] for d, p in digits.items()) / sum(digits.values())


# Item i's first-digit distribution: some mass on non-digit tokens ("The", "**") left over.
FIRSTS = [{"4": 0.5, "5": 0.2, "3": 0.1, "The": 0.15, "**": 0.05},
          {"4": 0.7, "3": 0.2, "I": 0.1},
          {"2": 0.4, "1": 0.35, "3": 0.05, "Rating": 0.2},
          {"1": 0.9, "0": 0.1},
          {"4": 0.45, "5": 0.44, "Score": 0.11},
          {"3": 0.6, "4": 0.3, " 4": 0.1}]


def make(tmp_path, handler, cfg: JudgeConfig | None = None) -> ApiJudge:
    client = httpx2.AsyncClient(transport=httpx2.MockTransport(handler))
    return ApiJudge(cfg or judge_cfg(), tmp_path / "cache.sqlite",
                    EngineOptions(progress=False), http_client=client, seed=0)


def test_logprobs_are_asked_for_stored_and_read_back_from_the_cache(tmp_path):
    bodies: list[dict] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content)
        bodies.append(body)
        i = int(body["messages"][0]["content"].split()[1])
        return httpx2.Response(200, json=rating_completion(FIRSTS[i], 0.8, 0.6))

    judge = make(tmp_path, handler)
    try:
        replies = judge.complete(MESSAGES, "rating", desc="t")
    finally:
        judge.close()
    assert len(bodies) == 6
    assert all(b["logprobs"] is True and b["top_logprobs"] == 5 for b in bodies)
    for i, reply in enumerate(replies):
        parsed = float(reply.text.split()[0])
        (e,) = reply.expected_scores([parsed], RATING_SCALE)
        assert e.value == pytest.approx(hand_expected(FIRSTS[i], 0.8, 0.6), abs=1e-5)
        digit_mass = sum(p for t, p in FIRSTS[i].items() if t.strip().isdigit())
        assert e.mass == pytest.approx(digit_mass, abs=1e-5)
    # A second judge sends nothing: the logprobs come back from the cache.
    again = make(tmp_path, lambda r: pytest.fail("sent a cached request"))
    try:
        cached = again.complete(MESSAGES, "rating", desc="t")
    finally:
        again.close()
    assert [r.logprobs for r in cached] == [r.logprobs for r in replies]
    assert all(r.cached for r in cached)


def test_a_server_without_logprobs_stops_after_one_request_and_stores_nothing(tmp_path):
    sent: list[int] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        sent.append(1)
        return httpx2.Response(200, json=rating_completion(FIRSTS[0], 0.9, 0.5, logprobs=False))

    judge = make(tmp_path, handler, judge_cfg(concurrency=6))
    with pytest.raises(NoLogprobs, match="replied without them") as info:
        judge.complete(MESSAGES, "rating", desc="t")
    judge.close()
    assert len(sent) == 1  # the other five waited for the first reply, then were not sent
    assert "score_mode=text" in info.value.hint
    cache = ReplyCache(tmp_path / "cache.sqlite")
    assert cache.count() == 0  # not stored as a text score under the expected key
    cache.close()


def test_llm_katan_returns_no_logprobs_one_clear_error(tmp_path):
    with katan(tmp_path) as server:
        cfg = judge_cfg(base_url=f"{server.url}/v1", model="katan-echo", concurrency=8)
        judge = ApiJudge(cfg, tmp_path / "cache.sqlite", EngineOptions(progress=False))
        with pytest.raises(NoLogprobs, match="logprobs: true, top_logprobs: 5"):
            judge.complete(MESSAGES, "rating", desc="katan")
        judge.close()
        assert server.completed() == 1


# --- the rate and select stages against an HTTP server -------------------------------------


@contextmanager
def logprob_server(firsts: dict[str, dict[str, float]]):
    """An OpenAI-protocol server in this process: the reply for an item whose output
    contains KEY is rated with ``firsts[KEY]`` (see rating_completion)."""
    requests: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            requests.append(body)
            user = body["messages"][-1]["content"]
            first = next(v for k, v in firsts.items() if k in user)
            out = json.dumps(rating_completion(first, 0.9, 0.5,
                                               logprobs=bool(body.get("logprobs")))).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1", requests
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_rate_rows_keep_both_scores_and_select_reads_the_expected_one(tiny_cfg, tmp_path):
    from alpagasus.main import run

    # Four items the parsed score ties at 4.5; their expected scores differ.
    firsts = {"alpha": {"4": 0.9, "5": 0.05, "The": 0.05},
              "beta": {"4": 0.5, "5": 0.45, "I": 0.05},
              "gamma": {"4": 0.6, "3": 0.3, "**": 0.1},
              "delta": {"4": 0.7, "5": 0.3}}
    data = tmp_path / "items.json"
    data.write_text(json.dumps([{"instruction": f"Say {k}.", "input": "", "output": k}
                                for k in firsts]))
    with logprob_server(firsts) as (url, requests):
        def cfg(*extra: str):
            return tiny_cfg("stage=select", "filter=openai_compatible", f"judge.base_url={url}",
                            "judge.model=fake", "judge.score_mode=expected", "data=json",
                            f"data.path={data}", "data.limit=null", "threshold=4.0",
                            "logger.enabled=false", "rate.progress=false", *extra)

        run(cfg("select.score=expected", "size=2", "select.order=top"))
        assert len(requests) == 4 and all(r["logprobs"] for r in requests)
        run(cfg("select.score=score", "size=2", "select.order=top"))  # same replies
        assert len(requests) == 4
        run(cfg("judge.score_mode=text"))  # another cache key: asked again, no logprobs
        assert len(requests) == 8 and not any(r.get("logprobs") for r in requests[4:])

    rate_dirs = [p for p in (tmp_path / "artifacts" / "rate").iterdir()
                 if (p / "ratings.jsonl").is_file()]
    by_mode = {}
    for d in rate_dirs:
        rows = [json.loads(line) for line in (d / "ratings.jsonl").read_text().splitlines()]
        by_mode["expected" if rows[0]["expected_score"] is not None else "text"] = (d, rows)
    d, rows = by_mode["expected"]
    assert [r["score"] for r in rows] == [4.5] * 4
    expected = {k: hand_expected(v, 0.9, 0.5) for k, v in firsts.items()}
    assert [r["expected_score"] for r in rows] == pytest.approx(list(expected.values()), abs=1e-5)
    assert rows[0]["expected_mass"] == pytest.approx(0.95, abs=1e-4)
    counts = json.loads((d / "manifest.json").read_text())["counts"]
    assert counts["distinct_scores"] == 1 and counts["distinct_expected"] == 4
    assert (d / "histogram.png").read_bytes()[:4] == b"\x89PNG"
    assert all(r["expected_score"] is None for r in by_mode["text"][1])

    selected = {}
    for d in (tmp_path / "artifacts" / "select").iterdir():
        if not (d / "manifest.json").is_file():
            continue  # a lock file
        manifest = json.loads((d / "manifest.json").read_text())
        kept = [it["output"] for it in json.loads((d / "selected.json").read_text())]
        selected[manifest["config"].get("score_by", "score"), manifest["config"]["size"]] = kept
    best_two = sorted(expected, key=expected.get, reverse=True)[:2]
    assert sorted(selected["expected", 2]) == sorted(best_two)  # the expected scores decide
    assert len(selected["score", 2]) == 2  # the parsed scores tie: a seeded hash decides
    assert len(selected["score", None]) == 4
