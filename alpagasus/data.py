"""Loading and validating instruction data and test prompts.

Everything is validated before any model is loaded or any W&B run opened: a bad file stops
the run with an error that names the file, the line (JSONL) or index (JSON list), the field,
and how to fix it. Files are read as bytes first, so a compressed, binary, UTF-16 or
non-UTF-8 file gets its own message rather than a decoder's traceback.

Sources (``data.source``, a registry): ``demo`` (shipped), ``file`` (a JSON list, JSONL or
Parquet file), ``hub`` (an HF hub dataset id through ``datasets.load_dataset``, or a local
file or folder in the hub's layout). ``data.fields`` maps our field names to the source's
(Dolly: ``input: context``, ``output: response``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alpagasus.errors import AlpagasusError

if TYPE_CHECKING:  # config.py imports EmptyPolicy from here
    from alpagasus.config import DataConfig, TestsetsConfig

log = logging.getLogger(__name__)

DEMO_TRAIN = "demo_train.json"
DEMO_TEST = "demo_test.jsonl"
ITEM_FIELDS = ("instruction", "input", "output")
LISTED = 20  # locations named in one message or log line; the rest are counted


class DataError(AlpagasusError, ValueError):
    """Bad input data; the message names the file, the line or index, and the field."""

    hint = "fix the file and run again"


class EmptyPolicy(str, Enum):  # noqa: UP042 (StrEnum needs Python 3.11; we support 3.10)
    """What loading does with items whose instruction or output is empty or only whitespace."""

    refuse = "refuse"  # stop, naming every such item
    drop = "drop"  # leave them out; logged with their locations and counted
    keep = "keep"  # use them as they are (the paper rated Alpaca-52k as is); logged, counted


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


def _resource_path(name: str) -> Path:
    return Path(str(resources.files("alpagasus") / "resources" / name))


# --- reading a file: bytes -> text -> records ------------------------------------------------

# Formats people hand us by mistake, recognised by their first bytes.
_NOT_TEXT = (
    (b"\x1f\x8b", "gzip-compressed", "decompress it first: gunzip -k {name}"),
    (b"BZh", "bzip2-compressed", "decompress it first: bunzip2 -k {name}"),
    (b"\xfd7zXZ\x00", "xz-compressed", "decompress it first: unxz -k {name}"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed", "decompress it first: unzstd {name}"),
    (b"PK\x03\x04", "a zip archive", "extract the JSON file from it: unzip {name}"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-zip archive", "extract the JSON file from it"),
    (b"SQLite format 3\x00", "an SQLite database", "export the items as JSON"),
    (b"ARROW1", "an Arrow file", "export the items as JSON or Parquet"),
    (b"%PDF", "a PDF document", "point data.path at the JSON/JSONL file"),
)
# Longest first: the UTF-32 LE mark starts with the UTF-16 LE one.
_BOMS = (
    (b"\xff\xfe\x00\x00", "UTF-32LE"), (b"\x00\x00\xfe\xff", "UTF-32BE"),
    (b"\xff\xfe", "UTF-16LE"), (b"\xfe\xff", "UTF-16BE"),
)
_UTF8_BOM = b"\xef\xbb\xbf"  # accepted (Windows editors write it) and skipped
_JSONL_SUFFIXES = (".jsonl", ".ndjson")
_PARQUET_MAGIC = b"PAR1"
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def read_records(path: Path) -> list[tuple[str, Any]]:
    """Read a JSON list, JSONL or Parquet file into (location, record) pairs.

    The location is "line N" for JSONL, "index N" for a JSON list, "row N" for Parquet, for
    error messages. Every way a file can be unusable raises a DataError naming the file.
    """
    raw = _read_bytes(path)
    if raw.startswith(_PARQUET_MAGIC):  # Arrow strings are valid UTF-8: no surrogate check
        records = _parquet_records(path)
        if not records:
            raise DataError(f"{path}: has no rows", hint="point at a file with items in it")
        return records
    text = _decode(path, raw)
    records = _parse(path, text)
    if not records:
        raise DataError(f"{path}: holds an empty list ([]): no records",
                        hint="write at least one record into it, or point at another file")
    # Raw surrogate bytes fail decoding; escaped ones parse into lone surrogates, which
    # nothing can encode or write later. Walk the records only when such an escape occurs.
    if _SURROGATE_ESCAPE.search(text):
        _check_unicode(path, records)
    return records


def _read_bytes(path: Path) -> bytes:
    if not path.exists():
        raise DataError(f"{path}: data file not found", hint="check the path (data.path=FILE)")
    if path.is_dir():
        raise DataError(
            f"{path}: is a directory, not a JSON/JSONL file",
            hint="point at the file inside it; a dataset folder in the hub's layout loads with "
                 "data=alpaca|alpaca_cleaned|dolly data.path=DIR")
    if not path.is_file():
        raise DataError(f"{path}: is not a regular file (a pipe, socket or device)",
                        hint="point at a JSON/JSONL file")
    try:
        return path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot be read: {e.strerror or e}",
                        hint="check the file's permissions (and that its disk is mounted)") from None


def _decode(path: Path, raw: bytes) -> str:
    if not raw.strip():
        raise DataError(f"{path}: is empty", hint="write the items into it, or point at another file")
    for magic, what, hint in _NOT_TEXT:
        if raw.startswith(magic):
            raise DataError(f"{path}: is {what}, not JSON text", hint=hint.format(name=path))
    for bom, encoding in _BOMS:
        if raw.startswith(bom):
            raise DataError(
                f"{path}: is {encoding} text (it starts with a {encoding} byte-order mark); "
                "JSON files must be UTF-8",
                hint=f"convert it: iconv -f {encoding} -t UTF-8 {path} > {_utf8_name(path)}")
    if raw.startswith(_UTF8_BOM):
        raw = raw[len(_UTF8_BOM):]
    nul = raw.find(b"\x00")
    if nul >= 0:
        sample = raw[:4096]
        # ASCII text in UTF-16 without a mark: every other byte is zero.
        if min(sample[0::2].count(0), sample[1::2].count(0)) == 0 and \
                max(sample[0::2].count(0), sample[1::2].count(0)) > len(sample) // 4:
            raise DataError(f"{path}: looks like UTF-16 text without a byte-order mark; JSON "
                            "files must be UTF-8",
                            hint=f"convert it: iconv -f UTF-16LE -t UTF-8 {path} > "
                                 f"{_utf8_name(path)} (UTF-16BE if that gives nonsense)")
        raise DataError(f"{path}: is a binary file (a NUL byte at offset {nul}), not JSON text",
                        hint="point data.path at a JSON list or JSONL file")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        line_start = raw.rfind(b"\n", 0, e.start) + 1
        column = len(raw[line_start:e.start].decode("utf-8", "replace")) + 1
        bad = raw[e.start:e.start + 3]
        if bad[:1] == b"\xed" and len(bad) > 1 and 0xA0 <= bad[1] <= 0xBF:
            what = f"a UTF-16 surrogate encoded as UTF-8 (bytes {bad.hex(' ').upper()})"
            hint = ("the file was written as CESU-8/WTF-8 (some Java and JavaScript tools): "
                    "re-export it as standard UTF-8")
        else:
            what = f"byte 0x{raw[e.start]:02X}"
            hint = (f"save the file as UTF-8 (from Windows-1252/Latin-1: iconv -f CP1252 -t "
                    f"UTF-8 {path} > {_utf8_name(path)})")
        raise DataError(f"{path}:{line}: not valid UTF-8: {what} at column {column}",
                        hint=hint) from None


def _utf8_name(path: Path) -> Path:
    return path.with_name(f"{path.stem}-utf8{path.suffix}")


def _parse(path: Path, text: str) -> list[tuple[str, Any]]:
    stripped = text.lstrip()
    if path.suffix.lower() in _JSONL_SUFFIXES:
        if stripped.startswith("["):
            raise DataError(
                f"{path}: holds a JSON list, but a {path.suffix} file has one JSON object per line",
                hint=f"rename it to {path.stem}.json, or write one item per line")
        return _parse_jsonl(path, text)
    if stripped.startswith("{") and _several_values(text):
        return _parse_jsonl(path, text)  # JSONL under another name
    value = _json_value(path, text)
    if isinstance(value, list):
        return [(f"index {i}", rec) for i, rec in enumerate(value)]
    if isinstance(value, dict):
        raise _top_level_object(path, value)
    raise DataError(f"{path}: holds a JSON {_kind(value)}, not a list of items",
                    hint="write a JSON list of {instruction, input, output} objects, or JSONL")


def _parse_jsonl(path: Path, text: str) -> list[tuple[str, Any]]:
    records = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append((f"line {lineno}", _json_value(path, line, lineno)))
        except DataError:
            if "\n" in text.strip() and _concatenated_values(text):
                raise DataError(
                    f"{path}: holds JSON objects that span several lines; JSONL needs one "
                    "object per line",
                    hint=f"rewrite it one object per line (jq -c . {path}), or as a JSON "
                         "list in a .json file") from None
            raise
    return records


def _json_value(path: Path, text: str, line: int | None = None) -> Any:
    """json.loads with errors that name the file and the line."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        at = line if line is not None else e.lineno
        if e.pos >= len(text.rstrip()):  # the parser wanted more: cut off mid-write or -copy
            raise DataError(f"{path}:{at}: invalid JSON: the text ends before the JSON does "
                            f"({e.msg}); a truncated file?",
                            hint="write or download the file again") from None
        hint = ("convert it to JSON (a list of objects) or JSONL" if path.suffix.lower() in
                (".csv", ".tsv", ".txt", ".yaml", ".yml") else
                "fix the JSON at that spot (a JSON list or JSONL file is expected)")
        raise DataError(f"{path}:{at}: invalid JSON: {e.msg} (column {e.colno})", hint=hint) from None
    except RecursionError:
        where = f"{path}:{line}" if line is not None else str(path)
        raise DataError(f"{where}: JSON nested too deeply (more than about "
                        f"{sys.getrecursionlimit()} levels of [ and {{)",
                        hint="items are flat objects of strings: remove the nesting") from None
    except ValueError:  # Python's limit on the digits of an int (CVE-2020-10735)
        limit = sys.get_int_max_str_digits() if hasattr(sys, "get_int_max_str_digits") else 4300
        m = re.search(r"\d{" + str(limit + 1) + ",}", text)
        at = line if line is not None else (text.count("\n", 0, m.start()) + 1 if m else None)
        where = f"{path}:{at}" if at is not None else str(path)
        digits = f"{len(m.group())} digits" if m else "too many digits"
        raise DataError(f"{where}: a number with {digits}, more than Python reads ({limit})",
                        hint="write it as a string in quotes, or remove it") from None


