"""Bad input stops the run before any model loads, naming file, line/index and field."""

from __future__ import annotations

import json

import pytest

from alpagasus.config import DataConfig, TestsetsConfig
from alpagasus.data import DataError, load_items, load_testsets
from alpagasus.main import run


def _load(path):
    return load_items(DataConfig(name="json", source="file", path=str(path)))


def test_demo_data_is_valid():
    items = load_items(DataConfig(name="demo", source="demo"))
    assert len(items) == 100
    assert sum(1 for it in items if it.input) > 10
    tests = load_testsets(TestsetsConfig(name="demo", files={"demo": "demo"}))
    assert len(tests) == 20


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"nope\.json: data file not found"):
        _load(tmp_path / "nope.json")


def test_invalid_json_names_line(tmp_path):
    p = tmp_path / "bad.json"
    p.write_text('[\n{"instruction": "a", "output": "b"},\n{"instruction": "a" "output": "b"}\n]')
    with pytest.raises(DataError, match=r"bad\.json:3: invalid JSON"):
        _load(p)


def test_invalid_jsonl_names_line(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_text('{"instruction": "a", "output": "b"}\n\n{"instruction": oops}\n')
    with pytest.raises(DataError, match=r"bad\.jsonl:3: invalid JSON"):
        _load(p)


def test_missing_field_names_index_and_field(tmp_path):
    p = tmp_path / "items.json"
    p.write_text(json.dumps([{"instruction": "a", "output": "b"}, {"instruction": "a"}]))
    with pytest.raises(DataError, match=r"items\.json: index 1: missing field 'output'"):
        _load(p)


def test_non_string_field_names_line_and_field(tmp_path):
    p = tmp_path / "items.jsonl"
    p.write_text('{"instruction": "a", "output": "b"}\n{"instruction": "a", "input": 3, "output": "b"}\n')
    with pytest.raises(DataError, match=r"items\.jsonl: line 2: field 'input' must be a string, got int"):
        _load(p)


def test_empty_output_and_null_input_are_accepted(tmp_path):
    p = tmp_path / "items.json"
    p.write_text(json.dumps([{"instruction": "a", "input": None, "output": ""}]))
    [item] = _load(p)
    assert item.input == "" and item.output == ""


def test_paper_testsets_normalise(tmp_path):
    from tests.conftest import SHARED_DATA

    d = SHARED_DATA / "testsets"
    if not d.is_dir():
        pytest.skip("../shared/data not present")
    files = {n: str(d / f"{n}_test_set.jsonl") for n in ("koala", "vicuna", "wizardlm", "sinstruct")}
    prompts = load_testsets(TestsetsConfig(name="paper", files=files))
    counts = {n: sum(p.testset == n for p in prompts) for n in files}
    assert counts == {"koala": 180, "vicuna": 80, "wizardlm": 218, "sinstruct": 252}
    assert all(p.prompt.strip() for p in prompts)
    assert any(" Input: " in p.prompt for p in prompts if p.testset == "sinstruct")


def test_bad_data_stops_run_before_anything_is_written(tiny_cfg, tmp_path, monkeypatch):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"instruction": "a", "output": 5}]))

    def no_model(*a, **k):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr("alpagasus.models.load_for_inference", no_model)
    monkeypatch.setattr("alpagasus.models.resolve_model_path", no_model)
    cfg = tiny_cfg("data=json", f"data.path={bad}")
    with pytest.raises(DataError, match=r"bad\.json: index 0: field 'output' must be a string"):
        run(cfg)
    assert not (tmp_path / "artifacts").exists() and not (tmp_path / "wandb").exists()
