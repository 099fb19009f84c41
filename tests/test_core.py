"""Pure pieces: verdict combination, tallies, artifacts (selection: test_selection.py)."""

from __future__ import annotations

import json

import pytest

from alpagasus.artifacts import ArtifactStore
from alpagasus.stages.judge import combine, order_verdict
from alpagasus.stages.report import tally


def test_order_verdict_and_paper_combination():
    assert order_verdict((8, 7), a_first=True) == "win"
    assert order_verdict((8, 7), a_first=False) == "lose"  # B was Assistant 1
    assert order_verdict((7, 7), a_first=False) == "tie"
    assert combine("win", "win") == "win"
    assert combine("win", "tie") == "win"
    assert combine("win", "lose") == "tie"
    assert combine("tie", "tie") == "tie"
    assert combine("lose", "tie") == "lose"
    assert combine(None, "win") == "unparsed"


def test_tally_winning_score():
    verdicts = ["win"] * 5 + ["tie"] * 3 + ["lose"] * 2 + ["unparsed"]
    rows = [{"testset": "koala", "verdict": v, "verdict_a_first": v, "verdict_b_first": v}
            for v in verdicts]
    rows[5].update(verdict_a_first="win", verdict_b_first="lose")  # a tie by position bias
    table = tally(rows)
    row = table["koala"]
    assert (row["win"], row["tie"], row["lose"], row["unparsed"], row["n"]) == (5, 3, 2, 1, 10)
    assert row["winning_score"] == pytest.approx((5 - 2) / 10 + 1)
    assert row["order_agreement"] == pytest.approx(9 / 10)
    assert table["all"] == row


def test_artifact_is_built_once_and_atomically(tmp_path):
    store = ArtifactStore(tmp_path)
    calls = []

    def build(workdir):
        calls.append(workdir)
        (workdir / "out.txt").write_text("x")
        return {"n": 1}

    a = store.ensure("stage", {"k": 1}, {"in": "abc"}, build)
    b = store.ensure("stage", {"k": 1}, {"in": "abc"}, build)
    assert len(calls) == 1 and not a.reused and b.reused and a.path == b.path
    assert json.loads((a.path / "manifest.json").read_text())["counts"] == {"n": 1}
    c = store.ensure("stage", {"k": 2}, {"in": "abc"}, build)
    assert c.key != a.key and len(calls) == 2


def test_failed_build_leaves_nothing(tmp_path):
    store = ArtifactStore(tmp_path)

    def build(workdir):
        (workdir / "half.txt").write_text("half")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        store.ensure("stage", {}, {}, build)
    assert [p.name for p in (tmp_path / "stage").iterdir() if not p.name.endswith(".lock")] == []


def test_each_arm_logs_under_its_own_wandb_keys():
    """Two trainings in one job must not write the same W&B keys (train/* was overwritten)."""
    from types import SimpleNamespace

    from alpagasus.tracking import Tracker

    logged: list[dict] = []
    tracker = Tracker.off()
    tracker.run = SimpleNamespace(log=logged.append, summary={})
    state = SimpleNamespace(global_step=3)
    for arm in ("chatgpt_t4.5", "all"):
        tracker.trainer_callback(f"train/{arm}").on_log(None, state, None,
                                                        logs={"loss": 1.0, "note": "x"})
    assert logged == [{"train/chatgpt_t4.5/loss": 1.0, "train/chatgpt_t4.5/global_step": 3},
                      {"train/all/loss": 1.0, "train/all/global_step": 3}]
    tracker.run.summary = {}
    tracker.run.summary = type("S", (dict,), {"update": dict.update})()
    tracker.log_stage("generate/all", {"prompts": 3}, reused=False)
    assert logged[-1] == {"generate/all/prompts": 3, "generate/all/reused": 0}
