"""Sweeps: every job's ``result.json``, and one report over a finished multirun directory.

Each job writes ``result.json`` into its Hydra job directory (``main.run`` via ``JobRecord``,
also when the job fails): its overrides, both arms (spec, label, items kept, selection key),
the keys of the artifacts it used and whether it built or reused them, the rating's tokens
and cost, training time and tokens, and the report's table (win/tie/lose, winning score and
whatever else the report puts in each row, per test set and overall).

The collector (``write_report``) reads a multirun directory and writes next to it
``sweep.csv`` and ``sweep.md`` (one row per job and test set; a job that failed, crashed or
never started is a row with its status, not a missing row) and one figure whose type follows
the swept keys (``FIGURES``): winning score vs threshold, vs training-set size, or grouped bars
(one bar per job, per test set) for anything else (an ablation). It runs at the end of every
multirun (``alpagasus.callbacks.SweepCallback``) and on demand: ``alpagasus-report DIR``.

Sections: ``SECTIONS`` lists optional extra parts of the report as "module:function". Each is
imported when a report is written, and skipped when its module is not installed; it is called
as ``section(results, sweep_dir)`` with the list of job results (the ``result.json``
dicts, plus ``status`` for jobs without one) and the sweep directory, may write its own files
(PNG) there, and returns markdown appended to ``sweep.md`` (an empty string: nothing).
"""

from __future__ import annotations

import argparse
import csv
import importlib
import json
import logging
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from alpagasus import shared_models
from alpagasus.shared_files import (
    exclusive_lock,
    replaced_on_success,
    write_json_atomic,
    write_text_atomic,
)

log = logging.getLogger("alpagasus.sweep")

RESULT = "result.json"
CSV = "sweep.csv"
MARKDOWN = "sweep.md"
RESULT_VERSION = 1
SECTIONS: tuple[str, ...] = ("alpagasus.shared_models:sweep_section",
                             "alpagasus.analysis:sweep_section")


class JobStatus(str, Enum):  # noqa: UP042
    completed = "completed"
    failed = "failed"  # raised an error (result.json holds it)
    stopped = "stopped"  # an expected stop: a dry run, the budget reached
    pending = "pending"  # a provider batch is still running: rerun later
    missing = "missing"  # the job started but wrote no result.json (killed, or still running)
    not_started = "not_started"  # in the sweep, but no job directory


FAILED = (JobStatus.failed.value, JobStatus.missing.value, JobStatus.not_started.value)

# Expected stops, by exception class name (alpagasus.judges.engine), so this module imports
# no engine: a dry run and a budget stop say what to do next, a batch job is waited for.
STOP_STATUS = {"DryRun": JobStatus.stopped, "JudgeStop": JobStatus.stopped,
               "BatchPending": JobStatus.pending}


# --- the job's side: result.json -------------------------------------------------------------


def hydra_job() -> dict[str, Any] | None:
    """This job's Hydra facts, or None outside a Hydra app (tests calling run() directly)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    hc = HydraConfig.get()
    mode = OmegaConf.select(hc, "mode")
    return {
        "num": OmegaConf.select(hc, "job.num"),
        "id": OmegaConf.select(hc, "job.id"),
        "name": OmegaConf.select(hc, "job.name"),
        "overrides": list(OmegaConf.select(hc, "overrides.task") or []),
        "output_dir": OmegaConf.select(hc, "runtime.output_dir"),
        "sweep_dir": OmegaConf.select(hc, "sweep.dir"),
        "mode": getattr(mode, "name", str(mode)).lower() if mode is not None else None,
    }


class JobRecord:
    """``with JobRecord(cfg) as record: ...`` writes result.json when the block ends, however it
    ends, into the Hydra job directory (or ``output_dir``). The block sets ``record.ctx`` once
    it has a RunContext. Writing never masks the job's own error."""

    def __init__(self, cfg: DictConfig, output_dir: str | Path | None = None):
        self.cfg = cfg
        self.ctx: Any = None
        self.started = time.time()
        self.job = hydra_job()
        if output_dir is None and self.job is not None:
            output_dir = self.job["output_dir"]
        # Under a multi-process launch (torchrun, submitit tasks) only rank 0 writes.
        self.output_dir = Path(output_dir) if output_dir and process_rank() == 0 else None

    def __enter__(self) -> JobRecord:
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        if self.output_dir is not None:
            try:
                result = job_result(self.cfg, self.ctx, exc, self.started, self.job)
                write_result(self.output_dir, result)
            except Exception:  # the job's outcome matters more than its record
                log.warning("could not write %s", self.output_dir / RESULT, exc_info=True)
        return False


