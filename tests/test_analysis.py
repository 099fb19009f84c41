"""Comparing selections: statistics against hand-computed values, writers, the sweep section."""

from __future__ import annotations

import json
import math

import pytest

from alpagasus import analysis
from alpagasus.analysis import Features, SelectionView
from alpagasus.data import Item

LABELS = [True, True, True, False, False, False, False, False, False, False]


def test_against_reference_by_hand():
    kept = [True, True, False, True, False, False, False, False, False, False]
    r = analysis.against_reference(LABELS, kept)
    assert (r["positives"], r["kept_positives"]) == (3, 2)
    assert r["precision"] == pytest.approx(2 / 3, abs=1e-4)
    assert r["recall"] == pytest.approx(2 / 3, abs=1e-4)
    # A kept set is a one-threshold classifier: AUC = (TPR + TNR) / 2.
    assert r["auc_kept"] == pytest.approx((2 / 3 + 6 / 7) / 2, abs=1e-4)
    assert r["auc_ranking"] is None and r["auc_score"] is None


def test_auc_of_a_ranking_puts_unranked_items_last():
    perfect = [3.0, 2.0, 1.0, 0.5, None, None, None, None, None, None]
    assert analysis.against_reference(LABELS, [False] * 10, perfect)["auc_ranking"] == 1.0
    # Positives never ranked: all tie with the negatives at the bottom.
    none_ranked = [None, None, None, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3]
    assert analysis.against_reference(LABELS, [False] * 10, none_ranked)["auc_ranking"] == (
        pytest.approx(0.0))
    assert analysis.against_reference([False] * 10, [True] * 10)["auc_kept"] is None


def test_overlap_counts_jaccard_and_kappa():
    a = [True, True, True, False, False, False]
    b = [False, True, True, True, False, False]
    o = analysis.overlap(a, b)
    assert (o["both"], o["only_a"], o["only_b"]) == (2, 1, 1)
    assert o["jaccard"] == 0.5
    # kappa by hand: p_o = 4/6, p_e = (3/6)(3/6) + (3/6)(3/6) = 0.5
    assert o["kappa"] == pytest.approx((4 / 6 - 0.5) / 0.5, abs=1e-4)
    assert analysis.overlap([False] * 4, [False] * 4)["jaccard"] is None


def test_agreement_of_two_rating_sets():
    judge = [5.0, 4.5, 4.0, 3.5, None, 3.0]
    ifd = [0.9, 0.8, 0.7, 0.6, 0.5, 1.2]
    g = analysis.agreement(judge, ifd, [s is not None and s >= 4.5 for s in judge],
                           [s < 1 for s in ifd])
    assert g["n"] == 5  # the unparsed rating is left out
    # ranks 5,4,3,2,1 vs 4,3,2,1,5: sum d^2 = 20, rho = 1 - 6 * 20 / (5 * 24) = 0
    assert g["spearman"] == pytest.approx(0.0, abs=1e-4)
    # passes: judge T T F F F; ifd T T T T F  -> confusion rows judge F/T, cols ifd F/T
    assert g["confusion"] == [[1, 2], [0, 2]]
    assert g["kappa"] == pytest.approx(
        (3 / 5 - (2 / 5 * 4 / 5 + 3 / 5 * 1 / 5)) / (1 - (2 / 5 * 4 / 5 + 3 / 5 * 1 / 5)),
        abs=1e-4)
    constant = analysis.agreement([4.0] * 4, [1.0, 2.0, 3.0, 4.0], [True] * 4, [True] * 4)
    assert constant["spearman"] is None and constant["kappa"] is None


def test_kept_at_thresholds_and_side_stats():
    assert analysis.kept_at([5.0, 4.5, 4.0, None, 3.0], [3.0, 4.5, 5.0]) == {
        "3": 4, "4.5": 2, "5": 1}
    items = [Item("a", "", "xx"), Item("b", "in", "xxxx"), Item("c", "", "xxxxxx")]
    f = Features.of(items)
    kd = analysis.kept_vs_dropped(f, [True, True, False])
    assert kd["kept"]["response_chars_mean"] == 3.0 and kd["kept"]["with_input"] == 0.5
    assert kd["dropped"]["response_chars_mean"] == 6.0 and kd["dropped"]["with_input"] == 0.0
    unknown = Features([2, None, 6], [False, None, False], [None] * 3)
    assert analysis.side_stats(unknown, [True, True, False])["response_chars_mean"] is None


