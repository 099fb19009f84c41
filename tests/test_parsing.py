from __future__ import annotations

import pytest

from alpagasus.parsing import parse_pair, parse_rating


@pytest.mark.parametrize("reply,score", [
    ("4.5\nThe answer is accurate.", 4.5),
    ("Score: 4.5\nGood.", 4.5),
    ("4.5/5 because it is right", 4.5),
    ("I would give it 4.5 out of 5.", 4.5),
    ("**4**\n\nExplanation...", 4.0),
    ("The response deserves 3.\nIt misses details.", 3.0),
    ("\n\n  5  \nPerfect.", 5.0),
    ("Rating the accuracy.\nscore: 2", 2.0),
    ("Rating: 4.5", 4.5),
    ("Accuracy: 5/5\nAll correct.", 5.0),
    ("**Score: 4**", 4.0),
    ("- 4.5\n- the answer is right", 4.5),
    ("4.5 / 5.0", 4.5),
])
def test_rating_formats(reply, score):
    parsed = parse_rating(reply)
    assert parsed.status == "ok" and parsed.score == score


@pytest.mark.parametrize("reply,status", [
    ("", "unparsed"),
    ("The answer is good.\nNo number here.", "unparsed"),
    ("7\nToo high.", "out_of_range"),
    ("Score: 9/10", "out_of_range"),
    ("-1\nNot an answer.", "out_of_range"),
    ("Score: -0.5", "out_of_range"),
])
def test_rating_failures_are_not_scores(reply, status):
    parsed = parse_rating(reply)
    assert parsed.score is None and parsed.status == status


@pytest.mark.parametrize("reply,scores", [
    ("8 7\nAssistant 1 is better.", (8.0, 7.0)),
    ("8, 9\n...", (8.0, 9.0)),
    ("8/10 6/10", (8.0, 6.0)),
    ("7.5 7.5", (7.5, 7.5)),
])
def test_pair_formats(reply, scores):
    assert parse_pair(reply).scores == scores


def test_pair_failures():
    assert parse_pair("Assistant 1 is better").status == "unparsed"
    assert parse_pair("8 7 6").status == "unparsed"
    assert parse_pair("0 11").status == "out_of_range"
