"""Expected scores from token logprobs (alpagasus/expected.py), the pairwise verdict from
them and the position bias in words (alpagasus/pair_expected.py), the report's rules, and
the config checks (Claude refused at compose time, select.score)."""

from __future__ import annotations

import math

import pytest

from alpagasus.config import AggregationRule, ConfigError
from alpagasus.expected import (
    PAIR_SCALE,
    RATING_SCALE,
    compact_logprobs,
    expected_scores,
    from_stored,
    locate,
    openai_logprobs,
)
from alpagasus.judges import JudgeReply, judge_identity
from alpagasus.pair_expected import describe_bias, expected_means, expected_verdict, position_bias
from alpagasus.stages import report
from alpagasus.stages.judge import combine, judgment_rows
from alpagasus.validation import validate

L = math.log


def tok(text: str, p: float, *alternatives: tuple[str, float]):
    return (text, L(p), [(text, L(p)), *((t, L(q)) for t, q in alternatives)])


def test_half_point_rating_follows_the_decimal_on_the_generated_path():
    # "4.5": P(4)=.6, P(5)=.3, a non-digit .05 and P(3)=.03 at the first digit; after "4",
    # "." .7 or end .3; after "4.", "5" .8 or "0" .2.
    tokens = [tok("4", .6, ("5", .3), ("The", .05), ("3", .03)),
              tok(".", .7, ("\n", .3)), tok("5", .8, ("0", .2)), ("\n", 0.0, [])]
    (e,) = expected_scores(tokens, [4.5], RATING_SCALE)
    four = .7 * (4 + .8 * .5) + .3 * 4  # the written 4 carries its expected fraction
    assert e.value == pytest.approx((.6 * four + .3 * 5 + .03 * 3) / .93)
    assert e.mass == pytest.approx(.93)  # .05 went to "The": left out, renormalised
    assert 4 < e.value < 4.5  # the unwritten 5 counts as 5, never 5.5


def test_leading_space_tokens_multi_digit_tokens_and_non_digits_in_the_top_list():
    tokens = [("Score", 0.0, []), (":", 0.0, []),
              tok(" 8", .5, ("8", .2), (" 10", .1), (" seven", .1), ("**", .05)),
              (" ", 0.0, []), tok("7", .9, ("6", .1))]
    a, b = expected_scores(tokens, [8, 7], PAIR_SCALE)
    assert a.value == pytest.approx((.7 * 8 + .1 * 10) / .8)  # " 8" and "8" are both 8
    assert a.mass == pytest.approx(.8)
    assert b.value == pytest.approx(6.9)


def test_digit_per_token_ten_and_out_of_scale_values():
    # "10" written as "1" then "0": the written 1 is 10 w.p. .7, 1 otherwise.
    tokens = [tok("1", .6, ("9", .4)), tok("0", .7, (" ", .3)), (" ", 0.0, []), tok("9", 1.0)]
    a, b = expected_scores(tokens, [10, 9], PAIR_SCALE)
    assert a.value == pytest.approx(.6 * (.7 * 10 + .3 * 1) + .4 * 9)
    assert b.value == 9
    # On the 0-5 scale, "45" and "7" are no scores; "0" is.
    rating = [tok("4", .5, ("7", .3), ("0", .2)), tok("\n", .9, ("5", .1))]
    (e,) = expected_scores(rating, [4], RATING_SCALE)
    assert e.value == pytest.approx(.5 * 4 / .7)
    assert e.mass == pytest.approx(.7)


def test_no_score_candidates_no_logprobs_or_score_not_found():
    only_words = [("The", L(.9), [("The", L(.9)), ("I", L(.1))])]
    assert expected_scores(only_words, [4.0], RATING_SCALE) is None  # 4 is not in the text
    assert expected_scores(None, [4.0], RATING_SCALE) is None
    assert expected_scores([tok("4", 1.0)], None, RATING_SCALE) is None


def test_locate_skips_label_numbers_and_reads_pairs_in_any_order():
    text = "Assistant 2: 7\nAssistant 1: 8"
    assert locate(text, [8, 7]) == [text.index("8"), text.index("7")]
    assert locate("8 8", [8, 8]) == [0, 2]
    assert locate("Both get 8", [8, 8]) == [9, 9]  # one number for both
    assert locate("Score 3", [4]) is None


def test_openai_shape_round_trips_through_the_compact_cache_form():
    choice = {"message": {"content": "x"}, "logprobs": {"content": [
        {"token": "Rating", "logprob": -0.1, "bytes": [82], "top_logprobs": [
            {"token": "Rating", "logprob": -0.1}, {"token": "Score", "logprob": -2.5}]},
        {"token": ":", "logprob": 0.0, "top_logprobs": [{"token": ":", "logprob": 0.0}]},
        {"token": " 4", "logprob": -0.4, "top_logprobs": [
            {"token": " 4", "logprob": -0.4}, {"token": " 5", "logprob": -1.2},
            {"token": " The", "logprob": -3.0}]},
        {"token": "\n", "logprob": -0.01, "top_logprobs": [{"token": "\n", "logprob": -0.01}]},
    ]}}
    tokens = openai_logprobs(choice)
    stored = compact_logprobs(tokens)
    assert stored[0][2] == [] and stored[2][2]  # alternatives kept only near digits
    (e,) = expected_scores(from_stored(stored), [4.0], RATING_SCALE)
    p4, p5 = math.exp(-0.4), math.exp(-1.2)
    assert e.value == pytest.approx((4 * p4 + 5 * p5) / (p4 + p5), abs=1e-5)
    assert openai_logprobs({"message": {"content": "x"}}) is None
    assert openai_logprobs({"message": {}, "logprobs": None}) is None


