"""After a parser change, the `rate` and `judge` artifacts are rebuilt from the stored judge
replies, and nothing is sent.

The judge is a real HTTP server speaking the OpenAI chat protocol (in this process, on a
free port) that answers with fixed replies and counts the requests. The replies were stored
under parser v3 (reproduced below, as it was), which misreads them; the current parser
reads them right. The runs go through ``alpagasus.main.run`` with overrides only.
"""

from __future__ import annotations

import json
import re
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import alpagasus.judges.batch
import alpagasus.judges.engine
import alpagasus.stages.judge
import alpagasus.stages.rate  # noqa: F401  (imported so that use_parser patches them)
from alpagasus import parsing
from alpagasus.judges.cache import ReplyCache
from alpagasus.main import run
from alpagasus.parsing import ParsedPair, ParsedScore

# --- parser v3, as it was (5f2346e) ------------------------------------------------------

_V3_NUMBER = r"(-?\d+(?:\.\d+)?)"


def v3_parse_rating(reply: str, low: float = 0.0, high: float = 5.0, **_: object) -> ParsedScore:
    text = reply.strip()
    if not text:
        return ParsedScore(None, "unparsed")
    first = next((ln for ln in text.splitlines() if ln.strip()), "")
    candidates = [
        rf"score\s*(?:is|of|:|=)?\s*\**\s*{_V3_NUMBER}",
        rf"{_V3_NUMBER}\s*(?:/|out of)\s*5(?:\.0)?\b",
        rf"^\W*?{_V3_NUMBER}\W*$",
        rf"\*\*\s*{_V3_NUMBER}\s*\*\*",
        rf"(?<![\w.-]){_V3_NUMBER}\b",
    ]
    for pattern in candidates:
        m = re.search(pattern, first, flags=re.IGNORECASE)
        if m:
            return _v3_in_range(float(m.group(1)), low, high)
    m = re.search(rf"score\s*(?:is|of|:|=)\s*\**\s*{_V3_NUMBER}", text, flags=re.IGNORECASE)
    if m:
        return _v3_in_range(float(m.group(1)), low, high)
    return ParsedScore(None, "unparsed")


def _v3_in_range(value: float, low: float, high: float) -> ParsedScore:
    return ParsedScore(value, "ok") if low <= value <= high else ParsedScore(None, "out_of_range")


def v3_parse_pair(reply: str, low: float = 1.0, high: float = 10.0, **_: object) -> ParsedPair:
    first = next((ln for ln in reply.strip().splitlines() if ln.strip()), "")
    numbers = [float(n) for n in re.findall(r"\d+(?:\.\d+)?", re.sub(r"/\s*10", " ", first))]
    if len(numbers) != 2:
        return ParsedPair(None, "unparsed")
    if not all(low <= n <= high for n in numbers):
        return ParsedPair(None, "out_of_range")
    return ParsedPair((numbers[0], numbers[1]), "ok")


def use_parser(monkeypatch: pytest.MonkeyPatch, version: int, rating: Callable,
               pair: Callable) -> None:
    """Install a parser everywhere the current one was imported (parsing, engine, batch,
    rate, judge, and wherever a refactor moves them)."""
    current = {"PARSER_VERSION": parsing.PARSER_VERSION, "parse_rating": parsing.parse_rating,
               "parse_pair": parsing.parse_pair}
    new = {"PARSER_VERSION": version, "parse_rating": rating, "parse_pair": pair}
    patched = []
    for name, module in list(sys.modules.items()):
        if not name.startswith("alpagasus"):
            continue
        for attr, value in current.items():
            if attr in vars(module) and vars(module)[attr] is value:
                monkeypatch.setattr(module, attr, new[attr])
                patched.append(f"{name}.{attr}")
    assert "alpagasus.judges.engine.PARSER_VERSION" in patched


# --- a counting OpenAI-protocol judge ---------------------------------------------------


