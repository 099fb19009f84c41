"""Stage `benchmark`: one benchmark on both arms' models, side by side.

`benchmark=open_llm` (the Open LLM Leaderboard tasks through lm-eval) or `benchmark=mt_bench`
(MT-Bench graded by `eval_judge`); each is a module of alpagasus/evals named by
`benchmark.kind`. The benchmark first reads and checks its inputs (lm-eval task names;
MT-Bench's questions, judge prompts and reference answers) before any model is trained or
loaded and before any judge call. Then each arm's model, the base with its LoRA adapter (or
a full fine-tune; with `benchmark.model_source=merged` the export stage's merge), is
evaluated into its own artifact keyed by that model, so a model two studies share is
benchmarked once. Last, the arms are compared metric by metric.

Output: benchmark.json ({"title", "benchmark", "arms", "rows": [{"metric", "a", "b",
"diff"}]}) and benchmark.md; each arm's results under the benchmark's stage (open_llm/,
mt_bench/). Everything is also logged to W&B (per arm, and the comparison table).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from alpagasus.arms import Arm
from alpagasus.artifacts import Artifact
from alpagasus.context import RunContext
from alpagasus.evals import ModelRef, get_benchmark
from alpagasus.stages import export, select, train
from alpagasus.stages.report import Section, report_section

BENCHMARK_JSON = "benchmark.json"
BENCHMARK_MD = "benchmark.md"


def run(ctx: RunContext) -> Artifact:
    return ctx.once("benchmark", lambda: _run(ctx))


def _run(ctx: RunContext) -> Artifact:
    spec = ctx.cfg.benchmark
    bench = get_benchmark(spec.kind)
    prepared = bench.prepare(ctx)  # every input checked: nothing trained, loaded or sent yet

    heads: dict[str, dict[str, float | None]] = {}
    keys: dict[str, str] = {}
    notes: list[str] = []  # each distinct describe() line, in arm order
    for role, arm in ctx.arms.items():
        result = bench.evaluate(ctx, arm, model_ref(ctx, arm), prepared)
        heads[role] = bench.headline(result, spec)
        note = bench.describe(result, spec)
        if note and note not in notes:
            notes.append(note)
        keys[role] = f"{result.stage}/{result.key}"
        ctx.finish_stage(result, heads[role], name=f"{spec.name}/{arm.name}")

    kept = {role: select.run(ctx, arm).counts["kept"] for role, arm in ctx.arms.items()}
    title = (f"{spec.name}: A = {ctx.arms['a'].label(kept['a'])} vs "
             f"B = {ctx.arms['b'].label(kept['b'])}")
    rows = compare(heads["a"], heads["b"])

    def build(workdir: Path) -> dict[str, Any]:
        arms = {role: {**arm.describe(), "kept": kept[role], "results": keys[role]}
                for role, arm in ctx.arms.items()}
        (workdir / BENCHMARK_JSON).write_text(json.dumps(
            {"title": title, "benchmark": spec.name, "kind": spec.kind, "arms": arms,
             "rows": rows, "notes": notes}, indent=2))
        (workdir / BENCHMARK_MD).write_text(format_comparison(title, rows, notes) + "\n")
        return {f"{role}/{r['metric']}": r[role] for r in rows for role in ("a", "b")
                if r[role] is not None}

    # The values are in the key: a benchmark whose reading changes (open_llm's `metric`)
    # gets a new comparison without re-running the evaluation.
    config = {"title": title, "rows": rows, **({"notes": notes} if notes else {})}
    artifact = ctx.store.ensure("benchmark", config, keys, build)
    print("\n" + format_comparison(title, rows, notes))
    print(f"\n{artifact.path / BENCHMARK_MD}")
    ctx.tracker.log_table(f"benchmark/{spec.name}", ["metric", "A", "B", "A - B"],
                          [[r["metric"], r["a"], r["b"], r["diff"]] for r in rows])
    return ctx.finish_stage(artifact, name=f"benchmark/{spec.name}")


def model_ref(ctx: RunContext, arm: Arm) -> ModelRef:
    """The arm's trained model as lm-eval and generation load it."""
    if getattr(ctx.cfg.benchmark.model_source, "value", ctx.cfg.benchmark.model_source) == "merged":
        exported = export.run_arm(ctx, arm)
        return ModelRef(str(exported.path / export.MODEL_DIR), None, f"export/{exported.key}")
    trained = train.run(ctx, arm)
    base, adapter = train.model_location(trained, ctx.cache_dir)
    return ModelRef(base, adapter, f"train/{trained.key}")


def compare(a: dict[str, float | None], b: dict[str, float | None]) -> list[dict[str, Any]]:
    """One row per metric of either arm, in A's order: A, B and A - B (None if either lacks it)."""
    rows = []
    for metric in [*a, *(m for m in b if m not in a)]:
        va, vb = a.get(metric), b.get(metric)
        diff = round(va - vb, 6) if va is not None and vb is not None else None
        rows.append({"metric": metric, "a": va, "b": vb, "diff": diff})
    return rows


def format_comparison(title: str, rows: list[dict[str, Any]],
                      notes: list[str] | None = None) -> str:
    def cell(v: float | None, signed: bool = False) -> str:
        if v is None:
            return "n/a"
        sign = "+" if signed else ""
        return f"{v:{sign}d}" if isinstance(v, int) else f"{v:{sign}.3f}"

    lines = [title, "", "| metric | A | B | A − B |", "|---|---:|---:|---:|"]
    lines += [f"| {r['metric']} | {cell(r['a'])} | {cell(r['b'])} | {cell(r['diff'], True)} |"
              for r in rows]
    if notes:
        lines += ["", *notes]
    return "\n".join(lines)


def read_comparison(artifact: Artifact) -> dict[str, Any]:
    return json.loads((artifact.path / BENCHMARK_JSON).read_text())


@report_section("benchmark")
def report_section_benchmark(ctx: RunContext) -> Section | None:
    """With `benchmark=open_llm|mt_bench`, the pipeline's report carries the comparison."""
    if ctx.cfg.get("benchmark") is None:
        return None
    artifact = run(ctx)
    data = read_comparison(artifact)
    return Section(title=data["title"], data={"benchmark": data["benchmark"], "rows": data["rows"]},
                   markdown=(artifact.path / BENCHMARK_MD).read_text(),
                   inputs={"comparison": artifact.key})
