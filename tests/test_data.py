"""Bad input stops the run before any model loads, naming file, line/index and field."""

from __future__ import annotations

import json
import logging

import pytest
from hydra.errors import ConfigCompositionException

from alpagasus.config import DataConfig, TestsetsConfig
from alpagasus.data import (
    DataError,
    EmptyPolicy,
    Item,
    fingerprint,
    load_data,
    load_items,
    load_testsets,
)
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
    with pytest.raises(DataError, match=r"items\.jsonl: line 2: field 'input' must be a string, got number"):
        _load(p)


def test_null_input_is_accepted(tmp_path):
    p = tmp_path / "items.json"
    p.write_text(json.dumps([{"instruction": "a", "input": None, "output": "b"}]))
    [item] = _load(p)
    assert item.input == "" and item.output == "b" and item.category is None


GOOD = {"instruction": "a", "input": "", "output": "b"}
EMPTY_ONES = [GOOD,
              {"instruction": "c", "input": "x", "output": ""},
              GOOD,
              {"instruction": " \n", "input": "", "output": "d"},
              {"instruction": "e", "input": "", "output": "\t "},
              GOOD]


def test_empty_items_are_refused_by_default_with_their_indices(tmp_path):
    p = tmp_path / "items.json"
    p.write_text(json.dumps(EMPTY_ONES))
    with pytest.raises(DataError) as e:
        _load(p)
    assert str(e.value) == (f"{p}: 3 item(s) with an empty or whitespace-only instruction or "
                            "output: index 1 (output), index 3 (instruction), index 4 (output)")
    assert "data.empty_policy=drop" in e.value.hint


def test_empty_items_dropped_are_counted_and_listed(tmp_path, caplog):
    p = tmp_path / "items.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in EMPTY_ONES))
    caplog.set_level(logging.WARNING, logger="alpagasus.data")
    loaded = load_data(DataConfig(name="json", source="file", path=str(p),
                                  empty_policy=EmptyPolicy.drop))
    assert [it.instruction for it in loaded.items] == ["a", "a", "a"]
    assert loaded.dropped == ["line 2 (output)", "line 4 (instruction)", "line 5 (output)"]
    assert (f"data {p}: dropped 3 of 6 items with an empty or whitespace-only instruction or "
            "output (data.empty_policy=drop): line 2 (output), line 4 (instruction), "
            "line 5 (output)") in caplog.text
    assert loaded.empty == loaded.dropped
    # data.limit counts the items kept, after dropping.
    limited = load_data(DataConfig(name="json", source="file", path=str(p), limit=2,
                                   empty_policy=EmptyPolicy.drop))
    assert len(limited.items) == 2 and len(limited.dropped) == 3


def test_empty_items_kept_are_counted_and_listed(tmp_path, caplog):
    p = tmp_path / "items.json"
    p.write_text(json.dumps(EMPTY_ONES))
    caplog.set_level(logging.WARNING, logger="alpagasus.data")
    loaded = load_data(DataConfig(name="json", source="file", path=str(p),
                                  empty_policy=EmptyPolicy.keep))
    assert len(loaded.items) == 6 and loaded.items[1].output == ""
    assert loaded.empty == ["index 1 (output)", "index 3 (instruction)", "index 4 (output)"]
    assert loaded.dropped == []
    assert "kept 3 of 6 items with an empty" in caplog.text


def test_long_lists_of_locations_are_cut(tmp_path):
    p = tmp_path / "items.json"
    p.write_text(json.dumps([{"instruction": "a", "output": ""}] * 50))
    with pytest.raises(DataError, match=r"50 item\(s\) .*index 19 \(output\), and 30 more$"):
        _load(p)


def test_only_empty_items_leaves_nothing(tmp_path):
    p = tmp_path / "items.json"
    p.write_text(json.dumps([{"instruction": "a", "output": ""}]))
    with pytest.raises(DataError, match="no items left"):
        load_items(DataConfig(name="json", source="file", path=str(p),
                              empty_policy=EmptyPolicy.drop))


