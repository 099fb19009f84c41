"""The evaluation judge: two answer sets checked against each other before any judge call,
judged in both orders through the API engine against a real OpenAI-protocol server
(llm-katan), by `stage=compare` on two answer files and by the whole pipeline."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from alpagasus.config import TestsetsConfig
from alpagasus.data import DataError, load_testsets
from alpagasus.judges import JudgeReply
from alpagasus.main import run
from alpagasus.shipped import shipped_path
from alpagasus.stages.judge import (
    NoVerdictError,
    answer_from_record,
    check_some_verdict,
    judgment_rows,
    load_answers,
    pair_answers,
    question,
)
from tests.servers import fake_chat, katan

TESTSETS = shipped_path("testsets")  # the paper's sets as the package ships them


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def ours(n: int, testset: str = "vicuna", answer: str = "an answer") -> list[dict]:
    return [{"testset": testset, "id": str(i), "category": "generic", "prompt": f"question {i}",
             "input": "", "answer": f"{answer} {i}"} for i in range(n)]


def rows(path: Path) -> list[dict]:
    return load_answers(path)


# --- bad input: errors name the file, the line and the field ----------------------------------


def test_an_answer_file_record_without_an_answer_names_file_line_and_fields(tmp_path):
    bad = ours(3)
    del bad[1]["answer"]
    path = write_jsonl(tmp_path / "a.jsonl", bad)
    with pytest.raises(DataError, match=r"a\.jsonl: line 2: no answer field \(one of answer, "):
        load_answers(path)
    bad = ours(2)
    bad[0]["answer"] = 7
    with pytest.raises(DataError, match=r"line 1: field 'answer' must be a string, got int"):
        load_answers(write_jsonl(tmp_path / "b.jsonl", bad))
    with pytest.raises(DataError, match=r"index 0: no prompt field"):
        answer_from_record({"output": "x"}, "f.json: index 0")


def test_answers_missing_for_some_ids_are_listed_both_ways(tmp_path):
    a = rows(write_jsonl(tmp_path / "a.jsonl", ours(10)))
    b = rows(write_jsonl(tmp_path / "b.jsonl", ours(8) + ours(2, testset="koala")))
    with pytest.raises(DataError) as e:
        pair_answers(a, b, "A (a.jsonl)", "B (b.jsonl)")
    text = str(e.value)
    assert "answer set B (b.jsonl) has no answer for 2 of the 10 prompts A (a.jsonl) answers" in text
    assert "vicuna/8 (" in text and "a.jsonl: line 9)" in text and "vicuna/9" in text
    assert "answer set A (a.jsonl) has no answer for 2 of the 10 prompts" in text
    assert "koala/0" in text and "b.jsonl: line 9" in text


def test_two_answer_sets_over_different_prompts(tmp_path):
    other = ours(4)
    other[2]["prompt"] = "a different question"
    a = rows(write_jsonl(tmp_path / "a.jsonl", ours(4)))
    b = rows(write_jsonl(tmp_path / "b.jsonl", other))
    with pytest.raises(DataError, match=r"vicuna/2 is a different prompt in the two answer sets: "
                                        r".*a\.jsonl: line 3 asks 'question 2', .*b\.jsonl: "
                                        r"line 3 asks 'a different question'"):
        pair_answers(a, b)


def test_a_prompt_answered_twice(tmp_path):
    a = rows(write_jsonl(tmp_path / "a.jsonl", ours(3) + ours(1)))
    with pytest.raises(DataError, match=r"a\.jsonl: line 4: answer set A answers vicuna id 0 "
                                        r"twice \(first at .*a\.jsonl: line 1\)"):
        pair_answers(a, a)


def test_alpaca_eval_outputs_pair_with_ours_by_prompt_text(tmp_path):
    a = ours(5)
    b = [{"instruction": r["prompt"] + "  ", "output": f"B {r['id']}", "dataset": "vicuna",
          "generator": "model-b"} for r in reversed(a)]  # another order, stray whitespace
    (tmp_path / "b.json").write_text(json.dumps(b))
    pairs = pair_answers(rows(write_jsonl(tmp_path / "a.jsonl", a)), rows(tmp_path / "b.json"))
    assert [(x["id"], y["answer"]) for x, y in pairs] == [(str(i), f"B {i}") for i in range(5)]


def test_judgment_rows_read_both_orders():
    pairs = [(r, {**r, "answer": "b"}) for r in rows_from(ours(3))]
    replies = [JudgeReply("8 6\nA is better"), JudgeReply("5 9"),  # A wins both orders
               JudgeReply("7 7"), JudgeReply("6 8"),  # tie, then A wins (B first)
               JudgeReply("no scores here"), JudgeReply("", status="too_long")]
    out = judgment_rows(pairs, replies)
    assert [(j["verdict_a_first"], j["verdict_b_first"], j["verdict"]) for j in out] == [
        ("win", "win", "win"), ("tie", "win", "win"), (None, None, "unparsed")]
    assert (out[2]["parse_a_first"], out[2]["parse_b_first"]) == ("unparsed", "too_long")
    assert out[0]["scores_b_first"] == (5.0, 9.0) and out[1]["answer_b"] == "b"


def rows_from(records: list[dict]) -> list[dict]:
    return [answer_from_record(r, f"mem: line {n}") for n, r in enumerate(records, start=1)]


def test_failed_judge_requests_stop_the_stage_and_seal_nothing(tiny_cfg, tmp_path, monkeypatch):
    """A reply the judge never got is not an "unparsed" verdict: the stage stops (exit 2 from
    the CLI, like any JudgeStop) and the rerun asks again for what is missing."""
    from alpagasus.artifacts import ArtifactStore
    from alpagasus.context import RunContext
    from alpagasus.stages import judge as judge_stage
    from alpagasus.tracking import Tracker

    class Flaky:
        def complete(self, requests, score_format, desc=""):
            return [JudgeReply("8 6") if n % 3 else JudgeReply("", status="error", error="http 500")
                    for n in range(len(requests))]

        def close(self):
            pass

    monkeypatch.setattr(judge_stage, "make_judge", lambda *a, **k: Flaky())
    ctx = RunContext(cfg=tiny_cfg(), store=ArtifactStore(tmp_path / "artifacts"),
                     tracker=Tracker.off())
    pairs = [(a, {**a, "answer": "other"}) for a in rows_from(ours(3))]
    with pytest.raises(judge_stage.JudgeFailed, match="2 of 6 pairwise judge requests failed "
                                                      r"\(first: http 500\)"):
        judge_stage.judge_pairs(ctx, pairs, {"answers_a": "a", "answers_b": "b"})
    assert not list((tmp_path / "artifacts" / "judge").glob("*/manifest.json"))


# --- end to end against llm-katan ---------------------------------------------------------------


def katan_judge(url: str) -> list[str]:
    return ["eval_judge=openai_compatible", f"eval_judge.base_url={url}/v1",
            "eval_judge.model=katan-echo", "logger.enabled=false", "rate.progress=false"]


def paper_prompts(limit: int):
    files = {n: str(TESTSETS / f"{n}_test_set.jsonl") for n in ("vicuna", "wizardlm")}
    return load_testsets(TestsetsConfig(name="paper", files=files, limit=limit))


def test_compare_two_answer_files_through_the_engine(tiny_cfg, tmp_path, capsys):
    """`stage=compare`: our answers.jsonl vs alpaca_eval-style outputs, judged in both
    orders by a real OpenAI-protocol server; bad files stop before any request."""
    prompts = paper_prompts(3)
    a = write_jsonl(tmp_path / "model_a.jsonl", [
        {"testset": p.testset, "id": p.id, "category": p.category, "prompt": p.prompt,
         "input": p.input, "answer": f"A says {n}"} for n, p in enumerate(prompts)])
    b_rows = [{"dataset": p.testset, "instruction": p.prompt, "output": f"B says {n}"}
              for n, p in enumerate(prompts)]
    random.Random(0).shuffle(b_rows)
    b = tmp_path / "model_b.json"
    b.write_text(json.dumps(b_rows))
    short = tmp_path / "short.json"
    short.write_text(json.dumps(b_rows[:-1]))

    with katan(tmp_path) as server:
        judge = katan_judge(server.url)
        with pytest.raises(DataError, match="answer set B .* has no answer for 1 of the 6"):
            run(tiny_cfg("stage=compare", f"compare.a={a}", f"compare.b={short}", *judge))
        with pytest.raises(DataError, match="compare.b=FILE"):
            run(tiny_cfg("stage=compare", f"compare.a={a}", *judge))
        assert server.completed() == 0  # no judge call on bad input

        # The echo server repeats the request: no reply holds a verdict, so the evaluation
        # stops (like a rating without one score) and writes no judge or report artifact.
        cfg = tiny_cfg("stage=compare", f"compare.a={a}", f"compare.b={b}",
                       "compare.name_b=model-b", "report.rule=strict", *judge)
        with pytest.raises(NoVerdictError, match=r"no verdict from eval_judge openai_compatible "
                                                 r"\(katan-echo\): all 12 replies for 6 prompts"):
            run(cfg)
        assert server.completed() == 12  # 6 prompts x 2 orders
        assert not list((tmp_path / "artifacts" / "judge").glob("*/manifest.json"))

    # A judge that scores: A's answer 8, B's 3, whichever position it is shown in.
    with fake_chat(_prefers_a) as fake:
        cfg = tiny_cfg("stage=compare", f"compare.a={a}", f"compare.b={b}",
                       "compare.name_b=model-b", "report.rule=strict", "eval_judge=openai_compatible",
                       f"eval_judge.base_url={fake.url}", "eval_judge.model=fake-judge",
                       "logger.enabled=false", "rate.progress=false")
        run(cfg)
        assert len(fake.requests) == 12
        report_dir = next((tmp_path / "artifacts" / "report").glob("*/report.json")).parent
        report = json.loads((report_dir / "report.json").read_text())
        assert report["title"] == "A = model_a.jsonl vs B = model-b; judge openai_compatible"
        assert report["rule"] == "strict" and "FastChat" in report["rule_text"]
        assert set(report["table"]) == {"vicuna", "wizardlm", "all"}
        assert set(report["categories"]) == {"vicuna", "wizardlm"}
        assert (report["table"]["all"]["win"], report["table"]["all"]["n"]) == (6, 6)
        judgments = [json.loads(x) for x in next(
            (tmp_path / "artifacts" / "judge").glob("*/judgments.jsonl")).read_text().splitlines()]
        for j in judgments:  # A was Assistant 1 in the first order, Assistant 2 in the second
            assert (j["scores_a_first"], j["scores_b_first"]) == ([8.0, 3.0], [3.0, 8.0])
            assert j["verdict"] == "win"
        out = capsys.readouterr().out
        assert "rule: strict" in out and "| vicuna / generic |" in out and "95% CI" in out

        # Rerun: every artifact reused, nothing sent.
        run(cfg)
        assert len(fake.requests) == 12


def _prefers_a(messages: list[dict]) -> str:
    user = messages[-1]["content"]
    return "8 3" if "Assistant 1's Answer]\nA says" in user else "3 8"


def test_an_evaluation_without_one_verdict_exits_non_zero(tmp_path):
    """`alpagasus stage=compare` against a judge whose every reply is unreadable: exit 1, one
    message that says so, and no judge artifact (rating already refuses the same way)."""
    a = write_jsonl(tmp_path / "a.jsonl", ours(2, answer="A"))
    b = write_jsonl(tmp_path / "b.jsonl", ours(2, answer="B"))
    with fake_chat(lambda messages: "Both answers are fine.") as fake:
        out = subprocess.run(
            [sys.executable, "-m", "alpagasus", "stage=compare", f"compare.a={a}",
             f"compare.b={b}", "eval_judge=openai_compatible", f"eval_judge.base_url={fake.url}",
             "eval_judge.model=fake-judge", "logger.enabled=false", "rate.progress=false",
             f"paths.root={tmp_path}"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert len(fake.requests) == 4
    assert out.returncode == 1, out.stderr[-2000:]
    assert ("no verdict from eval_judge openai_compatible (fake-judge): all 4 replies for 2 "
            "prompts hold no pair of scores (4 unparsed") in out.stderr
    assert "fix: check eval_judge.model" in out.stderr and "Traceback" not in out.stderr
    assert not list((tmp_path / "artifacts" / "judge").glob("*/manifest.json"))


def test_one_readable_order_is_enough():
    """Only an evaluation with not one verdict stops: a single parsed reply is a result."""
    pairs = pair_answers(ours(2, answer="A"), ours(2, answer="B"))
    replies = [JudgeReply(text="8 3", status="ok")] + [JudgeReply(text="fine", status="ok")] * 3
    check_some_verdict(judgment_rows(pairs, replies), None, "cache.sqlite")  # no raise


@pytest.mark.slow
def test_pipeline_on_the_paper_sets_with_an_api_eval_judge(tiny_cfg, tmp_path):
    """The whole pipeline on the tiny config, the paper's four test sets as shipped (2 prompts
    each, no testsets.dir), the pairwise judge served over the OpenAI protocol."""
    with fake_chat(lambda messages: "7 5") as fake:  # Assistant 1 wins each order: ties
        cfg = tiny_cfg("testsets=paper", "testsets.limit=2", "eval_judge=openai_compatible",
                       f"eval_judge.base_url={fake.url}", "eval_judge.model=fake-judge",
                       "logger.enabled=false", "rate.progress=false")
        run(cfg)
        sent = len(fake.requests)
    report = json.loads(next((tmp_path / "artifacts" / "report").glob("*/report.json")).read_text())
    judgments = [json.loads(x) for x in next(
        (tmp_path / "artifacts" / "judge").glob("*/judgments.jsonl")).read_text().splitlines()]
    # 8 prompts x 2 orders, less the identical requests the engine sends once (the tiny
    # config's two arms may train on the same items and answer alike).
    distinct = {(question(j), *pair) for j in judgments
                for pair in ((j["answer_a"], j["answer_b"]), (j["answer_b"], j["answer_a"]))}
    assert len(judgments) == 8 and sent == len(distinct) >= 8
    assert all(j["verdict"] == "tie" for j in judgments)
    assert report["rule"] == "alpagasus"
    assert list(report["table"]) == ["koala", "sinstruct", "vicuna", "wizardlm", "all"]
    assert (report["table"]["all"]["tie"], report["table"]["all"]["unparsed"]) == (8, 0)
    assert set(report["categories"]) == {"vicuna", "wizardlm"}
    answers = [json.loads(x) for p in (tmp_path / "artifacts" / "generate").glob("*/answers.jsonl")
               for x in p.read_text().splitlines()]
    assert len(answers) == 16 and sum(bool(a["input"]) for a in answers) == 4  # sinstruct
