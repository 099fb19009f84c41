"""A study plan: job plans merged (shared work counted once, by its artifact key), totals,
cheaper alternatives, and the files: plan.json and plan.md, and the table printed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

PLAN_JSON = "plan.json"
PLAN_MD = "plan.md"
SECTIONS = ("ratings", "scorings", "trainings", "generations", "evaluations")


def once_by_key(entries: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per content key (arms that keep the same items share one model, as the real
    run does); `arms` names the roles that share it."""
    by_key: dict[str, dict[str, Any]] = {}
    for role, entry in entries.items():
        kept = by_key.setdefault(entry["key"], {**entry, "arms": []})
        kept["arms"].append(role)
    return list(by_key.values())


def _new(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in entries if not e.get("reused")]


def _sum(entries: list[dict[str, Any]], key: str) -> float:
    return sum(e.get(key) or 0 for e in entries)


def alternatives(plan: dict[str, Any]) -> list[str]:
    """Cheaper ways to the same result, each with its figure."""
    out = []
    for r in _new(plan["ratings"]):
        if r.get("mode") == "online" and r.get("usd_batch", 0) < r.get("usd", 0):
            out.append(f"rating {r['name']}: rate.mode=batch costs ${r['usd_batch']:.2f} instead "
                       f"of ${r['usd']:.2f} (the provider's batch API, results within 24 h)")
        if r.get("cached"):
            out.append(f"rating {r['name']}: {r['cached']} replies are already in the judge "
                       "cache and are not bought again")
    for t in _new(plan["trainings"]):
        alt = t.get("alternative")
        if alt and t.get("gpu_hours") is not None:
            out.append(f"training {t['name']}: {alt['what']} needs ~{alt['peak_memory_gib']:.1f} "
                       f"GiB and ~{alt['gpu_hours']:.2f} GPU-hours, vs full fine-tuning on "
                       f"{plan['hardware']['gpus']}: ~{t['peak_memory_gib']:.1f} GiB per device, "
                       f"~{t['gpu_hours']:.2f} GPU-hours")
    return out


def summarize(plan: dict[str, Any]) -> dict[str, Any]:
    """Totals (new work only: reused artifacts and cached replies cost nothing), fit,
    alternatives."""
    api = _new(plan["ratings"]) + _new(plan["evaluations"])
    compute = _new(plan["scorings"]) + _new(plan["trainings"]) + _new(plan["generations"])
    totals: dict[str, Any] = {
        "requests": int(_sum(api, "requests")), "usd": round(_sum(api, "usd"), 2),
        "input_tokens": int(_sum(api, "input_tokens")),
        "output_tokens": int(_sum(api, "output_tokens")),
        "gpu_hours": round(_sum(compute, "gpu_hours"), 3),
        "wall_hours": round(_sum(compute, "wall_hours") + _sum(api, "wall_hours"), 3),
        "trainings": len(_new(plan["trainings"])), "generations": len(_new(plan["generations"])),
        "reused": sum(1 for s in SECTIONS for e in plan[s] if e.get("reused")),
    }
    price = plan["hardware"].get("price_per_gpu_hour")
    if price is not None:
        totals["compute_usd"] = round(totals["gpu_hours"] * price, 2)
    fits = [e["fits"] for e in plan["scorings"] + plan["trainings"] + plan["generations"]
            if e.get("fits") is not None]
    plan = {**plan, "totals": totals, "fits": all(fits) if fits else None}
    plan["alternatives"] = alternatives(plan)
    return plan


def merge(jobs: list[dict[str, Any]]) -> dict[str, Any]:
    """One study plan from its jobs' plans: each rating, training, generation and evaluation
    once by its key (with the jobs that need it)."""
    merged: dict[str, Any] = {"version": jobs[0]["version"], "hardware": jobs[0]["hardware"],
                              "jobs": len(jobs), "missing": [], "notes": []}
    for section in SECTIONS:
        by_key: dict[str, dict[str, Any]] = {}
        for n, job in enumerate(jobs):
            for entry in job.get(section, []):
                kept = by_key.setdefault(entry["key"], {**entry, "jobs": []})
                kept["jobs"].append(job.get("job", n))
        merged[section] = list(by_key.values())
    # Optional analyses (stage=noise): once per judge and settings, not in the totals.
    analyses = {(a["name"], a["judge"], a["sample"], a["repeats"]): a
                for job in jobs for a in job.get("analyses", [])}
    merged["analyses"] = list(analyses.values())
    machines = sorted({job["hardware"]["name"] for job in jobs})
    if len(machines) > 1:  # training keys leave the machine out: a shared entry is sized once
        merged["notes"].append(
            f"the jobs plan for different hardware ({', '.join(machines)}): the study figures "
            f"are sized for {jobs[0]['hardware']['name']}; each job's own plan.json has its "
            "machine's")
    for job in jobs:
        merged["missing"] += [m for m in job["missing"] if m not in merged["missing"]]
        merged["notes"] += [m for m in job["notes"] if m not in merged["notes"]]
    return summarize(merged)


