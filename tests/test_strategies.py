"""Selection strategies ifd, longest, released; duplicates collapsed; IFD scoring; real data."""

from __future__ import annotations

import hashlib
import json
import math

import pytest

from alpagasus.config import ConfigError
from alpagasus.data import Item
from alpagasus.selection import SelectionError, get_strategy, strategies
from alpagasus.selection.ifd import choose_by_ifd
from alpagasus.selection.longest import longest
from alpagasus.selection.released import content_key, membership
from alpagasus.stages.select import unique_positions
from alpagasus.validation import validate
from tests.conftest import SHARED_DATA

RANDOM_9K = SHARED_DATA / "alpaca" / "random_9k.json"
CLAUDE = SHARED_DATA / "alpaca" / "claude_t45.json"
real_data = pytest.mark.skipif(not RANDOM_9K.is_file(), reason="needs ../shared/data")


def _items(*outputs: str, inputs: tuple[str, ...] = ()) -> list[Item]:
    return [Item(f"q{i}", inputs[i] if i < len(inputs) else "", out)
            for i, out in enumerate(outputs)]


# --- pure choices ----------------------------------------------------------------------------


def test_registry_lists_the_new_strategies():
    assert {"ifd", "longest", "released"} <= set(strategies())


def test_longest_keeps_the_longest_responses_whatever_the_file_order():
    items = _items("a" * 5, "b" * 50, "c" * 20, "d" * 50, "e")
    assert longest(items, 1) in ([1], [3])  # a tie at 50: a fixed hash decides
    assert sorted(longest(items, 2)) == [1, 3]
    assert longest(items, 3) == [1, 2, 3]
    # The same items reversed: the same contents win, ties included.
    rev = list(reversed(items))
    for size in (1, 2, 3, 4):
        assert (sorted(items[i].output for i in longest(items, size))
                == sorted(rev[i].output for i in longest(rev, size)))


def test_ifd_keeps_below_one_highest_first():
    scores = [{"index": 0, "score": 0.5}, {"index": 1, "score": 1.2}, {"index": 2, "score": None},
              {"index": 3, "score": 0.9}, {"index": 4, "score": 0.99}, {"index": 5, "score": 1.0}]
    texts = [f"t{i}" for i in range(6)]
    assert choose_by_ifd(scores, None, texts) == [0, 3, 4]  # 1.0 and 1.2 fail, None fails
    assert choose_by_ifd(scores, 2, texts) == [3, 4]
    with pytest.raises(SelectionError, match="only 3 items have IFD < 1"):
        choose_by_ifd(scores, 4, texts)
    ranking = get_strategy("ifd").ranking(None, [], scores)
    assert ranking.passes == [True, False, False, True, True, False]
    assert ranking.values == [0.5, None, None, 0.9, 0.99, None]


def test_released_matching_ignores_whitespace_runs_and_counts_unmatched():
    data = [Item("Say hi", "", "Hi there."), Item("Add", "1 2", "3"), Item("x", "", "y")]
    released = [Item("Say  hi\n", "", " Hi there."), Item("Add", "1 2", "3"),
                Item("not in the data", "", "z"), Item("Add", "1 2", "3")]
    member, n_released, unmatched = membership(data, released)
    assert member == [True, True, False]
    assert (n_released, unmatched) == (3, 1)  # the released duplicate counts once
    assert content_key("a  b", "", "c\n") == content_key("a b", "", "c")
    assert content_key("a b", "", "c") != content_key("ab", "", "c")


def test_unique_positions_keeps_first_occurrences():
    a, b, c = Item("a", "", "1"), Item("b", "", "2"), Item("c", "", "3")
    firsts, where = unique_positions([a, b, a, c, b, a])
    assert firsts == [0, 1, 3]
    assert where == [0, 1, 0, 2, 1, 0]


def test_config_checks_of_the_new_strategies(compose_cfg):
    with pytest.raises(ConfigError, match="needs the released file: filter.path="):
        validate(compose_cfg("filter=released"))
    with pytest.raises(ConfigError, match="method=longest needs a size"):
        validate(compose_cfg("filter=longest"))
    with pytest.raises(ConfigError, match="ifd.batch_tokens"):
        validate(compose_cfg("filter=ifd", "ifd.batch_tokens=0"))
    with pytest.raises(ConfigError, match="ifd.dtype"):
        validate(compose_cfg("filter=ifd", "ifd.dtype=int4"))
    validate(compose_cfg("filter=ifd", "size=10", "baseline=longest"))
    validate(compose_cfg("filter=random", "size=10", "baseline=released", "baseline.path=x.json"))


# --- the select stage: duplicates, released, reproducibility ----------------------------------


def _manifests(root, stage="select"):
    return {p.parent.name: json.loads(p.read_text())
            for p in (root / "artifacts" / stage).glob("*/manifest.json")}


