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
other languages' labels ("Puntuación: 4,5" -> "Score: 4.5", parsing_languages), number
words ("four and a half" -> "4.5", parsing_words) and, for pairs, the answers' other names
("Response A", "the second", "8 for both", parsing_labels). A reply scoring several
dimensions is read by the asked one's label (``dimension``, parsing_dimensions); a reply that
revises its score is unparsed, or read by its final score under ``revision="final"``
(parsing_revisions). The result carries the score's place in the reply (``span``, through
parsing_text's map). docs/parsing.md lists what is read and what is left unparsed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace

from alpagasus.parsing_dimensions import for_dimension, names_a_dimension
from alpagasus.parsing_labels import rewrite_pair_labels
from alpagasus.parsing_languages import rewrite_languages, wide_to_ascii
from alpagasus.parsing_numbers import AMBIGUOUS_END as _AMBIGUOUS_END
from alpagasus.parsing_numbers import NUM as _NUM
from alpagasus.parsing_numbers import NUMFORM as _NUMFORM
from alpagasus.parsing_numbers import SP as _SP
from alpagasus.parsing_numbers import Reading as _Reading
from alpagasus.parsing_numbers import agreed as _agreed
from alpagasus.parsing_numbers import clean_end as _clean_end
from alpagasus.parsing_numbers import reading as _reading
from alpagasus.parsing_revisions import pair_revised, revised, revision_markers
from alpagasus.parsing_text import MappedText, Replacement
from alpagasus.parsing_words import rewrite_number_words

# Bumped whenever a change here can change a score: it enters the rate/judge artifact keys,
# so after a parser change `rate.reparse=true` and the judge stage build new artifacts from
# the stored replies. v4: tiered readings (labels, scale mentions, conflicts -> unparsed).
# v5: other names for the pair's answers, one score for both, number words, other languages'
# labels, several dimensions, revised scores, spans.
PARSER_VERSION = 5


Span = tuple[int, int]  # character offsets in the reply: reply[start:end] is the score


@dataclass(frozen=True)
class ParsedScore:
    score: float | None
    status: str  # ok | unparsed | out_of_range
    span: Span | None = None  # where the score was read (for ok and out_of_range)


@dataclass(frozen=True)
class ParsedPair:
    scores: tuple[float, float] | None
    status: str  # ok | unparsed | out_of_range
    spans: tuple[Span, Span] | None = None


# --- numbers -------------------------------------------------------------------------------

_F = re.IGNORECASE | re.MULTILINE
_SCALES = (5.0, 10.0)  # denominators that make "N/D" a score form in prose


class _Rx:
    """A pattern with the words (lower case) it needs. Most replies hold none of them, and
    a substring test costs far less than a regex scan; an ``anchored`` pattern starts with
    one of its words, so it is only tried where one occurs (parsing 52k replies twice per
    rating run must take seconds, not minutes)."""

    __slots__ = ("words", "pattern", "anchored")

    def __init__(self, words: str, pattern: str, flags: int = _F, anchored: bool = True):
        self.words = tuple(words.split())
        self.pattern = re.compile(pattern, flags)
        self.anchored = anchored

    def present(self, low: str) -> bool:
        return any(w in low for w in self.words)

    def finditer(self, text: str, low: str) -> Iterator[re.Match]:
        if not self.anchored:
            return self.pattern.finditer(text) if self.present(low) else iter(())
        return self._anchored(text, low)

    def _anchored(self, text: str, low: str) -> Iterator[re.Match]:
        starts = set()
        for word in self.words:
            i = low.find(word)
            while i >= 0:
                starts.add(i)
                i = low.find(word, i + 1)
        for i in sorted(starts):
            if m := self.pattern.match(text, i):
                yield m

    def sub(self, repl: Callable[[re.Match], Replacement] | str, text: MappedText,
            low: str) -> MappedText:
        return text.sub(self.pattern, repl) if self.present(low) else text


