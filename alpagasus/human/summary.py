"""What the human study's labels add up to: progress, verdicts, agreement (per test set and
over all), and the files the `human` stage writes: human.json, human.md, labels.csv,
agreement.png.

Majority vote: per prompt, the verdict most of its annotators gave (a shared top, as 1 win
and 1 lose, is "no majority" and counted, not guessed); it is set against the LLM judge's
verdict on the prompts where the LLM's reply was parsed.
"""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path
from typing import Any

from alpagasus.human.agreement import (
    VERDICTS,
    cohen,
    fleiss_kappa,
    krippendorff_alpha,
    majority,
    tally,
    value_counts,
)
from alpagasus.human.study import Study, StudyItem

Labels = dict[str, dict[str, dict[str, Any]]]  # annotator -> item key -> label row
ALL = "all"


def progress(assigned: dict[str, list[StudyItem]], labels: Labels,
             finished: set[str]) -> dict[str, dict[str, Any]]:
    """Per annotator: prompts assigned, labelled, whether they pressed Finish."""
    out = {}
    for name, items in assigned.items():
        mine = labels.get(name, {})
        done = sum(it.key in mine for it in items)
        last = max((row["updated"] for row in mine.values()), default=None)
        out[name] = {"assigned": len(items), "labelled": done, "finished": name in finished,
                     "last_label": _iso(last) if last else None}
    return out


def _group(items: list[StudyItem], labels: Labels, annotators: list[str]) -> dict[str, Any]:
    by_item = {it.key: [labels[a][it.key]["verdict"] for a in annotators
                        if it.key in labels.get(a, {})] for it in items}
    labelled = [it for it in items if by_item[it.key]]
    complete = [it for it in labelled if len(by_item[it.key]) == len(annotators)]
    votes = {it.key: majority(by_item[it.key]) for it in labelled}
    voted = [it for it in labelled if votes[it.key] is not None]
    pairs = [(votes[it.key], it.llm_verdict) for it in voted if it.llm_verdict in VERDICTS]
    return {
        "prompts": len(items), "labelled": len(labelled),
        "labelled_by_all": len(complete),
        "multiply_labelled": sum(len(by_item[it.key]) >= 2 for it in labelled),
        "krippendorff_alpha": krippendorff_alpha([by_item[it.key] for it in labelled]),
        "fleiss_kappa": (fleiss_kappa(value_counts([by_item[it.key] for it in complete]))
                         if len(annotators) >= 2 else None),
        "majority": tally([votes[it.key] for it in voted]),
        "no_majority": len(labelled) - len(voted),
        "llm_on_majority": tally([m for _, m in pairs]),
        "llm_unparsed": len(voted) - len(pairs),
        "vs_llm": cohen([h for h, _ in pairs], [m for _, m in pairs]),
    }


def summarize(study: Study, assigned: dict[str, list[StudyItem]], labels: Labels,
              finished: set[str] = frozenset()) -> dict[str, Any]:
    """The study's result; ``labels`` of annotators not in ``assigned`` are left out."""
    annotators = list(assigned)
    labels = {a: labels.get(a, {}) for a in annotators}
    testsets = sorted({it.testset for it in study.items})
    groups = {ALL: _group(study.items, labels, annotators)}
    if len(testsets) > 1:
        for name in testsets:
            groups[name] = _group([it for it in study.items if it.testset == name], labels,
                                  annotators)
    keyed = {it.key: it for it in study.items}
    return {
        "title": study.title, "study": study.key, "prompts": len(study.items),
        "annotators": annotators,
        "progress": progress(assigned, labels, set(finished)),
        "per_annotator": {a: tally([row["verdict"] for k, row in labels[a].items()
                                    if k in keyed]) for a in annotators},
        "groups": groups,
        "a_shown_left": sum(it.left == "a" for it in study.items),
    }


def _num(v: float | None, fmt: str = ".3f") -> str:
    return "n/a" if v is None else format(v, fmt)


def format_progress(s: dict[str, Any]) -> str:
    lines = ["| annotator | labelled | of | finished | last label |", "|---|---:|---:|---|---|"]
    for name, p in s["progress"].items():
        lines.append(f"| {name} | {p['labelled']} | {p['assigned']} | "
                     f"{'yes' if p['finished'] else 'no'} | {p['last_label'] or '-'} |")
    return "\n".join(lines)


