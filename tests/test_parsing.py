"""Judge-reply parsing: tables of realistic replies to both prompts, each with the value a
careful human reads in it, or the status when no single score can be read without guessing.

The rows are grouped by class (the prompt's format, labels, explanation first, scale
mentions, stray numbers, conflicts, other scales), not by parser branch: the parsers are
written for these classes, and real judge replies outside the table fall into them.
"""

from __future__ import annotations

import pytest

from alpagasus.parsing import PARSER_VERSION, parse_pair, parse_rating

U, R = "unparsed", "out_of_range"

# (reply, expected): a float, or U / R.
RATING_TABLE: list[tuple[str, float | str]] = [
    # -- the prompt's format: the score alone on the first line ---------------------------
    ("4.5\n\nThe response accurately follows the instruction and uses the input.", 4.5),
    ("5\nThe response is completely accurate: 2 + 2 = 4.", 5.0),
    ("3.5\n\nThe response lists 3 of the 5 required items; the other 2 are missing.", 3.5),
    ("4\n\nThe response names Paris as the capital of France. Paris was settled in the 3rd "
     "century BC, which the response does not need to mention.", 4.0),
    ("0\n\nThe response is empty and does not address the instruction.", 0.0),
    ("4.0\nThe response is accurate but could mention the year 1969.", 4.0),
    ("  \n\n4.5  \nAccurate.", 4.5),
    ("4.5.\n\nThe translation is correct.", 4.5),
    ("**4.5**\n\nThe response is accurate.", 4.5),
    ("- 4.5\n- The response is accurate.", 4.5),
    ("4.5/5\n\nThe response covers the 3 key points.", 4.5),
    ("4.5 / 5.0\nAccurate and complete.", 4.5),
    ("4 out of 5\n\nMinor issue: the response rounds 3.14159 to 3.", 4.0),
    ("```\n4.5\n```\nThe response is accurate.", 4.5),
    ("Here is my evaluation:\n\n4.5\n\nThe response correctly converts 100 F to 37.8 C.", 4.5),
    ("3\n\nThe response contains an error: it says 7 x 8 = 54, but 7 x 8 = 56.", 3.0),
    ("4.5\n\nThe response is accurate. To reach a perfect 5, it could cite the 2019 study.", 4.5),
    ("4\n\nA perfect score of 5 would require the response to list all 6 steps.", 4.0),
    ("4.5\n\nThe response correctly identifies that 2 + 2 = 4. Score: 4.5", 4.5),
    ("4.5\n\nOverall, the response is accurate. Overall score: 4.5", 4.5),
    # -- explicit score labels ------------------------------------------------------------
    ("Score: 4.5\n\nExplanation: The response correctly converts 100 degrees Fahrenheit to "
     "37.8 degrees Celsius.", 4.5),
    ("Rating: 4\n\nThe response answers the question but skips step 2.", 4.0),
    ("Score: 4.5/5\n\nThe response is accurate; only the 1990 date is imprecise.", 4.5),
    ("**Score:** 4\n\n**Explanation:** The response lists 3 valid examples.", 4.0),
    ("## Score\n4.5\n\n## Explanation\nThe response follows all 3 steps of the instruction.", 4.5),
    ("### Rating: 3\n\nThe response only partially answers the 2-part question.", 3.0),
    ("Score (out of 5): 4\nThe response is accurate but verbose.", 4.0),
    ("Rating (0-5): 4\nThe response is correct.", 4.0),
    ("Score: 4 (out of 5)\nThe response is correct.", 4.0),
    ("Accuracy: 5/5\nAll facts are correct.", 5.0),
    ("Accuracy score: 4.5\n\nThe response is accurate except for 1 typo.", 4.5),
    ("Sure! Here's my assessment.\n\nScore: 4\n\nThe response summarizes the 3 paragraphs.", 4.0),
    ("The response lists 3 items correctly.\nScore: 4", 4.0),
    ("The instruction asks for 10 words; the response gives 10 words.\n\nScore: 5", 5.0),
    ("Evaluation: The response follows the instruction.\n\nFinal score: 4.5", 4.5),
    ("The response provides 5 examples, all correct.\n\nOverall rating: 4.5/5", 4.5),
    ("1. Accuracy: The response is correct.\n2. Completeness: It covers the 3 main points.\n\n"
     "Overall score: 4.5", 4.5),
    ("Accuracy: 5\nCompleteness: 4\nClarity: 4\n\nOverall: 4.5", 4.5),
    ("I'll evaluate the accuracy of this response.\n\nThe instruction asks to classify 4 "
     "animals. The response classifies all 4 correctly.\n\n**Score: 5**", 5.0),
    ("```python\ndef add(a, b):\n    return a + b\nprint(add(2, 3))  # 5\n```\nThe code in the "
     "response is correct and runs.\n\nScore: 5", 5.0),
    ('```json\n{"score": 4.5, "reason": "accurate"}\n```', 4.5),
    ('{"rating": 4, "explanation": "The response has 2 small errors."}', 4.0),
    ("Rating: 4.5 stars", 4.5),
    ("The response is accurate.\n\nScore: 4.5 out of 5", 4.5),
    # -- the score in a sentence --------------------------------------------------------
    ("On a scale of 0 to 5, I would rate this a 4.", 4.0),
    ("The response correctly answers the question, but the explanation contains 2 minor "
     "errors.\n\nI would give this response a score of 4.", 4.0),
    ("The response is accurate and complete. I would rate it 4.5 out of 5.", 4.5),
    ("The translation is correct, and all 4 sentences keep their meaning. My rating is 5.", 5.0),
    ("The response deserves 3.\nIt misses details.", 3.0),
    ("Based on the accuracy of the response, I'd give it a 4. It correctly identifies 2 of "
     "the 3 causes of the French Revolution (1789).", 4.0),
    ("The response is mostly accurate. It earns a score of 3.5 because the date (1492) is "
     "right but the count (3) is not explained.", 3.5),
    ("The response correctly states that World War II ended in 1945. Rating: 5", 5.0),
    ("The response is accurate. 4.5/5", 4.5),
    ("I rate this response 4 out of 5 for accuracy.", 4.0),
    ("This response earns a 4.", 4.0),
    ("My score for this response is 4.", 4.0),
    # a conditional score ("a 5 if ...") is not the score
    ("The response is good, and it would deserve a 5 if it mentioned the 1492 date. "
     "I rate it a 4.", 4.0),
    ("After checking the 3 facts in the response, all are correct.\n\n5", 5.0),
    ("4.5 - The response is accurate but omits the unit.", 4.5),
    ("4: the response is correct but terse.", 4.0),
    ("This response would receive a 5 from most graders, but I give it a 4.", 4.0),
    ("Score: 4\n\nStrengths:\n1. Accurate\n2. Clear\n\nWeaknesses:\n1. Misses the year 1776.",
     4.0),
    # -- no score, or only stray numbers: never a guess ---------------------------------
    ("", U),
    ("The answer is good.\nNo number here.", U),
    ("The response lists 3 items correctly.\nIt is otherwise fine.", U),
    ("Using a scale of 0 to 5, where 5 is perfect, the response is quite good.", U),
    ("The response was published in 2020 and cites 3 sources.", U),
    ("N/A\n\nThe response is empty, so it cannot be rated.", U),
    ("I cannot evaluate this response because the input is missing.", U),
    ("The response is accurate.\nA 5-point scale is used here.", U),
    ("Score (0-5): N/A", U),
    ("Out of 5, the response would earn high marks.", U),
    ("Rating: /5", U),
    ("GPT-4 would rate this highly.\nThe response mentions COVID-19 and 3 vaccines.", U),
    ("The response is 80% correct.", U),
    ("The response gives the answer 4, which is correct.", U),
    ("1. The response follows the instruction.\n2. It is accurate.\n3. It is concise.", U),
    ("The event happened at 10:30 on 5/4/2021.", U),
    ("3, 5 and 7 are primes, and the response lists them.", U),
    # what the rated answer did is not the judge's score
    ("The response rates the restaurant 4 stars, which matches the review.", U),
    ("The response gives it a 4, matching the input.", U),
    # -- readings that disagree: unparsed ---------------------------------------------------
    ("Score: 4-5", U),
    ("I'd say 4 or 4.5.\nThe response is accurate.", U),
    ("4\n\nThe response is fine.\n\nScore: 3", U),
    ("5\n\nThe response is accurate.\n\nOverall score: 4", U),
    # -- outside the scale: out_of_range, never rescaled -----------------------------------
    ("7\nToo high.", R),
    ("Score: 9/10\nThe response is nearly perfect.", R),
    ("-1\nNot an answer.", R),
    ("Score: -0.5", R),
    ("I would rate this response 8 out of 10.", R),
    ("Rating: 6", R),
    ("Score: 4/10", R),
    ("On a scale of 1 to 10, I would give it an 8.", R),
]