def _lower(text: str) -> str:
    """``text.lower()`` with the same indices (a few characters lower to two)."""
    low = text.lower()
    if len(low) == len(text):
        return low
    return "".join(c.lower() if len(c.lower()) == 1 else c for c in text)


# --- normalizing a reply -------------------------------------------------------------------

_FENCE = re.compile(r"^[ \t]*```[ \t]*(\w*)[^\n]*\n(.*?)(?:^[ \t]*```[ \t]*$|\Z)", re.S | re.M)
_INLINE_CODE = re.compile(r"`([^`\n]*)`")
_QUOTE = re.compile(r"^[ \t]*>.*$", re.M)
_HEADING = re.compile(r"^[ \t]*#{1,6}[ \t]*", re.M)
_BULLET = re.compile(r"^[ \t]*(?:[-*+•][ \t]+)+", re.M)
_TABLE_RULE = re.compile(r"^[ \t|:-]+$", re.M)
_ITALIC = re.compile(r"(?<![\w*])\*(?=\S)|(?<=\S)\*(?![\w*])")
_THOUSANDS = re.compile(r"(?<![\w.])\d{1,3}(?:,\d{3})+(?![\w])")
_SCALE_NUM = r"(?:0|1)(?:\.0)?"
_SCALE_TOP = r"(?:5|10|100)(?:\.0)?"
_SCALE_PHRASES = [
    # "on a scale of 0 to 5", "on a scale from 1-10", "in the range 0-5"
    _Rx("scale range", rf"\b(?:scale|range)\b{_SP}(?:of|from|between)?{_SP}\(?{_SP}"
        rf"\d+(?:\.\d+)?{_SP}(?:-|–|—|to|through|and){_SP}\d+(?:\.\d+)?{_SP}\)?",
        re.I, anchored=False),
    # "on a 0-5 scale", "a 1 to 10 scale"
    _Rx("scale", rf"(?<![\w.]){_SCALE_NUM}{_SP}(?:-|–|—|to){_SP}{_SCALE_TOP}{_SP}"
        rf"(?:-?{_SP}point{_SP})?\bscale\b", re.I, anchored=False),
    # "5-point scale", "ten-point scale"
    _Rx("point", r"\b(?:\d+|five|ten|hundred)[ -]?point\b(?:[ \t]+scale\b)?", re.I,
        anchored=False),
    # "maximum of 5", "max 5", "highest possible score of 5"
    _Rx("max highest", rf"\b(?:max(?:imum)?|highest(?:{_SP}possible)?)\b{_SP}"
        rf"(?:score|rating)?{_SP}(?:of|is|:|=)?{_SP}{_NUM}", re.I, anchored=False),
    # bare "0-5", "1 to 10", "(0–10)": the scales judges name. The digit comes first so
    # that the regex engine can skip to candidate positions.
    _Rx("- – — to", rf"[01](?<![\w.\-/][01])(?<!assistant [01])(?:\.0)?{_SP}(?:-|–|—|to){_SP}{_SCALE_TOP}"
        rf"(?![\w.%]|/\d)", re.I, anchored=False),
]
# "out of 5" / "/10" is a score form after a number ("4 out of 5") and a scale mention
# otherwise ("Score (out of 5): 4", "Scores (/10): 8 7").
_OUT_OF = _Rx("out /", rf"\(?{_SP}(?:\bout{_SP}of|/){_SP}\d+(?:\.\d+)?(?![\w.%]|\.\d){_SP}\)?",
              re.I, anchored=False)
_AFTER_NUMBER = re.compile(rf"\d{_SP}\(?{_SP}$")
_EMPTY_BRACKETS = re.compile(r"\(\s*\)|\[\s*\]")


def _drop_scale_mentions(text: MappedText, low: str) -> MappedText:
    # ``low`` is the reply before these edits: they only remove text, so a word absent
    # from it is absent from what they leave.
    for pattern in _SCALE_PHRASES:
        text = pattern.sub(" ", text, low)
    before_out_of = text.text

    def out_of(m: re.Match) -> str:
        before = before_out_of[max(0, m.start() - 12):m.start()]
        return m.group(0) if _AFTER_NUMBER.search(before) else " "

    text = _OUT_OF.sub(out_of, text, low)
    if "(" in text.text or "[" in text.text:
        text = text.sub(_EMPTY_BRACKETS, " ")
    return text


