"""The blind human study's core: the items shown, who labels which, the labels stored.

Blind: an item carries the two answers as "left" and "right" only; which arm is on the left
is drawn per prompt from a seeded hash (so a reload, a resume or another annotator sees the
same sides) and stored with every label. The prompts are in a seeded shuffle; each annotator
sees their share in an order of their own (seeded by their name), so an order effect does
not line up across annotators.

Several annotators: every one labels every prompt, or (``overlap=N``) the first N prompts of
the study's order go to everyone, where agreement is measured, and the rest are dealt out one
annotator each.

Labels go to SQLite the moment they are given (one row per study, prompt and annotator;
relabelling updates it), so closing the page loses nothing. A label is stored both as what
the annotator saw (left | right | tie) and as arm A's result (win | tie | lose).
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alpagasus.sqlite_files import connect

CHOICES = ("left", "right", "tie")


@dataclass(frozen=True)
class StudyItem:
    key: str  # "<testset>/<id>"
    testset: str
    category: str | None
    prompt: str
    input: str
    answer_a: str
    answer_b: str
    left: str  # "a" | "b": the arm whose answer is shown on the left
    llm_verdict: str  # the LLM judge's verdict for A: win | tie | lose | unparsed

    def shown(self) -> dict[str, Any]:
        """What the page gets: no arm, only sides."""
        left, right = (self.answer_a, self.answer_b) if self.left == "a" else \
            (self.answer_b, self.answer_a)
        return {"key": self.key, "testset": self.testset, "category": self.category,
                "prompt": self.prompt, "input": self.input, "left": left, "right": right}

    def verdict(self, choice: str) -> str:
        """The annotator's choice (left | right | tie) as arm A's result."""
        if choice == "tie":
            return "tie"
        return "win" if (choice == "left") == (self.left == "a") else "lose"


def left_arm(seed: int, study: str, key: str) -> str:
    """Which arm a prompt shows on the left: a seeded coin per prompt."""
    digest = hashlib.sha256(f"{seed}\0{study}\0{key}".encode()).digest()
    return "a" if digest[0] % 2 == 0 else "b"


@dataclass(frozen=True)
class Study:
    key: str  # what is compared (the judge artifact's key): labels are stored under it
    title: str
    items: list[StudyItem]

    @classmethod
    def from_judgments(cls, rows: list[dict[str, Any]], key: str, seed: int,
                       title: str = "") -> Study:
        """Items from the judge stage's rows (both answers and the LLM's verdict)."""
        items = [StudyItem(key=f"{r['testset']}/{r['id']}", testset=r["testset"],
                           category=r.get("category"), prompt=r["prompt"],
                           input=r.get("input") or "", answer_a=r["answer_a"],
                           answer_b=r["answer_b"],
                           left=left_arm(seed, key, f"{r['testset']}/{r['id']}"),
                           llm_verdict=r.get("verdict", "unparsed")) for r in rows]
        keys = [it.key for it in items]
        if len(set(keys)) != len(keys):
            dup = next(k for k in keys if keys.count(k) > 1)
            raise ValueError(f"two prompts share the key {dup}: keys must be unique")
        random.Random(f"{seed}\0{key}").shuffle(items)
        return cls(key, title, items)

    def item(self, key: str) -> StudyItem | None:
        return next((it for it in self.items if it.key == key), None)

    def assign(self, annotators: list[str], overlap: int | None = None,
               seed: int = 0) -> dict[str, list[StudyItem]]:
        """Each annotator's prompts, in the order their page shows them."""
        shared = self.items if overlap is None else self.items[:overlap]
        dealt = [] if overlap is None else self.items[overlap:]
        out: dict[str, list[StudyItem]] = {}
        for i, name in enumerate(annotators):
            mine = list(shared) + dealt[i::len(annotators)]
            random.Random(f"{seed}\0{self.key}\0{name}").shuffle(mine)
            out[name] = mine
        return out


class LabelStore:
    """Labels in SQLite, committed as they are given. Safe to share between the server's
    threads (one connection behind a lock). Opened with alpagasus/sqlite_files.py, so studies
    started at the same instant on a fresh root both open it."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        # Annotator servers may create it at the same instant: the open is serialized.
        self._db, _ = connect(self.path, "wal", 30, check_same_thread=False)
        self._db.execute("""
            CREATE TABLE IF NOT EXISTS labels (
                study TEXT NOT NULL, item TEXT NOT NULL, annotator TEXT NOT NULL,
                left_arm TEXT NOT NULL,  -- which arm the annotator saw on the left
                choice TEXT NOT NULL,    -- left | right | tie: what they picked
                verdict TEXT NOT NULL,   -- win | tie | lose: arm A's result
                created REAL NOT NULL, updated REAL NOT NULL,
                PRIMARY KEY (study, item, annotator))""")
        # An annotator's Finish (the server stops once every annotator has pressed it).
        self._db.execute("""
            CREATE TABLE IF NOT EXISTS finished (
                study TEXT NOT NULL, annotator TEXT NOT NULL, at REAL NOT NULL,
                PRIMARY KEY (study, annotator))""")
        self._db.commit()

    def put(self, study: Study, item: StudyItem, annotator: str, choice: str) -> None:
        if choice not in CHOICES:
            raise ValueError(f"label must be one of {', '.join(CHOICES)}, got {choice!r}")
        now = time.time()
        with self._lock:
            self._db.execute(
                "INSERT INTO labels VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (study, item, annotator) DO UPDATE SET choice = excluded.choice, "
                "verdict = excluded.verdict, left_arm = excluded.left_arm, "
                "updated = excluded.updated",
                (study.key, item.key, annotator, item.left, choice, item.verdict(choice),
                 now, now))
            self._db.commit()

    def labels(self, study: str, annotator: str) -> dict[str, dict[str, Any]]:
        """item key -> {left_arm, choice, verdict, created, updated}: one annotator's."""
        return self._labels(study, annotator).get(annotator, {})

    def all_labels(self, study: str) -> dict[str, dict[str, dict[str, Any]]]:
        """annotator -> item key -> {left_arm, choice, verdict, created, updated}."""
        return self._labels(study, None)

    def _labels(self, study: str, annotator: str | None) -> dict[str, dict[str, dict[str, Any]]]:
        # One annotator's rows (every label POST reads them) without reading everyone's.
        where, args = (("study = ?", (study,)) if annotator is None else
                       ("study = ? AND annotator = ?", (study, annotator)))
        with self._lock:
            rows = self._db.execute(
                "SELECT annotator, item, left_arm, choice, verdict, created, updated FROM labels "
                f"WHERE {where} ORDER BY created, annotator, item", args).fetchall()
        out: dict[str, dict[str, dict[str, Any]]] = {}
        for r in rows:
            out.setdefault(r[0], {})[r[1]] = {"left_arm": r[2], "choice": r[3],
                                              "verdict": r[4], "created": r[5],
                                              "updated": r[6]}
        return out

    def finish(self, study: str, annotator: str) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO finished VALUES (?, ?, ?)",
                             (study, annotator, time.time()))
            self._db.commit()

    def finished(self, study: str) -> set[str]:
        with self._lock:
            rows = self._db.execute("SELECT annotator FROM finished WHERE study = ?",
                                    (study,)).fetchall()
        return {r[0] for r in rows}

    def close(self) -> None:
        with self._lock:
            self._db.close()