def process_rank() -> int:
    """This process's rank under torchrun / accelerate / submitit tasks (0 alone)."""
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


def write_result(output_dir: str | Path, result: dict[str, Any]) -> Path:
    path = Path(output_dir) / RESULT
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, result)
    return path


def error_info(exc: BaseException) -> dict[str, Any]:
    lines = traceback.format_exception(type(exc), exc, exc.__traceback__)
    return {"type": type(exc).__name__, "message": str(exc)[:4000],
            "traceback": "".join(lines)[-8000:]}


def status_of(exc: BaseException | None) -> JobStatus:
    if exc is None:
        return JobStatus.completed
    return STOP_STATUS.get(type(exc).__name__, JobStatus.failed)


def job_result(cfg: DictConfig, ctx: Any, exc: BaseException | None, started: float,
               job: dict[str, Any] | None) -> dict[str, Any]:
    """The job as plain data (see the module docstring); reads only finished artifacts."""
    done = dict(ctx.done) if ctx is not None else {}
    result: dict[str, Any] = {
        "version": RESULT_VERSION,
        "status": status_of(exc).value,
        "error": error_info(exc) if exc is not None else None,
        "job": job or {},
        "started": started,
        "finished": time.time(),
        "seconds": round(time.time() - started, 2),
        "config": config_summary(cfg),
        "arms": arms_summary(cfg, ctx, done),
        "artifacts": {name: {"stage": a.stage, "key": a.key, "reused": a.reused,
                             "path": str(a.path)} for name, a in done.items()},
        "rating": rating_summary(done),
        "training": training_summary(done),
        "report": report_summary(done),
    }
    return result


def config_summary(cfg: DictConfig) -> dict[str, Any]:
    def pick(key: str) -> Any:
        value = OmegaConf.select(cfg, key, default=None, throw_on_resolution_failure=False)
        value = getattr(value, "value", value)
        return OmegaConf.to_container(value) if OmegaConf.is_config(value) else value

    keys = ("stage", "seed", "threshold", "size", "model.name", "model.name_or_path",
            "filter.name", "baseline.name", "judge.name", "judge.model", "eval_judge.name",
            "eval_judge.model", "data.name", "data.limit", "train.name", "lora.name", "quant.name",
            "testsets.name")
    summary = {key: pick(key) for key in keys}
    files = pick("testsets.files")
    summary["testsets"] = list(files) if isinstance(files, dict) else []
    return summary


def arms_summary(cfg: DictConfig, ctx: Any, done: dict[str, Any]) -> dict[str, Any]:
    try:
        if ctx is not None:
            arms = ctx.arms
        else:
            from alpagasus.arms import arms_from_config

            arms = arms_from_config(cfg)
    except Exception:  # a config too broken to have arms: the error says why
        return {}
    out = {}
    for role, arm in arms.items():
        selected = done.get(f"select/{role}")
        kept = _counts(selected).get("kept")
        out[role] = {**arm.describe(), "label": arm.label(kept), "kept": kept,
                     "select_key": selected.key if selected is not None else None}
    return out


def _counts(artifact: Any) -> dict[str, Any]:
    if artifact is None:
        return {}
    try:
        return artifact.counts
    except (OSError, ValueError):
        return {}