# --- pairwise: both orders, position bias --------------------------------------------------


def pair_reply(s1: float, s2: float, e1: float, e2: float) -> JudgeReply:
    from alpagasus.expected import Expected

    return JudgeReply(f"{s1} {s2}", expected=[Expected(e1, 1.0), Expected(e2, 1.0)])


def test_averaging_both_orders_cancels_a_position_bonus():
    # The judge adds 2 points to whatever is shown first; A is truly 0.5 better than B.
    a, b, bonus = 6.5, 6.0, 2.0
    pairs = [({"testset": "t", "id": "1", "prompt": "q", "answer": "A"},
              {"testset": "t", "id": "1", "prompt": "q", "answer": "B"})]
    replies = [pair_reply(9, 6, a + bonus, b), pair_reply(9, 7, b + bonus, a)]
    (row,) = judgment_rows(pairs, replies)
    assert (row["verdict_a_first"], row["verdict_b_first"], row["verdict"]) == ("win", "lose", "tie")
    assert (row["expected_a"], row["expected_b"]) == pytest.approx((a + bonus / 2, b + bonus / 2))
    assert report.prompt_verdict(row, AggregationRule.expected) == "win"
    assert expected_verdict({**row, "expected_b": row["expected_a"] - 0.005}, 0.01) == "tie"
    assert expected_means([7.0, None], [6.0, 5.0]) is None
    with pytest.raises(ValueError, match="expected scores"):
        combine("win", "lose", AggregationRule.expected)


def test_position_bias_is_named_in_words():
    rows = [{"verdict_a_first": "win", "verdict_b_first": "lose",
             "expected_a_first": [8.0, 6.0], "expected_b_first": [8.0, 6.5]}] * 13
    rows += [{"verdict_a_first": "tie", "verdict_b_first": "tie"}] * 7
    bias = position_bias(rows)
    assert (bias["prompts"], bias["first_won_both"], bias["second_won_both"]) == (20, 13, 0)
    assert bias["first_minus_second_expected"] == pytest.approx(1.75)
    text = describe_bias(bias)
    assert text.startswith("Position bias: the judge prefers the answer shown first")
    assert "13 of 20 prompts (65%)" in text and "+1.75 points" in text
    calm = describe_bias(position_bias([{"verdict_a_first": "win", "verdict_b_first": "win"}] * 20))
    assert calm.startswith("No marked position bias")


def test_auto_rule_follows_the_eval_judges_score_mode(compose_cfg):
    cfg = compose_cfg()  # the demo: the local eval judge in expected mode
    assert report.resolve_rule(cfg.report.rule, cfg.eval_judge) == AggregationRule.expected
    api = compose_cfg("eval_judge=gpt4")
    assert report.resolve_rule(api.report.rule, api.eval_judge) == AggregationRule.alpagasus
    assert report.resolve_rule("strict", cfg.eval_judge) == AggregationRule.strict


# --- config --------------------------------------------------------------------------------


def test_claude_cannot_give_expected_scores_refused_at_compose_time(compose_cfg):
    with pytest.raises(ConfigError, match="Anthropic API does not return"):
        validate(compose_cfg("judge=claude", "judge.score_mode=expected"))
    with pytest.raises(ConfigError, match="top_logprobs=30"):
        validate(compose_cfg("judge=chatgpt", "judge.score_mode=expected", "judge.top_logprobs=30"))
    with pytest.raises(ConfigError, match="select.score=expected needs expected scores"):
        validate(compose_cfg("filter=chatgpt", "select.score=expected"))
    validate(compose_cfg("filter=chatgpt", "judge.score_mode=expected", "select.score=expected"))


def test_score_mode_and_top_logprobs_are_in_the_cache_key(compose_cfg):
    text = judge_identity(compose_cfg("judge=chatgpt").judge)
    expected = judge_identity(compose_cfg("judge=chatgpt", "judge.score_mode=expected").judge)
    fewer = judge_identity(compose_cfg("judge=chatgpt", "judge.score_mode=expected",
                                       "judge.top_logprobs=5").judge)
    assert "top_logprobs" not in text  # text-mode keys are unchanged
    assert len({str(text), str(expected), str(fewer)}) == 3


def test_analysis_shows_both_score_kinds_and_their_agreement():
    from alpagasus import analysis

    scores = [4.5, 4.5, 4.0, 3.5, 4.5, 3.0]
    expected = [4.61, 4.38, 4.02, 3.4, 4.55, 3.1]
    view = analysis.SelectionView(
        name="chatgpt_t4.5", label="chatgpt≥4.5 (3)", method="judge",
        kept=[s >= 4.5 for s in scores], scores=scores, score_name="chatgpt score", judged=True,
        rank=scores, passes=[s >= 4.5 for s in scores], expected=expected, threshold=4.5)
    features = analysis.Features([10] * 6, [False] * 6, [None] * 6)
    result = analysis.analyze(features, [view], thresholds=[4.0, 4.5])
    (row,) = result["selections"]
    assert row["kept_at"] == {"4": 4, "4.5": 3} and row["kept_at_expected"] == {"4": 4, "4.5": 2}
    (agree,) = result["agreement"]
    assert agree["score_b"] == "chatgpt score (expected)" and agree["n"] == 6
    assert agree["confusion"] == [[3, 0], [1, 2]]  # 4.38 falls below the cut
    md = analysis.to_markdown(result)
    assert "chatgpt≥4.5 (3): chatgpt score (expected)" in md
