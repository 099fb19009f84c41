"""The judge reply cache: one SQLite file (WAL) shared by every run and sweep job.

A row per request key = hash(judge identity, rendered messages): the judge model, endpoint
and decoding params, and the prompt as sent (so a template edit changes every key). Each
reply is committed the moment it arrives, with its raw text, the parse status and score
at write time, token usage and latency; a crash loses at most the requests in flight.

Several processes may write at once: WAL lets readers and one writer proceed together,
``busy_timeout`` makes a writer wait for the lock instead of failing, and INSERT OR IGNORE
keeps the first reply when two jobs raced on the same key.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alpagasus.artifacts import canonical_json

_SCHEMA = """
CREATE TABLE IF NOT EXISTS replies (
    key TEXT PRIMARY KEY,
    judge TEXT NOT NULL,          -- hash of the judge identity (model, endpoint, decoding)
    model TEXT NOT NULL,
    text TEXT NOT NULL,           -- the raw reply; parsing happens on read
    status TEXT,                  -- parse status when written (ok | unparsed | out_of_range)
    score TEXT,                   -- JSON score(s) when written
    parser_version INTEGER,
    input_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    latency_s REAL NOT NULL DEFAULT 0,
    source TEXT NOT NULL,         -- online | batch | import
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS batches (
    id TEXT PRIMARY KEY,          -- the provider's batch id
    provider TEXT NOT NULL,
    judge TEXT NOT NULL,
    keys TEXT NOT NULL,           -- JSON list of the request keys it holds
    state TEXT NOT NULL,          -- open | closed
    detail TEXT,
    submitted REAL NOT NULL,
    closed REAL
);
"""


def judge_key(identity: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(identity).encode()).hexdigest()[:16]


def request_key(identity: dict[str, Any], messages: list[dict[str, str]]) -> str:
    # 64 hex chars: also a valid Anthropic batch custom_id (^[a-zA-Z0-9_-]{1,64}$).
    return hashlib.sha256(canonical_json({"judge": identity, "messages": messages}).encode()
                          ).hexdigest()


@dataclass
class CachedReply:
    key: str
    text: str
    status: str | None
    score: Any
    parser_version: int | None
    input_tokens: int
    output_tokens: int
    latency_s: float
    source: str


class ReplyCache:
    def __init__(self, path: str | Path, busy_timeout_s: float = 60.0):
        self.path = Path(path).expanduser()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: autocommit, so every put is its own committed transaction.
        self.db = sqlite3.connect(str(self.path), timeout=busy_timeout_s, isolation_level=None)
        self.db.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
        self.db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a committed row survives a killed process (not a power cut).
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA)

    def close(self) -> None:
        self.db.close()

    # --- replies ---------------------------------------------------------------------------

    def put(self, key: str, judge: str, model: str, text: str, *, status: str | None = None,
            score: Any = None, parser_version: int | None = None, input_tokens: int = 0,
            output_tokens: int = 0, latency_s: float = 0.0, source: str = "online") -> bool:
        """Store one reply; False if the key was already there (the first reply wins)."""
        cur = self.db.execute(
            "INSERT OR IGNORE INTO replies VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (key, judge, model, text, status, json.dumps(score), parser_version, input_tokens,
             output_tokens, latency_s, source, time.time()),
        )
        return cur.rowcount == 1

    def get_many(self, keys: Iterable[str]) -> dict[str, CachedReply]:
        keys = list(dict.fromkeys(keys))
        found: dict[str, CachedReply] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            rows = self.db.execute(
                "SELECT key, text, status, score, parser_version, input_tokens, output_tokens, "
                f"latency_s, source FROM replies WHERE key IN ({','.join('?' * len(chunk))})",
                chunk,
            )
            for r in rows:
                found[r[0]] = CachedReply(r[0], r[1], r[2], json.loads(r[3]) if r[3] else None,
                                          r[4], r[5], r[6], r[7], r[8])
        return found

    def update_parse(self, key: str, status: str, score: Any, parser_version: int) -> None:
        self.db.execute("UPDATE replies SET status=?, score=?, parser_version=? WHERE key=?",
                        (status, json.dumps(score), parser_version, key))

    def count(self, judge: str | None = None) -> int:
        if judge is None:
            return self.db.execute("SELECT COUNT(*) FROM replies").fetchone()[0]
        return self.db.execute("SELECT COUNT(*) FROM replies WHERE judge=?", (judge,)).fetchone()[0]

    # --- provider batch jobs ---------------------------------------------------------------

    def add_batch(self, batch_id: str, provider: str, judge: str, keys: list[str]) -> None:
        self.db.execute("INSERT INTO batches VALUES (?,?,?,?,?,?,?,?)",
                        (batch_id, provider, judge, json.dumps(keys), "open", None, time.time(),
                         None))

    def open_batches(self, judge: str) -> Iterator[tuple[str, str, list[str]]]:
        rows = self.db.execute(
            "SELECT id, provider, keys FROM batches WHERE judge=? AND state='open' "
            "ORDER BY submitted", (judge,)).fetchall()
        for batch_id, provider, keys in rows:
            yield batch_id, provider, json.loads(keys)

    def close_batch(self, batch_id: str, detail: str) -> None:
        self.db.execute("UPDATE batches SET state='closed', detail=?, closed=? WHERE id=?",
                        (detail, time.time(), batch_id))