def test_exact_duplicates_are_collapsed_before_selection(tiny_cfg, tmp_path):
    from alpagasus.main import run

    items = [{"instruction": f"q{i % 4}", "input": "", "output": "x" * (i % 4 + 1)}
             for i in range(10)]  # 4 distinct items, 6 duplicates
    path = tmp_path / "dups.json"
    path.write_text(json.dumps(items))
    run(tiny_cfg("stage=select", "filter=longest", "size=3", "data=json", f"data.path={path}",
                 "data.limit=null"))
    counts = [m["counts"] for m in _manifests(tmp_path).values()]
    assert sorted((c["items"], c["unique"], c["duplicates"], c["kept"]) for c in counts) == [
        (10, 4, 6, 3), (10, 4, 6, 4)]  # longest 3, and arm B (all) keeps each item once
    for art in (tmp_path / "artifacts" / "select").iterdir():
        if not (art / "selected.json").is_file():
            continue
        selected = json.loads((art / "selected.json").read_text())
        assert len({json.dumps(s) for s in selected}) == len(selected)
        rows = [json.loads(line) for line in (art / "selection.jsonl").read_text().splitlines()]
        assert [r.get("duplicate_of") for r in rows][4:6] == [0, 1]
        assert not any(r["kept"] for r in rows if "duplicate_of" in r)
    with pytest.raises(SelectionError, match="4 distinct items"):
        run(tiny_cfg("stage=select", "filter=random", "size=5", "data=json", f"data.path={path}",
                     "data.limit=null", f"paths.root={tmp_path / 'other'}"))


@real_data
def test_released_claude_labels_match_935_and_random_matches_the_size(tiny_cfg, tmp_path):
    from alpagasus.main import run

    run(tiny_cfg("stage=select", "filter=released", f"filter.path={CLAUDE}", "baseline=random",
                 "data=json", f"data.path={RANDOM_9K}", "data.empty_policy=keep", "data.limit=null"))
    by_method = {m["config"]["method"]: m["counts"] for m in _manifests(tmp_path).values()}
    assert by_method["released"]["kept"] == 935
    assert by_method["released"]["matched"] == 935
    assert by_method["released"]["unmatched"] == 5305 - 935
    assert by_method["released"]["items"] == 9229 and by_method["released"]["duplicates"] == 0
    assert by_method["random"]["kept"] == 935  # size=match: arm A's 935


@real_data
def test_every_strategy_is_byte_identical_under_a_fixed_seed(app_cfg, tiny_lm, tmp_path):
    """Each strategy's selected.json, from scratch twice (IFD scored twice too): identical.
    (judge: tests/test_selection.py; all: every item; seeds: the test below)"""
    from alpagasus.main import run

    methods = ("released", "random", "longest", "ifd")

    def digests(root):
        run(app_cfg(f"paths.root={root}", "stage=analyze", "seed=42", "size=5",
                    f"analyze.compare=[{','.join(methods)}]", f"filter.path={CLAUDE}",
                    "data=json", f"data.path={RANDOM_9K}", "data.empty_policy=keep", "data.limit=60",
                    f"ifd.model={tiny_lm}", "ifd.progress=false", "logger.enabled=false"))
        out = {}
        for path in (root / "artifacts" / "select").glob("*/manifest.json"):
            method = json.loads(path.read_text())["config"]["method"]
            assert method not in out, method
            out[method] = hashlib.sha256((path.parent / "selected.json").read_bytes()).hexdigest()
        assert set(out) == set(methods)
        return out

    assert digests(tmp_path / "one") == digests(tmp_path / "two")


def test_seeded_draws_depend_on_the_seed_only(tmp_path):
    from alpagasus.arms import Arm

    data = [Item(f"q{i}", "", f"answer {i} " * (i % 7 + 2)) for i in range(40)]
    released = tmp_path / "released.json"
    released.write_text(json.dumps([it.to_dict() for it in data[:30]]))

    def arm(method, seed):
        return Arm(role="a", method=method, filter_name=method, judge=None, prompt="accuracy",
                   threshold=None, size=10, seed=seed, order="draw", unparsed_policy="exclude",
                   path=str(released))

    for method in ("released", "random"):
        strategy = get_strategy(method)
        draws = {s: strategy.choose(arm(method, s), data, None, 10) for s in (1, 2, 3)}
        assert draws[1] == strategy.choose(arm(method, 1), data, None, 10)
        assert len({tuple(d) for d in draws.values()}) == 3
        if method == "released":
            assert all(i < 30 for d in draws.values() for i in d)
    assert (get_strategy("longest").choose(arm("longest", 1), data, None, 10)
            == get_strategy("longest").choose(arm("longest", 2), data, None, 10))


# --- IFD scoring ---------------------------------------------------------------------------