def _several_values(text: str) -> bool:
    """Whether text starting with '{' holds more than one JSON value (JSONL, not an object)."""
    try:
        json.loads(text)
    except json.JSONDecodeError as e:
        return e.msg == "Extra data"
    except (RecursionError, ValueError):
        return False  # the single-value parse reports it
    return False


def _concatenated_values(text: str) -> bool:
    decoder, pos, n = json.JSONDecoder(), 0, 0
    try:
        while True:
            while pos < len(text) and text[pos].isspace():
                pos += 1
            if pos == len(text):
                return n > 1
            _, pos = decoder.raw_decode(text, pos)
            n += 1
    except (ValueError, RecursionError):
        return False


def _top_level_object(path: Path, obj: dict[str, Any]) -> DataError:
    keys = ", ".join(list(obj)[:8]) + (", ..." if len(obj) > 8 else "")
    lists = [k for k, v in obj.items() if isinstance(v, list)]
    if lists:
        hint = (f"the items may be the list under '{lists[0]}': extract it "
                f"(jq '.{lists[0]}' {path} > {path.with_name(path.stem + '-items.json')})")
    elif "instruction" in obj:
        hint = "one item: wrap it in [ ] to make a list, or name the file .jsonl"
    else:
        hint = "write a JSON list of {instruction, input, output} objects"
    return DataError(f"{path}: holds one JSON object (keys: {keys}), not a list of items",
                     hint=hint)