_NEWLINE = re.compile(r"\r\n?")
_NBSP = re.compile("\u00a0")
_STRONG = re.compile(r"\*\*|__")


def _normalize(reply: str, kind: str = "rating") -> MappedText:
    """The reply as the readings see it (``kind``: rating | pair), mapped to the reply."""
    text = MappedText.of(reply)
    if "\r" in reply:
        text = text.sub(_NEWLINE, "\n")
    if "\u00a0" in reply:
        text = text.sub(_NBSP, " ")
    text = wide_to_ascii(text)

    def fence(m: re.Match) -> Replacement:
        # Code quoted from an answer is never a score; a JSON verdict or a fenced one-line
        # score ("```\n4.5\n```") is read.
        body = m.group(2)
        short = body.count("\n") <= 1 and len(body) < 40
        return [m.span(2)] if m.group(1).lower() == "json" or short else "\n"

    if "`" in text.text:
        text = text.sub(_FENCE, fence)
        text = text.sub(_INLINE_CODE, lambda m: [m.span(1)] if re.fullmatch(
            r"[\s\d./]*", m.group(1)) else " ")
    if ">" in text.text:
        text = text.sub(_QUOTE, "")  # quoted answer text
    if "#" in text.text:
        text = text.sub(_HEADING, "")
    if "**" in text.text or "__" in text.text:
        text = text.sub(_STRONG, "")
    text = text.sub(_BULLET, "")
    if "*" in text.text:
        text = text.sub(_ITALIC, "")
    if "|" in text.text or "--" in text.text:
        text = text.sub(_TABLE_RULE, "")
    if "," in text.text:
        text = text.sub(_THOUSANDS, " ")  # "1,000" is never a score
    # Other languages' labels, number words, the pairwise prompt's answers by other names:
    # rewritten into the forms read below (parsing_languages, parsing_words, parsing_labels).
    text = rewrite_languages(text, decimal_comma=kind == "rating")
    text = rewrite_number_words(text)
    if kind == "pair":
        text = rewrite_pair_labels(text)
    return _drop_scale_mentions(text, _lower(text.text))


class _Line(str):
    """A stripped line of the normalized text; ``at``: where it starts in that text."""

    at: int


def _lines(text: str) -> list[_Line]:
    lines, pos = [], 0
    for raw in text.split("\n"):
        stripped = raw.strip()
        if stripped:
            line = _Line(stripped)
            line.at = pos + len(raw) - len(raw.lstrip())
            lines.append(line)
        pos += len(raw) + 1
    return lines


def _lead_index(lines: list[str], preamble: int = 2) -> int | None:
    """The first line that holds a digit, after at most ``preamble`` lines without one
    ("Here is my evaluation:")."""
    for i, line in enumerate(lines[:preamble + 1]):
        if re.search(r"\d", line):
            return i
    return None


def _in_range(value: float, low: float, high: float) -> bool:
    return low <= value <= high


# --- ratings ---------------------------------------------------------------------------------

_LABEL_WORD = r"(?:score|rating|grade|mark|accuracy|helpfulness|evaluation|verdict|overall)"
_FINAL_WORD = r"(?:final|overall|total)"
_LABEL = (rf"(?:(?:my|the|final|overall|total|accuracy|helpfulness|response){_SP})*{_LABEL_WORD}s?"
          rf"{_SP}[\"']?{_SP}(?:is|of|=|:|-|–|—)?{_SP}(?:a{_SP}(?=\d))?")
