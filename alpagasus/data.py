"""Loading and validating instruction data and test prompts.

Everything is validated before any model is loaded: a bad file stops the run with an error
that names the file, the line (JSONL) or index (JSON list), and the field.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from alpagasus.config import DataConfig, TestsetsConfig

DEMO_TRAIN = "demo_train.json"
DEMO_TEST = "demo_test.jsonl"


class DataError(ValueError):
    """Bad input data; the message names the file, the line or index, and the field."""


@dataclass(frozen=True)
class Item:
    instruction: str
    input: str
    output: str

    def to_dict(self) -> dict[str, str]:
        return {"instruction": self.instruction, "input": self.input, "output": self.output}


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


def _resource_path(name: str) -> Path:
    return Path(str(resources.files("alpagasus") / "resources" / name))


def read_records(path: Path) -> list[tuple[str, Any]]:
    """Read a JSON list or JSONL file into (location, record) pairs.

    The location is "line N" for JSONL and "index N" for a JSON list, for error messages.
    """
    if not path.is_file():
        raise DataError(f"{path}: data file not found")
    text = path.read_text(encoding="utf-8")
    stripped = text.lstrip()
    if path.suffix == ".jsonl" or (stripped and not stripped.startswith("[")):
        records = []
        for lineno, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                records.append((f"line {lineno}", json.loads(line)))
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{lineno}: invalid JSON: {e.msg} (column {e.colno})") from e
        return records
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}:{e.lineno}: invalid JSON: {e.msg} (column {e.colno})") from e
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of items, got {type(data).__name__}")
    return [(f"index {i}", rec) for i, rec in enumerate(data)]


def validate_item(record: Any, where: str) -> Item:
    """Turn one raw record into an Item; ``where`` is "FILE: line N" or "FILE: index N"."""
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected an object, got {type(record).__name__}")
    for field in ("instruction", "output"):
        if field not in record:
            raise DataError(f"{where}: missing field '{field}'")
    values = {}
    for field in ("instruction", "input", "output"):
        value = record.get(field, "")
        if value is None and field == "input":
            value = ""
        if not isinstance(value, str):
            raise DataError(
                f"{where}: field '{field}' must be a string, got {type(value).__name__}"
            )
        values[field] = value
    return Item(**values)


def load_items_file(path: Path) -> list[Item]:
    return [validate_item(rec, f"{path}: {loc}") for loc, rec in read_records(path)]


def load_items(cfg: DataConfig) -> list[Item]:
    """Load the training items named by the data config, validated."""
    if cfg.source == "demo":
        items = load_items_file(_resource_path(DEMO_TRAIN))
    elif cfg.source == "file":
        if not cfg.path:
            raise DataError("data=json needs data.path=/path/to/items.json")
        items = load_items_file(Path(cfg.path).expanduser())
    elif cfg.source == "hub":
        items = _load_hub(cfg)
    else:
        raise DataError(f"unknown data.source '{cfg.source}' (demo | file | hub)")
    if not items:
        raise DataError(f"data '{cfg.name}': no items")
    return items[: cfg.limit] if cfg.limit else items


def _load_hub(cfg: DataConfig) -> list[Item]:
    import datasets

    try:
        ds = datasets.load_dataset(cfg.path, split=cfg.split)
    except Exception as e:  # network, auth, missing dataset: say which and how to work around
        raise DataError(
            f"could not load '{cfg.path}' ({cfg.split}) from the HF hub: {e}. "
            "Offline? Download the JSON once and use data=json data.path=FILE."
        ) from e
    return [validate_item(rec, f"hub:{cfg.path}: index {i}") for i, rec in enumerate(ds)]


def fingerprint(records: list[dict[str, Any]]) -> str:
    """Content hash of a list of JSON-able records (order-sensitive)."""
    h = hashlib.sha256()
    for rec in records:
        h.update(json.dumps(rec, sort_keys=True, ensure_ascii=False).encode())
        h.update(b"\n")
    return h.hexdigest()


# --- test prompts ---------------------------------------------------------------------------

# The paper's sets each name their question field differently.
_PROMPT_FIELDS = ("prompt", "text", "Instruction", "instruction", "question")
_CATEGORY_FIELDS = ("category", "Skill")
_ID_FIELDS = ("id", "question_id", "idx")


def _test_prompt(rec: Any, where: str, testset: str, position: int) -> TestPrompt:
    if not isinstance(rec, dict):
        raise DataError(f"{where}: expected an object, got {type(rec).__name__}")
    field = next((f for f in _PROMPT_FIELDS if f in rec), None)
    if field is None:
        raise DataError(f"{where}: no prompt field (one of {', '.join(_PROMPT_FIELDS)})")
    question = rec[field]
    if not isinstance(question, str):
        raise DataError(f"{where}: field '{field}' must be a string")
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
        raise DataError(f"testsets '{cfg.name}': no prompts")
    return prompts
