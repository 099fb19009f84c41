"""Sweep report: result.json per job, the collector's table and figure, failed jobs as rows,
the Hydra callback at the end of a multirun, alpagasus-report DIR, W&B group."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from alpagasus import sweep
from alpagasus.main import run

PNG = b"\x89PNG"


def _result(num, overrides, status="completed", threshold=4.5, kept_a=9, table=None,
            error=None):
    table = table if table is not None else {
        "koala": {"win": 5, "tie": 3, "lose": 2, "unparsed": 0, "n": 10, "winning_score": 1.3},
        "all": {"win": 5, "tie": 3, "lose": 2, "unparsed": 0, "n": 10, "winning_score": 1.3}}
    return {
        "version": 1, "status": status, "error": error,
        "job": {"num": num, "overrides": overrides},
        "config": {"eval_judge.name": "gpt4", "testsets": ["koala"]},
        "arms": {"a": {"label": f"chatgpt≥{threshold:g} ({kept_a})", "threshold": threshold,
                       "kept": kept_a, "filter": "chatgpt"},
                 "b": {"label": "all (100)", "kept": 100, "filter": "all"}},
        "rating": {"judges": {"chatgpt/accuracy": {}}, "input_tokens": 1000, "output_tokens": 50,
                   "cost_usd": 0.5, "cost_usd_this_job": 0.5 if num == 0 else 0.0},
        "training": {"arms": {"a": {}}, "seconds_this_job": 12.0, "tokens_this_job": 3000},
        "report": {"table": table} if status == "completed" else None,
        "seconds": 30.0,
    }


def _write_sweep(tmp_path, results, params=None, task=()):
    for r in results:
        job_dir = tmp_path / str(r["job"]["num"])
        sweep.write_result(job_dir, r)
    conf = {"hydra": {"sweeper": {"_target_": "hydra._internal.core_plugins.basic_sweeper."
                                  "BasicSweeper", "params": params},
                      "overrides": {"task": list(task)}}}
    OmegaConf.save(OmegaConf.create(conf), tmp_path / "multirun.yaml")
    return tmp_path


def test_swept_keys_and_figure_kind():
    results = [_result(i, [f"threshold={t}", "experiment=x"]) for i, t in enumerate((3.5, 4.0))]
    assert sweep.swept_keys(results) == ["threshold"]
    assert sweep.figure_kind(["threshold"]) is sweep.FigureKind.threshold
    assert sweep.figure_kind(["seed", "size"]) is sweep.FigureKind.size
    assert sweep.figure_kind(["comparison"]) is sweep.FigureKind.ablation
    assert sweep.figure_kind([]) is sweep.FigureKind.ablation
    assert sweep.parse_override("+comparison=a_vs_b") == ("comparison", "a_vs_b")
    assert sweep.parse_override("hydra/launcher") is None


def test_report_over_a_threshold_sweep_with_a_failed_and_a_missing_job(tmp_path):
    ok = [_result(0, ["threshold=3.5"], threshold=3.5, kept_a=40),
          _result(1, ["threshold=4.5"], threshold=4.5, kept_a=9,
                  table={"koala": {"win": 6, "tie": 2, "lose": 2, "unparsed": 1, "n": 10,
                                   "winning_score": 1.4, "ci_low": 1.1, "ci_high": 1.7},
                         "all": {"win": 6, "tie": 2, "lose": 2, "unparsed": 1, "n": 10,
                                 "winning_score": 1.4, "ci_low": 1.1, "ci_high": 1.7}})]
    failed = _result(2, ["threshold=5.0"], status="failed", threshold=5.0,
                     error={"type": "SelectionError", "message": "no item kept of 100"})
    _write_sweep(tmp_path, ok + [failed], params={"threshold": "3.5,4.5,5.0,5.5"})
    (tmp_path / "3" / ".hydra").mkdir(parents=True)  # started, then killed: no result.json
    OmegaConf.save(OmegaConf.create({"hydra": {"job": {"num": 3},
                                               "overrides": {"task": ["threshold=5.5"]}}}),
                   tmp_path / "3" / ".hydra" / "hydra.yaml")
    report = sweep.write_report(tmp_path)
    assert [r["status"] for r in report.results] == ["completed", "completed", "failed", "missing"]
    assert report.swept == ["threshold"] and report.failed == 2
    with open(tmp_path / "sweep.csv") as f:
        table = list(csv.DictReader(f))
    # one row per job and test set; the jobs without a table keep one row each
    assert [(r["job"], r["test_set"], r["status"]) for r in table] == [
        ("0", "koala", "completed"), ("0", "all", "completed"), ("1", "koala", "completed"),
        ("1", "all", "completed"), ("2", "", "failed"), ("3", "", "missing")]
    assert table[2]["ci_low"] == "1.1" and "SelectionError: no item kept" in table[4]["error"]
    md = (tmp_path / "sweep.md").read_text()
    assert "| 2 | failed | 5.0 |" in md and "95% CI" in md and "1.100-1.700" in md
    assert report.figure == tmp_path / "sweep_threshold.png"
    assert report.figure.read_bytes()[:4] == PNG


def test_size_figure_and_ablation_bars(tmp_path):
    sizes = [_result(i, [f"size={n}"], kept_a=n) for i, n in enumerate((30, 60, 90))]
    report = sweep.write_report(_write_sweep(tmp_path / "size", sizes))
    assert report.figure.name == "sweep_size.png" and report.figure.read_bytes()[:4] == PNG
    ablation = [_result(i, [f"comparison={c}"]) for i, c in enumerate(("a_vs_b", "a_vs_all"))]
    report = sweep.write_report(_write_sweep(tmp_path / "abl", ablation))
    assert report.figure.name == "sweep_ablation.png" and report.figure.read_bytes()[:4] == PNG


def test_jobs_that_never_started_are_rows(tmp_path):
    _write_sweep(tmp_path, [_result(0, ["size=30", "stage=train"])], params={"size": "30,60"},
                 task=["stage=train"])
    results = sweep.load_results(tmp_path)
    assert [(r["job"]["num"], r["status"]) for r in results] == [(0, "completed"),
                                                                 (1, "not_started")]
    assert results[1]["job"]["overrides"] == ["size=60", "stage=train"]


def test_sections_are_optional_and_called_with_the_results(tmp_path, monkeypatch):
    calls = []
    module = types.ModuleType("fake_section")
    module.section = lambda results, sweep_dir: calls.append((len(results), sweep_dir)) or "## Extra"
    monkeypatch.setitem(sys.modules, "fake_section", module)
    _write_sweep(tmp_path, [_result(0, ["size=30"])])
    report = sweep.write_report(tmp_path, sections=("fake_section:section",
                                                    "alpagasus_not_installed:section"))
    assert calls == [(1, tmp_path)] and report.sections == ["## Extra"]
    assert "## Extra" in (tmp_path / "sweep.md").read_text()


def test_alpagasus_report_cli(tmp_path, capsys):
    _write_sweep(tmp_path, [_result(0, ["threshold=3.5"]), _result(1, ["threshold=4.5"])])
    assert sweep.main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| 1 | completed | 4.5 |" in out and "figure:" in out
    empty = tmp_path / "empty"
    empty.mkdir()
    assert sweep.main([str(empty)]) == 1
    with pytest.raises(SystemExit):
        sweep.main([str(tmp_path / "nope")])


def test_job_record_writes_the_failure(tiny_cfg, tmp_path):
    cfg = tiny_cfg("filter=random", "size=1000")  # more than the 12 items: fails before any model
    with pytest.raises(ValueError), sweep.JobRecord(cfg, output_dir=tmp_path / "job") as rec:
        from alpagasus.main import _run

        _run(cfg, rec)
    result = json.loads((tmp_path / "job" / "result.json").read_text())
    assert result["status"] == "failed" and result["error"]["type"] == "SelectionError"
    assert "size=1000" in result["error"]["message"] and "Traceback" in result["error"]["traceback"]
    assert result["arms"]["a"]["method"] == "random" and result["arms"]["a"]["kept"] is None
    # Outside a Hydra job (tests, notebooks) run() has nowhere to write it, and writes nothing.
    assert sweep.hydra_job() is None
    with pytest.raises(ValueError):
        run(cfg)
    assert [p.parent.name for p in Path(tmp_path).rglob("result.json")] == ["job"]


def test_sweep_keeps_going_reports_the_failed_job_and_exits_1(tmp_path):
    """The callback: a failed job is a row of the report, the sweep still ends with a report,
    and its exit status says a job failed."""
    cmd = [sys.executable, "-m", "alpagasus", "-m", "stage=select", "filter=random",
           "size=3,1000", "data.limit=12", "logger.enabled=false", f"paths.root={tmp_path}",
           f"hydra.sweep.dir={tmp_path}/sweep"]
    out = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 1, out.stderr[-3000:]
    assert "| 0 | completed | 3 | random (3) | all (12) |" in out.stdout
    assert "| 1 | failed | 1000 | random | all |" in out.stdout
    assert "1 of 2 jobs failed" in out.stderr + out.stdout
    results = [json.loads(p.read_text()) for p in sorted((tmp_path / "sweep").glob("*/result.json"))]
    assert [r["status"] for r in results] == ["completed", "failed"]
    assert results[0]["job"]["overrides"][2] == "size=3"
    assert results[0]["artifacts"]["select/a"]["reused"] is False
    assert results[1]["error"]["type"] == "SelectionError"


@pytest.mark.slow
def test_filtered_vs_random_smoke_end_to_end(tmp_path):
    """`alpagasus -m experiment=filtered_vs_random debug=smoke`: the real pipeline offline, the
    sweep table printed, the figure written, result.json complete, one W&B group."""
    env = {**os.environ, "WANDB_MODE": "offline"}
    cmd = [sys.executable, "-m", "alpagasus", "-m", "experiment=filtered_vs_random",
           "debug=smoke", f"paths.root={tmp_path}", f"hydra.sweep.dir={tmp_path}/sweep"]
    out = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1800)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "| 0 | completed | chatgpt≥1.5 (" in out.stdout and "vs B = random (" in out.stdout
    figure = tmp_path / "sweep" / "sweep_ablation.png"
    assert f"figure: {figure}" in out.stdout and figure.read_bytes()[:4] == PNG
    result = json.loads((tmp_path / "sweep" / "0" / "result.json").read_text())
    assert result["status"] == "completed"
    a, b = result["arms"]["a"], result["arms"]["b"]
    assert b["method"] == "random" and a["kept"] == b["kept"] > 0
    assert {"rate/local/accuracy", "select/a", "select/b", "train/a", "train/b", "report"} <= set(
        result["artifacts"])
    assert result["rating"]["input_tokens"] > 0 and result["rating"]["cost_usd"] == 0
    assert result["training"]["seconds_this_job"] > 0 and result["training"]["tokens_this_job"] > 0
    table = result["report"]["table"]
    assert set(table) == {"demo", "all"}
    assert table["all"]["win"] + table["all"]["tie"] + table["all"]["lose"] + table["all"][
        "unparsed"] == 3
    rows = list(csv.DictReader(open(tmp_path / "sweep" / "sweep.csv")))
    assert [r["test_set"] for r in rows] == ["demo", "all"]
    # The job's W&B run and the sweep report's run are in one group: the sweep directory.
    runs = sorted((tmp_path / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(runs) == 2
    group = sweep.wandb_group(tmp_path / "sweep").encode()
    assert all(group in r.read_bytes() for r in runs)
