"""Selection strategies and arms: seeded size draws, top-N with seeded ties, equal-size arms."""

from __future__ import annotations

import hashlib
import json

import pytest

from alpagasus.arms import arms_from_config
from alpagasus.config import ConfigError
from alpagasus.selection import SelectionError, get_strategy, strategies
from alpagasus.selection.judge import choose_by_score
from alpagasus.validation import validate

RATINGS = [
    {"index": 0, "score": 5.0}, {"index": 1, "score": 3.0}, {"index": 2, "score": None},
    {"index": 3, "score": 4.5}, {"index": 4, "score": 4.5}, {"index": 5, "score": 4.0},
]
TEXTS = [f"item {i}" for i in range(len(RATINGS))]


def _choose(threshold, size, include=False, order="draw", seed=0, ratings=RATINGS, texts=TEXTS):
    return choose_by_score(ratings, threshold, size, include, order, seed, texts)


def test_threshold_selection():
    assert _choose(4.5, None) == [0, 3, 4]
    assert _choose(4.0, None) == [0, 3, 4, 5]
    assert _choose(4.5, None, include=True) == [0, 2, 3, 4]


def test_size_draws_from_the_items_that_pass_not_a_file_prefix():
    # 200 items tied at 4.5 (ChatGPT's 9k are all 4.5): the old rule kept the first N rows.
    ratings = [{"index": i, "score": 4.5} for i in range(200)]
    texts = [f"t{i}" for i in range(200)]
    draws = {tuple(_choose(4.5, 20, seed=s, ratings=ratings, texts=texts)) for s in range(5)}
    assert len(draws) == 5  # the seed matters
    assert all(len(d) == 20 and list(d) == sorted(d) for d in draws)
    assert tuple(range(20)) not in draws
    same = _choose(4.5, 20, seed=3, ratings=ratings, texts=texts)
    assert same == _choose(4.5, 20, seed=3, ratings=ratings, texts=texts)


def test_top_order_keeps_the_best_and_breaks_ties_by_a_seeded_hash():
    assert _choose(0.0, 1, order="top") == [0]  # the single 5.0
    # Two 4.5s tie for the second place: which one wins depends on the seed's hash, not order.
    winners = {tuple(_choose(0.0, 2, order="top", seed=s)) for s in range(20)}
    assert winners == {(0, 3), (0, 4)}
    # Reversing the file order does not change which item wins a tie.
    rev = [{"index": 5 - r["index"], "score": r["score"]} for r in RATINGS]
    rev_texts = list(reversed(TEXTS))
    for seed in range(5):
        kept = _choose(0.0, 2, order="top", seed=seed)
        kept_rev = _choose(0.0, 2, order="top", seed=seed, ratings=rev, texts=rev_texts)
        assert sorted(TEXTS[i] for i in kept) == sorted(rev_texts[i] for i in kept_rev)


def test_size_larger_than_what_passes_is_an_error():
    with pytest.raises(SelectionError, match="only 3 items pass"):
        _choose(4.5, 5)


def test_registry_lists_the_builtin_strategies():
    assert {"judge", "random", "all"} <= set(strategies())
    with pytest.raises(ConfigError, match="not a selection strategy"):
        get_strategy("nope")


def test_arms_from_config(compose_cfg):
    cfg = compose_cfg("filter=chatgpt", "baseline=random", "size=100")
    validate(cfg)
    arms = arms_from_config(cfg)
    assert arms["a"].method == "judge" and arms["a"].judge.name == "chatgpt"
    assert arms["b"].method == "random" and arms["b"].size == "match" and arms["b"].judge is None
    assert arms["a"].label(9229) == "chatgpt≥4.5 (9,229)"
    assert arms["b"].label(9229) == "random (9,229)"
    assert arms["a"].name != arms["b"].name
    ablation = arms_from_config(compose_cfg("filter=claude", "baseline=chatgpt"))
    assert ablation["b"].judge.name == "chatgpt" and ablation["a"].judge.name == "claude"


@pytest.mark.slow
def test_same_config_and_seed_give_byte_identical_selections(tiny_cfg, tmp_path):
    """Every strategy's selected.json, twice from scratch: byte-identical."""
    from alpagasus.main import run

    digests = {}
    for attempt in range(2):
        for n, overrides in enumerate((["filter=random", "size=7"], ["size=5"],
                                       ["size=5", "select.order=top"], ["filter=all"])):
            root = tmp_path / f"{attempt}-{n}"
            run(tiny_cfg(f"paths.root={root}", "stage=select", *overrides))
            files = sorted((root / "artifacts" / "select").glob("*/selected.json"))
            digests.setdefault(tuple(overrides), []).append(
                [hashlib.sha256(f.read_bytes()).hexdigest() for f in files])
            kept = [len(json.loads(f.read_text())) for f in files]
            assert kept, overrides
    for overrides, (first, second) in digests.items():
        assert first == second, overrides