def rating_summary(done: dict[str, Any]) -> dict[str, Any]:
    """Per judge (and prompt): tokens and dollars of the ratings this job used. ``cost_usd`` is
    what they cost at the configured prices, whoever paid; ``cost_usd_this_job`` what this job
    sent (0 when the artifact was reused or every reply came from the cache)."""
    judges = {}
    for name, artifact in done.items():
        if not name.startswith("rate/"):
            continue
        c = _counts(artifact)
        judges[name.removeprefix("rate/")] = {
            "key": artifact.key, "reused": artifact.reused, "items": c.get("items"),
            "rated": c.get("rated"), "unparsed": c.get("unparsed"),
            "input_tokens": c.get("input_tokens"), "output_tokens": c.get("output_tokens"),
            "cost_usd": c.get("cost_usd"),
            "cost_usd_this_job": 0.0 if artifact.reused else c.get("cost_usd_this_run", 0.0),
        }
    return {
        "judges": judges,
        "input_tokens": _sum(j["input_tokens"] for j in judges.values()),
        "output_tokens": _sum(j["output_tokens"] for j in judges.values()),
        "cost_usd": _sum(j["cost_usd"] for j in judges.values()),
        "cost_usd_this_job": _sum(j["cost_usd_this_job"] for j in judges.values()),
    }


def training_summary(done: dict[str, Any]) -> dict[str, Any]:
    """Per arm: the training's seconds and tokens (from its manifest, also when reused) and
    whether this job trained it; totals count only what this job trained."""
    arms = {}
    for role in ("a", "b"):
        artifact = done.get(f"train/{role}")
        if artifact is None:
            continue
        c = _counts(artifact)
        arms[role] = {"key": artifact.key, "reused": artifact.reused,
                      **{k: c.get(k) for k in ("seconds", "tokens", "tokens_per_s", "steps",
                                               "examples", "world_size", "peak_memory_gib")}}
    built = {a["key"]: a for a in arms.values() if not a["reused"]}.values()
    return {"arms": arms, "seconds_this_job": _sum(a["seconds"] for a in built),
            "tokens_this_job": _sum(a["tokens"] for a in built)}


def report_summary(done: dict[str, Any]) -> dict[str, Any] | None:
    artifact = done.get("report")
    if artifact is None:
        return None
    try:
        report = json.loads((artifact.path / "report.json").read_text())
    except (OSError, ValueError):
        return None
    return {"key": artifact.key, "title": report.get("title"), "table": report.get("table", {}),
            "path": str(artifact.path)}


def _sum(values: Iterable[Any]) -> float | int:
    return sum(v for v in values if isinstance(v, int | float))


# --- the sweep's side: collect, tabulate, plot --------------------------------------------------


