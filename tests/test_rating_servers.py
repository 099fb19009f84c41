"""The rating engine against real servers on 127.0.0.1: llm-katan (OpenAI and Anthropic
protocols, echo backend with injected errors and latency), `transformers serve` on the
embedded model, and the counting server of tests/servers.py (replies with scores: the
`rate` stage end to end, kill -9 at random points then resume, API keys)."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from alpagasus.config import JudgeConfig
from alpagasus.judges.cache import ReplyCache
from alpagasus.judges.engine import ApiJudge, EngineOptions
from tests.servers import alpaca_subset, counting_server, katan, transformers_serve

REPO = Path(__file__).resolve().parents[1]


def requests(n: int) -> list[list[dict[str, str]]]:
    return [[{"role": "system", "content": "You rate answers."},
             {"role": "user", "content": f"question {i}: is 2+{i} = {2 + i}?"}] for i in range(n)]


def katan_judge(backend: str, url: str, tmp_path: Path, **kw) -> ApiJudge:
    cfg = JudgeConfig(name="katan", backend=backend, model="katan-echo",
                      base_url=url + "/v1" if backend == "openai" else url,
                      api_key_env="KATAN_TEST_KEY", concurrency=16, max_tokens=32,
                      backoff_base_s=0.05, backoff_max_s=1.0, **kw)
    return ApiJudge(cfg, tmp_path / "cache.sqlite", EngineOptions(progress=False))


@pytest.mark.parametrize("backend", ["openai", "anthropic"])
def test_injected_5xx_are_retried_until_every_item_has_a_reply(tmp_path, monkeypatch, backend):
    monkeypatch.setenv("KATAN_TEST_KEY", "sk-katan")
    reqs = requests(200)
    with katan(tmp_path, "--error-rate", "0.2", "--latency-ms", "20") as server:
        judge = katan_judge(backend, server.url, tmp_path)  # default max_retries
        replies = judge.complete(reqs, "rating")
        assert len(replies) == 200
        assert all(r.status == "ok" and r.source == "online" for r in replies)
        for r, req in zip(replies, reqs, strict=True):  # each reply is the echo of its request
            assert r.text.startswith("[echo]") and req[-1]["content"] in r.text
        assert judge.usage.requests == 200 and judge.usage.retries > 0
        assert set(judge.usage.errors) == {"http 500"}
        assert server.completed() == 200
        assert ReplyCache(tmp_path / "cache.sqlite").count() == 200
        # The echo is no score: every reply is stored, and stored as not parsed.
        statuses = ReplyCache(tmp_path / "cache.sqlite").db.execute(
            "SELECT DISTINCT status FROM replies").fetchall()
        assert {s for (s,) in statuses} <= {"unparsed", "out_of_range"}
        again = katan_judge(backend, server.url, tmp_path)
        assert [r.text for r in again.complete(reqs, "rating")] == [r.text for r in replies]
        assert again.usage.requests == 0 and server.completed() == 200


def _rate_cmd(root: Path, data: Path, url: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "alpagasus", "stage=rate", "judge=openai_compatible",
            f"judge.base_url={url}/v1", "judge.model=katan-echo", "data=json",
            f"data.path={data}", f"paths.root={root}", "logger.enabled=false",
            "rate.progress=false", *extra]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "WANDB_MODE": "disabled"}


def _ratings(root: Path) -> list[dict]:
    files = list((root / "artifacts" / "rate").glob("*/ratings.jsonl"))
    assert len(files) == 1
    return [json.loads(line) for line in files[0].read_text().splitlines()]


def test_rate_stage_rates_every_item_and_a_rerun_sends_nothing(tmp_path):
    data = alpaca_subset(tmp_path / "items.json", 300)
    root = tmp_path / "out"
    with counting_server(tmp_path, "--latency-ms", "20") as server:
        cmd = _rate_cmd(root, data, server.url, "judge.concurrency=64")
        out = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True,
                             timeout=300)
        assert out.returncode == 0, out.stderr[-3000:]
        rows = _ratings(root)
        unique = len({json.dumps(x, sort_keys=True) for x in json.loads(data.read_text())})
        assert [r["index"] for r in rows] == list(range(300))
        assert all(r["status"] == "ok" and r["score"] is not None for r in rows)
        assert server.stats()["requests"] == unique
        log = out.stdout + out.stderr
        assert "estimate: 300 requests" in log and "tiktoken" in log
        manifest = json.loads(next((root / "artifacts" / "rate").glob("*/manifest.json")).read_text())
        assert manifest["counts"]["items"] == 300 and manifest["counts"]["sent_this_run"] == unique
        assert (next((root / "artifacts" / "rate").glob("*/histogram.png")).read_bytes()[:4]
                == b"\x89PNG")
        # Without the artifact, a rerun rebuilds it from the cache and sends nothing.
        for p in (root / "artifacts" / "rate").glob("*/manifest.json"):
            os.remove(p)
        out = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True,
                             timeout=300)
        assert out.returncode == 0, out.stderr[-3000:]
        assert server.stats()["requests"] == unique
        assert [r["reply"] for r in _ratings(root)] == [r["reply"] for r in rows]
        assert all(r["cached"] for r in _ratings(root))


def _stored(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return con.execute("SELECT COUNT(*) FROM replies").fetchone()[0]
        finally:
            con.close()
    except sqlite3.OperationalError:  # the schema is not created yet
        return 0


def _orphaned_claims(db: Path) -> int:
    """Claims of killed jobs on requests that have no reply: the resumed run takes them."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return con.execute("SELECT COUNT(*) FROM pending WHERE key NOT IN "
                           "(SELECT key FROM replies)").fetchone()[0]
    finally:
        con.close()


