"""The pairwise prompt's two answers under the names judges give them, rewritten as "Assistant
1" and "Assistant 2" (the prompt's own names) before the pair is read.

- letters and other nouns: "Assistant A", "Response B", "Answer 1", "Output (A)", "Model 2",
  "Respuesta 1", "助手1";
- ordinals: "the first response", "the second answer", "the former"/"the latter", and a bare
  "the first"/"the second" where a score follows ("the first gets 8", "give the second a 9",
  "First: 8");
- one score for both in one phrase: "each receives 7/10", "both get 8", "8 for both", "8/10
  each", "Both: 8", "I'd give them both an 8" become "both receive N".

Letters count only as capitals ("response a user wants" is no label), and "the first"
followed by a noun ("the first 3 steps") is left alone.
"""

from __future__ import annotations

import re

from alpagasus.parsing.numbers import NUMFORM
from alpagasus.parsing.text import MappedText, Replacement

# Matched in the lowered text (fast); a letter counts only where the reply capitalizes it.
_NOUN = (r"(?:assistant|response|answer|model|output|candidate|option|submission|reply"
         r"|asistente|assistente|assistent|respuesta|réponse|reponse|antwort|resposta|risposta"
         r"|ассистент|ответ)")
_NAMED = re.compile(
    rf"(?<![\w-]){_NOUN}[ \t_#-]*(?:(?P<n>[12])|(?P<paren>\()?(?P<l>[ab])(?(paren)\)))"
    r"(?![\w]|\.\d)"
    r"|(?:助手|回答|答案|アシスタント|응답|어시스턴트)[ \t]*(?:(?P<cn>[12])|(?P<cl>[ab]))(?!\w)")
_ORDINAL = r"(?P<o>first|1st|former|second|2nd|latter)"
_ORDINAL_NOUN = re.compile(
    rf"\b(?:the[ \t]+)?{_ORDINAL}[ \t]+(?:assistant|response|answer|one|model|output|reply"
    r"|submission|candidate)\b", re.IGNORECASE)
_SCORED_AFTER = (r"receives|received|gets|got|earns|earned|deserves|scores|scored|merits"
                 r"|(?:is|was)[ \t]+(?:rated|given|awarded|scored)|should")
_BARE_ORDINAL = re.compile(
    rf"\bthe[ \t]+{_ORDINAL}(?=['’]s\b|[ \t]*[:=(]|[ \t]*[-–—][ \t]*\d|[ \t]+(?:{_SCORED_AFTER})\b"
    r"|[ \t]+(?:(?:a|an)[ \t]+)?(?:score[ \t]+of[ \t]+)?\d)"
    rf"|^[ \t]*{_ORDINAL.replace('?P<o>', '?P<lo>')}(?=[ \t]*[:=][ \t]*\d)",
    re.IGNORECASE | re.MULTILINE)
_FIRST = {"1", "a", "first", "1st", "former"}

_VERBS_BOTH = (r"receive|get|deserve|earn|score|merit|(?:are|were)[ \t]+(?:rated|given|awarded"
               r"|scored)|should[ \t]+(?:get|receive|be[ \t]+(?:rated|given|awarded))")
_VERBS_EACH = (r"receives|gets|deserves|earns|scores|merits|(?:is|was)[ \t]+(?:rated|given"
               r"|awarded|scored)|should[ \t]+(?:get|receive|be[ \t]+(?:rated|given|awarded))")
_BOTH_NOUN = r"(?:[ \t]+(?:assistants|responses|answers|models|outputs|of[ \t]+them))?"
_EACH_NOUN = r"(?:[ \t]+(?:assistant|response|answer|model|output|one|of[ \t]+them))?"
_BOTH_VERB = re.compile(
    rf"\b(?:both{_BOTH_NOUN}[ \t]+(?:{_VERBS_BOTH})|each{_EACH_NOUN}[ \t]+(?:{_VERBS_EACH}))"
    r"(?=[ \t])", re.IGNORECASE)
_BOTH_LABEL = re.compile(rf"\bboth{_BOTH_NOUN}[ \t]*[:=][ \t]*(?=\d)", re.IGNORECASE)
_GIVE_BOTH = re.compile(
    r"\b(?:give|giving|rate|rating|assign|assigning|award|awarding|score|scoring)[ \t]+"
    r"(?:them[ \t]+both|both[ \t]+(?:responses|answers|models|outputs|of[ \t]+them)"
    r"|each[ \t]+(?:of[ \t]+them|assistant|response|answer))\b", re.IGNORECASE)
# "8 for both", "a score of 8/10 for each", "8 each" where a score stands: a line's start,
# after a colon, or after a scoring verb.
_FOR_BOTH = re.compile(
    r"(?P<pre>^[ \t]*|[:=][ \t]*|\b(?:give|giving|rate|rating|assign|award|score|scoring|get"
    r"|gets|receive|receives|deserve|deserves|earn|earns)[ \t]+(?:(?:them|it)[ \t]+)?)"
    rf"(?:(?:a|an)[ \t]+)?(?:score[ \t]+of[ \t]+)?(?P<num>{NUMFORM})[ \t]+"
    rf"(?:for[ \t]+(?:both|each)|each)(?:[ \t]+(?:assistants?|responses?|answers?|of[ \t]+them))?"
    r"(?=[ \t]*(?:$|[.,;:!)]))", re.IGNORECASE | re.MULTILINE)


def _side(name: str) -> str:
    return "Assistant 1" if name.lower() in _FIRST else "Assistant 2"


def rewrite_pair_labels(text: MappedText) -> MappedText:
    low = text.text.lower()

    def named(m: re.Match) -> Replacement:
        if m.group("n") and m.group(0).startswith("assistant"):
            return [m.span()]  # already the prompt's name
        letter = m.group("l") or m.group("cl")
        if letter and not text.text[m.start("l") if m.group("l") else m.start("cl")].isupper():
            return [m.span()]  # "the response a user wants"
        side = m.group("n") or letter or m.group("cn")
        return (" " if m.group("cn") or m.group("cl") else "") + _side(side)

    text = text.sub(_NAMED, named, on=text.lower())
    if "first" in low or "second" in low or "former" in low or "latter" in low \
            or "1st" in low or "2nd" in low:
        text = text.sub(_ORDINAL_NOUN, lambda m: _side(m.group("o")))
        text = text.sub(_BARE_ORDINAL, lambda m: _side(m.group("o") or m.group("lo")))
    if "both" in low or "each" in low:
        text = text.sub(_GIVE_BOTH, "rate both assistants")
        text = text.sub(_BOTH_VERB, "both receive")
        text = text.sub(_BOTH_LABEL, "both receive ")
        text = text.sub(_FOR_BOTH, lambda m: [m.span("pre"), "both receive ", m.span("num")])
    return text
