"""Shared state that N jobs create at the same instant: every open succeeds.

Processes (not threads: SQLite and flock behave per process) wait on one barrier before
each round, so they all hit the new file together; no sleeps.
"""

from __future__ import annotations

import multiprocessing as mp
import traceback
from pathlib import Path

import pytest

from alpagasus.human.study import LabelStore
from alpagasus.judges.cache import ReplyCache
from alpagasus.stages.ifd import ScoreCache

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
