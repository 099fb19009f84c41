"""Judge-reply parsing throughput: replies parsed per second, per reply class.

    PYTHONPATH=. python benchmarks/parsing_throughput.py [--repeat 20]

Parses the example tables of tests/test_parsing.py (the paper's formats, labels, prose,
stray numbers) and tests/test_parsing_shapes.py (parser v5's shapes: other names for the
answers, number words, other languages, several dimensions, revisions), each ``--repeat``
times, and prints replies/s and microseconds per reply. A rating run parses each reply
twice (cache write, artifact), so 52k Alpaca items need 104k parses. Not a test: timings
depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import time

from alpagasus.parsing import PARSER_VERSION, parse_pair, parse_rating
from tests.test_parsing import PAIR_TABLE, RATING_TABLE
from tests.test_parsing_shapes import PAIRS, RATINGS


def rate(fn, replies: list[str], repeat: int, **options) -> tuple[float, float]:
    start = time.perf_counter()
    for _ in range(repeat):
        for reply in replies:
            fn(reply, **options)
    seconds = time.perf_counter() - start
    n = repeat * len(replies)
    return n / seconds, seconds / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    rows = [
        ("rating, paper formats (test_parsing)", parse_rating, [r for r, _ in RATING_TABLE], {}),
        ("rating, v5 shapes, dimension=accuracy", parse_rating, [r for r, *_ in RATINGS],
         {"dimension": "accuracy"}),
        ("pair, paper formats (test_parsing)", parse_pair, [r for r, _ in PAIR_TABLE], {}),
        ("pair, v5 shapes", parse_pair, [r for r, _ in PAIRS], {}),
    ]
    print(f"parser v{PARSER_VERSION}, {args.repeat} passes per table")
    print(f"{'replies':40s} {'n':>5s} {'replies/s':>10s} {'us/reply':>9s}")
    for name, fn, replies, options in rows:
        per_s, us = rate(fn, replies, args.repeat, **options)
        print(f"{name:40s} {len(replies):5d} {per_s:10.0f} {us:9.1f}")


if __name__ == "__main__":
    main()
