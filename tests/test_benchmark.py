"""stage=benchmark: the Open LLM Leaderboard config, lm-eval on a local task (base, adapter,
both arms), the comparison table, and MT-Bench through the stage."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from alpagasus.config import ConfigError
from alpagasus.evals import BenchmarkError, ModelRef, benchmarks
from alpagasus.evals.open_llm import (
    check_batch_size,
    evaluate_model,
    include_fingerprint,
    missing_tasks,
    read_metric,
    resolve_batch_size,
    task_manager,
)
from alpagasus.main import run
from alpagasus.stages.benchmark import compare, format_comparison
from alpagasus.validation import validate
from tests.conftest import SHARED_DATA, TINY
from tests.servers import fake_chat

LEADERBOARD = [("arc_challenge", 25, "acc_norm,none"), ("hellaswag", 10, "acc_norm,none"),
               ("mmlu", 5, "acc,none"), ("truthfulqa_mc2", 0, "acc,none")]
TASK = "alpagasus_tiny_mc"
# Four questions a small model gets mostly right; two more as the few-shot pool.
QUESTIONS = [
    {"question": "What color is the sky on a clear day?", "choices": ["blue", "green", "red"], "answer": 0},
    {"question": "How many legs does a dog have?", "choices": ["two", "four", "six"], "answer": 1},
    {"question": "Which of these is a fruit?", "choices": ["carrot", "apple", "potato"], "answer": 1},
    {"question": "What is 2 + 2?", "choices": ["3", "5", "4"], "answer": 2},
]
SHOTS = [
    {"question": "What do bees make?", "choices": ["honey", "milk", "silk"], "answer": 0},
    {"question": "Which animal says moo?", "choices": ["cat", "cow", "duck"], "answer": 1},
]


@pytest.fixture
def local_task(tmp_path) -> Path:
    """An lm-eval multiple-choice task whose data are local JSONL files (no hub)."""
    folder = tmp_path / "lm_tasks"
    folder.mkdir()
    for name, rows in (("test", QUESTIONS), ("train", SHOTS)):
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / f"{TASK}.yaml").write_text(f"""task: {TASK}
dataset_path: json
dataset_kwargs:
  data_files:
    train: {folder / "train.jsonl"}
    test: {folder / "test.jsonl"}
