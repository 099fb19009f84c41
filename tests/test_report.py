"""The pairwise report: aggregation rules, per-set/per-category tallies, bootstrap CIs, sign
test, the markdown table, the plot, and report sections."""

from __future__ import annotations

import importlib
import json
import math
from itertools import product

import pytest

from alpagasus.artifacts import ArtifactStore
from alpagasus.config import AggregationRule
from alpagasus.context import RunContext
from alpagasus.stages import judge as judge_stage
from alpagasus.stages import report
from alpagasus.stages.judge import combine
from alpagasus.stats import bootstrap_ci, sign_test, winning_score
from alpagasus.tracking import Tracker

# --- stats -------------------------------------------------------------------------------------


def test_sign_test_exact_binomial_tail():
    # P(Binomial(10, 1/2) >= 8) = (C(10,8) + C(10,9) + C(10,10)) / 2**10
    assert sign_test(8, 2) == pytest.approx((45 + 10 + 1) / 1024)
    assert sign_test(5, 5) == pytest.approx(sum(math.comb(10, k) for k in range(5, 11)) / 1024)
    assert sign_test(0, 6) == pytest.approx(1.0)
    assert sign_test(6, 0) == pytest.approx(1 / 64)
    assert sign_test(0, 0) == 1.0  # no decisive prompt: no evidence
    with pytest.raises(ValueError):
        sign_test(-1, 2)


def test_bootstrap_ci_matches_the_normal_approximation_on_a_large_sample():
    verdicts = ["win"] * 600 + ["tie"] * 200 + ["lose"] * 200
    ci = bootstrap_ci(verdicts, resamples=4000, seed=1)
    # mean sign 0.4, var 0.8 - 0.16 = 0.64, sd of the mean 0.8 / sqrt(1000)
    half = 1.96 * 0.8 / math.sqrt(1000)
    assert ci.low == pytest.approx(1.4 - half, abs=0.01)
    assert ci.high == pytest.approx(1.4 + half, abs=0.01)


def test_bootstrap_ci_is_seeded_degenerate_and_narrows_with_n():
    few = ["win", "tie", "lose", "win", "win"]
    assert bootstrap_ci(few, seed=3) == bootstrap_ci(few, seed=3)
    assert bootstrap_ci(["win"] * 7).low == bootstrap_ci(["win"] * 7).high == 2.0
    assert bootstrap_ci([]) is None
    small, large = bootstrap_ci(few), bootstrap_ci(few * 40)
    assert small.low <= winning_score(3, 1, 1) <= small.high
    assert large.high - large.low < (small.high - small.low) / 3
    with pytest.raises(ValueError):
        bootstrap_ci(few, level=1.0)


# --- aggregation rules ---------------------------------------------------------------------------

PAPER = {("win", "win"): "win", ("win", "tie"): "win", ("tie", "win"): "win",
         ("win", "lose"): "tie", ("lose", "win"): "tie", ("tie", "tie"): "tie",
         ("lose", "tie"): "lose", ("tie", "lose"): "lose", ("lose", "lose"): "lose"}


@pytest.mark.parametrize("first,second", list(product(["win", "tie", "lose"], repeat=2)))
def test_rules_over_the_two_orders(first, second):
    assert combine(first, second, "alpagasus") == PAPER[(first, second)]
    assert combine(first, second) == PAPER[(first, second)]  # the paper's is the default
    # FastChat: only agreeing orders decide; any disagreement is a tie.
    assert combine(first, second, AggregationRule.strict) == (first if first == second else "tie")


def test_unreadable_order_is_unparsed_under_every_rule():
    for rule in AggregationRule:
        assert combine(None, "win", rule) == combine("tie", None, rule) == "unparsed"


# --- tallies -------------------------------------------------------------------------------------


def judgment(testset: str, first: str | None, second: str | None, category: str | None = None):
    return {"testset": testset, "category": category, "verdict_a_first": first,
            "verdict_b_first": second, "verdict": combine(first, second)}


def sample_judgments() -> list[dict]:
    rows = [judgment("vicuna", "win", "win", "knowledge")] * 4
    rows += [judgment("vicuna", "win", "tie", "knowledge")] * 2  # paper: win; strict: tie
    rows += [judgment("vicuna", "lose", "lose", "roleplay")] * 3
    rows += [judgment("vicuna", "win", "lose", "roleplay")]  # position bias: tie
    rows += [judgment("koala", "tie", "tie")] * 5 + [judgment("koala", None, "win")]
    return rows


def test_tally_per_set_overall_with_ci_and_p():
    table = report.tally(sample_judgments())
    assert list(table) == ["koala", "vicuna", "all"]
    v = table["vicuna"]
    assert (v["win"], v["tie"], v["lose"], v["unparsed"], v["n"]) == (6, 1, 3, 0, 10)
    assert v["winning_score"] == pytest.approx((6 - 3) / 10 + 1)
    assert v["p_value"] == pytest.approx(sign_test(6, 3), abs=1e-6)
    assert v["ci_low"] <= v["winning_score"] <= v["ci_high"]
    assert v["order_agreement"] == pytest.approx(7 / 10)
    k = table["koala"]
    assert (k["tie"], k["unparsed"], k["n"], k["winning_score"]) == (5, 1, 5, 1.0)
    assert k["ci_low"] == k["ci_high"] == 1.0 and k["p_value"] == 1.0
    overall = table["all"]
    assert (overall["win"], overall["tie"], overall["lose"], overall["n"]) == (6, 6, 3, 15)


