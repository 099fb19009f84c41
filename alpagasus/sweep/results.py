"""The job's side of a sweep: ``result.json``, written by ``JobRecord`` however the job ends.

What it holds: the job's overrides, both arms (spec, label, items kept, selection key), the
keys of the artifacts it used and whether it built or reused them, the rating's tokens and
cost, training time and tokens, and the report's table (see alpagasus/sweep/__init__.py).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
import traceback
from collections.abc import Iterable
from enum import Enum
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from alpagasus.arms import arms_from_config
from alpagasus.shared_files import write_json_atomic

log = logging.getLogger("alpagasus.sweep")

RESULT = "result.json"
RESULT_VERSION = 1


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


def copy_to_run_dir(folder: Path, names: Iterable[str]) -> Path | None:
    """A stage's report files (those of ``names`` that exist) into this Hydra job's run
    folder; None outside a Hydra run (compose() in tests leaves no run folder)."""
    output_dir = (hydra_job() or {}).get("output_dir")
    if not output_dir:
        return None
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name in names:
        if (folder / name).is_file():
            shutil.copyfile(folder / name, out / name)
    return out


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
