"""The human study in a real browser: the system Chromium, driven by Playwright (no browser
download), two annotators labelling through their own links at once, one closing the tab
half-way and coming back, the organiser's progress page, both pressing Finish. Every wait is
on a page event or attribute the page sets, never a sleep."""

from __future__ import annotations

import shutil

import pytest

from alpagasus.human.access import load_links
from alpagasus.human.server import StudyServer
from alpagasus.human.study import LabelStore, Study
from alpagasus.human.summary import summarize
from tests.test_human import ARM_WORDS, rows

CHROMIUM = next((p for p in (shutil.which("chromium"), shutil.which("chromium-browser"),
                             shutil.which("google-chrome")) if p), None)
BROWSER_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium on PATH: apt-get install -y chromium (Debian)")

# What each annotator clicks, per prompt (by key), whatever order their page shows.
PLAN = {
    "alice": {"vicuna/0": "left", "vicuna/1": "right", "vicuna/2": "tie", "koala/3": "left",
              "koala/4": "right", "koala/5": "tie"},
    "bob": {"vicuna/0": "left", "vicuna/1": "left", "vicuna/2": "tie", "koala/3": "left",
            "koala/4": "tie", "koala/5": "right"},
}
KEYS = {"left": "1", "right": "2", "tie": "t"}


def _open(browser, url: str):
    page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
    page.goto(url)
    page.wait_for_selector("body[data-ready='1']")
    return page


def _label_next(page, plan: dict[str, str], study: Study, use_button: bool = False) -> str:
    """Label the prompt on screen by the plan; wait until the server has stored it."""
    key = page.get_attribute("body", "data-current")
    item = study.item(key)
    assert page.text_content("#prompt") == item.prompt
    assert page.text_content("#left") == item.shown()["left"]
    done = int(page.get_attribute("body", "data-labelled"))
    choice = plan[key]
    if use_button:
        page.click(f"#btn-{choice}")
    else:
        page.keyboard.press(KEYS[choice])
    page.wait_for_selector(f"body[data-labelled='{done + 1}']")
    return key


def test_two_annotators_label_resume_and_finish_in_chromium(tmp_path):
    playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    plan = {name: dict(choices) for name, choices in PLAN.items()}
    study = Study.from_judgments(rows(), key="judge-key", seed=3, title="A = chatgpt≥4.5 vs B = all")
    store = LabelStore(tmp_path / "labels.sqlite")
    assigned = study.assign(["alice", "bob"])
    links = load_links(tmp_path / "links.json", list(assigned))
    server = StudyServer(study, store, assigned, links).start()
    served = server._thread
    try:
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_FLAGS)
            alice = _open(browser, server.annotator_url("alice"))
            bob = _open(browser, server.annotator_url("bob"))
            assert "Labelling as alice" in alice.text_content("h1")
            assert not any(w in alice.content() for w in ARM_WORDS)
            # Each page starts at the first prompt of its annotator's own order.
            assert alice.get_attribute("body", "data-current") == assigned["alice"][0].key
            assert bob.get_attribute("body", "data-current") == assigned["bob"][0].key

            # Interleaved: alice 3, bob 2, alice 1 more.
            for _ in range(3):
                _label_next(alice, plan["alice"], study)
            bob_done = [_label_next(bob, plan["bob"], study), _label_next(bob, plan["bob"], study,
                                                                    use_button=True)]
            _label_next(alice, plan["alice"], study)
            assert "4 labelled" in alice.text_content("#progress-text")

            # Bob closes the tab; his labels are stored. Reopening resumes at his next prompt.
            bob.context.close()
            bob = _open(browser, server.annotator_url("bob"))
            assert bob.get_attribute("body", "data-labelled") == "2"
            assert bob.get_attribute("body", "data-current") == assigned["bob"][2].key
            assert {k for k in store.labels(study.key, "bob")} == set(bob_done)

            # The organiser's page: per-annotator progress.
            organiser = _open(browser, server.organiser_url)
            assert organiser.text_content("tr[data-annotator='alice'] td.labelled") == "4"
            assert organiser.text_content("tr[data-annotator='bob'] td.labelled") == "2"
            assert organiser.text_content("tr[data-annotator='bob'] td.finished") == "no"

            # Going back to change a label: the last one given counts.
            alice.keyboard.press("p")
            changed = alice.get_attribute("body", "data-current")
            assert changed == assigned["alice"][3].key
            plan["alice"][changed] = {"left": "right", "right": "left", "tie": "left"}[
                plan["alice"][changed]]
            saves = int(alice.get_attribute("body", "data-saves"))
            alice.keyboard.press(KEYS[plan["alice"][changed]])
            alice.wait_for_selector(f"body[data-saves='{saves + 1}']")
            alice.keyboard.press("u")  # to the next unlabelled
            while alice.get_attribute("body", "data-labelled") != "6":
                _label_next(alice, plan["alice"], study)
            while bob.get_attribute("body", "data-labelled") != "6":
                _label_next(bob, plan["bob"], study)
            assert alice.is_visible("#done") and bob.is_visible("#done")

            organiser.reload()
            organiser.wait_for_selector("body[data-ready='1']")
            assert organiser.get_attribute("body", "data-labelled") == "12"

            alice.click("#btn-finish")
            alice.wait_for_selector("body[data-finished='waiting']")
            assert "1 more annotator" in alice.text_content("#status")
            assert served.is_alive() and not server.finished.is_set()
            bob.click("#btn-finish")
            bob.wait_for_selector("body[data-finished='all']")
            assert "report is being written" in bob.text_content("#status")
            browser.close()
        served.join(timeout=10)
        assert not served.is_alive() and server.finished.is_set()  # both finished: stopped
    finally:
        if served.is_alive():
            server.stop()

    labels = store.all_labels(study.key)
    finished = store.finished(study.key)
    store.close()
    assert finished == {"alice", "bob"}
    for name in ("alice", "bob"):
        assert {k: v["choice"] for k, v in labels[name].items()} == plan[name]
        for key, row in labels[name].items():
            assert row["left_arm"] == study.item(key).left  # the side shown is recorded
            assert row["verdict"] == study.item(key).verdict(plan[name][key])
    s = summarize(study, assigned, labels, finished)
    g = s["groups"]["all"]
    assert g["labelled_by_all"] == 6
    assert g["krippendorff_alpha"] is not None and g["fleiss_kappa"] is not None
    agree = sum(plan["alice"][k] == plan["bob"][k] for k in plan["bob"])
    assert g["no_majority"] == 6 - agree
