"""Score labels in other languages, rewritten into the English forms the parser reads.

A judge may answer in the item's language: "Puntuación: 4,5", "Note : 4,5/5", "Bewertung:
4,5 von 5", "评分：4.5分", "評価：4". A label is rewritten only where a number follows it and
ends the clause ("Nota: 3 de los ejemplos ..." is a remark, not a score), so the rewrite can
only add the readings an English "Score: 4.5" would give. The decimal comma ("4,5") is read
as a decimal only right after such a label, and only for a single rating (a pair's "8,7" is
two scores).
"""

from __future__ import annotations

import re

from alpagasus.parsing.text import MappedText, Replacement

# Full-width forms (CJK input methods) -> ASCII: digits, colon, point, slash, brackets, space.
_WIDE = {0xFF10 + d: str(d) for d in range(10)}
_WIDE.update({0xFF0E: ".", 0xFF0F: "/", 0xFF08: "(", 0xFF09: ")", 0xFF0C: ",",
              0x3000: " ", 0xFF1D: "="})

# Labels of a final or overall score, then of a score, per language (es fr de it pt nl ru pl
# tr zh ja ko); the longest first, so "puntuación final" is not read as "puntuación".
_FINAL_LABELS = [
    "puntuación final", "puntuacion final", "calificación final", "calificacion final",
    "valoración final", "puntuación global", "puntuación total", "calificación global",
    "note finale", "note globale", "évaluation finale", "evaluation finale", "note générale",
    "gesamtbewertung", "endbewertung", "gesamtnote", "endnote", "gesamtpunktzahl",
    "punteggio finale", "punteggio complessivo", "valutazione finale", "voto finale",
    "valutazione complessiva", "pontuação final", "pontuacao final", "avaliação final",
    "nota final", "eindscore", "eindcijfer", "totaalscore", "итоговая оценка",
    "общая оценка", "финальная оценка", "ocena końcowa", "genel puan",
    "最终评分", "最终得分", "最终分数", "综合评分", "总体评分", "总分",
    "総合評価", "最終評価", "最終スコア", "総合スコア", "総合点", "최종 점수", "종합 점수", "총점",
]
_SCORE_LABELS = [
    "puntuación", "puntuacion", "puntaje", "calificación", "calificacion", "valoración",
    "valoracion", "nota", "note", "évaluation", "bewertung", "punktzahl", "wertung",
    "punteggio", "valutazione", "voto", "pontuação", "pontuacao", "avaliação", "avaliacao",
    "beoordeling", "cijfer", "оценка", "балл", "ocena", "puan",
    "评分", "分数", "得分", "打分", "评价", "評価", "スコア", "点数", "得点", "점수", "평가",
]


def _alternatives(words: list[str]) -> str:
    return "|".join(re.escape(w).replace(r"\ ", r"[ \t]+")
                    for w in sorted(words, key=len, reverse=True))


def _cjk(word: str) -> bool:
    return word[0] >= "\u2e80"


# A letter may not come right before a Latin or Cyrillic label ("denote" holds "note");
# CJK text has no spaces, so its labels stand anywhere.
_LABEL = (rf"(?:(?<![^\W\d_])(?:(?P<final>{_alternatives([w for w in _FINAL_LABELS if not _cjk(w)])})"
          rf"|(?P<score>{_alternatives([w for w in _SCORE_LABELS if not _cjk(w)])}))"
          rf"|(?P<cjk_final>{_alternatives([w for w in _FINAL_LABELS if _cjk(w)])})"
          rf"|(?P<cjk_score>{_alternatives([w for w in _SCORE_LABELS if _cjk(w)])}))")
_SEP = (r"(?P<sep>[ \t]*(?:[:=]|[-–—](?=[ \t]*\d)|(?:es|est|ist|è|é|será|sería|serait|wäre"
        r"|sarebbe|seria|ist|является)(?:[ \t]+(?:de|di|von))?|de|di|von|du|是|为|は|이)?[ \t]*)")
_DECIMAL = r"(?P<int>\d+)(?:(?P<dot>[.,])(?P<frac>\d{1,2}))?(?![\d.,]\d)"
_OUT_OF = (r"(?P<out>[ \t]*(?:/|\b(?:sur|von|de|su|em|из|uit|van|auf|out[ \t]+of)\b)[ \t]*)"
           r"(?P<top>\d+)(?:[.,](?P<topfrac>\d))?")
_UNIT = (r"(?P<unit>[ \t]*(?:分|点|점|(?:баллов|балла|балл|punkten|punkte|puntos|points|pontos"
         r"|punti|points|punten)\b))?")
_END = r"(?=[ \t]*(?:$|[\n.,;!)。，；]|[ \t]\(|[ \t]+[-–—]))"
_LABELLED = re.compile(rf"{_LABEL}{_SEP}{_DECIMAL}(?:{_OUT_OF})?{_UNIT}{_END}",
                       re.IGNORECASE | re.MULTILINE)
# "满分5分" (full marks 5), "5点満点中" (of 5 full marks): the scale, never the score.
_CJK_SCALE = re.compile(r"[(（]?[ \t]*(?:满分[ \t]*\d+(?:\.\d+)?[ \t]*分?|\d+[ \t]*点満点中?)"
                        r"[ \t]*[)）]?")


_WIDE_COLON = re.compile("：")


def wide_to_ascii(text: MappedText) -> MappedText:
    if text.text.isascii():
        return text
    # "1：8" is a label and its score, where "1:8" would be a time
    return text.translate(_WIDE).sub(_WIDE_COLON, ": ")


def rewrite_languages(text: MappedText, decimal_comma: bool) -> MappedText:
    """Other languages' score labels as "Score:"/"Final score:", with their number."""
    if text.text.isascii() and not _ASCII_HINT.search(text.text.lower()):
        return text  # all the labels but a few Latin ones hold a non-ASCII letter

    def labelled(m: re.Match) -> Replacement:
        if m.group("dot") == "," and not decimal_comma:
            return [m.span()]  # "8,7": two scores or a decimal, not for us to say
        final = m.group("final") or m.group("cjk_final")
        pieces: list[str | tuple[int, int]] = [
            " " if m.group("cjk_final") or m.group("cjk_score") else "",  # a word boundary
            "Final score" if final else "Score", ": " if m.group("sep") else " "]
        pieces.append(m.span("int"))
        if m.group("frac"):
            pieces += [".", m.span("frac")]
        if m.group("top"):
            pieces += [" out of ", m.span("top")]
            if m.group("topfrac"):
                pieces += [".", m.span("topfrac")]
        return pieces

    if not text.text.isascii():
        text = text.sub(_CJK_SCALE, " ")
    return text.sub(_LABELLED, labelled)


# The ASCII-only labels: without one of these, an ASCII reply has nothing to rewrite.
_ASCII_HINT = re.compile(r"\b(?:puntuacion|puntaje|calificacion|valoracion|nota|note"
                         r"|evaluation finale|bewertung|punktzahl|wertung|punteggio|valutazione"
                         r"|voto|pontuacao|avaliacao|beoordeling|cijfer|ocena|puan|gesamt"
                         r"|endnote|endbewertung|eindscore|eindcijfer|totaalscore|genel)")
