"""Parser v5's reply shapes, by example: the pair's answers under other names, one score for
both, number words, other languages' labels, several dimensions, revised scores, and where
the score stands in the reply (its span). Real-judge-style replies (GPT-4 and Claude prose
with reasoning that holds other numbers) close each table.

Each row is read right, or left unparsed where no single score can be read without guessing.
"""

from __future__ import annotations

import pytest

from alpagasus.parsing import parse_pair, parse_rating

U, R = "unparsed", "out_of_range"

# (reply, expected): (Assistant 1, Assistant 2), or U / R.
PAIRS: list[tuple[str, tuple[float, float] | str]] = [
    # -- letters, other nouns, ordinals ---------------------------------------------------
    ("Assistant A: 8\nAssistant B: 6", (8.0, 6.0)),
    ("**Response A:** 7/10\n**Response B:** 9/10", (7.0, 9.0)),
    ("Response 1: 6\nResponse 2: 9\n\nResponse 2 lists all 4 steps.", (6.0, 9.0)),
    ("Answer 1 - 5\nAnswer 2 - 8", (5.0, 8.0)),
    ("Output (A): 9\nOutput (B): 4", (9.0, 4.0)),
    ("Model B: 3, Model A: 7", (7.0, 3.0)),
    ("The first response gets 8, the second gets 6.", (8.0, 6.0)),
    ("I'd give the first a 7 and the second a 9.", (7.0, 9.0)),
    ("First: 8\nSecond: 7", (8.0, 7.0)),
    ("The former deserves 6 and the latter deserves 8.", (6.0, 8.0)),
    ("Respuesta 1: 7\nRespuesta 2: 9", (7.0, 9.0)),
    ("助手1：8\n助手2：6", (8.0, 6.0)),
    # -- the reverse order ------------------------------------------------------------------
    ("Assistant 2: 7, Assistant 1: 9", (9.0, 7.0)),
    ("Response B: 8\nResponse A: 5", (5.0, 8.0)),
    ("The second answer gets 4; the first answer gets 7.", (7.0, 4.0)),
    # -- one score for both -------------------------------------------------------------
    ("Both get 8.", (8.0, 8.0)),
    ("8 for both.", (8.0, 8.0)),
    ("Each receives 7/10.", (7.0, 7.0)),
    ("Both: 9", (9.0, 9.0)),
    ("I'd give them both an 8, since they cover the same 3 points.", (8.0, 8.0)),
    ("Both responses score 6/10.", (6.0, 6.0)),
    ("Each assistant deserves a score of 7.", (7.0, 7.0)),
    # "for both" of two criteria is no score for both answers
    ("Assistant 1 gets 8 for both accuracy and clarity.\nAssistant 2: 6", (8.0, 6.0)),
    ("I give 1 point for each of the 3 steps.", U),
    # -- a label repeated with two scores ---------------------------------------------------
    ("Assistant 1: 8\nAssistant 2: 7\nAssistant 1: 6", U),
    ("Response A: 8\nResponse B: 7\n\nAssistant 1: 6", U),
    ("Both get 8.\nAssistant 2: 7", U),
    # -- no labels that name the answers ------------------------------------------------------
    ("The response a user wants: 8", U),
    ("The first 3 steps are right; the second 2 are wrong.", U),
    ("A: 8\nB: 7", U),
    # -- real-judge style ---------------------------------------------------------------------
    ("**Evaluation**\n\n**Response A** explains all 3 laws of motion with examples from 1687 "
     "(Principia). It is accurate and well organized.\n\n**Response B** confuses the second law "
     "and gives only 1 example.\n\n**Scores**\n- Response A: 9/10\n- Response B: 5/10",
     (9.0, 5.0)),
    ("Let me compare the two answers.\n\nThe first answer lists 5 tips, 2 of which repeat. The "
     "second answer lists 4 distinct tips and cites a 2019 study.\n\nI'd rate the first "
     "response a 6 and the second response an 8.", (6.0, 8.0)),
    ("Both assistants give the correct date (July 20, 1969) and name both astronauts who walked "
     "on the Moon. Neither has an error, so each receives a score of 9.", (9.0, 9.0)),
]

