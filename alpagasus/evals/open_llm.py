"""Benchmark `open_llm`: the Open LLM Leaderboard (v1) tasks through lm-evaluation-harness.

ARC-challenge 25-shot (acc_norm), HellaSwag 10-shot (acc_norm), MMLU 5-shot (acc, lm-eval's
group mean weighted by subject size) and TruthfulQA-mc2 0-shot (acc), as listed in
conf/benchmark/open_llm.yaml; any lm-eval task, or a task YAML of your own in
``benchmark.include_path``, runs the same way. Each arm's model is loaded once into lm-eval's
HFLM (the base with the arm's LoRA adapter through its ``peft=`` argument, a full fine-tune's
folder, or with ``benchmark.model_source=merged`` the export stage's merged model) and
``lm_eval.simple_evaluate`` runs each task with its own shot count.

Task names are checked against lm-eval's task index before any model loads. The number a
task reports (``metric``) only reads the results, so fixing it reuses the artifact.

Output: results.json (lm-eval's results, groups, versions, shots and task configs; no
per-sample logs) and scores.json ({task: value of its metric}).
"""

from __future__ import annotations

import difflib
import hashlib
import importlib.util
import json
import logging
from importlib import metadata
from pathlib import Path
from typing import Any

from alpagasus.arms import Arm
from alpagasus.artifacts import Artifact
from alpagasus.config import ConfigError
from alpagasus.context import RunContext
from alpagasus.evals import Benchmark, BenchmarkError, ModelRef, register_benchmark
from alpagasus.models import default_device, inference_dtype

log = logging.getLogger(__name__)

RESULTS = "results.json"
SCORES = "scores.json"
# lm-eval's output sections kept in results.json (its per-sample logs are not).
_KEPT = ("results", "groups", "group_subtasks", "configs", "versions", "n-shot",
         "higher_is_better", "n-samples")


def resolve_batch_size(requested: str, device: str, cpu_batch_size: int) -> str:
    """lm-eval's "auto" searches for the largest batch with full-context forward passes:
    seconds on a GPU, minutes on a CPU, where a fixed size is used instead."""
    if requested.startswith("auto") and device == "cpu":
        return str(cpu_batch_size)
    return requested


def check_batch_size(value: str) -> None:
    head, _, factor = value.partition(":")
    ok = (head == "auto" and (not factor or _is_number(factor))) or \
        (value.isdigit() and int(value) > 0)
    if not ok:
        raise ConfigError(f"benchmark.batch_size={value!r}: a positive number, auto, or "
                          "auto:N (lm-eval re-detects N times)")


def _is_number(text: str) -> bool:
    try:
        return float(text) > 0
    except ValueError:
        return False


def include_fingerprint(include_path: str | None) -> str | None:
    """A hash of the task YAMLs under ``include_path``: editing one rebuilds the artifact."""
    if not include_path:
        return None
    root = Path(include_path)
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.suffix in (".yaml", ".yml", ".py")):
        h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def task_manager(include_path: str | None, builtin_tasks: bool):
    """lm-eval's task index: its own tasks (unless ``builtin_tasks`` is false) and ours."""
    from lm_eval.tasks import TaskManager

    if include_path and not Path(include_path).is_dir():
        raise BenchmarkError(f"benchmark.include_path={include_path}: not a folder")
    return TaskManager(include_path=include_path, include_defaults=builtin_tasks)


def missing_tasks(names: list[str], known: list[str]) -> list[str]:
    """Each unknown task name, with lm-eval's closest names as a hint."""
    known_set = set(known)
    out = []
    for name in names:
        if name not in known_set:
            close = difflib.get_close_matches(name, known, n=3)
            out.append(f"{name}" + (f" (did you mean {', '.join(close)}?)" if close else ""))
    return out


def read_metric(results: dict[str, Any], task: str, metric: str) -> float | None:
    """The task's (or group's) value of ``metric``, e.g. "acc_norm,none"; None if absent."""
    for section in ("results", "groups"):
        row = results.get(section, {}).get(task)
        if row and metric in row and isinstance(row[metric], int | float):
            return float(row[metric])
    return None


