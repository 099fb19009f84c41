"""The human study's web server: two static pages and a small JSON API (stdlib only).

Every path starts with a secret link (alpagasus/human/access.py); an unknown token gets 403.

    GET  /a/<token>/             an annotator's page (page.html)
    GET  /a/<token>/api/items    {"annotator", "items": [{"key", "testset", "category",
                                 "prompt", "input", "left", "right", "label"}]}: their
                                 prompts, sides only, never an arm
    POST /a/<token>/api/label    {"key", "label": "left" | "right" | "tie"}: committed at once
    POST /a/<token>/api/finish   this annotator is done; serving stops once all are
    GET  /o/<token>/             the organiser's progress page (status.html)
    GET  /o/<token>/api/status   {"prompts", "annotators": {name: {assigned, labelled,
                                 finished, last_label}}}
    POST /o/<token>/api/stop     stop serving now (the stage then writes its report)

Requests whose Host header is not one of the server's own names get 421 (400 without one):
DNS rebinding. POSTs must be `application/json`: another site's page cannot send that
cross-origin without a CORS preflight, which this server never grants. The request log
shows paths with the token replaced (``/a/***/``).
"""

from __future__ import annotations

import json
import logging
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from alpagasus.human.access import (
    LOOPBACK_NAMES,
    WILDCARD,
    Links,
    allowed_hosts,
    link_host,
    redact,
)
from alpagasus.human.study import LabelStore, Study, StudyItem
from alpagasus.human.summary import progress

log = logging.getLogger(__name__)

PAGE = Path(__file__).with_name("page.html")
STATUS_PAGE = Path(__file__).with_name("status.html")
_MAX_BODY = 64 * 1024
# The pages load nothing from elsewhere, leak no link in a Referer, and cannot be framed.
_SECURITY_HEADERS = {
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; script-src 'unsafe-inline'; "
                               "style-src 'unsafe-inline'; connect-src 'self'; "
                               "frame-ancestors 'none'",
}


