"""Stage `judge`: the evaluation judge compares two answer sets, prompt by prompt, in both orders.

In the pipeline, answer set A comes from the model trained on arm A's items (e.g. AlpaGasus)
and B from arm B's (e.g. Alpaca); `stage=compare compare.a=FILE compare.b=FILE` judges any
two answer files instead (like alpaca_eval's ``evaluate(model_outputs, reference_outputs)``).
Either way the two sets are checked against each other before any judge call: every prompt
answered in both, no prompt twice, the same prompt text under the same id.

Each prompt is judged twice with the paper's pairwise prompt, A first then B first, because
LLM judges favour a position. Per order: the higher score wins. ``combine`` merges the two
orders under a rule (config.AggregationRule): `alpagasus`, the paper's (win if A wins twice
or wins once and ties once, lose likewise, tie otherwise), or `strict`, FastChat's (a win
only if both orders say so; orders that disagree are a tie). judgments.jsonl keeps both
order verdicts, so the report applies `report.rule` without asking the judge again.

Output: judgments.jsonl, one line per prompt: testset, id, category, prompt, input, both
answers, both replies, their scores and parse status, both order verdicts, and `verdict`
under the paper's rule; with expected scores (eval_judge.score_mode=expected) also each
order's expected scores (`expected_a_first`, `expected_b_first`: Assistant 1, Assistant 2)
and each answer's mean over both orders (`expected_a`, `expected_b`), which the report's
rule `expected` compares (alpagasus/pair_expected.py).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from alpagasus.artifacts import Artifact
from alpagasus.config import AggregationRule
from alpagasus.context import RunContext
from alpagasus.data import DataError, fingerprint, read_records
from alpagasus.errors import AlpagasusError
from alpagasus.expected import EXPECTED_VERSION, PAIR_SCALE
from alpagasus.judges import JudgeReply, judge_identity, make_judge, reads_expected
from alpagasus.judges.engine import EngineOptions, JudgeStop
from alpagasus.pair_expected import expected_means
from alpagasus.parsing import PARSER_VERSION, parse_pair
from alpagasus.prompts import PAIRWISE_PROMPT
from alpagasus.stages import generate
from alpagasus.stats import SIGN

JUDGMENTS = "judgments.jsonl"

# Answer files as tools write them: ours (answers.jsonl), alpaca_eval's model outputs
# (instruction, output, dataset, generator), and the common variants.
ANSWER_FIELDS = ("answer", "output", "response", "completion")
PROMPT_FIELDS = ("prompt", "instruction", "question", "text")
TESTSET_FIELDS = ("testset", "dataset")
ID_FIELDS = ("id", "question_id", "idx")
DEFAULT_TESTSET = "answers"  # rows that name no test set
_SHOWN = 5  # ids listed in an error message


def order_verdict(scores: tuple[float, float] | None, a_first: bool) -> str | None:
    """A's result in one order: scores are (Assistant 1, Assistant 2)."""
    if scores is None:
        return None
    a, b = scores if a_first else (scores[1], scores[0])
    return "win" if a > b else "lose" if a < b else "tie"


def combine(first: str | None, second: str | None,
            rule: AggregationRule | str = AggregationRule.alpagasus) -> str:
    """One verdict from the two orders' under ``rule``; 'unparsed' if either had no scores."""
    if first not in SIGN or second not in SIGN:
        return "unparsed"
    if AggregationRule(rule) in (AggregationRule.expected, AggregationRule.auto):
        raise ValueError(f"rule {rule} does not combine order verdicts: it compares expected "
                         "scores (alpagasus.pair_expected.expected_verdict)")
    if AggregationRule(rule) == AggregationRule.strict:
        return first if first == second else "tie"
    total = SIGN[first] + SIGN[second]
    return "win" if total > 0 else "lose" if total < 0 else "tie"


# --- answer sets: read, check, pair -----------------------------------------------------------


def _first(rec: dict[str, Any], fields: tuple[str, ...]) -> str | None:
    return next((f for f in fields if rec.get(f) is not None), None)


