"""The blind human study: sides, labels, agreement, the API, and the page in a real browser."""

from __future__ import annotations

import json
import shutil
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from alpagasus.human.server import StudyServer
from alpagasus.human.study import (
    LabelStore,
    Study,
    agreement,
    format_summary,
    left_arm,
    summarize,
    tally,
)
from tests.conftest import TINY

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
BROWSER_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ARM_WORDS = ("Model A", "Model B", "arm", "answer_a", "answer_b", "left_arm", "verdict", "alpagasus≥")

# Six prompts judged by the LLM: A wins 0-2, ties 3, loses 4, unparsed 5.
LLM = ["win", "win", "win", "tie", "lose", "unparsed"]


PROMPTS = [
    ("How can I improve my time management skills?", "",
     "Set clear priorities each morning, block time for deep work, and review your day in the "
     "evening to see where the time went.",
     "Use a planner."),
    ("Summarize the text in one sentence.", "The Amazon rainforest produces about 20% of the "
     "world's oxygen and is home to millions of species, many not yet described.",
     "The Amazon is a vast, oxygen-producing rainforest of enormous, still largely unknown "
     "biodiversity.",
     "The Amazon rainforest is in South America."),
    ("Write a haiku about autumn.", "",
     "Crimson leaves drifting\nacross the quiet footpath\nthe year exhales slow",
     "Autumn is a season\nwhen leaves fall from trees\nit is cold"),
    ("What are the main differences between Python and JavaScript?", "",
     "Python is mostly used on servers and for data work, JavaScript runs in browsers; Python "
     "uses indentation for blocks, JavaScript braces.",
     "Python and JavaScript are both programming languages with different syntax, typing "
     "rules and runtimes."),
    ("Give three tips for staying healthy.", "",
     "1. Eat a balanced diet.\n2. Exercise regularly.\n3. Sleep seven to nine hours.",
     "Drink water, move every day, and see a doctor once a year."),
    ("Translate 'good morning' into French.", "", "Bonjour.", "Bon matin."),
]


def _rows(n: int = 6) -> list[dict]:
    return [{"testset": "vicuna", "id": i, "category": "generic", "prompt": prompt,
             "input": inp, "answer_a": a, "answer_b": b, "verdict": LLM[i]}
            for i, (prompt, inp, a, b) in enumerate(PROMPTS[:n])]


@pytest.fixture
def study() -> Study:
    return Study.from_judgments(_rows(), key="judge-key", seed=3, title="A = chatgpt≥4.5 vs B = all")


def test_sides_are_a_seeded_coin_per_prompt():
    sides = [left_arm(0, "study", f"t/{i}") for i in range(400)]
    assert sides == [left_arm(0, "study", f"t/{i}") for i in range(400)]  # stable on reload
    assert 160 < sides.count("a") < 240  # about half each
    assert sides != [left_arm(1, "study", f"t/{i}") for i in range(400)]  # the seed matters


def test_items_show_sides_only_and_map_choices_to_arm_a(study):
    assert sorted(it.key for it in study.items) == [f"vicuna/{i}" for i in range(6)]
    assert [it.key for it in study.items] == [
        it.key for it in Study.from_judgments(_rows(), key="judge-key", seed=3).items]
    for it in study.items:
        shown = it.shown()
        assert set(shown) == {"key", "testset", "category", "prompt", "input", "left", "right"}
        a_left = it.left == "a"
        assert shown["left"] == (it.answer_a if a_left else it.answer_b)
        assert it.verdict("left") == ("win" if a_left else "lose")
        assert it.verdict("right") == ("lose" if a_left else "win")
        assert it.verdict("tie") == "tie"
    with pytest.raises(ValueError, match="share the key vicuna/0"):
        Study.from_judgments(_rows() + _rows(1), key="k", seed=0)


def test_label_store_keeps_labels_across_reopen_and_relabel(tmp_path, study):
    item = study.items[0]
    store = LabelStore(tmp_path / "labels.sqlite")
    store.put(study, item, "ann", "left")
    store.put(study, item, "ann", "tie")  # relabel: one row, the last choice
    store.put(study, item, "other", "right")
    with pytest.raises(ValueError, match="label must be one of left, right, tie"):
        store.put(study, item, "ann", "both")
    store.close()
    store = LabelStore(tmp_path / "labels.sqlite")
    labels = store.labels(study.key, "ann")
    assert list(labels) == [item.key]
    assert labels[item.key]["choice"] == "tie" and labels[item.key]["left_arm"] == item.left
    assert store.labels(study.key, "other")[item.key]["verdict"] == item.verdict("right")
    assert store.labels("another-study", "ann") == {}
    store.close()


