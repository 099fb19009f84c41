"""The local (embedded) judge in score_mode=expected, end to end: the rate stage keeps the
unrounded expected score beside the parsed one, select.score=expected picks by it, and the
pairwise replies carry both assistants' expected scores. (The embedded judge is near chance:
this checks the plumbing and the arithmetic, not the judgments.)"""

from __future__ import annotations

import json

import pytest

from alpagasus.expected import PAIR_SCALE
from alpagasus.pair_expected import expected_means


def _manifest_dirs(root, stage):
    return [d for d in (root / "artifacts" / stage).iterdir() if (d / "manifest.json").is_file()]


@pytest.mark.slow
def test_local_judge_expected_scores_rate_select_and_pair(tiny_cfg, tmp_path):
    from alpagasus.judges import make_judge
    from alpagasus.main import run

    cfg = tiny_cfg("stage=select", "judge.score_mode=expected", "select.score=expected",
                   "size=4", "select.order=top", "threshold=1.0", "logger.enabled=false")
    run(cfg)
    (rate_dir,) = _manifest_dirs(tmp_path, "rate")
    rows = [json.loads(line) for line in (rate_dir / "ratings.jsonl").read_text().splitlines()]
    assert rows and all(r["expected_score"] is not None for r in rows)
    for r in rows:
        assert 0 <= r["expected_score"] <= 5 and 0 < r["expected_mass"] <= 1
        assert r["score"] == round(r["expected_score"] * 2) / 2  # the reply keeps the grid
    assert any(r["expected_score"] * 2 != round(r["expected_score"] * 2) for r in rows)
    counts = json.loads((rate_dir / "manifest.json").read_text())["counts"]
    assert counts["expected_scored"] == len(rows)
    assert counts["distinct_expected"] >= counts["distinct_scores"]

    (select_dir,) = [d for d in _manifest_dirs(tmp_path, "select")  # arm A (B: all items)
                     if json.loads((d / "manifest.json").read_text())["config"].get("score_by")]
    selection = [json.loads(line) for line in
                 (select_dir / "selection.jsonl").read_text().splitlines()]
    kept = [s for s in selection if s["kept"]]
    passing = sorted((r["expected_score"] for r in rows if r["expected_score"] >= 1.0),
                     reverse=True)
    assert len(kept) == 4
    assert sorted((s["expected_score"] for s in kept), reverse=True) == passing[:4]

    # Pairwise: two expected scores per reply; the same pair in both orders averages to a tie.
    judge = make_judge(cfg.eval_judge, tmp_path / "cache")
    try:
        q = [{"role": "user", "content": "Compare.\nAssistant 1: {a}\nAssistant 2: {b}"}]
        one = [{"role": "user", "content": q[0]["content"].format(a="Paris.", b="Paris.")}]
        replies = judge.complete([one, one], "pair", desc="pair")
    finally:
        judge.close()
    scores = [tuple(float(x) for x in r.text.split()[:2]) for r in replies]
    found = [r.expected_scores(list(s), PAIR_SCALE) for r, s in zip(replies, scores, strict=True)]
    for (s1, s2), (e1, e2) in zip(scores, found, strict=True):
        assert (round(e1.value, 1), round(e2.value, 1)) == pytest.approx((s1, s2))
    mean_a, mean_b = expected_means([e.value for e in found[0]], [e.value for e in found[1]])
    assert mean_a == pytest.approx(mean_b, abs=1e-4)