_SUFFIX = rf"{_SP}(?:points?|stars?)?{_SP}[.!]?{_SP}"
_BARE_LINE = re.compile(rf"[\[(\"']?{_NUMFORM}[\])\"']?{_SUFFIX}", re.I)
_LABELLED_LINE = re.compile(rf"{_LABEL}{_NUMFORM}{_SUFFIX}", re.I)
# The first line as the prompt asks for it: a bare score or a score/rating label.
_LEAD_LINE = re.compile(rf"(?:(?:my|the|final|overall|total){_SP})*(?:(?:score|rating|grade)s?"
                        rf"{_SP}[\"']?{_SP}(?:is|of|=|:|-|–|—)?{_SP}(?:a{_SP}(?=\d))?)?"
                        rf"[\[(\"']?{_NUMFORM}[\])\"']?{_SUFFIX}", re.I)
_LABEL_ONLY_LINE = re.compile(rf"(?:(?:my|the|final|overall|total){_SP})*"
                              rf"(?:score|rating|grade|verdict){_SP}:?", re.I)
_FINAL = [
    _Rx("final overall total", rf"\b{_FINAL_WORD}{_SP}(?:accuracy{_SP}|helpfulness{_SP})?"
        rf"(?:score|rating|grade|verdict|evaluation|assessment)\b{_SP}[\"']?{_SP}"
        rf"(?:is|of|would{_SP}be|=|:|-|–|—)?{_SP}(?:a{_SP})?{_NUMFORM}"),
    _Rx("overall", rf"^{_SP}overall{_SP}[:=]{_SP}{_NUMFORM}", anchored=False),
]
_FOR_IT = (r"(?:[ \t]+for[ \t]+(?:it|this|that|the)(?:[ \t]+(?:response|answer|output|reply))?)?")
_OBJECT = (r"(?:(?:it|this|that|the|its|my|response|answer|output|reply|submission|one|"
           r"accuracy|helpfulness|of|overall)[ \t]+){0,6}")
_GIVE = r"\b(?:give|giving|assign|assigning|award|awarding)[ \t]+"  # the judge's voice
_PROSE = [
    # "a score of 4", "my rating is 4", "Score: 4", "rating would be 4.5"
    _Rx("score rating grade", rf"\b(?:score|rating|grade)\b{_FOR_IT}{_SP}[\"']?{_SP}"
        rf"(?:is|of|would{_SP}be|should{_SP}be|will{_SP}be|=|:|-|–|—)?{_SP}(?:a{_SP}|an{_SP})?"
        rf"{_NUMFORM}"),
    # "I would rate this response a 4", "rated as 4.5", "I score it 3". The judge speaks in
    # the first person; "the response rates it 4" is what the rated answer did.
    _Rx("rat scor", rf"\b(?:rate|rated|rating|score|scored|scoring)[ \t]+{_OBJECT}"
        rf"(?:(?:a|an|as|at|with)[ \t]+){{0,2}}{_NUMFORM}"),
    # "This response scores a 4", but not "the response scores the essay 4"
    _Rx("rates scores", rf"\b(?:rates|scores)[ \t]+(?:(?:a|an|as|at)[ \t]+)?{_NUMFORM}"),
    # "I'd give it a 4", "I give this response a score of 4.5", "assign it 3"
    _Rx("giv assign award", rf"{_GIVE}(?:it|this|this[ \t]+response|the[ \t]+response"
        rf"|this[ \t]+answer)[ \t]+(?:(?:a|an)[ \t]+)?(?:(?:score|rating|grade)[ \t]+"
        rf"(?:of[ \t]+)?)?{_NUMFORM}"),
    _Rx("giv assign award", rf"{_GIVE}{_OBJECT}(?:a|an)[ \t]+(?:(?:score|rating|grade)"
        rf"[ \t]+(?:of[ \t]+)?)?{_NUMFORM}"),
    # "deserves a 4", "earns a score of 4.5", "The response deserves 3."
    _Rx("deserv merit warrant earn receiv",
        rf"\b(?:deserves?|merits?|warrants?|earns?|receives?)[ \t]+(?:(?:a|an)[ \t]+)?"
        rf"(?:(?:perfect|solid|high|low)[ \t]+)?(?:(?:score|rating|grade)[ \t]+"
        rf"(?:of[ \t]+)?)?{_NUMFORM}"),
]
_FORM = _Rx("/ out", rf"{_NUM}{_SP}\(?{_SP}(?:/|out{_SP}of\b){_SP}(\d+(?:\.\d+)?)"
            rf"(?![\w%]|\.\d)", anchored=False)