def test_tally_and_agreement_by_hand():
    assert tally(["win", "win", "tie", "lose"]) == {"win": 2, "tie": 1, "lose": 1, "n": 4,
                                                    "winning_score": 1.25}
    human = ["win", "win", "tie", "lose", "lose", "win"]
    llm = ["win", "tie", "tie", "lose", "win", "win"]
    out = agreement(human, llm)
    # p_o = 4/6; marginals human (3, 1, 2), llm (3, 2, 1): p_e = (9 + 2 + 2) / 36
    p_o, p_e = 4 / 6, 13 / 36
    assert out["kappa"] == round((p_o - p_e) / (1 - p_e), 4)
    assert out["agreement"] == round(p_o, 4)
    assert out["confusion"] == [[2, 1, 0], [0, 1, 0], [1, 0, 1]]  # rows human, columns LLM
    assert agreement(["tie", "tie"], ["tie", "tie"])["kappa"] is None  # undefined, not 0 or 1
    assert agreement([], [])["n"] == 0


def test_summary_leaves_unparsed_llm_verdicts_out_of_agreement(study):
    labels = {f"vicuna/{i}": {"verdict": v, "left_arm": "a", "choice": "x"}
              for i, v in enumerate(["win", "lose", "win", "tie", "lose", "win"])}
    s = summarize(study, labels)
    assert s["labelled"] == 6 and s["human"]["win"] == 3
    assert s["llm_unparsed"] == 1 and s["agreement"]["n"] == 5
    assert s["llm_on_labelled"]["n"] == 5  # the unparsed one is not a tie
    text = format_summary(s)
    assert "| human | 3 | 1 | 2 | 6 | 1.167 |" in text and "Cohen's kappa" in text


