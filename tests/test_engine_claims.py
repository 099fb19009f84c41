"""No request paid twice: claims in the judge cache (owner, lease, takeover) and two jobs
rating, or judging, overlapping data at the same time against a counting server."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx2
import pytest

from alpagasus.config import JudgeConfig
from alpagasus.judges import cache as cache_module
from alpagasus.judges.cache import Claim, ReplyCache, new_owner, owner_is_dead
from alpagasus.judges.engine import ApiJudge, EngineOptions
from tests.servers import counting_server

REPO = Path(__file__).resolve().parents[1]
HOST = socket.gethostname()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_claim_free_mine_held_stored(tmp_path):
    cache = ReplyCache(tmp_path / "c.sqlite")
    me, other = new_owner(), new_owner()  # both alive: this process
    assert cache.claim("k", me, 60) is Claim.CLAIMED
    assert cache.claim("k", me, 60) is Claim.CLAIMED  # renewing our own claim
    assert cache.claim("k", other, 60) is Claim.HELD  # a live owner holds it
    cache.put("k", "j", "m", "4")
    assert cache.claim("k", other, 60) is Claim.STORED
    cache.release(me)
    assert cache.claim("k", me, 60) is Claim.STORED  # released, but its reply is there


def test_a_dead_owner_on_this_host_is_taken_over_at_once(tmp_path):
    cache = ReplyCache(tmp_path / "c.sqlite")
    dead = f"{HOST}:{_dead_pid()}:0123456789ab"
    assert owner_is_dead(dead) and not owner_is_dead(new_owner())
    assert cache.claim("k", dead, 3600) is Claim.CLAIMED  # e.g. a job later killed with -9
    assert cache.claimable(["k"]) == ["k"]
    assert cache.claim("k", new_owner(), 60) is Claim.CLAIMED  # the lease has not expired


class _Clock:
    """The cache's clock, moved by the test: a lease expires when the test says so."""

    def __init__(self) -> None:
        self.now = time.time()

    def time(self) -> float:
        return self.now


def test_an_owner_on_another_host_is_waited_for_until_its_lease_expires(tmp_path, monkeypatch):
    clock = _Clock()
    monkeypatch.setattr(cache_module, "time", clock)
    cache = ReplyCache(tmp_path / "c.sqlite")
    remote = "some-other-node:4242:0123456789ab"  # its pid means nothing here
    assert not owner_is_dead(remote)
    assert cache.claim("k", remote, 0.3) is Claim.CLAIMED
    me = new_owner()
    assert cache.claim("k", me, 60) is Claim.HELD and cache.claimable(["k"]) == []
    clock.now += 0.29
    assert cache.claimable(["k"]) == [] and cache.claim("k", me, 60) is Claim.HELD
    clock.now += 0.02  # past the lease
    assert cache.claimable(["k"]) == ["k"]
    assert cache.claim("k", me, 60) is Claim.CLAIMED
    assert cache.claim("k", remote, 60) is Claim.HELD  # the old owner has lost it
    cache.renew(me, 120)
    (lease,) = cache.db.execute("SELECT lease_until FROM pending WHERE key='k'").fetchone()
    assert lease == pytest.approx(clock.now + 120)


def _pending(db: Path) -> list[tuple[str, float]]:
    con = sqlite3.connect(db)
    try:
        return con.execute("SELECT owner, lease_until FROM pending").fetchall()
    finally:
        con.close()


def test_leases_are_renewed_while_a_request_is_in_flight(tmp_path):
    """A request slower than the lease: its claim must still be ours when it returns.

    The reply is held until the lease has been renewed past three first leases (seen in the
    cache), however slowly this machine runs: a renewal is waited for, not a duration."""
    db = tmp_path / "c.sqlite"
    seen = []

    async def handler(request: httpx2.Request) -> httpx2.Response:
        deadline = time.monotonic() + 120  # a ceiling: only reached if leases are not renewed
        while time.monotonic() < deadline:
            rows = _pending(db)
            if rows and rows[0][1] >= t0 + 1.0:
                break
            await asyncio.sleep(0.02)
        seen.append(_pending(db))
        return httpx2.Response(200, json={"choices": [{"message": {"content": "4"}}],
                                          "usage": {"prompt_tokens": 5, "completion_tokens": 1}})

    cfg = JudgeConfig(name="t", backend="openai", model="m", base_url="http://fake.test/v1",
                      api_key_env=None, concurrency=1, max_tokens=8)
    judge = ApiJudge(cfg, db, EngineOptions(progress=False, lease_s=0.3, poll_s=0.05),
                     http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(handler)))
    t0 = time.time()
    assert [r.text for r in judge.complete([[{"role": "user", "content": "x"}]], "rating")] == ["4"]
    [[(owner, lease)]] = seen
    assert owner == judge.owner and owner.startswith(f"{HOST}:{os.getpid()}:")
    assert lease >= t0 + 1.0  # renewed: the first lease ended at t0 + 0.3
    assert ReplyCache(db).db.execute("SELECT COUNT(*) FROM pending").fetchone() == (0,)


# --- two jobs at once ------------------------------------------------------------------------


