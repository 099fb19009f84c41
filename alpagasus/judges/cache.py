"""The judge reply cache: one SQLite file shared by every run and sweep job.

A row per request key = hash(judge identity, rendered messages): the judge model, endpoint
and decoding params, and the prompt as sent (so a template edit changes every key). Each
reply is committed the moment it arrives, with its raw text, the parse status and score
at write time, token usage, what it cost and which run paid for it; a crash loses at most
the requests in flight.

No request is paid twice, even by jobs running at the same time (a sweep, two terminals):
before sending, a job claims the key in the ``pending`` table (owner = host:pid:uuid, a
lease it renews while the request is in flight). A key another live owner holds is not
sent: the job waits for that reply to appear. A claim is taken over when its owner is
dead: at once when the owner ran on this host and its pid is gone (kill -9), else when its
lease has expired. The claim is one statement (an upsert guarded by "no reply stored"),
so it is atomic across processes and costs about 20 us.

Journal: WAL (default) lets readers and one writer proceed together; it needs shared
memory, which network file systems do not provide safely, so ``journal="delete"`` (the
rollback journal, synchronous=FULL) is the mode for a cache on NFS. Every job sharing a
file must use the same mode. ``busy_timeout`` makes a writer wait for the lock instead of
failing, and INSERT OR IGNORE keeps the first reply if two jobs ever stored the same key.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import json
import os
import socket
import sqlite3
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alpagasus.artifacts import canonical_json
from alpagasus.errors import AlpagasusError
from alpagasus.sqlite_files import connect

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
    created REAL NOT NULL,
    cost_usd REAL,                -- what it was billed at the prices of the time (import: 0)
    run TEXT,                     -- owner id of the run that paid for it
    logprobs TEXT                 -- JSON tokens + top alternatives (score_mode=expected)
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
CREATE TABLE IF NOT EXISTS pending (
    key TEXT PRIMARY KEY,         -- a request some job is sending now
    owner TEXT NOT NULL,          -- host:pid:uuid of that job
    lease_until REAL NOT NULL     -- unix time; renewed while in flight, then free to take
);
"""
# Columns added after the first release: an older cache file gets them on open.
_ADDED_COLUMNS = {"replies": [("cost_usd", "REAL"), ("run", "TEXT"), ("logprobs", "TEXT")]}

# Claim a free key, an expired one, or one we hold already -- unless its reply is stored.
# One statement, so atomic across processes; rowcount 1 = claimed.
_CLAIM = """
INSERT INTO pending (key, owner, lease_until)
SELECT ?1, ?2, ?3 WHERE NOT EXISTS (SELECT 1 FROM replies WHERE key = ?1)
ON CONFLICT(key) DO UPDATE SET owner = excluded.owner, lease_until = excluded.lease_until
WHERE pending.lease_until < ?4 OR pending.owner = ?2
"""
# Take over the claim of an owner known to be dead (compare-and-swap on that owner).
_TAKE_OVER = """
UPDATE pending SET owner = ?1, lease_until = ?2
WHERE key = ?3 AND owner = ?4 AND NOT EXISTS (SELECT 1 FROM replies WHERE key = ?3)
"""
_REPLY_COLUMNS = ("key, text, status, score, parser_version, input_tokens, output_tokens, "
                  "latency_s, source, cost_usd, run, logprobs")
_SQLITE_CORRUPT, _SQLITE_NOTADB = 11, 26


class JudgeCacheError(AlpagasusError, RuntimeError):
    """The judge cache file cannot be used: not SQLite, damaged, or a journal-mode clash."""

    hint = "move the file aside or set paths.judge_cache=ANOTHER_FILE"


class Claim(enum.Enum):
    CLAIMED = "claimed"  # ours to send
    STORED = "stored"  # its reply is in the cache already
    HELD = "held"  # another live job is sending it: wait for its reply


def judge_key(identity: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(identity).encode()).hexdigest()[:16]


def request_key(identity: dict[str, Any], messages: list[dict[str, str]]) -> str:
    # 64 hex chars: also a valid Anthropic batch custom_id (^[a-zA-Z0-9_-]{1,64}$).
    return hashlib.sha256(canonical_json({"judge": identity, "messages": messages}).encode()
                          ).hexdigest()