training_split: train
fewshot_split: train
test_split: test
output_type: multiple_choice
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: "{{{{answer}}}}"
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
  - metric: acc_norm
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
""")
    return folder


def _local(folder: Path, metric: str = "acc_norm,none") -> list[str]:
    return [f"benchmark.include_path={folder}", "benchmark.builtin_tasks=false",
            f"benchmark.tasks=[{{task:{TASK},num_fewshot:1,metric:'{metric}'}}]"]


def test_registry_and_the_leaderboard_config(compose_cfg):
    assert {"open_llm", "mt_bench"} <= set(benchmarks())
    cfg = validate(compose_cfg("stage=benchmark", "benchmark=open_llm"))
    assert [(t.task, t.num_fewshot, t.metric) for t in cfg.benchmark.tasks] == LEADERBOARD
    assert cfg.benchmark.batch_size == "auto"
    with pytest.raises(ConfigError, match="benchmark.kind=bleu: not a benchmark"):
        validate(compose_cfg("benchmark=open_llm", "benchmark.kind=bleu"))
    with pytest.raises(ConfigError, match="stage=benchmark needs a benchmark"):
        validate(compose_cfg("stage=benchmark"))
    with pytest.raises(ConfigError, match=r"tasks\[1\]: arc_challenge is listed twice"):
        validate(compose_cfg("benchmark=open_llm", "benchmark.tasks=[{task:arc_challenge},"
                             "{task:arc_challenge}]"))
    with pytest.raises(ConfigError, match="num_fewshot=-1 must be >= 0"):
        validate(compose_cfg("benchmark=open_llm", "benchmark.tasks=[{task:x,num_fewshot:-1}]"))


@pytest.mark.parametrize("value, ok", [("auto", True), ("auto:4", True), ("8", True),
                                       ("0", False), ("fast", False), ("auto:x", False)])
def test_batch_size_values(value, ok):
    if ok:
        check_batch_size(value)
    else:
        with pytest.raises(ConfigError, match="benchmark.batch_size"):
            check_batch_size(value)


def test_auto_batch_size_is_fixed_on_cpu():
    assert resolve_batch_size("auto", "cpu", 8) == "8"
    assert resolve_batch_size("auto:2", "cpu", 4) == "4"
    assert resolve_batch_size("auto", "cuda", 8) == "auto"
    assert resolve_batch_size("16", "cpu", 8) == "16"


def test_reading_metrics_and_comparing_arms(local_task):
    results = {"results": {"arc_challenge": {"acc_norm,none": 0.5, "acc,none": 0.4}},
               "groups": {"mmlu": {"acc,none": 0.3}}}
    assert read_metric(results, "arc_challenge", "acc_norm,none") == 0.5
    assert read_metric(results, "mmlu", "acc,none") == 0.3
    assert read_metric(results, "mmlu", "acc_norm,none") is None
    rows = compare({"arc": 0.5, "avg": None}, {"arc": 0.25, "avg": 0.3, "extra": 2})
    assert rows == [{"metric": "arc", "a": 0.5, "b": 0.25, "diff": 0.25},
                    {"metric": "avg", "a": None, "b": 0.3, "diff": None},
                    {"metric": "extra", "a": None, "b": 2, "diff": None}]
    table = format_comparison("t", rows)
    assert "| arc | 0.500 | 0.250 | +0.250 |" in table and "| avg | n/a | 0.300 | n/a |" in table
    assert "| extra | n/a | 2 | n/a |" in table
    before = include_fingerprint(str(local_task))
    (local_task / f"{TASK}.yaml").write_text((local_task / f"{TASK}.yaml").read_text() + "\n# v2\n")
    assert include_fingerprint(str(local_task)) != before and include_fingerprint(None) is None


def test_unknown_task_names_stop_before_any_model(tiny_cfg, tmp_path, local_task):
    manager = task_manager(str(local_task), builtin_tasks=False)
    assert manager.all_tasks == [TASK]
    assert missing_tasks([TASK + "s", TASK], manager.all_tasks) == [
        f"{TASK}s (did you mean {TASK}?)"]
    cfg = tiny_cfg("stage=benchmark", "benchmark=open_llm", f"benchmark.include_path={local_task}",
                   "benchmark.builtin_tasks=false", "benchmark.tasks=[{task:tiny_mcq}]",
                   "logger.enabled=false")
    with pytest.raises(BenchmarkError, match=rf"not in the YAMLs in {local_task}: tiny_mcq"):
        run(cfg)
    assert not (tmp_path / "artifacts").exists()  # nothing rated or trained first
    with pytest.raises(BenchmarkError, match="not a folder"):
        task_manager(str(tmp_path / "nowhere"), builtin_tasks=False)


@pytest.mark.slow
def test_lm_eval_knows_the_leaderboard_tasks_offline():
    """The real task names resolve in lm-eval's own index (no download: the index is YAML)."""
    manager = task_manager(None, builtin_tasks=True)
    assert missing_tasks([t for t, _, _ in LEADERBOARD], manager.all_tasks) == []
    assert missing_tasks(["arc_challange"], manager.all_tasks)[0].startswith(
        "arc_challange (did you mean arc_challenge")