_START = re.compile(rf"^{_NUMFORM}(?:{_SP}(?:-|–|—|:|,|;)[ \t]+|[ \t]+(?=[A-Z]))", re.I)


def _matches(patterns: Iterable[_Rx], text: str, low: str) -> Iterator[re.Match]:
    for pattern in patterns:
        for m in pattern.finditer(text, low):
            if _clean_end(text, m.end()):
                yield m


def _rating_tiers(text: str, low: str) -> Iterator[list[_Reading]]:
    """The readings of each tier, highest first (final label, declarations, prose, start)."""
    lines = _lines(text)
    yield [_reading(m) for m in _matches(_FINAL, text, low)]

    declared = []
    lead = _lead_index(lines)
    if lead is not None:
        line = lines[lead]
        m = _LABELLED_LINE.fullmatch(line) or _BARE_LINE.fullmatch(line)
        if m:
            declared.append((lead, _reading(m, at=line.at)))
    if lines and (m := _BARE_LINE.fullmatch(lines[-1])):
        declared.append((len(lines) - 1, _reading(m, at=lines[-1].at)))
    for i, line in enumerate(lines):
        if m := _LABELLED_LINE.fullmatch(line):
            declared.append((i, _reading(m, at=line.at)))
        elif _LABEL_ONLY_LINE.fullmatch(line) and i + 1 < len(lines) and \
                (m := _BARE_LINE.fullmatch(lines[i + 1])):
            declared.append((i + 1, _reading(m, at=lines[i + 1].at)))
    yield [r for _, r in declared]

    prose = [_reading(m) for m in _matches(_PROSE, text, low)]
    prose += [_reading(m) for m in _FORM.finditer(text, low)
              if float(m.group(2)) in _SCALES and _clean_end(text, m.end())]
    yield prose

    start = _START.match(lines[0]) if lines else None
    if start and _AMBIGUOUS_END.match(lines[0], start.end(2) if start.group(2) else start.end(1)):
        start = None  # "3, 5 and 7 are primes"
    yield [_reading(start, at=lines[0].at)] if start else []


def _score(value: float, on_scale: bool, low: float, high: float, at: _Reading,
           text: MappedText) -> ParsedScore:
    span = text.span(at.start, at.end)
    if on_scale and _in_range(value, low, high):
        return ParsedScore(value, "ok", span)
    return ParsedScore(None, "out_of_range", span)


def parse_rating(reply: str, low: float = 0.0, high: float = 5.0, *,
                 dimension: str | None = None, revision: str = "unparsed") -> ParsedScore:
    """Read one ``low``-``high`` rating from a judge reply (see the module docstring).

    ``dimension``: the criterion the prompt asked for (a reply scoring several is read by
    its label); ``revision``: unparsed | final, what a reply that revises its score gives.
    """
    mapped = _normalize(reply)
    text = mapped.text
    lines = _lines(text)
    lead = _lead_index(lines)
    lead_key = None
    if lead is not None:
        m = _LEAD_LINE.fullmatch(lines[lead])
        lead_key = _reading(m).key(high) if m else None
    tiers: Iterable[list[_Reading]] = _rating_tiers(text, _lower(text))
    markers = revision_markers(text)
    several = dimension is not None and names_a_dimension(text)
    if markers or several:  # all tiers are needed (else only up to the first that reads)
        tiers = list(tiers)
        if several:
            kept = for_dimension(text, tiers, dimension.lower())  # type: ignore[union-attr]
            if kept is None:
                return ParsedScore(None, "unparsed")
            tiers = kept
        found_revision = revised(text, [r for tier in tiers for r in tier], markers)
        if found_revision is not None:
            before, after = found_revision
            found, key = _agreed(after, high)
            if key is None:
                return ParsedScore(None, "unparsed")  # revised, but to what is unclear
            if revision == "final":
                return _score(*key, low, high, min(after, key=lambda r: r.start), mapped)
            if any(r.key(high) != key for r in before):
                return ParsedScore(None, "unparsed")
    for readings in tiers:
        found, key = _agreed(readings, high)
        if not found:
            continue
        # The prompt asks for the score on the first line: nothing overrides it silently.
        if key is None or (lead_key is not None and key != lead_key):
            return ParsedScore(None, "unparsed")
        return _score(*key, low, high, min(readings, key=lambda r: r.start), mapped)
    return ParsedScore(None, "unparsed")


