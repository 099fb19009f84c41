"""The blind human study: sides, assignment, labels, agreement statistics, secret links, the
Host check and the API; the stage on the tiny pipeline (slow). The page in a real browser
with two annotators: tests/test_human_browser.py."""

from __future__ import annotations

import csv
import http.client
import json
import logging
import os
import stat
import threading
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest

from alpagasus.config import ConfigError, HumanConfig
from alpagasus.human.access import allowed_hosts, load_links, redact
from alpagasus.human.agreement import (
    cohen,
    fleiss_kappa,
    krippendorff_alpha,
    majority,
    tally,
    value_counts,
)
from alpagasus.human.server import StudyServer
from alpagasus.human.study import LabelStore, Study, left_arm
from alpagasus.human.summary import format_summary, plot, summarize, write_csv
from tests.conftest import TINY

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


def rows(n: int = 6) -> list[dict]:
    """Judge rows: prompts 0-2 in test set vicuna, 3-5 in koala."""
    return [{"testset": "vicuna" if i < 3 else "koala", "id": i, "category": "generic",
             "prompt": prompt, "input": inp, "answer_a": a, "answer_b": b, "verdict": LLM[i]}
            for i, (prompt, inp, a, b) in enumerate(PROMPTS[:n])]


@pytest.fixture
def study() -> Study:
    return Study.from_judgments(rows(), key="judge-key", seed=3, title="A = chatgpt≥4.5 vs B = all")


def test_sides_are_a_seeded_coin_per_prompt():
    sides = [left_arm(0, "study", f"t/{i}") for i in range(400)]
    assert sides == [left_arm(0, "study", f"t/{i}") for i in range(400)]  # stable on reload
    assert 160 < sides.count("a") < 240  # about half each
    assert sides != [left_arm(1, "study", f"t/{i}") for i in range(400)]  # the seed matters


def test_items_show_sides_only_and_map_choices_to_arm_a(study):
    assert sorted(it.key for it in study.items) == sorted(
        f"{'vicuna' if i < 3 else 'koala'}/{i}" for i in range(6))
    for it in study.items:
        shown = it.shown()
        assert set(shown) == {"key", "testset", "category", "prompt", "input", "left", "right"}
        a_left = it.left == "a"
        assert shown["left"] == (it.answer_a if a_left else it.answer_b)
        assert it.verdict("left") == ("win" if a_left else "lose")
        assert it.verdict("right") == ("lose" if a_left else "win")
        assert it.verdict("tie") == "tie"
    with pytest.raises(ValueError, match="share the key vicuna/0"):
        Study.from_judgments(rows() + rows(1), key="k", seed=0)


def test_assignment_everyone_or_overlap_then_dealt(study):
    everyone = study.assign(["alice", "bob"])
    assert all(sorted(it.key for it in v) == sorted(it.key for it in study.items)
               for v in everyone.values())
    assert [it.key for it in everyone["alice"]] != [it.key for it in everyone["bob"]]
    assert everyone == study.assign(["alice", "bob"])  # seeded: a restart shows the same
    dealt = study.assign(["alice", "bob", "carol"], overlap=2)
    shared = {it.key for it in study.items[:2]}
    keys = {name: {it.key for it in items} for name, items in dealt.items()}
    assert all(shared <= k for k in keys.values())
    rest = [k - shared for k in keys.values()]
    assert sorted(len(r) for r in rest) == [1, 1, 2]  # 4 left, dealt one annotator each
    assert set().union(*rest) == {it.key for it in study.items[2:]}
    assert sum(len(r) for r in rest) == 4


def test_label_store_keeps_labels_across_reopen_relabel_and_finish(tmp_path, study):
    item = study.items[0]
    store = LabelStore(tmp_path / "labels.sqlite")
    store.put(study, item, "ann", "left")
    store.put(study, item, "ann", "tie")  # relabel: one row, the last choice
    store.put(study, item, "other", "right")
    store.finish(study.key, "other")
    with pytest.raises(ValueError, match="label must be one of left, right, tie"):
        store.put(study, item, "ann", "both")
    store.close()
    store = LabelStore(tmp_path / "labels.sqlite")
    labels = store.labels(study.key, "ann")
    assert list(labels) == [item.key]
    assert labels[item.key]["choice"] == "tie" and labels[item.key]["left_arm"] == item.left
    assert store.all_labels(study.key)["other"][item.key]["verdict"] == item.verdict("right")
    assert store.finished(study.key) == {"other"} and store.finished("another") == set()
    assert store.labels("another-study", "ann") == {}
    store.close()