def _f(value: Any, digits: int = 2) -> str:
    if value is None:
        return "?"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _table(head: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(_f(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def markdown(plan: dict[str, Any], title: str = "Plan") -> str:
    hw, t = plan["hardware"], plan["totals"]
    out = [f"# {title}", "",
           f"Hardware: **{hw['name']}**: {hw['gpus']} x {hw['gpu']}, {hw['memory_gib']:g} GiB "
           f"each, {hw['peak_tflops']:g} TFLOPs peak at MFU {hw['mfu']:g}.", "",
           f"**Totals (new work)**: {t['requests']:,} API requests, ${t['usd']:,.2f}; "
           f"{t['trainings']} trainings, {t['generations']} generations, "
           f"{t['gpu_hours']:,.2f} GPU-hours"
           + (f" (${t['compute_usd']:,.2f})" if "compute_usd" in t else "")
           + f"; {t['reused']} steps reused. Fits: **{_f(plan['fits'])}**.", ""]
    out += ["## Ratings", "", _table(
        ["name", "model", "items", "requests", "cached", "input tok", "output tok (max)", "$",
         "hours", "reused"],
        [[r["name"], r["model"], r["items"], r["requests"], r["cached"], r["input_tokens"],
          r["output_tokens"], r["usd"], r.get("wall_hours"), r["reused"]]
         for r in plan["ratings"]]) if plan["ratings"] else "none", ""]
    if plan["scorings"]:
        out += ["## IFD scoring", "", _table(
            ["name", "items", "sequences", "tokens", "peak GiB", "fits", "GPU-hours", "reused"],
            [[x["name"], x["items"], x["sequences"], x["tokens"], x["peak_memory_gib"],
              x["fits"], x["gpu_hours"], x["reused"]] for x in plan["scorings"]]), ""]
    out += ["## Trainings", "", _table(
        ["name", "method", "items", "exact", "tokens", "steps", "peak GiB/device", "fits",
         "GPU-hours", "wall hours", "reused"],
        [[x["name"], f"{x['method']}" + (f" ({x['strategy']})" if x["strategy"] else ""), x["items"], x["items_exact"],
          x["tokens"], x["steps"], x.get("peak_memory_gib"), x.get("fits"), x.get("gpu_hours"),
          x.get("wall_hours"), x["reused"]] for x in plan["trainings"]]), ""]
    bounds = sorted({x["items_bound"] for x in plan["trainings"] if not x["items_exact"]})
    out += [f"- {b}" for b in bounds] + ([""] if bounds else [])
    out += ["## Generations", "", _table(
        ["name", "prompts", "new tokens (max)", "peak GiB", "fits", "GPU-hours", "reused"],
        [[g["name"], g["prompts"], g["new_tokens"], g.get("peak_memory_gib"), g.get("fits"),
          g.get("gpu_hours"), g["reused"]] for g in plan["generations"]]), ""]
    out += ["## Evaluations", "", _table(
        ["name", "judge", "prompts", "requests", "cached", "input tok", "$", "reused"],
        [[e["name"], e["judge"], e["prompts"], e["requests"], e.get("cached"),
          e.get("input_tokens"), e["usd"], e["reused"]] for e in plan["evaluations"]]), ""]
    if plan.get("analyses"):
        out += ["## Optional analyses (not in the totals)", "", _table(
            ["name", "judge", "sample", "repeats", "requests", "input tok", "$"],
            [[a["name"], a["judge"], a["sample"], a["repeats"], a["requests"],
              a["input_tokens"], a["usd"]] for a in plan["analyses"]]), ""]
    for name, items in (("Cheaper alternatives", plan["alternatives"]),
                        ("Missing before a real run", plan["missing"]),
                        ("How it was counted", plan["notes"])):
        if items:
            out += [f"## {name}", ""] + [f"- {i}" for i in items] + [""]
    return "\n".join(out)


def write(plan: dict[str, Any], folder: str | Path, title: str = "Plan") -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / PLAN_JSON).write_text(json.dumps(plan, indent=1, default=str))
    (folder / PLAN_MD).write_text(markdown(plan, title))
    return folder / PLAN_JSON


def write_study_plan(sweep_dir: str | Path) -> dict[str, Any] | None:
    """Merge the plan.json of every job under ``sweep_dir`` into the sweep's own plan."""
    sweep_dir = Path(sweep_dir)
    jobs = []
    for path in sorted(sweep_dir.glob(f"*/{PLAN_JSON}"), key=lambda p: (len(p.parent.name),
                                                                       p.parent.name)):
        plan = json.loads(path.read_text())
        plan.setdefault("job", path.parent.name)
        jobs.append(plan)
    if not jobs:
        return None
    plan = merge(jobs)
    write(plan, sweep_dir, title=f"Study plan ({len(jobs)} jobs)")
    return plan
