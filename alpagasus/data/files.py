"""Reading a data file: bytes -> text -> records, and the DataError every bad input raises.

A file is read as bytes first, so a compressed, binary, UTF-16 or non-UTF-8 file gets its
own message rather than a decoder's traceback; JSON lists, JSONL and Parquet are told apart
by their content as well as their names; escaped lone surrogates are refused.
"""

from __future__ import annotations

import json
import re
import sys
from importlib import resources
from pathlib import Path
from typing import Any

from alpagasus.errors import AlpagasusError


class DataError(AlpagasusError, ValueError):
    """Bad input data; the message names the file, the line or index, and the field."""

    hint = "fix the file and run again"


def resource_path(name: str) -> Path:
    """A file shipped with the package (alpagasus/resources/)."""
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
    raise DataError(f"{path}: holds a JSON {kind(value)}, not a list of items",
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


def kind(value: Any) -> str:
    """A value's type as JSON names it: null, boolean, number, string, list, object."""
    return _JSON_KINDS.get(type(value), type(value).__name__)
