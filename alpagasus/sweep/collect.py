"""The sweep's side: every job of a multirun directory read back, one dict per job.

A job that failed, crashed or never started is a dict with its status, not a missing one.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from alpagasus.sweep.results import RESULT, JobStatus

log = logging.getLogger("alpagasus.sweep")


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
