"""Passes beyond the comparison's own: MT-Bench (answers and judge, once per distinct model,
when ``benchmark=mt_bench`` makes the pipeline's report run it) and the optional stage=noise.
Pure functions of the config and what the planner found; nothing is sent or loaded.
"""

from __future__ import annotations

from typing import Any

from alpagasus.arms import Arm
from alpagasus.artifacts import artifact_key
from alpagasus.data import Item
from alpagasus.evals.mt_bench import judge_messages, load_mt_bench
from alpagasus.judges import judge_identity
from alpagasus.noise import noise_request_count, sample_positions
from alpagasus.planning import counting
from alpagasus.planning.estimate import (
    ApiPass,
    Arch,
    Machine,
    api_pass,
    decode_tokens_per_s,
    inference_memory,
)
from alpagasus.planning.study import once_by_key
from alpagasus.prompts import rating_messages, rating_prompt
from alpagasus.shipped import shipped_path


def judge_pass(j: Any, requests: int, input_tokens: int, max_tokens: int,
               batch: bool = False) -> ApiPass:
    """``api_pass`` at a judge config's prices and limits (a local judge costs nothing)."""
    local = str(j.backend) == "local"
    return api_pass(requests, input_tokens, max_tokens, 0.0 if local else j.price_input_per_mtok,
                    0.0 if local else j.price_output_per_mtok, batch, j.batch_price_factor,
                    j.concurrency, j.requests_per_minute, j.tokens_per_minute)


def _tokens(messages: list[dict[str, str]]) -> int:
    return counting.chars_tokens(sum(len(m["content"]) for m in messages))


def noise_analysis(cfg: Any, arm: Arm, unique: list[Item]) -> dict[str, Any]:
    """stage=noise re-rates a seeded sample k times with arm A's judge (alpagasus/noise.py
    counts its requests); tokens from the very items it would draw, not from every item."""
    j, n = cfg.judge, cfg.noise
    requests = noise_request_count(cfg, len(unique))
    template = rating_prompt(arm.prompt)
    sampled = [unique[p] for p in sample_positions(len(unique), n.sample, n.seed)]
    per_item = sum(_tokens(rating_messages(template, it)) for it in sampled) / len(sampled)
    api = judge_pass(j, requests, round(per_item * requests), j.max_tokens)
    return {"name": "noise", "stage": "noise", "judge": j.name, "sample": n.sample,
            "repeats": n.repeats, "requests": api.requests, "input_tokens": api.input_tokens,
            "output_tokens": api.output_tokens, "usd": round(api.usd, 4),
            "token_count": "estimate: chars/4",
            "note": "optional (`stage=noise`): requests beyond the rating's own; replies "
                    "already cached cost nothing"}


def mt_bench(cfg: Any, trainings: dict[str, dict[str, Any]], machine: Machine,
             arch: Arch | None) -> dict[str, list[dict[str, Any]]]:
    """MT-Bench per distinct model (an arm's training): its answers (both turns, each at
    ``benchmark.max_new_tokens``) and its judge pass (FastChat's single-answer grading, one
    request per question and turn, the answers in the prompts at their bound)."""
    spec, j = cfg.benchmark, cfg.eval_judge
    if getattr(spec, "kind", None) != "mt_bench":
        return {}
    bench = load_mt_bench(spec.path or shipped_path("mt_bench"), spec.question_ids,
                          int(spec.limit) if spec.limit else None)
    turns = [m for q in bench.questions for _, m in judge_messages(q, ["", ""], bench.prompts)]
    # Turn 2's prompt holds both answers, turn 1's one: 3 answers per question at the bound.
    answers = 3 * len(bench.questions) * spec.max_new_tokens
    api = judge_pass(j, len(turns), sum(_tokens(m) for m in turns) + answers,
                     spec.judge_max_tokens)
    setup = {"questions": [q.question_id for q in bench.questions],
             "max_new_tokens": spec.max_new_tokens}
    judged = {"benchmark": "mt_bench", "judge": judge_identity(j), **setup}
    prompts = 2 * len(bench.questions)  # both turns
    new_tokens = prompts * spec.max_new_tokens
    evaluations, generations = {}, {}
    for role, t in trainings.items():
        evaluations[role] = {
            "name": f"MT-Bench: {t['name']}", "judge": j.name, "model": j.model,
            "prompts": len(bench.questions), "requests": api.requests, "cached": 0,
            "input_tokens": api.input_tokens, "output_tokens": api.output_tokens,
            "usd": round(api.usd, 4), "wall_hours": round(api.wall_s / 3600, 3),
            "reused": False, "key": artifact_key(judged, {"model": t["key"]}),
            "bound": f"upper bound: answers {spec.max_new_tokens} tokens",
            "token_count": "estimate: chars/4"}
        entry: dict[str, Any] = {
            "name": f"MT-Bench answers: {t['name']}", "role": role, "prompts": prompts,
            "new_tokens": new_tokens, "reused": False,
            "key": artifact_key({"benchmark": "mt_bench_answers", **setup}, {"model": t["key"]}),
            "fits": None, "gpu_hours": None, "wall_hours": None}
        if arch is not None:
            # Turn 2's context: both questions and the first answer, then its own answer.
            longest = max(_tokens([{"content": "".join(q.turns)}]) for q in bench.questions)
            memory = inference_memory(arch, cfg.generate.batch_size,
                                      longest + 2 * spec.max_new_tokens, machine.is_gpu)
            wall = new_tokens / decode_tokens_per_s(arch, machine, cfg.generate.batch_size) / 3600
            entry.update(peak_memory_gib=round(memory.total_gib, 2),
                         fits=memory.total_gib <= machine.memory_gib,
                         wall_hours=round(wall, 4), gpu_hours=round(wall, 4))
        generations[role] = entry
    return {"evaluations": once_by_key(evaluations), "generations": once_by_key(generations)}
