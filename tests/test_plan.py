"""stage=plan on a run and on a multirun (shared work once), that it spends nothing and shows
what is reused, and the fit refusal every train/generate/IFD run makes before any load."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from alpagasus.main import run
from alpagasus.planning import fit
from tests.servers import fake_chat

REPO = Path(__file__).resolve().parents[1]
TINY = ["data.limit=12", "testsets.limit=3", "train=smoke", "generate.max_new_tokens=8",
        "logger.enabled=false"]
KEYS = {"hardware", "ratings", "trainings", "generations", "evaluations", "totals", "fits",
        "missing"}


def read_plan(root: Path) -> dict:
    return json.loads((root / "plan" / "plan.json").read_text())


def test_plan_of_a_run_writes_plan_json_and_spends_nothing(compose_cfg, tmp_path):
    run(compose_cfg(*TINY, "stage=plan", f"paths.root={tmp_path}", "hardware=h100_80gb_x1"))
    plan = read_plan(tmp_path)
    assert KEYS <= set(plan)
    assert (tmp_path / "plan" / "plan.md").read_text().startswith("# Plan")
    assert plan["hardware"]["name"] == "h100_80gb_x1" and plan["hardware"]["gpus"] == 1
    (rating,) = plan["ratings"]  # the demo filter's local judge
    assert rating["requests"] == rating["items"] == 12 and rating["usd"] == 0
    names = {t["name"] for t in plan["trainings"]}
    assert "all" in names and len(plan["trainings"]) == 2
    a = next(t for t in plan["trainings"] if t["role"] == "a")
    assert not a["items_exact"] and "upper bound" in a["items_bound"]  # before rating
    assert a["items"] == 12 and a["tokens"] > 0 and a["fits"] is True
    (evaluation,) = plan["evaluations"]
    assert evaluation["prompts"] == 3 and evaluation["requests"] == 6  # both orders
    # Spent nothing: no artifact, no judge cache, no W&B folder: only the plan.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan"]


def test_plan_shows_reuse_and_sends_no_request(compose_cfg, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_COMPATIBLE_API_KEY", "k")
    with fake_chat(lambda messages: "4.5\nAccurate.") as judge:
        over = [*TINY, f"paths.root={tmp_path}", "filter=openai_compatible",
                f"judge.base_url={judge.url}", "judge.model=m", "judge.price_input_per_mtok=1",
                "judge.price_output_per_mtok=2"]
        run(compose_cfg(*over, "stage=plan"))
        before = read_plan(tmp_path)
        assert judge.requests == []  # planning sent nothing
        (rating,) = before["ratings"]
        assert rating["requests"] == 12 and rating["cached"] == 0 and rating["usd"] > 0
        assert rating["output_tokens"] == 12 * 256  # max_tokens: the bound, never under
        assert not before["missing"]

        run(compose_cfg(*over, "stage=rate"))
        sent = len(judge.requests)
        assert sent == 12
        run(compose_cfg(*over, "stage=plan"))
        after = read_plan(tmp_path)
        assert len(judge.requests) == sent
    (rating,) = after["ratings"]
    assert rating["reused"] and rating["requests"] == 0 and after["totals"]["usd"] == 0
    # stage=noise priced beside it, not in the totals: 12 items, 5 repeats, repeat 0 shared.
    (noise,) = after["analyses"]
    assert noise["name"] == "noise" and noise["requests"] == 12 * 4 and noise["usd"] > 0
    a = next(t for t in after["trainings"] if t["role"] == "a")
    assert a["items_exact"] and a["items"] == 12  # every item rated 4.5 passes 4.5


def test_plan_lists_what_a_real_run_still_needs(compose_cfg, tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    run(compose_cfg(*TINY, "stage=plan", f"paths.root={tmp_path}", "filter=chatgpt",
                    "model=7b", "train=paper_7b", "hardware=a100_80gb_x4"))
    plan = read_plan(tmp_path)
    missing = " ".join(plan["missing"])
    assert "OPENAI_API_KEY (judge chatgpt)" in missing
    assert "meta-llama/Llama-2-7b-hf" in missing
    a = next(t for t in plan["trainings"] if t["role"] == "a")
    assert a["method"] == "full" and a["strategy"] == "fsdp" and a["fits"]
    assert "fsdp.yaml --num_processes 4" in a["launch"]
    assert any("rate.mode=batch" in x for x in plan["alternatives"])
    assert any("qlora_paper on 1 GPU" in x for x in plan["alternatives"])


@pytest.mark.slow
def test_fit_refusal_names_the_memory_before_any_download(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "alpagasus", "stage=train", "model=7b", "train=paper_7b",
         "hardware.memory_gib=23", f"paths.root={tmp_path}", "logger.enabled=false",
         f"hydra.run.dir={tmp_path}/run"],
        capture_output=True, text=True, cwd=REPO, timeout=300,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(REPO),
             "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 1, done.stderr[-2000:]
    assert "needs ~" in done.stderr and "GiB per device" in done.stderr
    assert "this machine has 23.0 GiB" in done.stderr and "train=qlora_paper" in done.stderr
    assert "cannot read the config" not in done.stderr  # refused before the hub was asked
    assert not (tmp_path / "artifacts").exists()


def test_fit_override_lets_an_expert_run(compose_cfg, tmp_path):
    cfg = compose_cfg("stage=train", "model=7b", "train=paper_7b", "hardware.memory_gib=23",
                      f"paths.root={tmp_path}")
    with pytest.raises(fit.WontFitError, match="needs ~"):
        fit.check(cfg, "train", trains=True, generates=False)
    cfg.plan.check_fit = False
    fit.check(cfg, "train", trains=True, generates=False)  # logs a warning, runs
    small = compose_cfg("stage=train", *TINY, f"paths.root={tmp_path}")
    fit.check(small, "train", trains=True, generates=True)  # the embedded model fits here


@pytest.mark.slow
def test_multirun_plan_counts_shared_work_once(tmp_path):
    sweep = tmp_path / "sweep"
    done = subprocess.run(
        [sys.executable, "-m", "alpagasus", "-m", "stage=plan", "threshold=1.0,1.5", *TINY,
         f"paths.root={tmp_path}", f"hydra.sweep.dir={sweep}"],
        capture_output=True, text=True, cwd=REPO, timeout=600,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Study plan (2 jobs)" in done.stdout
    plan = json.loads((sweep / "plan.json").read_text())
    assert plan["jobs"] == 2 and len(plan["ratings"]) == 1  # one rating pass for both
    assert len(plan["ratings"][0]["jobs"]) == 2
    names = sorted(t["name"] for t in plan["trainings"])
    assert names == ["all", "local_t1", "local_t1.5"]  # the all-data model once
    (all_data,) = [t for t in plan["trainings"] if t["name"] == "all"]
    assert len(all_data["jobs"]) == 2
    assert plan["totals"]["trainings"] == 3 and len(plan["evaluations"]) == 2
    assert (sweep / "plan.md").is_file() and not (tmp_path / "artifacts").exists()


def test_plan_prices_mt_bench_judging(compose_cfg, tmp_path, monkeypatch):
    """benchmark=mt_bench: the judge's pass on each distinct model, one request per question and
    turn, counted in the totals (the pipeline's report runs it)."""
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    run(compose_cfg(*TINY, "stage=plan", f"paths.root={tmp_path}", "benchmark=mt_bench",
                    "eval_judge=gpt4", "benchmark.limit=10"))
    plan = read_plan(tmp_path)
    bench = [e for e in plan["evaluations"] if e["name"].startswith("MT-Bench")]
    assert len(bench) == 2  # one judge pass per distinct model: here arm A's and the all-data
    assert all(e["requests"] == 10 * 2 and e["usd"] > 0 and e["prompts"] == 10 for e in bench)
    spent = plan["ratings"] + plan["evaluations"]  # the pipeline's report runs MT-Bench: in totals
    assert plan["totals"]["requests"] == sum(e["requests"] for e in spent if not e["reused"])
    answers = [g for g in plan["generations"] if g["name"].startswith("MT-Bench answers")]
    assert len(answers) == 2 and all(g["prompts"] == 20 and g["fits"] for g in answers)


def test_plan_counts_ifd_scoring_as_its_own_pass(compose_cfg, tmp_path):
    """filter=ifd: stage=ifd's forward passes (each item with its instruction and alone) are a
    plan entry of their own, with tokens, memory, fit and GPU-hours, and count in the totals."""
    run(compose_cfg(*TINY, "stage=plan", f"paths.root={tmp_path}", "filter=ifd", "size=5",
                    "hardware=h100_80gb_x1"))
    plan = read_plan(tmp_path)
    (scoring,) = plan["scorings"]
    assert scoring["items"] == 12 and scoring["sequences"] == 24 and not scoring["reused"]
    assert scoring["tokens"] > 0 and scoring["fits"] is True and scoring["gpu_hours"] > 0
    assert not plan["ratings"]  # IFD needs no judge
    compute = sum(e["gpu_hours"] for s in ("scorings", "trainings", "generations")
                  for e in plan[s])
    assert plan["totals"]["gpu_hours"] == pytest.approx(compute, abs=1e-3)
    assert "## IFD scoring" in (tmp_path / "plan" / "plan.md").read_text()


def test_plan_lists_bad_mt_bench_files_instead_of_failing(compose_cfg, tmp_path):
    run(compose_cfg(*TINY, "stage=plan", f"paths.root={tmp_path}", "benchmark=mt_bench",
                    f"benchmark.path={tmp_path}/nowhere"))
    assert any(m.startswith("MT-Bench files:") and "nowhere" in m
               for m in read_plan(tmp_path)["missing"])
