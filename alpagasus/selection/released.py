"""`released`: the items of a released filtered file (`filter.path=...`: the authors' 9k,
Claude's 5k), matched to the data by content, so a published selection is reused without
rating anything. With `size`, that many of the matched items are drawn (seeded).

Matching is on (instruction, input, output) with whitespace runs collapsed and ends
stripped: released files are often re-serialised with trimmed text. Released items not found
in the data are counted (``unmatched``) and listed in the log, never silently dropped.
"""

from __future__ import annotations

import logging
import random
from functools import lru_cache
from pathlib import Path
from typing import Any

from alpagasus.config import ConfigError
from alpagasus.data import DataError, fingerprint, load_items_file
from alpagasus.selection import SelectionError, Strategy, register_strategy

log = logging.getLogger(__name__)


def content_key(instruction: str, input: str, output: str) -> tuple[str, str, str]:
    return (" ".join(instruction.split()), " ".join(input.split()), " ".join(output.split()))


@lru_cache(maxsize=8)
def _load(path: str, mtime_ns: int, size: int):
    items = load_items_file(Path(path))
    return tuple(items), fingerprint([it.to_dict() for it in items])[:16]


def load_released(path: str | Path):
    """(items, content fingerprint) of a released file, validated (errors name file+index)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise DataError(f"{p}: released file not found")
    stat = p.stat()
    return _load(str(p.resolve()), stat.st_mtime_ns, stat.st_size)


def membership(items, released) -> tuple[list[bool], int, int]:
    """(whether each data item is in the released set, distinct released items, how many of
    those are not in the data)."""
    wanted = {content_key(r.instruction, r.input, r.output) for r in released}
    keys = [content_key(it.instruction, it.input, it.output) for it in items]
    found = set(keys) & wanted
    return [k in wanted for k in keys], len(wanted), len(wanted - found)


@register_strategy
class ReleasedSelection(Strategy):
    name = "released"
    uses_seed = True

    def check(self, spec, size, prefix):
        super().check(spec, size, prefix)
        if not spec.path:
            raise ConfigError(f"{prefix}method=released needs the released file: "
                              f"{prefix}path=/path/to/filtered.json")

    def check_data(self, arm, n_items):
        super().check_data(arm, n_items)
        load_released(arm.path)  # a missing or malformed file fails before anything runs

    def key(self, arm) -> dict[str, Any]:
        _, fp = load_released(arm.path)
        return {"released": fp, "seed": arm.seed}

    def _matched(self, arm, items) -> tuple[list[int], int, int]:
        released, _ = load_released(arm.path)
        member, n_released, unmatched = membership(items, released)
        return [i for i, m in enumerate(member) if m], n_released, unmatched

    def choose(self, arm, items, scores, size):
        matched, n_released, unmatched = self._matched(arm, items)
        if not matched:
            raise SelectionError(f"{arm.path}: none of its {n_released} items is in the data "
                                 f"({len(items)} items); is it a selection from this data?")
        if size is None:
            return matched
        if size > len(matched):
            raise SelectionError(f"size={size} but only {len(matched)} items of {arm.path} "
                                 f"are in the data ({unmatched} unmatched)")
        return sorted(random.Random(arm.seed).sample(matched, size))

    def counts(self, arm, items, scores):
        matched, n_released, unmatched = self._matched(arm, items)
        if unmatched:
            log.warning("[select] %s: %d of its %d items are not in the data", arm.path,
                        unmatched, n_released)
        return {"released_items": n_released, "matched": len(matched), "unmatched": unmatched}