def test_empty_policy_is_an_enum_checked_at_compose(compose_cfg):
    assert compose_cfg("data.empty_policy=drop").data.empty_policy is EmptyPolicy.drop
    assert compose_cfg().data.empty_policy is EmptyPolicy.refuse
    with pytest.raises(ConfigCompositionException) as e:
        compose_cfg("data.empty_policy=skip")
    assert "Invalid value 'skip', expected one of [refuse, drop, keep]" in str(e.value.__cause__)


def test_items_without_category_hash_as_before():
    """Artifact keys hash to_dict(): an item without a category keeps its old dict."""
    items = load_items(DataConfig(name="demo", source="demo"))
    old = [{"instruction": it.instruction, "input": it.input, "output": it.output} for it in items]
    assert [it.to_dict() for it in items] == old
    assert fingerprint([it.to_dict() for it in items]) == fingerprint(old)
    with_category = Item("a", "", "b", category="open_qa")
    assert with_category.to_dict() == {"instruction": "a", "input": "", "output": "b",
                                       "category": "open_qa"}
    assert Item(**with_category.to_dict()) == with_category  # selected.json round trip


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
    assert any(p.input for p in prompts if p.testset == "sinstruct")  # Alpaca "### Input:"


def test_bad_data_stops_run_before_anything_is_written(tiny_cfg, tmp_path, monkeypatch):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"instruction": "a", "output": 5}]))

    def no_model(*a, **k):
        raise AssertionError("a model was loaded")

    # Where they are used (each module binds its own name at import).
    for target in ("alpagasus.stages.generate.load_for_inference",
                   "alpagasus.stages.train_checks.resolve_model_path",
                   "alpagasus.stages.train.resolve_model_path",
                   "alpagasus.stages.ifd.resolve_model_path",
                   "alpagasus.judges.local.load_for_inference",
                   "alpagasus.judges.local.resolve_model_path"):
        monkeypatch.setattr(target, no_model)
    cfg = tiny_cfg("data=json", f"data.path={bad}")
    with pytest.raises(DataError, match=r"bad\.json: index 0: field 'output' must be a string"):
        run(cfg)
    assert not (tmp_path / "artifacts").exists() and not (tmp_path / "wandb").exists()


# --- data sources: the hub's formats, written here as local files (the hub is not reachable) ---

ALPACA_ROWS = [
    {"instruction": "Give three tips for staying healthy.", "input": "",
     "output": "1. Eat well. 2. Exercise. 3. Sleep.", "text": "Below is an instruction..."},
    {"instruction": "Translate to French.", "input": "Good morning", "output": "Bonjour",
     "text": "Below is an instruction..."},
]
DOLLY_ROWS = [
    {"instruction": "When did Virgin Australia start operating?",
     "context": "Virgin Australia commenced services on 31 August 2000.",
     "response": "On 31 August 2000.", "category": "closed_qa"},
    {"instruction": "Which is a species of fish? Tope or Rope", "context": "",
     "response": "Tope", "category": "classification"},
]


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """datasets writes its Arrow cache under tmp, not the user's ~/.cache."""
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf_cache")


def _alpaca_repo(root):
    """tatsu-lab/alpaca's layout: data/train-00000-of-00001-<hash>.parquet."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    (root / "data").mkdir(parents=True)
    path = root / "data" / "train-00000-of-00001-a09b74b3ef9c3b56.parquet"
    pq.write_table(pa.Table.from_pylist(ALPACA_ROWS), path)
    return path


def _dolly_repo(root):
    """databricks/databricks-dolly-15k's layout: databricks-dolly-15k.jsonl at the top."""
    root.mkdir(parents=True)
    path = root / "databricks-dolly-15k.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in DOLLY_ROWS))
    return path


def _cleaned_repo(root):
    """yahma/alpaca-cleaned's layout: alpaca_data_cleaned.json (a JSON list) at the top."""
    root.mkdir(parents=True)
    path = root / "alpaca_data_cleaned.json"
    path.write_text(json.dumps([{k: r[k] for k in ("output", "input", "instruction")}
                                for r in ALPACA_ROWS], indent=4))
    return path


ALPACA_ITEMS = [Item(r["instruction"], r["input"], r["output"]) for r in ALPACA_ROWS]
DOLLY_ITEMS = [Item(r["instruction"], r["context"], r["response"], r["category"])
               for r in DOLLY_ROWS]