def _parquet_records(path: Path) -> list[tuple[str, Any]]:
    import pyarrow.parquet as pq  # a dependency of datasets

    try:
        rows = pq.read_table(path).to_pylist()
    except Exception as e:  # pyarrow's errors are many and unrelated: say which file
        raise DataError(f"{path}: unreadable Parquet file: {e}",
                        hint="re-download or re-export the file") from None
    return [(f"row {i}", row) for i, row in enumerate(rows)]


def _check_unicode(path: Path, records: list[tuple[str, Any]]) -> None:
    """Refuse lone UTF-16 surrogates ("\\ud800" escapes): text nothing can encode or write."""
    for loc, rec in records:
        stack = [rec]  # iterative: records may be nested almost to the recursion limit
        while stack:
            value = stack.pop()
            if isinstance(value, str):
                if not value.isascii() and _lone_surrogate(value) is not None:
                    raise _surrogate_error(path, loc, rec)
            elif isinstance(value, dict):
                stack.extend(value)
                stack.extend(value.values())
            elif isinstance(value, list):
                stack.extend(value)


def _surrogate_error(path: Path, loc: str, rec: Any) -> DataError:
    """The message for a record known to hold a lone surrogate: find the field's path."""
    stack: list[tuple[str, Any]] = [("", rec)]
    while stack:
        name, value = stack.pop()
        if isinstance(value, str):
            pos = None if value.isascii() else _lone_surrogate(value)
            if pos is not None:
                what = f"field '{name}'" if name else "the record"
                return DataError(
                    f"{path}: {loc}: {what} holds a lone UTF-16 surrogate "
                    f"(\\u{ord(value[pos]):04x} at character {pos + 1}), which is not text",
                    hint="remove the escape, or write the character it was meant to be")
        elif isinstance(value, dict):
            for k, v in value.items():
                key = f"{name}.{k}" if name else str(k)
                stack += [(key, k), (key, v)]
        elif isinstance(value, list):
            stack.extend((f"{name}[{i}]", v) for i, v in enumerate(value))
    return DataError(f"{path}: {loc}: holds a lone UTF-16 surrogate")