def test_fleiss_kappa_on_fleiss_worked_example():
    # Fleiss (1971) as in most textbooks: 10 subjects, 14 raters, 5 categories: 0.210.
    table = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0],
             [2, 2, 8, 1, 1], [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2],
             [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]
    assert fleiss_kappa(table) == pytest.approx(0.2099, abs=1e-4)
    assert fleiss_kappa([[2, 0, 0], [0, 0, 2]]) == 1.0
    assert fleiss_kappa([[1, 1, 0], [0, 1, 1]]) < 0  # worse than chance
    assert fleiss_kappa([[2, 0, 0], [2, 0, 0]]) is None  # one label throughout: undefined
    assert fleiss_kappa([]) is None
    with pytest.raises(ValueError, match="same number"):
        fleiss_kappa([[2, 0, 0], [1, 0, 0]])


def test_krippendorff_alpha_by_hand_and_with_missing_labels():
    # Two annotators, four prompts: (win, win), (win, lose), (tie, tie), (lose, lose).
    # n = 8 pairable values, n_win = 3, n_tie = 2, n_lose = 3; the off-diagonal coincidences
    # are o(win, lose) = o(lose, win) = 1: alpha = 1 - (n - 1) * 2 / (2 * (3*2 + 3*3 + 2*3))
    units = [["win", "win"], ["win", "lose"], ["tie", "tie"], ["lose", "lose"]]
    assert krippendorff_alpha(units) == round(1 - 7 * 2 / 42, 4)
    # A prompt only one annotator labelled carries no pair: alpha is the same without it.
    assert krippendorff_alpha([*units, ["tie"]]) == krippendorff_alpha(units)
    assert krippendorff_alpha([["win", "win"], ["win", "win"]]) is None  # no variation
    assert krippendorff_alpha([["win"], ["lose"]]) is None  # nobody labelled twice
    with pytest.raises(ValueError, match="'better' is not one of"):
        value_counts([["better"]])


def test_majority_tally_and_cohen_by_hand():
    assert majority(["win", "win", "lose"]) == "win"
    assert majority(["win", "lose"]) is None and majority([]) is None
    assert majority(["tie"]) == "tie"
    assert tally(["win", "win", "tie", "lose"]) == {"win": 2, "tie": 1, "lose": 1, "n": 4,
                                                    "winning_score": 1.25}
    human = ["win", "win", "tie", "lose", "lose", "win"]
    llm = ["win", "tie", "tie", "lose", "win", "win"]
    out = cohen(human, llm)
    # p_o = 4/6; marginals human (3, 1, 2), llm (3, 2, 1): p_e = (9 + 2 + 2) / 36
    p_o, p_e = 4 / 6, 13 / 36
    assert out["kappa"] == round((p_o - p_e) / (1 - p_e), 4)
    assert out["agreement"] == round(p_o, 4)
    assert out["confusion"] == [[2, 1, 0], [0, 1, 0], [1, 0, 1]]  # rows human, columns LLM
    assert cohen(["tie", "tie"], ["tie", "tie"])["kappa"] is None  # undefined, not 0 or 1
    assert cohen([], [])["n"] == 0


def _label(key: str, verdict: str) -> dict:
    return {"verdict": verdict, "left_arm": "a", "choice": {"win": "left", "lose": "right",
            "tie": "tie"}[verdict], "created": 1.7e9, "updated": 1.7e9}


