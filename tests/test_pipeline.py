"""The real pipeline on the embedded model: every artifact, reuse, sweeps, no leaked secret."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from alpagasus.main import run
from alpagasus.stages.select import items_key
from tests.conftest import TINY

CANARY = "sk-canary-7f3a9c1e5b"
SECRET_VARS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "WANDB_API_KEY")


def _artifacts(root: Path) -> dict[str, list[Path]]:
    base = root / "artifacts"
    return {s.name: sorted(p for p in s.iterdir() if (p / "manifest.json").is_file())
            for s in base.iterdir() if s.is_dir()}


def _assert_no_canary(root: Path) -> None:
    leaked = [p for p in root.rglob("*") if p.is_file() and CANARY.encode() in p.read_bytes()]
    assert leaked == []


def test_pipeline_builds_everything_then_reuses_it(tiny_cfg, tmp_path, monkeypatch, caplog):
    for var in SECRET_VARS:
        monkeypatch.setenv(var, CANARY)
    caplog.set_level(logging.INFO, logger="alpagasus")
    cfg = tiny_cfg()
    score = run(cfg)

    arts = _artifacts(tmp_path)
    assert {k: len(v) for k, v in arts.items()} == {
        "rate": 1, "select": 2, "train": 2, "generate": 2, "judge": 1, "report": 1}
    ratings = (arts["rate"][0] / "ratings.jsonl").read_text().splitlines()
    assert len(ratings) == 12
    kept = sorted(len(json.loads((p / "selected.json").read_text())) for p in arts["select"])
    assert 0 < kept[0] <= kept[1] == 12  # arm A (the filter) and arm B (all items)
    for train_dir in arts["train"]:
        assert (train_dir / "model" / "adapter_model.safetensors").is_file()
        assert not (train_dir / "checkpoints").exists()
    answers = [json.loads(x) for x in (arts["generate"][0] / "answers.jsonl").read_text().splitlines()]
    assert len(answers) == 3 and all("### Instruction" not in a["answer"] for a in answers)
    arms = {json.loads((p / "manifest.json").read_text())["meta"]["arm"]["role"]
            for p in arts["generate"]}
    assert arms == {"a", "b"}
    report = json.loads((arts["report"][0] / "report.json").read_text())
    overall = report["table"]["all"]
    assert report["title"].startswith("A = local≥1.5 (") and "vs B = all (12)" in report["title"]
    assert overall["win"] + overall["tie"] + overall["lose"] + overall["unparsed"] == 3
    if overall["n"]:
        assert score == overall["winning_score"]
        # The table keeps 4 decimals (2/3 -> 0.6667).
        assert score == pytest.approx((overall["win"] - overall["lose"]) / overall["n"] + 1,
                                      abs=5e-5)
    assert (arts["report"][0] / "win_tie_lose.png").read_bytes()[:4] == b"\x89PNG"
    manifest = json.loads((arts["train"][0] / "manifest.json").read_text())
    assert {"config", "inputs", "versions", "git_commit", "started", "finished", "counts"} <= set(manifest)
    assert manifest["counts"]["steps"] == 3
    wandb_runs = list((tmp_path / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(wandb_runs) == 1

    caplog.clear()
    mtimes = {p: p.stat().st_mtime for paths in arts.values() for p in paths}
    assert run(cfg) == score
    built = [r.message for r in caplog.records if "building artifact" in r.message]
    assert built == []
    assert {p: p.stat().st_mtime for p in mtimes} == mtimes
    assert "done: 9 artifacts, 9 reused, 0 built" in caplog.text
    _assert_no_canary(tmp_path)


@pytest.mark.slow
def test_threshold_sweep_rates_once_and_trains_each_distinct_selection_once(tmp_path):
    """`alpagasus -m threshold=0.5,1.0,1.5`: one rating; a selection per threshold and one
    all-data selection; but 0.5 and 1.0 keep the same 12 items as the all-data arm, so the
    models (and their answers) are built once per distinct set of items, not per arm."""
    env = {**os.environ, **{v: CANARY for v in SECRET_VARS}}
    overrides = [o for o in TINY if not o.startswith("threshold=")]
    cmd = [sys.executable, "-m", "alpagasus", "-m", "threshold=0.5,1.0,1.5", "stage=generate",
           *overrides, f"paths.root={tmp_path}"]
    out = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1800)
    assert out.returncode == 0, out.stderr[-3000:]
    arts = _artifacts(tmp_path)
    assert len(arts["rate"]) == 1
    assert len(arts["select"]) == 4  # arm A at 0.5, 1.0 and 1.5; arm B (all items) once
    contents = {items_key(json.loads((p / "selected.json").read_text())) for p in arts["select"]}
    assert len(contents) == 2  # 0.5, 1.0 and all keep the same 12 items; 1.5 keeps 9
    assert len(arts["train"]) == len(arts["generate"]) == len(contents)
    trained_on = {json.loads((p / "manifest.json").read_text())["inputs"]["items"]
                  for p in arts["train"]}
    assert trained_on == contents
    # Each job says which of its arms reused a model: 6 arms, 2 built, 4 reused.
    results = [json.loads(p.read_text()) for p in (tmp_path / "multiruns").rglob("result.json")]
    reused = [a["reused"] for r in results for a in r["training"]["arms"].values()]
    assert (len(reused), reused.count(False)) == (6, 2)
    sweep_md = next((tmp_path / "multiruns").rglob("sweep.md")).read_text()
    assert "## Trained models" in sweep_md and "6 arms used 2 distinct models" in sweep_md
    assert list((tmp_path / "multiruns").rglob(".hydra/config.yaml"))
    _assert_no_canary(tmp_path)
