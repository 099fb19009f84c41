"""MT-Bench's files (questions, FastChat's judge prompts, GPT-4's reference answers), read and
checked before anything runs: an error names the file, line and field."""

from __future__ import annotations

import json
import string
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alpagasus.data import fingerprint
from alpagasus.evals import BenchmarkError
from alpagasus.prompts import ChatTemplate

TURNS = 2
# FastChat's NEED_REF_CATS: graded against a reference answer.
NEED_REFERENCE = ("math", "reasoning", "coding")
# FastChat's single-answer prompt for (reference-guided, turn), and the fields each fills.
JUDGE_PROMPT_NAMES = {
    (False, 1): "single-v1",
    (True, 1): "single-math-v1",
    (False, 2): "single-v1-multi-turn",
    (True, 2): "single-math-v1-multi-turn",
}
PROMPT_FIELDS = {
    "single-v1": {"question", "answer"},
    "single-math-v1": {"question", "answer", "ref_answer_1"},
    "single-v1-multi-turn": {"question_1", "answer_1", "question_2", "answer_2"},
    "single-math-v1-multi-turn": {"question_1", "answer_1", "question_2", "answer_2",
                                  "ref_answer_1", "ref_answer_2"},
}
# File names tried in benchmark.path: the shared layout first, then FastChat's
# (fastchat/llm_judge/data/mt_bench/, with judge_prompts.jsonl one level up).
QUESTION_FILES = ("question.jsonl",)
JUDGE_PROMPT_FILES = ("judge_prompts.jsonl", "../judge_prompts.jsonl")
REFERENCE_FILES = ("reference_answer_gpt-4.jsonl", "reference_answer/gpt-4.jsonl")


@dataclass(frozen=True)
class Question:
    question_id: int
    category: str
    turns: tuple[str, ...]
    reference: tuple[str, ...] | None = None  # GPT-4's answers, for NEED_REFERENCE

    @property
    def needs_reference(self) -> bool:
        return self.category in NEED_REFERENCE


@dataclass(frozen=True)
class MTBench:
    questions: list[Question]
    prompts: dict[str, ChatTemplate]
    files: dict[str, str]

    @property
    def questions_key(self) -> str:
        return fingerprint([[q.question_id, q.category, list(q.turns)] for q in self.questions])[:16]

    @property
    def references_key(self) -> str:
        return fingerprint([[q.question_id, list(q.reference or [])]
                            for q in self.questions])[:16]


def _jsonl(path: Path) -> list[tuple[int, dict[str, Any]]]:
    rows = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise BenchmarkError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise BenchmarkError(f"{path}:{lineno}: expected a JSON object, got "
                                     f"{type(row).__name__}")
            rows.append((lineno, row))
    if not rows:
        raise BenchmarkError(f"{path}: no lines")
    return rows


def _turns(value: Any, n: int) -> str | None:
    """What is wrong with a list of turns, or None."""
    if not isinstance(value, list):
        return f"a list of {n} strings, got {type(value).__name__}"
    if len(value) != n:
        return f"{n} turns, got {len(value)}"
    for i, turn in enumerate(value):
        if not isinstance(turn, str) or not turn.strip():
            return f"turn {i + 1} to be a non-empty string, got {turn!r:.40}"
    return None


def read_questions(path: Path) -> list[Question]:
    questions: list[Question] = []
    seen: dict[int, int] = {}
    for lineno, row in _jsonl(path):
        where = f"{path}:{lineno}"
        qid = row.get("question_id")
        if isinstance(qid, bool) or not isinstance(qid, int):
            raise BenchmarkError(f"{where}: field 'question_id' missing or not a whole number "
                                 f"(got {qid!r})")
        where += f" (question {qid})"
        if qid in seen:
            raise BenchmarkError(f"{where}: question_id {qid} repeats line {seen[qid]}")
        seen[qid] = lineno
        category = row.get("category")
        if not isinstance(category, str) or not category:
            raise BenchmarkError(f"{where}: field 'category' missing or not a string")
        if "turns" not in row:
            raise BenchmarkError(f"{where}: no field 'turns' (MT-Bench questions are a list "
                                 f"of {TURNS} user turns)")
        problem = _turns(row["turns"], TURNS)
        if problem:
            raise BenchmarkError(f"{where}: field 'turns': expected {problem}")
        questions.append(Question(qid, category, tuple(row["turns"])))
    return questions