def test_summary_per_test_set_majority_and_exports(tmp_path, study):
    alice = dict(zip([f"vicuna/{i}" for i in range(3)] + [f"koala/{i}" for i in range(3, 6)],
                     ["win", "lose", "win", "tie", "lose", "win"], strict=True))
    bob = {"vicuna/0": "win", "vicuna/1": "win", "vicuna/2": "win", "koala/3": "tie",
           "koala/4": "win"}  # koala/5 not labelled by bob
    labels = {"alice": {k: _label(k, v) for k, v in alice.items()},
              "bob": {k: _label(k, v) for k, v in bob.items()},
              "mallory": {"vicuna/0": _label("vicuna/0", "lose")}}  # not an annotator now
    assigned = study.assign(["alice", "bob"])
    s = summarize(study, assigned, labels, {"alice"})
    assert s["progress"]["alice"] == {"assigned": 6, "labelled": 6, "finished": True,
                                      "last_label": "2023-11-14T22:13:20+00:00"}
    assert s["progress"]["bob"]["labelled"] == 5 and not s["progress"]["bob"]["finished"]
    assert set(s["groups"]) == {"all", "koala", "vicuna"}
    g = s["groups"]["all"]
    assert (g["labelled"], g["labelled_by_all"], g["multiply_labelled"]) == (6, 5, 5)
    # The five prompts both labelled: they agree on vicuna/0, vicuna/2, koala/3.
    assert g["krippendorff_alpha"] == krippendorff_alpha(
        [[alice[k], bob[k]] for k in bob])
    assert g["fleiss_kappa"] == fleiss_kappa(value_counts([[alice[k], bob[k]] for k in bob]))
    # Majority: vicuna/0 win, vicuna/2 win, koala/3 tie, koala/5 win (alice alone);
    # vicuna/1 and koala/4 split: no majority. LLM on those: win, win, tie, unparsed.
    assert g["no_majority"] == 2 and g["majority"] == tally(["win", "win", "tie", "win"])
    assert g["llm_unparsed"] == 1
    assert g["vs_llm"]["n"] == 3 and g["vs_llm"]["agreement"] == 1.0
    assert s["groups"]["vicuna"]["vs_llm"]["n"] == 2
    assert s["groups"]["koala"]["labelled_by_all"] == 2
    assert s["per_annotator"]["bob"] == tally(list(bob.values()))
    assert "mallory" not in s["per_annotator"] and "mallory" not in json.dumps(s)
    text = format_summary(s)
    assert "| alice | 6 | 6 | yes |" in text and "| bob | 5 | 6 | no |" in text
    assert "| koala | 3 | 3 |" in text and "Krippendorff" in text and "Fleiss" in text

    n = write_csv(tmp_path / "labels.csv", study, {a: labels[a] for a in assigned})
    with (tmp_path / "labels.csv").open() as f:
        written = list(csv.DictReader(f))
    assert n == len(written) == 11
    row = next(r for r in written if r["annotator"] == "bob" and r["item"] == "koala/4")
    assert (row["testset"], row["verdict"], row["llm_verdict"]) == ("koala", "win", "lose")
    plot(tmp_path / "agreement.png", s)
    assert (tmp_path / "agreement.png").read_bytes()[:4] == b"\x89PNG"


def test_annotators_config_names_or_count():
    assert HumanConfig(annotators=["alice", "bob"]).annotator_names(["alice", "bob"]) == [
        "alice", "bob"]
    assert HumanConfig.annotator_names(3) == ["annotator1", "annotator2", "annotator3"]
    for bad, match in [([], "name at least one"), (0, "must be >= 1"), (True, "list of names"),
                       ("alice", "list of names"), (["a", "a"], "'a' is named twice"),
                       ([" "], "not a usable name")]:
        with pytest.raises(ConfigError, match=match):
            HumanConfig(annotators=bad)
    with pytest.raises(ConfigError, match="human.hosts"):
        HumanConfig(hosts=["http://evil"])


def test_annotators_from_the_command_line(compose_cfg):
    from alpagasus.validation import validate

    for override, names in (("human.annotators=2", ["annotator1", "annotator2"]),
                            ("human.annotators=[alice,bob]", ["alice", "bob"])):
        cfg = compose_cfg(override)
        assert validate(cfg).human.annotators in (2, ["alice", "bob"])
        assert HumanConfig.annotator_names(cfg.human.annotators) == names
    with pytest.raises(ConfigError, match="'alice' is named twice"):
        validate(compose_cfg("human.annotators=[alice,alice]"))


def test_links_are_private_kept_on_restart_and_never_in_a_log(tmp_path, caplog):
    path = tmp_path / "human" / "links.json"
    old_umask = os.umask(0o022)  # a usual umask would leave a new file world-readable
    try:
        links = load_links(path, ["alice", "bob"])
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len({links.organiser, *links.annotators.values()}) == 3
    assert all(len(t) >= 32 for t in links.annotators.values())
    again = load_links(path, ["alice", "bob", "carol"])  # restart: same links, one new
    assert again.annotators["alice"] == links.annotators["alice"]
    assert again.organiser == links.organiser and "carol" in again.annotators
    assert "bob" not in load_links(path, ["alice"]).annotators  # dropped: link revoked
    assert load_links(path, ["bob"]).annotators["bob"] != links.annotators["bob"]
    assert again.who("a", again.annotators["carol"]) == "carol"
    assert again.who("a", again.organiser) is None and again.who("o", "x") is None
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING):
        load_links(path, ["bob"])
    assert "readable by others" in caplog.text and stat.S_IMODE(path.stat().st_mode) == 0o600
    path.write_text('{"annotators": {\n  "bob": ')
    with pytest.raises(ValueError, match=r"links.json: line 2: not JSON"):
        load_links(path, ["bob"])
    assert redact('"GET /a/SeCrEt_-x/api/items HTTP/1.1" 200') == '"GET /a/***/api/items HTTP/1.1" 200'
    assert redact("/o/tok/") == "/o/***/"