# --- pairs -----------------------------------------------------------------------------------

_ASSISTANT = r"\bassistant[ \t_#-]*([12])(?![\w]|\.\d)"
_OWN = r"(?:'s)?(?:[ \t]+(?:answer|response))?[\"']?"
_SEP = r"[ \t]*(?:[:=|(]|-(?!\d)|–|—)[ \t]*"
_SCORE_WORD = rf"(?:(?:overall|final|total){_SP})?(?:score|rating|grade)"
_OF = rf"(?:(?:a|an)[ \t]+)?(?:{_SCORE_WORD}[ \t]+(?:of[ \t]+)?)?"
_PAIR_LABELS = [
    # "Assistant 1: 8", "Assistant 1 - 8", "| Assistant 1 | 8 |", "Assistant 1 (8/10)"
    _Rx("assistant", rf"{_ASSISTANT}{_OWN}(?:{_SEP})+(?:a[ \t]+)?{_NUMFORM}"),
    # "Assistant 1 score: 9", "Assistant 1's overall score is 8", "Assistant 1 (score 8)"
    _Rx("assistant", rf"{_ASSISTANT}{_OWN}(?:{_SEP})*[ \t]*{_SCORE_WORD}{_SP}"
        rf"(?:is|of|[:=\-–—])?{_SP}(?:a[ \t]+)?{_NUMFORM}"),
    # "Score for Assistant 1: 4", "the rating of Assistant 2 is 7"
    _Rx("overall final total score rating grade", rf"\b{_SCORE_WORD}s?[ \t]+(?:for|of)[ \t]+"
        rf"{_ASSISTANT}{_OWN}{_SP}(?:is|[:=\-–—])?{_SP}{_NUMFORM}"),
    # "I would rate Assistant 1 a 7", "I give Assistant 2 a score of 9"
    _Rx("rat giv assign award scor", rf"\b(?:rate|rating|give|giving|assign|assigning|award"
        rf"|awarding|score|scoring)[ \t]+{_ASSISTANT}{_OWN}[ \t]+(?:(?:as|at|with)[ \t]+)?"
        rf"{_OF}{_NUMFORM}"),
    # "Assistant 1 receives a score of 7", "Assistant 2 gets 8", "Assistant 1 is rated 6"
    _Rx("assistant", rf"{_ASSISTANT}{_OWN}[ \t]+(?:receives|received|gets|got|earns|earned"
        rf"|deserves|scores|scored|merits|(?:is|was)[ \t]+(?:rated|given|awarded|scored)"
        rf"|should[ \t]+(?:get|receive|be[ \t]+(?:given|rated|awarded)))"
        rf"[ \t]+(?:(?:as|at|with)[ \t]+)?{_OF}{_NUMFORM}"),
    # the second half of "rate Assistant 1 a 7 and Assistant 2 a 9", "... and for Assistant 2
    # is 7"
    _Rx("and while whereas but", rf"\b(?:and|while|whereas|but)[ \t]+(?:for[ \t]+|to[ \t]+)?"
        rf"{_ASSISTANT}{_OWN}[ \t]+(?:(?:is|gets|receives|a|an|as|at|with)[ \t]+)+"
        rf"(?:{_SCORE_WORD}[ \t]+(?:of[ \t]+)?)?{_NUMFORM}"),
]
_PAIR_BOTH = [
    # "Both assistants receive a score of 8", "I would give both assistants an 8"
    _Rx("both", rf"\bboth(?:[ \t]+assistants)?[ \t]+(?:receive|get|deserve|earn|score)[ \t]+"
        rf"{_OF}{_NUMFORM}"),
    _Rx("giv rat assign award", rf"\b(?:give|giving|rate|rating|assign|assigning|award"
        rf"|awarding)[ \t]+both(?:[ \t]+assistants)?[ \t]+(?:(?:as|at|with)[ \t]+)?"
        rf"{_OF}{_NUMFORM}"),
]
_SECTION = re.compile(rf"(?:(?:evaluation|assessment|review|feedback|scores?)[ \t]+(?:of|for)"
                      rf"[ \t]+)?{_ASSISTANT}{_OWN}{_SP}(?:\(.*\))?{_SP}:?", re.I)