def _request(url: str, body: dict | None = None, content_type: str = "application/json"):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_api_is_blind_validates_and_stores(tmp_path, study):
    store = LabelStore(tmp_path / "labels.sqlite")
    server = StudyServer(study, store, "ann").start()
    try:
        assert server.url.startswith("http://127.0.0.1:")
        status, data = _request(server.url + "api/items")
        assert status == 200
        text = json.dumps(data)
        assert "chatgpt" not in text and not any(w in text for w in ARM_WORDS)
        assert set(data) == {"annotator", "items"}
        key = data["items"][0]["key"]
        assert _request(server.url + "api/label", {"key": key, "label": "left"})[1] == {
            "ok": True, "labelled": 1, "total": 6}
        # A form post (what another site could send without a preflight) is refused.
        assert _request(server.url + "api/label", {"key": key, "label": "right"},
                        "text/plain")[0] == 415
        assert _request(server.url + "api/label", {"key": key, "label": "better"})[0] == 400
        assert _request(server.url + "api/label", {"key": "nope/1", "label": "tie"})[0] == 400
        assert _request(server.url + "api/items")[1]["items"][0]["label"] == "left"
        assert store.labels(study.key, "ann")[key]["choice"] == "left"
    finally:
        server.stop()
        store.close()


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium: apt-get install -y chromium")
def test_label_reload_resume_in_a_real_browser(tmp_path, study):
    playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    store = LabelStore(tmp_path / "labels.sqlite")
    server = StudyServer(study, store, "ann").start()
    served = server._thread
    try:
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_FLAGS)
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(server.url)
            page.wait_for_selector("body[data-ready='1']")
            first = study.items[0]
            assert page.text_content("#prompt") == first.prompt
            assert page.text_content("#left") == first.shown()["left"]
            assert not any(w in page.content() for w in ARM_WORDS)

            page.keyboard.press("1")  # left better
            page.wait_for_selector("body[data-labelled='1']")
            page.keyboard.press("2")  # right better
            page.wait_for_selector("body[data-labelled='2']")
            page.keyboard.press("t")  # tie
            page.wait_for_selector("body[data-labelled='3']")
            assert "3 labelled" in page.text_content("#progress-text")

            page.reload()  # resume: the stored labels, at the first unlabelled prompt
            page.wait_for_selector("body[data-ready='1']")
            assert page.get_attribute("body", "data-labelled") == "3"
            assert page.get_attribute("body", "data-current") == study.items[3].key
            assert "Prompt 4 of 6" in page.text_content("#progress-text")

            page.click("#btn-tie")  # the buttons work too
            page.wait_for_selector("body[data-labelled='4']")
            page.keyboard.press("ArrowLeft")  # back to prompt 4 ...
            page.keyboard.press("p")  # ... and 3
            assert page.get_attribute("body", "data-current") == study.items[2].key
            assert "your label: tie" in page.text_content("#progress-text")
            page.keyboard.press("2")  # change its label
            page.wait_for_function("document.getElementById('status').textContent"
                                   ".startsWith('saved')")
            page.keyboard.press("n")
            page.keyboard.press("u")  # the next unlabelled
            assert page.get_attribute("body", "data-current") == study.items[4].key
            assert page.is_visible("#input-card") == bool(study.items[4].input)

            page.screenshot(path=str(tmp_path / "human_page.png"), full_page=True)
            shutil.copy(tmp_path / "human_page.png", "/tmp/human_page.png")
            page.click("#btn-finish")
            page.wait_for_selector("body[data-finished='1']")
            browser.close()
        served.join(timeout=10)
        assert not served.is_alive() and server.finished.is_set()  # Finish stopped serving
    finally:
        if served.is_alive():
            server.stop()

    labels = store.labels(study.key, "ann")
    store.close()
    expected = {study.items[0].key: "left", study.items[1].key: "right",
                study.items[2].key: "right", study.items[3].key: "tie"}
    assert {k: v["choice"] for k, v in labels.items()} == expected
    for key, choice in expected.items():
        item = study.item(key)
        assert labels[key]["left_arm"] == item.left  # the side shown is recorded
        assert labels[key]["verdict"] == item.verdict(choice)
    s = summarize(study, labels)
    human = [item.verdict(expected[item.key]) for item in study.items[:4]]
    assert s["human"] == tally(human)
    pairs = [(h, it.llm_verdict) for h, it in zip(human, study.items[:4], strict=True)
             if it.llm_verdict != "unparsed"]
    assert s["agreement"]["n"] == len(pairs)
    assert s["agreement"]["agreement"] == round(sum(h == m for h, m in pairs) / len(pairs), 4)
    assert (tmp_path / "human_page.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_stage_human_on_the_tiny_pipeline(trained_root, compose_cfg):
    """`stage=human`: serve, label over HTTP, Finish; then the report artifact, and resume
    with `human.serve=false` from the stored labels."""
    from alpagasus.main import run
    from tests.servers import free_port

    port = free_port()
    overrides = [*TINY, f"paths.root={trained_root}", "stage=human", f"human.port={port}",
                 "human.annotator=tester", "logger.enabled=false"]
    cfg = compose_cfg(*overrides)
    job = threading.Thread(target=run, args=(cfg,))
    job.start()
    url = f"http://127.0.0.1:{port}/"
    items = _wait_items(url)
    for item, choice in zip(items, ["left", "right", "tie"], strict=False):
        assert _request(url + "api/label", {"key": item["key"], "label": choice})[0] == 200
    _request(url + "api/finish", {})
    job.join(timeout=120)
    assert not job.is_alive()

    human_dirs = [p for p in (Path(trained_root) / "artifacts" / "human").iterdir()
                  if (p / "human.json").is_file()]
    assert len(human_dirs) == 1
    report = json.loads((human_dirs[0] / "human.json").read_text())
    assert report["labelled"] == min(3, len(items)) and report["prompts"] == len(items)
    assert report["human"]["n"] == report["labelled"]
    assert report["title"].startswith("A = local≥1.5 (")
    assert "Cohen's kappa" in (human_dirs[0] / "human.md").read_text()
    judge_rows = [json.loads(x) for d in (Path(trained_root) / "artifacts" / "judge").iterdir()
                  if (d / "judgments.jsonl").is_file()
                  for x in (d / "judgments.jsonl").read_text().splitlines()]
    by_key = {f"{r['testset']}/{r['id']}": r["verdict"] for r in judge_rows}
    assert all(report["labels"][k]["verdict"] in ("win", "tie", "lose") for k in report["labels"])
    assert {k for k in report["labels"]} <= set(by_key)

    # No new labels: serve=false writes nothing new, the same report is reused.
    cfg = compose_cfg(*overrides, "human.serve=false")
    run(cfg)
    assert len([p for p in (Path(trained_root) / "artifacts" / "human").iterdir()
                if (p / "human.json").is_file()]) == 1
    # What the report stage reads: the same summary, from the stored labels.
    from alpagasus.artifacts import ArtifactStore
    from alpagasus.context import RunContext
    from alpagasus.stages import human
    from alpagasus.tracking import Tracker

    ctx = RunContext(cfg=cfg, store=ArtifactStore(cfg.paths.artifacts), tracker=Tracker.off())
    assert human.read_summary(human.stored(ctx)) == report
    other = compose_cfg(*overrides, "human.annotator=nobody")
    ctx = RunContext(cfg=other, store=ArtifactStore(cfg.paths.artifacts), tracker=Tracker.off())
    assert human.stored(ctx) is None


def _wait_items(url: str) -> list[dict]:
    import time

    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            return _request(url + "api/items")[1]["items"]
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.5)
    raise AssertionError(f"the study page at {url} did not come up")