@dataclass
class FakeJudge:
    """Answers every chat completion with ``reply_for(user message)``; counts requests."""

    reply_for: Callable[[str], str]
    requests: list[str] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def fake_judge() -> Iterator[Callable[[Callable[[str], str]], FakeJudge]]:
    servers: list[ThreadingHTTPServer] = []

    def start(reply_for: Callable[[str], str]) -> FakeJudge:
        judge = FakeJudge(reply_for)
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                user = next(m["content"] for m in body["messages"] if m["role"] == "user")
                with lock:
                    judge.requests.append(user)
                text = judge.reply_for(user)
                payload = json.dumps({
                    "id": "chatcmpl-fake", "object": "chat.completion", "created": 0,
                    "model": body["model"],
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": text}}],
                    "usage": {"prompt_tokens": 50, "completion_tokens": 10,
                              "total_tokens": 60}}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        servers.append(server)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        judge.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        return judge

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _artifacts(root: Path, stage: str) -> dict[int, Path]:
    """parser_version -> artifact folder."""
    found = {}
    for path in (root / "artifacts" / stage).iterdir():
        if (path / "manifest.json").is_file():
            manifest = json.loads((path / "manifest.json").read_text())
            found[manifest["config"]["parser_version"]] = path
    return found


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# --- rate ----------------------------------------------------------------------------------

# Item output -> the judge's reply; what parser v3 read and what the current parser reads.
RATED = [
    ("Paris", "Score (out of 5): 4\nThe response is correct.", 5.0, 4.0),
    ("chat", "Rating (0-5): 4\nAccurate translation.", 0.0, 4.0),
    ("Blue", "On a scale of 0 to 5, I would rate this a 4.", 0.0, 4.0),
    ("apple, pear, plum", "The response lists 3 items correctly.\nScore: 4", 3.0, 4.0),
    ("42", "4 or 4.5: the answer is right but unexplained.", 4.0, None),
]


def _rating_reply(user: str) -> str:
    output = user.split("### Response:\n", 1)[1].split("\n\n", 1)[0]
    return next(reply for out, reply, _, _ in RATED if out == output)


def test_rate_reparse_rebuilds_from_stored_replies(tiny_cfg, tmp_path, fake_judge, monkeypatch):
    judge = fake_judge(_rating_reply)
    data = tmp_path / "items.json"
    data.write_text(json.dumps([{"instruction": f"Task {i}.", "input": "", "output": out}
                                for i, (out, *_) in enumerate(RATED)]))

    def cfg(*extra: str):
        return tiny_cfg("stage=rate", "filter=openai_compatible", f"judge.base_url={judge.url}",
                        "judge.model=fake-judge", "data=json", f"data.path={data}",
                        "data.limit=null", "logger.enabled=false", "rate.progress=false", *extra)

    with monkeypatch.context() as m:  # the replies are received and stored under parser v3
        use_parser(m, 3, v3_parse_rating, v3_parse_pair)
        run(cfg())
    assert len(judge.requests) == len(RATED)
    old = _artifacts(tmp_path, "rate")[3]
    assert [r["score"] for r in _jsonl(old / "ratings.jsonl")] == [v3 for *_, v3, _ in RATED]

    # The current parser: reparse builds a new artifact from the stored replies, sends nothing.
    run(cfg("rate.reparse=true"))
    assert len(judge.requests) == len(RATED)
    new = _artifacts(tmp_path, "rate")[parsing.PARSER_VERSION]
    rows = _jsonl(new / "ratings.jsonl")
    assert [r["score"] for r in rows] == [now for *_, now in RATED]
    assert [r["status"] for r in rows] == ["ok"] * 4 + ["unparsed"]
    assert all(r["cached"] for r in rows)
    unparsed = _jsonl(new / "unparsed.jsonl")
    assert [(u["index"], u["reply"], u["output"]) for u in unparsed] == [(4, RATED[4][1], "42")]
    counts = json.loads((new / "manifest.json").read_text())["counts"]
    assert counts["unparsed"] == 1 and counts["rated"] == 4 and counts["sent_this_run"] == 0
    versions = ReplyCache(tmp_path / "cache" / "judge.sqlite").db.execute(
        "SELECT DISTINCT parser_version FROM replies").fetchall()
    assert versions == [(parsing.PARSER_VERSION,)]

    # A plain rerun reuses the new artifact: still nothing sent, no third artifact.
    run(cfg())
    assert len(judge.requests) == len(RATED)
    assert sorted(_artifacts(tmp_path, "rate")) == [3, parsing.PARSER_VERSION]


# --- the revision policy -------------------------------------------------------------------

REVISED = [
    ("Paris", "Score: 4\n\nThe response is right. On reflection, 3.", None, 3.0),
    ("chat", "Score: 5\nThe translation is exact.", 5.0, 5.0),
]


def test_revision_policy_rereads_stored_replies(tiny_cfg, tmp_path, fake_judge):
    """A reply that revises its score is unparsed by default; `judge.revision_policy=final`
    builds a new rate artifact from the stored replies with the final score, sending nothing."""
    judge = fake_judge(lambda user: next(reply for out, reply, *_ in REVISED
                                         if f"### Response:\n{out}\n" in user))
    data = tmp_path / "items.json"
    data.write_text(json.dumps([{"instruction": f"Task {i}.", "input": "", "output": out}
                                for i, (out, *_) in enumerate(REVISED)]))

    def scores(*extra: str) -> list:
        run(tiny_cfg("stage=rate", "filter=openai_compatible", f"judge.base_url={judge.url}",
                     "judge.model=fake-judge", "data=json", f"data.path={data}",
                     "data.limit=null", "logger.enabled=false", "rate.progress=false", *extra))
        arts = _rate_artifacts(tmp_path)
        newest = max(arts, key=lambda p: (p / "manifest.json").stat().st_mtime_ns)
        return [r["score"] for r in _jsonl(newest / "ratings.jsonl")]

    assert scores() == [default for *_, default, _ in REVISED]
    assert scores("judge.revision_policy=final") == [final for *_, final in REVISED]
    assert len(judge.requests) == len(REVISED)  # the second run re-read the stored replies
    policies = [json.loads((p / "manifest.json").read_text())["config"]["revision_policy"]
                for p in _rate_artifacts(tmp_path)]
    assert sorted(policies) == ["final", "unparsed"]


def _rate_artifacts(root: Path) -> list[Path]:
    return [p for p in (root / "artifacts" / "rate").iterdir() if (p / "manifest.json").is_file()]


# --- judge ---------------------------------------------------------------------------------

PAIR_REPLY = "Assistant 1: 8\nAssistant 2: 7\n\nAssistant 1 covers 2 more cases."


@pytest.fixture
def answers_without_training(monkeypatch):
    """The two models' answers as small `generate` artifacts, made without training (smoke
    training two models costs minutes on a shared CPU): ``generate.run`` is the only seam."""
    from alpagasus.stages import generate

    def made(ctx, *which, **kw):
        label = "/".join(str(w) for w in (*which, *kw.values()))

        def build(workdir: Path) -> dict:
            with open(workdir / generate.ANSWERS, "w") as f:
                for p in ctx.testsets:
                    f.write(json.dumps({"testset": p.testset, "id": p.id, "prompt": p.prompt,
                                        "answer": f"The answer of model {label}."}) + "\n")
            return {"prompts": len(ctx.testsets)}

        return ctx.store.ensure("generate", {"made_by_test": label},
                                {"testsets": ctx.testsets_key}, build)

    monkeypatch.setattr(generate, "run", made)


def test_judge_artifact_rebuilds_from_stored_replies(tiny_cfg, tmp_path, fake_judge,
                                                     answers_without_training, monkeypatch):
    judge = fake_judge(lambda user: PAIR_REPLY)
    cfg = tiny_cfg("stage=judge", "eval_judge=gpt4", f"eval_judge.base_url={judge.url}",
                   "eval_judge.model=fake-judge", "logger.enabled=false", "rate.progress=false")

    with monkeypatch.context() as m:  # the replies are received and stored under parser v3
        use_parser(m, 3, v3_parse_rating, v3_parse_pair)
        run(cfg)
    n_prompts = 3  # testsets.limit=3 (tests/conftest.py TINY), judged in both orders
    assert len(judge.requests) == 2 * n_prompts
    old = _artifacts(tmp_path, "judge")[3]
    rows = _jsonl(old / "judgments.jsonl")
    assert len(rows) == n_prompts
    assert all(r["scores_a_first"] == [1.0, 8.0] for r in rows)  # v3 read the label "1"
    answers = sorted((tmp_path / "artifacts" / "generate").glob("*/manifest.json"))

    # The current parser: a new judge artifact from the stored replies, nothing sent.
    run(cfg)
    assert len(judge.requests) == 2 * n_prompts
    new = _artifacts(tmp_path, "judge")[parsing.PARSER_VERSION]
    assert sorted((tmp_path / "artifacts" / "generate").glob("*/manifest.json")) == answers
    rows = _jsonl(new / "judgments.jsonl")
    assert len(rows) == n_prompts
    for r in rows:
        assert r["reply_a_first"] == r["reply_b_first"] == PAIR_REPLY
        assert r["scores_a_first"] == r["scores_b_first"] == [8.0, 7.0]
        # A first: A wins 8-7; B first: A is Assistant 2 and loses; both orders: a tie.
        assert (r["verdict_a_first"], r["verdict_b_first"], r["verdict"]) == \
            ("win", "lose", "tie")
    counts = json.loads((new / "manifest.json").read_text())["counts"]
    assert counts["tie"] == n_prompts

    # A plain rerun reuses it: still nothing sent, no third artifact.
    run(cfg)
    assert len(judge.requests) == 2 * n_prompts
    assert sorted(_artifacts(tmp_path, "judge")) == [3, parsing.PARSER_VERSION]