# (reply, expected, options): the score, or U / R.
RATINGS: list[tuple[str, float | str, dict]] = [
    # -- number words -----------------------------------------------------------------------
    ("Four\n\nThe response is accurate but terse.", 4.0, {}),
    ("Score: four point five\nAccurate.", 4.5, {}),
    ("I would rate this response four and a half out of five.", 4.5, {}),
    ("Rating: 3 and a half\nThe response misses 1 step.", 3.5, {}),
    ("**Five**\n\nEvery fact checks out.", 5.0, {}),
    ("I would rate this one 4.", 4.0, {}),
    ("The best one is hard to pick; the response gives two options.", U, {}),
    ("Score: one\nThe response is wrong.", 1.0, {}),
    ("The response lists four items and two examples.", U, {}),
    # -- other languages ------------------------------------------------------------------
    ("Puntuación: 4,5\n\nLa respuesta es correcta y cita 2 fuentes.", 4.5, {}),
    ("Note : 4,5/5\nLa réponse est exacte.", 4.5, {}),
    ("Bewertung: 4,5 von 5 Punkten\nDie Antwort nennt 3 Beispiele.", 4.5, {}),
    ("评分：4.5\n\n回答准确，列出了3个例子。", 4.5, {}),
    ("评分：4分（满分5分）", 4.0, {}),
    ("評価：４\n\n回答は正確です。", 4.0, {}),
    ("La puntuación final es 3,5.", 3.5, {}),
    ("Nota: 3 de los 5 ejemplos son incorrectos.", U, {}),
    ("Оценка: 4,5\nОтвет точный.", 4.5, {}),
    # an English label keeps English numbers: "4,5" may be a list
    ("Score: 4,5", U, {}),
    # -- several dimensions ---------------------------------------------------------------
    ("Helpfulness: 3\nAccuracy: 5\nClarity: 4", 5.0, {"dimension": "accuracy"}),
    ("Helpfulness: 3, Accuracy: 5", 5.0, {"dimension": "accuracy"}),
    ("Helpfulness: 3, Accuracy: 5", 3.0, {"dimension": "helpfulness"}),
    ("Helpfulness: 3\nClarity: 5", U, {"dimension": "accuracy"}),
    ("Helpfulness: 3\nAccuracy: 5", U, {}),  # not told which was asked
    ("Helpfulness: 4", U, {"dimension": "accuracy"}),
    ("4\n\nAccuracy: 5\nHelpfulness: 3", U, {"dimension": "accuracy"}),
    ("5\n\nAccuracy: 5\nHelpfulness: 3", 5.0, {"dimension": "accuracy"}),
    ("Accuracy: 5\nHelpfulness: 4\n\nOverall score: 4.5", U, {"dimension": "accuracy"}),
    ("I'd give it a 3 for helpfulness and a 5 for accuracy.", U, {"dimension": "accuracy"}),
    ("In terms of helpfulness, I would rate it a 3.", U, {"dimension": "accuracy"}),
    ("Accuracy: 5/5\nAll facts are correct.", 5.0, {"dimension": "accuracy"}),
    # -- revised scores ---------------------------------------------------------------------
    ("Score: 4\n\nThe response is mostly right. On reflection, 3.", U, {}),
    ("Score: 4\n\nThe response is mostly right. On reflection, 3.", 3.0, {"revision": "final"}),
    ("4.5\n\nWait, the response gets the year wrong (1867, not 1876). I'd lower my score to 3.",
     U, {}),
    ("4.5\n\nWait, the response gets the year wrong (1867, not 1876). I'd lower my score to 3.",
     3.0, {"revision": "final"}),
    ("Score: 4\n\nOn reflection, I would revise my rating.", U, {"revision": "final"}),
    ("Score: 4\n\nOn reflection, I stand by my score of 4.", 4.0, {}),
    ("Score: 4\nRevised score: 4.5", U, {}),
    ("Score: 4\nRevised score: 4.5", 4.5, {"revision": "final"}),
    ("After careful review, I would rate this response a 4.", 4.0, {}),
    ("The response correctly updates the score table in 2 places.\n\nScore: 5", 5.0, {}),
    # -- real-judge style ---------------------------------------------------------------------
    ("I'll evaluate the accuracy of this response.\n\n**Analysis:**\n- The response states "
     "that water boils at 100°C at sea level (1 atm), which is correct.\n- It claims the "
     "boiling point drops by about 1°C per 300 m of altitude, which is approximately right.\n"
     "- It omits the 3 other factors the instruction asked for.\n\n**Rating: 4/5**\n\nThe "
     "response is accurate in what it says but incomplete.", 4.0, {"dimension": "accuracy"}),
    ("The instruction asks for the capital of Australia. The response says Canberra, which "
     "has been the capital since 1913, and adds that Sydney is the largest city (5.3 million "
     "people in 2021). Both facts are correct.\n\nScore: 5", 5.0, {"dimension": "accuracy"}),
    ("**Accuracy: 4/5**\n**Helpfulness: 3/5**\n**Clarity: 5/5**\n\nThe response answers 2 of "
     "the 3 sub-questions correctly; the third is skipped.", 4.0, {"dimension": "accuracy"}),
    ("4.5\n\nThe response correctly converts 68°F to 20°C using (F - 32) x 5/9. A perfect 5 "
     "would need the 2 decimal places the instruction asked for.", 4.5,
     {"dimension": "accuracy"}),
    ("Let me check each claim.\n1. Mount Everest is 8,849 m tall: correct.\n2. It was first "
     "climbed in 1953: correct.\n3. It lies in Nepal and China: correct.\n\nI'd give this "
     "response a 5 out of 5.", 5.0, {"dimension": "accuracy"}),
    ("Score: 4\n\nThe response explains recursion with 2 examples. Hmm, actually, I should "
     "check the second example: it never reaches its base case. Let me revise my score to 2.5.",
     U, {"dimension": "accuracy"}),
    ("Puntuación: 4\n\nLa respuesta traduce correctamente las 3 frases, aunque la segunda "
     "pierde un matiz del original de 1998.", 4.0, {"dimension": "accuracy"}),
]