@pytest.mark.parametrize("option,make,expected", [
    ("alpaca", _alpaca_repo, ALPACA_ITEMS),
    ("alpaca_cleaned", _cleaned_repo, ALPACA_ITEMS),
    ("dolly", _dolly_repo, DOLLY_ITEMS),
])
def test_hub_sources_load_a_local_folder_or_file_in_the_hubs_layout(
        compose_cfg, hub_cache, tmp_path, option, make, expected):
    data_file = make(tmp_path / "repo")
    for path in (tmp_path / "repo", data_file):  # the cloned repo folder, or its data file
        cfg = compose_cfg(f"data={option}", f"data.path={path}")
        assert cfg.data.source == "hub"
        assert load_items(cfg.data) == expected


def test_hub_ids_in_the_configs(compose_cfg):
    ids = {o: compose_cfg(f"data={o}").data.path for o in ("alpaca", "alpaca_cleaned", "dolly")}
    assert ids == {"alpaca": "tatsu-lab/alpaca", "alpaca_cleaned": "yahma/alpaca-cleaned",
                   "dolly": "databricks/databricks-dolly-15k"}
    assert dict(compose_cfg("data=dolly").data.fields) == {"input": "context",
                                                           "output": "response"}


def test_hub_id_offline_says_how_to_work_around(compose_cfg, hub_cache, monkeypatch):
    monkeypatch.setattr("datasets.config.HF_HUB_OFFLINE", True)
    with pytest.raises(DataError) as e:
        load_items(compose_cfg("data=dolly").data)
    assert str(e.value).startswith("could not load 'databricks/databricks-dolly-15k' (train) "
                                   "from the HF hub")
    assert "point data.path at it" in e.value.hint


def test_hub_source_missing_local_path(compose_cfg, tmp_path):
    with pytest.raises(DataError, match=r"nope/alpaca\.parquet: not found"):
        load_items(compose_cfg("data=alpaca", f"data.path={tmp_path}/nope/alpaca.parquet").data)


def test_hub_folder_with_a_bad_file_names_the_folder(compose_cfg, hub_cache, tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "databricks-dolly-15k.jsonl").write_bytes(b'{"instruction": "a", "response": \n')
    with pytest.raises(DataError, match=rf"{repo}: could not load split 'train'") as e:
        load_items(compose_cfg("data=dolly", f"data.path={repo}").data)
    assert "point data.path at the data file itself" in e.value.hint


def test_dolly_fields_name_the_sources_field_when_missing(compose_cfg, tmp_path):
    p = tmp_path / "dolly.jsonl"
    p.write_text(json.dumps({"instruction": "a", "context": ""}) + "\n")
    with pytest.raises(DataError, match=r"line 1: missing field 'response'"):
        load_items(compose_cfg("data=dolly", f"data.path={p}").data)
    # Already in our format (the AlpaGasus Dolly release renames context to input):
    p.write_text(json.dumps({"instruction": "a", "input": "", "output": "b"}) + "\n")
    with pytest.raises(DataError) as e:
        load_items(compose_cfg("data=dolly", f"data.path={p}").data)
    assert "use data=json data.path=FILE" in e.value.hint


def test_field_mapping_from_the_command_line(compose_cfg, tmp_path):
    p = tmp_path / "qa.json"
    p.write_text(json.dumps([{"question": "q", "answer": "a", "topic": "t"}]))
    cfg = compose_cfg("data=json", f"data.path={p}", "++data.fields.instruction=question",
                      "++data.fields.output=answer", "++data.fields.category=topic")
    assert load_items(cfg.data) == [Item("q", "", "a", "t")]


def test_real_dolly_3k_keeps_categories():
    from tests.conftest import SHARED_DATA

    path = SHARED_DATA / "dolly" / "dolly_3k.json"
    if not path.is_file():
        pytest.skip("../shared/data not present")
    items = load_items(DataConfig(name="json", source="file", path=str(path)))
    assert len(items) == 2996
    raw = json.loads(path.read_text())
    assert [it.category for it in items] == [r["category"] for r in raw]
    assert sum(it.category == "open_qa" for it in items) == 943
    assert all(it.to_dict()["category"] for it in items)