# Replies to the pairwise prompt: (Assistant 1, Assistant 2), or U / R.
PAIR_TABLE: list[tuple[str, tuple[float, float] | str]] = [
    # A server that echoes the prompt back (llm-katan's echo backend, a misconfigured proxy):
    # the instruction's "scores for Assistant 1 and 2, respectively" is not a verdict.
    ("[echo] model=x\nUser: [Question]\nWhy?\n\n[The Start of Assistant 1's Answer]\nA\n"
     "[The End of Assistant 1's Answer]\n\n[System]\nEach assistant receives an overall score on "
     "a scale of 1 to 10.\nPlease first output a single line containing only two values "
     "indicating the scores for Assistant 1 and 2, respectively. The two scores are separated "
     "by a space.", "unparsed"),
    ("The scores for Assistants 1 and 2 respectively are below.\nI cannot decide.", "unparsed"),
    # -- the prompt's format: two scores on the first line ----------------------------------
    ("8 9\nBoth Assistant 1 and Assistant 2 provided helpful tips. Assistant 1 offered a "
     "concise list of 9 tips, while Assistant 2 provided a more detailed list of 10 tips.",
     (8.0, 9.0)),
    ("8 6.5\nAssistant 1 provided a more comprehensive answer. Assistant 2 listed four "
     "factors but left the fifth one blank.", (8.0, 6.5)),
    ("9 7\n\nAssistant 1 answered all 3 parts of the question; Assistant 2 skipped part 2.",
     (9.0, 7.0)),
    ("10 10\nBoth are perfect.", (10.0, 10.0)),
    ("1 10\nAssistant 1 refused to answer.", (1.0, 10.0)),
    ("8, 7\n\nAssistant 1 is more detailed.", (8.0, 7.0)),
    ("8/10 6/10\nAssistant 2 misses the 1969 date.", (8.0, 6.0)),
    ("8/10, 7/10\n\nBoth are good.", (8.0, 7.0)),
    ("7.5 8.5\nAssistant 2 is slightly better.", (7.5, 8.5)),
    ("**8 7**\n\n**Explanation:** Assistant 1 gives 4 examples, Assistant 2 gives 3.",
     (8.0, 7.0)),
    ("Scores: 8 7\nAssistant 1 is more precise.", (8.0, 7.0)),
    ("Scores: 8 and 7\n\nAssistant 1 is clearer.", (8.0, 7.0)),
    ("Scores (1-10): 8 7\nBoth are accurate.", (8.0, 7.0)),
    ("[[8, 7]]\nAssistant 1 is better organized.", (8.0, 7.0)),
    ("(8, 7)\nAssistant 1 is better organized.", (8.0, 7.0)),
    ("8 7 Assistant 1 gives a more complete answer.", (8.0, 7.0)),
    ("Here are my scores:\n\n9 6\n\nAssistant 1 explains the 3 laws of motion; Assistant 2 "
     "confuses the second law.", (9.0, 6.0)),
    ("8 7\n\nAssistant 1: provides a correct recipe with 5 ingredients. Assistant 2: misses 2 "
     "ingredients.", (8.0, 7.0)),
    ("8 9\n\n**Assistant 1** gives a correct answer with 4 examples.\n**Assistant 2** gives 6 "
     "examples and explains each.", (8.0, 9.0)),
    ("7 9\nAssistant 1 gets 2 of the 3 facts right; Assistant 2 gets all of them.", (7.0, 9.0)),
    # -- labels beat positions ----------------------------------------------------------
    ("Assistant 1: 8\nAssistant 2: 7", (8.0, 7.0)),
    ("Assistant 1 score: 9\nAssistant 2 score: 6\n\nAssistant 1 cites 2 studies.", (9.0, 6.0)),
    ("**Assistant 1:** 7/10\n**Assistant 2:** 9/10\n\nAssistant 2 is more thorough.",
     (7.0, 9.0)),
    ("Score for Assistant 1: 4\nScore for Assistant 2: 6", (4.0, 6.0)),
    ("Assistant 2: 9\nAssistant 1: 6\n\nAssistant 2 covers all 4 cases.", (6.0, 9.0)),
    ("Assistant 1 receives a score of 7, while Assistant 2 receives a score of 8.", (7.0, 8.0)),
    ("Both responses address the question. However, Assistant 2 covers all 5 steps.\n\n"
     "Therefore, I would rate Assistant 1 a 7 and Assistant 2 a 9.", (7.0, 9.0)),
    ("Assistant 1: 8\nAssistant 2: 7\n\nExplanation: Assistant 1 mentions 3 points while "
     "Assistant 2 mentions 2.", (8.0, 7.0)),
    ("Assistant 1: 8/10, Assistant 2: 7/10", (8.0, 7.0)),
    ("Assistant 1 - 6\nAssistant 2 - 9", (6.0, 9.0)),
    ("| Assistant | Score |\n|---|---|\n| Assistant 1 | 8 |\n| Assistant 2 | 7 |", (8.0, 7.0)),
    ('```json\n{"assistant_1": 6, "assistant_2": 8}\n```', (6.0, 8.0)),
    ("### Assistant 1\nScore: 8\nThe answer is correct and cites 2 sources.\n\n"
     "### Assistant 2\nScore: 5\nThe answer misses 3 of the 4 points.", (8.0, 5.0)),
    ("**Evaluation of Assistant 1:**\n- Accurate and detailed.\n- Rating: 9/10\n\n"
     "**Evaluation of Assistant 2:**\n- Misses the 2021 update.\n- Rating: 6/10", (9.0, 6.0)),
    ("I give Assistant 1 a score of 8 and Assistant 2 a score of 6.", (8.0, 6.0)),
    ("Assistant 1 gets an 8, Assistant 2 gets a 6.", (8.0, 6.0)),
    ("Assistant 1 scores 8/10 while Assistant 2 scores 6/10.", (8.0, 6.0)),
    ("Assistant 1's overall score is 7 and Assistant 2's overall score is 9.", (7.0, 9.0)),
    ("Both assistants receive a score of 8.\n\nThey give the same 3 tips.", (8.0, 8.0)),
    ("Assistant 1 (8/10): accurate.\nAssistant 2 (6/10): vague.", (8.0, 6.0)),
    ("Assistant 1 = 9, Assistant 2 = 7", (9.0, 7.0)),
    ("Assistant 1 explains the 4 seasons; Assistant 2 lists 3 of them.\n\nAssistant 1: 9\n"
     "Assistant 2: 6", (9.0, 6.0)),
    ("Assistant 1: 7\nAssistant 2: 8\n\n7 8", (7.0, 8.0)),
    ("Assistant 2 receives a 9, and Assistant 1 receives a 6.", (6.0, 9.0)),
    ("The score for Assistant 1 is 8 and for Assistant 2 is 7.", (8.0, 7.0)),
    ("Assistant 1: 3\nAssistant 2: 10\n\nAssistant 1 did not follow the 2 constraints.",
     (3.0, 10.0)),
    ("Scores:\nAssistant 1: 8\nAssistant 2: 7", (8.0, 7.0)),
    ("On a scale of 1 to 10:\nAssistant 1: 8\nAssistant 2: 6", (8.0, 6.0)),
    ("Assistant 1 gives a correct but short answer (2 sentences). Assistant 2 explains each of "
     "the 5 steps.\n\nAssistant 1: 6/10\nAssistant 2: 9/10", (6.0, 9.0)),
    ("Assistant 1's answer: 6\nAssistant 2's answer: 9", (6.0, 9.0)),
    ("**Scores**\n- Assistant 1: 8\n- Assistant 2: 9", (8.0, 9.0)),
    ("Rating for Assistant 1: 5/10\nRating for Assistant 2: 8/10", (5.0, 8.0)),
    ("In summary, Assistant 1 should get a 7 and Assistant 2 a 9.", (7.0, 9.0)),
    ("Assistant 1\n8\n\nAssistant 2\n6", (8.0, 6.0)),
    ("Assistant 1 (Score: 8/10)\nAssistant 2 (Score: 6/10)", (8.0, 6.0)),
    # letters for the prompt's numbers (parser v5; v4 left this unparsed)
    ("Assistant A: 8\nAssistant B: 7", (8.0, 7.0)),
    # -- explanation first, scores last ---------------------------------------------------
    ("Assistant 1 provides a clear explanation. Assistant 2 is vague.\n\n9 5", (9.0, 5.0)),
    ("Both answers are accurate, but Assistant 2 includes 3 examples.\n\nFinal scores: 7 and 9",
     (7.0, 9.0)),
    ("Assistant 1 is concise; Assistant 2 is thorough.\n\nThe scores are 6 and 8.", (6.0, 8.0)),
    ("Assistant 1 and Assistant 2 receive 8 and 7, respectively.", (8.0, 7.0)),
    ("Explanation first: Assistant 2 handles the 2 edge cases.\n\nFinal verdict: [[6, 9]]",
     (6.0, 9.0)),
    # -- no pair of scores: never a guess -----------------------------------------------
    ("", U),
    ("Assistant 1 is better.", U),
    ("8 7 6\nThree numbers.", U),
    ("8\n\nAssistant 1 is better.", U),
    ("Assistant 1: 8\n\nAssistant 2 is incomplete.", U),
    ("Both assistants answer the question. Assistant 1 lists 3 steps and Assistant 2 lists 5 "
     "steps.", U),
    ("I cannot compare the answers because Assistant 2's answer is missing.", U),
    ("On a scale of 1 to 10, both answers are good.", U),
    ("Assistant 1 scored 2 of the 3 questions correctly, Assistant 2 all 3.", U),
    ("The answers were written in 2023 and 2024.", U),
    ("1. Assistant 1 is accurate.\n2. Assistant 2 is not.", U),
    ("Assistant 1: 80%\nAssistant 2: 60%", U),
    ("Assistant 1: 1) correct 2) concise\nAssistant 2: 1) wrong", U),
    ("Assistant 1 (2 paragraphs) vs Assistant 2 (5 paragraphs)", U),
    # -- readings that disagree: unparsed -------------------------------------------------
    ("8 7\nAssistant 2: 9\nAssistant 2 is more complete.", U),
    ("Assistant 1: 8\nAssistant 2: 7\n\nOn reflection, Assistant 1: 6", U),
    ("Assistant 1: 7-8\nAssistant 2: 6", U),
    ("Assistant 1: 8 or 9\nAssistant 2: 7", U),
    ("[[8, 7]]\n\n7 8", U),
    # -- outside the scale: out_of_range ------------------------------------------------
    ("0 11", R),
    ("Assistant 1: 0\nAssistant 2: 5", R),
    ("-1 -1\nThe answers are missing.", R),
    ("Assistant 1: 4/5\nAssistant 2: 3/5", R),
    ("85 70\nBoth are fine.", R),
    ("12/10 9/10", R),
]


