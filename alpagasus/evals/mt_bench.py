"""Benchmark `mt_bench`: MT-Bench's two-turn questions, each turn graded 1-10 by the eval judge.

Generation: each arm's model answers turn 1 in the Alpaca format it was trained on, then
turn 2 with turn 1 and its own answer before it in the same format (as FastChat's alpaca
template does for multi-turn, in the Stanford layout this repo trains with):

    Below is an instruction that describes a task. Write a response ...

    ### Instruction:
    {turn 1}

    ### Response:
    {answer 1}

    ### Instruction:
    {turn 2}

    ### Response:

Decoding (``benchmark.sampling``, docs/mt-bench.md): ``fastchat`` (the default) samples each
question at FastChat's temperature for its category (gen_model_answer.py with common.py's
temperature_config: writing and roleplay 0.7, stem and humanities 0.1, extraction, math,
coding and reasoning 0.0 = greedy, any other category 0.7), seeded with ``benchmark.seed``;
``greedy`` decodes every question at temperature 0. `generate`'s stop strings apply. The
temperatures and the seed are part of the answers' key, and the report says which was used.

Grading: FastChat's single-answer prompts, "single-v1" for turn 1 and "single-v1-multi-turn"
for turn 2 (the judge sees the whole conversation); math, reasoning and coding questions use
the reference-guided "single-math-v1" / "single-math-v1-multi-turn" with GPT-4's reference
answers. Requests go through `eval_judge` and the engine's reply cache, with
`benchmark.judge_max_tokens` (the judge explains first, then writes "Rating: [[N]]"). A reply
without exactly one rating is counted as unparsed, never guessed.

Everything is read and checked before any model loads or judge call: a question without two
turns, a missing judge prompt, a math question without a reference answer stops the run with
the file, line and field.

Output: mt_bench_answers/<key>/answers.jsonl (one per model), mt_bench/<key>/judgments.jsonl
and scores.json (turn 1, turn 2, overall, per category, unparsed).
"""

from __future__ import annotations

import json
import logging
import re
import string
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from tqdm.auto import tqdm

from alpagasus.arms import Arm
from alpagasus.artifacts import Artifact
from alpagasus.config import ConfigError
from alpagasus.context import RunContext
from alpagasus.data import fingerprint
from alpagasus.errors import AlpagasusError
from alpagasus.evals import Benchmark, BenchmarkError, ModelRef, register_benchmark
from alpagasus.judges import judge_identity, make_judge
from alpagasus.judges.engine import EngineOptions
from alpagasus.parsing import ParsedScore
from alpagasus.prompts import ChatTemplate, alpaca_prompt
from alpagasus.shipped import shipped_path

log = logging.getLogger(__name__)

ANSWERS = "answers.jsonl"
JUDGMENTS = "judgments.jsonl"
SCORES = "scores.json"
TURNS = 2
SCALE = (1.0, 10.0)
# FastChat's NEED_REF_CATS: graded against a reference answer.
NEED_REFERENCE = ("math", "reasoning", "coding")
# FastChat's single-answer prompt for (reference-guided, turn), and the fields each fills.
JUDGE_PROMPT_NAMES = {
    (False, 1): "single-v1",
    (True, 1): "single-math-v1",
    (False, 2): "single-v1-multi-turn",
    (True, 2): "single-math-v1-multi-turn",
}
PROMPT_FIELDS = {
    "single-v1": {"question", "answer"},
    "single-math-v1": {"question", "answer", "ref_answer_1"},
    "single-v1-multi-turn": {"question_1", "answer_1", "question_2", "answer_2"},
    "single-math-v1-multi-turn": {"question_1", "answer_1", "question_2", "answer_2",
                                  "ref_answer_1", "ref_answer_2"},
}
# File names tried in benchmark.path: the shared layout first, then FastChat's
# (fastchat/llm_judge/data/mt_bench/, with judge_prompts.jsonl one level up).
QUESTION_FILES = ("question.jsonl",)
JUDGE_PROMPT_FILES = ("judge_prompts.jsonl", "../judge_prompts.jsonl")
REFERENCE_FILES = ("reference_answer_gpt-4.jsonl", "reference_answer/gpt-4.jsonl")
# FastChat's temperature_config (fastchat/llm_judge/common.py); gen_model_answer.py samples a
# category it does not list at 0.7, and decodes greedily below 1e-4.
FASTCHAT_TEMPERATURES = {"writing": 0.7, "roleplay": 0.7, "extraction": 0.0, "math": 0.0,
                         "coding": 0.0, "reasoning": 0.0, "stem": 0.1, "humanities": 0.1}
