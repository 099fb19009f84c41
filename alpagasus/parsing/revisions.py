"""Replies that state a score and then revise it ("Score: 4 ... On reflection, 3").

A revision marker after a first score means the judge changed its mind. Whether the last
score counts is a policy (``judge.revision_policy``): by default such a reply is unparsed
unless every score it states is the same; under ``final`` the score after the last marker
counts. The first score is never kept silently.
"""

from __future__ import annotations

import re

from alpagasus.parsing.numbers import NUMFORM, Reading, clean_end, reading
from alpagasus.parsing.text import lower

_VERBS = ("revise", "revised", "revising", "adjust", "adjusted", "adjusting", "lower", "lowered",
          "lowering", "raise", "raised", "raising", "change", "changed", "changing", "update",
          "updated", "updating", "correct", "corrected", "correcting", "amend", "amended",
          "bump", "bumped", "bumping", "downgrade", "downgraded", "downgrading", "upgrade",
          "upgraded", "upgrading", "reduce", "reduced", "reducing", "increase", "increased",
          "increasing", "modify", "modified", "modifying", "new")
_F = re.IGNORECASE | re.MULTILINE
_SCORE_OBJECT = re.compile(
    r"(?:" + "|".join(_VERBS) + r")[ \t]+(?:(?:(?:my|the|this|that|its)[ \t]+)?(?:(?:initial|original|previous"
    r"|earlier|first)[ \t]+)?(?:score|rating|grade)\b|(?:it|this)[ \t]+(?:to|down|up)\b)", _F)
# Each marker is found from a keyword (a substring test, then a match there): parsing 52k
# replies must stay fast, and most hold none of these words.
_KEYWORDS: list[tuple[str, re.Pattern, re.Pattern | None]] = [
    (word, re.compile(r"(?:reflection|consideration|reconsideration|thoughts?|inspection"
                      r"|review)\b", _F),
     re.compile(r"\b(?:on|upon|after)[ \t]+(?:(?:further|second|more|closer|careful)[ \t]+)?$"
                r"|\bsecond[ \t]+$", _F))
    for word in ("reflection", "consideration", "thought", "inspection", "review")
] + [
    (word, re.compile(r"re-?(?:consider|evaluat)", _F), None)
    for word in ("reconsider", "re-consider", "reevaluat", "re-evaluat")
] + [
    (verb, _SCORE_OBJECT, None) for verb in _VERBS
] + [
    ("correction", re.compile(r"correction[ \t]*:", _F), None),
    ("scratch", re.compile(r"scratch[ \t]+that\b", _F), None),
    ("take", re.compile(r"take[ \t]+(?:that|it)[ \t]+back\b", _F), re.compile(r"\bI[ \t]+$", _F)),
    ("stand", re.compile(r"stand[ \t]+corrected\b", _F), None),
    ("too", re.compile(r"too[ \t]+(?:harsh|generous|lenient|strict)\b", _F),
     re.compile(r"\b(?:I[ \t]+was|I'?ve[ \t]+been|that[ \t]+(?:was|is|seems))[ \t]+$", _F)),
    ("wait", re.compile(r"wait\b", _F), re.compile(r"(?:^|[.!?][ \t]+)$", _F)),
    ("hmm", re.compile(r"hmm+\b", _F), re.compile(r"(?:^|[.!?][ \t]+)$", _F)),
    ("actually", re.compile(r"actually,?[ \t]+(?=I\b|I'|let\b|my[ \t]+score|the[ \t]+score"
                            r"|it[ \t]+should|an?[ \t]+\d|\d)", _F), None),
]
_SENTENCE_END = re.compile(r"\.(?!\d)|[!?;\n]")
_NUMBER = re.compile(NUMFORM, re.IGNORECASE)


_BY_KEYWORD = {word: (pattern, before) for word, pattern, before in _KEYWORDS}
_ANY_KEYWORD = re.compile("|".join(sorted(_BY_KEYWORD, key=len, reverse=True)))


def revision_markers(text: str, low: str | None = None) -> list[tuple[int, int]]:
    """Where the reply says it changes its score (start, end of each marker), in order;
    ``low``: the text lowered index for index (``text.lower``), when the caller has it."""
    low = lower(text) if low is None else low
    found = []
    for k in _ANY_KEYWORD.finditer(low):  # case-sensitive in the lowered text: fast
        i = k.start()
        pattern, before = _BY_KEYWORD[k.group()]
        if (i == 0 or not low[i - 1].isalpha()) and (m := pattern.match(text, i)) and \
                (before is None or before.search(text[max(0, i - 30):i])):
            found.append(m.span())
    return found


def revised_numbers(text: str, start: int) -> list[re.Match]:
    """Numbers that stand clean in the sentence from ``start`` (a marker's end): "On
    reflection, 3.", "I'd lower it to 3.5" (group 1 the value, group 2 its scale)."""
    end = _SENTENCE_END.search(text, start)
    stop = end.start() if end else len(text)
    return [m for m in _NUMBER.finditer(text, start, stop) if clean_end(text, m.end())]


def revised(text: str, readings: list[Reading], markers: list[tuple[int, int]]
             ) -> tuple[list[Reading], list[Reading]] | None:
    """(the readings before a revision, those after it), or None when the reply revises
    nothing. After it: the readings past the last marker and the numbers in its sentence."""
    first = min((r.start for r in readings), default=None)
    markers = [mk for mk in markers if first is not None and mk[0] > first]
    if not markers:
        return None
    last = markers[-1][1]
    after = [r for r in readings if r.start >= last]
    after += [reading(m) for m in revised_numbers(text, last)]
    return [r for r in readings if r.start < markers[0][0]], after


def pair_revised(text: str, labels: dict[int, list[Reading]], tiers: list[list[tuple[Reading, Reading]]],
                  markers: list[tuple[int, int]], revision: str
                  ) -> tuple[dict[int, list[Reading]], list[list[tuple[Reading, Reading]]]] | None:
    """The labels and tiers to read after a revision (parsing_revisions), or None when the
    reply is unparsed: it revises to nothing readable. Under ``final`` a side labelled
    after the last marker takes that label, a pair declared after it takes both sides."""
    every = [r for rs in labels.values() for r in rs] + [a for tier in tiers for a, _ in tier]
    first = min((r.start for r in every), default=None)
    markers = [mk for mk in markers if first is not None and mk[0] > first]
    if not markers:
        return labels, tiers
    cut_before, cut_after = markers[0][0], markers[-1][1]
    late = {side: [r for r in rs if r.start >= cut_after] for side, rs in labels.items()}
    late_pairs = [p for tier in tiers for p in tier if p[0].start >= cut_after]
    if not (late[1] or late[2] or late_pairs):
        return None
    if revision != "final":
        return labels, tiers  # every reading must agree, as without a revision
    if late_pairs:
        return late, [late_pairs]
    early = {side: [r for r in rs if r.start < cut_before] for side, rs in labels.items()}
    return ({side: late[side] or early[side] for side in labels},
            [[p for p in tier if p[0].start < cut_before] for tier in tiers])