def format_summary(s: dict[str, Any]) -> str:
    g = s["groups"][ALL]
    lines = [f"Human study: {s['title']}".rstrip(": "), "",
             f"{len(s['annotators'])} annotator(s), {s['prompts']} prompts ({g['labelled']} "
             f"labelled by someone, {g['labelled_by_all']} by everyone; A shown on the left "
             f"for {s['a_shown_left']}).", "", format_progress(s), "",
             "Agreement between annotators and of the majority vote with the LLM judge "
             "(n/a: undefined, e.g. one label used throughout):", "",
             "| test set | prompts | labelled | Krippendorff's alpha | Fleiss' kappa (n) "
             "| majority vs LLM: agreement | Cohen's kappa (n) | no majority | LLM unparsed |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, g in s["groups"].items():
        v = g["vs_llm"]
        lines.append(f"| {name} | {g['prompts']} | {g['labelled']} | "
                     f"{_num(g['krippendorff_alpha'])} | {_num(g['fleiss_kappa'])} "
                     f"({g['labelled_by_all']}) | {_num(v['agreement'], '.0%')} | "
                     f"{_num(v['kappa'])} ({v['n']}) | {g['no_majority']} | "
                     f"{g['llm_unparsed']} |")
    lines += ["", "Verdicts for arm A (winning score: (win - lose) / n + 1):", "",
              "| judge | win | tie | lose | N | winning score |", "|---|---:|---:|---:|---:|---:|"]
    rows = [(a, t) for a, t in s["per_annotator"].items()]
    g = s["groups"][ALL]
    rows += [("majority vote", g["majority"]), ("LLM judge (same prompts)", g["llm_on_majority"])]
    lines += [f"| {name} | {t['win']} | {t['tie']} | {t['lose']} | {t['n']} | "
              f"{_num(t['winning_score'])} |" for name, t in rows]
    v = g["vs_llm"]
    lines += ["", "Majority vote (rows) against the LLM judge (columns), all test sets:", "",
              "| majority \\ LLM | win | tie | lose |", "|---|---:|---:|---:|"]
    lines += [f"| {label} | " + " | ".join(str(x) for x in row) + " |"
              for label, row in zip(v["labels"], v["confusion"], strict=True)]
    return "\n".join(lines)


CSV_FIELDS = ["study", "testset", "item", "category", "annotator", "left_arm", "choice",
              "verdict", "llm_verdict", "created", "updated"]


def write_csv(path: Path, study: Study, labels: Labels) -> int:
    """Every label, one row each (UTC ISO times); the number of rows."""
    keyed = {it.key: it for it in study.items}
    n = 0
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        w.writeheader()
        for annotator in sorted(labels):
            for key, row in sorted(labels[annotator].items()):
                it = keyed.get(key)
                if it is None:
                    continue
                w.writerow({"study": study.key, "testset": it.testset, "item": key,
                            "category": it.category or "", "annotator": annotator,
                            "left_arm": row["left_arm"], "choice": row["choice"],
                            "verdict": row["verdict"], "llm_verdict": it.llm_verdict,
                            "created": _iso(row["created"]), "updated": _iso(row["updated"])})
                n += 1
    return n


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).isoformat(timespec="seconds")


def plot(path: Path, s: dict[str, Any]) -> None:
    """Left: the agreement figures per test set; right: win/tie/lose per annotator, the
    majority vote and the LLM judge."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 5))
    names = list(s["groups"])
    measures = [("Krippendorff's alpha", lambda g: g["krippendorff_alpha"]),
                ("Fleiss' kappa", lambda g: g["fleiss_kappa"]),
                ("majority vs LLM: Cohen's kappa", lambda g: g["vs_llm"]["kappa"]),
                ("majority vs LLM: agreement", lambda g: g["vs_llm"]["agreement"])]
    width = 0.8 / len(measures)
    for i, (label, get) in enumerate(measures):
        xs = [j + (i - (len(measures) - 1) / 2) * width for j in range(len(names))]
        values = [get(s["groups"][n]) for n in names]
        bars = ax1.bar(xs, [v if v is not None else 0 for v in values], width, label=label)
        for bar, v in zip(bars, values, strict=True):
            # Every value written out (a 0 draws no bar); undefined says so, not a zero.
            ax1.text(bar.get_x() + bar.get_width() / 2, max(v or 0, 0) + 0.02,
                     "n/a" if v is None else f"{v:.2f}", ha="center", fontsize=7, rotation=90)
    ax1.axhline(0, color="black", lw=0.6)
    ax1.set_xticks(range(len(names)), names)
    ax1.set_ylim(min(-0.2, ax1.get_ylim()[0]), 1.2)
    ax1.set_title("Agreement per test set")
    ax1.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=2)

    g = s["groups"][ALL]
    rows = [*s["per_annotator"].items(), ("majority", g["majority"]),
            ("LLM judge", g["llm_on_majority"])]
    colors = {"win": "#4c9a2a", "tie": "#b0b0b0", "lose": "#c0392b"}
    left = [0.0] * len(rows)
    for verdict in VERDICTS:
        shares = [t[verdict] / t["n"] if t["n"] else 0 for _, t in rows]
        ax2.barh(range(len(rows)), shares, left=left, color=colors[verdict], label=verdict)
        left = [a + b for a, b in zip(left, shares, strict=True)]
    ax2.set_yticks(range(len(rows)), [f"{name} (n={t['n']})" for name, t in rows])
    ax2.invert_yaxis()
    ax2.set_xlim(0, 1)
    ax2.set_title("Arm A's verdicts (share of prompts)")
    ax2.legend(fontsize=8, loc="lower right")
    fig.suptitle(s["title"] or "Human study", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
