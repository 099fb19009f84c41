"""Stage `rate`: the judge scores every (instruction, input, output) item from 0 to 5.

Output: ratings.jsonl, one line per item in data order:
{"index", "score", "status", "reply", "input_tokens", "output_tokens"}.
Replies are stored raw and parsed here with alpagasus.parsing; exact duplicates are sent once.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from alpagasus.artifacts import Artifact
from alpagasus.context import RunContext
from alpagasus.judges import judge_identity, make_judge
from alpagasus.parsing import parse_rating
from alpagasus.prompts import rating_messages, rating_prompt

RATINGS = "ratings.jsonl"


def run(ctx: RunContext) -> Artifact:
    return ctx.once("rate", lambda: _run(ctx))


def _run(ctx: RunContext) -> Artifact:
    cfg = ctx.cfg
    template = rating_prompt(cfg.filter.prompt)
    config = {"judge": judge_identity(cfg.judge), "prompt": template.name,
              "prompt_hash": template.hash}

    def build(workdir: Path) -> dict[str, Any]:
        unique: dict[str, int] = {}  # item text -> position among the requests
        order = []
        for item in ctx.items:
            text = json.dumps(item.to_dict(), sort_keys=True)
            order.append(unique.setdefault(text, len(unique)))
        first_items = {pos: item for item, pos in zip(ctx.items, order, strict=True)}
        requests = [rating_messages(template, first_items[p]) for p in range(len(unique))]
        judge = make_judge(cfg.judge, ctx.cache_dir)
        try:
            replies = judge.complete(requests, "rating", desc=f"rate ({cfg.judge.name})")
        finally:
            judge.close()
        rows = []
        for index, pos in enumerate(order):
            reply = replies[pos]
            parsed = parse_rating(reply.text) if reply.status == "ok" else None
            rows.append({
                "index": index,
                "score": parsed.score if parsed else None,
                "status": parsed.status if parsed else reply.status,
                "reply": reply.text,
                "error": reply.error,
                "input_tokens": reply.input_tokens,
                "output_tokens": reply.output_tokens,
            })
        with open(workdir / RATINGS, "w") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        return summarize(rows, n_requests=len(requests))

    artifact = ctx.store.ensure("rate", config, {"data": ctx.data_key}, build)
    return ctx.finish_stage(artifact)


def summarize(rows: list[dict[str, Any]], n_requests: int) -> dict[str, Any]:
    statuses = Counter(r["status"] for r in rows)
    histogram = Counter(str(r["score"]) for r in rows if r["score"] is not None)
    return {
        "items": len(rows),
        "requests": n_requests,
        "duplicates": len(rows) - n_requests,
        "rated": statuses.get("ok", 0),
        "unparsed": len(rows) - statuses.get("ok", 0),
        "statuses": dict(statuses),
        "histogram": dict(sorted(histogram.items(), key=lambda kv: float(kv[0]))),
        "input_tokens": sum(r["input_tokens"] for r in rows),
        "output_tokens": sum(r["output_tokens"] for r in rows),
    }


def read_ratings(artifact: Artifact) -> list[dict[str, Any]]:
    with open(artifact.path / RATINGS) as f:
        return [json.loads(line) for line in f]
