"""Parsing judge replies into scores. Pure functions; parsing happens when replies are read.

An unparseable reply is reported as such (status "unparsed"), never turned into a score.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# A sign only when attached ("-1" is out of range; "- 4.5" is a bullet and 4.5).
_NUMBER = r"(-?\d+(?:\.\d+)?)"
# Bumped whenever a change here can change a score: it enters the rate/judge artifact keys,
# so `rate.reparse=true` after a parser change builds a new artifact from the stored replies.
PARSER_VERSION = 3


@dataclass(frozen=True)
class ParsedScore:
    score: float | None
    status: str  # ok | unparsed | out_of_range


def parse_rating(reply: str, low: float = 0.0, high: float = 5.0) -> ParsedScore:
    """Read a 0-5 rating from a judge reply.

    Accepts a bare number on the first line, "Score: 4.5", "4.5/5", "4.5 out of 5",
    "**4**", and text before the number on the first non-empty line; falls back to an
    explicit "score: N" anywhere in the reply.
    """
    text = reply.strip()
    if not text:
        return ParsedScore(None, "unparsed")
    first = next((ln for ln in text.splitlines() if ln.strip()), "")
    candidates = [
        rf"score\s*(?:is|of|:|=)?\s*\**\s*{_NUMBER}",
        rf"{_NUMBER}\s*(?:/|out of)\s*5(?:\.0)?\b",
        rf"^\W*?{_NUMBER}\W*$",
        rf"\*\*\s*{_NUMBER}\s*\*\*",
        rf"(?<![\w.-]){_NUMBER}\b",
    ]
    for pattern in candidates:
        m = re.search(pattern, first, flags=re.IGNORECASE)
        if m:
            return _in_range(float(m.group(1)), low, high)
    m = re.search(rf"score\s*(?:is|of|:|=)\s*\**\s*{_NUMBER}", text, flags=re.IGNORECASE)
    if m:
        return _in_range(float(m.group(1)), low, high)
    return ParsedScore(None, "unparsed")


def _in_range(value: float, low: float, high: float) -> ParsedScore:
    if low <= value <= high:
        return ParsedScore(value, "ok")
    return ParsedScore(None, "out_of_range")


@dataclass(frozen=True)
class ParsedPair:
    scores: tuple[float, float] | None
    status: str


def parse_pair(reply: str, low: float = 1.0, high: float = 10.0) -> ParsedPair:
    """Read the two scores of the pairwise prompt's first line ("8 7", "8, 7", "8/10 7/10")."""
    first = next((ln for ln in reply.strip().splitlines() if ln.strip()), "")
    numbers = [float(n) for n in re.findall(r"\d+(?:\.\d+)?", re.sub(r"/\s*10", " ", first))]
    if len(numbers) != 2:
        return ParsedPair(None, "unparsed")
    if not all(low <= n <= high for n in numbers):
        return ParsedPair(None, "out_of_range")
    return ParsedPair((numbers[0], numbers[1]), "ok")