def test_ifd_batched_equals_one_at_a_time_and_the_hf_loss(tiny_lm):
    """Padding is masked: length-sorted batches give each item's losses alone; and the
    losses are the ones transformers computes with the reference code's label masks."""
    import torch

    from alpagasus.stages.ifd import encode, load_scorer, score_items

    model, tok = load_scorer(str(tiny_lm), "float32", "cpu")
    items = [Item("Name a colour.", "", "Blue is a colour of the sky on a clear day."),
             Item("Add the numbers.", "2 and 3", "5"),  # a one-token response: not scorable
             Item("Translate to French.", "good morning", "bonjour, comment allez-vous ?"),
             Item("Write a long answer.", "", " ".join(["word"] * 120)),
             Item("Too long a prompt " * 80, "", "short answer here")]

    def run(batch_tokens, sorted_):
        rows = {}
        for done in score_items(model, tok, items, batch_tokens, 256, length_sorted=sorted_):
            rows.update(done)
        return [rows[i] for i in range(len(items))]

    batched, single = run(4096, True), run(1, False)
    assert [r["status"] for r in batched] == ["ok", "empty", "ok", "ok", "too_long"]
    for b, s in zip(batched, single, strict=True):
        if b["score"] is None:
            assert s["score"] is None
            continue
        assert math.isclose(b["score"], s["score"], rel_tol=1e-4)
        assert math.isclose(b["score"], b["loss_conditioned"] / b["loss_response"])
    e = encode(tok, items[2], 256)
    with torch.no_grad():
        whole = torch.tensor([e.prompt + e.response])
        labels = whole.clone()
        labels[0, : len(e.prompt)] = -100
        conditioned = model(input_ids=whole, labels=labels).loss.item()
        response = torch.tensor([e.response])
        alone = model(input_ids=response, labels=response).loss.item()
    assert math.isclose(batched[2]["loss_conditioned"], conditioned, rel_tol=1e-4)
    assert math.isclose(batched[2]["loss_response"], alone, rel_tol=1e-4)


def test_ifd_batches_fit_the_token_budget():
    from alpagasus.stages.ifd import LossSpan, batches

    seqs = [LossSpan(i, True, [0] * n, 1) for i, n in enumerate([5, 40, 12, 33, 7, 40])]
    out = list(batches(seqs, 80, length_sorted=True))
    assert sorted(i for b in out for i in b) == list(range(6))
    for b in out:
        assert len(b) == 1 or max(len(seqs[i].ids) for i in b) * len(b) <= 80
    assert [len(seqs[b[0]].ids) for b in out] == sorted((len(seqs[b[0]].ids) for b in out),
                                                        reverse=True)
    assert [len(b) for b in batches(seqs, 1, length_sorted=False)] == [1] * 6


def test_ifd_scores_are_cached_per_item_and_reused_by_a_larger_run(tiny_cfg, tiny_lm, tmp_path):
    from alpagasus.main import run

    items = [{"instruction": f"Say {w}.", "input": "", "output": f"{w} {w}, as asked."}
             for w in ("hello", "goodbye", "yes", "no", "maybe", "thanks")]
    path = tmp_path / "items.json"
    path.write_text(json.dumps(items + items[:2]))  # two exact duplicates
    common = ["stage=ifd", "data=json", f"data.path={path}", f"ifd.model={tiny_lm}",
              "ifd.progress=false"]
    run(tiny_cfg(*common, "data.limit=3"))
    run(tiny_cfg(*common, "data.limit=null"))
    counts = sorted((m["counts"] for m in _manifests(tmp_path, "ifd").values()),
                    key=lambda c: c["items"])
    assert [(c["items"], c["unique"], c["scored_this_run"]) for c in counts] == [
        (3, 3, 3), (8, 6, 3)]  # the second run scores only the 3 new distinct items
    rows = [json.loads(line) for line in
            (next((tmp_path / "artifacts" / "ifd").glob("*/scores.jsonl"))).read_text().splitlines()]
    assert all(r["status"] == "ok" and r["score"] > 0 for r in rows)


@real_data
@pytest.mark.slow
def test_ifd_with_the_embedded_model_and_its_agreement_with_claude(app_cfg, tmp_path):
    """The issue's real-data check: IFD on the first 150 random_9k items with the embedded
    model; the comparison report has its AUC against the Claude labels."""
    from alpagasus.main import run

    run(app_cfg("stage=analyze", "analyze.compare=[ifd,released,random,longest]", "size=10",
                 f"filter.path={CLAUDE}", f"analyze.reference={CLAUDE}", "data=json",
                 f"data.path={RANDOM_9K}", "data.empty_policy=keep", "data.limit=150", "ifd.progress=false"))
    ifd = next(iter(_manifests(tmp_path, "ifd").values()))["counts"]
    assert ifd["items"] == 150 and ifd["scored"] > 140
    assert 0 < ifd["below_1"] < 150
    analysis_dir = next((tmp_path / "artifacts" / "analyze").glob("*/analysis.json")).parent
    result = json.loads((analysis_dir / "analysis.json").read_text())
    assert result["reference"]["positives"] == 14
    by_method = {s["method"]: s for s in result["selections"]}
    assert set(by_method) == {"ifd", "released", "random", "longest"}
    assert all(s["kept"] == 10 for s in result["selections"])
    assert by_method["released"]["reference"]["precision"] == 1.0
    auc = by_method["ifd"]["reference"]["auc_score"]
    assert auc is not None and 0 < auc < 1
    assert len(result["overlap"]) == 6
    report = (analysis_dir / "analysis.md").read_text()
    assert "AUC (score)" in report and "ifd (10)" in report
    assert (analysis_dir / "roc.png").is_file() and (analysis_dir / "overlap.png").is_file()
