"""The human study's web server: one static page and a small JSON API (stdlib only).

    GET  /            the page (page.html)
    GET  /api/items   {"annotator", "items": [{"key", "testset", "category", "prompt",
                      "input", "left", "right", "label"}]}: sides only, never an arm
    POST /api/label   {"key", "label": "left" | "right" | "tie"}: stored at once
    POST /api/finish  stop serving (the stage then writes its report)

Bound to 127.0.0.1 by default. POSTs must be `application/json`: a page on another site
cannot send that cross-origin without a CORS preflight, which this server never grants.
"""

from __future__ import annotations

import json
import logging
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from alpagasus.human.study import LabelStore, Study

log = logging.getLogger(__name__)

PAGE = Path(__file__).with_name("page.html")
LOOPBACK = ("127.0.0.1", "localhost", "::1")
_MAX_BODY = 64 * 1024


class StudyServer:
    def __init__(self, study: Study, store: LabelStore, annotator: str,
                 host: str = "127.0.0.1", port: int = 0):
        self.study, self.store, self.annotator = study, store, annotator
        self.finished = threading.Event()
        if host not in LOOPBACK:
            log.warning("human.host=%s: anyone who can reach this address can read the "
                        "answers and label them", host)
        self.httpd = ThreadingHTTPServer((host, port), _handler(self))
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        host = f"[{host}]" if ":" in str(host) else host
        return f"http://{host}:{port}/"

    def items(self) -> dict[str, Any]:
        labels = self.store.labels(self.study.key, self.annotator)
        # No title: it names the arms, and the page must not.
        return {"annotator": self.annotator,
                "items": [{**it.shown(), "label": labels.get(it.key, {}).get("choice")}
                          for it in self.study.items]}

    def label(self, key: Any, choice: Any) -> dict[str, Any]:
        item = self.study.item(key) if isinstance(key, str) else None
        if item is None:
            raise ValueError(f"no prompt with key {key!r}")
        self.store.put(self.study, item, self.annotator, choice)
        done = len(self.store.labels(self.study.key, self.annotator))
        return {"ok": True, "labelled": done, "total": len(self.study.items)}

    def serve_until_finished(self) -> None:
        """Serve in this thread until the page's Finish (or Ctrl-C)."""
        try:
            self.httpd.serve_forever(poll_interval=0.2)
        finally:
            self.httpd.server_close()

    def finish(self) -> None:
        self.finished.set()
        threading.Thread(target=self.httpd.shutdown, daemon=True).start()

    # For tests and embedding: serve from a background thread.
    def start(self) -> StudyServer:
        self._thread = threading.Thread(target=self.serve_until_finished, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        if self._thread:
            self._thread.join(timeout=10)


def _handler(server: StudyServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, fmt: str, *args: Any) -> None:
            log.debug("%s " + fmt, self.address_string(), *args)

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def _json(self, obj: Any, status: int = HTTPStatus.OK) -> None:
            self._send(status, json.dumps(obj, ensure_ascii=False).encode(),
                       "application/json; charset=utf-8")

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            if self.path in ("/", "/index.html"):
                self._send(HTTPStatus.OK, PAGE.read_bytes(), "text/html; charset=utf-8")
            elif self.path == "/api/items":
                self._json(server.items())
            else:
                self._json({"error": "not found"}, HTTPStatus.NOT_FOUND)

        def do_POST(self) -> None:  # noqa: N802
            if not self.headers.get("Content-Type", "").startswith("application/json"):
                self._json({"error": "expected application/json"},
                           HTTPStatus.UNSUPPORTED_MEDIA_TYPE)
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > _MAX_BODY:
                self._json({"error": "body too large"}, HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
                return
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except json.JSONDecodeError:
                self._json({"error": "body is not JSON"}, HTTPStatus.BAD_REQUEST)
                return
            if self.path == "/api/label" and isinstance(body, dict):
                try:
                    self._json(server.label(body.get("key"), body.get("label")))
                except ValueError as e:
                    self._json({"error": str(e)}, HTTPStatus.BAD_REQUEST)
            elif self.path == "/api/finish":
                self._json({"ok": True})
                server.finish()
            else:
                self._json({"error": "not found"}, HTTPStatus.NOT_FOUND)

    return Handler
