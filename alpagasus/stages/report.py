"""Stage `report`: win/tie/lose per test set, the winning score, and the paper's bar chart.

Winning score = (#win - #lose) / N + 1, over the N prompts whose two judge replies could
both be read (unparsed ones are counted and shown, not scored).
Output: report.json, report.md, win_tie_lose.png.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from alpagasus.artifacts import Artifact
from alpagasus.context import RunContext
from alpagasus.stages import judge, select

REPORT = "report.json"
PLOT = "win_tie_lose.png"


def tally(judgments: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per test set and overall ("all"): win, tie, lose, unparsed, n, winning_score.

    ``order_agreement``: the fraction of scored prompts whose two orders gave the same
    verdict; low values mean the judge's position bias decided the outcome.
    """
    groups: dict[str, Counter[str]] = defaultdict(Counter)
    for j in judgments:
        agree = j["verdict"] != "unparsed" and j.get("verdict_a_first") == j.get("verdict_b_first")
        for name in (j["testset"], "all"):
            groups[name][j["verdict"]] += 1
            groups[name]["agree"] += agree
    table = {}
    for name, c in groups.items():
        n = c["win"] + c["tie"] + c["lose"]
        table[name] = {
            "win": c["win"], "tie": c["tie"], "lose": c["lose"], "unparsed": c["unparsed"],
            "n": n, "winning_score": round((c["win"] - c["lose"]) / n + 1, 4) if n else None,
            "order_agreement": round(c["agree"] / n, 4) if n else None,
        }
    return dict(sorted(table.items(), key=lambda kv: (kv[0] == "all", kv[0])))


def format_table(table: dict[str, dict[str, Any]], title: str) -> str:
    lines = [f"{title}", "",
             "| test set | win | tie | lose | unparsed | N | winning score | order agreement |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in table.items():
        ws = "n/a" if r["winning_score"] is None else f"{r['winning_score']:.3f}"
        agree = "n/a" if r["order_agreement"] is None else f"{r['order_agreement']:.0%}"
        lines.append(f"| {name} | {r['win']} | {r['tie']} | {r['lose']} | {r['unparsed']} "
                     f"| {r['n']} | {ws} | {agree} |")
    return "\n".join(lines)


def plot(table: dict[str, dict[str, Any]], title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(table)
    fig, ax = plt.subplots(figsize=(8, 0.6 * len(names) + 1.6))
    left = [0.0] * len(names)
    for outcome, color in (("win", "#4c9a5e"), ("tie", "#c9c9c9"), ("lose", "#c8553d")):
        values = [table[n][outcome] for n in names]
        ax.barh(names, values, left=left, color=color, label=outcome.capitalize())
        for i, v in enumerate(values):
            if v:
                ax.text(left[i] + v / 2, i, str(v), ha="center", va="center", fontsize=9)
        left = [a + b for a, b in zip(left, values, strict=True)]
    ax.invert_yaxis()
    ax.set_xlabel("prompts (each judged in both answer orders)")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.25), ncol=3, fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def comparison_label(a: str, b: str, judge_name: str) -> str:
    """"A = chatgpt≥4.5 (9,229) vs B = random (9,229); judge gpt4"."""
    return f"A = {a} vs B = {b}; judge {judge_name}"


def run(ctx: RunContext) -> Artifact:
    return ctx.once("report", lambda: _run(ctx))


def _run(ctx: RunContext) -> Artifact:
    cfg = ctx.cfg
    judged = judge.run(ctx)
    arm_a, arm_b = ctx.arms["a"], ctx.arms["b"]
    kept = {role: select.run(ctx, arm).counts["kept"] for role, arm in ctx.arms.items()}
    label = comparison_label(arm_a.label(kept["a"]), arm_b.label(kept["b"]), cfg.eval_judge.name)

    def build(workdir: Path) -> dict[str, Any]:
        table = tally(judge.read_judgments(judged))
        report = {"title": label, "table": table, "model": cfg.model.name,
                  "arms": {role: {**arm.describe(), "kept": kept[role]}
                           for role, arm in ctx.arms.items()}}
        (workdir / REPORT).write_text(json.dumps(report, indent=2))
        (workdir / "report.md").write_text(format_table(table, label) + "\n")
        plot(table, label, workdir / PLOT)
        return {k: table["all"][k] for k in ("winning_score", "order_agreement", "win", "tie",
                                             "lose", "unparsed", "n")}

    artifact = ctx.store.ensure("report", {"label": label}, {"judgments": judged.key}, build)
    report = json.loads((artifact.path / REPORT).read_text())
    print("\n" + format_table(report["table"], report["title"]))
    print(f"\nplot: {artifact.path / PLOT}")
    ctx.tracker.log_table("report/win_tie_lose", ["test set", "win", "tie", "lose", "unparsed",
                                                  "n", "winning_score", "order_agreement"],
                          [[k, *v.values()] for k, v in report["table"].items()])
    ctx.tracker.log_image("report/plot", artifact.path / PLOT)
    return ctx.finish_stage(artifact)
