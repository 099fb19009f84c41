"""A budget that holds: rate.max_cost_usd against a counting server that ignores max_tokens,
its scope (what the cache has spent on this data, or this run), the exact stop message, and
a run that scores nothing."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx2
import pytest

from alpagasus.config import JudgeConfig
from alpagasus.judges.cache import ReplyCache
from alpagasus.judges.engine import ApiJudge, Budget, BudgetExceeded, EngineOptions
from tests.servers import counting_server

REPO = Path(__file__).resolve().parents[1]
# $1 / $10 per Mtok; the server replies 1,000 tokens whatever max_tokens (16) says, so a
# reply costs ~$0.01, 60x what max_tokens would let it cost; context 2,048 tokens.
PRICES = {"price_input_per_mtok": 1.0, "price_output_per_mtok": 10.0}
LONG = ("--reply-tokens", "1000")


# --- the arithmetic ----------------------------------------------------------------------------


def test_worst_case_prompt_plus_max_tokens_until_a_reply_is_longer():
    b = Budget(cap=1.0, spent=0.25, price_in=1.0, price_out=10.0, max_tokens=16,
               context_tokens=2048, context_bound=False)
    assert b.worst(100) == pytest.approx(100e-6 + 160e-6)
    b.start(100)
    b.start(300)
    assert b.reserved() == pytest.approx(400e-6 + 2 * 160e-6)
    assert b.fits(100) and not Budget(0.2501, 0.25, 1.0, 10.0, 16, 2048, False).fits(100)
    # A reply past max_tokens: the server does not stop there; from now on (requests in
    # flight included) only the context bounds a reply, at the dearer price.
    assert b.charge(0.01, n_in=100, tin=100, tout=1000) is True
    assert b.context_bound and b.spent == pytest.approx(0.26)
    assert b.worst(100) == pytest.approx(2048 * 10e-6)
    assert b.reserved() == pytest.approx(2 * 2048 * 10e-6)
    assert b.charge(0.01, n_in=100, tin=100, tout=1000) is False  # said once
    b.finish(100)
    assert b.in_flight == 1 and b.in_flight_prompt == 300


def test_a_server_billing_more_prompt_than_counted_raises_the_margin():
    b = Budget(cap=None, spent=0, price_in=1.0, price_out=1.0, max_tokens=10,
               context_tokens=1000, context_bound=False)
    b.charge(0, n_in=100, tin=130, tout=5)
    assert b.prompt_margin == pytest.approx(1.3)
    assert b.worst(100) == pytest.approx(130e-6 + 10e-6)
    assert b.fits(10**9)  # no cap: everything fits


# --- against a server that ignores max_tokens --------------------------------------------------


def _requests(n: int, offset: int = 0) -> list[list[dict[str, str]]]:
    return [[{"role": "user", "content": f"Rate answer {i}: 2 + {i} = {i + 2}."}]
            for i in range(offset, offset + n)]


def _judge(url: str, cache: Path, cap: float, scope: str = "cache", **kw) -> ApiJudge:
    cfg = JudgeConfig(name="t", backend="openai", model="m", base_url=url + "/v1",
                      api_key_env=None, concurrency=8, max_tokens=16, context_tokens=2048,
                      **{**PRICES, **kw})
    return ApiJudge(cfg, cache, EngineOptions(progress=False, max_cost_usd=cap,
                                              budget_scope=scope))


def _spent(message: str) -> float:
    return float(re.search(r"spent \$(\d+\.\d+)", message)[1])


def test_the_cap_holds_and_covers_earlier_runs_unless_scoped_to_the_run(tmp_path):
    cache, reqs = tmp_path / "judge.sqlite", _requests(60)
    caps, bills = [], []
    with counting_server(tmp_path, *LONG, "--latency-ms", "50") as server:
        for cap, scope in ((0.10, "cache"), (0.20, "cache"), (0.10, "run")):
            judge = _judge(server.url, cache, cap, scope)
            with pytest.raises(BudgetExceeded) as stop:
                judge.complete(reqs, "rating")
            judge.close()
            bill = server.bill(**{"price_in": 1.0, "price_out": 10.0})
            caps.append(cap)
            bills.append(bill)
            message = str(stop.value)
            if scope == "cache":
                # Everything the cache has spent on these requests, to the cent and below.
                assert bill <= cap and _spent(message) == pytest.approx(bill, abs=1e-4)
                assert "on these 60 requests" in message
            else:
                assert bill - bills[-2] <= cap
                assert _spent(message) == pytest.approx(bill - bills[-2], abs=1e-4)
            assert "next request could cost up to $0.0205" in message  # 2,048 tokens x $10/M
        stats = server.stats()
    assert stats["requests"] == stats["distinct"]  # nothing paid twice across the runs
    # The second run ($0.20 over the cache) added only what the first ($0.10) had not spent.
    assert bills[1] <= 0.20 < bills[0] + 0.20
    cache_total = sum(c for (c,) in ReplyCache(cache).db.execute("SELECT cost_usd FROM replies"))
    assert cache_total == pytest.approx(bills[-1], abs=1e-9)
    print(f"\nbudget vs bill (server ignores max_tokens): caps {caps}, cumulative server bills "
          f"{[round(b, 4) for b in bills]}")


def test_a_server_without_usage_is_charged_what_we_count(tmp_path):
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, json={"choices": [{"message": {
            "content": "4\n" + "the answer is right " * 50}}]})

    cfg = JudgeConfig(name="t", backend="openai", model="m", base_url="http://fake.test/v1",
                      api_key_env=None, max_tokens=16, context_tokens=2048, **PRICES)
    judge = ApiJudge(cfg, tmp_path / "c.sqlite", EngineOptions(progress=False),
                     http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(handler)))
    judge.complete(_requests(1), "rating")
    assert judge.usage.input_tokens > 5 and judge.usage.output_tokens > 200  # > max_tokens
    (cost,) = ReplyCache(tmp_path / "c.sqlite").db.execute("SELECT cost_usd FROM replies").fetchone()
    assert cost == pytest.approx(judge.usage.cost_usd) and cost > 0.002


# --- the CLI ---------------------------------------------------------------------------------


def _rate(root: Path, data: Path, url: str, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "alpagasus", "stage=rate", "filter=openai_compatible",
           f"judge.base_url={url}/v1", "judge.model=m", "data=json", f"data.path={data}",
           f"paths.root={root}", "logger.enabled=false", "rate.progress=false", *extra]
    env = {**os.environ, "PYTHONPATH": str(REPO), "WANDB_MODE": "disabled"}
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def _items(path: Path, n: int) -> Path:
    path.write_text(json.dumps([{"instruction": f"Name the number after {i}.", "input": "",
                                 "output": str(i + 1)} for i in range(n)]))
    return path


def test_cli_stops_at_the_cap_with_the_exact_spend(tmp_path):
    data, root = _items(tmp_path / "items.json", 60), tmp_path / "out"
    with counting_server(tmp_path, *LONG, "--latency-ms", "50") as server:
        out = _rate(root, data, server.url, "judge.concurrency=8", "judge.max_tokens=16",
                    "judge.context_tokens=2048", "judge.price_input_per_mtok=1",
                    "judge.price_output_per_mtok=10", "rate.max_cost_usd=0.15")
        bill = server.bill(1.0, 10.0)
    log = out.stdout + out.stderr
    assert out.returncode == 2, log[-3000:]
    assert bill <= 0.15
    assert "rate.max_cost_usd=0.15 reached" in log
    assert _spent(log.split("reached")[-1]) == pytest.approx(bill, abs=1e-4)
    assert "does not stop at max_tokens" in log or "replies up to the context" in log
    assert not list((root / "artifacts" / "rate").glob("*/manifest.json"))
    print(f"\nCLI: cap $0.15, server bill ${bill:.4f}")


def test_cli_run_where_no_reply_has_a_score_fails(tmp_path):
    data, root = _items(tmp_path / "items.json", 12), tmp_path / "out"
    with counting_server(tmp_path, "--reply", "unparsed") as server:
        out = _rate(root, data, server.url, "judge.concurrency=4")
        assert server.stats()["requests"] == 12
    log = out.stdout + out.stderr
    assert out.returncode != 0
    assert "no item got a score from judge openai_compatible" in log
    assert "12 replies hold no valid score (12 unparsed" in log
    assert "I am not able to rate this response" in log  # an example reply
    assert not list((root / "artifacts" / "rate").glob("*/manifest.json"))
