"""Arms with the same selected items share one trained model: the sweep report keeps a row
for every arm and marks the ones that share (alpagasus/shared_models.py)."""

from __future__ import annotations

import csv

from omegaconf import OmegaConf

from alpagasus import sweep
from alpagasus.shared_models import shared_models
from alpagasus.stages.select import items_key


def _result(num, threshold, key_a, key_b="ALL", reused_a=False, reused_b=True, kept_a=12):
    table = {"all": {"win": 1, "tie": 1, "lose": 1, "unparsed": 0, "n": 3,
                     "winning_score": 1.0}}
    return {
        "version": 1, "status": "completed", "error": None,
        "job": {"num": num, "overrides": [f"threshold={threshold}"]},
        "config": {"eval_judge.name": "local", "testsets": ["demo"]},
        "arms": {"a": {"label": f"local≥{threshold} ({kept_a})", "threshold": threshold,
                       "kept": kept_a},
                 "b": {"label": "all (12)", "kept": 12}},
        "training": {"arms": {"a": {"key": key_a, "reused": reused_a, "examples": kept_a},
                              "b": {"key": key_b, "reused": reused_b, "examples": 12}}},
        "report": {"table": table}, "seconds": 1.0,
    }


# The smoke threshold sweep: 0.5 and 1.0 keep all 12 items, so their arm A is the all-data
# model; 1.5 and 2.0 keep fewer, each its own.
SMOKE = [_result(0, 0.5, "ALL", reused_a=False, reused_b=True),
         _result(1, 1.0, "ALL", reused_a=True),
         _result(2, 1.5, "K8", kept_a=8),
         _result(3, 2.0, "K3", kept_a=3)]


def test_models_are_labelled_by_key_with_their_users_and_builder():
    models = shared_models(SMOKE)
    assert [(m.label, m.key, m.items, m.built_by) for m in models.values()] == [
        ("M1", "ALL", 12, 0), ("M2", "K8", 8, 2), ("M3", "K3", 3, 3)]
    assert models["ALL"].users == [(0, "a"), (0, "b"), (1, "a"), (1, "b"), (2, "b"), (3, "b")]
    assert [m.shared for m in models.values()] == [True, False, False]


def test_the_report_keeps_every_row_and_marks_the_shared_models(tmp_path):
    for r in SMOKE:
        sweep.write_result(tmp_path / str(r["job"]["num"]), r)
    OmegaConf.save(OmegaConf.create({"hydra": {"sweeper": {"params": None}}}),
                   tmp_path / "multirun.yaml")
    report = sweep.write_report(tmp_path)
    lines = report.markdown[:report.markdown.index("## Jobs")].splitlines()  # the main table
    head = next(line for line in lines if line.startswith("| job |"))
    assert "| model A / B |" in head
    cells = {line.split(" | ")[0].strip("| "): line.split(" | ")[5]
             for line in lines if line.startswith("| ") and line.split(" | ")[1] == "completed"}
    assert cells == {"0": "M1* / M1*", "1": "M1* / M1*", "2": "M2 / M1*", "3": "M3 / M1*"}
    section = report.markdown[report.markdown.index("## Trained models"):]
    assert "8 arms used 3 distinct models" in section
    assert "| M1* | 12 | 0: A, 0: B, 1: A, 1: B, 2: B, 3: B | 0 | ALL |" in section
    with open(tmp_path / sweep.CSV) as f:
        rows = list(csv.DictReader(f))
    assert [(r["model_a"], r["model_a_shared"], r["model_b"]) for r in rows] == [
        ("M1", "True", "M1"), ("M1", "True", "M1"), ("M2", "False", "M1"), ("M3", "False", "M1")]


def test_a_sweep_without_trainings_has_no_model_column(tmp_path):
    result = {**SMOKE[0], "training": {}}
    sweep.write_result(tmp_path / "0", result)
    report = sweep.write_report(tmp_path)
    assert "model A / B" not in report.markdown and "## Trained models" not in report.markdown


def test_the_training_key_is_the_items_in_order():
    a = [{"instruction": "x", "input": "", "output": "1"},
         {"instruction": "y", "input": "", "output": "2"}]
    assert items_key(a) == items_key([dict(r) for r in a])  # the same items: one model
    assert items_key(a) != items_key(a[::-1])  # another order trains differently
    assert items_key(a) != items_key(a[:1])