def _lone_surrogate(s: str) -> int | None:
    try:
        s.encode("utf-8")
        return None
    except UnicodeEncodeError as e:
        return e.start


_JSON_KINDS = {type(None): "null", bool: "boolean", int: "number", float: "number",
               str: "string", list: "list", dict: "object"}


def _kind(value: Any) -> str:
    """A value's type as JSON names it: null, boolean, number, string, list, object."""
    return _JSON_KINDS.get(type(value), type(value).__name__)


# --- items ---------------------------------------------------------------------------------


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


# Each source gives (a name for messages, [(location, record)]).
RawRecords = tuple[str, list[tuple[str, Any]]]


def _demo_records(cfg: DataConfig) -> RawRecords:
    path = _resource_path(DEMO_TRAIN)
    return str(path), read_records(path)


def _file_records(cfg: DataConfig) -> RawRecords:
    path = _configured_path(cfg)
    if path is None:
        raise DataError("data=json needs data.path=/path/to/items.json",
                        hint="give the file: data=json data.path=FILE (a JSON list or JSONL)")
    return str(path), read_records(path)


def _hub_records(cfg: DataConfig) -> RawRecords:
    """An HF hub dataset id, or a local file or folder in the hub's layout (offline use)."""
    name = _configured_path(cfg)
    if name is None:
        raise DataError(f"data={cfg.name} needs data.path=HUB_ID (or a local file or folder)")
    local = Path(name).expanduser()
    if local.is_file():
        return str(local), read_records(local)
    if local.exists() or str(name).startswith(("/", "./", "../", "~")) or \
            local.suffix.lower() in (".json", ".jsonl", ".parquet"):
        return _local_dataset(local, cfg.split)
    return _hub_dataset(str(name), cfg.split)


