"""MT-Bench's grading: FastChat's judge messages per turn, the [[rating]] parser, the mean
ratings, and the error when no reply held a rating."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from omegaconf import OmegaConf

from alpagasus.errors import AlpagasusError
from alpagasus.evals.mt_bench.files import JUDGE_PROMPT_NAMES, Question
from alpagasus.parsing import ParsedScore
from alpagasus.prompts import ChatTemplate

SCALE = (1.0, 10.0)
# Bumped when the conversation format or the rating parser changes what is stored.
MT_PARSER_VERSION = 1

_NUM = r"(\d+(?:\.\d+)?)"
# "[[8]]", "[[8.5]]", "[[ 8 ]]", "[[8/10]]"
_DOUBLE = re.compile(rf"\[\[\s*{_NUM}\s*(?:/\s*10\s*)?\]\]")
# FastChat falls back to any "[8]"; a bare "[1]" is as often a footnote, so only one that
# follows the word rating counts: "Rating: [8]", "rating [8/10]".
_SINGLE = re.compile(rf"rating\W{{0,4}}\[\s*{_NUM}\s*(?:/\s*10\s*)?\]", re.IGNORECASE)


def parse_mt_rating(reply: str, low: float = SCALE[0], high: float = SCALE[1]) -> ParsedScore:
    """The judge's "[[N]]" rating (FastChat's format). Several different ratings in one
    reply are "ambiguous" and none is picked; the same one repeated is fine."""
    values = {float(v) for v in _DOUBLE.findall(reply)} or \
        {float(v) for v in _SINGLE.findall(reply)}
    if not values:
        return ParsedScore(None, "unparsed")
    if len(values) > 1:
        return ParsedScore(None, "ambiguous")
    value = values.pop()
    return ParsedScore(value, "ok") if low <= value <= high else ParsedScore(None, "out_of_range")


def judge_messages(question: Question, answers: Sequence[str],
                   prompts: dict[str, ChatTemplate]) -> list[tuple[str, list[dict[str, str]]]]:
    """(prompt name, chat messages) to grade each turn, as FastChat's run_judge_single."""
    ref = question.needs_reference
    first = {"question": question.turns[0], "answer": answers[0]}
    second = {"question_1": question.turns[0], "answer_1": answers[0],
              "question_2": question.turns[1], "answer_2": answers[1]}
    if ref:
        assert question.reference is not None  # load_mt_bench attaches it
        first["ref_answer_1"] = question.reference[0]
        second |= {"ref_answer_1": question.reference[0], "ref_answer_2": question.reference[1]}
    out = []
    for turn, fields in ((1, first), (2, second)):
        name = JUDGE_PROMPT_NAMES[(ref, turn)]
        out.append((name, prompts[name].messages(**fields)))
    return out


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def aggregate(judgments: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean rating per turn and overall (FastChat's average over every scored turn), the same
    per category, and how many replies had no rating."""

    def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
        scored = [r for r in rows if r["score"] is not None]
        return {"turn_1": _mean([r["score"] for r in scored if r["turn"] == 1]),
                "turn_2": _mean([r["score"] for r in scored if r["turn"] == 2]),
                "overall": _mean([r["score"] for r in scored]),
                "n": len(scored), "unparsed": len(rows) - len(scored)}

    by_category: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in judgments:
        by_category[row["category"]].append(row)
    return {"all": summary(judgments),
            "categories": {c: summary(rows) for c, rows in sorted(by_category.items())}}


class NoRatingError(AlpagasusError, RuntimeError):
    """The judge replied, but not one reply held a rating: nothing worth an artifact."""

    hint = "check eval_judge.model and benchmark.judge_max_tokens, or fix parse_mt_rating"


def check_some_rating(judgments: list[dict[str, Any]], judge_cfg: Any, cache_path: Any) -> None:
    """Like the rating and pairwise judge stages: not one [[rating]] read is no result."""
    if not judgments or any(j["score"] is not None for j in judgments):
        return
    statuses = defaultdict(int)
    for j in judgments:
        statuses[j["status"]] += 1
    raise NoRatingError(
        f"mt_bench: no rating from eval_judge {judge_cfg.name} ({judge_cfg.model}): all "
        f"{len(judgments)} replies hold no [[rating]] "
        f"({', '.join(f'{n} {s}' for s, n in statuses.items())}; e.g. "
        f"{(judgments[0]['reply'] or '')[:80]!r}). No mt_bench artifact was written; the "
        f"replies are kept in {cache_path}, so a rerun after fixing the parser sends nothing "
        "again.")


def judge_config(eval_judge: Any, max_tokens: int) -> Any:
    """The evaluation judge with room for its explanation before the rating."""
    return OmegaConf.merge(eval_judge, {"max_tokens": max_tokens})
