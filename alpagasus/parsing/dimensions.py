"""Replies that score several dimensions ("Helpfulness: 3, Accuracy: 5").

The paper's rating prompt asks for one criterion (accuracy, or helpfulness), so the score
is the one labelled with that criterion; a number labelled with another dimension, or said
to be "for"/"in terms of" another one, is never that score. Only nouns name a dimension:
"the response is accurate" names none.
"""

from __future__ import annotations

import re

from alpagasus.parsing.numbers import NUMFORM, Reading, clean_end, reading

# dimension -> how judges write it (English, and the paper's two criteria in a few languages)
DIMENSIONS: dict[str, tuple[str, ...]] = {
    "accuracy": ("accuracy", "factual accuracy", "precisión", "exactitud", "précision",
                 "exactitude", "genauigkeit", "accuratezza", "precisão", "准确性", "準確性",
                 "正確性", "正确性", "정확성", "точность"),
    "helpfulness": ("helpfulness", "utilidad", "utilité", "hilfsbereitschaft", "nützlichkeit",
                    "utilità", "utilidade", "有用性", "帮助性", "有益性", "유용성", "полезность"),
    "relevance": ("relevance", "relevancy"),
    "clarity": ("clarity",),
    "completeness": ("completeness", "thoroughness"),
    "coherence": ("coherence", "coherency"),
    "correctness": ("correctness",),
    "conciseness": ("conciseness", "brevity"),
    "detail": ("level of detail", "detail", "depth"),
    "creativity": ("creativity", "originality"),
    "harmlessness": ("harmlessness", "safety"),
    "honesty": ("honesty", "truthfulness"),
    "fluency": ("fluency", "readability", "grammar"),
    "factuality": ("factuality",),
    "usefulness": ("usefulness", "informativeness"),
    "instruction following": ("instruction following", "instruction-following",
                              "adherence to instructions", "instruction adherence"),
    "organization": ("organization", "structure"),
    "style": ("style", "tone"),
    "consistency": ("consistency",),
    "specificity": ("specificity",),
    "engagement": ("engagement",),
}
_NAMES = {name.lower(): dim for dim, names in DIMENSIONS.items() for name in names}
_NAME = "|".join(re.escape(n).replace(r"\ ", r"[ \t]+")
                 for n in sorted(_NAMES, key=len, reverse=True))
# "Accuracy: 5", "Helpfulness score - 4/5", "overall accuracy is 4", "Accuracy (4/5)"
_LABELLED = re.compile(
    rf"(?<![^\W\d_])(?:(?:overall|final)[ \t]+)?(?P<dim>{_NAME})(?![^\W\d_])"
    rf"(?:[ \t]+(?:score|rating|grade))?[ \t]*(?:\((?=[ \t]*\d)|(?:\([^()\n]{{0,12}}\))?"
    rf"[ \t]*(?:[:=]|[-–—](?=[ \t]*\d)|\bis\b))[ \t]*(?:(?:a|an)[ \t]+)?{NUMFORM}",
    re.IGNORECASE)
NUMBER_GROUP = 2  # the value's group in a labelled match (the scale's is the next)
# A prose score said to be for a dimension: "a 4 for accuracy", "4/5 in terms of clarity",
# "In terms of helpfulness, I'd give it a 3" (the dimension opens the clause).
_SCALE_TAIL = r"(?:[ \t]*\(?[ \t]*(?:/|out[ \t]+of)[ \t]*\d+(?:\.\d+)?[ \t]*\)?)?"
_FOR = (r"(?:for|on|in(?:[ \t]+terms[ \t]+of)?|regarding|concerning|as[ \t]+(?:for|to)"
        r"|with[ \t]+respect[ \t]+to|when[ \t]+it[ \t]+comes[ \t]+to)")
_FOR_AFTER = re.compile(rf"{_SCALE_TAIL}[ \t]+{_FOR}[ \t]+(?:(?:its|the|their|overall)[ \t]+)?"
                        rf"(?P<dim>{_NAME})(?![^\W\d_])", re.IGNORECASE)
_FOR_BEFORE = re.compile(rf"(?:\b{_FOR}[ \t]+(?:(?:its|the|their|overall)[ \t]+)?"
                         rf"|(?:^|(?<=[.;!?]))[ \t]*)(?P<dim>{_NAME})(?![^\W\d_])(?:[ \t]+(?:score|rating))?"
                         rf"(?:[ \t]*[:,=-]|[ \t]+is|[ \t]+wise)?", re.IGNORECASE | re.MULTILINE)
_CLAUSE_END = re.compile(r"[.;!?\n](?!\d)")


_ANY_NAME = re.compile(_NAME.lower())  # matched in lowered text: a fast first test


def names_a_dimension(text: str) -> bool:
    return _ANY_NAME.search(text.lower()) is not None


def dimension_readings(text: str) -> list[tuple[str, re.Match]]:
    """Every number labelled with a dimension: (dimension, match; see NUMBER_GROUP)."""
    found: list[tuple[str, re.Match]] = []
    if not names_a_dimension(text):
        return found
    for m in _LABELLED.finditer(text):
        if clean_end(text, m.end()):
            found.append((_NAMES[re.sub(r"\s+", " ", m.group("dim").lower())], m))
    return found


def dimension_near(text: str, start: int, end: int) -> str | None:
    """The dimension a number in prose is said to score, if its clause names one."""
    if m := _FOR_AFTER.match(text, end):
        return _NAMES[re.sub(r"\s+", " ", m.group("dim").lower())]
    clause = max((m.end() for m in _CLAUSE_END.finditer(text, max(0, start - 160), start)),
                 default=max(0, start - 160))
    named = None
    for m in _FOR_BEFORE.finditer(text, clause, start):
        named = _NAMES[re.sub(r"\s+", " ", m.group("dim").lower())]
    return named


def for_dimension(text: str, tiers: list[list[Reading]], dimension: str
                   ) -> list[list[Reading]] | None:
    """The tiers without the readings of other dimensions than the asked one; the asked
    one's labels join the top tier. None when several dimensions are scored and the asked
    one is not among them."""
    labelled = dimension_readings(text)
    others = {m.start(NUMBER_GROUP) for dim, m in labelled if dim != dimension}
    tiers = [[r for r in tier if r.start not in others and
              dimension_near(text, r.start, r.end) in (None, dimension)] for tier in tiers]
    if len({dim for dim, _ in labelled}) >= 2:
        asked = [reading(m, NUMBER_GROUP) for dim, m in labelled if dim == dimension]
        if not asked:
            return None
        tiers[0] = tiers[0] + asked
    return tiers
