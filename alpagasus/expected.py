"""Expected scores: a judge's score read off its token probabilities, not only its text.

A judge that writes "4.5" might have written "4" or "5" nearly as often; the expected score
keeps that uncertainty: E = sum over the scores s it could have written of P(s) * s. It
breaks the ties of the paper's half-point grid and, averaged over both answer orders,
cancels a pairwise judge's position bias (docs/expected-scores.md).

Input: the reply's tokens, each with its log-probability and the server's top alternatives
(OpenAI's ``choices[0].logprobs.content[]`` with ``top_logprobs``, stored compactly by
``compact_logprobs``), and the score(s) the parser read from the reply text.

How one score's expectation is read (``expected_at``):

1. Locate the score in the text the tokens spell: the first number equal to the parsed
   score (a number right after "Assistant", "Response", ... is a label, skipped). The token
   holding its first digit is position k.
2. At k, every alternative that is a number (after the same leading text as the chosen
   token: " 4" and "4" are both the score 4) is a candidate score; "10" as one token is 10.
   Non-number tokens ("The", "**", "I") are not scores: their probability is left out and
   the rest renormalised, and the probability that was a score is kept as ``mass``.
3. The number continues along the generated path only: for the token the judge did write,
   its value is the expectation at the next position ("4" then "." then {"5", "0"}: 4.5 or
   4.0 by their probabilities; "1" then {"0", "\\n"} on the 1-10 scale: 10 or 1). An
   alternative the judge did not write counts at face value ("5" is 5: what would have
   followed it was never generated). At a continuation position every token counts; a
   token that does not continue the number ends it.
4. Values outside the scale (0-5 for ratings, 1-10 for pairs) are not scores.

Pure functions; no I/O.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# Bumped whenever a change here can change an expected score: it enters the rate and judge
# artifact keys, so stored replies are re-read, not re-bought.
EXPECTED_VERSION = 1

RATING_SCALE = (0.0, 5.0)
PAIR_SCALE = (1.0, 10.0)

# Positions kept with their top alternatives: those whose token, or one of the two before,
# holds a digit (where a score and its continuation can be). The rest keep token + logprob.
_KEEP_AFTER_DIGIT = 2

_NUMBER = re.compile(r"(?<![\d.])\d+(?:\.\d+)?")
_LABEL_BEFORE = re.compile(r"(?:assistant|response|answer|output|model|system)\s*#?\s*$", re.I)
_HEAD = re.compile(r"\d*(?:\.\d*)?")
_HEAD_AFTER_POINT = re.compile(r"\d*")

# One generated token: (text, logprob, [(alternative, logprob), ...]).
Token = tuple[str, float, list[tuple[str, float]]]


class LogprobsError(ValueError):
    """A reply's logprobs are not in the shape OpenAI documents."""


@dataclass(frozen=True)
class Expected:
    value: float | None  # None: no score candidate at the score's position
    mass: float  # probability the top list gave to score tokens at that position (0-1)


def openai_logprobs(choice: dict[str, Any]) -> list[Token] | None:
    """``choices[i].logprobs.content`` as tokens; None when the server sent none."""
    logprobs = choice.get("logprobs")
    if not isinstance(logprobs, dict) or not isinstance(logprobs.get("content"), list):
        return None
    tokens: list[Token] = []
    for n, entry in enumerate(logprobs["content"]):
        if not isinstance(entry, dict) or not isinstance(entry.get("token"), str):
            raise LogprobsError(f"logprobs.content[{n}] has no 'token' string")
        top = entry.get("top_logprobs") or []
        tokens.append((entry["token"], _logprob(entry.get("logprob")),
                       [(t["token"], _logprob(t.get("logprob"))) for t in top
                        if isinstance(t, dict) and isinstance(t.get("token"), str)]))
    return tokens


def _logprob(x: Any) -> float:
    return float(x) if isinstance(x, int | float) and not math.isnan(x) else -math.inf


