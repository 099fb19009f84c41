"""How the parser sees a number: where one stands on its own, and where a score may end.

Shared by every reading (alpagasus.parsing and the modules it builds on), so that a number
glued to a word, a range or a list is refused the same way everywhere.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

SP = r"[ \t]*"
# A number on its own: not glued to a word ("5th", "GPT-4", "v3"), not a decimal's tail, a
# fraction's denominator ("3/4"), an id ("#3"), money, a time ("10:30"), a percentage. The
# minus sign counts only when attached ("-1" is negative; "- 4.5" is a bullet).
NUM = (r"(?<![\w.$€£#/])(?<![A-Za-z]-)(?<!\d:)(-?\d+(?:\.\d+)?)"
       r"(?![\w%]|\.\d|:\d)")
# A score with its scale: "4/5", "4.5 / 5.0", "4 out of 5", "8 (out of 10)".
NUMFORM = NUM + (rf"(?:{SP}\(?{SP}(?:/|out{SP}of\b){SP}(\d+(?:\.\d+)?)(?![\w%]|\.\d)"
                   rf"(?:{SP}\))?)?")

# What may follow an anchored score: the end, punctuation, a connective or a score word.
# Not a noun ("3 items"), a range ("4-5", "4 to 5"), an alternative ("4 or 5") or a list
# of numbers ("8 and 7").
CLEAN_END = re.compile(
    r"(?:$|[ \t]*\n|[ \t]*[.,;:!?)\]|*\"'}]|[ \t]+(?:-|–|—)[ \t]|[ \t]*\("
    r"|[ \t]+(?:Assistant|The|This|That|It|Its|Both|Explanation|Reason|Justification|I)\b"
    r"|[ \t]+(?:points?|stars?)[ \t]*(?:$|\n|[.,;:!?)])"
    r"|[ \t]+(?:and|but|because|as|since|for|due|given|overall|rating|score|which|while"
    r"|whereas|though|although|based|in[ \t]+(?:terms|my|this|accuracy|helpfulness)"
    r"|on[ \t]+(?:accuracy|helpfulness|the[ \t]+(?:scale|accuracy|helpfulness)))\b)")
AMBIGUOUS_END = re.compile(
    rf"{SP}(?:-|–|—|to|or|and|&|,|/|vs\.?)?{SP}-?\d", re.IGNORECASE)


def clean_end(text: str, end: int) -> bool:
    rest = text[end:end + 40]
    if AMBIGUOUS_END.match(rest):
        return False
    if rest.startswith(")"):
        line = text[text.rfind("\n", 0, end) + 1:end]
        if line.count("(") <= line.count(")"):
            return False  # "1) ..." is a list marker, "(score: 4)" is not
    return bool(CLEAN_END.match(rest))


@dataclass(frozen=True)
class Reading:
    value: float
    scale: float | None  # the denominator written with it ("/5", "out of 10"), if any
    start: int = field(default=-1, compare=False)  # the number's place in the normalized text
    end: int = field(default=-1, compare=False)

    def key(self, high: float) -> tuple[float, bool]:
        """What two readings must share to agree: the value and whether it is on the scale."""
        return self.value, self.scale is None or self.scale == high


def reading(m: re.Match, group: int = 1, at: int = 0) -> Reading:
    scale = m.group(group + 1)
    return Reading(float(m.group(group)), float(scale) if scale is not None else None,
                    m.start(group) + at, m.end(group) + at)


def agreed(readings: Iterable[Reading], high: float) -> tuple[bool, tuple[float, bool] | None]:
    """(any reading, the one key they all share or None when they disagree)."""
    keys = {r.key(high) for r in readings}
    if not keys:
        return False, None
    return True, keys.pop() if len(keys) == 1 else None
