"""Stage `report`: win/tie/lose per test set, per category and overall, the winning score
with its uncertainty, and the paper's bar chart.

Winning score = (#win - #lose) / N + 1, over the N prompts whose two judge replies could
both be read (unparsed ones are counted and shown, not scored). The two answer orders are
combined under `report.rule` (alpagasus | strict; alpagasus/stages/judge.py; or expected:
each answer's expected score averaged over both orders, alpagasus/pair_expected.py; auto,
the default: expected when eval_judge.score_mode=expected, else alpagasus), which the
report names, with the judge's position bias in words. Every winning score comes with a percentile bootstrap CI (prompts resampled,
seeded) and a one-sided sign-test p-value for "A better than B" (alpagasus/stats.py).
Categories: Vicuna's `category`, WizardLM's `Skill` (sets without one have no category rows).

Output: report.json, report.md, win_tie_lose.png (test sets and overall, with CI error
bars), categories.png (when any set has categories).

report.json keys: "title", "rule", "rule_text", "ci" (level, resamples, seed, method),
"table" ({set or "all": row}; the sweep report reads these rows), "categories" ({set:
{category: row}}), "sections" ({name: data} from registered report sections) and, in the
pipeline, "model" and "arms". A row: win, tie, lose, unparsed, n, winning_score,
order_agreement, ci_low, ci_high, p_value.

More results (benchmarks, MT-Bench, a human study) join the report as *sections*: a
function registered with ``@report_section("name")`` returns a ``Section`` (or None when it
does not apply to this run); its data lands in report.json["sections"][name], its markdown
after the table in report.md, its artifact keys in the report's key.
"""

from __future__ import annotations

import importlib
import json
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alpagasus.artifacts import Artifact
from alpagasus.config import AggregationRule
from alpagasus.context import RunContext
from alpagasus.errors import AlpagasusError
from alpagasus.pair_expected import describe_bias, expected_verdict, position_bias
from alpagasus.stages import judge, select
from alpagasus.stats import bootstrap_ci, sign_test, winning_score

REPORT = "report.json"
REPORT_MD = "report.md"
PLOT = "win_tie_lose.png"
CATEGORY_PLOT = "categories.png"
OVERALL = "all"

RULE_TEXT = {
    AggregationRule.alpagasus: "alpagasus (the paper's: two wins, or a win and a tie, = win)",
    AggregationRule.strict: "strict (FastChat's: a win only when both orders agree; "
                            "orders that disagree = tie)",
    AggregationRule.expected: "expected (each answer's expected score averaged over both "
                              "orders, the higher wins: position bias cancels)",
}


class ReportError(AlpagasusError, ValueError):
    """The report cannot be built as configured."""


def resolve_rule(rule: AggregationRule | str, eval_judge: Any) -> AggregationRule:
    """report.rule=auto: expected when the evaluation judge gives expected scores."""
    rule = AggregationRule(rule)
    if rule != AggregationRule.auto:
        return rule
    mode = str(getattr(eval_judge.score_mode, "value", eval_judge.score_mode))
    return AggregationRule.expected if mode == "expected" else AggregationRule.alpagasus
TABLE_COLUMNS = ["test set", "win", "tie", "lose", "unparsed", "n", "winning_score", "ci_low",
                 "ci_high", "p_value", "order_agreement"]


@dataclass(frozen=True)
class Stats:
    """How the uncertainty is computed (report.ci_level, bootstrap_resamples, bootstrap_seed)."""

    level: float = 0.95
    resamples: int = 2000
    seed: int = 0

    def describe(self) -> dict[str, Any]:
        return {"level": self.level, "resamples": self.resamples, "seed": self.seed,
                "method": "percentile bootstrap over prompts",
                "p_value": "one-sided exact sign test, A better than B, ties excluded"}


# --- pure core -------------------------------------------------------------------------------


def prompt_verdict(j: dict[str, Any], rule: AggregationRule | str, margin: float = 0.01) -> str:
    """A judgment's verdict under ``rule``, from its two order verdicts (older judgments
    without them keep their stored verdict), or for rule expected its expected means."""
    if AggregationRule(rule) == AggregationRule.expected:
        return expected_verdict(j, margin)
    if "verdict_a_first" not in j:
        return j["verdict"]
    return judge.combine(j["verdict_a_first"], j["verdict_b_first"], rule)


