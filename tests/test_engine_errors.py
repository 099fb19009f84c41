"""Errors a person can read: connection errors name the URL and are logged at the first
failed attempt, a reply without `choices`, a damaged cache file, the journal mode, which
variable a judge reads its key from."""

from __future__ import annotations

import logging
import os
import sqlite3

import httpx2
import pytest

from alpagasus.config import JudgeConfig
from alpagasus.judges import online as engine_mod
from alpagasus.judges.cache import JudgeCacheError, ReplyCache
from alpagasus.judges.engine import ApiJudge, EngineOptions, JudgeRequestError, make_provider
from tests.servers import free_port

ONE = [[{"role": "user", "content": "Rate: 2 + 2 = 4."}]]


def _cfg(url: str, **kw) -> JudgeConfig:
    return JudgeConfig(**{"name": "t", "backend": "openai", "model": "m", "base_url": url,
                          "api_key_env": None, "concurrency": 1, "max_tokens": 8, **kw})


def test_connection_errors_name_the_url_and_the_first_failure_is_logged_at_once(
        tmp_path, monkeypatch, caplog):
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    warned_before_first_wait = []

    async def no_sleep(s: float) -> None:
        warned_before_first_wait.append(any(r.levelno == logging.WARNING for r in caplog.records))

    monkeypatch.setattr(engine_mod, "_sleep", no_sleep)
    caplog.set_level(logging.INFO)
    judge = ApiJudge(_cfg(url, max_retries=3), tmp_path / "c.sqlite", EngineOptions(progress=False))
    with pytest.raises(JudgeRequestError, match="giving up after 4 attempts") as err:
        judge.complete(ONE, "rating")
    assert f"cannot connect to {url}/chat/completions" in str(err.value)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and f"cannot connect to {url}/chat/completions" in warnings[0]
    assert "retrying" in warnings[0]
    assert warned_before_first_wait == [True, True, True]  # logged before the first backoff


@pytest.mark.parametrize("body,what", [
    ({"id": "x", "object": "chat.completion", "model": "m"}, "not a chat completion"),
    ({"error": {"message": "model 'm' not loaded"}}, "model 'm' not loaded"),
    ({"choices": []}, "not a chat completion"),
])
def test_a_reply_without_choices_is_a_clear_error(tmp_path, body, what):
    calls = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        calls.append(request)
        return httpx2.Response(200, json=body)

    judge = ApiJudge(_cfg("http://judge.test/v1"), tmp_path / "c.sqlite",
                     EngineOptions(progress=False),
                     http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(handler)))
    with pytest.raises(JudgeRequestError, match="judge server at http://judge.test/v1/chat/"
                       "completions replied with JSON that is not") as err:
        judge.complete(ONE, "rating")
    assert what in str(err.value) and "judge.base_url" in str(err.value)
    assert len(calls) == 1  # not retried: retrying does not fix a wrong endpoint


def test_a_file_that_is_not_sqlite_is_named_with_what_to_do(tmp_path):
    path = tmp_path / "judge.sqlite"
    path.write_bytes(b"these are not the replies you are looking for\n" * 100)
    with pytest.raises(JudgeCacheError) as err:
        ApiJudge(_cfg("http://judge.test/v1"), path, EngineOptions(progress=False))
    message = str(err.value)
    assert message.startswith(f"{path}: the judge reply cache is damaged")
    assert f"mv {path} {path}.damaged" in message and "paths.judge_cache" in message


def test_a_damaged_cache_is_named_when_read(tmp_path):
    path = tmp_path / "judge.sqlite"
    cache = ReplyCache(path)
    for i in range(300):
        cache.put(f"k{i}", "j", "m", "4\n" + "x" * 500)
    cache.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    cache.close()
    with open(path, "r+b") as f:  # the header is fine, the pages after it are not
        f.seek(4096)
        f.write(b"\xff" * 8192)
    cache = ReplyCache(path)
    with pytest.raises(JudgeCacheError, match="malformed") as err:
        cache.get_many(f"k{i}" for i in range(300))
    assert str(err.value).startswith(str(path))


def test_journal_delete_uses_no_wal_and_no_shared_memory(tmp_path):
    path = tmp_path / "judge.sqlite"
    cache = ReplyCache(path, journal="delete")
    assert cache.db.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    assert cache.db.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL
    cache.put("k", "j", "m", "4")
    assert not (tmp_path / "judge.sqlite-wal").exists()
    assert not (tmp_path / "judge.sqlite-shm").exists()
    cache.close()
    assert ReplyCache(path, journal="delete").get_many(["k"])["k"].text == "4"