def answer_from_record(rec: Any, where: str) -> dict[str, Any]:
    """One answer record as {testset, id (None if it names none), prompt, input, category,
    answer, where}; ``where`` is "FILE: line N" for error messages."""
    if not isinstance(rec, dict):
        raise DataError(f"{where}: expected an object, got {type(rec).__name__}")
    fields = {}
    for what, names in (("answer", ANSWER_FIELDS), ("prompt", PROMPT_FIELDS)):
        name = _first(rec, names)
        if name is None:
            raise DataError(f"{where}: no {what} field (one of {', '.join(names)})")
        if not isinstance(rec[name], str):
            raise DataError(f"{where}: field '{name}' must be a string, "
                            f"got {type(rec[name]).__name__}")
        fields[what] = rec[name]
    extra = rec.get("input") or ""
    if not isinstance(extra, str):
        raise DataError(f"{where}: field 'input' must be a string, got {type(extra).__name__}")
    testset = _first(rec, TESTSET_FIELDS)
    ident = _first(rec, ID_FIELDS)
    category = rec.get("category", rec.get("Skill"))
    return {"testset": str(rec[testset]) if testset else DEFAULT_TESTSET,
            "id": None if ident is None else str(rec[ident]),
            "prompt": fields["prompt"], "input": extra,
            "category": None if category is None else str(category),
            "answer": fields["answer"], "where": where}


def load_answers(path: str | Path) -> list[dict[str, Any]]:
    """An answer file (JSON list or JSONL), every record checked; see answer_from_record."""
    path = Path(path).expanduser()
    rows = [answer_from_record(rec, f"{path}: {loc}") for loc, rec in read_records(path)]
    if not rows:
        raise DataError(f"{path}: no answers")
    return rows


# The reference evaluation (gpt4life/alpagasus evaluation/eval.py) shows the judge a
# Self-Instruct task as "{instruction} Input: {input}"; versioned, as it changes requests.
QUESTION_FORMAT = "reference-v1"


def question(row: dict[str, Any]) -> str:
    """What the judge is shown: the instruction and, when there is one, the task's input."""
    return f"{row['prompt']} Input: {row['input']}" if row.get("input") else row["prompt"]


def _same_text(a: str, b: str) -> bool:
    return a.split() == b.split()  # whitespace differences are not different prompts


def _keyed(rows: list[dict[str, Any]], by_id: bool, name: str) -> dict[tuple[str, str], dict]:
    keyed: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        key = (row["testset"], row["id"] if by_id else " ".join(question(row).split()))
        if key in keyed:
            what = f"id {row['id']}" if by_id else f"prompt {row['prompt'][:60]!r}"
            raise DataError(f"{row['where']}: answer set {name} answers {row['testset']} "
                            f"{what} twice (first at {keyed[key]['where']})")
        keyed[key] = row
    return keyed


def _label(key: tuple[str, str], by_id: bool) -> str:
    return f"{key[0]}/{key[1]}" if by_id else f"{key[0]}: {key[1][:50]!r}"


def pair_answers(rows_a: list[dict[str, Any]], rows_b: list[dict[str, Any]],
                 name_a: str = "A", name_b: str = "B") -> list[tuple[dict, dict]]:
    """Match two answer sets prompt by prompt, in A's order, or say why they do not match.

    Rows are matched by (test set, id) when every row of both sets has an id, else by
    (test set, prompt text). Errors name the rows (file and line): a prompt answered twice,
    prompts one set answers and the other does not, the same id over different prompts.
    """
    by_id = all(r["id"] is not None for r in rows_a + rows_b)
    a, b = _keyed(rows_a, by_id, name_a), _keyed(rows_b, by_id, name_b)
    problems = []
    for have, lack, have_name, lack_name in ((a, b, name_a, name_b), (b, a, name_b, name_a)):
        missing = [k for k in have if k not in lack]
        if missing:
            shown = ", ".join(f"{_label(k, by_id)} ({have[k]['where']})" for k in missing[:_SHOWN])
            more = f" and {len(missing) - _SHOWN} more" if len(missing) > _SHOWN else ""
            problems.append(f"answer set {lack_name} has no answer for {len(missing)} of the "
                            f"{len(have)} prompts {have_name} answers: {shown}{more}")
    if problems:
        raise DataError("the two answer sets cover different prompts: " + "; ".join(problems))
    for key, ra in a.items():
        rb = b[key]
        if not _same_text(question(ra), question(rb)):
            raise DataError(
                f"{_label(key, by_id)} is a different prompt in the two answer sets: "
                f"{ra['where']} asks {question(ra)[:80]!r}, {rb['where']} asks "
                f"{question(rb)[:80]!r} (answers to different test prompts cannot be compared)")
    return [(ra, b[key]) for key, ra in a.items()]


