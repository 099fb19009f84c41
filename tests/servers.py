"""Real local servers for the rating tests, on free 127.0.0.1 ports: llm-katan (OpenAI +
Anthropic protocols, echo backend with injected latency/errors), `transformers serve`, and a
counting OpenAI-protocol server (this file, ``python -m tests.servers``) that replies with
scores, counts every request per distinct prompt, can ignore max_tokens, and keeps a bill.

The counting server is what concurrency tests synchronize on instead of sleeping:
* ``--gate-clients N``: no reply leaves until requests with N distinct API keys (one per
  job) have arrived, so N jobs are provably in flight together, whatever their start-up time.
* ``CountingServer.hold_after(n)``: reply to n more requests, then hold the rest until
  ``release()``: a job stops at an exact point (e.g. to be killed there).
It binds port 0 and prints the port it got once it listens: no free-port race, no polling.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import select
import shutil
import socket
import subprocess
import sys
import tempfile
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
# Generous ceilings, not measurements: a loaded machine (2 cores shared by many jobs) may be
# slow to start a server; waiting that long only ever happens when something is broken.
STARTUP_CEILING_S = 120.0
CEILING_S = 240.0
SHARED_ALPACA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "alpaca" / "random_9k.json"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, proc: subprocess.Popen, timeout_s: float, log: Path) -> None:
    """For servers we do not control (llm-katan, transformers serve): poll their health URL
    until it answers, up to a generous ceiling; a server that exits is reported at once."""
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
        _wait_http(f"http://127.0.0.1:{port}/health", proc, STARTUP_CEILING_S, log)
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
        _wait_http(f"http://127.0.0.1:{port}/health", proc, 2 * STARTUP_CEILING_S, log)
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
    lock = threading.Condition()  # guards the counters; notified when the gate or hold changes
    per_prompt: Counter = Counter()
    bill = {"prompt_tokens": 0, "completion_tokens": 0, "rejected": 0}
    gate = {"clients": set(), "open": False, "timeouts": 0}
    hold = {"left": None, "held": 0}  # left: replies before holding (None: never hold)

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
                    "max_per_prompt": max(self.per_prompt.values(), default=0), **self.bill,
                    "gate_clients": len(self.gate["clients"]),
                    "gate_timeouts": self.gate["timeouts"], "held": self.hold["held"]})
        self._send(404, {"error": {"message": "not found"}})

    def _control(self, body: dict) -> None:
        """{"hold_after": n}: reply to n more requests, hold the rest; {"hold_after": null}:
        release every held request and answer once they have all been replied to."""
        with self.lock:
            self.hold["left"] = body.get("hold_after")
            self.lock.notify_all()
            if self.hold["left"] is None:
                self.lock.wait_for(lambda: self.hold["held"] == 0, timeout=CEILING_S)
        self._send(200, {"ok": True})

    def _wait_gate_and_hold(self) -> None:
        """Block this request while the gate is closed or replies are on hold (see the
        module docstring). Ceilings keep a broken test from hanging: a gate that times out
        opens and is counted (tests assert gate_timeouts == 0)."""
        opts, gate, hold = self.opts, self.gate, self.hold
        with self.lock:
            gate["clients"].add(self.headers.get("authorization") or "")
            if len(gate["clients"]) >= opts.gate_clients:
                gate["open"] = True
                self.lock.notify_all()
            if not self.lock.wait_for(lambda: gate["open"], timeout=opts.gate_timeout_s):
                gate["open"] = True
                gate["timeouts"] += 1
                self.lock.notify_all()
            hold["held"] += 1
            self.lock.wait_for(lambda: hold["left"] is None or hold["left"] > 0,
                               timeout=CEILING_S)
            hold["held"] -= 1
            if hold["left"] is not None:
                hold["left"] -= 1
            self.lock.notify_all()

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
        opts = self.opts
        if self.path == "/control":
            return self._control(body)
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
        if opts.latency_ms:  # a slow server, as simulated (not a way to synchronize tests)
            time.sleep(opts.latency_ms / 1000)
        self._wait_gate_and_hold()
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
        try:
            self._send(200, reply)
        except (BrokenPipeError, ConnectionResetError):  # the client was killed meanwhile
            pass


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

    def hold_after(self, n: int) -> None:
        """Reply to ``n`` more requests, then hold every other one until ``release()``."""
        self._control({"hold_after": n})

    def release(self) -> None:
        """Let every held request through; returns once they have all been replied to."""
        self._control({"hold_after": None})

    def _control(self, body: dict) -> None:
        req = urllib.request.Request(self.url + "/control", json.dumps(body).encode(),
                                     {"content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=CEILING_S) as r:
            assert r.status == 200

    def bill(self, price_in: float, price_out: float) -> float:
        """What the server charged, in USD, at these prices per Mtok."""
        s = self.stats()
        return (s["prompt_tokens"] * price_in + s["completion_tokens"] * price_out) / 1e6


@contextmanager
def counting_server(tmp_path: Path, *extra: str):
    """``python -m tests.servers`` on a port of its own. extra: --latency-ms N, --reply
    score|pair|unparsed, --reply-tokens N (ignore max_tokens), --no-usage, --api-key K,
    --gate-clients N [--gate-timeout-s S]."""
    log = tempfile.NamedTemporaryFile(dir=tmp_path, prefix="counting-", suffix=".log",
                                      delete=False)
    cmd = [sys.executable, "-m", "tests.servers", *extra]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=log)
    log.close()
    try:
        # The server prints its port once it listens: wait for that line, not for time.
        ready, _, _ = select.select([proc.stdout], [], [], STARTUP_CEILING_S)
        line = proc.stdout.readline().decode() if ready else ""
        if not line.startswith("PORT "):
            raise RuntimeError(f"the counting server did not start ({proc.poll()}): "
                               f"{Path(log.name).read_text()[-2000:]}")
        yield CountingServer(int(line.split()[1]), proc)
    finally:
        _stop(proc)


def main() -> None:
    ap = argparse.ArgumentParser(description="a counting OpenAI-protocol judge server")
    ap.add_argument("--port", type=int, default=0, help="0: any free port (printed)")
    ap.add_argument("--latency-ms", type=int, default=0)
    ap.add_argument("--reply", choices=("score", "pair", "unparsed"), default="score")
    ap.add_argument("--reply-tokens", type=int, default=0,
                    help="ignore max_tokens: every reply is this many tokens, billed")
    ap.add_argument("--no-usage", action="store_true", help="send no usage object")
    ap.add_argument("--api-key", help="answer 401 to any other key")
    ap.add_argument("--gate-clients", type=int, default=0,
                    help="hold every reply until requests with this many distinct API keys "
                         "have arrived")
    ap.add_argument("--gate-timeout-s", type=float, default=CEILING_S,
                    help="open the gate after this long anyway (counted in /stats)")
    _Counting.opts = ap.parse_args()
    _Counting.gate["open"] = _Counting.opts.gate_clients <= 1
    server = _Server(("127.0.0.1", _Counting.opts.port), _Counting)
    print(f"PORT {server.server_address[1]}", flush=True)  # listening: requests queue now
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
