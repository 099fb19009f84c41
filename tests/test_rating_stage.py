"""The `rate` stage with an API judge and no network: import of released ratings, reparse,
dry run, bad import files. No API key is set, so any attempt to send would fail."""

from __future__ import annotations

import json

import pytest

from alpagasus.data import DataError
from alpagasus.judges import engine as engine_mod
from alpagasus.judges.cache import ReplyCache
from alpagasus.judges.engine import DryRun, MissingReplies
from alpagasus.main import run
from alpagasus.parsing import ParsedScore
from alpagasus.stages import rate as rate_mod

ITEMS = [
    {"instruction": "Add 2 and 2.", "input": "", "output": "4"},
    {"instruction": "Translate to French.", "input": "cat", "output": "chat"},
    {"instruction": "Name a color.", "input": "", "output": "Blue"},
    {"instruction": "Add 2 and 2.", "input": "", "output": "4"},  # exact duplicate
    {"instruction": "Say nothing.", "input": "", "output": ""},  # empty output: rated
]


def triplet(item: dict[str, str]) -> str:
    return (f"###Instruction:\n{item['instruction']}\n\n### Input:\n{item['input']}\n\n"
            f"### Response:\n{item['output']}\n\n")


RELEASED = [  # gpt4life/alpagasus rating output, plus the instruction/input/output variant
    {"triplet": triplet(ITEMS[0]), "review": "5\n\nThe answer is correct."},
    {"triplet": triplet(ITEMS[1]), "review": "4.5\n\nAccurate translation."},
    {**ITEMS[2], "score": 3.0},
    {"triplet": triplet(ITEMS[4]), "review": "The response is empty, so I cannot rate it."},
]


@pytest.fixture
def files(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    data = tmp_path / "items.json"
    data.write_text(json.dumps(ITEMS))
    ratings = tmp_path / "released.json"
    ratings.write_text(json.dumps(RELEASED))
    return data, ratings


def _cfg(tiny_cfg, data, *extra):
    return tiny_cfg("stage=rate", "filter=chatgpt", "judge=chatgpt_paper", "data=json",
                    f"data.path={data}", "data.limit=null", "data.empty_policy=keep",
                    "logger.enabled=false",
                    "rate.progress=false", *extra)


def _rate_dirs(root):
    return sorted(p for p in (root / "artifacts" / "rate").iterdir()
                  if (p / "manifest.json").is_file())


def test_import_released_ratings_then_rate_without_sending(tiny_cfg, tmp_path, files):
    data, released = files
    run(_cfg(tiny_cfg, data, f"rate.import_path={released}", "threshold=4.5"))
    [art] = _rate_dirs(tmp_path)
    rows = [json.loads(x) for x in (art / "ratings.jsonl").read_text().splitlines()]
    assert [r["score"] for r in rows] == [5.0, 4.5, 3.0, 5.0, None]
    assert [r["source"] for r in rows] == ["import"] * 5
    assert rows[4]["status"] == "unparsed"
    unparsed = [json.loads(x) for x in (art / "unparsed.jsonl").read_text().splitlines()]
    assert [u["index"] for u in unparsed] == [4] and unparsed[0]["output"] == ""
    counts = json.loads((art / "manifest.json").read_text())["counts"]
    assert counts["histogram"] == {"3.0": 1, "4.5": 1, "5.0": 2}
    assert counts["kept_at"]["4.5"] == 3 and counts["unparsed"] == 1
    assert counts["duplicates"] == 1 and counts["requests"] == 4
    assert counts["sent_this_run"] == 0
    assert (art / "histogram.png").read_bytes()[:4] == b"\x89PNG"
    cache = ReplyCache(tmp_path / "cache" / "judge.sqlite")
    assert cache.count() == 4
    # Importing again adds nothing.
    run(_cfg(tiny_cfg, data, f"rate.import_path={released}"))
    assert cache.count() == 4


def test_reparse_rescores_stored_replies_into_a_new_artifact(tiny_cfg, tmp_path, files,
                                                             monkeypatch):
    data, released = files
    run(_cfg(tiny_cfg, data, f"rate.import_path={released}"))
    # Same parser: the artifact is reused.
    run(_cfg(tiny_cfg, data, "rate.reparse=true"))
    assert len(_rate_dirs(tmp_path)) == 1
    # A new parser (here: one that reads only 5s) gives a new artifact, with no API call.
    monkeypatch.setattr(rate_mod, "PARSER_VERSION", 99)
    monkeypatch.setattr(engine_mod, "PARSER_VERSION", 99)
    monkeypatch.setattr(rate_mod, "parse_rating", lambda text, **_: ParsedScore(5.0, "ok")
                        if text.startswith("5") else ParsedScore(None, "unparsed"))
    run(_cfg(tiny_cfg, data, "rate.reparse=true"))
    dirs = _rate_dirs(tmp_path)
    assert len(dirs) == 2
    new = next(d for d in dirs if json.loads((d / "manifest.json").read_text())["config"]
               ["parser_version"] == 99)
    assert json.loads((new / "manifest.json").read_text())["counts"]["unparsed"] == 3
    versions = ReplyCache(tmp_path / "cache" / "judge.sqlite").db.execute(
        "SELECT DISTINCT parser_version FROM replies").fetchall()
    assert versions == [(99,)]


def test_reparse_with_missing_replies_refuses_to_send(tiny_cfg, tmp_path, files):
    data, _ = files
    with pytest.raises(MissingReplies, match="4 of 4 requests have no stored reply"):
        run(_cfg(tiny_cfg, data, "rate.reparse=true"))
    assert not (tmp_path / "artifacts" / "rate").exists() or _rate_dirs(tmp_path) == []


def test_dry_run_prints_the_estimate_and_stops(tiny_cfg, tmp_path, files, caplog):
    data, released = files
    caplog.set_level("INFO")
    with pytest.raises(DryRun, match="1 requests would be sent"):
        # Three of the four unique items come from the import: one would be sent.
        partial = tmp_path / "partial.json"
        partial.write_text(json.dumps(RELEASED[:3]))
        run(_cfg(tiny_cfg, data, f"rate.import_path={partial}", "rate.dry_run=true"))
    assert "3 cached, 1 to send" in caplog.text and "tiktoken" in caplog.text
    assert _rate_dirs(tmp_path) == []


@pytest.mark.parametrize("record,message", [
    ({"triplet": "no markers", "review": "4"}, "index 1: field 'triplet' is not"),
    ({"triplet": triplet(ITEMS[0])}, "index 1: missing field 'review'"),
    ({"instruction": 3, "output": "x", "review": "4"}, "index 1: field 'instruction' must be"),
])
def test_bad_import_file_is_refused_whole(tiny_cfg, tmp_path, files, record, message):
    data, released = files
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([RELEASED[0], record]))
    with pytest.raises(DataError, match=f"{bad}: {message}"):
        run(_cfg(tiny_cfg, data, f"rate.import_path={bad}"))
    db = tmp_path / "cache" / "judge.sqlite"
    assert not db.exists() or ReplyCache(db).count() == 0  # nothing half-imported
