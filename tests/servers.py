"""Real local servers for the rating tests, on free 127.0.0.1 ports: llm-katan (OpenAI +
Anthropic protocols, echo backend with injected latency/errors), `transformers serve`, and a
counting OpenAI-protocol server (this file, ``python -m tests.servers``) that replies with
scores, counts every request per distinct prompt, can ignore max_tokens, and keeps a bill.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[1]
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


# --- the counting server ---------------------------------------------------------------------

SCORES = ("2", "3", "3.5", "4", "4.5", "5")


def prompt_key(messages: list[dict]) -> str:
    return hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()


class _Counting(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDK clients expect
    opts: argparse.Namespace
    lock = threading.Lock()
    per_prompt: Counter = Counter()
    bill = {"prompt_tokens": 0, "completion_tokens": 0, "rejected": 0}

    def log_message(self, *args) -> None:  # quiet
        pass

    def _send(self, status: int, obj: object) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/health":
            return self._send(200, {"status": "ok"})
        if self.path == "/stats":
            with self.lock:
                n = sum(self.per_prompt.values())
                return self._send(200, {
                    "requests": n, "distinct": len(self.per_prompt),
                    "max_per_prompt": max(self.per_prompt.values(), default=0), **self.bill})
        self._send(404, {"error": {"message": "not found"}})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
        opts = self.opts
        if opts.api_key and self.headers.get("authorization") != f"Bearer {opts.api_key}":
            with self.lock:
                self.bill["rejected"] += 1
            sent = (self.headers.get("authorization") or "").removeprefix("Bearer ")
            return self._send(401, {"error": {  # quotes the key, as some servers do
                "message": f"invalid API key: {sent}", "type": "invalid_request_error",
                "code": "invalid_api_key"}})
        if not self.path.endswith("/chat/completions"):
            return self._send(404, {"error": {"message": f"no route {self.path}"}})
        messages = body["messages"]
        key = prompt_key(messages)
        if opts.latency_ms:
            time.sleep(opts.latency_ms / 1000)
        digest = int(key[:8], 16)
        if opts.reply == "score":
            text = f"{SCORES[digest % len(SCORES)]}\nThe response is accurate and helpful."
        elif opts.reply == "pair":
            text = f"{digest % 10 + 1} {digest // 10 % 10 + 1}\nBoth answers address the question."
        else:
            text = "I am not able to rate this response."
        prompt_tokens = 3 + sum(4 + len(m["content"]) // 4 for m in messages)
        if opts.reply_tokens:  # ignores max_tokens: a long reply, billed in full
            completion = opts.reply_tokens
            text += " more" * completion
        else:
            completion = min(body.get("max_tokens") or 10**9, len(text) // 4 + 1)
        with self.lock:
            self.per_prompt[key] += 1
            self.bill["prompt_tokens"] += prompt_tokens
            self.bill["completion_tokens"] += completion
        reply = {"id": f"chatcmpl-{digest}", "object": "chat.completion", "created": 0,
                 "model": body.get("model"), "choices": [{
                     "index": 0, "message": {"role": "assistant", "content": text},
                     "finish_reason": "length" if opts.reply_tokens else "stop"}]}
        if not opts.no_usage:
            reply["usage"] = {"prompt_tokens": prompt_tokens, "completion_tokens": completion,
                              "total_tokens": prompt_tokens + completion}
        self._send(200, reply)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512  # listen backlog: 5 by default, too few for 64 clients at once


class CountingServer:
    def __init__(self, port: int, proc: subprocess.Popen):
        self.port, self.proc = port, proc
        self.url = f"http://127.0.0.1:{port}"

    def stats(self) -> dict:
        """requests, distinct (prompts), max_per_prompt, prompt_tokens, completion_tokens."""
        with urllib.request.urlopen(self.url + "/stats", timeout=5) as r:
            return json.loads(r.read())

    def bill(self, price_in: float, price_out: float) -> float:
        """What the server charged, in USD, at these prices per Mtok."""
        s = self.stats()
        return (s["prompt_tokens"] * price_in + s["completion_tokens"] * price_out) / 1e6


@contextmanager
def counting_server(tmp_path: Path, *extra: str):
    """``python -m tests.servers`` on a free port. extra: --latency-ms N, --reply
    score|pair|unparsed, --reply-tokens N (ignore max_tokens), --no-usage, --api-key K."""
    port = free_port()
    log = tmp_path / f"counting-{port}.log"
    cmd = [sys.executable, "-m", "tests.servers", "--port", str(port), *extra]
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=f, stderr=subprocess.STDOUT)
    try:
        _wait_http(f"http://127.0.0.1:{port}/health", proc, 30, log)
        yield CountingServer(port, proc)
    finally:
        _stop(proc)


def main() -> None:
    ap = argparse.ArgumentParser(description="a counting OpenAI-protocol judge server")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--latency-ms", type=int, default=0)
    ap.add_argument("--reply", choices=("score", "pair", "unparsed"), default="score")
    ap.add_argument("--reply-tokens", type=int, default=0,
                    help="ignore max_tokens: every reply is this many tokens, billed")
    ap.add_argument("--no-usage", action="store_true", help="send no usage object")
    ap.add_argument("--api-key", help="answer 401 to any other key")
    _Counting.opts = ap.parse_args()
    server = _Server(("127.0.0.1", _Counting.opts.port), _Counting)
    server.serve_forever()


if __name__ == "__main__":
    main()


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