def _local_dataset(folder: Path, split: str) -> RawRecords:
    if not folder.exists():
        raise DataError(f"{folder}: not found", hint="check data.path (a file, a folder in the "
                        "hub's layout, or a hub id such as tatsu-lab/alpaca)")
    import datasets

    try:  # datasets resolves the hub layout: data/train-*.parquet, *.jsonl, split names
        ds = datasets.load_dataset(str(folder), split=split)
    except Exception as e:  # its errors are many (no data files, unknown split, bad rows)
        raise DataError(f"{folder}: could not load split '{split}' as a dataset folder: "
                        f"{str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__}",
                        hint="point data.path at the data file itself to get a message naming "
                             "the line") from None
    where = f"{folder} ({split})"
    return where, [(f"index {i}", rec) for i, rec in enumerate(ds.to_list())]


def _hub_dataset(hub_id: str, split: str) -> RawRecords:
    import datasets

    try:
        ds = datasets.load_dataset(hub_id, split=split)
    except Exception as e:  # network, auth, missing dataset: say which and how to work around
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(
            f"could not load '{hub_id}' ({split}) from the HF hub: {first}",
            hint="offline? download the dataset once (a file or the repo folder) and point "
                 "data.path at it") from None
    where = f"hub {hub_id} ({split})"
    return where, [(f"index {i}", rec) for i, rec in enumerate(ds.to_list())]


def _configured_path(cfg: DataConfig) -> Path | str | None:
    from omegaconf import DictConfig, OmegaConf

    if isinstance(cfg, DictConfig) and OmegaConf.is_missing(cfg, "path"):
        return None
    if not cfg.path:
        return None
    return Path(cfg.path).expanduser() if _value(cfg.source) == "file" else cfg.path


def _value(x: Any) -> str:
    return str(getattr(x, "value", x))


SOURCES: dict[str, Callable[[DataConfig], RawRecords]] = {
    "demo": _demo_records,
    "file": _file_records,
    "hub": _hub_records,
}


def load_data(cfg: DataConfig) -> LoadedItems:
    """Load, validate and filter the training items named by the data config.

    Items with an empty (or whitespace-only) instruction or output are refused with their
    locations (``data.empty_policy=refuse``), or left out (``drop``) or kept (``keep``), and
    then logged with their locations and listed in ``LoadedItems.empty``.
    """
    source = _value(cfg.source)
    if source not in SOURCES:
        raise DataError(f"unknown data.source '{source}' ({' | '.join(SOURCES)})")
    name, records = SOURCES[source](cfg)
    fields = dict(getattr(cfg, "fields", None) or {})
    located = [(loc, validate_item(rec, f"{name}: {loc}", fields)) for loc, rec in records]
    empty_fields = [_empty_fields(item) for _, item in located]
    empty = [f"{loc} ({', '.join(which)})" for (loc, _), which in zip(located, empty_fields,
                                                                    strict=True) if which]
    policy = EmptyPolicy(_value(getattr(cfg, "empty_policy", EmptyPolicy.refuse)))
    if empty:
        if policy is EmptyPolicy.refuse:
            raise DataError(
                f"{name}: {len(empty)} item(s) with an empty or whitespace-only instruction or "
                f"output: {_listing(empty)}",
                hint="fix them, or set data.empty_policy=drop to leave them out (or keep, to "
                     "use them as they are); either way they are counted and listed in the log")
        verb = "dropped" if policy is EmptyPolicy.drop else "kept"
        log.warning("data %s: %s %d of %d items with an empty or whitespace-only instruction or "
                    "output (data.empty_policy=%s): %s", name, verb, len(empty), len(located),
                    policy.value, ", ".join(empty))  # every one: the user asked for this
        if policy is EmptyPolicy.drop:
            located = [pair for pair, which in zip(located, empty_fields, strict=True)
                       if not which]
    items = [item for _, item in located]
    if not items:
        raise DataError(f"data '{cfg.name}' ({name}): no items left")
    if cfg.limit:
        items = items[: cfg.limit]
    return LoadedItems(items=items, source=name, empty=empty, policy=policy)


def load_items(cfg: DataConfig) -> list[Item]:
    """The training items named by the data config, validated (see load_data)."""
    return load_data(cfg).items


def _empty_fields(item: Item) -> list[str]:
    return [f for f in ("instruction", "output") if not getattr(item, f).strip()]


def _listing(locations: list[str]) -> str:
    shown = ", ".join(locations[:LISTED])
    more = len(locations) - LISTED
    return shown + (f", and {more} more" if more > 0 else "")


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