def test_tables_are_large_enough():
    assert len(RATING_TABLE) >= 60 and len(PAIR_TABLE) >= 60
    assert len({r for r, _ in RATING_TABLE}) == len(RATING_TABLE)
    assert len({r for r, _ in PAIR_TABLE}) == len(PAIR_TABLE)


@pytest.mark.parametrize("reply,expected", RATING_TABLE)
def test_rating_table(reply, expected):
    parsed = parse_rating(reply)
    if isinstance(expected, str):
        assert (parsed.score, parsed.status) == (None, expected)
    else:
        assert (parsed.score, parsed.status) == (expected, "ok")


@pytest.mark.parametrize("reply,expected", PAIR_TABLE)
def test_pair_table(reply, expected):
    parsed = parse_pair(reply)
    if isinstance(expected, str):
        assert (parsed.scores, parsed.status) == (None, expected)
    else:
        assert (parsed.scores, parsed.status) == (expected, "ok")


@pytest.mark.parametrize("reply", ["Assistant 1: 8\nAssistant 2: 7", "8 7\nfine",
                                   "Assistant 2: 7\nAssistant 1: 8"])
def test_pair_range_follows_the_arguments(reply):
    assert parse_pair(reply, low=1, high=10).scores == (8.0, 7.0)
    assert parse_pair(reply, low=1, high=7.5).status == "out_of_range"


def test_rating_range_follows_the_arguments():
    assert parse_rating("Score: 8/10", low=1, high=10).score == 8.0
    assert parse_rating("Score: 8/10").status == "out_of_range"
    assert parse_rating("4.5", low=0, high=4).status == "out_of_range"


def test_parser_version_is_current():
    # A parser change that can change a score must bump the version (rate/judge keys).
    assert PARSER_VERSION == 5