def test_strict_rule_turns_split_orders_into_ties():
    table = report.tally(sample_judgments(), AggregationRule.strict)
    v = table["vicuna"]
    assert (v["win"], v["tie"], v["lose"]) == (4, 3, 3)
    assert v["winning_score"] == pytest.approx(1.1)


def test_categories_under_their_set_only_where_the_set_has_them():
    cats = report.tally_categories(sample_judgments())
    assert list(cats) == ["vicuna"]  # koala prompts carry no category
    assert sorted(cats["vicuna"]) == ["knowledge", "roleplay"]
    knowledge, roleplay = cats["vicuna"]["knowledge"], cats["vicuna"]["roleplay"]
    assert (knowledge["win"], knowledge["n"], knowledge["winning_score"]) == (6, 6, 2.0)
    assert (roleplay["tie"], roleplay["lose"], roleplay["n"]) == (1, 3, 4)
    assert roleplay["winning_score"] == pytest.approx(0.25)


def test_old_judgments_without_order_verdicts_keep_their_verdict():
    rows = [{"testset": "s", "verdict": v} for v in ("win", "win", "lose", "unparsed")]
    row = report.tally(rows)["s"]
    assert (row["win"], row["lose"], row["unparsed"], row["n"]) == (2, 1, 1, 3)


def test_markdown_table_names_the_rule_and_prints_ci_p_and_categories():
    judgments = sample_judgments()
    text = report.format_table(report.tally(judgments, "strict"), "A = x vs B = y; judge j",
                               report.tally_categories(judgments, "strict"), "strict")
    lines = text.splitlines()
    assert lines[0] == "A = x vs B = y; judge j"
    assert lines[1].startswith("rule: strict (FastChat's")
    header = next(ln for ln in lines if ln.startswith("| test set"))
    assert "95% CI" in header and "p (A>B)" in header
    names = [ln.split("|")[1].strip() for ln in lines if ln.startswith("| ")][1:]
    assert names == ["koala", "vicuna", "vicuna / knowledge", "vicuna / roleplay", "all"]
    vicuna = next(ln for ln in lines if ln.startswith("| vicuna |"))
    assert "| 1.100 | [" in vicuna


# --- the report stage on a judgments artifact ---------------------------------------------------


@pytest.fixture
def judged(tmp_path):
    store = ArtifactStore(tmp_path / "artifacts")

    def build(workdir):
        rows = [{**j, "id": str(n), "prompt": f"q{n}"} for n, j in enumerate(sample_judgments())]
        (workdir / judge_stage.JUDGMENTS).write_text("".join(json.dumps(r) + "\n" for r in rows))
        return {"prompts": len(rows)}

    return store, store.ensure("judge", {"j": 1}, {}, build)


def make_ctx(compose_cfg, tmp_path, store, *overrides):
    cfg = compose_cfg(f"paths.root={tmp_path}", *overrides)
    return RunContext(cfg=cfg, store=store, tracker=Tracker.off())


def test_report_files_rule_and_sections(compose_cfg, tmp_path, judged, monkeypatch, capsys):
    store, judgments = judged
    ctx = make_ctx(compose_cfg, tmp_path, store, "report.rule=strict",
                   "report.bootstrap_resamples=500")
    for module in report.SECTION_MODULES:  # registered now, not again into the empty table
        importlib.import_module(module)
    monkeypatch.setattr(report, "SECTIONS", {})

    @report.report_section("benchmark")
    def _section(ctx):
        return report.Section(title="Benchmarks", data={"rows": [{"task": "mmlu", "a": 0.3}]},
                              markdown="| task | A |\n|---|---|\n| mmlu | 0.3 |",
                              inputs={"lm_eval": "k123"})

    @report.report_section("not_configured")
    def _absent(ctx):
        return None

    artifact = report.build_report(ctx, judgments, "A = x vs B = y; judge j", {"model": "m"})
    out = json.loads((artifact.path / report.REPORT).read_text())
    assert out["rule"] == "strict" and out["rule_text"].startswith("strict")
    assert out["ci"]["resamples"] == 500 and out["ci"]["level"] == 0.95
    assert out["table"]["vicuna"]["winning_score"] == pytest.approx(1.1)
    assert {"ci_low", "ci_high", "p_value"} <= set(out["table"]["all"])
    assert set(out["categories"]["vicuna"]) == {"knowledge", "roleplay"}
    assert out["sections"] == {"benchmark": {"title": "Benchmarks",
                                             "rows": [{"task": "mmlu", "a": 0.3}]}}
    md = (artifact.path / report.REPORT_MD).read_text()
    assert "rule: strict" in md and "## Benchmarks" in md and "| vicuna / roleplay |" in md
    for png in (report.PLOT, report.CATEGORY_PLOT):
        assert (artifact.path / png).read_bytes()[:4] == b"\x89PNG"
    assert artifact.manifest["inputs"] == {"judgments": judgments.key, "benchmark/lm_eval": "k123"}
    assert artifact.counts["ci_low"] == out["table"]["all"]["ci_low"]
    assert "| vicuna / knowledge |" in capsys.readouterr().out
    with pytest.raises(ValueError, match="registered twice"):
        report.report_section("benchmark")(_section)

    # Another rule is another report over the same judgments (nothing judged again).
    paper = report.build_report(make_ctx(compose_cfg, tmp_path, store, "report.rule=alpagasus"),
                                judgments,
                                "A = x vs B = y; judge j", {"model": "m"})
    assert paper.key != artifact.key
    assert json.loads((paper.path / report.REPORT).read_text())["table"]["vicuna"]["win"] == 6
