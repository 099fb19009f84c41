"""Test prompts (the paper's evaluation sets): TestPrompt, and reading the sets each of which
names its question field differently."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alpagasus.data.files import DataError, read_records
from alpagasus.data.files import kind as _kind
from alpagasus.data.files import resource_path as _resource_path

if TYPE_CHECKING:  # config.py imports EmptyPolicy from alpagasus.data
    from alpagasus.config import TestsetsConfig

DEMO_TEST = "demo_test.jsonl"


@dataclass(frozen=True)
class TestPrompt:
    __test__ = False  # not a pytest class

    testset: str
    id: str
    prompt: str  # the instruction
    input: str = ""  # the task's input (Self-Instruct instances[0].input); Alpaca "### Input:"
    category: str | None = None  # Vicuna `category`, WizardLM `Skill`: per-category reports

    @property
    def question(self) -> str:
        """What the judge is shown: the instruction, and the input when there is one."""
        return f"{self.prompt}\n\n{self.input}" if self.input else self.prompt


# The paper's sets each name their question field differently.
_PROMPT_FIELDS = ("prompt", "text", "Instruction", "instruction", "question")
_CATEGORY_FIELDS = ("category", "Skill")
_ID_FIELDS = ("id", "question_id", "idx")


def _test_prompt(rec: Any, where: str, testset: str, position: int) -> TestPrompt:
    if not isinstance(rec, dict):
        raise DataError(f"{where}: expected an object, got {_kind(rec)}")
    field_name = next((f for f in _PROMPT_FIELDS if f in rec), None)
    if field_name is None:
        raise DataError(f"{where}: no prompt field (one of {', '.join(_PROMPT_FIELDS)})",
                        hint="name the question field 'prompt'")
    question = rec[field_name]
    if not isinstance(question, str):
        raise DataError(f"{where}: field '{field_name}' must be a string, got {_kind(question)}")
    if not question.strip():
        raise DataError(f"{where}: field '{field_name}' is empty",
                        hint="remove the record or write the question")
    extra = rec.get("input") or ""
    instances = rec.get("instances")
    if instances and isinstance(instances, list) and isinstance(instances[0], dict):
        # Self-Instruct: the reference generation script fills Alpaca's "### Input:" section.
        extra = instances[0].get("input") or ""
    if not isinstance(extra, str):
        raise DataError(f"{where}: field 'input' must be a string")
    category = next((rec[f] for f in _CATEGORY_FIELDS if rec.get(f) is not None), None)
    ident = str(next((rec[f] for f in _ID_FIELDS if rec.get(f) is not None), position))
    return TestPrompt(testset=testset, id=ident, prompt=question, input=extra,
                      category=None if category is None else str(category))


def load_testsets(cfg: TestsetsConfig) -> list[TestPrompt]:
    prompts: list[TestPrompt] = []
    for name, file in cfg.files.items():
        path = _resource_path(DEMO_TEST) if file == "demo" else Path(file).expanduser()
        records = read_records(path)
        if cfg.limit:
            records = records[: cfg.limit]
        prompts += [
            _test_prompt(rec, f"{path}: {loc}", name, i) for i, (loc, rec) in enumerate(records)
        ]
    if not prompts:
        raise DataError(f"testsets '{cfg.name}': no prompts",
                        hint="name at least one file: testsets.files.NAME=FILE")
    return prompts