def test_allowed_hosts_are_the_servers_own_names():
    names = allowed_hosts("127.0.0.1", 8765, [])
    assert {"127.0.0.1:8765", "localhost:8765", "[::1]:8765"} == names
    lab = allowed_hosts("0.0.0.0", 80, ["LabBox.local"])
    assert {"labbox.local", "labbox.local:80", "localhost"} <= lab and "0.0.0.0:80" not in lab


def _request(url: str, body: dict | None = None, content_type: str = "application/json",
             host: str | None = None) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": content_type, **({"Host": host} if host else {})}
    req = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.fixture
def served(tmp_path, study):
    store = LabelStore(tmp_path / "labels.sqlite")
    assigned = study.assign(["alice", "bob"], overlap=4)
    links = load_links(tmp_path / "links.json", list(assigned))
    server = StudyServer(study, store, assigned, links).start()
    yield server
    server.stop()
    store.close()


def test_api_links_hosts_blindness_and_progress(served, study, caplog):
    server, base = served, served.base_url
    alice, bob = server.annotator_url("alice"), server.annotator_url("bob")
    assert alice.startswith(f"http://127.0.0.1:{server.port}/a/")
    # Unknown links and the bare root: 403; a link's page without its slash: redirected.
    assert _request(base + "a/not-a-token/api/items")[0] == 403
    assert _request(base + "api/items")[0] == 403
    assert _request(base + "o/" + server.links.annotators["alice"] + "/api/status")[0] == 403
    with urllib.request.urlopen(alice.rstrip("/"), timeout=10) as r:
        assert r.url == alice and b"Which answer is better?" in r.read()
        assert r.headers["Referrer-Policy"] == "no-referrer"
    # DNS rebinding: another name pointed at this address is refused, as is a wrong port.
    assert _request(alice + "api/items", host=f"evil.example:{server.port}")[0] == 421
    assert _request(alice + "api/items", host="127.0.0.1:1")[0] == 421
    assert _request(alice + "api/items", host=f"localhost:{server.port}")[0] == 200
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.putrequest("GET", "/a/" + server.links.annotators["alice"] + "/api/items",
                    skip_host=True)
    conn.endheaders()
    assert conn.getresponse().status == 400
    conn.close()

    status, data = _request(alice + "api/items")
    assert status == 200 and data["annotator"] == "alice" and len(data["items"]) == 5
    text = json.dumps(data)
    assert "chatgpt" not in text and not any(w in text for w in ARM_WORDS)
    mine = {it["key"] for it in data["items"]}
    not_mine = next(it.key for it in study.items if it.key not in mine)
    key = data["items"][0]["key"]
    with caplog.at_level(logging.DEBUG, logger="alpagasus.human.server"):
        assert _request(alice + "api/label", {"key": key, "label": "left"})[1] == {
            "ok": True, "labelled": 1, "total": 5}
    assert "/a/***/api/label" in caplog.text
    assert not any(t in caplog.text for t in server.links.annotators.values())
    # A form post (what another site could send without a preflight) is refused.
    assert _request(alice + "api/label", {"key": key, "label": "right"}, "text/plain")[0] == 415
    assert _request(alice + "api/label", {"key": key, "label": "better"})[0] == 400
    assert _request(alice + "api/label", {"key": not_mine, "label": "tie"})[0] == 400
    assert _request(bob + "api/label", {"key": not_mine, "label": "tie"})[0] == 200  # dealt to bob
    assert _request(alice + "api/items")[1]["items"][0]["label"] == "left"

    status, progress = _request(server.organiser_url + "api/status")
    assert status == 200 and progress["prompts"] == 6
    assert progress["annotators"]["alice"]["labelled"] == 1
    assert progress["annotators"]["alice"]["assigned"] == 5
    assert _request(alice + "api/status")[0] == 404  # an annotator's link sees no one else
    assert _request(server.organiser_url + "api/label", {"key": key, "label": "tie"})[0] == 404

    # Finish: the server goes on until every annotator has pressed it.
    assert _request(alice + "api/finish", {})[1] == {"ok": True, "waiting_for": ["bob"]}
    assert not server.finished.is_set()
    assert _request(bob + "api/finish", {})[1] == {"ok": True, "waiting_for": []}
    assert server.finished.wait(10)


