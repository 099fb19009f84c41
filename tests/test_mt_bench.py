"""MT-Bench: the data checks, the Alpaca multi-turn prompt, FastChat's grading prompts, the
[[rating]] parser, the aggregation, and a real run (embedded model, a local judge server)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from alpagasus.artifacts import ArtifactStore
from alpagasus.context import RunContext
from alpagasus.evals import BenchmarkError, ModelRef, get_benchmark
from alpagasus.evals.mt_bench import (
    FASTCHAT_TEMPERATURES,
    Question,
    aggregate,
    answer_turns,
    conversation_prompt,
    describe_sampling,
    judge_messages,
    load_mt_bench,
    parse_mt_rating,
    question_temperature,
    read_answers,
    read_scores,
    sampling_settings,
)
from alpagasus.main import run
from alpagasus.models import resolve_model_path
from alpagasus.prompts import alpaca_prompt
from alpagasus.tracking import Tracker
from tests.conftest import SHARED_DATA
from tests.servers import fake_chat

MT_BENCH = SHARED_DATA / "mt_bench"
needs_data = pytest.mark.skipif(not (MT_BENCH / "question.jsonl").is_file(),
                                reason=f"{MT_BENCH} not present")


@pytest.mark.parametrize("reply, score, status", [
    ("The answer is thorough and correct.\n\nRating: [[8]]", 8.0, "ok"),
    ("Rating: [[8.5]]", 8.5, "ok"),
    ("Rating: [[ 7 ]].", 7.0, "ok"),
    ("Overall [[9/10]]", 9.0, "ok"),
    ("I give it [[6]]. Final rating: [[6]]", 6.0, "ok"),  # the same rating twice
    ("Rating: [4]", 4.0, "ok"),  # a single bracket after the word rating (FastChat's fallback)
    ("rating [3/10]", 3.0, "ok"),
    ("Following the format, e.g. [[5]], I rate it [[8]]", None, "ambiguous"),
    ("As noted in [1], the answer is wrong. It deserves 3 out of 10.", None, "unparsed"),
    ("The response scores 8/10.", None, "unparsed"),  # no [[N]]: not guessed
    ("Rating: [[rating]]", None, "unparsed"),
    ("", None, "unparsed"),
    ("Rating: [[0]]", None, "out_of_range"),
    ("Rating: [[11]]", None, "out_of_range"),
    ("Rating: [[10]]", 10.0, "ok"),
])
def test_rating_parser(reply, score, status):
    parsed = parse_mt_rating(reply)
    assert (parsed.score, parsed.status) == (score, status)


def test_second_turn_prompt_repeats_the_alpaca_format():
    first = conversation_prompt(["Write a haiku."], [])
    assert first == alpaca_prompt("Write a haiku.")
    second = conversation_prompt(["Write a haiku.", "Now in French."], ["Old pond, frog."])
    assert second == (alpaca_prompt("Write a haiku.") + "Old pond, frog.\n\n"
                      "### Instruction:\nNow in French.\n\n### Response:\n")
    with pytest.raises(ValueError):
        conversation_prompt(["a", "b"], [])


@needs_data
def test_loads_the_shared_copy_with_references_where_fastchat_needs_them():
    bench = load_mt_bench(MT_BENCH)
    assert len(bench.questions) == 80
    assert all(len(q.turns) == 2 for q in bench.questions)
    with_ref = [q for q in bench.questions if q.reference]
    assert len(with_ref) == 30
    assert {q.category for q in with_ref} == {"math", "reasoning", "coding"}
    assert set(bench.prompts) == {"single-v1", "single-math-v1", "single-v1-multi-turn",
                                  "single-math-v1-multi-turn"}
    picked = load_mt_bench(MT_BENCH, question_ids=[111, 81])
    assert [q.question_id for q in picked.questions] == [111, 81]
    assert [q.question_id for q in load_mt_bench(MT_BENCH, limit=3).questions] == [81, 82, 83]


@needs_data
def test_judge_messages_are_fastchats_single_answer_prompts():
    bench = load_mt_bench(MT_BENCH, question_ids=[81, 111])
    writing, math = bench.questions
    (n1, m1), (n2, m2) = judge_messages(writing, ["ANSWER-ONE", "ANSWER-TWO"], bench.prompts)
    assert (n1, n2) == ("single-v1", "single-v1-multi-turn")
    assert m1[0] == {"role": "system", "content": "You are a helpful assistant."}
    assert writing.turns[0] in m1[1]["content"] and "ANSWER-ONE" in m1[1]["content"]
    assert "ANSWER-TWO" not in m1[1]["content"]
    # Turn 2 is graded on the whole conversation, with the judge told to focus on turn 2.
    assert "focus on the assistant's answer to the second user question" in m2[0]["content"]
    assert all(s in m2[1]["content"] for s in (*writing.turns, "ANSWER-ONE", "ANSWER-TWO"))
    (r1, k1), (r2, k2) = judge_messages(math, ["A1", "A2"], bench.prompts)
    assert (r1, r2) == ("single-math-v1", "single-math-v1-multi-turn")
    assert math.reference[0] in k1[1]["content"] and math.reference[1] in k2[1]["content"]
    for messages in (m1, m2, k1, k2):
        assert not any(f"{{{field}" in messages[1]["content"]  # every field filled
                       for field in ("question", "answer", "ref_answer"))


def test_fastchat_per_category_temperatures_and_greedy():
    # fastchat/llm_judge/common.py temperature_config; gen_model_answer.py's 0.7 otherwise.
    assert FASTCHAT_TEMPERATURES == {"writing": 0.7, "roleplay": 0.7, "stem": 0.1,
                                     "humanities": 0.1, "extraction": 0.0, "math": 0.0,
                                     "coding": 0.0, "reasoning": 0.0}
    assert question_temperature("writing", "fastchat") == 0.7
    assert question_temperature("stem", "fastchat") == 0.1
    assert question_temperature("math", "fastchat") == 0.0
    assert question_temperature("poetry", "fastchat") == 0.7
    assert question_temperature("writing", "greedy") == 0.0


@needs_data
def test_sampling_settings_enter_the_answers_key_and_the_report():
    questions = load_mt_bench(MT_BENCH).questions
    fast = sampling_settings(questions, "fastchat", seed=3)
    assert fast == {"mode": "fastchat", "temperatures": dict(sorted(
        FASTCHAT_TEMPERATURES.items())), "seed": 3}
    greedy = sampling_settings(questions, "greedy", seed=3)
    assert greedy["seed"] is None and set(greedy["temperatures"].values()) == {0.0}
    assert greedy == sampling_settings(questions, "greedy", seed=4)  # seed is moot: one key
    assert sampling_settings(questions, "fastchat", seed=4) != fast
    # Only greedy categories asked: nothing sampled, no seed in the key.
    math = [q for q in questions if q.category == "math"]
    assert sampling_settings(math, "fastchat", seed=3)["seed"] is None
    line = describe_sampling(fast)
    assert line.startswith("Answers: FastChat's per-category temperatures (roleplay, writing 0.7; "
                           "humanities, stem 0.1; coding, extraction, math, reasoning 0; ")
    assert line.endswith("seed 3.")
    assert describe_sampling(greedy).startswith("Answers: greedy decoding")
    assert describe_sampling(sampling_settings(math, "fastchat", 0)).startswith(
        "Answers: greedy decoding")


def test_the_comparison_report_prints_the_sampling_line():
    from alpagasus.stages.benchmark import format_comparison

    rows = [{"metric": "mt_bench", "a": 5.0, "b": 4.5, "diff": 0.5}]
    line = "Answers: greedy decoding (temperature 0), sampling=greedy."
    assert format_comparison("t", rows, [line]).endswith("| +0.500 |\n\n" + line)
    assert format_comparison("t", rows) == format_comparison("t", rows, [])


def test_answer_turns_batch_one_temperature_and_seed_the_sampled_batches():
    questions = [Question(i, c, (f"q{i} turn 1", f"q{i} turn 2"))
                 for i, c in enumerate(["writing", "math", "writing", "stem", "math"])]
    temps = [question_temperature(q.category, "fastchat") for q in questions]

    def run_turns(seed):
        calls = []

        def generate(prompts, temperature, draw):
            calls.append((prompts, temperature, draw))
            return [f"answer@{temperature}" for _ in prompts]

        return answer_turns(generate, questions, temps, batch_size=1, seed=seed), calls

    answers, calls = run_turns(0)
    for prompts, temperature, draw in calls:  # each batch: one temperature, its own draw
        [prompt] = prompts
        qid = int(prompt.split("### Instruction:\nq")[1].split(" ")[0])
        assert temperature == temps[qid]
        assert (draw is None) == (temperature == 0)
    assert len(calls) == 10  # 5 questions x 2 turns
    assert answers[0] == ["answer@0.7", "answer@0.7"] and answers[1] == ["answer@0.0"] * 2
    second_turn = [p[0] for p, _, _ in calls[5:]]  # turn 2 shows the turn-1 answer
    assert all("answer@" in p and "turn 2" in p for p in second_turn)
    draws = [d for _, _, d in calls if d is not None]
    assert len(set(draws)) == len(draws) == 6  # 3 sampled questions x 2 turns, all different
    assert [d for *_, d in run_turns(0)[1]] == [d for *_, d in calls]  # a rerun: same draws
    assert [d for *_, d in run_turns(1)[1] if d] != draws


def test_aggregate_per_turn_category_and_unparsed():
    rows = [
        {"category": "writing", "turn": 1, "score": 8.0},
        {"category": "writing", "turn": 2, "score": 6.0},
        {"category": "math", "turn": 1, "score": 3.0},
        {"category": "math", "turn": 2, "score": None},  # unparsed: counted, not scored
    ]
    scores = aggregate(rows)
    assert scores["all"] == {"turn_1": 5.5, "turn_2": 6.0, "overall": round(17 / 3, 4),
                             "n": 3, "unparsed": 1}
    assert scores["categories"]["math"] == {"turn_1": 3.0, "turn_2": None, "overall": 3.0,
                                            "n": 1, "unparsed": 1}
    assert aggregate([])["all"]["overall"] is None


def _copy(tmp_path: Path) -> Path:
    folder = tmp_path / "mt_bench"
    shutil.copytree(MT_BENCH, folder)
    return folder


def _rewrite(path: Path, edit) -> None:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    path.write_text("".join(json.dumps(r) + "\n" for r in edit(rows)))


@needs_data
@pytest.mark.parametrize("edit, message", [
    (lambda rows: [{k: v for k, v in r.items() if k != "turns"} if i == 2 else r
                   for i, r in enumerate(rows)],
     r"question\.jsonl:3 \(question 83\): no field 'turns'"),
    (lambda rows: [{**r, "turns": r["turns"][:1]} if i == 0 else r for i, r in enumerate(rows)],
     r"question\.jsonl:1 \(question 81\): field 'turns': expected 2 turns, got 1"),
    (lambda rows: [{**r, "turns": [r["turns"][0], ""]} if i == 0 else r
                   for i, r in enumerate(rows)],
     r"question\.jsonl:1 \(question 81\): field 'turns': expected turn 2 to be a non-empty"),
    (lambda rows: [*rows, rows[0]], r"question\.jsonl:81 \(question 81\): question_id 81 "
                                    r"repeats line 1"),
    (lambda rows: [{**r, "question_id": "81"} if i == 0 else r for i, r in enumerate(rows)],
     r"question\.jsonl:1: field 'question_id' missing or not a whole number"),
])
def test_bad_question_files_name_file_line_and_field(tmp_path, edit, message):
    folder = _copy(tmp_path)
    _rewrite(folder / "question.jsonl", edit)
    with pytest.raises(BenchmarkError, match=message):
        load_mt_bench(folder)


@needs_data
def test_bad_judge_prompts_and_references(tmp_path):
    folder = _copy(tmp_path)
    _rewrite(folder / "judge_prompts.jsonl",
             lambda rows: [r for r in rows if r["name"] != "single-math-v1"])
    with pytest.raises(BenchmarkError, match=r"judge_prompts\.jsonl: no judge prompt named "
                                             r"single-math-v1"):
        load_mt_bench(folder)
    folder = _copy(tmp_path / "2")
    _rewrite(folder / "judge_prompts.jsonl", lambda rows: [
        {**r, "prompt_template": r["prompt_template"] + "{rubric}"}
        if r["name"] == "single-v1" else r for r in rows])
    with pytest.raises(BenchmarkError, match=r"\(single-v1\): prompt_template names \['rubric'\]"):
        load_mt_bench(folder)
    folder = _copy(tmp_path / "3")
    _rewrite(folder / "reference_answer_gpt-4.jsonl",
             lambda rows: [r for r in rows if r["question_id"] != 111])
    with pytest.raises(BenchmarkError, match=r"no reference answer for questions \[111\]"):
        load_mt_bench(folder)
    load_mt_bench(folder, question_ids=[81, 112])  # questions without that need run fine
    (folder / "question.jsonl").write_text('{"question_id": 1, "category": "x"')
    with pytest.raises(BenchmarkError, match=r"question\.jsonl:1: not valid JSON"):
        load_mt_bench(folder)
    with pytest.raises(BenchmarkError, match=r"question_ids: \[999\] not in"):
        load_mt_bench(MT_BENCH, question_ids=[81, 999])


def test_fastchat_layout_is_found(tmp_path):
    """fastchat/llm_judge/data/mt_bench/ with reference_answer/gpt-4.jsonl and the judge
    prompts one level up."""
    if not MT_BENCH.is_dir():
        pytest.skip(f"{MT_BENCH} not present")
    data = tmp_path / "data"
    (data / "mt_bench" / "reference_answer").mkdir(parents=True)
    shutil.copy(MT_BENCH / "question.jsonl", data / "mt_bench")
    shutil.copy(MT_BENCH / "judge_prompts.jsonl", data)
    shutil.copy(MT_BENCH / "reference_answer_gpt-4.jsonl",
                data / "mt_bench" / "reference_answer" / "gpt-4.jsonl")
    bench = load_mt_bench(data / "mt_bench", question_ids=[111])
    assert bench.questions[0].reference and bench.files["references"].endswith("gpt-4.jsonl")


@needs_data
def test_a_question_without_turns_stops_before_any_model_or_judge(tiny_cfg, tmp_path):
    folder = _copy(tmp_path)
    _rewrite(folder / "question.jsonl",
             lambda rows: [{k: v for k, v in r.items() if k != "turns"} for r in rows])
    with fake_chat(lambda messages: "Rating: [[5]]") as judge:
        cfg = tiny_cfg("stage=benchmark", "benchmark=mt_bench", f"benchmark.path={folder}",
                       "eval_judge=gpt4", f"eval_judge.base_url={judge.url}", "logger.enabled=false")
        with pytest.raises(BenchmarkError, match=r"question\.jsonl:1 \(question 81\): no field "
                                                 r"'turns'"):
            run(cfg)
        assert judge.requests == []
    assert not (tmp_path / "artifacts").exists()  # nothing rated, trained or generated


def _judge_reply(messages):
    """Turn 1 gets 7, turn 2 (the multi-turn prompt) 4; a math turn 2 gets no rating."""
    user = messages[-1]["content"]
    if "Assistant A's Conversation" in user:
        return "Too short.\nRating: [[2]]" if "Reference answer" not in user else "No verdict."
    return "Fine.\n\nRating: [[7]]"


@needs_data
@pytest.mark.slow
def test_mt_bench_on_the_embedded_model_with_a_local_judge_server(tiny_cfg, tmp_path):
    with fake_chat(_judge_reply) as judge:
        cfg = tiny_cfg("benchmark=mt_bench", f"benchmark.path={MT_BENCH}",
                       "benchmark.question_ids=[81,111]", "benchmark.max_new_tokens=8",
                       "eval_judge=gpt4", f"eval_judge.base_url={judge.url}",
                       "eval_judge.model=fake-judge", "rate.progress=false")
        ctx = RunContext(cfg=cfg, store=ArtifactStore(cfg.paths.artifacts), tracker=Tracker.off())
        bench = get_benchmark("mt_bench")
        prepared = bench.prepare(ctx)
        base = resolve_model_path("embedded:smollm2", ctx.cache_dir)
        artifact = bench.evaluate(ctx, ctx.arms["a"], ModelRef(base, None, "base"), prepared)
        assert len(judge.requests) == 4  # 2 questions x 2 turns
        assert {r["max_tokens"] for r in judge.requests} == {2048}  # benchmark.judge_max_tokens
        assert {r["model"] for r in judge.requests} == {"fake-judge"}

        answers = read_answers(ctx.store.find("mt_bench_answers", json.loads(
            (artifact.path / "manifest.json").read_text())["inputs"]["answers"]))
        assert [a["question_id"] for a in answers] == [81, 111]
        assert all(len(a["answers"]) == 2 for a in answers)
        # The math question's turn-2 request held GPT-4's reference and the model's answers.
        math_turn2 = next(r for r in judge.requests
                          if "Reference answer" in r["messages"][-1]["content"])
        assert answers[1]["answers"][1] in math_turn2["messages"][-1]["content"]

        scores = read_scores(artifact)
        assert scores["all"] == {"turn_1": 7.0, "turn_2": 2.0, "overall": round(16 / 3, 4),
                                 "n": 3, "unparsed": 1}
        assert scores["categories"]["math"]["unparsed"] == 1
        # FastChat's sampling by default: writing at 0.7, math greedy; the report says so.
        assert [a["temperature"] for a in answers] == [0.7, 0.0]
        assert scores["sampling"] == {"mode": "fastchat", "seed": 0,
                                      "temperatures": {"math": 0.0, "writing": 0.7}}
        assert bench.describe(artifact, cfg.benchmark) == (
            "Answers: FastChat's per-category temperatures (writing 0.7; math 0; 0 = greedy), "
            "seed 0.")
        head = bench.headline(artifact, cfg.benchmark)
        assert head["mt_bench"] == round(16 / 3, 4) and head["writing"] == 4.5
        judgments = [json.loads(x) for x in (artifact.path / "judgments.jsonl").read_text().splitlines()]
        assert [j["status"] for j in judgments].count("unparsed") == 1
        assert {j["judge_prompt"] for j in judgments} == {
            "single-v1", "single-v1-multi-turn", "single-math-v1", "single-math-v1-multi-turn"}

        # Same model and judge: the artifact is reused, nothing is sent again.
        again = bench.evaluate(RunContext(cfg=cfg, store=ArtifactStore(cfg.paths.artifacts),
                                          tracker=Tracker.off()),
                               ctx.arms["a"], ModelRef(base, None, "base"), prepared)
        assert again.reused and len(judge.requests) == 4