_SECTION_SCORE = re.compile(rf"{_SCORE_WORD}s?{_SP}(?:is|[:=\-–—])?{_SP}(?:a[ \t]+)?{_NUMFORM}"
                            rf"{_SUFFIX}", re.I)
# A line that is only two scores and score vocabulary: "8 7", "Scores: 8, 7", "[[8, 7]]",
# "8/10 and 7/10", "Assistant 1 and 2: 8 and 7".
_PAIR_FILLER = re.compile(
    r"\b(?:(?:final|overall|total|my)[ \t]+)*(?:scores?|ratings?)\b|\bassistants?[ \t]*1[ \t]*"
    r"(?:and|&|,)[ \t]*(?:assistant[ \t]*)?2\b|\b(?:for|are|is|respectively|the)\b", re.I)
_PAIR_LINE = re.compile(
    rf"{_SP}[:=]?{_SP}[\[(]*{_SP}{_NUMFORM}{_SP}(?:,|;|&|\||\band\b|\bvs\.?|[ \t])"
    rf"{_SP}{_NUMFORM}{_SP}[\])]*{_SP}[.,]?{_SP}", re.I)
_PAIR_PROSE = [
    # "[[8, 7]]" anywhere
    _Rx("[[", rf"\[\[{_SP}{_NUMFORM}{_SP}[,;]?{_SP}{_NUMFORM}{_SP}\]\]"),
    # "8 and 7, respectively", "8/10 and 7/10 respectively"
    # (not the prompt's own "the scores for Assistant 1 and 2, respectively", echoed back)
    _Rx("respectively", rf"(?<!assistant[ \t])(?<!assistants[ \t]){_NUMFORM}{_SP}"
        rf"(?:,|and|,[ \t]*and){_SP}{_NUMFORM}{_SP},?{_SP}"
        rf"\(?respectively", anchored=False),
    # "scores of 8 and 7", "the scores are 8 and 7", "Scores: 8, 7"
    _Rx("scores ratings", rf"\b(?:scores|ratings)\b[ \t]+(?:are[ \t]+|of[ \t]+"
        rf"|would[ \t]+be[ \t]+)?[:=]?{_SP}{_NUMFORM}{_SP}(?:,|and|,[ \t]*and|&){_SP}{_NUMFORM}"),
]
_SCORES_WORD = re.compile(r"\b(?:scores|ratings)\b", re.I)
_PAIR_START = re.compile(rf"^{_NUMFORM}{_SP}(?:,|;|[ \t]){_SP}{_NUMFORM}(?=[ \t.,:;-]+[A-Za-z])",
                         re.I)


def _pair_labels(text: str, low: str, lines: list[_Line]) -> dict[int, list[_Reading]]:
    sides: dict[int, list[_Reading]] = {1: [], 2: []}
    for m in _matches(_PAIR_LABELS, text, low):
        sides[int(m.group(1))].append(_reading(m, 2))
    for m in _matches(_PAIR_BOTH, text, low):
        for side in (1, 2):
            sides[side].append(_reading(m))
    # "Assistant 1" as a heading, then "Score: 8" before the next heading, or "8" right after.
    side, first = None, False
    for line in (lines if "assistant" in low else ()):
        if m := _SECTION.fullmatch(line):
            side, first = int(m.group(1)), True
            continue
        if side and ((m := _SECTION_SCORE.fullmatch(line)) or
                     (first and (m := _BARE_LINE.fullmatch(line)))):
            sides[side].append(_reading(m, at=line.at))
            side = None
        first = False
    return sides