def test_a_port_in_use_is_one_clear_error(tmp_path, study):
    """Two study pages on one port (two jobs, two annotators): the second says so."""
    import socket

    from alpagasus.errors import AlpagasusError
    from alpagasus.stages.human import serve

    store = LabelStore(tmp_path / "labels.sqlite")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(AlpagasusError, match=f"127.0.0.1:{port} is already in use") as e:
            serve(study, store, {"ann": list(study.items)},
                  SimpleNamespace(links=str(tmp_path / "links.json"), host="127.0.0.1",
                                  port=port, hosts=[]))
    store.close()
    assert "human.port=0" in e.value.hint


@pytest.mark.slow
def test_stage_human_on_the_tiny_pipeline(trained_root, app_cfg, monkeypatch, capsys):
    """`stage=human` with two annotators: serve, label over HTTP, both Finish; the report in
    the artifact and the run folder; then `human.serve=false` from the stored labels."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import read_write

    from alpagasus.main import run
    from alpagasus.stages import human

    ready: list[StudyServer] = []
    up = threading.Event()

    class Hooked(StudyServer):  # tells the test when the stage's server is listening
        def serve_until_finished(self) -> None:
            ready.append(self)
            up.set()
            super().serve_until_finished()

    monkeypatch.setattr(human, "StudyServer", Hooked)
    overrides = [*TINY, f"paths.root={trained_root}", "stage=human", "human.port=0",
                 "human.annotators=[alice,bob]", "logger.enabled=false"]
    cfg = app_cfg(*overrides)
    run_dir = Path(trained_root) / "runs" / "human-test"
    # What the app sets for a real run (compose() leaves it unset): the report is copied there.
    with read_write(HydraConfig.get().runtime):
        HydraConfig.get().runtime.output_dir = str(run_dir)
    errors: list[BaseException] = []
    job = threading.Thread(target=lambda: _capture(errors, run, cfg))
    job.start()
    assert up.wait(600), "the stage never started its server"
    server = ready[0]
    urls = {name: server.annotator_url(name) for name in ("alice", "bob")}
    items = _request(urls["alice"] + "api/items")[1]["items"]
    for name, choices in (("alice", ["left", "right", "tie"]), ("bob", ["left", "left"])):
        for item, choice in zip(items, choices, strict=False):
            assert _request(urls[name] + "api/label", {"key": item["key"], "label": choice})[0] \
                == 200
        _request(urls[name] + "api/finish", {})
    job.join(timeout=120)
    assert not job.is_alive() and not errors

    root = Path(trained_root)
    human_dirs = [p for p in (root / "artifacts" / "human").iterdir()
                  if (p / "human.json").is_file()]
    assert len(human_dirs) == 1
    report = json.loads((human_dirs[0] / "human.json").read_text())
    assert report["annotators"] == ["alice", "bob"] and report["prompts"] == len(items)
    assert report["progress"]["alice"]["labelled"] == min(3, len(items))
    assert all(p["finished"] for p in report["progress"].values())
    assert report["title"].startswith("A = local≥1.5 (")
    out = capsys.readouterr().out
    assert server.links.annotators["alice"] in out  # the links printed once, to the terminal
    copied = sorted(run_dir.glob("human*"))
    assert [p.name for p in copied] == sorted(human.OUTPUTS)
    # No token in the artifacts, the copies or the log.
    tokens = [server.links.organiser, *server.links.annotators.values()]
    for path in [*human_dirs[0].iterdir(), *copied, *root.rglob("*.log")]:
        if path.is_file() and path.suffix != ".png":
            assert not any(t in path.read_text() for t in tokens), path
    links = root / "human" / "links.json"
    assert stat.S_IMODE(links.stat().st_mode) == 0o600

    # No new labels: serve=false writes nothing new, prints the progress, reuses the report.
    run(app_cfg(*overrides, "human.serve=false"))
    assert "| alice |" in capsys.readouterr().out
    assert len([p for p in (root / "artifacts" / "human").iterdir()
                if (p / "human.json").is_file()]) == 1


def _capture(errors: list[BaseException], fn, *args) -> None:
    try:
        fn(*args)
    except BaseException as e:  # noqa: BLE001 (re-raised by the test as a failure)
        errors.append(e)