def summarize(verdicts: list[str], agreements: list[bool], stats: Stats) -> dict[str, Any]:
    """One table row from the verdicts of its prompts (agreements: per scored prompt, did
    both orders give the same verdict)."""
    win, tie, lose = (verdicts.count(v) for v in ("win", "tie", "lose"))
    n = win + tie + lose
    score = winning_score(win, tie, lose)
    ci = bootstrap_ci([v for v in verdicts if v != "unparsed"], stats.resamples, stats.level,
                      stats.seed)
    return {
        "win": win, "tie": tie, "lose": lose, "unparsed": verdicts.count("unparsed"), "n": n,
        "winning_score": None if score is None else round(score, 4),
        "order_agreement": round(sum(agreements) / n, 4) if n else None,
        "ci_low": None if ci is None else round(ci.low, 4),
        "ci_high": None if ci is None else round(ci.high, 4),
        "p_value": round(sign_test(win, lose), 6),
    }


def _groups(judgments: Iterable[dict[str, Any]], rule: AggregationRule | str,
            key: Callable[[dict[str, Any]], list[str]],
            margin: float = 0.01) -> dict[str, tuple[list, list]]:
    groups: dict[str, tuple[list[str], list[bool]]] = defaultdict(lambda: ([], []))
    for j in judgments:
        verdict = prompt_verdict(j, rule, margin)
        agree = verdict != "unparsed" and j.get("verdict_a_first") == j.get("verdict_b_first")
        for name in key(j):
            groups[name][0].append(verdict)
            if verdict != "unparsed":
                groups[name][1].append(agree)
    return groups


def tally(judgments: list[dict[str, Any]], rule: AggregationRule | str = AggregationRule.alpagasus,
          stats: Stats = Stats(), margin: float = 0.01) -> dict[str, dict[str, Any]]:
    """Per test set and overall ("all", last): see ``summarize`` for a row.

    ``order_agreement``: the fraction of scored prompts whose two orders gave the same
    verdict; low values mean the judge's position bias decided the outcome.
    """
    groups = _groups(judgments, rule, lambda j: [j["testset"], OVERALL], margin)
    table = {name: summarize(*groups[name], stats) for name in groups}
    return dict(sorted(table.items(), key=lambda kv: (kv[0] == OVERALL, kv[0])))


def tally_categories(judgments: list[dict[str, Any]],
                     rule: AggregationRule | str = AggregationRule.alpagasus,
                     stats: Stats = Stats(),
                     margin: float = 0.01) -> dict[str, dict[str, dict[str, Any]]]:
    """{test set: {category: row}} for the sets whose prompts carry a category."""
    groups = _groups([j for j in judgments if j.get("category") is not None], rule,
                     lambda j: [f"{j['testset']}\x00{j['category']}"], margin)
    out: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for name in sorted(groups):
        testset, category = name.split("\x00", 1)
        out[testset][category] = summarize(*groups[name], stats)
    return dict(out)


def _num(value: float | None, fmt: str) -> str:
    return "n/a" if value is None else format(value, fmt)


def _p(value: float) -> str:
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def table_rows(table: dict[str, dict[str, Any]],
               categories: dict[str, dict[str, dict[str, Any]]]) -> list[tuple[str, dict]]:
    """(label, row) in print order: each set, then its categories, then overall."""
    rows = []
    for name, row in table.items():
        rows.append((name, row))
        rows += [(f"{name} / {cat}", r) for cat, r in categories.get(name, {}).items()]
    return rows


