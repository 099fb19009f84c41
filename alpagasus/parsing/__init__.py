"""Parsing judge replies into scores. Pure functions; parsing happens when replies are read.

A reply is read as a pipeline of *readings*, grouped in tiers of confidence. The highest
tier that yields any reading decides; if its readings disagree, the reply is ``unparsed``.
Nothing below a confident reading is ever used to fill a gap, so an unclear reply is
reported (status ``unparsed``), never turned into a guessed score.

Before any number is read, the text is normalized: fenced code blocks (except ```json),
quoted lines (``> ...``), markdown emphasis, headings and bullets are removed, and scale
mentions ("on a scale of 0 to 5", "(0-5)", "(out of 5)", "/10" with no number before it,
"1-10", "5-point scale") are deleted: a scale is never a score. "4/5", "4 out of 5" and
"8/10" stay: they are scores with their scale; a score on another scale than the prompt's
("Score: 9/10" for a 0-5 rating, "80%") is ``out_of_range``, never rescaled.

Rating tiers (``parse_rating``), highest first:

1. a final/overall label: "Overall score: 4.5", "Final rating: 4", "Overall: 4.5";
2. declarations: the first line that holds a number (after at most two introductory lines
   without digits) when it is only a score ("4.5", "**4**", "Score: 4", "4.5/5",
   "Rating (0-5): 4"); any line that is a labelled score ("Score: 4", "Accuracy: 5/5");
   a "Score"/"## Rating" line followed by a line holding only the number; a last line
   holding only a number;
3. anchors in prose: "a score of 4", "my rating is 4", "I would rate this response a 4",
   "I'd give it a 4.5", "deserves a 4", "4 out of 5", "4.5/5";
4. a number at the very start of the first line, followed by a separator ("4.5 - ...",
   "4: ...", "4.5 The response ...").

If a final/overall label disagrees with the first-line score, the reply is ``unparsed``.

Pair tiers (``parse_pair``, the pairwise prompt's two 1-10 scores for Assistant 1 and 2):

1. labels: "Assistant 1: 8", "Assistant 1 score: 9", "Assistant 1 (8/10)", "Score for
   Assistant 1: 4", "Assistant 1 receives a score of 7", "I would rate Assistant 1 a 7",
   "| Assistant 1 | 8 |", ``"assistant_1": 8``, an "Assistant 1" heading followed by a
   "Score: 8" line, "Both assistants receive a score of 8"; in any order;
2. pair declarations: a first or last line that is only two numbers ("8 7", "8, 7",
   "8/10 7/10", "Scores: 8 and 7", "(8, 7)"), a "Scores: 8 7" line anywhere, "[[8, 7]]",
   "8 and 7, respectively", "scores of 8 and 7";
3. the first line starting with two numbers followed by text ("8 7 Assistant 1 ...").

Labels beat positions: a complete label reading wins; a label for one side only must
agree with whatever tier decides, else ``unparsed``.

Every labelled or anchored number must end cleanly: a number followed by a noun ("3
items", "2 of the 3"), a range ("4-5", "4 to 5"), an alternative ("4 or 5") or a condition
("would deserve a 5 if ...") is not a score. Verbs count in the judge's voice ("I would
rate it a 4", "I'd give it a 4"), not as what the rated answer did ("the response rates
the movie 4", "it gives it a 4"). A number glued to a word ("GPT-4", "5th", "v3"), a
percentage, a time, an id ("#3") or a fraction's denominator is never read.

Before any of this, the reply is rewritten into these forms, each by its own module:
other languages' labels ("Puntuación: 4,5" -> "Score: 4.5", parsing.languages), number
words ("four and a half" -> "4.5", parsing.words) and, for pairs, the answers' other names
("Response A", "the second", "8 for both", parsing.labels). A reply scoring several
dimensions is read by the asked one's label (``dimension``, parsing.dimensions); a reply that
revises its score is unparsed, or read by its final score under ``revision="final"``
(parsing.revisions). The result carries the score's place in the reply (``span``, through
parsing.text's map). docs/parsing.md lists what is read and what is left unparsed.
"""

from __future__ import annotations

from alpagasus.parsing.normalize import Span
from alpagasus.parsing.pair import ParsedPair, parse_pair
from alpagasus.parsing.rating import ParsedScore, parse_rating

# Bumped whenever a change here can change a score: it enters the rate/judge artifact keys,
# so after a parser change `rate.reparse=true` and the judge stage build new artifacts from
# the stored replies. v4: tiered readings (labels, scale mentions, conflicts -> unparsed).
# v5: other names for the pair's answers, one score for both, number words, other languages'
# labels, several dimensions, revised scores, spans.
PARSER_VERSION = 5

__all__ = ["PARSER_VERSION", "ParsedPair", "ParsedScore", "Span", "parse_pair", "parse_rating"]
