"""A reply's text as the parser rewrites it, with every character's place in the reply.

The parser normalizes a reply (drops markdown, scale mentions, quoted code; turns "four and
a half" into "4.5" and "Puntuación" into "Score") before it reads a number. ``MappedText``
keeps, for each character of the rewritten text, the slice of the original reply it came
from, so a score found in the rewritten text is reported at its place in the reply (its
``span``), for display and debugging.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

# What a substitution puts in place of a match: a string (its characters come from the whole
# match), or pieces: strings, and (start, end) slices of the text being rewritten that keep
# their own places ("4,5" -> "4" kept, "." new, "5" kept).
Replacement = str | Sequence[str | tuple[int, int]]


def lower(text: str) -> str:
    """``text.lower()`` with the same indices (a few characters lower to two)."""
    low = text.lower()
    if len(low) == len(text):
        return low
    return "".join(c.lower() if len(c.lower()) == 1 else c for c in text)


class MappedText:
    __slots__ = ("text", "starts", "ends", "size")

    def __init__(self, text: str, starts: list[int], ends: list[int], size: int):
        self.text = text
        self.starts = starts  # starts[i], ends[i]: the reply slice character i came from
        self.ends = ends
        self.size = size  # the reply's length

    @classmethod
    def of(cls, reply: str) -> MappedText:
        n = len(reply)
        return cls(reply, list(range(n)), list(range(1, n + 1)), n)

    def _at(self, i: int) -> int:
        return self.starts[i] if i < len(self.starts) else self.size

    def lower(self) -> str:
        """``text.lower()`` with the same indices (a few characters lower to two)."""
        return lower(self.text)

    def sub(self, pattern: re.Pattern, repl: str | Callable[[re.Match], Replacement],
            on: str | None = None) -> MappedText:
        """``pattern.sub`` that keeps the map; the text itself is left unchanged. ``on``:
        the text to match in, of the same length (``lower()``: a case-sensitive pattern
        scans several times faster than an IGNORECASE one)."""
        text, starts, ends = [], [], []
        last = 0
        for m in pattern.finditer(self.text if on is None else on):
            a, b = m.span()
            text.append(self.text[last:a])
            starts += self.starts[last:a]
            ends += self.ends[last:a]
            whole = (self._at(a), self.ends[b - 1] if b > a else self._at(a))
            out = repl(m) if callable(repl) else repl
            for piece in ((out,) if isinstance(out, str) else out):
                if isinstance(piece, str):
                    text.append(piece)
                    starts += [whole[0]] * len(piece)
                    ends += [whole[1]] * len(piece)
                else:
                    i, j = piece
                    text.append(self.text[i:j])
                    starts += self.starts[i:j]
                    ends += self.ends[i:j]
            last = b
        if not text:
            return self
        text.append(self.text[last:])
        starts += self.starts[last:]
        ends += self.ends[last:]
        return MappedText("".join(text), starts, ends, self.size)

    def translate(self, table: dict[int, str]) -> MappedText:
        """Replace single characters by single characters (full-width digits, colons)."""
        out = self.text.translate(table)
        assert len(out) == len(self.text)
        return MappedText(out, self.starts, self.ends, self.size)

    def span(self, start: int, end: int) -> tuple[int, int]:
        """The reply slice that text[start:end] came from."""
        if end <= start:
            return self._at(start), self._at(start)
        return self.starts[start], self.ends[end - 1]
