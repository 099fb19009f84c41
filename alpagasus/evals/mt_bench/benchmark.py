"""The `mt_bench` benchmark: MT-Bench's files checked before any model loads, each arm's answers,
the eval judge's grades, and the headline numbers of the comparison report."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from alpagasus.arms import Arm
from alpagasus.artifacts import Artifact
from alpagasus.config import ConfigError
from alpagasus.context import RunContext
from alpagasus.evals import Benchmark, ModelRef, register_benchmark
from alpagasus.evals.mt_bench.answers import (
    CONVERSATION_FORMAT,
    describe_sampling,
    generate_answers,
    sampling_settings,
)
from alpagasus.evals.mt_bench.files import MTBench, load_mt_bench
from alpagasus.evals.mt_bench.grading import (
    MT_PARSER_VERSION,
    aggregate,
    check_some_rating,
    judge_config,
    judge_messages,
    parse_mt_rating,
)
from alpagasus.judges import judge_identity, make_judge
from alpagasus.judges.engine import EngineOptions
from alpagasus.parsing import ParsedScore
from alpagasus.shipped import shipped_path

log = logging.getLogger("alpagasus.evals.mt_bench")

ANSWERS = "answers.jsonl"
JUDGMENTS = "judgments.jsonl"
SCORES = "scores.json"


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
