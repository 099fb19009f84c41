"""A table of malformed input files, each generated here: the job is refused with a message
that names the file and what is wrong (and how to fix it), exit code 1, no traceback, and
nothing under the output root (no artifact, no W&B run, no cache).

Each case runs in-process through `run_cli(run, cfg)`, what `alpagasus` runs under
@hydra.main; tests/test_errors.py checks the real command line (and its Hydra folder) once.
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import os
import sqlite3
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from alpagasus.errors import run_cli
from alpagasus.main import run
from alpagasus.tracking import Tracker
from tests.conftest import TINY

GOOD = {"instruction": "Name a colour.", "input": "", "output": "Red."}


def js(value) -> bytes:
    return json.dumps(value).encode()


def lines(*records) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in records)


def deep(n: int) -> bytes:
    return b"[" * n + b"]" * n


def sqlite_file(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE items (instruction TEXT, output TEXT)")
    db.close()


def zip_bytes() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("items.json", js([GOOD]))
    return buf.getvalue()


def parquet_file(rows: list[dict], schema=None) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
    return make


def parquet_schema():
    import pyarrow as pa

    return pa.schema([("instruction", pa.string()), ("output", pa.string())])


# (id, file name, content: bytes or a function that writes the file, words the message must
# hold). Where the data goes: "data" (data=json data.path=FILE) or "testset".
CASES: list[tuple[str, str, bytes | Callable[[Path], None], str, str]] = [
    # -- the file itself
    ("missing", "nope.json", None, "data file not found", "data"),
    ("directory", "folder.json", lambda p: p.mkdir(), "is a directory", "data"),
    ("fifo", "pipe.json", lambda p: os.mkfifo(p), "is not a regular file", "data"),
    ("zero-bytes", "empty.json", b"", "is empty", "data"),
    ("whitespace-only", "blank.jsonl", b" \n\t\n  \n", "is empty", "data"),
    # -- not JSON text at all
    ("gzip", "items.json.gz", gzip.compress(js([GOOD])), "is gzip-compressed", "data"),
    ("gzip-named-json", "items.json", gzip.compress(js([GOOD])), "is gzip-compressed", "data"),
    ("bzip2", "items.json", bz2.compress(js([GOOD])), "is bzip2-compressed", "data"),
    ("xz", "items.json", lzma.compress(js([GOOD])), "is xz-compressed", "data"),
    ("zstd", "items.json", b"\x28\xb5\x2f\xfd" + b"\x00" * 16, "is zstd-compressed", "data"),
    ("zip", "items.json", zip_bytes(), "is a zip archive", "data"),
    ("sqlite", "items.json", sqlite_file, "is an SQLite database", "data"),
    ("pdf", "items.json", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "is a PDF document", "data"),
    ("binary", "items.json", bytes(range(256)) * 4, "is a binary file (a NUL byte at offset 0)",
     "data"),
    ("nul-in-text", "items.json", b'[{"instruction": "a\x00", "output": "b"}]',
     "is a binary file (a NUL byte at offset 19)", "data"),
    ("parquet-corrupt", "items.parquet", b"PAR1" + b"\x01" * 64, "unreadable Parquet file",
     "data"),
    ("parquet-no-rows", "items.parquet", lambda p: parquet_file([], parquet_schema())(p),
     "has no rows", "data"),
    # -- encodings
    ("utf16-le-bom", "items.json", "\ufeff".encode("utf-16-le") + json.dumps([GOOD]).encode(
        "utf-16-le"), "is UTF-16LE text", "data"),
    ("utf16-be-bom", "items.json", b"\xfe\xff" + json.dumps([GOOD]).encode("utf-16-be"),
     "is UTF-16BE text", "data"),
    ("utf16-be", "items.jsonl", b"\xfe\xff" + json.dumps(GOOD).encode("utf-16-be"),
     "is UTF-16BE text", "data"),
    ("utf16-no-bom", "items.json", json.dumps([GOOD]).encode("utf-16-le"),
     "looks like UTF-16 text without a byte-order mark", "data"),
    ("utf32", "items.json", json.dumps([GOOD]).encode("utf-32"), "is UTF-32", "data"),
    ("latin1", "items.json", '[\n{"instruction": "Café?", "output": "Oui."}\n]'.encode("latin-1"),
     ":2: not valid UTF-8: byte 0xE9 at column 21", "data"),
    ("cp1252-quotes", "items.jsonl", lines(GOOD) + '{"instruction": "“Hi”", "output": "x"}'.encode(
        "cp1252"), ":2: not valid UTF-8: byte 0x93", "data"),
    ("cesu8-surrogate", "items.json", b'[{"instruction": "a\xed\xa0\x80", "output": "b"}]',
     "a UTF-16 surrogate encoded as UTF-8 (bytes ED A0 80)", "data"),
    ("lone-high-surrogate", "items.json", b'[{"instruction": "a\\ud83d", "output": "b"}]',
     "index 0: field 'instruction' holds a lone UTF-16 surrogate (\\ud83d", "data"),
    ("lone-low-surrogate", "items.jsonl", lines(GOOD) + b'{"instruction": "a", "output": "\\udc00"}',
     "line 2: field 'output' holds a lone UTF-16 surrogate", "data"),
    ("surrogate-in-extra-field", "items.json",
     b'[{"instruction": "a", "output": "b", "meta": {"tags": ["\\udfff"]}}]',
     "field 'meta.tags[0]' holds a lone UTF-16 surrogate", "data"),
    # -- JSON structure
    ("deeply-nested", "items.json", deep(100_000), "JSON nested too deeply", "data"),
    ("deeply-nested-jsonl", "items.jsonl", lines(GOOD) + deep(100_000),
     ":2: JSON nested too deeply", "data"),
    ("huge-integer", "items.json", b'[{"instruction": "a", "output": "b",\n "n": ' + b"7" * 5000
     + b"}]", ":2: a number with 5000 digits", "data"),
    ("huge-integer-jsonl", "items.jsonl", lines(GOOD, GOOD) + b'{"n": -' + b"1" * 9000 + b"}",
     ":3: a number with 9000 digits", "data"),
    ("top-level-object", "items.json", js({"data": [GOOD], "version": 1}),
     "holds one JSON object (keys: data, version), not a list of items", "data"),
    ("single-item-object", "items.json", json.dumps(GOOD, indent=2).encode(),
     "holds one JSON object (keys: instruction, input, output)", "data"),
    ("list-in-jsonl", "items.jsonl", js([GOOD, GOOD]),
     "holds a JSON list, but a .jsonl file has one JSON object per line", "data"),
    ("empty-list", "items.json", b"[]", "holds an empty list ([])", "data"),
    ("empty-list-spaced", "items.json", b"\n [ \n ] \n", "holds an empty list ([])", "data"),
    ("top-level-string", "items.json", b'"instruction"', "holds a JSON string", "data"),
    ("top-level-number", "items.json", b"42", "holds a JSON number", "data"),
    ("top-level-null", "items.json", b"null", "holds a JSON null", "data"),
    ("missing-comma", "items.json",
     b'[\n{"instruction": "a", "output": "b"},\n{"instruction": "a" "output": "b"}\n]',
     ":3: invalid JSON: Expecting ',' delimiter", "data"),
    ("truncated", "items.json", js([GOOD, GOOD])[:-20],
     ":1: invalid JSON: the text ends before the JSON does", "data"),
    ("truncated-jsonl", "items.jsonl", lines(GOOD, GOOD)[:-9],
     ":2: invalid JSON: the text ends before the JSON does", "data"),
    ("trailing-comma", "items.json", b'[{"instruction": "a", "output": "b"},]',
     ":1: invalid JSON", "data"),
    ("comments", "items.json", b'// exported\n[{"instruction": "a", "output": "b"}]',
     ":1: invalid JSON: Expecting value", "data"),
    ("bad-jsonl-line", "items.jsonl", lines(GOOD) + b"{'instruction': 'a'}\n",
     ":2: invalid JSON", "data"),
    ("pretty-jsonl", "items.jsonl", json.dumps(GOOD, indent=1).encode() + b"\n"
     + json.dumps(GOOD, indent=1).encode(), "JSON objects that span several lines", "data"),
    ("csv", "items.csv", b"instruction,input,output\nName a colour.,,Red.\n",
     ":1: invalid JSON", "data"),
    ("yaml", "items.yaml", b"- instruction: Name a colour.\n  output: Red.\n", ":1: invalid JSON",
     "data"),
    # -- records
    ("record-is-string", "items.json", js([GOOD, "Name a colour."]),
     "index 1: expected an object with fields instruction, input, output; got string", "data"),
    ("record-is-list", "items.jsonl", lines(GOOD, ["a", "b"]), "line 2: expected an object",
     "data"),
    ("missing-instruction", "items.json", js([{"output": "b"}]),
     "index 0: missing field 'instruction' (the record has: output)", "data"),
    ("missing-output", "items.jsonl", lines(GOOD, {"instruction": "a", "input": ""}),
     "line 2: missing field 'output'", "data"),
    ("dolly-fields", "items.json", js([{"instruction": "a", "context": "", "response": "b"}]),
     "missing field 'output' (the record has: instruction, context, response)", "data"),
    ("capitalised-fields", "items.json", js([{"Instruction": "a", "Output": "b"}]),
     "missing field 'instruction'", "data"),
    ("output-number", "items.json", js([GOOD, {"instruction": "a", "output": 5}]),
     "index 1: field 'output' must be a string, got number", "data"),
    ("instruction-null", "items.json", js([{"instruction": None, "output": "b"}]),
     "field 'instruction' must be a string, got null", "data"),
    ("input-list", "items.jsonl", lines({"instruction": "a", "input": ["x"], "output": "b"}),
     "line 1: field 'input' must be a string, got list", "data"),
    ("output-object", "items.json", js([{"instruction": "a", "output": {"text": "b"}}]),
     "field 'output' must be a string, got object", "data"),
    ("category-number", "items.json", js([{**GOOD, "category": 3}]),
     "field 'category' must be a string, got number", "data"),
    ("whitespace-instruction", "items.json", js([GOOD, {"instruction": " \n\t", "output": "b"}]),
     "1 item(s) with an empty or whitespace-only instruction or output: index 1 (instruction)",
     "data"),
    ("empty-outputs", "items.jsonl", lines(GOOD, {"instruction": "a", "output": ""}, GOOD,
                                           {"instruction": "", "output": "  "}),
     "2 item(s) with an empty or whitespace-only instruction or output: line 2 (output), "
     "line 4 (instruction, output)", "data"),
    # -- test prompt files
    ("testset-utf16", "prompts.jsonl", json.dumps({"prompt": "Hi"}).encode("utf-16"),
     "is UTF-16", "testset"),
    ("testset-no-prompt-field", "prompts.jsonl", lines({"id": 1, "answer": "x"}),
     "line 1: no prompt field", "testset"),
    ("testset-empty-prompt", "prompts.jsonl", lines({"prompt": "Hi"}, {"prompt": "   "}),
     "line 2: field 'prompt' is empty", "testset"),
    ("testset-prompt-number", "prompts.json", js([{"text": 7}]),
     "index 0: field 'text' must be a string, got number", "testset"),
    ("testset-gzip", "prompts.jsonl", gzip.compress(lines({"prompt": "Hi"})), "gzip-compressed",
     "testset"),
]


def _write(path: Path, content) -> None:
    if callable(content):
        content(path)
    elif content is not None:
        path.write_bytes(content)


@pytest.mark.parametrize("case,name,content,expected,where", CASES, ids=[c[0] for c in CASES])
def test_malformed_file_is_refused_clearly(compose_cfg, tmp_path, capsys, case, name, content,
                                           expected, where):
    inputs, root = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    path = inputs / name
    _write(path, content)
    where_args = (["data=json", f"data.path={path}"] if where == "data"
                  else [f"testsets.files.demo={path}"])
    cfg = compose_cfg(*TINY, f"paths.root={root}", "logger.mode=offline", *where_args)
    opened = Tracker.opened
    with pytest.raises(SystemExit) as e:
        run_cli(run, cfg)
    err = capsys.readouterr().err
    assert e.value.code == 1, err
    first, *rest = err.splitlines()
    assert first.startswith(f"alpagasus: error: {path}"), err  # names the file first
    assert expected in first, err  # and what is wrong
    assert rest and rest[0].startswith("  fix: "), err  # and how to fix it
    assert "Traceback" not in err
    assert Tracker.opened == opened  # refused before any W&B run
    assert not root.exists() or list(root.rglob("*")) == []


def test_table_is_large_enough():
    assert len(CASES) >= 40


def test_unreadable_file(compose_cfg, tmp_path, capsys, monkeypatch):
    path = tmp_path / "items.json"
    path.write_bytes(js([GOOD]))
    real = Path.read_bytes

    def denied(self):
        if self == path:
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", denied)  # chmod 000 does not stop root
    cfg = compose_cfg(*TINY, f"paths.root={tmp_path / 'out'}", "data=json", f"data.path={path}")
    with pytest.raises(SystemExit) as e:
        run_cli(run, cfg)
    err = capsys.readouterr().err
    assert e.value.code == 1
    assert f"alpagasus: error: {path}: cannot be read: Permission denied" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("content", [
    b"\xef\xbb\xbf" + js([GOOD]),  # a UTF-8 byte-order mark (Windows editors) is accepted
    b"\xef\xbb\xbf" + lines(GOOD, GOOD),
    lines(GOOD, GOOD),  # JSONL under a .json name
    b"\n\n" + js([GOOD]) + b"\n\n",
])
def test_accepted_variants(tmp_path, content):
    from alpagasus.data import load_items_file

    path = tmp_path / "items.json"
    path.write_bytes(content)
    items = load_items_file(path)
    assert items and all(it.instruction == GOOD["instruction"] for it in items)
