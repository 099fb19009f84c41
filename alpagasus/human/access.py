"""Who may open the study's pages: one secret link per annotator, one for the organiser, and
the Host names the server answers to.

Links: ``/a/<token>/`` for an annotator, ``/o/<token>/`` for the organiser's progress page.
Tokens come from ``secrets.token_urlsafe`` and live in one JSON file (``human.links``) written
with mode 0600; a restart reuses them (the links the annotators hold stay valid) and adds one
for a newly named annotator. They never go into the config, the artifacts or the log: the
terminal prints the links once, and the server's request log shows ``/a/***/``.

Host check (DNS rebinding): a page on another site whose name has been re-pointed at this
machine reaches the server with that site's name in the Host header. Only the names the
server is meant to be reached by are answered: loopback names, the bound address, and
``human.hosts``, each with the bound port.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import os
import re
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
WILDCARD = ("", "0.0.0.0", "::")
TOKEN_BYTES = 24
_TOKEN_IN_PATH = re.compile(r"/([ao])/[^/?#\s\"]+")


@dataclass(frozen=True)
class Links:
    organiser: str  # the organiser's token
    annotators: dict[str, str]  # name -> token

    def who(self, kind: str, token: str) -> str | None:
        """The annotator (kind "a") or "organiser" (kind "o") a token belongs to, else None.
        Compared in constant time, so response timing does not leak a token's prefix."""
        if kind == "o":
            return "organiser" if hmac.compare_digest(token, self.organiser) else None
        if kind == "a":
            found = None
            for name, known in self.annotators.items():
                if hmac.compare_digest(token, known):
                    found = name
            return found
        return None


def load_links(path: str | Path, annotators: list[str]) -> Links:
    """The study's tokens from ``path``: kept for annotators already there, new for new ones
    (a name dropped from ``human.annotators`` loses its link). Written back with mode 0600."""
    path = Path(path)
    old: dict = {}
    if path.is_file():
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            log.warning("%s was readable by others (mode %o): set to 0600; anyone who read it "
                        "can open the study (delete it to issue new links)", path, mode)
        try:
            old = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: line {e.lineno}: not JSON ({e.msg}); delete the file to "
                             "issue new links") from e
        if not isinstance(old, dict) or not isinstance(old.get("annotators", {}), dict):
            raise ValueError(f"{path}: not a links file (no 'annotators' object); delete the "
                             "file to issue new links")
    organiser = old.get("organiser") if isinstance(old.get("organiser"), str) else None
    kept = old.get("annotators", {})
    links = Links(organiser=organiser or secrets.token_urlsafe(TOKEN_BYTES),
                  annotators={name: kept[name] if isinstance(kept.get(name), str)
                              else secrets.token_urlsafe(TOKEN_BYTES) for name in annotators})
    _write_private(path, {"organiser": links.organiser, "annotators": links.annotators})
    return links


def _write_private(path: Path, obj: dict) -> None:
    """Write ``obj`` as JSON, mode 0600 from the first byte (no window where it is readable),
    atomically: a crash leaves the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # O_CREAT's mode is cut by the umask; a stale tmp keeps its own
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=2)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def redact(text: str) -> str:
    """A request line or path with the link tokens replaced: what the request log shows."""
    return _TOKEN_IN_PATH.sub(r"/\1/***", text)


def link_host(host: str, hosts: list[str]) -> str:
    """The host name to put in the printed links."""
    if hosts:
        return hosts[0]
    if host in WILDCARD:
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def allowed_hosts(host: str, port: int, extra: list[str]) -> frozenset[str]:
    """Every Host header value the server answers: loopback names, the bound address unless
    it is a wildcard, and ``extra`` (human.hosts), each bare and with ``:port``."""
    names = {*LOOPBACK_NAMES, *extra}
    if host not in WILDCARD:
        names.add(host)
    out: set[str] = set()
    for name in names:
        name = name.lower().strip("[]")
        bracketed = f"[{name}]" if _is_ipv6(name) else name
        out.add(f"{bracketed}:{port}")
        if port == 80:  # browsers leave the default port out of the Host header
            out.add(bracketed)
    return frozenset(out)


def _is_ipv6(name: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(name), ipaddress.IPv6Address)
    except ValueError:
        return False