def _views(n=10):
    judge = [5.0, 4.5, 4.5, 3.0, 4.0, 4.5, 3.5, 2.0, None, 4.0]
    ifd = [0.5, 0.7, 0.9, 1.1, 0.4, 0.8, 0.95, 1.3, 0.6, 0.2]
    return [
        SelectionView("chatgpt_t4.5", "chatgpt≥4.5 (4)", "judge",
                      [s is not None and s >= 4.5 for s in judge], judge, "chatgpt score",
                      judged=True, rank=judge,
                      passes=[s is not None and s >= 4.5 for s in judge]),
        SelectionView("ifd_n3", "ifd (3)", "ifd", [False, False, True, False, False, True,
                                                     True, False, False, False],
                      ifd, "ifd score", rank=[s if s < 1 else None for s in ifd],
                      passes=[s < 1 for s in ifd]),
        SelectionView("random_n3_s1", "random (3)", "random",
                      [True, False, False, False, True, False, False, False, False, True]),
    ]


def test_analyze_and_markdown_with_categories():
    items = [Item(f"q{i}", "x" if i % 2 else "", "y" * (i + 1)) for i in range(10)]
    features = Features([len(it.output) for it in items], [bool(it.input) for it in items],
                        ["open_qa" if i < 5 else "summarization" for i in range(10)])
    result = analysis.analyze(features, _views(), LABELS, [4.0, 4.5],
                              {"path": "claude.json", "released": 50, "positives": 3,
                               "unmatched": 47})
    json.dumps(result)  # JSON-able as written to analysis.json
    assert [s["kept"] for s in result["selections"]] == [4, 3, 3]
    assert result["selections"][0]["kept_at"] == {"4": 6, "4.5": 4}
    assert "kept_at" not in result["selections"][1]  # IFD is not on the judge's scale
    assert len(result["overlap"]) == 3
    assert [(g["a"], g["b"]) for g in result["agreement"]] == [("chatgpt_t4.5", "ifd_n3")]
    md = analysis.to_markdown(result)
    for text in ("| chatgpt≥4.5 (4) | judge | 4 | 10 |", "### Overlap", "### Score agreement",
                 "### Kept at each threshold", "### Categories", "summarization",
                 "AUC (ranking)", "claude.json"):
        assert text in md, text
    # The `all` baseline overlaps everything trivially; one rating set cut twice agrees
    # trivially: neither is reported.
    everything = SelectionView("all", "all (10)", "all", [True] * 10)
    judge_again = SelectionView(**{**_views()[0].__dict__, "name": "chatgpt_t4"})
    more = analysis.analyze(features, [*_views(), everything, judge_again])
    assert all("all" not in (o["a"], o["b"]) for o in more["overlap"])
    assert ("chatgpt_t4.5", "chatgpt_t4") not in [(g["a"], g["b"]) for g in more["agreement"]]
    with pytest.raises(ValueError, match="kept has 9 entries for 10 items"):
        analysis.analyze(features, [SelectionView("x", "x", "all", [True] * 9)])


