"""Reading the pairwise prompt's two 1-10 scores (Assistant 1, Assistant 2) from a judge
reply: ``parse_pair``.

The tiers, highest first, and what is refused are described in the package docstring
(alpagasus.parsing) and docs/parsing.md.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace

from alpagasus.parsing.normalize import BARE_LINE as _BARE_LINE
from alpagasus.parsing.normalize import SUFFIX as _SUFFIX
from alpagasus.parsing.normalize import Line as _Line
from alpagasus.parsing.normalize import Rx as _Rx
from alpagasus.parsing.normalize import Span
from alpagasus.parsing.normalize import in_range as _in_range
from alpagasus.parsing.normalize import lead_index as _lead_index
from alpagasus.parsing.normalize import matches as _matches
from alpagasus.parsing.normalize import normalize as _normalize
from alpagasus.parsing.normalize import split_lines as _lines
from alpagasus.parsing.numbers import AMBIGUOUS_END as _AMBIGUOUS_END
from alpagasus.parsing.numbers import NUMFORM as _NUMFORM
from alpagasus.parsing.numbers import SP as _SP
from alpagasus.parsing.numbers import Reading as _Reading
from alpagasus.parsing.numbers import agreed as _agreed
from alpagasus.parsing.numbers import reading as _reading
from alpagasus.parsing.revisions import pair_revised, revision_markers
from alpagasus.parsing.text import MappedText, lower


@dataclass(frozen=True)
class ParsedPair:
    scores: tuple[float, float] | None
    status: str  # ok | unparsed | out_of_range
    spans: tuple[Span, Span] | None = None



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
    lowered = lower(text)
    labels = _pair_labels(text, lowered, lines)
    tiers: Iterable[Pairs] = _pair_tiers(text, lowered, lines)  # read only when needed
    if markers := revision_markers(text, lowered):
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