def _items(n: int) -> list[dict[str, str]]:
    return [{"instruction": f"Add {i} and {i + 1}.", "input": "", "output": str(2 * i + 1)}
            for i in range(n)]


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "WANDB_MODE": "disabled", **extra}


# Behind a gate of the counting server a request waits for the other job to start: give it
# a generous ceiling (the server's gate opens by itself before this).
GATED_TIMEOUT_S = 600


@pytest.mark.slow
def test_two_overlapping_rating_jobs_pay_once_per_distinct_item(tmp_path):
    """Items 0-299 and 150-449, same cache, at the same time: 450 requests, not 600.

    Both files list the overlap first, so both jobs race key by key. The server replies to
    nothing until both jobs (one API key each) have sent a request: the job that claims the
    first item first still holds it when the other reaches it, so the other must wait for
    its reply instead of sending it, and both pay for part of the data."""
    items = _items(450)
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    first.write_text(json.dumps(items[150:300] + items[:150]))
    second.write_text(json.dumps(items[150:300] + items[300:]))
    root = tmp_path / "out"
    with counting_server(tmp_path, "--gate-clients", "2") as server:
        procs = [subprocess.Popen(
            [sys.executable, "-m", "alpagasus", "stage=rate", "filter=openai_compatible",
             f"judge.base_url={server.url}/v1", "judge.model=m", "judge.concurrency=8",
             "judge.api_key_env=JOB_KEY", f"judge.request_timeout_s={GATED_TIMEOUT_S}",
             "data=json", f"data.path={d}", f"paths.root={root}", "logger.enabled=false",
             "rate.progress=false"], cwd=REPO, env=_env(JOB_KEY=f"job-{n}"),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for n, d in enumerate((first, second))]
        outs = [p.communicate(timeout=300)[0] for p in procs]
        assert [p.returncode for p in procs] == [0, 0], outs[0][-2000:] + outs[1][-2000:]
        stats = server.stats()
    assert stats["gate_timeouts"] == 0  # both jobs were in flight together
    assert stats["requests"] == stats["distinct"] == 450 and stats["max_per_prompt"] == 1
    cache = ReplyCache(root / "cache" / "judge.sqlite")
    assert cache.count() == 450
    # Both jobs paid for part of the overlap, and one of them waited for the other.
    runs = cache.db.execute("SELECT COUNT(DISTINCT run) FROM replies").fetchone()[0]
    assert runs == 2
    assert any("waiting for its replies instead of paying twice" in o for o in outs)
    assert cache.db.execute("SELECT COUNT(*) FROM pending").fetchone() == (0,)  # released
    rows = sorted(len(p.read_text().splitlines())
                  for p in (root / "artifacts" / "rate").glob("*/ratings.jsonl"))
    assert rows == [300, 300]
    print(f"\noverlapping rating jobs: {stats['requests']} requests for 450 distinct items")


_JUDGE_JOB = textwrap.dedent("""
    import json, sys
    from alpagasus.config import JudgeConfig
    from alpagasus.judges.engine import ApiJudge, EngineOptions
    url, cache, first, last = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    cfg = JudgeConfig(name="gpt4", backend="openai", model="m", base_url=url,
                      api_key_env="JOB_KEY", concurrency=8, max_tokens=32,
                      request_timeout_s=600)
    judge = ApiJudge(cfg, cache, EngineOptions(progress=False))
    pairs = [[{"role": "user", "content": f"Q{i}: compare answer {i}a with answer {i}b"}]
             for i in range(first, last)]
    replies = judge.complete(pairs, "pair", desc="judge")
    print(json.dumps({"n": len(replies), "sent": judge.usage.requests,
                      "waited": judge.usage.waited_for}))
""")


def test_two_overlapping_evaluation_judges_pay_once(tmp_path):
    """The evaluation judge (pairwise prompts, same engine) in two processes at once, on a
    new cache. The server holds every reply until both have sent a request, so whichever
    claims Q0 first still holds it when the other reaches it: one waits, neither pays twice."""
    cache = tmp_path / "judge.sqlite"
    with counting_server(tmp_path, "--gate-clients", "2", "--reply", "pair") as server:
        procs = [subprocess.Popen([sys.executable, "-c", _JUDGE_JOB, server.url + "/v1",
                                   str(cache), str(a), str(b)], cwd=REPO,
                                  env=_env(JOB_KEY=f"job-{a}-{b}"), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
                 for a, b in ((0, 120), (0, 60))]  # the second: the first half, same order
        outs = [p.communicate(timeout=GATED_TIMEOUT_S) for p in procs]
        assert [p.returncode for p in procs] == [0, 0], outs
        stats = server.stats()
    results = [json.loads(o[0].splitlines()[-1]) for o in outs]
    assert [r["n"] for r in results] == [120, 60]
    assert stats["gate_timeouts"] == 0
    assert stats["requests"] == stats["distinct"] == 120 and stats["max_per_prompt"] == 1
    assert sum(r["sent"] for r in results) == 120
    assert all(r["sent"] > 0 for r in results) and sum(r["waited"] for r in results) > 0