def answers_key(rows: list[dict[str, Any]]) -> str:
    """Content hash of an answer set (artifact inputs): what the judge sees, nothing else."""
    return fingerprint([{k: r[k] for k in ("testset", "id", "prompt", "input", "answer")}
                        for r in rows])[:16]


# --- judging -----------------------------------------------------------------------------------


class JudgeFailed(JudgeStop):
    """Some judge requests got no reply even after retries; the cache keeps the others."""


class NoVerdictError(AlpagasusError, RuntimeError):
    """The judge replied, but not one reply held a verdict: nothing worth an artifact (the
    rating stage's RatingError, for the evaluation)."""

    hint = "check eval_judge.model and the prompt, or fix the parser (parsing.parse_pair)"


def check_some_verdict(rows: list[dict[str, Any]], judge_cfg: Any,
                       cache_path: str | Path) -> None:
    """Raise NoVerdictError when no reply, in either order, could be read as two scores."""
    if not rows or any(r["scores_a_first"] is not None or r["scores_b_first"] is not None
                       for r in rows):
        return
    statuses = Counter(s for r in rows for s in (r["parse_a_first"], r["parse_b_first"]))
    examples = "; ".join(f"{r['testset']}/{r['id']}: {(r['reply_a_first'] or '')[:80]!r}"
                         for r in rows[:3])
    raise NoVerdictError(
        f"no verdict from eval_judge {judge_cfg.name} ({judge_cfg.model}): all {2 * len(rows)} "
        f"replies for {len(rows)} prompts hold no pair of scores "
        f"({', '.join(f'{n} {s}' for s, n in statuses.items())}; e.g. {examples[:300]}). "
        f"No judge artifact was written; the replies are kept in {cache_path}, so a rerun "
        "after fixing the parser sends nothing again.")


def _read(reply: JudgeReply, revision: str) -> tuple[tuple[float, float] | None, str]:
    if reply.status != "ok":
        return None, reply.status
    parsed = parse_pair(reply.text, revision=revision)
    return parsed.scores, parsed.status


def _expected(reply: JudgeReply, scores: tuple[float, float] | None) -> list[float | None] | None:
    found = reply.expected_scores(list(scores) if scores else None, PAIR_SCALE)
    return [None if e.value is None else round(e.value, 6) for e in found] if found else None


def judgment_rows(pairs: list[tuple[dict, dict]], replies: list[JudgeReply],
                  revision: str = "unparsed") -> list[dict]:
    """One judgment per pair from its two replies (A first, then B first); ``revision``:
    the judge's revision_policy (parsing.revisions)."""
    rows = []
    for n, (ra, rb) in enumerate(pairs):
        first, second = replies[2 * n], replies[2 * n + 1]
        (s1, p1), (s2, p2) = _read(first, revision), _read(second, revision)
        v1, v2 = order_verdict(s1, a_first=True), order_verdict(s2, a_first=False)
        e1, e2 = _expected(first, s1), _expected(second, s2)
        means = expected_means(e1, e2)
        expected = {} if e1 is None and e2 is None else {
            "expected_a_first": e1, "expected_b_first": e2,
            "expected_a": means[0] if means else None, "expected_b": means[1] if means else None}
        rows.append({
            "testset": ra["testset"], "id": ra["id"], "category": ra.get("category"),
            "prompt": ra["prompt"], "input": ra.get("input", ""),
            "answer_a": ra["answer"], "answer_b": rb["answer"],
            "reply_a_first": first.text, "reply_b_first": second.text,
            "scores_a_first": s1, "scores_b_first": s2,
            "parse_a_first": p1, "parse_b_first": p2,
            "verdict_a_first": v1, "verdict_b_first": v2, "verdict": combine(v1, v2),
            **expected,
        })
    return rows


def judgments_config(eval_judge: Any) -> dict[str, Any]:
    """The judge artifact's config (inputs: both answer sets' keys); stage=plan uses it."""
    config = {"judge": judge_identity(eval_judge), "prompt": PAIRWISE_PROMPT.name,
              "prompt_hash": PAIRWISE_PROMPT.hash, "parser_version": PARSER_VERSION,
              "revision_policy": str(eval_judge.revision_policy),
              "question_format": QUESTION_FORMAT}
    if reads_expected(eval_judge):
        config["expected_version"] = EXPECTED_VERSION
    return config


