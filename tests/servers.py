"""Real local servers for the rating tests: llm-katan (OpenAI + Anthropic protocols, echo
backend with injected latency/errors) and `transformers serve`, on free 127.0.0.1 ports."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
SHARED_ALPACA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "alpaca" / "random_9k.json"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, proc: subprocess.Popen, timeout_s: float, log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited ({proc.returncode}): {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"server at {url} not up after {timeout_s}s: {log.read_text()[-2000:]}")


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Katan:
    def __init__(self, port: int, proc: subprocess.Popen):
        self.port, self.proc = port, proc
        self.url = f"http://127.0.0.1:{port}"

    def completed(self) -> int:
        """Completions the server produced (errors excluded), from its Prometheus metrics."""
        with urllib.request.urlopen(self.url + "/metrics", timeout=5) as r:
            text = r.read().decode()
        return int(re.search(r"^llm_katan_requests_total\{[^}]*\} (\d+)", text, re.M).group(1))


@contextmanager
def katan(tmp_path: Path, *extra: str, model: str = "katan-echo"):
    exe = BIN / "llm-katan"
    if not exe.exists() and not shutil.which("llm-katan"):
        pytest.skip("llm-katan is not installed")
    port = free_port()
    log = tmp_path / f"katan-{port}.log"
    cmd = [str(exe if exe.exists() else "llm-katan"), "--model", model, "--backend", "echo",
           "--host", "127.0.0.1", "--port", str(port), "--max-concurrent", "512",
           "--disable-dashboard", "--providers", "openai,anthropic", "--log-level", "warning",
           "--stats-file", str(tmp_path / f"katan-{port}-stats.json"), *extra]
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT)
    try:
        _wait_http(f"http://127.0.0.1:{port}/health", proc, 60, log)
        yield Katan(port, proc)
    finally:
        _stop(proc)


@contextmanager
def transformers_serve(tmp_path: Path, model_dir: Path):
    exe = BIN / "transformers"
    port = free_port()
    log = tmp_path / f"tserve-{port}.log"
    cmd = [str(exe), "serve", str(model_dir), "--host", "127.0.0.1", "--port", str(port),
           "--device", "cpu", "--log-level", "warning"]
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT)
    try:
        _wait_http(f"http://127.0.0.1:{port}/health", proc, 120, log)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        _stop(proc)


def alpaca_subset(path: Path, n: int) -> Path:
    """The first n items of the shared Alpaca sample, written to ``path`` (skip if absent)."""
    if not SHARED_ALPACA.is_file():
        pytest.skip(f"{SHARED_ALPACA} not present")
    items = json.loads(SHARED_ALPACA.read_text())[:n]
    path.write_text(json.dumps(items))
    return path


class FakeChat:
    """An OpenAI-protocol chat server in this process: ``reply(messages) -> text``; every
    request body is kept in ``requests``. For judges whose replies a test must control."""

    def __init__(self, reply):
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.reply, self.requests = reply, []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append(body)
                text = fake.reply(body["messages"])
                out = json.dumps({"id": "x", "object": "chat.completion", "model": body["model"],
                                  "choices": [{"index": 0, "finish_reason": "stop",
                                               "message": {"role": "assistant", "content": text}}],
                                  "usage": {"prompt_tokens": 10, "completion_tokens": 5}}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)


@contextmanager
def fake_chat(reply):
    server = FakeChat(reply)
    server.thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()
