"""Instruction items: the Item record, turning a raw record into one (field names, hints),
and what loading does with empty ones (EmptyPolicy)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alpagasus.config.enums import EmptyPolicy  # a config mode (data.empty_policy)
from alpagasus.data.files import DataError, read_records
from alpagasus.data.files import kind as _kind

ITEM_FIELDS = ("instruction", "input", "output")


@dataclass(frozen=True)
class Item:
    instruction: str
    input: str
    output: str
    category: str | None = None  # Dolly's task category, kept when the source has one

    def to_dict(self) -> dict[str, str]:
        # Artifact keys hash this: an item without a category must hash as it always has.
        d = {"instruction": self.instruction, "input": self.input, "output": self.output}
        if self.category is not None:
            d["category"] = self.category
        return d


@dataclass
class LoadedItems:
    items: list[Item]
    source: str  # the file, folder or hub id (and split) the items came from
    # "index 4 (output)": each item with an empty instruction or output, and which field.
    empty: list[str] = field(default_factory=list)
    policy: EmptyPolicy = EmptyPolicy.refuse  # what was done with them: dropped or kept

    @property
    def dropped(self) -> list[str]:
        return self.empty if self.policy is EmptyPolicy.drop else []


def validate_item(record: Any, where: str, fields: Mapping[str, str] | None = None) -> Item:
    """Turn one raw record into an Item; ``where`` is "FILE: line N" or "FILE: index N".

    ``fields`` maps our names (instruction, input, output, category) to the record's, e.g.
    Dolly's {"input": "context", "output": "response"}.
    """
    names = {f: (fields or {}).get(f, f) for f in (*ITEM_FIELDS, "category")}
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected an object with fields {names['instruction']}, "
                        f"{names['input']}, {names['output']}; got {_kind(record)}",
                        hint=f'each record is an object: {{"{names["instruction"]}": "...", '
                             f'"{names["input"]}": "", "{names["output"]}": "..."}}')
    for ours in ("instruction", "output"):
        if names[ours] not in record:
            has = ", ".join(map(str, list(record)[:8])) or "no fields"
            raise DataError(f"{where}: missing field '{names[ours]}' (the record has: {has})",
                            hint=_field_hint(record, ours, names[ours]))
    values = {}
    for ours in ITEM_FIELDS:
        value = record.get(names[ours], "")
        if value is None and ours == "input":
            value = ""
        if not isinstance(value, str):
            raise DataError(f"{where}: field '{names[ours]}' must be a string, got {_kind(value)}",
                            hint="quote the value; every item field is text")
        values[ours] = value
    category = record.get(names["category"])
    if category is not None and not isinstance(category, str):
        raise DataError(f"{where}: field '{names['category']}' must be a string, got "
                        f"{_kind(category)}")
    return Item(**values, category=category)


def _field_hint(record: dict[str, Any], missing: str, source_name: str) -> str:
    if source_name != missing and missing in record:
        return (f"the record has '{missing}', so it is in our own format already: use "
                f"data=json data.path=FILE (or map the field back: ++data.fields.{missing}={missing})")
    if "response" in record or "context" in record:
        return ("this looks like Dolly (instruction, context, response): use data=dolly "
                "data.path=FILE, or map the fields: ++data.fields.output=response "
                "++data.fields.input=context")
    lower = {str(k).lower(): k for k in record}
    if missing in lower:
        return f"field names are case-sensitive: rename '{lower[missing]}' to '{missing}'"
    return (f"every item needs 'instruction' and 'output' ('input' is optional); under another "
            f"name, map it: ++data.fields.{missing}=NAME")


def load_items_file(path: Path, fields: Mapping[str, str] | None = None) -> list[Item]:
    """Every record of a file as an Item (no empty-item policy: see load_data)."""
    return [validate_item(rec, f"{path}: {loc}", fields) for loc, rec in read_records(path)]


def fingerprint(records: list[dict[str, Any]]) -> str:
    """Content hash of a list of JSON-able records (order-sensitive)."""
    h = hashlib.sha256()
    for rec in records:
        h.update(json.dumps(rec, sort_keys=True, ensure_ascii=False).encode())
        h.update(b"\n")
    return h.hexdigest()
