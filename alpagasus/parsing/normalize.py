"""A judge reply as the readings see it, mapped back to the reply, and the pieces that the
rating reader (parsing.rating) and the pair reader (parsing.pair) share.

The reply is normalized before any number is read: fenced code (except ```json), quoted
lines, markdown emphasis, headings and bullets go, other languages' labels and number words
are rewritten, and scale mentions ("on a scale of 0 to 5", "(0-5)") are deleted. See the
package docstring (alpagasus.parsing) for what is read.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator

from alpagasus.parsing.labels import rewrite_pair_labels
from alpagasus.parsing.languages import rewrite_languages, wide_to_ascii
from alpagasus.parsing.numbers import NUM as _NUM
from alpagasus.parsing.numbers import NUMFORM as _NUMFORM
from alpagasus.parsing.numbers import SP as _SP
from alpagasus.parsing.numbers import clean_end as _clean_end
from alpagasus.parsing.text import MappedText, Replacement
from alpagasus.parsing.words import rewrite_number_words

Span = tuple[int, int]  # character offsets in the reply: reply[start:end] is the score

# --- patterns that name the words they need ------------------------------------------------

_F = re.IGNORECASE | re.MULTILINE


class Rx:
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
    Rx("scale range", rf"\b(?:scale|range)\b{_SP}(?:of|from|between)?{_SP}\(?{_SP}"
        rf"\d+(?:\.\d+)?{_SP}(?:-|–|—|to|through|and){_SP}\d+(?:\.\d+)?{_SP}\)?",
        re.I, anchored=False),
    # "on a 0-5 scale", "a 1 to 10 scale"
    Rx("scale", rf"(?<![\w.]){_SCALE_NUM}{_SP}(?:-|–|—|to){_SP}{_SCALE_TOP}{_SP}"
        rf"(?:-?{_SP}point{_SP})?\bscale\b", re.I, anchored=False),
    # "5-point scale", "ten-point scale"
    Rx("point", r"\b(?:\d+|five|ten|hundred)[ -]?point\b(?:[ \t]+scale\b)?", re.I,
        anchored=False),
    # "maximum of 5", "max 5", "highest possible score of 5"
    Rx("max highest", rf"\b(?:max(?:imum)?|highest(?:{_SP}possible)?)\b{_SP}"
        rf"(?:score|rating)?{_SP}(?:of|is|:|=)?{_SP}{_NUM}", re.I, anchored=False),
    # bare "0-5", "1 to 10", "(0–10)": the scales judges name. The digit comes first so
    # that the regex engine can skip to candidate positions.
    Rx("- – — to", rf"[01](?<![\w.\-/][01])(?<!assistant [01])(?:\.0)?{_SP}(?:-|–|—|to){_SP}{_SCALE_TOP}"
        rf"(?![\w.%]|/\d)", re.I, anchored=False),
]
# "out of 5" / "/10" is a score form after a number ("4 out of 5") and a scale mention
# otherwise ("Score (out of 5): 4", "Scores (/10): 8 7").
_OUT_OF = Rx("out /", rf"\(?{_SP}(?:\bout{_SP}of|/){_SP}\d+(?:\.\d+)?(?![\w.%]|\.\d){_SP}\)?",
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


def normalize(reply: str, kind: str = "rating") -> MappedText:
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
    return _drop_scale_mentions(text, text.lower())


class Line(str):
    """A stripped line of the normalized text; ``at``: where it starts in that text."""

    at: int


def split_lines(text: str) -> list[Line]:
    lines, pos = [], 0
    for raw in text.split("\n"):
        stripped = raw.strip()
        if stripped:
            line = Line(stripped)
            line.at = pos + len(raw) - len(raw.lstrip())
            lines.append(line)
        pos += len(raw) + 1
    return lines


def lead_index(lines: list[str], preamble: int = 2) -> int | None:
    """The first line that holds a digit, after at most ``preamble`` lines without one
    ("Here is my evaluation:")."""
    for i, line in enumerate(lines[:preamble + 1]):
        if re.search(r"\d", line):
            return i
    return None


def in_range(value: float, low: float, high: float) -> bool:
    return low <= value <= high


# --- shared by both readers ----------------------------------------------------------------

SUFFIX = rf"{_SP}(?:points?|stars?)?{_SP}[.!]?{_SP}"
BARE_LINE = re.compile(rf"[\[(\"']?{_NUMFORM}[\])\"']?{SUFFIX}", re.I)


def matches(patterns: Iterable[Rx], text: str, low: str) -> Iterator[re.Match]:
    for pattern in patterns:
        for m in pattern.finditer(text, low):
            if _clean_end(text, m.end()):
                yield m