def pair_requests(pairs: list[tuple[dict, dict]]) -> list[Any]:
    """Both orders of every pair, A first then B first, as the judge is asked."""
    requests = []
    for ra, rb in pairs:
        q = question(ra)
        requests.append(PAIRWISE_PROMPT.messages(question=q, answer_1=ra["answer"],
                                                 answer_2=rb["answer"]))
        requests.append(PAIRWISE_PROMPT.messages(question=q, answer_1=rb["answer"],
                                                 answer_2=ra["answer"]))
    return requests


def judge_pairs(ctx: RunContext, pairs: list[tuple[dict, dict]],
                inputs: dict[str, str]) -> Artifact:
    """The judgments artifact for ``pairs`` (judged in both orders by ``eval_judge``)."""
    cfg = ctx.cfg
    config = judgments_config(cfg.eval_judge)

    def build(workdir: Path) -> dict[str, Any]:
        requests = pair_requests(pairs)
        # The same engine and reply cache as the rating judge; budget and dry run are
        # rating options, so the evaluation only shares the progress setting.
        judge = make_judge(cfg.eval_judge, ctx.cache_dir, cfg.paths.judge_cache,
                           EngineOptions(progress=cfg.rate.progress,
                                         journal=cfg.paths.judge_cache_journal))
        try:
            replies = judge.complete(requests, "pair", desc=f"judge ({cfg.eval_judge.name})")
        finally:
            judge.close()
        failed = [r for r in replies if r.status == "error"]
        if failed:
            # Sealing these as "unparsed" would make a transient outage permanent: stop,
            # and a rerun sends only what is missing (the cache holds the rest).
            raise JudgeFailed(f"{len(failed)} of {len(replies)} pairwise judge requests failed "
                              f"(first: {failed[0].error}); the replies received are cached, "
                              "rerun to send only the failed ones")
        rows = judgment_rows(pairs, replies, str(cfg.eval_judge.revision_policy))
        check_some_verdict(rows, cfg.eval_judge, cfg.paths.judge_cache)
        with open(workdir / JUDGMENTS, "w", encoding="utf-8") as f:
            f.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        verdicts = Counter(r["verdict"] for r in rows)
        return {"prompts": len(rows), "requests": len(requests), **dict(verdicts)}

    artifact = ctx.store.ensure("judge", config, inputs, build)
    return ctx.finish_stage(artifact)


def run(ctx: RunContext) -> Artifact:
    """The pipeline: the two arms' generated answers."""
    return ctx.once("judge", lambda: _run(ctx))


def _run(ctx: RunContext) -> Artifact:
    answers = {role: generate.run(ctx, ctx.arms[role]) for role in ("a", "b")}
    rows = {role: [{**r, "where": f"{art.path / generate.ANSWERS}: line {n}"}
                   for n, r in enumerate(generate.read_answers(art), start=1)]
            for role, art in answers.items()}
    pairs = pair_answers(rows["a"], rows["b"])
    return judge_pairs(ctx, pairs, {"answers_a": answers["a"].key,
                                    "answers_b": answers["b"].key})


def run_files(ctx: RunContext) -> Artifact:
    """stage=compare: the answer files compare.a and compare.b."""
    return ctx.once("judge", lambda: _run_files(ctx))


def compare_names(ctx: RunContext) -> tuple[str, str]:
    c = ctx.cfg.compare
    return (c.name_a or Path(c.a).name, c.name_b or Path(c.b).name)


def check_compare(ctx: RunContext) -> list[tuple[dict, dict]]:
    """Both answer files read and matched: every error before any judge call."""
    c = ctx.cfg.compare
    missing = [k for k in ("a", "b") if not getattr(c, k)]
    if missing:
        raise DataError("stage=compare needs two answer files: "
                        + " ".join(f"compare.{k}=FILE" for k in missing))
    name_a, name_b = compare_names(ctx)
    return pair_answers(load_answers(c.a), load_answers(c.b), f"A ({name_a})", f"B ({name_b})")


def _run_files(ctx: RunContext) -> Artifact:
    pairs = check_compare(ctx)
    return judge_pairs(ctx, pairs, {"answers_a": answers_key([a for a, _ in pairs]),
                                    "answers_b": answers_key([b for _, b in pairs])})


def read_judgments(artifact: Artifact) -> list[dict[str, Any]]:
    with open(artifact.path / JUDGMENTS, encoding="utf-8") as f:
        return [json.loads(line) for line in f]