FASTCHAT_OTHER_TEMPERATURE = 0.7
# Bumped when the conversation format or the rating parser changes what is stored.
CONVERSATION_FORMAT = "alpaca-multi-turn-v1"
MT_PARSER_VERSION = 1


# --- the data: read and checked before anything runs ----------------------------------------


@dataclass(frozen=True)
class Question:
    question_id: int
    category: str
    turns: tuple[str, ...]
    reference: tuple[str, ...] | None = None  # GPT-4's answers, for NEED_REFERENCE

    @property
    def needs_reference(self) -> bool:
        return self.category in NEED_REFERENCE


@dataclass(frozen=True)
class MTBench:
    questions: list[Question]
    prompts: dict[str, ChatTemplate]
    files: dict[str, str]

    @property
    def questions_key(self) -> str:
        return fingerprint([[q.question_id, q.category, list(q.turns)] for q in self.questions])[:16]

    @property
    def references_key(self) -> str:
        return fingerprint([[q.question_id, list(q.reference or [])]
                            for q in self.questions])[:16]


def _jsonl(path: Path) -> list[tuple[int, dict[str, Any]]]:
    rows = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise BenchmarkError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise BenchmarkError(f"{path}:{lineno}: expected a JSON object, got "
                                     f"{type(row).__name__}")
            rows.append((lineno, row))
    if not rows:
        raise BenchmarkError(f"{path}: no lines")
    return rows


def _turns(value: Any, n: int) -> str | None:
    """What is wrong with a list of turns, or None."""
    if not isinstance(value, list):
        return f"a list of {n} strings, got {type(value).__name__}"
    if len(value) != n:
        return f"{n} turns, got {len(value)}"
    for i, turn in enumerate(value):
        if not isinstance(turn, str) or not turn.strip():
            return f"turn {i + 1} to be a non-empty string, got {turn!r:.40}"
    return None


def read_questions(path: Path) -> list[Question]:
    questions: list[Question] = []
    seen: dict[int, int] = {}
    for lineno, row in _jsonl(path):
        where = f"{path}:{lineno}"
        qid = row.get("question_id")
        if isinstance(qid, bool) or not isinstance(qid, int):
            raise BenchmarkError(f"{where}: field 'question_id' missing or not a whole number "
                                 f"(got {qid!r})")
        where += f" (question {qid})"
        if qid in seen:
            raise BenchmarkError(f"{where}: question_id {qid} repeats line {seen[qid]}")
        seen[qid] = lineno
        category = row.get("category")
        if not isinstance(category, str) or not category:
            raise BenchmarkError(f"{where}: field 'category' missing or not a string")
        if "turns" not in row:
            raise BenchmarkError(f"{where}: no field 'turns' (MT-Bench questions are a list "
                                 f"of {TURNS} user turns)")
        problem = _turns(row["turns"], TURNS)
        if problem:
            raise BenchmarkError(f"{where}: field 'turns': expected {problem}")
        questions.append(Question(qid, category, tuple(row["turns"])))
    return questions


def read_judge_prompts(path: Path) -> dict[str, ChatTemplate]:
    """FastChat's four single-answer prompts, each checked to fill only the fields we give."""
    found: dict[str, tuple[int, dict[str, Any]]] = {}
    for lineno, row in _jsonl(path):
        if row.get("name") in PROMPT_FIELDS:
            found[row["name"]] = (lineno, row)
    missing = [name for name in PROMPT_FIELDS if name not in found]
    if missing:
        raise BenchmarkError(f"{path}: no judge prompt named {', '.join(missing)} (FastChat's "
                             "single-answer grading prompts)")
    prompts = {}
    for name, (lineno, row) in found.items():
        for key in ("system_prompt", "prompt_template"):
            if not isinstance(row.get(key), str):
                raise BenchmarkError(f"{path}:{lineno} ({name}): field '{key}' missing or "
                                     "not a string")
        try:
            fields = {f for _, f, _, _ in string.Formatter().parse(row["prompt_template"]) if f}
        except ValueError as e:
            raise BenchmarkError(f"{path}:{lineno} ({name}): prompt_template: {e}") from None
        unknown = fields - PROMPT_FIELDS[name]
        if unknown:
            raise BenchmarkError(f"{path}:{lineno} ({name}): prompt_template names "
                                 f"{sorted(unknown)}, which MT-Bench grading does not fill "
                                 f"(it fills {sorted(PROMPT_FIELDS[name])})")
        prompts[name] = ChatTemplate(name=name, version="fastchat", system=row["system_prompt"],
                                     user=row["prompt_template"])
    return prompts