def test_mixed_journal_modes_on_one_cache_are_refused(tmp_path):
    path = tmp_path / "judge.sqlite"
    wal = ReplyCache(path)  # another job, WAL, still open
    wal.put("k", "j", "m", "4")
    with pytest.raises(JudgeCacheError, match="same paths.judge_cache_journal"):
        ReplyCache(path, busy_timeout_s=0.2, journal="delete")
    wal.close()
    with pytest.raises(ValueError, match="wal or delete"):
        ReplyCache(path, journal="nfs")


def test_journal_and_budget_options_are_typed(compose_cfg):
    cfg = compose_cfg("paths.judge_cache_journal=delete", "rate.budget_scope=run",
                      "judge.reply_bound=context")
    assert cfg.paths.judge_cache_journal == "delete" and cfg.rate.budget_scope == "run"
    assert cfg.judge.reply_bound == "context"
    from hydra.errors import ConfigCompositionException

    for bad in ("paths.judge_cache_journal=nfs", "rate.budget_scope=forever",
                "judge.reply_bound=sometimes"):
        with pytest.raises(ConfigCompositionException, match=bad.split("=")[0]) as err:
            compose_cfg(bad)
        assert "Invalid value" in str(err.value.__cause__)


def test_an_older_cache_file_gains_the_new_columns(tmp_path):
    path = tmp_path / "old.sqlite"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE replies (key TEXT PRIMARY KEY, judge TEXT NOT NULL, model TEXT "
                "NOT NULL, text TEXT NOT NULL, status TEXT, score TEXT, parser_version INTEGER, "
                "input_tokens INTEGER NOT NULL DEFAULT 0, output_tokens INTEGER NOT NULL "
                "DEFAULT 0, latency_s REAL NOT NULL DEFAULT 0, source TEXT NOT NULL, created "
                "REAL NOT NULL)")
    con.execute("INSERT INTO replies VALUES ('k','j','m','4','ok','4.0',3,1000,100,0,'online',0)")
    con.commit()
    con.close()
    judge = ApiJudge(_cfg("http://judge.test/v1", price_input_per_mtok=1.0,
                          price_output_per_mtok=10.0), path, EngineOptions(progress=False))
    [old] = judge.cache.get_many(["k"]).values()
    assert old.cost_usd is None and judge.reply_cost(old) == pytest.approx(0.002)


def test_which_variable_a_judge_reads_its_key_from_is_logged(monkeypatch, caplog):
    monkeypatch.delenv("OPENAI_COMPATIBLE_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-real-key-1234")
    caplog.set_level(logging.INFO)
    cfg = _cfg("http://127.0.0.1:8000/v1", name="openai_compatible",
               api_key_env="OPENAI_COMPATIBLE_API_KEY")
    make_provider(cfg)
    [record] = [r for r in caplog.records if "API key" in r.getMessage()]
    message = record.getMessage()
    assert record.levelno == logging.WARNING
    assert "reads its API key from OPENAI_COMPATIBLE_API_KEY, which is not set" in message
    assert "OPENAI_API_KEY is set but this judge does not read it" in message
    assert "sk-real-key-1234" not in caplog.text
    assert os.environ["OPENAI_API_KEY"] == "sk-real-key-1234"


@pytest.mark.parametrize("failure,names", [
    ("timeout", ["judge.request_timeout_s=5.0s", "reachable", "curl http://judge.test/v1/models"]),
    ("refused", ["nothing answers at http://judge.test/v1", "judge.base_url"]),
    (429, ["rate limited", "judge.requests_per_minute"]),
    (503, ["failed on every attempt (http 503)", "judge.max_retries"]),
])
def test_each_reason_to_give_up_has_its_own_hint(tmp_path, monkeypatch, failure, names):
    from alpagasus.errors import describe

    async def no_sleep(s: float) -> None:
        return None

    def handler(request: httpx2.Request) -> httpx2.Response:
        if failure == "timeout":
            raise httpx2.ReadTimeout("timed out", request=request)
        if failure == "refused":
            raise httpx2.ConnectError("connection refused", request=request)
        return httpx2.Response(failure, json={"error": {"message": "busy"}})

    monkeypatch.setattr(engine_mod, "_sleep", no_sleep)
    judge = ApiJudge(_cfg("http://judge.test/v1", max_retries=1, request_timeout_s=5.0),
                     tmp_path / "c.sqlite", EngineOptions(progress=False),
                     http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(handler)))
    with pytest.raises(JudgeRequestError, match="giving up after 2 attempts") as err:
        judge.complete(ONE, "rating")
    text = describe(err.value)
    fix = [line for line in text.splitlines() if line.strip().startswith("fix:")]
    assert len(fix) == 1 and "cached" in fix[0], text
    for name in names:
        assert name in fix[0], text
