"""Value checks shared by the schemas (a size, a threshold, a URL, a positive number)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from alpagasus.errors import ConfigError


def _positive(name: str, value: float | None, allow_zero: bool = False) -> None:
    if value is None:
        return
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"{name}={value}: must be {'>= 0' if allow_zero else '> 0'}")


def check_base_url(url: str, where: str) -> None:
    """A URL the HTTP client can use: http(s), a host, a port in 1-65535."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{where}: base_url '{url}' is not an http(s) URL with a host "
                          "(e.g. http://127.0.0.1:8000/v1)")
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port is not None and not 1 <= port <= 65535:
        raise ConfigError(f"{where}: base_url '{url}' has a port outside 1-65535")


# Rating judges answer on the paper's 0-5 scale.
RATING_SCALE = (0.0, 5.0)


def check_size(key: str, size: Any, allow_match: bool) -> None:
    if size is None or (allow_match and size == "match"):
        return
    if isinstance(size, bool) or not isinstance(size, int):
        raise ConfigError(f"{key}={size!r}: must be a whole number of items"
                          + (", 'match' (the other arm's size)" if allow_match else "")
                          + " or null (all that pass)")
    if size <= 0:
        raise ConfigError(f"{key}={size}: must be > 0 (or null: every item that passes)")


def check_threshold(key: str, threshold: float) -> None:
    low, high = RATING_SCALE
    if not low <= threshold <= high:
        raise ConfigError(f"{key}={threshold}: outside the judge's {low:g}-{high:g} scale")
