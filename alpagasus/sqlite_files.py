"""Open a SQLite file that many processes may create at the same instant.

A sweep's jobs (submitit, SLURM, two terminals) start together on a fresh output root and
all open the same new database. Switching a new file to WAL needs an exclusive lock for a
moment; a second process that tries the switch meanwhile gets "database is locked" at once
(the journal-mode change does not honour busy_timeout), which looks exactly like a real
clash of modes. So the first open is serialized: connect, set the journal mode and run the
schema while holding an exclusive ``flock`` on a sidecar ``<file>.open-lock``. The lock is
held for milliseconds and only while opening; reads and writes afterwards are SQLite's own.

Under that lock a mode that still cannot be set is a real clash (another job has the file
open in the other mode) and is returned to the caller to report.

Bottom layer: imports only alpagasus.shared_files.
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import Any

from alpagasus.shared_files import exclusive_lock


def open_lock(path: Path) -> contextlib.AbstractContextManager[None]:
    """Exclusive advisory lock on ``<path>.open-lock`` (blocks until it is free)."""
    return exclusive_lock(path.with_name(path.name + ".open-lock"))


def connect(path: Path, journal: str, timeout_s: float,
            **kwargs: Any) -> tuple[sqlite3.Connection, str]:
    """Connect to ``path`` and put it in ``journal`` mode with the open lock held; return the
    connection and the mode the file is in (not ``journal`` on a real clash: the caller
    reports it). The schema is the caller's, after: ``CREATE ... IF NOT EXISTS`` waits on
    busy_timeout like any write, only the journal-mode switch does not."""
    with open_lock(path):
        db = sqlite3.connect(str(path), timeout=timeout_s, **kwargs)
        try:
            return db, _set_journal_mode(db, journal)
        except BaseException:
            db.close()
            raise


def _set_journal_mode(db: sqlite3.Connection, journal: str) -> str:
    """Put ``db`` in ``journal`` mode; return the mode it is in. A file already in the wanted mode is not switched
    (no exclusive lock needed), so opens of a busy WAL file by new jobs never wait on its
    writers."""
    journal = journal.lower()
    current = str(db.execute("PRAGMA journal_mode").fetchone()[0]).lower()
    if current == journal:
        return current
    try:
        return str(db.execute(f"PRAGMA journal_mode={journal}").fetchone()[0]).lower()
    except sqlite3.OperationalError as e:  # locked: another job holds it in the other mode
        return f"unchangeable ({e})"
