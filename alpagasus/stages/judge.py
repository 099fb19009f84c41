"""Stage `judge`: the evaluation judge compares the two arms' answers, in both orders.

Model A is trained on arm A's items (e.g. AlpaGasus), model B on arm B's (e.g. Alpaca). Each
prompt is judged twice with the paper's pairwise prompt, A first then B first, because LLM
judges favour a position. Per order: the higher score wins. Combined as in the paper: win
if A wins twice or wins once and ties once, lose likewise, tie otherwise.

Output: judgments.jsonl, one line per prompt with both replies, scores and verdicts.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from alpagasus.artifacts import Artifact
from alpagasus.context import RunContext
from alpagasus.judges import judge_identity, make_judge
from alpagasus.judges.engine import EngineOptions
from alpagasus.parsing import PARSER_VERSION, parse_pair
from alpagasus.prompts import PAIRWISE_PROMPT
from alpagasus.stages import generate

JUDGMENTS = "judgments.jsonl"
_SIGN = {"win": 1, "tie": 0, "lose": -1}


def order_verdict(scores: tuple[float, float] | None, a_first: bool) -> str | None:
    """A's result in one order: scores are (Assistant 1, Assistant 2)."""
    if scores is None:
        return None
    a, b = scores if a_first else (scores[1], scores[0])
    return "win" if a > b else "lose" if a < b else "tie"


def combine(first: str | None, second: str | None) -> str:
    """The paper's rule over the two orders; 'unparsed' if either reply had no scores."""
    if first is None or second is None:
        return "unparsed"
    total = _SIGN[first] + _SIGN[second]
    return "win" if total > 0 else "lose" if total < 0 else "tie"


def run(ctx: RunContext) -> Artifact:
    return ctx.once("judge", lambda: _run(ctx))


def _run(ctx: RunContext) -> Artifact:
    cfg = ctx.cfg
    answers_a = generate.run(ctx, ctx.arms["a"])
    answers_b = generate.run(ctx, ctx.arms["b"])
    config = {"judge": judge_identity(cfg.eval_judge), "prompt": PAIRWISE_PROMPT.name,
              "prompt_hash": PAIRWISE_PROMPT.hash, "parser_version": PARSER_VERSION}
    inputs = {"answers_a": answers_a.key, "answers_b": answers_b.key}

    def build(workdir: Path) -> dict[str, Any]:
        rows_a = generate.read_answers(answers_a)
        rows_b = generate.read_answers(answers_b)
        requests = []
        for ra, rb in zip(rows_a, rows_b, strict=True):
            if (ra["testset"], ra["id"]) != (rb["testset"], rb["id"]):
                raise ValueError(f"answer sets differ at {ra['testset']}/{ra['id']} vs "
                                 f"{rb['testset']}/{rb['id']}")
            question = _question(ra)
            requests.append(PAIRWISE_PROMPT.messages(question=question, answer_1=ra["answer"],
                                                     answer_2=rb["answer"]))
            requests.append(PAIRWISE_PROMPT.messages(question=question, answer_1=rb["answer"],
                                                     answer_2=ra["answer"]))
        # The same engine and reply cache as the rating judge; budget and dry run are
        # rating options, so the evaluation only shares the progress setting.
        judge = make_judge(cfg.eval_judge, ctx.cache_dir, cfg.paths.judge_cache,
                           EngineOptions(progress=cfg.rate.progress,
                                         journal=cfg.paths.judge_cache_journal))
        try:
            replies = judge.complete(requests, "pair", desc=f"judge ({cfg.eval_judge.name})")
        finally:
            judge.close()
        verdicts: Counter[str] = Counter()
        with open(workdir / JUDGMENTS, "w") as f:
            for n, (ra, rb) in enumerate(zip(rows_a, rows_b, strict=True)):
                first, second = replies[2 * n], replies[2 * n + 1]
                s1 = parse_pair(first.text).scores if first.status == "ok" else None
                s2 = parse_pair(second.text).scores if second.status == "ok" else None
                v1, v2 = order_verdict(s1, a_first=True), order_verdict(s2, a_first=False)
                verdict = combine(v1, v2)
                verdicts[verdict] += 1
                f.write(json.dumps({
                    "testset": ra["testset"], "id": ra["id"], "category": ra.get("category"),
                    "prompt": ra["prompt"], "input": ra.get("input", ""),
                    "answer_a": ra["answer"], "answer_b": rb["answer"],
                    "reply_a_first": first.text, "reply_b_first": second.text,
                    "scores_a_first": s1, "scores_b_first": s2,
                    "verdict_a_first": v1, "verdict_b_first": v2, "verdict": verdict,
                }, ensure_ascii=False) + "\n")
        return {"prompts": len(rows_a), "requests": len(requests), **dict(verdicts)}

    artifact = ctx.store.ensure("judge", config, inputs, build)
    return ctx.finish_stage(artifact)


def _question(row: dict[str, Any]) -> str:
    """The judge sees the instruction and, when there is one, the task's input."""
    return f"{row['prompt']}\n\n{row['input']}" if row.get("input") else row["prompt"]


def read_judgments(artifact: Artifact) -> list[dict[str, Any]]:
    with open(artifact.path / JUDGMENTS) as f:
        return [json.loads(line) for line in f]