class StudyServer:
    def __init__(self, study: Study, store: LabelStore, assigned: dict[str, list[StudyItem]],
                 links: Links, host: str = "127.0.0.1", port: int = 0,
                 hosts: list[str] | None = None):
        missing = [a for a in assigned if a not in links.annotators]
        if missing:
            raise ValueError(f"no link for annotator(s) {', '.join(missing)}")
        self.study, self.store, self.assigned, self.links = study, store, assigned, links
        self.hosts = list(hosts or [])
        self.finished = threading.Event()
        if host not in LOOPBACK_NAMES:
            log.warning("human.host=%s: the study is reachable from other machines; only the "
                        "secret links open it, over plain HTTP", host)
        self.httpd = ThreadingHTTPServer((host, port), _handler(self))
        self.httpd.daemon_threads = True
        self.allowed_hosts = allowed_hosts(host, self.port, self.hosts)
        if host in WILDCARD and not self.hosts:
            log.warning("human.host=%s with no human.hosts: only loopback names are accepted "
                        "in the Host header; list the names annotators use in human.hosts", host)
        self._keys = {name: {it.key: it for it in items} for name, items in assigned.items()}
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    @property
    def base_url(self) -> str:
        host = str(self.httpd.server_address[0])
        return f"http://{link_host(host, self.hosts)}:{self.port}/"

    def annotator_url(self, name: str) -> str:
        return f"{self.base_url}a/{self.links.annotators[name]}/"

    @property
    def organiser_url(self) -> str:
        return f"{self.base_url}o/{self.links.organiser}/"

    def items(self, annotator: str) -> dict[str, Any]:
        labels = self.store.labels(self.study.key, annotator)
        # No title: it names the arms, and the page must not.
        return {"annotator": annotator,
                "items": [{**it.shown(), "label": labels.get(it.key, {}).get("choice")}
                          for it in self.assigned[annotator]]}

    def label(self, annotator: str, key: Any, choice: Any) -> dict[str, Any]:
        item = self._keys[annotator].get(key) if isinstance(key, str) else None
        if item is None:
            raise ValueError(f"no prompt with key {key!r} among this link's prompts")
        self.store.put(self.study, item, annotator, choice)
        mine = self.store.labels(self.study.key, annotator)
        done = sum(k in mine for k in self._keys[annotator])
        return {"ok": True, "labelled": done, "total": len(self.assigned[annotator])}

    def status(self) -> dict[str, Any]:
        return {"prompts": len(self.study.items),
                "annotators": progress(self.assigned, self.store.all_labels(self.study.key),
                                       self.store.finished(self.study.key))}

    def finish_annotator(self, annotator: str) -> bool:
        """Record the annotator's Finish; stop serving once every annotator has."""
        self.store.finish(self.study.key, annotator)
        log.info("human study: %s pressed Finish", annotator)
        done = set(self.assigned) <= self.store.finished(self.study.key)
        if done:
            self.finish()
        return done

    def serve_until_finished(self) -> None:
        """Serve in this thread until every annotator's Finish, the organiser's Stop or
        Ctrl-C."""
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
            # The request line holds the link's token: the log gets it redacted.
            log.debug("%s %s", self.address_string(), redact(fmt % args))

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            for name, value in _SECURITY_HEADERS.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def _json(self, obj: Any, status: int = HTTPStatus.OK) -> None:
            self._send(status, json.dumps(obj, ensure_ascii=False).encode(),
                       "application/json; charset=utf-8")

        def _route(self) -> tuple[str, str, str] | None:
            """(kind "a" | "o", who, rest of the path), or None with the error sent."""
            host = self.headers.get("Host")
            if not host:
                self._json({"error": "no Host header"}, HTTPStatus.BAD_REQUEST)
                return None
            if host.lower() not in server.allowed_hosts:
                # DNS rebinding: a name that is not this server's, pointed at it.
                self._json({"error": "this server does not answer to that host name; add it "
                            "to human.hosts if annotators use it"},
                           HTTPStatus.MISDIRECTED_REQUEST)
                return None
            parts = self.path.split("?", 1)[0].split("/", 3)  # "", kind, token, rest
            if len(parts) < 3 or parts[1] not in ("a", "o") or not parts[2]:
                self._json({"error": "open the link you were given"}, HTTPStatus.FORBIDDEN)
                return None
            kind, token = parts[1], parts[2]
            who = server.links.who(kind, token)
            if who is None:
                self._json({"error": "unknown or expired link"}, HTTPStatus.FORBIDDEN)
                return None
            if len(parts) == 3:  # /a/<token>: the page's relative URLs need the slash
                self.send_response(HTTPStatus.MOVED_PERMANENTLY)
                self.send_header("Location", f"/{kind}/{token}/")
                self.send_header("Content-Length", "0")
                self.send_header("Referrer-Policy", "no-referrer")
                self.end_headers()
                return None
            return kind, who, parts[3]

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            route = self._route()
            if route is None:
                return
            kind, who, rest = route
            if rest in ("", "index.html"):
                page = PAGE if kind == "a" else STATUS_PAGE
                self._send(HTTPStatus.OK, page.read_bytes(), "text/html; charset=utf-8")
            elif kind == "a" and rest == "api/items":
                self._json(server.items(who))
            elif kind == "o" and rest == "api/status":
                self._json(server.status())
            else:
                self._json({"error": "not found"}, HTTPStatus.NOT_FOUND)

        def do_POST(self) -> None:  # noqa: N802
            route = self._route()
            if route is None:
                return
            kind, who, rest = route
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
            if kind == "a" and rest == "api/label" and isinstance(body, dict):
                try:
                    self._json(server.label(who, body.get("key"), body.get("label")))
                except ValueError as e:
                    self._json({"error": str(e)}, HTTPStatus.BAD_REQUEST)
            elif kind == "a" and rest == "api/finish":
                # Answer first: the last Finish shuts the server down.
                done = server.store.finished(server.study.key)
                self._json({"ok": True,
                            "waiting_for": sorted(set(server.assigned) - done - {who})})
                server.finish_annotator(who)
            elif kind == "o" and rest == "api/stop":
                self._json({"ok": True})
                log.info("human study: stopped from the organiser's page")
                server.finish()
            else:
                self._json({"error": "not found"}, HTTPStatus.NOT_FOUND)

    return Handler