def _pair_line(line: _Line) -> tuple[_Reading, _Reading] | None:
    if len(line) > 120:  # two scores and a few words: an explanation line is no pair line
        return None
    bare = MappedText.of(line).sub(_PAIR_FILLER, " ")  # keeps the numbers' places
    if not (m := _PAIR_LINE.fullmatch(bare.text)):
        return None

    def placed(r: _Reading) -> _Reading:
        start = line.at + bare.starts[r.start]
        return replace(r, start=start, end=start + r.end - r.start)

    return placed(_reading(m)), placed(_reading(m, 3))


Pairs = list[tuple[_Reading, _Reading]]


def _pair_tiers(text: str, low: str, lines: list[_Line]) -> Iterator[Pairs]:
    declared = []
    lead = _lead_index(lines)
    for i, line in enumerate(lines):
        if i == lead or i == len(lines) - 1 or _SCORES_WORD.search(line):
            if pair := _pair_line(line):
                declared.append(pair)
    for m in _matches(_PAIR_PROSE, text, low):
        declared.append((_reading(m), _reading(m, 3)))
    yield declared
    start = _PAIR_START.match(lines[0]) if lines else None
    if start and _AMBIGUOUS_END.match(lines[0], start.end()):
        start = None
    yield [(_reading(start, at=lines[0].at), _reading(start, 3, at=lines[0].at))] if start else []


def parse_pair(reply: str, low: float = 1.0, high: float = 10.0, *,
               revision: str = "unparsed") -> ParsedPair:
    """Read the scores of Assistant 1 and Assistant 2 (see the module docstring);
    ``revision``: unparsed | final, what a reply that revises its scores gives."""
    mapped = _normalize(reply, "pair")
    text = mapped.text
    lines = _lines(text)
    lowered = _lower(text)
    labels = _pair_labels(text, lowered, lines)
    tiers: Iterable[Pairs] = _pair_tiers(text, lowered, lines)  # read only when needed
    if markers := revision_markers(text):
        found_revision = pair_revised(text, labels, list(tiers), markers, revision)
        if found_revision is None:
            return ParsedPair(None, "unparsed")
        labels, tiers = found_revision
    label_keys = {side: _agreed(readings, high) for side, readings in labels.items()}
    if any(found and key is None for found, key in label_keys.values()):
        return ParsedPair(None, "unparsed")  # one assistant labelled with two scores
    chosen: tuple[tuple[float, bool], tuple[float, bool]] | None = None
    where: tuple[_Reading, _Reading] | None = None
    if label_keys[1][0] and label_keys[2][0]:
        chosen = (label_keys[1][1], label_keys[2][1])  # type: ignore[assignment]
        where = (min(labels[1], key=lambda r: r.start), min(labels[2], key=lambda r: r.start))
    else:
        for readings in tiers:
            if not readings:
                continue
            keys = {(a.key(high), b.key(high)) for a, b in readings}
            if len(keys) != 1:
                return ParsedPair(None, "unparsed")
            chosen = keys.pop()
            where = min(readings, key=lambda p: p[0].start)
            break
        if chosen is None:
            return ParsedPair(None, "unparsed")
        # A label for one side only still vetoes a reading that contradicts it.
        for side in (1, 2):
            found, key = label_keys[side]
            if found and key != chosen[side - 1]:
                return ParsedPair(None, "unparsed")
    (a, a_on), (b, b_on) = chosen
    assert where is not None
    spans = (mapped.span(where[0].start, where[0].end), mapped.span(where[1].start, where[1].end))
    if a_on and b_on and _in_range(a, low, high) and _in_range(b, low, high):
        return ParsedPair((a, b), "ok", spans)
    return ParsedPair(None, "out_of_range", spans)
