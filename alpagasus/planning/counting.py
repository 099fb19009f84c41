"""What stage=plan counts without spending: tokens of training items (the model's tokenizer
when it is on disk, else the stated chars/4 estimate), judge requests and their prompt tokens,
and which replies the judge cache already holds (opened read-only; never created).

Results are memoized per process: the jobs of a multirun plan run one after the other in one
process and share most of their counting (the same data, the same judges).
"""

from __future__ import annotations

import functools
import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from alpagasus.data import Item
from alpagasus.judges.cache import request_key
from alpagasus.judges.tokens import TokenCounter
from alpagasus.planning.estimate import chars_tokens
from alpagasus.prompts import alpaca_prompt

log = logging.getLogger(__name__)

CHARS_PER_TOKEN = 4.0  # the stated estimate when no tokenizer is on disk
_SQL_CHUNK = 500


@functools.lru_cache(maxsize=4)
def _tokenizer(folder: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder, local_files_only=True)


@functools.lru_cache(maxsize=8)
def training_lengths(items: tuple[Item, ...], tokenizer: str | None,
                     max_length: int) -> tuple[list[int], str]:
    """Tokens per item as stage=train feeds it (Alpaca prompt + output + EOS, cut at
    max_length), and how they were counted (cached: the jobs of a multirun share it)."""
    prompts = [alpaca_prompt(it.instruction, it.input) for it in items]
    if tokenizer is not None:
        try:
            tok = _tokenizer(tokenizer)
            p = tok(prompts)["input_ids"]
            o = tok([it.output for it in items], add_special_tokens=False)["input_ids"]
            return ([min(len(a) + len(b) + 1, max_length) for a, b in zip(p, o, strict=True)],
                    f"the model's tokenizer ({tokenizer})")
        except Exception as e:  # a tokenizer that does not load offline: say so, estimate
            log.info("plan: tokenizer %s unusable offline (%s): chars/%g estimate", tokenizer, e,
                     CHARS_PER_TOKEN)
    return ([min(chars_tokens(len(p) + len(it.output), CHARS_PER_TOKEN) + 1, max_length)
             for p, it in zip(prompts, items, strict=True)],
            f"estimate: chars/{CHARS_PER_TOKEN:g} (no tokenizer on disk)")


def prompt_tokens(backend: str, model: str, requests: list[Any]) -> tuple[list[int], str]:
    """Prompt tokens of each request as the judge engine counts them (alpagasus/judges/tokens)."""
    counter = TokenCounter(str(backend), model)
    return [counter.count(m) for m in requests], counter.method


def request_keys(identity: dict[str, Any], requests: list[Any]) -> list[str]:
    return [request_key(identity, m) for m in requests]


def cached_replies(cache_path: str | Path, keys: list[str],
                   price: Callable[[int, int, bool], float] | None = None,
                   ) -> tuple[dict[str, float], str]:
    """{key: what its reply cost} for the keys the judge cache holds, read-only, and a note.
    A missing file holds nothing (and is not created). A row with no recorded cost (older
    rows) is priced as the engine's budget prices it: ``price(input, output, batch)`` for
    online and batch replies, nothing for imported ones."""
    path = Path(cache_path).expanduser()
    if not path.is_file():
        return {}, "no judge cache yet"
    found: dict[str, float] = {}
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        try:
            for start in range(0, len(keys), _SQL_CHUNK):
                chunk = keys[start:start + _SQL_CHUNK]
                rows = con.execute(
                    f"SELECT key, cost_usd, source, input_tokens, output_tokens FROM replies "
                    f"WHERE key IN ({','.join('?' * len(chunk))})", chunk).fetchall()
                found.update({k: float(c) if c is not None else
                              price(i, o, src == "batch") if price and src in ("online", "batch")
                              else 0.0 for k, c, src, i, o in rows})
        finally:
            con.close()
    except sqlite3.Error as e:  # unreadable: count nothing as cached (never under-count)
        return {}, f"judge cache {path} unreadable ({e}): nothing counted as cached"
    return found, f"judge cache {path}"