def read_references(path: Path) -> dict[int, tuple[str, ...]]:
    refs = {}
    for lineno, row in _jsonl(path):
        qid = row.get("question_id")
        try:
            turns = row["choices"][0]["turns"]
        except (KeyError, IndexError, TypeError):
            raise BenchmarkError(f"{path}:{lineno} (question {qid}): no field "
                                 "choices[0].turns") from None
        problem = _turns(turns, TURNS)
        if problem:
            raise BenchmarkError(f"{path}:{lineno} (question {qid}): choices[0].turns: "
                                 f"expected {problem}")
        refs[qid] = tuple(turns)
    return refs


def _find(folder: Path, names: Sequence[str], what: str) -> Path:
    for name in names:
        if (folder / name).is_file():
            return (folder / name).resolve()
    raise BenchmarkError(f"benchmark.path={folder}: no {what} ({' or '.join(names)})")


def load_mt_bench(folder: str | Path, question_ids: Sequence[int] | None = None,
                  limit: int | None = None) -> MTBench:
    """The questions to run (``question_ids``, then the first ``limit``), the judge prompts,
    and the reference answers the reference-guided questions need."""
    folder = Path(folder)
    if not folder.is_dir():
        raise BenchmarkError(f"benchmark.path={folder}: not a folder (it needs question.jsonl, "
                             "judge_prompts.jsonl and reference_answer_gpt-4.jsonl)")
    files = {"questions": _find(folder, QUESTION_FILES, "questions")}
    questions = read_questions(files["questions"])
    if question_ids:
        by_id = {q.question_id: q for q in questions}
        unknown = [i for i in question_ids if i not in by_id]
        if unknown:
            raise BenchmarkError(f"benchmark.question_ids: {unknown} not in {files['questions']}")
        questions = [by_id[i] for i in question_ids]
    if limit:
        questions = questions[:limit]
    files["judge_prompts"] = _find(folder, JUDGE_PROMPT_FILES, "judge prompts")
    prompts = read_judge_prompts(files["judge_prompts"])
    if any(q.needs_reference for q in questions):
        files["references"] = _find(folder, REFERENCE_FILES, "reference answers")
        refs = read_references(files["references"])
        missing = [q.question_id for q in questions if q.needs_reference and q.question_id not in refs]
        if missing:
            raise BenchmarkError(f"{files['references']}: no reference answer for questions "
                                 f"{missing} ({', '.join(NEED_REFERENCE)} are graded against one)")
        questions = [Question(q.question_id, q.category, q.turns, refs[q.question_id])
                     if q.needs_reference else q for q in questions]
    return MTBench(questions, prompts, {k: str(v) for k, v in files.items()})


# --- generation ------------------------------------------------------------------------------


def conversation_prompt(turns: Sequence[str], answers: Sequence[str]) -> str:
    """The prompt for the last of ``turns``: each earlier turn with the model's own answer,
    all in the Alpaca format it was trained on."""
    if len(answers) != len(turns) - 1:
        raise ValueError(f"{len(turns)} turns need {len(turns) - 1} earlier answers")
    text = alpaca_prompt(turns[0])
    for answer, turn in zip(answers, turns[1:], strict=True):
        text += f"{answer}\n\n### Instruction:\n{turn}\n\n### Response:\n"
    return text


def question_temperature(category: str, sampling: Any) -> float:
    """The temperature a question of ``category`` is answered at: FastChat's for it
    (``sampling=fastchat``), or 0 (``greedy``)."""
    mode = getattr(sampling, "value", sampling)
    if mode == "greedy":
        return 0.0
    if mode == "fastchat":
        return FASTCHAT_TEMPERATURES.get(category, FASTCHAT_OTHER_TEMPERATURE)
    raise ConfigError(f"benchmark.sampling={mode}: fastchat or greedy")


def sampling_settings(questions: Sequence[Question], sampling: Any, seed: int) -> dict[str, Any]:
    """How the answers are decoded, as it enters their key and the report: the mode, the
    temperature of each category asked, and the seed (only when something is sampled)."""
    temps = {q.category: question_temperature(q.category, sampling) for q in questions}
    sampled = any(t > 0 for t in temps.values())
    return {"mode": getattr(sampling, "value", sampling),
            "temperatures": dict(sorted(temps.items())), "seed": int(seed) if sampled else None}