def new_owner() -> str:
    """host:pid:uuid -- the pid lets a job on the same host see that the owner died."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def owner_is_dead(owner: str) -> bool:
    """True only when we can tell: same host and no such pid. Other hosts: the lease."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


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
    cost_usd: float | None = None  # None: written before costs were recorded
    run: str | None = None
    logprobs_json: str | None = None  # alpagasus.expected.compact_logprobs as stored

    @functools.cached_property
    def logprobs(self) -> Any:
        """Decoded on first use: most reads only ask whether a reply is cached, or its cost."""
        return json.loads(self.logprobs_json) if self.logprobs_json else None


def _is_damage(e: sqlite3.DatabaseError) -> bool:
    if isinstance(e, sqlite3.OperationalError):  # locked, busy, read-only, I/O: not damage
        return False
    code = getattr(e, "sqlite_errorcode", None)  # Python >= 3.11
    if code is not None:
        return code & 0xFF in (_SQLITE_CORRUPT, _SQLITE_NOTADB)
    return "not a database" in str(e) or "malformed" in str(e)


class ReplyCache:
    def __init__(self, path: str | Path, busy_timeout_s: float = 60.0, journal: str = "wal"):
        self.path = Path(path).expanduser()
        journal = str(getattr(journal, "value", journal)).lower()  # an Enum or a string
        if journal not in ("wal", "delete"):
            raise ValueError(f"paths.judge_cache_journal must be wal or delete, got '{journal}'")
        self.journal = journal
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Jobs of a sweep open a new cache at the same instant: the open is serialized
        # (alpagasus.sqlite_files), so only a real clash of journal modes fails here.
        # isolation_level=None: autocommit, so every put is its own committed transaction.
        try:
            self.db, mode = connect(self.path, journal, busy_timeout_s, isolation_level=None)
        except sqlite3.DatabaseError as e:
            raise self._error(e) from e
        try:
            if mode != journal:
                raise JudgeCacheError(
                    f"{self.path}: cannot put the judge cache in journal mode '{journal}': it "
                    f"is {mode}. Another job probably has it open in the other mode; every "
                    "job sharing a cache must use the same paths.judge_cache_journal.")
            self.db.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
            # WAL + NORMAL: a committed row survives a killed process (not a power cut), no
            # fsync per reply. The rollback journal needs FULL for the same guarantee.
            self.db.execute("PRAGMA synchronous=" + ("NORMAL" if journal == "wal" else "FULL"))
            self.db.executescript(_SCHEMA)
            self._migrate()
        except sqlite3.DatabaseError as e:
            self.db.close()
            raise self._error(e) from e
        except JudgeCacheError:
            self.db.close()
            raise
        self._dead: set[str] = set()  # owners seen dead (a dead pid stays dead)

    def _error(self, e: sqlite3.DatabaseError) -> Exception:
        if isinstance(e, sqlite3.OperationalError) and "unable to open" in str(e):
            return JudgeCacheError(f"{self.path}: cannot open the judge reply cache ({e}): "
                                   "is it a folder, or is its folder read-only?")
        if not _is_damage(e):
            return e
        return JudgeCacheError(
            f"{self.path}: the judge reply cache is damaged or is not a SQLite database ({e}). "
            f"Move it aside (mv {self.path} {self.path}.damaged) and rerun: the replies it "
            "held will be requested, and paid for, again; or point paths.judge_cache at "
            f"another file. `sqlite3 {self.path} .recover | sqlite3 NEW_FILE` may save "
            "what is still readable.")

    def _migrate(self) -> None:
        for table, columns in _ADDED_COLUMNS.items():
            have = {r[1] for r in self.db.execute(f"PRAGMA table_info({table})")}
            for name, kind in columns:
                if name not in have:
                    try:
                        self.db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")
                    except sqlite3.OperationalError as e:  # another job added it meanwhile
                        if "duplicate column" not in str(e):
                            raise

    def close(self) -> None:
        self.db.close()

    # --- replies ---------------------------------------------------------------------------

    def put(self, key: str, judge: str, model: str, text: str, *, status: str | None = None,
            score: Any = None, parser_version: int | None = None, input_tokens: int = 0,
            output_tokens: int = 0, latency_s: float = 0.0, source: str = "online",
            cost_usd: float | None = None, run: str | None = None,
            logprobs: Any = None) -> bool:
        """Store one reply; False if the key was already there (the first reply wins)."""
        try:
            cur = self.db.execute(
                "INSERT OR IGNORE INTO replies (key, judge, model, text, status, score, "
                "parser_version, input_tokens, output_tokens, latency_s, source, created, "
                "cost_usd, run, logprobs) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (key, judge, model, text, status, json.dumps(score), parser_version,
                 input_tokens, output_tokens, latency_s, source, time.time(), cost_usd, run,
                 None if logprobs is None else json.dumps(logprobs, separators=(",", ":"))),
            )
        except sqlite3.DatabaseError as e:
            raise self._error(e) from e
        return cur.rowcount == 1

    def get_many(self, keys: Iterable[str]) -> dict[str, CachedReply]:
        keys = list(dict.fromkeys(keys))
        found: dict[str, CachedReply] = {}
        try:
            for start in range(0, len(keys), 500):
                chunk = keys[start:start + 500]
                rows = self.db.execute(
                    f"SELECT {_REPLY_COLUMNS} FROM replies "
                    f"WHERE key IN ({','.join('?' * len(chunk))})", chunk)
                for r in rows:
                    found[r[0]] = CachedReply(r[0], r[1], r[2], json.loads(r[3]) if r[3] else None,
                                              *r[4:])
        except sqlite3.DatabaseError as e:
            raise self._error(e) from e
        return found

    def paid_by(self, run: str) -> list[CachedReply]:
        """The replies a run stored (and paid for)."""
        rows = self.db.execute(f"SELECT {_REPLY_COLUMNS} FROM replies WHERE run=?", (run,))
        return [CachedReply(r[0], r[1], r[2], json.loads(r[3]) if r[3] else None, *r[4:])
                for r in rows]

    def update_parse(self, key: str, status: str, score: Any, parser_version: int) -> None:
        self.db.execute("UPDATE replies SET status=?, score=?, parser_version=? WHERE key=?",
                        (status, json.dumps(score), parser_version, key))

    def count(self, judge: str | None = None) -> int:
        if judge is None:
            return self.db.execute("SELECT COUNT(*) FROM replies").fetchone()[0]
        return self.db.execute("SELECT COUNT(*) FROM replies WHERE judge=?", (judge,)).fetchone()[0]

    # --- claims: who is sending what -------------------------------------------------------

    def claim(self, key: str, owner: str, lease_s: float) -> Claim:
        """Claim ``key`` for ``owner`` before sending it (see the module docstring)."""
        now = time.time()
        try:
            if self.db.execute(_CLAIM, (key, owner, now + lease_s, now)).rowcount == 1:
                return Claim.CLAIMED
            # Slow path (the key is stored, or held by someone else): rare.
            if self.db.execute("SELECT 1 FROM replies WHERE key=?", (key,)).fetchone():
                return Claim.STORED
            row = self.db.execute("SELECT owner FROM pending WHERE key=?", (key,)).fetchone()
            if row is None:  # released between the two statements: try once more
                if self.db.execute(_CLAIM, (key, owner, now + lease_s, now)).rowcount == 1:
                    return Claim.CLAIMED
                return Claim.HELD
            if self.is_dead(row[0]) and self.db.execute(
                    _TAKE_OVER, (owner, now + lease_s, key, row[0])).rowcount == 1:
                return Claim.CLAIMED
        except sqlite3.DatabaseError as e:
            raise self._error(e) from e
        return Claim.HELD

    def claimable(self, keys: Iterable[str]) -> list[str]:
        """Of ``keys`` (held by others a moment ago), those free now: released, lease
        expired, or owner dead. A cheap pre-check before claiming them one by one."""
        keys = list(keys)
        now, free = time.time(), []
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            holders = dict(self.db.execute(
                "SELECT key, owner FROM pending WHERE lease_until >= ? AND key IN "
                f"({','.join('?' * len(chunk))})", (now, *chunk)).fetchall())
            free += [k for k in chunk if k not in holders or self.is_dead(holders[k])]
        return free

    def is_dead(self, owner: str) -> bool:
        if owner in self._dead:
            return True
        if owner_is_dead(owner):
            self._dead.add(owner)
            return True
        return False

    def renew(self, owner: str, lease_s: float) -> None:
        self.db.execute("UPDATE pending SET lease_until=? WHERE owner=?",
                        (time.time() + lease_s, owner))

    def release(self, owner: str) -> None:
        """Drop ``owner``'s claims, and what killed jobs left: claims on stored replies, and
        leases that expired an hour ago."""
        self.db.execute("DELETE FROM pending WHERE owner=? OR lease_until < ? OR key IN "
                        "(SELECT key FROM replies)", (owner, time.time() - 3600))

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
