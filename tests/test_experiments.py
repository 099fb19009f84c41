"""Every study in conf/experiment: the jobs its sweep launches and the arms of each, for real
and under debug=smoke (offline, embedded default); then each one run offline up to selection."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from alpagasus.arms import arms_from_config
from alpagasus.main import CONF_DIR
from alpagasus.sweep import sweep_jobs
from alpagasus.validation import validate

EXPERIMENTS = sorted(p.stem for p in (Path(CONF_DIR) / "experiment").glob("*.yaml"))

# What each study is: per job (in sweep order), arm A (filter, threshold, size) and arm B
# (filter, threshold, size); `smoke` the same under debug=smoke (thresholds 3 points lower,
# sizes of the 12 demo items).
PAPER_A = ("chatgpt", 4.5, None)
ALL = ("all", None, None)
EXPECTED = {
    "paper_7b": {"jobs": [(PAPER_A, ALL)], "smoke": [(("chatgpt", 1.5, None), ALL)]},
    "paper_13b": {"jobs": [(PAPER_A, ALL)], "smoke": [(("chatgpt", 1.5, None), ALL)]},
    "qlora_7b": {"jobs": [(PAPER_A, ALL)], "smoke": [(("chatgpt", 1.5, None), ALL)]},
    "filtered_vs_random": {
        "jobs": [(PAPER_A, ("random", None, "match"))],
        "smoke": [(("chatgpt", 1.5, None), ("random", None, "match"))]},
    "judge_ablation": {
        "jobs": [(("claude", 4.5, None), ("chatgpt", 4.5, "match")), (("claude", 4.5, None), ALL),
                 (PAPER_A, ALL)],
        "smoke": [(("claude", 1.5, None), ("chatgpt", 1.5, "match")),
                  (("claude", 1.5, None), ALL), (("chatgpt", 1.5, None), ALL)]},
    "threshold_sweep": {
        "jobs": [(("chatgpt", t, None), ALL) for t in (3.5, 4.0, 4.5, 5.0)],
        "smoke": [(("chatgpt", t, None), ALL) for t in (0.5, 1.0, 1.5, 2.0)]},
    "threshold_head_to_head": {
        "jobs": [(PAPER_A, ("chatgpt", 4.0, None))],
        "smoke": [(("chatgpt", 1.5, None), ("chatgpt", 1.0, None))]},
    "size_sweep": {
        "jobs": [(("chatgpt", 4.5, n), ALL) for n in (3000, 6000, 9000)],
        "smoke": [(("chatgpt", 1.5, n), ALL) for n in (3, 6, 9)]},
}
PRESETS = {  # model, train, lora, quant of the real study
    "paper_13b": ("13b", "paper_13b", "none", "none"),
    "qlora_7b": ("7b", "qlora_paper", "paper", "nf4"),
}


def _compose(*overrides: str, hydra: bool = False):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides), return_hydra_config=hydra)


def study_jobs(*overrides: str) -> list[list[str]]:
    """The jobs `alpagasus -m *overrides` launches (as Hydra's basic sweeper expands them)."""
    parser = OverridesParser.create()
    fixed = [o for o in overrides if not parser.parse_override(o).is_sweep_override()]
    cfg = _compose(*fixed, hydra=True)
    params = cfg.hydra.sweeper.params
    return sweep_jobs(OmegaConf.to_container(params) if params is not None else {},
                      list(overrides))


def job_configs(*overrides: str):
    for job in study_jobs(*overrides):
        yield job, _compose(*job)


def _arm(arm) -> tuple:
    threshold = arm.threshold if arm.method == "judge" else None
    return (arm.filter_name, threshold, arm.size)


def test_every_experiment_is_described_here():
    assert sorted(EXPECTED) == EXPERIMENTS


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_jobs_and_arms(name):
    configs = list(job_configs(f"experiment={name}"))
    arms = [(_arm(a["a"]), _arm(a["b"])) for a in (arms_from_config(c) for _, c in configs)]
    assert arms == EXPECTED[name]["jobs"]
    for _, cfg in configs:
        validate(cfg)
        model, train, lora, quant = PRESETS.get(name, ("7b", "paper_7b", "none", "none"))
        assert (cfg.model.name, cfg.train.name, cfg.lora.name, cfg.quant.name) == (
            model, train, lora, quant)
        assert (cfg.data.name, cfg.testsets.name, cfg.eval_judge.name) == ("alpaca", "paper", "gpt4")
        assert cfg.judge.backend in ("openai", "anthropic") and cfg.data.limit is None


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_under_smoke_is_offline_and_tiny(name):
    configs = list(job_configs(f"experiment={name}", "debug=smoke"))
    assert len(configs) == len(EXPECTED[name]["jobs"])  # the same study, smaller
    arms = []
    for _, cfg in configs:
        validate(cfg)
        container = OmegaConf.to_container(cfg, resolve=True)
        judges = [container["judge"], container["eval_judge"]]
        if container["baseline"]["judge"] is not None:
            judges.append(container["baseline"]["judge"])
        # No API judge anywhere, and arm B's judge is exactly the rating judge.
        assert all(j["backend"] == "local" for j in judges)
        if container["baseline"]["judge"] is not None:
            assert container["baseline"]["judge"] == container["judge"]
        assert cfg.model.name_or_path.startswith("embedded:")
        assert (cfg.data.name, cfg.data.limit, cfg.testsets.name, cfg.testsets.limit) == (
            "demo", 12, "demo", 3)
        assert (cfg.train.name, cfg.quant.name, cfg.generate.max_new_tokens) == ("smoke", "none", 8)
        assert cfg.logger.mode == "offline"
        run_arms = arms_from_config(cfg)
        arms.append((_arm(run_arms["a"]), _arm(run_arms["b"])))
    assert arms == EXPECTED[name]["smoke"]


def test_sweeps_share_ratings_and_the_all_data_model():
    """threshold_sweep: one judge for every job (one rating pass), one arm B (one all-data
    training); judge_ablation: two judges, hence two rating passes."""
    sweep = [arms_from_config(c) for _, c in job_configs("experiment=threshold_sweep")]
    assert len({(a["a"].judge.name, a["a"].prompt) for a in sweep}) == 1
    assert len({a["b"].name for a in sweep}) == 1
    ablation = [arms_from_config(c) for _, c in job_configs("experiment=judge_ablation")]
    judges = {arm.judge.name for a in ablation for arm in a.values() if arm.judge is not None}
    assert judges == {"claude", "chatgpt"}


def test_command_line_overrides_the_studys_sweep():
    assert [j[0] for j in study_jobs("experiment=threshold_sweep", "threshold=4.5")] == [
        "threshold=4.5"]
    assert len(study_jobs("experiment=filtered_vs_random", "baseline.seed=1,2,3")) == 3


@pytest.mark.slow
def test_every_experiment_runs_offline_up_to_selection(tmp_path):
    """`alpagasus -m experiment=NAME debug=smoke stage=select` for every study: every job
    completes, writes its result.json, and the sweep report has a row per job. One rating
    (the embedded judge, 12 items) serves them all."""
    env = {**os.environ, "WANDB_MODE": "offline"}
    for name in EXPERIMENTS:
        cmd = [sys.executable, "-m", "alpagasus", "-m", f"experiment={name}", "debug=smoke",
               "stage=select", "logger.enabled=false", f"paths.root={tmp_path}",
               f"hydra.sweep.dir={tmp_path}/multiruns/{name}"]
        out = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True,
                             timeout=900)
        assert out.returncode == 0, (name, out.stdout[-2000:], out.stderr[-3000:])
        sweep_dir = tmp_path / "multiruns" / name
        results = [json.loads(p.read_text()) for p in sorted(sweep_dir.glob("*/result.json"))]
        assert len(results) == len(EXPECTED[name]["jobs"])
        assert {r["status"] for r in results} == {"completed"}
        assert all(r["arms"]["a"]["kept"] > 0 and r["arms"]["b"]["kept"] > 0 for r in results)
        assert (sweep_dir / "sweep.csv").is_file() and "| completed |" in out.stdout
    assert len([p for p in (tmp_path / "artifacts" / "rate").iterdir() if p.name[0] != "."]) == 1
