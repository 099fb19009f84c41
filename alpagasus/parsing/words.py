"""Scores written as words: "four", "Four point five", "four and a half", "4 and a half",
"eight out of ten", rewritten as digits so the parser reads them like any other number.

"one" is also a pronoun ("this one", "the best one"), so it becomes 1 only where a score
stands: after a label or a scoring phrase ("Score: one", "a score of one", "I'd rate it
one"), or with a fraction or a scale ("one and a half", "one out of five").
"""

from __future__ import annotations

import re

from alpagasus.parsing.text import MappedText, Replacement

_UNITS = {"zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
          "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10"}
_WORD = "|".join(_UNITS)
_DIGIT_WORD = "|".join(w for w in _UNITS if w != "ten")
_GAP = r"(?:[ \t]+|[ \t]*-[ \t]*)"
_NUMBER_WORDS = re.compile(
    rf"(?<![\w-])(?:(?P<word>{_WORD})|(?P<digits>\d+)(?=[ \t]+and[ \t]+(?:a|one)[ \t]+half\b))"
    rf"(?:(?P<point>[ \t]+point[ \t]+(?P<decimal>{_DIGIT_WORD}))"
    rf"|(?P<half>{_GAP}and{_GAP}(?:a|one){_GAP}half))?"
    rf"(?![\w]|-[a-z])")  # matched in the lowered text
# Where a bare "one" is a score: right after a label or a scoring phrase, or before a scale.
_ONE_BEFORE = re.compile(
    r"(?:^[ \t]*|[:=]|\b(?:score|rating|grade)[ \t]+(?:of|is|would[ \t]+be)|\b(?:rate|rated|give|assign"
    r"|deserves?|earns?|merits?|receives?)[ \t]+(?:(?:it|this|this[ \t]+response|the"
    r"[ \t]+response)[ \t]+)?(?:(?:a|an|as)[ \t]+)?(?:(?:score|rating)[ \t]+of[ \t]+)?)[ \t]*$",
    re.IGNORECASE | re.MULTILINE)
_ONE_AFTER = re.compile(r"[ \t]*(?:/[ \t]*\d|out[ \t]+of\b)", re.IGNORECASE)
_ONE_ENDS = re.compile(r"[ \t]*(?:$|[.,;!)\n])")
_PRONOUN_BEFORE = re.compile(r"\b(?:this|that|the|each|which|any|every|no|other|another|only"
                             r"|best|worst|a|an|first|second|last|one)[ \t]+$", re.IGNORECASE)


def rewrite_number_words(text: MappedText) -> MappedText:
    def digits(m: re.Match) -> Replacement:
        word = m.group("word") or ""
        if word == "one" and not (m.group("point") or m.group("half")):
            before = text.text[max(0, m.start() - 40):m.start()]
            scale = _ONE_AFTER.match(text.text, m.end())
            scored = _ONE_BEFORE.search(before) and _ONE_ENDS.match(text.text, m.end()) \
                and not _PRONOUN_BEFORE.search(before)
            if not (scale or scored):
                return [m.span()]
        whole = _UNITS[word] if word else m.group("digits")
        if m.group("point"):
            return f"{whole}.{_UNITS[m.group('decimal')]}"
        return f"{whole}.5" if m.group("half") else whole

    return text.sub(_NUMBER_WORDS, digits, on=text.lower())
