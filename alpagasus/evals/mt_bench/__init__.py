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

Modules, importing downward: ``files`` (read and check), ``answers`` (generation),
``grading`` (judge messages, parser, aggregation), ``benchmark`` (the registered
``MTBenchmark``). Their public names are re-exported here.
"""

from __future__ import annotations

from alpagasus.evals.mt_bench.answers import (
    CONVERSATION_FORMAT,
    FASTCHAT_OTHER_TEMPERATURE,
    FASTCHAT_TEMPERATURES,
    answer_turns,
    batch_seed,
    conversation_prompt,
    describe_sampling,
    generate_answers,
    question_temperature,
    sampling_settings,
)
from alpagasus.evals.mt_bench.benchmark import (
    ANSWERS,
    JUDGMENTS,
    SCORES,
    MTBenchmark,
    read_answers,
    read_scores,
)
from alpagasus.evals.mt_bench.files import (
    JUDGE_PROMPT_FILES,
    JUDGE_PROMPT_NAMES,
    NEED_REFERENCE,
    PROMPT_FIELDS,
    QUESTION_FILES,
    REFERENCE_FILES,
    TURNS,
    MTBench,
    Question,
    load_mt_bench,
    read_judge_prompts,
    read_questions,
    read_references,
)
from alpagasus.evals.mt_bench.grading import (
    MT_PARSER_VERSION,
    SCALE,
    NoRatingError,
    aggregate,
    check_some_rating,
    judge_config,
    judge_messages,
    parse_mt_rating,
)

__all__ = [
    "ANSWERS", "CONVERSATION_FORMAT", "FASTCHAT_OTHER_TEMPERATURE", "FASTCHAT_TEMPERATURES",
    "JUDGE_PROMPT_FILES", "JUDGE_PROMPT_NAMES", "JUDGMENTS", "MT_PARSER_VERSION",
    "NEED_REFERENCE", "PROMPT_FIELDS", "QUESTION_FILES", "REFERENCE_FILES", "SCALE", "SCORES",
    "TURNS", "MTBench", "MTBenchmark", "NoRatingError", "Question", "aggregate", "answer_turns",
    "batch_seed", "check_some_rating", "conversation_prompt", "describe_sampling",
    "generate_answers", "judge_config", "judge_messages", "load_mt_bench", "parse_mt_rating",
    "question_temperature", "read_answers", "read_judge_prompts", "read_questions",
    "read_references", "read_scores", "sampling_settings",
]
