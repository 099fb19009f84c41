"""Replies that state a score and then revise it ("Score: 4 ... On reflection, 3").

A revision marker after a first score means the judge changed its mind. Whether the last
score counts is a policy (``judge.revision_policy``): by default such a reply is unparsed
unless every score it states is the same; under ``final`` the score after the last marker
counts. The first score is never kept silently.
"""

from __future__ import annotations

import re

from alpagasus.parsing_numbers import NUMFORM, clean_end

REVISION_POLICIES = ("unparsed", "final")

_VERB = (r"(?:revise|revised|revising|adjust|adjusted|adjusting|lower|lowered|lowering|raise"
         r"|raised|raising|change|changed|changing|update|updated|updating|correct|corrected"
         r"|correcting|amend|amended|bump|bumped|bumping|downgrade|downgraded|downgrading"
         r"|upgrade|upgraded|upgrading|reduce|reduced|reducing|increase|increased|increasing"
         r"|modify|modified|modifying)")
_MARKER = re.compile(
    r"\b(?:on|upon|after)[ \t]+(?:further[ \t]+|second[ \t]+|more[ \t]+|closer[ \t]+"
    r"|careful[ \t]+)?(?:reflection|consideration|thought|thoughts|reconsideration|inspection"
    r"|review)\b"
    r"|\bsecond[ \t]+thoughts?\b|\bre-?consider(?:ing|ed|ation)?\b|\bre-?evaluat(?:e|ed|ing|ion)\b"
    rf"|\b{_VERB}[ \t]+(?:(?:my|the|this|that|its)[ \t]+)?(?:(?:initial|original|previous"
    r"|earlier|first)[ \t]+)?(?:score|rating|grade)\b"
    rf"|\b{_VERB}[ \t]+(?:it|this)[ \t]+(?:to|down|up)\b"
    r"|\b(?:revised|adjusted|updated|corrected|amended|new|changed)[ \t]+(?:score|rating|grade)\b"
    r"|\bcorrection[ \t]*:|\bscratch[ \t]+that\b|\bI[ \t]+take[ \t]+(?:that|it)[ \t]+back\b"
    r"|\bI[ \t]+stand[ \t]+corrected\b|\bI[ \t]+was[ \t]+too[ \t]+(?:harsh|generous|lenient"
    r"|strict)\b|(?:^|[.!?][ \t]+)(?:wait|hmm+)\b[,.!:]?"
    r"|\bactually,?[ \t]+(?=I\b|I'|let\b|my[ \t]+score|the[ \t]+score|it[ \t]+should|an?[ \t]+\d|\d)",
    re.IGNORECASE | re.MULTILINE)
_SENTENCE_END = re.compile(r"\.(?!\d)|[!?;\n]")
_NUMBER = re.compile(NUMFORM, re.IGNORECASE)


def revision_markers(text: str) -> list[tuple[int, int]]:
    """Where the reply says it changes its score (start, end of each marker)."""
    return [m.span() for m in _MARKER.finditer(text)]


def revised_numbers(text: str, start: int) -> list[re.Match]:
    """Numbers that stand clean in the sentence from ``start`` (a marker's end): "On
    reflection, 3.", "I'd lower it to 3.5" (group 1 the value, group 2 its scale)."""
    end = _SENTENCE_END.search(text, start)
    stop = end.start() if end else len(text)
    return [m for m in _NUMBER.finditer(text, start, stop) if clean_end(text, m.end())]