def test_plots_are_written(tmp_path):
    features = Features(list(range(1, 11)), [False] * 10, [None] * 10)
    result = analysis.analyze(features, _views(), LABELS)
    analysis.plot_overlap(result, tmp_path / "overlap.png")
    assert analysis.plot_scores(_views(), tmp_path / "scores.png")
    assert analysis.plot_roc(_views(), LABELS, tmp_path / "roc.png")
    assert not analysis.plot_scores(_views()[2:], tmp_path / "none.png")
    for name in ("overlap.png", "scores.png", "roc.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"


def test_sweep_section_compares_the_jobs_selections(tiny_cfg, tmp_path):
    """Real artifacts of two stage=analyze jobs, referenced the way result.json does."""
    from alpagasus.context import RunContext
    from alpagasus.data import load_items
    from alpagasus.main import run
    from alpagasus.stages import analyze, select

    demo = load_items(tiny_cfg().data)
    reference = tmp_path / "released.json"
    reference.write_text(json.dumps([it.to_dict() for it in demo[::3]]))  # 4 of the 12
    results = []
    for overrides in (["filter=random", "size=5"], ["filter=longest", "size=5"]):
        cfg = tiny_cfg("stage=analyze", f"analyze.reference={reference}", *overrides)
        run(cfg)
        ctx = RunContext(cfg, _store(tmp_path), _off())  # every artifact is reused
        done = {f"select/{r}": select.run(ctx, arm) for r, arm in ctx.arms.items()}
        done["analyze"] = analyze.run(ctx)
        results.append({"status": "completed", "job": {"overrides": overrides},
                        "artifacts": {name: {"stage": a.stage, "key": a.key, "path": str(a.path)}
                                      for name, a in done.items()}})
    results.append({"status": "failed", "artifacts": {}})  # a failed job: skipped
    results.append({"status": "missing"})
    md = analysis.sweep_section(results, tmp_path)
    assert "random (5)" in md and "longest (5)" in md and "all (12)" in md
    assert "### Overlap" in md and "AUC (kept)" in md and "released.json" in md
    saved = json.loads((tmp_path / "selections.json").read_text())
    assert len(saved["selections"]) == 3  # all (shared by both jobs) counted once
    by_method = {s["method"]: s for s in saved["selections"]}
    assert by_method["all"]["reference"]["recall"] == 1.0
    assert by_method["longest"]["reference"]["auc_ranking"] is not None
    # Every item is known through the `all` selection: kept-vs-dropped lengths are filled.
    assert all(s["kept_vs_dropped"]["dropped"]["response_chars_mean"] is not None
               for s in saved["selections"] if s["kept"] < 12)
    assert (tmp_path / "overlap.png").is_file()


@pytest.mark.parametrize("results", [[], [{}], [None, "x", 3], [{"artifacts": {"a": {"path": 5}}}],
                                     [{"artifacts": {"x": {"path": "/nowhere/select/abc"}}}]])
def test_sweep_section_tolerates_missing_fields(results, tmp_path):
    assert analysis.sweep_section(results, tmp_path) == ""


def _store(tmp_path):
    from alpagasus.artifacts import ArtifactStore

    return ArtifactStore(tmp_path / "artifacts")


def _off():
    from alpagasus.tracking import Tracker

    return Tracker.off()


def test_spearman_matches_scipy_on_ties():
    from scipy.stats import spearmanr

    x = [1.0, 2.0, 2.0, 3.0, 5.0, 4.0]
    y = [0.3, 0.1, 0.2, 0.9, 0.8, 0.8]
    g = analysis.agreement(x, y, [True] * 6, [False, False, False, True, True, True])
    assert math.isclose(g["spearman"], round(spearmanr(x, y)[0], 4))


def test_sweep_labels_say_the_threshold_of_a_judge_selection():
    assert analysis._threshold_label({"method": "judge", "threshold": 4.5}) == "≥4.5"
    assert analysis._threshold_label({"method": "random", "threshold": 4.5}) == ""
    assert analysis._threshold_label({"method": "nope"}) == ""


@pytest.mark.slow
def test_analyze_a_judge_against_ifd_end_to_end(app_cfg, tiny_lm, tmp_path):
    """The embedded judge and IFD (tiny LM) on 12 demo items: agreement, kept at thresholds."""
    from alpagasus.main import run

    run(app_cfg("stage=analyze", "analyze.compare=[local,ifd]", f"ifd.model={tiny_lm}",
                "ifd.progress=false", "analyze.thresholds=[1,1.5,2]"))
    path = next((tmp_path / "artifacts" / "analyze").glob("*/analysis.json"))
    result = json.loads(path.read_text())
    judge, ifd = result["selections"]
    assert judge["method"] == "judge" and ifd["method"] == "ifd"
    assert list(judge["kept_at"]) == ["1", "1.5", "2"] and "kept_at" not in ifd
    # The parsed score and (issue 17) the local judge's expected score, each against IFD.
    by_pair = {(g["score_a"], g["score_b"]): g for g in result["agreement"]}
    agreement = by_pair[("local score", "ifd score")]
    assert len(by_pair) == len(result["agreement"])
    assert agreement["n"] >= 10 and sum(map(sum, agreement["confusion"])) == agreement["n"]
    assert (path.parent / "scores.png").is_file()
    assert "### Score agreement" in (path.parent / "analysis.md").read_text()