def evaluate_model(model: ModelRef, tasks: list[Any], manager: Any, batch_size: str,
                   max_batch_size: int, limit: float | None) -> dict[str, Any]:
    """Load the model into one HFLM and run every task on it; lm-eval's merged output."""
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM

    device = default_device()
    lm = HFLM(pretrained=model.path, peft=model.adapter, device=device,
              dtype=inference_dtype(device), batch_size=batch_size,
              max_batch_size=max_batch_size)
    merged: dict[str, Any] = {k: {} for k in _KEPT}
    for task in tasks:
        log.info("[open_llm] %s, %s-shot", task.task,
                 "default" if task.num_fewshot is None else task.num_fewshot)
        out = simple_evaluate(model=lm, tasks=[task.task], num_fewshot=task.num_fewshot,
                              task_manager=manager, limit=limit, log_samples=False)
        for k in _KEPT:
            merged[k].update(out.get(k) or {})
    merged["model"] = {"path": model.path, "adapter": model.adapter,
                       "model_class": type(lm.model).__name__,  # PeftModel... with an adapter
                       "batch_sizes": list(getattr(lm, "batch_sizes", {}).values()),
                       "device": device, "dtype": str(inference_dtype(device))}
    return merged


@register_benchmark
class OpenLLM(Benchmark):
    name = "open_llm"

    def check(self, spec: Any) -> None:
        if not spec.tasks:
            raise ConfigError(f"benchmark={spec.name}: benchmark.tasks is empty")
        check_batch_size(spec.batch_size)
        seen = set()
        for i, task in enumerate(spec.tasks):
            if task.num_fewshot is not None and task.num_fewshot < 0:
                raise ConfigError(f"benchmark.tasks[{i}] ({task.task}): num_fewshot="
                                  f"{task.num_fewshot} must be >= 0")
            if task.task in seen:
                raise ConfigError(f"benchmark.tasks[{i}]: {task.task} is listed twice")
            seen.add(task.task)

    def prepare(self, ctx: RunContext) -> Any:
        spec = ctx.cfg.benchmark
        if importlib.util.find_spec("lm_eval") is None:
            raise BenchmarkError("benchmark=open_llm runs lm-evaluation-harness: "
                                 "pip install 'alpagasus[eval]' (or lm-eval)")
        manager = task_manager(spec.include_path, spec.builtin_tasks)
        missing = missing_tasks([t.task for t in spec.tasks], manager.all_tasks)
        if missing:
            where = (f"lm-eval's tasks{' and ' if spec.include_path else ''}"
                     if spec.builtin_tasks else "")
            where += f"the YAMLs in {spec.include_path}" if spec.include_path else ""
            raise BenchmarkError(f"benchmark.tasks: not in {where or 'any task index'}: "
                                 f"{'; '.join(missing)}")
        return manager

    def evaluate(self, ctx: RunContext, arm: Arm, model: ModelRef, prepared: Any) -> Artifact:
        spec = ctx.cfg.benchmark
        batch_size = resolve_batch_size(spec.batch_size, default_device(), spec.cpu_batch_size)
        # The batch size and the metric read are left out: neither changes what is measured.
        config = {"tasks": [[t.task, t.num_fewshot] for t in spec.tasks], "limit": spec.limit,
                  "include": include_fingerprint(spec.include_path),
                  "lm_eval": _lm_eval_version()}

        def build(workdir: Path) -> dict[str, Any]:
            results = evaluate_model(model, list(spec.tasks), prepared, batch_size,
                                     spec.max_batch_size, spec.limit)
            (workdir / RESULTS).write_text(json.dumps(results, indent=2, default=str))
            scores = {t.task: read_metric(results, t.task, t.metric) for t in spec.tasks}
            (workdir / SCORES).write_text(json.dumps(scores, indent=2))
            return {"tasks": len(spec.tasks), "n_samples": {
                k: v.get("effective") for k, v in results["n-samples"].items()}}

        return ctx.store.ensure("open_llm", config, {"model": model.key}, build,
                                meta={"arm": arm.describe()})

    def headline(self, artifact: Artifact, spec: Any) -> dict[str, float | None]:
        results = json.loads((artifact.path / RESULTS).read_text())
        scores = {}
        for task in spec.tasks:
            scores[task.task] = value = read_metric(results, task.task, task.metric)
            if value is None:
                row = results["results"].get(task.task) or results["groups"].get(task.task, {})
                log.warning("[open_llm] %s has no metric %r (it has: %s); set its `metric`",
                            task.task, task.metric,
                            ", ".join(k for k in row if "stderr" not in k and "," in k))
        values = [v for v in scores.values() if v is not None]
        scores["average"] = sum(values) / len(values) if len(values) == len(spec.tasks) else None
        return scores


def _lm_eval_version() -> str | None:
    try:
        return metadata.version("lm-eval")
    except metadata.PackageNotFoundError:
        return None
