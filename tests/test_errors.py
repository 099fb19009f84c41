"""Errors a person can read: a line or two and a fix, exit 1 (2 for stops), no traceback;
failing jobs mark their W&B run failed; Ctrl-C says what was kept; unique run folders."""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from alpagasus.data import DataError
from alpagasus.errors import (
    AlpagasusError,
    ConfigError,
    describe,
    exit_code_for,
    register_resolvers,
    run_cli,
)
from alpagasus.judges.engine import (
    BatchPending,
    BudgetExceeded,
    DryRun,
    JudgeRequestError,
    JudgeStop,
    MissingReplies,
)
from alpagasus.main import run
from alpagasus.models import ModelError
from alpagasus.stages.select import SelectionError
from alpagasus.stages.train import TrainConfigError
from alpagasus.tracking import Tracker

REPO = Path(__file__).resolve().parents[1]
BAD_ITEMS = [{"instruction": "a", "output": 5}]


def _cli(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHONPATH": str(REPO), "WANDB_MODE": "offline",
                "HYDRA_FULL_ERROR": "0", "ALPAGASUS_VERBOSE": "0", **env}
    return subprocess.run([sys.executable, "-m", "alpagasus", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=300)


def _files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*")) if root.exists() else []


def wandb_exit_codes(root: Path) -> list[int]:
    """Exit codes recorded in the offline W&B runs under root (wandb's LevelDB-style log:
    7-byte file header, 32 KiB blocks of records: crc32 u32, length u16, type u8, data)."""
    from wandb.proto import wandb_internal_pb2 as pb

    codes = []
    for f in sorted(root.glob("wandb/offline-run-*/run-*.wandb")):
        data, pos, chunk = f.read_bytes(), 7, b""
        while pos + 7 <= len(data):
            left = 32768 - pos % 32768
            if left < 7:
                pos += left
                continue
            _, n, kind = struct.unpack("<IHB", data[pos:pos + 7])
            if n == 0 and kind == 0:
                break
            chunk += data[pos + 7:pos + 7 + n]
            pos += 7 + n
            if kind in (1, 4):  # FULL or LAST: one record complete
                record = pb.Record()
                record.ParseFromString(chunk)
                if record.WhichOneof("record_type") == "exit":
                    codes.append(record.exit.exit_code)
                chunk = b""
    return codes


# --- exit codes and messages (pure) -------------------------------------------------------------

@pytest.mark.parametrize("error,code", [
    (DataError("x"), 1), (SelectionError("x"), 1), (TrainConfigError("x"), 1),
    (ModelError("x"), 1), (ConfigError("x"), 1), (JudgeStop("x"), 2), (BudgetExceeded("x"), 2),
    (MissingReplies("x"), 2), (JudgeRequestError("x"), 2), (DryRun("x"), 0),
    (BatchPending("x"), 0), (KeyboardInterrupt(), 130), (RuntimeError("bug"), 1), (None, 0),
])
def test_exit_codes(error, code):
    assert exit_code_for(error) == code
    if error is not None and not isinstance(error, KeyboardInterrupt | RuntimeError):
        assert isinstance(error, AlpagasusError)


def test_old_except_clauses_still_catch():
    # Callers that caught ValueError/RuntimeError keep working.
    assert isinstance(DataError("x"), ValueError) and isinstance(SelectionError("x"), ValueError)
    assert isinstance(JudgeRequestError("x"), RuntimeError)


def test_describe_says_what_and_how_to_fix():
    text = describe(DataError("items.json: index 3: missing field 'output'", hint="add it"))
    assert text.splitlines() == ["alpagasus: error: items.json: index 3: missing field 'output'",
                                 "  fix: add it"]
    assert describe(BudgetExceeded("budget reached")).startswith("alpagasus: stopped: budget")
    assert "rate.max_cost_usd" in describe(BudgetExceeded("budget reached"))


def test_run_cli_prints_a_line_and_exits(tiny_cfg, tmp_path, capsys):
    def fails(cfg):
        raise TrainConfigError("lora target 'q_prj' is not in the model", hint="use q_proj")

    with pytest.raises(SystemExit) as e:
        run_cli(fails, tiny_cfg())
    assert e.value.code == 1
    err = capsys.readouterr().err
    assert err == ("alpagasus: error: lora target 'q_prj' is not in the model\n"
                   "  fix: use q_proj\n")


def test_run_cli_expected_stops_exit_zero(tiny_cfg):
    def dry(cfg):
        raise DryRun("dry run: 12 requests would be sent")

    assert run_cli(dry, tiny_cfg()) is None


def test_missing_config_value_is_a_config_error(capsys):
    cfg = OmegaConf.create({"judge": {"base_url": "???"}, "paths": {"root": "unused"}})
    with pytest.raises(SystemExit) as e:
        run_cli(lambda c: c.judge.base_url, cfg)
    assert e.value.code == 1
    err = capsys.readouterr().err
    assert "config value 'judge.base_url' is required but not set" in err
    assert "fix: give it on the command line: judge.base_url=VALUE" in err


def test_verbose_reraises(tiny_cfg, monkeypatch):
    monkeypatch.setenv("ALPAGASUS_VERBOSE", "1")
    with pytest.raises(SelectionError):
        run_cli(lambda c: (_ for _ in ()).throw(SelectionError("size too large")), tiny_cfg())


# --- W&B: a failing job's run is marked failed ------------------------------------------------

class FakeRun:
    id, dir = "fake", "."

    def __init__(self):
        self.finished_with: list[int] = []

    def finish(self, exit_code=None):
        self.finished_with.append(exit_code)


@pytest.fixture
def fake_wandb(monkeypatch):
    import wandb

    runs: list[FakeRun] = []
    monkeypatch.setattr(wandb, "init", lambda **kw: runs.append(FakeRun()) or runs[-1])
    return runs


def _tracker(tiny_cfg, tmp_path) -> Tracker:
    cfg = tiny_cfg()
    return Tracker(cfg.logger, {}, tmp_path / "wandb")


@pytest.mark.parametrize("error,code", [(BudgetExceeded("x"), 2), (DataError("x"), 1),
                                        (KeyboardInterrupt(), 130), (RuntimeError("bug"), 1)])
def test_finish_in_finally_marks_the_run_failed(fake_wandb, tiny_cfg, tmp_path, error, code):
    tracker = _tracker(tiny_cfg, tmp_path)
    with pytest.raises(type(error)):
        try:
            raise error
        finally:
            tracker.finish()
    assert fake_wandb[-1].finished_with == [code]


def test_finish_after_success_and_as_context_manager(fake_wandb, tiny_cfg, tmp_path):
    _tracker(tiny_cfg, tmp_path).finish()
    assert fake_wandb[-1].finished_with == [0]
    with pytest.raises(JudgeRequestError), _tracker(tiny_cfg, tmp_path):
        raise JudgeRequestError("OpenAI API error 401: bad key")
    assert fake_wandb[-1].finished_with == [2]


def test_tracker_off_is_not_counted_as_opened():
    before = Tracker.opened
    Tracker.off().finish()
    assert Tracker.opened == before


# --- the real command line ----------------------------------------------------------------------

def test_cli_bad_data_one_message_no_traceback_nothing_left(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(BAD_ITEMS))
    root = tmp_path / "out"
    out = _cli("data=json", f"data.path={bad}", f"paths.root={root}", cwd=tmp_path)
    assert out.returncode == 1
    assert out.stderr.splitlines() == [
        f"alpagasus: error: {bad}: index 0: field 'output' must be a string, got number",
        "  fix: quote the value; every item field is text"]
    assert "Traceback" not in out.stdout + out.stderr
    assert _files_under(root) == []  # Hydra's run folder too: no artifacts, no W&B, no log


def test_cli_bad_data_in_a_sweep_fails_every_job_cleanly(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b"\x1f\x8b\x08\x00gzip")
    root = tmp_path / "out"
    out = _cli("-m", "data=json", f"data.path={bad}", f"paths.root={root}", "threshold=1,2",
               cwd=tmp_path)
    assert out.returncode == 1
    assert f"alpagasus: error: {bad}: is gzip-compressed, not JSON text" in out.stderr
    # The sweep goes on (alpagasus/callbacks.py) and its report lists both jobs as failed.
    assert out.stderr.count("alpagasus: error:") == 2
    assert "Traceback" not in out.stderr
    assert "2 of 2 jobs failed" in out.stdout + out.stderr
    left = {p.name for p in _files_under(root)}
    assert "manifest.json" not in left  # no artifact: nothing was spent
    assert "result.json" in left


def test_cli_full_traceback_on_request(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(BAD_ITEMS))
    out = _cli("data=json", f"data.path={bad}", f"paths.root={tmp_path / 'out'}", cwd=tmp_path,
               HYDRA_FULL_ERROR="1")
    assert out.returncode == 1
    assert "Traceback" in out.stderr and "DataError" in out.stderr


def test_cli_budget_stop_exits_2_and_marks_wandb_run_failed(tmp_path):
    """A stop after the W&B run started: exit 2, one message, and the run records exit 2."""
    root = tmp_path / "out"
    out = _cli("stage=rate", "filter=chatgpt", "judge.base_url=http://127.0.0.1:9/v1",
               "rate.max_cost_usd=0.0000001", "data.limit=3", "rate.progress=false",
               f"paths.root={root}", cwd=tmp_path, OPENAI_API_KEY="sk-test-not-a-key")
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith("alpagasus: stopped: rate.max_cost_usd=1e-07 reached")
    assert "fix: raise rate.max_cost_usd" in out.stderr
    assert "Traceback" not in out.stderr
    assert wandb_exit_codes(root) == [2]
    # A job that failed after starting keeps its log (only refused jobs leave nothing).
    assert list(root.glob("runs/*/*/main.log"))


def test_cli_ctrl_c_says_what_was_kept(tmp_path):
    """SIGINT while the judge waits on a server that never answers: one line, exit 130,
    and the W&B run records the interrupt."""
    root = tmp_path / "out"
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(64)
        server.settimeout(120)
        env = {**os.environ, "PYTHONPATH": str(REPO), "WANDB_MODE": "offline",
               "OPENAI_API_KEY": "sk-test-not-a-key"}
        job = subprocess.Popen(
            [sys.executable, "-m", "alpagasus", "stage=rate", "judge=openai_compatible",
             f"judge.base_url=http://127.0.0.1:{server.getsockname()[1]}/v1", "judge.model=m",
             "data.limit=3", "rate.progress=false", f"paths.root={root}"],
            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            # A suite started in the background (nohup, `cmd &` in a script, some CI runners)
            # passes SIGINT on as ignored, and Python then keeps ignoring it: the job must see
            # Ctrl-C as a terminal would send it.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        try:
            conn, _ = server.accept()
            conn.settimeout(120)
            request = b""
            while b"\r\n\r\n" not in request:  # the whole request head: it is in flight
                chunk = conn.recv(65536)
                assert chunk, "the job closed the connection before sending its request"
                request += chunk
            job.send_signal(signal.SIGINT)
            _, err = job.communicate(timeout=120)
            conn.close()
        finally:
            job.kill()
    assert job.returncode == 130
    assert err.splitlines() == [
        f"alpagasus: interrupted. Kept: every finished artifact in {root}/artifacts, every judge "
        f"reply in {root}/cache/judge.sqlite, training checkpoints in .partial-* folders; run "
        "the same command again to resume."]
    assert wandb_exit_codes(root) == [130]


def test_two_jobs_in_the_same_second_get_separate_run_folders(tmp_path):
    """Two dry runs started together: two run folders (and both exit 0: a dry run is no error)."""
    root = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OPENAI_API_KEY": "sk-test-not-a-key"}
    cmd = [sys.executable, "-m", "alpagasus", "stage=rate", "filter=chatgpt", "rate.dry_run=true",
           "data.limit=3", "logger.enabled=false", "rate.progress=false", f"paths.root={root}"]
    jobs = [subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE) for _ in range(2)]
    assert [j.wait(timeout=300) for j in jobs] == [0, 0]
    folders = sorted(p.parent for p in root.glob("runs/*/*/main.log"))
    assert len(folders) == 2
    assert all("dry run:" in (f / "main.log").read_text() for f in folders)


def test_run_id_is_stable_within_a_process_and_differs_across_processes():
    register_resolvers()
    cfg = OmegaConf.create({"a": "${alpagasus.run_id:}", "b": "${alpagasus.run_id:}"})
    assert cfg.a == cfg.b and len(cfg.a) >= 6
    code = ("from omegaconf import OmegaConf; from alpagasus.errors import register_resolvers; "
            "register_resolvers(); print(OmegaConf.create({'a': '${alpagasus.run_id:}'}).a)")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    others = {subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, check=True).stdout.strip() for _ in range(2)}
    assert len(others | {cfg.a}) == 3