def compact_logprobs(tokens: list[Token]) -> list[list[Any]]:
    """What the reply cache stores: every token with its logprob; the top alternatives only
    near digits (a 256-token reply with 20 alternatives each would be ~200 kB)."""
    has_digit = [any(c.isdigit() for c in t) for t, _, _ in tokens]
    out = []
    for i, (token, lp, top) in enumerate(tokens):
        near = any(has_digit[max(0, i - _KEEP_AFTER_DIGIT): i + 1])
        out.append([token, _finite(lp), [[t, _finite(p)] for t, p in top] if near else []])
    return out


def _finite(x: float) -> float | None:
    return None if math.isinf(x) else round(x, 6)


def from_stored(stored: Sequence[Sequence[Any]]) -> list[Token]:
    return [(str(t), _logprob(lp), [(str(a), _logprob(p)) for a, p in top])
            for t, lp, top in stored]


def locate(text: str, values: Sequence[float]) -> list[int] | None:
    """The character offset of each value in ``text``: its first occurrence as a number
    (not a label's number, not one already taken); a value seen only once serves both."""
    numbers = [m for m in _NUMBER.finditer(text)
               if not _LABEL_BEFORE.search(text[max(0, m.start() - 24):m.start()])]
    taken: list[int] = []
    for v in values:
        same = [m.start() for m in numbers if math.isclose(float(m.group()), v)]
        free = [s for s in same if s not in taken]
        if free:
            taken.append(free[0])
        elif same:
            taken.append(same[0])
        else:
            return None
    return taken


def _candidates(token: Token) -> dict[str, float]:
    text, lp, top = token
    probs: dict[str, float] = {}
    for t, p in top:
        probs[t] = max(probs.get(t, 0.0), math.exp(p))
    probs.setdefault(text, math.exp(lp))  # the written token, even when not in its top list
    return probs


def _as_number(text: str) -> float | None:
    text = text.rstrip(".")
    return float(text) if text and text != "." else None


def _expect(tokens: list[Token], j: int, so_far: str, prefix: str,
            scale: tuple[float, float]) -> Expected:
    """E[score] over the alternatives at position j of a number written ``so_far``."""
    low, high = scale
    written = tokens[j][0]
    total = weight = 0.0
    for token, p in _candidates(tokens[j]).items():
        if so_far == "":  # the score's first digit: only numbers after the same lead text
            lead = prefix.lstrip()
            t = token.lstrip()
            if not t.startswith(lead) or not t[len(lead):][:1].isdigit():
                continue
            rest = t[len(lead):]
        else:
            rest = token
        head = (_HEAD_AFTER_POINT if "." in so_far else _HEAD).match(rest).group()
        number = so_far + head
        if token == written and head and head == rest and j + 1 < len(tokens):
            value = _expect(tokens, j + 1, number, "", scale).value  # follow the path
        else:
            value = _as_number(number)
        if value is None or not low <= value <= high:
            continue
        total += p * value
        weight += p
    return Expected(total / weight if weight > 0 else None, min(weight, 1.0))


def expected_at(tokens: list[Token], char_offset: int, scale: tuple[float, float]) -> Expected:
    """The expected score whose first digit is at ``char_offset`` of the tokens' text."""
    start = 0
    for j, (token, _, _) in enumerate(tokens):
        end = start + len(token)
        if start <= char_offset < end:
            return _expect(tokens, j, "", token[:char_offset - start], scale)
        start = end
    return Expected(None, 0.0)


def expected_scores(tokens: list[Token] | None, values: Sequence[float] | None,
                    scale: tuple[float, float]) -> list[Expected] | None:
    """One Expected per parsed value (a rating: one; a pair: two); None when the reply has
    no logprobs, no parsed score, or the score cannot be found in the tokens."""
    if not tokens or not values:
        return None
    offsets = locate("".join(t for t, _, _ in tokens), values)
    if offsets is None:
        return None
    return [expected_at(tokens, o, scale) for o in offsets]
