"""The blind human study's core: the items shown, the labels stored, what they add up to.

Blind: an item carries the two answers as "left" and "right" only; which arm is on the left
is drawn per prompt from a seeded hash (so a reload, a resume or another annotator sees the
same sides) and stored with every label. The prompts are shown in a seeded shuffle.

Labels go to SQLite the moment they are given (one row per study, prompt and annotator;
relabelling updates it), so closing the page loses nothing. A label is stored both as what
the annotator saw (left | right | tie) and as arm A's result (win | tie | lose).
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alpagasus.sqlite_files import connect

CHOICES = ("left", "right", "tie")
VERDICTS = ("win", "tie", "lose")  # arm A's result, as the LLM judge's verdicts


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


class LabelStore:
    """Labels in SQLite, committed as they are given. Safe to share between the server's
    threads (one connection behind a lock)."""

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
        """item key -> {left_arm, choice, verdict, created, updated}."""
        with self._lock:
            rows = self._db.execute(
                "SELECT item, left_arm, choice, verdict, created, updated FROM labels "
                "WHERE study = ? AND annotator = ? ORDER BY created", (study, annotator)).fetchall()
        return {r[0]: {"left_arm": r[1], "choice": r[2], "verdict": r[3], "created": r[4],
                       "updated": r[5]} for r in rows}

    def close(self) -> None:
        with self._lock:
            self._db.close()


# --- what the labels add up to ---------------------------------------------------------------


def tally(verdicts: list[str]) -> dict[str, Any]:
    """Human win/tie/lose for arm A and the paper's winning score, (win - lose) / n + 1."""
    c = Counter(verdicts)
    n = c["win"] + c["tie"] + c["lose"]
    return {"win": c["win"], "tie": c["tie"], "lose": c["lose"], "n": n,
            "winning_score": round((c["win"] - c["lose"]) / n + 1, 4) if n else None}


def agreement(human: list[str], llm: list[str]) -> dict[str, Any]:
    """Human vs LLM-judge verdicts on the same prompts: Cohen's kappa (sklearn), raw
    agreement and the confusion matrix (rows: human, columns: LLM; win, tie, lose)."""
    from sklearn.metrics import cohen_kappa_score, confusion_matrix

    n = len(human)
    out: dict[str, Any] = {"n": n, "kappa": None, "agreement": None,
                           "labels": list(VERDICTS), "confusion": [[0] * 3 for _ in VERDICTS]}
    if n == 0:
        return out
    out["confusion"] = confusion_matrix(human, llm, labels=list(VERDICTS)).tolist()
    out["agreement"] = round(sum(h == m for h, m in zip(human, llm, strict=True)) / n, 4)
    # Undefined when chance agreement is 1 (both raters used one and the same label).
    if len(set(human) | set(llm)) > 1:
        out["kappa"] = round(float(cohen_kappa_score(human, llm, labels=list(VERDICTS))), 4)
    return out


def summarize(study: Study, labels: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The study's result: human tally, and agreement with the LLM judge on the prompts
    both judged (an LLM verdict without scores, "unparsed", is left out and counted)."""
    labelled = [it for it in study.items if it.key in labels]
    pairs = [(labels[it.key]["verdict"], it.llm_verdict) for it in labelled
             if it.llm_verdict in VERDICTS]
    left_a = sum(labels[it.key]["left_arm"] == "a" for it in labelled)
    return {
        "title": study.title, "study": study.key, "prompts": len(study.items),
        "labelled": len(labelled), "human": tally([labels[it.key]["verdict"] for it in labelled]),
        "llm_on_labelled": tally([it.llm_verdict for it in labelled]),
        "llm_unparsed": len(labelled) - len(pairs),
        "agreement": agreement([h for h, _ in pairs], [m for _, m in pairs]),
        "a_shown_left": left_a,
    }


def format_summary(s: dict[str, Any]) -> str:
    def score(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.3f}"

    h, m, a = s["human"], s["llm_on_labelled"], s["agreement"]
    kappa = "n/a" if a["kappa"] is None else f"{a['kappa']:.3f}"
    raw = "n/a" if a["agreement"] is None else f"{a['agreement']:.0%}"
    lines = [
        f"Human study: {s['title']}".rstrip(": "), "",
        f"{s['labelled']} of {s['prompts']} prompts labelled (A shown on the left in "
        f"{s['a_shown_left']}).", "",
        "| judge | win | tie | lose | N | winning score |", "|---|---:|---:|---:|---:|---:|",
        f"| human | {h['win']} | {h['tie']} | {h['lose']} | {h['n']} | {score(h['winning_score'])} |",
        f"| LLM judge (same prompts) | {m['win']} | {m['tie']} | {m['lose']} | {m['n']} "
        f"| {score(m['winning_score'])} |", "",
        f"Agreement with the LLM judge on {a['n']} prompts (LLM unparsed left out: "
        f"{s['llm_unparsed']}): Cohen's kappa {kappa}, raw agreement {raw}.", "",
        "| human \\ LLM | win | tie | lose |", "|---|---:|---:|---:|",
    ]
    lines += [f"| {label} | " + " | ".join(str(v) for v in row) + " |"
              for label, row in zip(a["labels"], a["confusion"], strict=True)]
    return "\n".join(lines)