def sweep_jobs(params: dict[str, str], task: list[str]) -> list[list[str]]:
    """The override list of every job of a basic-sweeper multirun: ``hydra.sweeper.params``
    then the command line's overrides, expanded as Hydra's BasicSweeper does."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    lines = [f"{k}={v}" for k, v in params.items()] + list(task)
    parsed = OverridesParser.create().parse_overrides(lines)
    return [list(job) for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]


def expected_jobs(sweep_dir: Path) -> list[list[str]] | None:
    """Every job the sweep launches, recomputed from its multirun.yaml (None: no multirun.yaml,
    or another sweeper than Hydra's basic one)."""
    path = sweep_dir / "multirun.yaml"
    if not path.is_file():
        return None
    try:
        conf = OmegaConf.load(path)
        if "BasicSweeper" not in str(OmegaConf.select(conf, "hydra.sweeper._target_") or ""):
            return None
        params = OmegaConf.select(conf, "hydra.sweeper.params")
        params = OmegaConf.to_container(params, resolve=False) if params is not None else {}
        task = OmegaConf.to_container(conf.hydra.overrides.task, resolve=False)
        return sweep_jobs(params, task)
    except Exception:  # a report without the never-started rows beats no report
        log.debug("could not recompute the jobs of %s", sweep_dir, exc_info=True)
        return None


def load_results(sweep_dir: str | Path) -> list[dict[str, Any]]:
    """One dict per job, by job number: its result.json, or a stub saying why there is none."""
    sweep_dir = Path(sweep_dir)
    by_num: dict[int, dict[str, Any]] = {}
    for path in sorted(sweep_dir.rglob(RESULT)):
        if ".submitit" in path.parts:
            continue
        try:
            result = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            result = {"status": JobStatus.missing.value,
                      "error": {"type": type(e).__name__, "message": f"{path}: {e}"}, "job": {}}
        num = result.get("job", {}).get("num")
        result.setdefault("job", {})["dir"] = str(path.parent)
        by_num[num if isinstance(num, int) else _dir_num(path.parent, by_num)] = result
    for hydra_yaml in sorted(sweep_dir.rglob(".hydra/hydra.yaml")):
        job_dir = hydra_yaml.parent.parent
        if (job_dir / RESULT).is_file() or ".submitit" in job_dir.parts:
            continue
        try:
            hc = OmegaConf.load(hydra_yaml).hydra
            num = OmegaConf.select(hc, "job.num")
            overrides = list(OmegaConf.select(hc, "overrides.task") or [])
        except Exception:
            num, overrides = None, []
        num = num if isinstance(num, int) else _dir_num(job_dir, by_num)
        by_num.setdefault(num, {
            "status": JobStatus.missing.value, "job": {"num": num, "overrides": overrides,
                                                      "dir": str(job_dir)},
            "error": {"type": "NoResult", "message": f"{job_dir}: the job started but wrote no "
                      f"{RESULT} (killed, out of memory or time, or still running)"}})
    for num, overrides in enumerate(expected_jobs(sweep_dir) or []):
        by_num.setdefault(num, {"status": JobStatus.not_started.value,
                                "job": {"num": num, "overrides": overrides}, "error": None})
    return [by_num[k] for k in sorted(by_num)]


def _dir_num(job_dir: Path, taken: dict[int, Any]) -> int:
    if job_dir.name.isdigit() and int(job_dir.name) not in taken:
        return int(job_dir.name)
    return max([-1, *taken]) + 1


def parse_override(text: str) -> tuple[str, str] | None:
    """"threshold=4.5" -> ("threshold", "4.5"); "+comparison=x" -> ("comparison", "x")."""
    if "=" not in text:
        return None
    key, value = text.split("=", 1)
    return key.lstrip("+~"), value


def swept_keys(results: list[dict[str, Any]]) -> list[str]:
    """The override keys whose value differs between jobs, in the order they first appear."""
    values: dict[str, set[str]] = {}
    order: list[str] = []
    for result in results:
        for text in result.get("job", {}).get("overrides", []):
            parsed = parse_override(text)
            if parsed is None:
                continue
            key, value = parsed
            if key not in values:
                values[key] = set()
                order.append(key)
            values[key].add(value)
    jobs_per_key = {k: sum(1 for r in results if k in _override_map(r)) for k in order}
    return [k for k in order if len(values[k]) > 1 or 0 < jobs_per_key[k] < len(results)]


def _override_map(result: dict[str, Any]) -> dict[str, str]:
    pairs = (parse_override(t) for t in result.get("job", {}).get("overrides", []))
    return dict(p for p in pairs if p is not None)


# Columns of sweep.csv / sweep.md rows taken from the report's table rows, in this order; any
# other field a row has (confidence intervals, categories) follows in the CSV.
TABLE_FIELDS = ("win", "tie", "lose", "unparsed", "n", "winning_score", "ci_low", "ci_high",
                "order_agreement")


def rows(results: list[dict[str, Any]], swept: list[str]) -> list[dict[str, Any]]:
    """One row per job and test set (one row with an empty test set for a job without a
    report table: failed, stopped, or a sweep that ends before `report`)."""
    out = []
    models = shared_models.shared_models(results)  # arms with the same items share a model
    for result in results:
        job = result.get("job", {})
        overrides = _override_map(result)
        arms = result.get("arms") or {}
        rating = result.get("rating") or {}
        training = result.get("training") or {}
        error = result.get("error") or {}
        base: dict[str, Any] = {
            "job": job.get("num"), "status": result.get("status"),
            **{key: overrides.get(key, "") for key in swept},
            "arm_a": arms.get("a", {}).get("label", ""), "arm_b": arms.get("b", {}).get("label", ""),
            "kept_a": arms.get("a", {}).get("kept"), "kept_b": arms.get("b", {}).get("kept"),
            **shared_models.row_models(result, models),
            "rating_input_tokens": rating.get("input_tokens"),
            "rating_output_tokens": rating.get("output_tokens"),
            "rating_cost_usd": rating.get("cost_usd"),
            "rating_cost_usd_this_job": rating.get("cost_usd_this_job"),
            "train_seconds_this_job": training.get("seconds_this_job"),
            "train_tokens_this_job": training.get("tokens_this_job"),
            "job_seconds": result.get("seconds"),
            "error": f"{error.get('type', '')}: {error.get('message', '')}" if error else "",
            "job_dir": job.get("dir", ""),
        }
        table = (result.get("report") or {}).get("table") or {}
        if not table:
            out.append({**base, "test_set": ""})
            continue
        for name, row in table.items():
            ordered = {k: row.get(k) for k in TABLE_FIELDS if k in row}
            extra = {k: v for k, v in row.items() if k not in TABLE_FIELDS}
            out.append({**base, "test_set": name, **ordered, **extra})
    return out


def write_csv(path: Path, table: list[dict[str, Any]]) -> None:
    columns: list[str] = []
    for row in table:
        columns += [k for k in row if k not in columns]
    with replaced_on_success(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        for row in table:
            writer.writerow({k: _csv_value(v) for k, v in row.items()})


def _csv_value(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, dict | list) else value


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(table: list[dict[str, Any]], swept: list[str]) -> str:
    has_ci = any(r.get("ci_low") is not None for r in table)
    has_models = any(shared_models.cell(r) for r in table)
    head = ["job", "status", *swept, "arm A", "arm B", *(["model A / B"] if has_models else []),
            "test set", "win", "tie", "lose", "N", "winning score", *(["95% CI"] if has_ci else [])]
    lines = ["| " + " | ".join(head) + " |",
             "|" + "|".join("---:" if h in ("win", "tie", "lose", "N", "winning score") else "---"
                            for h in head) + "|"]
    for r in table:
        ci = (f"{_fmt(r.get('ci_low'))}-{_fmt(r.get('ci_high'))}"
              if r.get("ci_low") is not None else "")
        cells = [r["job"], r["status"], *(r.get(k, "") for k in swept), r["arm_a"], r["arm_b"],
                 *([shared_models.cell(r)] if has_models else []), r["test_set"], r.get("win"),
                 r.get("tie"), r.get("lose"), r.get("n"), r.get("winning_score"),
                 *([ci] if has_ci else [])]
        lines.append("| " + " | ".join(_fmt(c) for c in cells) + " |")
    return "\n".join(lines)


def jobs_table(results: list[dict[str, Any]]) -> str:
    lines = ["| job | status | overrides | rating tokens (in/out) | rating $ (this job) "
             "| trained here (s / tokens) | job s | error |",
             "|---|---|---|---:|---:|---:|---:|---|"]
    for r in results:
        job, rating, training = r.get("job", {}), r.get("rating") or {}, r.get("training") or {}
        error = r.get("error") or {}
        tokens = (f"{rating.get('input_tokens', 0):,}/{rating.get('output_tokens', 0):,}"
                  if rating.get("judges") else "")
        cost = (f"{rating.get('cost_usd', 0):.2f} ({rating.get('cost_usd_this_job', 0):.2f})"
                if rating.get("judges") else "")
        trained = (f"{training.get('seconds_this_job', 0):.0f} / "
                   f"{training.get('tokens_this_job', 0):,}" if training.get("arms") else "")
        message = f"{error.get('type')}: {error.get('message', '')}"[:200] if error else ""
        cells = [job.get("num"), r.get("status"), " ".join(job.get("overrides", [])), tokens,
                 cost, trained, _fmt(r.get("seconds"), 0), message]
        lines.append("| " + " | ".join(_fmt(c) for c in cells) + " |")
    return "\n".join(lines)


# --- figures -------------------------------------------------------------------------------------


class FigureKind(str, Enum):  # noqa: UP042
    threshold = "threshold"
    size = "size"
    ablation = "ablation"


@dataclass(frozen=True)
class LineAxis:
    """A swept key plotted as the x axis of a line figure."""

    key: str  # the override key that selects this figure when it is swept
    label: str
    x: Callable[[dict[str, Any]], float | None]  # from a job's result


def _arm_a(result: dict[str, Any], field_name: str) -> Any:
    return (result.get("arms") or {}).get("a", {}).get(field_name)


# The first swept key found here picks a line figure; no such key: grouped bars (an ablation).
FIGURES: dict[FigureKind, LineAxis] = {
    FigureKind.threshold: LineAxis("threshold", "rating threshold of arm A",
                                   lambda r: _arm_a(r, "threshold")),
    FigureKind.size: LineAxis("size", "training items of arm A", lambda r: _arm_a(r, "kept")),
}


def figure_kind(swept: list[str]) -> FigureKind:
    for kind, axis in FIGURES.items():
        if axis.key in swept:
            return kind
    return FigureKind.ablation


def figure_rows(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The rows a figure shows: the test sets and "all" (not per-category rows)."""
    table = (result.get("report") or {}).get("table") or {}
    names = set((result.get("config") or {}).get("testsets") or []) | {"all"}
    return {k: v for k, v in table.items() if k in names and v.get("winning_score") is not None}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _yerr(points: list[tuple[float, dict[str, Any]]]) -> list[list[float]] | None:
    if not all(p.get("ci_low") is not None and p.get("ci_high") is not None for _, p in points):
        return None
    return [[p["winning_score"] - p["ci_low"] for _, p in points],
            [p["ci_high"] - p["winning_score"] for _, p in points]]


def plot_lines(results: list[dict[str, Any]], swept: list[str], axis: LineAxis,
               path: Path, title: str) -> None:
    """Winning score against ``axis``: one line per test set when only that key is swept,
    else one line per value of the other swept keys (overall score)."""
    others = [k for k in swept if k != axis.key]
    series: dict[str, list[tuple[float, dict[str, Any]]]] = {}
    for result in results:
        x = axis.x(result)
        if x is None:
            continue
        table = figure_rows(result)
        if others:
            overrides = _override_map(result)
            name = ", ".join(f"{k}={overrides.get(k, '')}" for k in others)
            if "all" in table:
                series.setdefault(name, []).append((float(x), table["all"]))
        else:
            for name, row in table.items():
                series.setdefault(name, []).append((float(x), row))
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name in sorted(series, key=lambda n: (n == "all", n)):
        points = sorted(series[name], key=lambda p: p[0])
        xs = [x for x, _ in points]
        ys = [p["winning_score"] for _, p in points]
        bold = name == "all" and not others
        ax.errorbar(xs, ys, yerr=_yerr(points), marker="o", capsize=3, label=name,
                    linewidth=2.5 if bold else 1.4, color="black" if bold else None)
    ax.axhline(1.0, color="#888888", linestyle="--", linewidth=1)
    ax.set_xlabel(axis.label)
    ax.set_ylabel("winning score (win - lose) / N + 1")
    ax.set_ylim(0, 2)
    ax.set_title(title, fontsize=9)
    if series:
        ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    with replaced_on_success(path) as tmp:  # a reader never sees half a figure
        fig.savefig(tmp, dpi=120)
    plt.close(fig)


def plot_bars(results: list[dict[str, Any]], path: Path, title: str) -> None:
    """Grouped bars: one group per test set ("all" last), one bar per job."""
    jobs = [(r, figure_rows(r)) for r in results]
    jobs = [(r, t) for r, t in jobs if t]
    names = sorted({n for _, t in jobs for n in t}, key=lambda n: (n == "all", n))
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(names) * max(len(jobs), 1) ** 0.5 + 2), 4.4))
    width = 0.8 / max(len(jobs), 1)
    for i, (result, table) in enumerate(jobs):
        xs = [j + (i - (len(jobs) - 1) / 2) * width for j in range(len(names))]
        ys = [table.get(n, {}).get("winning_score") or 0.0 for n in names]
        bars = ax.bar(xs, ys, width=width * 0.95, label=_job_label(result))
        ax.bar_label(bars, fmt="%.2f", fontsize=7)
        points = [(0.0, table[n]) for n in names if n in table]
        if len(points) == len(names):
            err = _yerr(points)
            if err:
                ax.errorbar(xs, ys, yerr=err, fmt="none", ecolor="black", capsize=2)
    ax.axhline(1.0, color="#888888", linestyle="--", linewidth=1)
    ax.set_xticks(range(len(names)), names)
    ax.set_ylabel("winning score (win - lose) / N + 1")
    ax.set_ylim(0, 2.2)
    ax.set_title(title, fontsize=9)
    if jobs:
        ax.legend(fontsize=7, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.12),
                  ncol=1)
    fig.tight_layout()
    with replaced_on_success(path) as tmp:  # a reader never sees half a figure
        fig.savefig(tmp, dpi=120)
    plt.close(fig)


def _job_label(result: dict[str, Any]) -> str:
    arms = result.get("arms") or {}
    a, b = arms.get("a", {}).get("label", "A"), arms.get("b", {}).get("label", "B")
    return f"#{result.get('job', {}).get('num')}: {a} vs {b}"


def plot(results: list[dict[str, Any]], swept: list[str], sweep_dir: Path) -> Path | None:
    done = [r for r in results if r.get("status") == JobStatus.completed.value and figure_rows(r)]
    if not done:
        return None
    kind = figure_kind(swept)
    path = sweep_dir / f"sweep_{kind.value}.png"
    judges = sorted({(r.get("config") or {}).get("eval_judge.name") or "?" for r in done})
    missing = len(results) - len(done)
    title = (f"AlpaGasus sweep: winning score of arm A over arm B (judge {', '.join(judges)})"
             + (f"\n{missing} job(s) without a result not shown" if missing else ""))
    if kind is FigureKind.ablation:
        plot_bars(done, path, title)
    else:
        baselines = sorted({_arm_b_name(r) for r in done})
        plot_lines(done, swept, FIGURES[kind], path,
                   title + f"\narm B: {', '.join(baselines)}")
    return path


def _arm_b_name(result: dict[str, Any]) -> str:
    b = (result.get("arms") or {}).get("b", {})
    return b.get("filter") or b.get("method") or "?"


# --- the report --------------------------------------------------------------------------------


@dataclass
class SweepReport:
    sweep_dir: Path
    results: list[dict[str, Any]]
    swept: list[str]
    table: list[dict[str, Any]]
    figure: Path | None
    markdown: str
    sections: list[str] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.results:
            out[r.get("status", "?")] = out.get(r.get("status", "?"), 0) + 1
        return out

    @property
    def failed(self) -> int:
        """Jobs that failed, died without a result, or never started (not: a dry run, a
        pending provider batch, which stop as asked)."""
        return sum(n for s, n in self.counts.items() if s in FAILED)


def run_sections(results: list[dict[str, Any]], sweep_dir: Path,
                 sections: Iterable[str] = SECTIONS) -> list[str]:
    out = []
    for spec in sections:
        module_name, _, func_name = spec.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name is not None and module_name.startswith(e.name):
                continue  # that section is not installed
            raise
        text = getattr(module, func_name)(results, sweep_dir)
        if text:
            out.append(text.strip())
    return out


def write_report(sweep_dir: str | Path, sections: Iterable[str] = SECTIONS) -> SweepReport:
    """Collect the sweep's results; write sweep.csv, sweep.md and the figure into it. Two
    writers at once (the sweep's callback, ``alpagasus-report``) take turns on a lock, and
    each file is replaced whole, so a reader never sees a torn or mixed report."""
    sweep_dir = Path(sweep_dir)
    with exclusive_lock(sweep_dir / ".sweep-report.lock"):
        return _write_report(sweep_dir, sections)


def _write_report(sweep_dir: Path, sections: Iterable[str]) -> SweepReport:
    results = load_results(sweep_dir)
    swept = swept_keys(results)
    table = rows(results, swept)
    write_csv(sweep_dir / CSV, table)
    figure = plot(results, swept, sweep_dir)
    report = SweepReport(sweep_dir, results, swept, table, figure, "")
    report.sections = run_sections(results, sweep_dir, sections)
    counts = ", ".join(f"{n} {s.replace('_', ' ')}" for s, n in sorted(report.counts.items()))
    parts = [f"# Sweep {sweep_dir}", "",
             f"{len(results)} jobs: {counts}. Swept: {', '.join(swept) or 'nothing'}.", "",
             markdown_table(table, swept), ""]
    if figure is not None:
        parts += [f"Figure: {figure.name} ({figure_kind(swept).value})", ""]
    parts += ["## Jobs", "", jobs_table(results), ""]
    for text in report.sections:
        parts += [text, ""]
    report.markdown = "\n".join(parts)
    write_text_atomic(sweep_dir / MARKDOWN, report.markdown)
    return report


def summary(report: SweepReport) -> str:
    """What the console shows at the end of a sweep: the table and where the files are."""
    counts = ", ".join(f"{n} {s.replace('_', ' ')}" for s, n in sorted(report.counts.items()))
    lines = [f"sweep {report.sweep_dir}: {len(report.results)} jobs ({counts}); swept: "
             f"{', '.join(report.swept) or 'nothing'}", "", markdown_table(report.table, report.swept),
             "", f"table: {report.sweep_dir / CSV}", f"report: {report.sweep_dir / MARKDOWN}"]
    if report.figure is not None:
        lines.append(f"figure: {report.figure}")
    return "\n".join(lines)


# --- W&B: the sweep is one group ----------------------------------------------------------------


def wandb_group(sweep_dir: str | Path) -> str:
    """The W&B group of every job of a sweep and of its report: the sweep directory."""
    text = str(sweep_dir)
    return text if len(text) <= 128 else "…" + text[-127:]


def sweep_group() -> str | None:
    """Resolver ``${alpagasus.sweep_group:}``: the sweep's W&B group in a multirun job, else
    None (a single run has no group)."""
    job = hydra_job()
    if job is None or job["mode"] != "multirun" or not job["sweep_dir"]:
        return None
    return wandb_group(job["sweep_dir"])


def register_resolvers() -> None:
    if not OmegaConf.has_resolver("alpagasus.sweep_group"):
        OmegaConf.register_new_resolver("alpagasus.sweep_group", sweep_group)


def log_to_wandb(report: SweepReport, logger_cfg: Any, wandb_dir: str | Path,
                 group: str) -> None:
    """Log the sweep's table and figure once, as one run of the sweep's W&B group."""
    from alpagasus.tracking import Tracker

    logger = OmegaConf.merge(OmegaConf.structured(_logger_schema()), logger_cfg,
                             {"group": group})
    tracker = Tracker(logger, {"sweep_dir": str(report.sweep_dir), "swept": report.swept,
                               "jobs": report.counts}, wandb_dir, name="sweep-report")
    try:
        if not tracker.enabled:
            return
        columns: list[str] = []
        for row in report.table:
            columns += [k for k in row if k not in columns]
        tracker.log_table("sweep/table", columns,
                          [[_csv_value(row.get(c)) for c in columns] for row in report.table])
        if report.figure is not None:
            tracker.log_image(f"sweep/{report.figure.stem}", report.figure)
    finally:
        tracker.finish()


def _logger_schema() -> Any:
    from alpagasus.config import LoggerConfig

    return LoggerConfig(name="wandb")


# --- alpagasus-report DIR -----------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="alpagasus-report",
        description="Write sweep.csv, sweep.md and the figure of a finished multirun directory "
                    "(e.g. outputs/multiruns/2026-11-21/15-30-00) from its jobs' result.json.")
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument("--wandb", action="store_true",
                        help="also log the table and figure to W&B, in the sweep's group (the "
                             "callback already did at the end of the sweep)")
    args = parser.parse_args(argv)
    if not args.sweep_dir.is_dir():
        parser.error(f"{args.sweep_dir}: no such directory")
    report = write_report(args.sweep_dir)
    if not report.results:
        print(f"{args.sweep_dir}: no job of a multirun found (no {RESULT}, no .hydra/)",
              file=sys.stderr)
        return 1
    print(summary(report))
    if args.wandb:
        conf = OmegaConf.load(args.sweep_dir / "multirun.yaml")
        log_to_wandb(report, conf.logger, conf.paths.wandb,
                     wandb_group(OmegaConf.select(conf, "hydra.sweep.dir") or args.sweep_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