def test_refused_job_in_process_writes_nothing(tiny_cfg, tmp_path, capsys):
    """run_cli around the real run(): bad data, no W&B run opened, nothing under the root."""
    bad = tmp_path / "in" / "bad.json"
    bad.parent.mkdir()
    bad.write_text(json.dumps(BAD_ITEMS))
    before = Tracker.opened
    cfg = tiny_cfg("data=json", f"data.path={bad}", f"paths.root={tmp_path / 'out'}")
    with pytest.raises(SystemExit) as e:
        run_cli(run, cfg)
    assert e.value.code == 1 and Tracker.opened == before
    assert str(bad) in capsys.readouterr().err
    assert _files_under(tmp_path / "out") == []


@pytest.mark.parametrize("multirun", [False, True])
def test_an_output_root_that_is_a_file_is_one_line(tmp_path, multirun):
    afile = tmp_path / "outputs"
    afile.write_text("not a folder\n")
    args = ["-m"] if multirun else []
    for root in (afile, afile / "sub"):
        proc = _cli(*args, f"paths.root={root}", "stage=select", cwd=tmp_path)
        assert proc.returncode == 1, proc.stderr
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert lines == [f"error: paths.root={root}: the output root is a file ({afile}), "
                         "not a folder. Point paths.root at a folder (it is created if "
                         "missing)."], proc.stderr
        assert afile.read_text() == "not a folder\n"


def test_errors_module_does_not_import_tracking():
    """The bottom layer knows nothing above it: the entry point tells run_cli whether a job
    had started (opened its W&B run), not errors.py asking the tracker (issue 18)."""
    import ast

    import alpagasus.errors

    tree = ast.parse(Path(alpagasus.errors.__file__).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    ours = {m for m in imported if m and m.startswith("alpagasus")}
    assert ours == set(), ours