def format_table(table: dict[str, dict[str, Any]], title: str,
                 categories: dict[str, dict[str, dict[str, Any]]] | None = None,
                 rule: AggregationRule | str | None = None, level: float = 0.95) -> str:
    head = [title] + ([f"rule: {RULE_TEXT[AggregationRule(rule)]}"] if rule is not None else [])
    lines = [*head, "",
             f"| test set | win | tie | lose | unparsed | N | winning score | {level:.0%} CI "
             "| p (A>B) | order agreement |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in table_rows(table, categories or {}):
        ci = ("n/a" if r.get("ci_low") is None
              else f"[{r['ci_low']:.3f}, {r['ci_high']:.3f}]")
        p = _p(r["p_value"]) if r.get("p_value") is not None else "n/a"
        lines.append(f"| {name} | {r['win']} | {r['tie']} | {r['lose']} | {r['unparsed']} "
                     f"| {r['n']} | {_num(r['winning_score'], '.3f')} | {ci} | {p} "
                     f"| {_num(r['order_agreement'], '.0%')} |")
    return "\n".join(lines)


# --- plot ------------------------------------------------------------------------------------


def plot(rows: list[tuple[str, dict[str, Any]]], title: str, path: Path,
         level: float = 0.95) -> None:
    """Left: the paper's stacked win/tie/lose bars; right: each winning score with its CI
    as an error bar, the line at 1.0 (a draw) and the sign test's p."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [name for name, _ in rows]
    height = 0.45 * len(names) + 1.9
    fig, (ax, ax_ws) = plt.subplots(1, 2, sharey=True, figsize=(11, height),
                                    gridspec_kw={"width_ratios": [3, 2]})
    left = [0.0] * len(names)
    for outcome, color in (("win", "#4c9a5e"), ("tie", "#c9c9c9"), ("lose", "#c8553d")):
        values = [r[outcome] for _, r in rows]
        ax.barh(names, values, left=left, color=color, label=outcome.capitalize())
        for i, v in enumerate(values):
            if v:
                ax.text(left[i] + v / 2, i, str(v), ha="center", va="center", fontsize=8)
        left = [a + b for a, b in zip(left, values, strict=True)]
    ax.invert_yaxis()
    ax.set_xlabel("prompts (each judged in both answer orders)")

    for i, (_, r) in enumerate(rows):
        if r["winning_score"] is None:
            continue
        ws = r["winning_score"]
        err = [[ws - r["ci_low"]], [r["ci_high"] - ws]] if r.get("ci_low") is not None else None
        ax_ws.errorbar([ws], [i], xerr=err, fmt="o", color="#2c4f7c", capsize=3, markersize=4)
        if r.get("p_value") is not None:
            p = _p(r["p_value"])
            ax_ws.annotate(f"p{p}" if p.startswith("<") else f"p={p}", (ws, i), xytext=(0, 6),
                           textcoords="offset points", ha="center", fontsize=7)
    ax_ws.axvline(1.0, color="#888888", linestyle="--", linewidth=0.8)
    ax_ws.set_xlim(-0.05, 2.05)  # the winning score's range, 0 to 2
    ax_ws.set_xlabel(f"winning score, {level:.0%} bootstrap CI")
    fig.suptitle(title, fontsize=10)
    fig.legend(*ax.get_legend_handles_labels(), loc="lower center", ncol=3, fontsize=8,
               frameon=False)
    fig.tight_layout(rect=(0, 0.35 / height, 1, 1))  # room for the legend below
    fig.savefig(path, dpi=120)
    plt.close(fig)


# --- sections: other results joining the report ------------------------------------------------


@dataclass(frozen=True)
class Section:
    title: str
    data: dict[str, Any]  # -> report.json["sections"][name]
    markdown: str = ""  # -> report.md, after the pairwise table
    inputs: dict[str, str] = field(default_factory=dict)  # artifact keys it was built from


SectionFn = Callable[[RunContext], "Section | None"]
SECTIONS: dict[str, SectionFn] = {}
# Modules that register sections, imported before a report is built (lm-eval, MT-Bench, ...).
SECTION_MODULES: tuple[str, ...] = ("alpagasus.stages.benchmark", "alpagasus.stages.human")


def report_section(name: str) -> Callable[[SectionFn], SectionFn]:
    def register(fn: SectionFn) -> SectionFn:
        if name in SECTIONS:
            raise ValueError(f"report section '{name}' is registered twice")
        SECTIONS[name] = fn
        return fn

    return register


def collect_sections(ctx: RunContext) -> dict[str, Section]:
    for module in SECTION_MODULES:
        importlib.import_module(module)
    found = {name: fn(ctx) for name, fn in SECTIONS.items()}
    return {name: s for name, s in found.items() if s is not None}


# --- stage -----------------------------------------------------------------------------------


def comparison_label(a: str, b: str, judge_name: str) -> str:
    """"A = chatgpt≥4.5 (9,229) vs B = random (9,229); judge gpt4"."""
    return f"A = {a} vs B = {b}; judge {judge_name}"


def run(ctx: RunContext) -> Artifact:
    return ctx.once("report", lambda: _run(ctx))


def _run(ctx: RunContext) -> Artifact:
    judged = judge.run(ctx)
    kept = {role: select.run(ctx, arm).counts["kept"] for role, arm in ctx.arms.items()}
    label = comparison_label(ctx.arms["a"].label(kept["a"]), ctx.arms["b"].label(kept["b"]),
                             ctx.cfg.eval_judge.name)
    extra = {"model": ctx.cfg.model.name,
             "arms": {role: {**arm.describe(), "kept": kept[role]}
                      for role, arm in ctx.arms.items()}}
    return build_report(ctx, judged, label, extra)


def run_compare(ctx: RunContext) -> Artifact:
    """stage=compare: judge two answer files (compare.a, compare.b) and report."""
    return ctx.once("report", lambda: _run_compare(ctx))


def _run_compare(ctx: RunContext) -> Artifact:
    judged = judge.run_files(ctx)
    name_a, name_b = judge.compare_names(ctx)
    label = comparison_label(name_a, name_b, ctx.cfg.eval_judge.name)
    extra = {"answers": {"a": str(ctx.cfg.compare.a), "b": str(ctx.cfg.compare.b)}}
    return build_report(ctx, judged, label, extra)


def build_report(ctx: RunContext, judged: Artifact, label: str,
                 extra: dict[str, Any]) -> Artifact:
    r = ctx.cfg.report
    rule = resolve_rule(r.rule, ctx.cfg.eval_judge)
    margin = float(r.expected_tie_margin)
    stats = Stats(level=r.ci_level, resamples=r.bootstrap_resamples, seed=r.bootstrap_seed)
    sections = collect_sections(ctx)
    config = {"label": label, "rule": rule.value, "ci": stats.describe(), **extra}
    if rule == AggregationRule.expected:  # only then: other reports keep their keys
        config["expected_tie_margin"] = margin
    inputs = {"judgments": judged.key,
              **{f"{name}/{k}": v for name, s in sections.items() for k, v in s.inputs.items()}}

    def build(workdir: Path) -> dict[str, Any]:
        judgments = judge.read_judgments(judged)
        if rule == AggregationRule.expected and not any("expected_a" in j for j in judgments):
            raise ReportError(
                "report.rule=expected, but the judgments hold no expected scores (eval_judge "
                f"{ctx.cfg.eval_judge.name}, score_mode={ctx.cfg.eval_judge.score_mode})",
                hint="set eval_judge.score_mode=expected, or report.rule=alpagasus|strict")
        table = tally(judgments, rule, stats, margin)
        categories = tally_categories(judgments, rule, stats, margin)
        bias = position_bias(judgments)
        report = {"title": label, "rule": rule.value, "rule_text": RULE_TEXT[rule],
                  "position_bias": {**bias, "text": describe_bias(bias)},
                  "ci": stats.describe(), "table": table, "categories": categories,
                  "sections": {name: {"title": s.title, **s.data}
                               for name, s in sections.items()}, **extra}
        (workdir / REPORT).write_text(json.dumps(report, indent=2, ensure_ascii=False))
        md = [format_table(table, label, categories, rule, stats.level)]
        if report["position_bias"]["text"]:
            md.append(report["position_bias"]["text"])
        md += [f"## {s.title}\n\n{s.markdown}" for s in sections.values() if s.markdown]
        (workdir / REPORT_MD).write_text("\n\n".join(md) + "\n")
        plot(list(table.items()), f"{label}\nrule {rule.value}", workdir / PLOT, stats.level)
        if categories:
            plot([(f"{name} / {cat}", row) for name, cats in categories.items()
                  for cat, row in cats.items()],
                 f"{label}: per category\nrule {rule.value}", workdir / CATEGORY_PLOT,
                 stats.level)
        return {k: table[OVERALL][k] for k in ("winning_score", "ci_low", "ci_high", "p_value",
                                               "order_agreement", "win", "tie", "lose",
                                               "unparsed", "n")}

    artifact = ctx.store.ensure("report", config, inputs, build)
    report = json.loads((artifact.path / REPORT).read_text())
    print("\n" + format_table(report["table"], report["title"], report.get("categories"),
                              report.get("rule"), report.get("ci", {}).get("level", 0.95)))
    if (report.get("position_bias") or {}).get("text"):
        print("\n" + report["position_bias"]["text"])
    print(f"\nplot: {artifact.path / PLOT}")
    rows = table_rows(report["table"], report.get("categories", {}))
    ctx.tracker.log_table("report/win_tie_lose", TABLE_COLUMNS,
                          [[name, *(row.get(c) for c in TABLE_COLUMNS[1:])] for name, row in rows])
    ctx.tracker.log_image("report/plot", artifact.path / PLOT)
    return ctx.finish_stage(artifact)