@pytest.mark.slow
def test_lm_eval_on_the_embedded_model_with_and_without_an_adapter(tmp_path, local_task,
                                                                     compose_cfg):
    """A LoRA adapter loads through lm-eval's peft=; a freshly initialised one (B = 0) leaves
    every log-likelihood, hence every score, as the base model's."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from alpagasus.models import resolve_model_path

    base = resolve_model_path("embedded:smollm2", compose_cfg().paths.cache)
    adapter = tmp_path / "adapter"
    get_peft_model(AutoModelForCausalLM.from_pretrained(base),
                   LoraConfig(r=4, target_modules=["q_proj", "v_proj"])).save_pretrained(adapter)
    manager = task_manager(str(local_task), builtin_tasks=False)
    task = type("T", (), {"task": TASK, "num_fewshot": 1, "metric": "acc,none"})
    plain = evaluate_model(ModelRef(base, None, "base"), [task], manager, "4", 8, None)
    peft = evaluate_model(ModelRef(base, str(adapter), "lora"), [task], manager, "4", 8, None)
    assert plain["model"]["model_class"] != peft["model"]["model_class"]
    assert peft["model"]["model_class"].startswith("Peft")
    assert plain["n-shot"] == {TASK: 1} and plain["n-samples"][TASK]["effective"] == 4
    for metric in ("acc,none", "acc_norm,none"):
        assert plain["results"][TASK][metric] == peft["results"][TASK][metric]
    assert plain["results"][TASK]["acc_norm,none"] >= 0.5  # the model is not guessing


@pytest.mark.slow
def test_stage_benchmark_on_both_arms(trained_root, compose_cfg, local_task, caplog):
    """`stage=benchmark` on the tiny pipeline's two trained arms: open_llm on the local task,
    then MT-Bench on two questions with a local judge server; reruns reuse everything."""
    caplog.set_level(logging.INFO, logger="alpagasus")
    common = [*TINY, f"paths.root={trained_root}", "stage=benchmark", "logger.enabled=false"]
    artifacts = Path(trained_root) / "artifacts"

    run(compose_cfg(*common, "benchmark=open_llm", *_local(local_task)))
    per_arm = sorted(artifacts.glob("open_llm/*/results.json"))
    assert len(per_arm) == 2
    roles = set()
    for path in per_arm:
        results = json.loads(path.read_text())
        manifest = json.loads((path.parent / "manifest.json").read_text())
        roles.add(manifest["meta"]["arm"]["role"])
        assert manifest["inputs"]["model"].startswith("train/")
        assert results["model"]["adapter"].endswith("/model")  # base + the arm's LoRA (peft=)
        assert results["model"]["model_class"].startswith("Peft")
        assert results["n-shot"] == {TASK: 1}
        assert 0 <= json.loads((path.parent / "scores.json").read_text())[TASK] <= 1
    assert roles == {"a", "b"}
    [comparison] = [json.loads(p.read_text()) for p in artifacts.glob("benchmark/*/benchmark.json")]
    assert comparison["title"].startswith("open_llm: A = local≥1.5 (")
    assert [r["metric"] for r in comparison["rows"]] == [TASK, "average"]
    row = comparison["rows"][0]
    assert row["diff"] == pytest.approx(row["a"] - row["b"])

    caplog.clear()  # a second run: every artifact reused, nothing evaluated again
    run(compose_cfg(*common, "benchmark=open_llm", *_local(local_task)))
    assert [r.message for r in caplog.records if "building artifact" in r.message] == []
    # Reading another metric re-reads the stored results: only the comparison is new.
    run(compose_cfg(*common, "benchmark=open_llm", *_local(local_task, "acc,none")))
    assert len(list(artifacts.glob("open_llm/*/results.json"))) == 2
    assert len(list(artifacts.glob("benchmark/*/benchmark.json"))) == 2

    mt_bench = SHARED_DATA / "mt_bench"
    if not mt_bench.is_dir():
        pytest.skip(f"{mt_bench} not present")
    with fake_chat(lambda messages: "Clear and correct.\nRating: [[6]]") as judge:
        run(compose_cfg(*common, "benchmark=mt_bench", f"benchmark.path={mt_bench}",
                        "benchmark.question_ids=[81,111]", "benchmark.max_new_tokens=8",
                        "eval_judge=gpt4", f"eval_judge.base_url={judge.url}",
                        "rate.progress=false"))
        # 2 arms x 2 questions x 2 turns, each sent once: two arms that answer alike (8 greedy
        # tokens from two barely trained adapters) share the judge's cached replies.
        sent = [json.dumps(r["messages"]) for r in judge.requests]
        assert 4 <= len(sent) <= 8 and len(set(sent)) == len(sent)
    judged = [p.read_text().splitlines() for p in artifacts.glob("mt_bench/*/judgments.jsonl")]
    assert sorted(len(rows) for rows in judged) == [4, 4]
    assert len(list(artifacts.glob("mt_bench_answers/*/answers.jsonl"))) == 2
    scores = [json.loads(p.read_text()) for p in artifacts.glob("mt_bench/*/scores.json")]
    assert [s["all"] for s in scores] == [{"turn_1": 6.0, "turn_2": 6.0, "overall": 6.0, "n": 4,
                                           "unparsed": 0}] * 2
    [mt] = [c for c in (json.loads(p.read_text()) for p in artifacts.glob("benchmark/*/benchmark.json"))
            if c["benchmark"] == "mt_bench"]
    assert [r["metric"] for r in mt["rows"]] == ["mt_bench", "turn_1", "turn_2", "math",
                                                 "writing", "unparsed"]
    assert mt["rows"][0] == {"metric": "mt_bench", "a": 6.0, "b": 6.0, "diff": 0.0}