def describe_sampling(settings: dict[str, Any]) -> str:
    """One line for the report: which decoding produced the answers."""
    temps = settings["temperatures"]
    if settings["mode"] == "greedy" or not any(t > 0 for t in temps.values()):
        return f"Answers: greedy decoding (temperature 0), sampling={settings['mode']}."
    by_t: dict[float, list[str]] = defaultdict(list)
    for category, t in temps.items():
        by_t[t].append(category)
    parts = "; ".join(f"{', '.join(cats)} {t:g}" for t, cats in sorted(by_t.items(),
                                                                      reverse=True))
    return (f"Answers: FastChat's per-category temperatures ({parts}; 0 = greedy), "
            f"seed {settings['seed']}.")


def batch_seed(seed: int, turn: int, temperature: float, start: int) -> int:
    """The torch seed of one sampled batch: its own draw, the same on every rerun."""
    digest = fingerprint([{"seed": seed, "turn": turn, "temperature": temperature,
                           "start": start}])
    return int(digest[:8], 16)


def answer_turns(generate: Any, questions: list[Question], temperatures: Sequence[float],
                 batch_size: int, seed: int, bar: Any = None) -> list[list[str]]:
    """Both turns of every question: all first turns, then all second turns, each batch of
    one temperature. ``generate(prompts, temperature, seed)`` returns the answers; ``seed``
    is None for greedy batches."""
    answers: list[list[str]] = [[] for _ in questions]
    for turn in range(TURNS):
        prompts = [conversation_prompt(q.turns[: turn + 1], answers[i])
                   for i, q in enumerate(questions)]
        groups: dict[float, list[int]] = defaultdict(list)
        for i, t in enumerate(temperatures):
            groups[float(t)].append(i)
        for t, members in sorted(groups.items()):
            order = sorted(members, key=lambda i: -len(prompts[i]))
            for start in range(0, len(order), batch_size):
                batch = order[start : start + batch_size]
                draw = batch_seed(seed, turn, t, start) if t > 0 else None
                outs = generate([prompts[i] for i in batch], t, draw)
                for i, out in zip(batch, outs, strict=True):
                    answers[i].append(out)
                if bar is not None:
                    bar.update(len(batch))
    return answers


def generate_answers(model: ModelRef, questions: list[Question], gen: Any,
                     max_new_tokens: int, desc: str, temperatures: Sequence[float],
                     seed: int) -> list[list[str]]:
    """Both turns of every question with the arm's model, each at its temperature."""
    import torch

    from alpagasus.stages.generate import HFGenerator, cut_at_stop
    from alpagasus.stages.generate import ModelSource as Source

    # The `generate` stage's decoder (rows leave the batch as they end); the base's tokenizer.
    generator = HFGenerator(Source(base=model.path, adapter=model.adapter,
                                   tokenizer=model.path), None)
    stops = list(gen.stop)

    def generate(prompts: list[str], temperature: float, draw: int | None) -> list[str]:
        if draw is not None:
            torch.manual_seed(draw)
        return [cut_at_stop(out, stops)
                for out in generator.generate(prompts, max_new_tokens, temperature, stops)]

    with tqdm(total=len(questions) * TURNS, desc=desc, unit="turn") as bar:
        return answer_turns(generate, questions, temperatures, gen.batch_size, seed, bar)


# --- grading ---------------------------------------------------------------------------------

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