@pytest.mark.parametrize("reply,expected", PAIRS)
def test_pair_shapes(reply, expected):
    parsed = parse_pair(reply)
    if isinstance(expected, str):
        assert (parsed.scores, parsed.status) == (None, expected)
    else:
        assert (parsed.scores, parsed.status) == (expected, "ok")


@pytest.mark.parametrize("reply,expected,options", RATINGS)
def test_rating_shapes(reply, expected, options):
    parsed = parse_rating(reply, **options)
    if isinstance(expected, str):
        assert (parsed.score, parsed.status) == (None, expected)
    else:
        assert (parsed.score, parsed.status) == (expected, "ok")


def test_tables_have_no_duplicates():
    assert len({r for r, _ in PAIRS}) == len(PAIRS)
    assert len({(r, str(o)) for r, _, o in RATINGS}) == len(RATINGS)


@pytest.mark.parametrize("reply,written", [
    ("4.5\n\nThe response is accurate.", "4.5"),
    ("**Score:** 4 / 5\nFine.", "4"),
    ("Rating: four and a half\nGood.", "four and a half"),
    ("Puntuación: 4,5", "4,5"),
    ("评分：４．５分", "４．５"),
    ("```\n3\n```\nThe response is partly right.", "3"),
    ("> quoted 5\n\nI'd give it a 2.", "2"),
    ("Score: 4\n\nOn reflection, 3.", "3"),  # under revision=final
])
def test_rating_span_points_at_the_score(reply, written):
    parsed = parse_rating(reply, revision="final")
    assert parsed.status == "ok" and parsed.span is not None
    start, end = parsed.span
    assert reply[start:end] == written


def test_pair_spans_point_at_both_scores():
    reply = "Intro with 3 points.\n\n**Response B:** 6/10\n**Response A:** 9/10"
    parsed = parse_pair(reply)
    assert parsed.scores == (9.0, 6.0)
    (a0, a1), (b0, b1) = parsed.spans
    assert (reply[a0:a1], reply[b0:b1]) == ("9", "6")
    assert a0 > b0  # the reply names B first
    line = "\r\n8 7\r\nAssistant 1 is better."
    spans = parse_pair(line).spans
    assert [line[s:e] for s, e in spans] == ["8", "7"]


def test_out_of_range_keeps_its_span_and_unparsed_has_none():
    parsed = parse_rating("Score: 9/10")
    assert parsed.status == "out_of_range" and "Score: 9/10"[slice(*parsed.span)] == "9"
    assert parse_rating("No score.").span is None
    assert parse_pair("Assistant 1 is better.").spans is None


def test_pair_revision_policy():
    reply = "Assistant 1: 8\nAssistant 2: 7\n\nOn reflection, Assistant 1: 6"
    assert parse_pair(reply).status == "unparsed"
    assert parse_pair(reply, revision="final").scores == (6.0, 7.0)
    # a revision with nothing readable after it is unparsed under either policy
    vague = "8 7\n\nOn reflection, I'd lower Assistant 2 a little."
    assert parse_pair(vague).status == parse_pair(vague, revision="final").status == "unparsed"
