"""How the parser sees a number: where one stands on its own, and where a score may end.

Shared by every reading (alpagasus.parsing and the modules it builds on), so that a number
glued to a word, a range or a list is refused the same way everywhere.
"""

from __future__ import annotations

import re

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