@register_benchmark
class MTBenchmark(Benchmark):
    name = "mt_bench"

    def check(self, spec: Any) -> None:
        if spec.limit is not None and spec.limit != int(spec.limit):
            raise ConfigError(f"benchmark.limit={spec.limit}: MT-Bench takes a number of questions")

    def prepare(self, ctx: RunContext) -> MTBench:
        spec, judge = ctx.cfg.benchmark, ctx.cfg.eval_judge
        # No path: the copies shipped with the package (the group's default names them too).
        folder = spec.path or shipped_path("mt_bench")
        mode = getattr(judge.score_mode, "value", judge.score_mode)
        if mode == "logits" or (mode == "expected" and judge.backend == "local"):
            raise ConfigError(f"eval_judge={judge.name} reads scores off digit logits; MT-Bench "
                              "needs the judge's text (its [[rating]]): use an API judge "
                              "(eval_judge=gpt4) or eval_judge.score_mode=text")
        bench = load_mt_bench(folder, spec.question_ids,
                              int(spec.limit) if spec.limit else None)
        log.info("[mt_bench] %d questions (%d reference-guided) from %s", len(bench.questions),
                 sum(q.needs_reference for q in bench.questions), bench.files["questions"])
        return bench

    def evaluate(self, ctx: RunContext, arm: Arm, model: ModelRef, bench: MTBench) -> Artifact:
        cfg, spec = ctx.cfg, ctx.cfg.benchmark
        answers = self._answers(ctx, arm, model, bench)
        judge_cfg = judge_config(cfg.eval_judge, spec.judge_max_tokens)
        config = {"judge": judge_identity(judge_cfg),
                  "prompts": {name: t.hash for name, t in bench.prompts.items()},
                  "parser_version": MT_PARSER_VERSION}
        inputs = {"answers": answers.key, "references": bench.references_key}

        def build(workdir: Path) -> dict[str, Any]:
            rows = read_answers(answers)
            by_id = {q.question_id: q for q in bench.questions}
            graded = [(row, turn, name, messages) for row in rows
                      for turn, (name, messages) in enumerate(
                          judge_messages(by_id[row["question_id"]], row["answers"],
                                         bench.prompts), 1)]
            judge = make_judge(judge_cfg, ctx.cache_dir, cfg.paths.judge_cache,
                               EngineOptions(progress=cfg.rate.progress))
            try:
                # "rating": the engine's cache notes a 0-5 parse beside each reply; the MT-Bench
                # rating is parsed here, on read, like every other score.
                replies = judge.complete([m for *_, m in graded], "rating",
                                         desc=f"mt_bench judge ({arm.name})")
            finally:
                judge.close()
            judgments = []
            for (row, turn, name, _), reply in zip(graded, replies, strict=True):
                parsed = parse_mt_rating(reply.text) if reply.status == "ok" else \
                    ParsedScore(None, reply.status)
                judgments.append({"question_id": row["question_id"], "category": row["category"],
                                  "turn": turn, "judge_prompt": name, "reply": reply.text,
                                  "score": parsed.score, "status": parsed.status})
            check_some_rating(judgments, judge_cfg, cfg.paths.judge_cache)
            with open(workdir / JUDGMENTS, "w") as f:
                f.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in judgments))
            scores = aggregate(judgments)
            scores["sampling"] = answers.manifest["config"]["sampling"]
            (workdir / SCORES).write_text(json.dumps(scores, indent=2))
            return {"questions": len(rows), **scores["all"]}

        return ctx.store.ensure("mt_bench", config, inputs, build, meta={"arm": arm.describe()})

    def _answers(self, ctx: RunContext, arm: Arm, model: ModelRef, bench: MTBench) -> Artifact:
        gen, spec = ctx.cfg.generate, ctx.cfg.benchmark
        sampling = sampling_settings(bench.questions, spec.sampling, spec.seed)
        config = {"max_new_tokens": spec.max_new_tokens, "sampling": sampling,
                  "stop": list(gen.stop), "format": CONVERSATION_FORMAT}

        def build(workdir: Path) -> dict[str, Any]:
            temperatures = [sampling["temperatures"][q.category] for q in bench.questions]
            answers = generate_answers(model, bench.questions, gen, spec.max_new_tokens,
                                       desc=f"mt_bench answers ({arm.name})",
                                       temperatures=temperatures, seed=spec.seed)
            with open(workdir / ANSWERS, "w") as f:
                for q, turns in zip(bench.questions, answers, strict=True):
                    f.write(json.dumps({"question_id": q.question_id, "category": q.category,
                                        "temperature": sampling["temperatures"][q.category],
                                        "turns": list(q.turns), "answers": turns},
                                       ensure_ascii=False) + "\n")
            empty = sum(1 for turns in answers for a in turns if not a)
            return {"questions": len(answers), "empty_answers": empty, "sampling": sampling}

        inputs = {"model": model.key, "questions": bench.questions_key}
        return ctx.store.ensure("mt_bench_answers", config, inputs, build,
                                meta={"arm": arm.describe()})

    def describe(self, artifact: Artifact, spec: Any) -> str | None:
        sampling = read_scores(artifact).get("sampling")
        return describe_sampling(sampling) if sampling else None

    def headline(self, artifact: Artifact, spec: Any) -> dict[str, float | None]:
        scores = read_scores(artifact)
        head = {"mt_bench": scores["all"]["overall"], "turn_1": scores["all"]["turn_1"],
                "turn_2": scores["all"]["turn_2"]}
        head |= {c: s["overall"] for c, s in scores["categories"].items()}
        head["unparsed"] = scores["all"]["unparsed"]
        return head


def read_answers(artifact: Artifact) -> list[dict[str, Any]]:
    with open(artifact.path / ANSWERS, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def read_scores(artifact: Artifact) -> dict[str, Any]:
    return json.loads((artifact.path / SCORES).read_text())
