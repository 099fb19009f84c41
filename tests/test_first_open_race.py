"""Shared state that N jobs create at the same instant: every open succeeds, and N jobs
rating overlapping data into a new cache send each distinct request once.

Processes (not threads: SQLite and flock behave per process) wait on one barrier before
each round, so they all hit the new file together; no sleeps.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import traceback
from pathlib import Path

import pytest

from alpagasus.config import JudgeConfig
from alpagasus.human.study import LabelStore
from alpagasus.judges.cache import ReplyCache
from alpagasus.judges.engine import ApiJudge, EngineOptions
from alpagasus.stages.ifd import ScoreCache
from tests.servers import SCORES, counting_server, prompt_key

N_PROCS = 8
ROUNDS = 50


def _open_reply_cache(path: Path) -> None:
    cache = ReplyCache(path)
    cache.put(f"k{mp.current_process().pid}", "j", "m", "4")
    cache.close()


def _open_label_store(path: Path) -> None:
    LabelStore(path).close()


def _open_score_cache(path: Path) -> None:
    ScoreCache(path).close()


OPENERS = {"reply_cache": _open_reply_cache, "label_store": _open_label_store,
           "score_cache": _open_score_cache}


def _worker(kind: str, root: str, rounds: int, barrier, results) -> None:
    opener = OPENERS[kind]
    failures = []
    for r in range(rounds):
        barrier.wait()
        try:
            opener(Path(root) / f"round{r}" / "shared.sqlite")
        except Exception:  # noqa: BLE001 - each failure is reported back
            failures.append(f"round {r}: {traceback.format_exc(limit=1)}")
    results.put(failures)


def _race(kind: str, root: Path, rounds: int) -> list[str]:
    ctx = mp.get_context("fork")
    barrier, results = ctx.Barrier(N_PROCS, timeout=120), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(kind, str(root), rounds, barrier, results))
             for _ in range(N_PROCS)]
    for p in procs:
        p.start()
    failures = [f for _ in procs for f in results.get(timeout=300)]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    return failures


def test_eight_processes_open_a_new_reply_cache_at_once_fifty_rounds(tmp_path):
    assert _race("reply_cache", tmp_path, ROUNDS) == []
    last = ReplyCache(tmp_path / f"round{ROUNDS - 1}" / "shared.sqlite")
    assert last.db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert len(last.db.execute("SELECT key FROM replies").fetchall()) == N_PROCS


@pytest.mark.parametrize("kind", ["label_store", "score_cache"])
def test_other_shared_databases_survive_the_same_race(tmp_path, kind):
    assert _race(kind, tmp_path, 10) == []


# --- the same jobs, rating overlapping data through a counting server ---------------------

SHARED_ITEMS, OWN_ITEMS = 30, 10
# Each job keeps this many requests in flight. While the server's gate is closed the other
# 7 jobs hold at most 7 x 4 = 28 of a job's 40 keys, so every job can send one: the gate
# (one API key per job) opens only once all 8 are in flight together.
RATER_CONCURRENCY = 4


def _rating_requests(job: int) -> list[list[dict[str, str]]]:
    """The shared items first, in the same order for every job, then the job's own."""
    prompts = [f"Rate the answer to shared question {i}." for i in range(SHARED_ITEMS)]
    prompts += [f"Rate the answer to question {i} of job {job}." for i in range(OWN_ITEMS)]
    return [[{"role": "user", "content": p}] for p in prompts]


def _expected_reply(messages: list[dict[str, str]]) -> str:
    """What the counting server answers to ``messages`` (tests/servers.py, --reply score)."""
    digest = int(prompt_key(messages)[:8], 16)
    return f"{SCORES[digest % len(SCORES)]}\nThe response is accurate and helpful."


def _rater(job: int, url: str, cache: str, barrier, results) -> None:
    os.environ["JOB_KEY"] = f"job-{job}"  # the server tells the jobs apart by their key
    try:
        barrier.wait()  # all open the new cache and start rating at the same instant
        cfg = JudgeConfig(name="race", backend="openai", model="m", base_url=url,
                          api_key_env="JOB_KEY", concurrency=RATER_CONCURRENCY, max_tokens=16,
                          request_timeout_s=600)
        judge = ApiJudge(cfg, cache, EngineOptions(progress=False))
        try:
            replies = judge.complete(_rating_requests(job), "rating")
        finally:
            judge.close()
        results.put((job, [r.text for r in replies], judge.usage.requests,
                     judge.usage.waited_for, None))
    except Exception:  # noqa: BLE001 - reported back to the test
        results.put((job, None, 0, 0, traceback.format_exc()))


@pytest.mark.slow  # ~30 s on a loaded 2-core machine: 8 jobs start a judge each
def test_eight_jobs_rate_overlapping_data_into_a_new_cache_and_pay_once(tmp_path):
    cache = tmp_path / "new" / "judge.sqlite"
    ctx = mp.get_context("fork")
    barrier, results = ctx.Barrier(N_PROCS, timeout=120), ctx.Queue()
    with counting_server(tmp_path, "--gate-clients", str(N_PROCS)) as server:
        procs = [ctx.Process(target=_rater, args=(job, server.url + "/v1", str(cache), barrier,
                                                  results)) for job in range(N_PROCS)]
        for p in procs:
            p.start()
        outcomes = sorted(results.get(timeout=600) for _ in procs)
        for p in procs:
            p.join(timeout=60)
        stats = server.stats()
    assert [error for *_, error in outcomes] == [None] * N_PROCS
    assert [p.exitcode for p in procs] == [0] * N_PROCS
    distinct = SHARED_ITEMS + N_PROCS * OWN_ITEMS
    # Every job was in flight with the others, each distinct request was sent exactly once...
    assert stats["gate_timeouts"] == 0 and stats["gate_clients"] == N_PROCS
    assert stats["requests"] == stats["distinct"] == distinct and stats["max_per_prompt"] == 1
    assert sum(sent for _, _, sent, _, _ in outcomes) == distinct
    # ... every job paid for some, and all but the first to claim shared item 0 found it
    # held by another job and waited for its reply instead of sending it again.
    assert all(sent > 0 for _, _, sent, _, _ in outcomes)
    assert sum(1 for _, _, _, waited, _ in outcomes if waited) >= N_PROCS - 1
    # ... and every job got the server's reply to every one of its items.
    for job, texts, *_ in outcomes:
        assert texts == [_expected_reply(m) for m in _rating_requests(job)]
    assert ReplyCache(cache).count() == distinct