def test_kill_9_at_random_points_then_resume(tmp_path):
    n, concurrency = 400, 8
    data = alpaca_subset(tmp_path / "items.json", n)
    unique = len({json.dumps(x, sort_keys=True) for x in json.loads(data.read_text())})
    root = tmp_path / "out"
    db = root / "cache" / "judge.sqlite"
    rng = random.Random(int(os.environ.get("KILL_SEED", "3")))
    targets = sorted(rng.sample(range(20, unique - 40), 3))
    with counting_server(tmp_path) as server:
        cmd = _rate_cmd(root, data, server.url, f"judge.concurrency={concurrency}")
        kills = 0
        for target in targets:
            # The server replies up to the kill point and holds the rest: the job is stopped
            # there with its requests in flight, however fast or slow it runs.
            server.hold_after(target - _stored(db))
            proc = subprocess.Popen(cmd, cwd=REPO, env=_env(), stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 240  # a ceiling: the job stops at target itself
            while _stored(db) < target and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert proc.poll() is None, "the rating job exited before its kill point"
            assert _stored(db) == target
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            server.release()  # the dead job's held requests end (as they would, paid)
            kills += 1
        stored_before_resume = _stored(db)
        assert stored_before_resume < unique
        orphaned = _orphaned_claims(db)
        out = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True,
                             timeout=300)
        assert out.returncode == 0, out.stderr[-3000:]
        # The killed jobs' claims were taken over at once (their pids are gone), not waited
        # for until their leases ran out.
        assert 0 < orphaned <= kills * concurrency
        assert "waiting for its replies" not in out.stdout + out.stderr
        rows = _ratings(root)
        # Exactly one stored rating per item, none lost.
        assert [r["index"] for r in rows] == list(range(n))
        assert _stored(db) == unique
        resent = server.stats()["requests"] - unique
        # Only requests in flight at a kill are sent again: at most `concurrency` per kill.
        assert 0 <= resent <= kills * concurrency
    report = {"items": n, "unique": unique, "kills": kills, "kill_points": targets,
              "stored_before_resume": stored_before_resume,
              "claims_taken_over": orphaned, "server_completions":
              unique + resent, "resent": resent, "bound": kills * concurrency}
    print("\ncrash/resume:", json.dumps(report))
    (tmp_path / "kill_report.json").write_text(json.dumps(report))


def test_transformers_serve_real_replies(tmp_path):
    from alpagasus.models import resolve_model_path

    # The same folder as paths.cache's default (the converted model is made once there).
    cache = Path(os.path.expanduser(os.environ.get("ALPAGASUS_CACHE", "~/.cache/alpagasus")))
    model_dir = Path(resolve_model_path("embedded:smollm2", cache))
    with transformers_serve(tmp_path, model_dir) as url:
        cfg = JudgeConfig(name="tserve", backend="openai", model=str(model_dir), base_url=url,
                          api_key_env=None, concurrency=2, max_tokens=8, context_tokens=8192,
                          request_timeout_s=120)
        judge = ApiJudge(cfg, tmp_path / "cache.sqlite", EngineOptions(progress=False))
        reqs = requests(2)
        replies = judge.complete(reqs, "rating")
        assert [r.status for r in replies] == ["ok", "ok"]
        assert all(r.text.strip() and 0 < r.output_tokens <= 8 and r.input_tokens > 0
                   for r in replies)
        assert judge.usage.requests == 2


def test_keys_come_from_the_environment_and_a_bad_one_stops_the_cli(tmp_path):
    """A server that checks keys: the right key, from the environment only, rates and is
    written nowhere; a wrong one stops the run (exit 2, the server's message, the key
    redacted although the server quotes it, no artifact)."""
    data = alpaca_subset(tmp_path / "items.json", 20)
    key = "sk-katan-canary-4f1e9b"
    with counting_server(tmp_path, "--api-key", key) as server:
        root = tmp_path / "good"
        cmd = _rate_cmd(root, data, server.url, "judge.concurrency=4")
        env = {**_env(), "OPENAI_COMPATIBLE_API_KEY": key}
        out = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, (out.stdout + out.stderr)[-2000:]
        assert len(_ratings(root)) == 20
        leaked = [p for p in root.rglob("*") if p.is_file() and key.encode() in p.read_bytes()]
        assert leaked == []

        root = tmp_path / "bad"
        cmd = _rate_cmd(root, data, server.url, "judge.concurrency=4")
        env["OPENAI_COMPATIBLE_API_KEY"] = "sk-wrong-key-0000"
        out = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
        log = out.stdout + out.stderr
        assert out.returncode == 2, log[-2000:]
        assert "API error 401" in log and "invalid API key" in log
        assert "sk-wrong-key-0000" not in log
        assert not list((root / "artifacts" / "rate").glob("*/manifest.json"))