def read_judge_prompts(path: Path) -> dict[str, ChatTemplate]:
    """FastChat's four single-answer prompts, each checked to fill only the fields we give."""
    found: dict[str, tuple[int, dict[str, Any]]] = {}
    for lineno, row in _jsonl(path):
        if row.get("name") in PROMPT_FIELDS:
            found[row["name"]] = (lineno, row)
    missing = [name for name in PROMPT_FIELDS if name not in found]
    if missing:
        raise BenchmarkError(f"{path}: no judge prompt named {', '.join(missing)} (FastChat's "
                             "single-answer grading prompts)")
    prompts = {}
    for name, (lineno, row) in found.items():
        for key in ("system_prompt", "prompt_template"):
            if not isinstance(row.get(key), str):
                raise BenchmarkError(f"{path}:{lineno} ({name}): field '{key}' missing or "
                                     "not a string")
        try:
            fields = {f for _, f, _, _ in string.Formatter().parse(row["prompt_template"]) if f}
        except ValueError as e:
            raise BenchmarkError(f"{path}:{lineno} ({name}): prompt_template: {e}") from None
        unknown = fields - PROMPT_FIELDS[name]
        if unknown:
            raise BenchmarkError(f"{path}:{lineno} ({name}): prompt_template names "
                                 f"{sorted(unknown)}, which MT-Bench grading does not fill "
                                 f"(it fills {sorted(PROMPT_FIELDS[name])})")
        prompts[name] = ChatTemplate(name=name, version="fastchat", system=row["system_prompt"],
                                     user=row["prompt_template"])
    return prompts


def read_references(path: Path) -> dict[int, tuple[str, ...]]:
    refs = {}
    for lineno, row in _jsonl(path):
        qid = row.get("question_id")
        try:
            turns = row["choices"][0]["turns"]
        except (KeyError, IndexError, TypeError):
            raise BenchmarkError(f"{path}:{lineno} (question {qid}): no field "
                                 "choices[0].turns") from None
        problem = _turns(turns, TURNS)
        if problem:
            raise BenchmarkError(f"{path}:{lineno} (question {qid}): choices[0].turns: "
                                 f"expected {problem}")
        refs[qid] = tuple(turns)
    return refs


def _find(folder: Path, names: Sequence[str], what: str) -> Path:
    for name in names:
        if (folder / name).is_file():
            return (folder / name).resolve()
    raise BenchmarkError(f"benchmark.path={folder}: no {what} ({' or '.join(names)})")


def load_mt_bench(folder: str | Path, question_ids: Sequence[int] | None = None,
                  limit: int | None = None) -> MTBench:
    """The questions to run (``question_ids``, then the first ``limit``), the judge prompts,
    and the reference answers the reference-guided questions need."""
    folder = Path(folder)
    if not folder.is_dir():
        raise BenchmarkError(f"benchmark.path={folder}: not a folder (it needs question.jsonl, "
                             "judge_prompts.jsonl and reference_answer_gpt-4.jsonl)")
    files = {"questions": _find(folder, QUESTION_FILES, "questions")}
    questions = read_questions(files["questions"])
    if question_ids:
        by_id = {q.question_id: q for q in questions}
        unknown = [i for i in question_ids if i not in by_id]
        if unknown:
            raise BenchmarkError(f"benchmark.question_ids: {unknown} not in {files['questions']}")
        questions = [by_id[i] for i in question_ids]
    if limit:
        questions = questions[:limit]
    files["judge_prompts"] = _find(folder, JUDGE_PROMPT_FILES, "judge prompts")
    prompts = read_judge_prompts(files["judge_prompts"])
    if any(q.needs_reference for q in questions):
        files["references"] = _find(folder, REFERENCE_FILES, "reference answers")
        refs = read_references(files["references"])
        missing = [q.question_id for q in questions if q.needs_reference and q.question_id not in refs]
        if missing:
            raise BenchmarkError(f"{files['references']}: no reference answer for questions "
                                 f"{missing} ({', '.join(NEED_REFERENCE)} are graded against one)")
        questions = [Question(q.question_id, q.category, q.turns, refs[q.question_id])
                     if q.needs_reference else q for q in questions]
    return MTBench(questions, prompts, {k: str(v) for k, v in files.items()})
