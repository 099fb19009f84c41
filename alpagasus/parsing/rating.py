"""Reading one rating (the paper's 0-5 score) from a judge reply: ``parse_rating``.

The tiers, highest first, and what is refused are described in the package docstring
(alpagasus.parsing) and docs/parsing.md.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from alpagasus.parsing.dimensions import for_dimension, names_a_dimension
from alpagasus.parsing.normalize import BARE_LINE as _BARE_LINE
from alpagasus.parsing.normalize import SUFFIX as _SUFFIX
from alpagasus.parsing.normalize import Rx as _Rx
from alpagasus.parsing.normalize import Span
from alpagasus.parsing.normalize import in_range as _in_range
from alpagasus.parsing.normalize import lead_index as _lead_index
from alpagasus.parsing.normalize import matches as _matches
from alpagasus.parsing.normalize import normalize as _normalize
from alpagasus.parsing.normalize import split_lines as _lines
from alpagasus.parsing.numbers import AMBIGUOUS_END as _AMBIGUOUS_END
from alpagasus.parsing.numbers import NUM as _NUM
from alpagasus.parsing.numbers import NUMFORM as _NUMFORM
from alpagasus.parsing.numbers import SP as _SP
from alpagasus.parsing.numbers import Reading as _Reading
from alpagasus.parsing.numbers import agreed as _agreed
from alpagasus.parsing.numbers import clean_end as _clean_end
from alpagasus.parsing.numbers import reading as _reading
from alpagasus.parsing.revisions import revised, revision_markers
from alpagasus.parsing.text import MappedText, lower


@dataclass(frozen=True)
class ParsedScore:
    score: float | None
    status: str  # ok | unparsed | out_of_range
    span: Span | None = None  # where the score was read (for ok and out_of_range)


_SCALES = (5.0, 10.0)  # denominators that make "N/D" a score form in prose


# --- ratings ---------------------------------------------------------------------------------

_LABEL_WORD = r"(?:score|rating|grade|mark|accuracy|helpfulness|evaluation|verdict|overall)"
_FINAL_WORD = r"(?:final|overall|total)"
_LABEL = (rf"(?:(?:my|the|final|overall|total|accuracy|helpfulness|response){_SP})*{_LABEL_WORD}s?"
          rf"{_SP}[\"']?{_SP}(?:is|of|=|:|-|–|—)?{_SP}(?:a{_SP}(?=\d))?")
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


def _rating_tiers(text: str, low: str, lines: list[str],
                  lead: int | None) -> Iterator[list[_Reading]]:
    """The readings of each tier, highest first (final label, declarations, prose, start);
    ``lines`` and ``lead``: the reply's ``_lines`` and ``_lead_index``."""
    yield [_reading(m) for m in _matches(_FINAL, text, low)]

    declared = []
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
    lowered = lower(text)
    tiers: Iterable[list[_Reading]] = _rating_tiers(text, lowered, lines, lead)
    markers = revision_markers(text, lowered)
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
