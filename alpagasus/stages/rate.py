"""Stage `rate`: the judge scores every (instruction, input, output) item from 0 to 5.

Output (the artifact is created only when every item has a reply; until then the judge
reply cache, ``paths.judge_cache``, holds what was received, so rerunning resumes):

* ratings.jsonl: one line per item in data order {"index", "score", "expected_score",
  "expected_mass", "status", "reply", "error", "input_tokens", "output_tokens", "source",
  "cached"} (expected_*: None unless the judge gives probabilities, judge.score_mode=
  expected; docs/expected-scores.md);
* unparsed.jsonl: the items whose reply held no valid score (never turned into a score);
* skipped.jsonl: the items not sent because the prompt does not fit the judge's context;
* histogram.png: the score distribution (the paper's Figure 2 style) and, beside it, the
  expected scores' when there are any; also logged to W&B.

Replies are stored raw and parsed on read (alpagasus.parsing); exact duplicates are sent
once. ``rate.reparse=true`` re-scores the stored replies without any API call; the parser
version is part of the artifact key, so a parser change gives a new artifact.
``rate.import_path=FILE`` first loads released ratings (gpt4life/alpagasus format) into the
cache under the configured judge, so those items are not sent.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from pathlib import Path
from typing import Any

from alpagasus.arms import Arm
from alpagasus.artifacts import Artifact
from alpagasus.config import JudgeConfig
from alpagasus.context import RunContext
from alpagasus.data import DataError, Item, read_records, validate_item
from alpagasus.errors import AlpagasusError
from alpagasus.expected import EXPECTED_VERSION, RATING_SCALE
from alpagasus.expected_summary import expected_counts, plot_both
from alpagasus.judges import judge_identity, make_judge, reads_expected
from alpagasus.judges.cache import ReplyCache, judge_key, request_key
from alpagasus.judges.engine import parse_for_cache
from alpagasus.judges.options import make_engine_options
from alpagasus.parsing import PARSER_VERSION, parse_rating
from alpagasus.prompts import ChatTemplate, rating_messages, rating_prompt
from alpagasus.selection import SelectionError

log = logging.getLogger(__name__)

RATINGS = "ratings.jsonl"
HISTOGRAM = "histogram.png"
BUCKETS = [x / 2 for x in range(11)]  # 0, 0.5, ..., 5


class RatingError(AlpagasusError, RuntimeError):
    """The judge replied, but no item got a score: nothing worth an artifact."""

    hint = "check judge.model and the prompt, or fix the parser and use rate.reparse=true"


def run(ctx: RunContext, arm: Arm | None = None) -> Artifact:
    """Rate every item with ``arm``'s judge and prompt (default: arm A's, the filter's)."""
    arm = arm or ctx.arms["a"]
    if arm.judge is None:
        raise SelectionError(f"arm {arm.role} ({arm.filter_name}) does not rate: "
                             f"method {arm.method}")
    return ctx.once(f"rate/{arm.judge.name}/{arm.prompt}", lambda: _run(ctx, arm))


def _run(ctx: RunContext, arm: Arm) -> Artifact:
    cfg = ctx.cfg
    judge_cfg = arm.judge
    template = rating_prompt(arm.prompt)
    config = rate_config(judge_cfg, template)
    if cfg.rate.import_path:
        import_ratings(Path(cfg.rate.import_path).expanduser(), template, judge_cfg,
                       cfg.paths.judge_cache, cfg.paths.judge_cache_journal)

    def build(workdir: Path) -> dict[str, Any]:
        unique: dict[str, int] = {}  # item text -> position among the requests
        order = []
        for item in ctx.items:
            text = json.dumps(item.to_dict(), sort_keys=True)
            order.append(unique.setdefault(text, len(unique)))
        first_items = {pos: item for item, pos in zip(ctx.items, order, strict=True)}
        requests = [rating_messages(template, first_items[p]) for p in range(len(unique))]
        judge = make_judge(judge_cfg, ctx.cache_dir, cfg.paths.judge_cache,
                           make_engine_options(cfg.rate, cfg.paths.judge_cache_journal))
        try:
            replies = judge.complete(requests, "rating", desc=f"rate ({judge_cfg.name})")
            usage = getattr(judge, "usage", None)
        finally:
            judge.close()
        rows = []
        for index, pos in enumerate(order):
            reply = replies[pos]
            parsed = parse_rating(reply.text, dimension=template.criterion,
                                  revision=str(judge_cfg.revision_policy)) \
                if reply.status == "ok" else None
            expected = reply.expected_scores(
                [parsed.score] if parsed and parsed.score is not None else None, RATING_SCALE)
            rows.append({
                "index": index,
                "score": parsed.score if parsed else None,
                "expected_score": expected[0].value if expected else None,
                "expected_mass": round(expected[0].mass, 4) if expected else None,
                "status": parsed.status if parsed else reply.status,
                "reply": reply.text,
                "error": reply.error,
                "input_tokens": reply.input_tokens,
                "output_tokens": reply.output_tokens,
                "source": reply.source,
                "cached": reply.cached,
            })
        check_some_scored(rows, judge_cfg, cfg.paths.judge_cache)
        _write_jsonl(workdir / RATINGS, rows)
        _write_jsonl(workdir / "unparsed.jsonl", [
            {**r, **ctx.items[r["index"]].to_dict()} for r in rows
            if r["score"] is None and r["status"] != "too_long"])
        _write_jsonl(workdir / "skipped.jsonl", [
            {"index": r["index"], "reason": r["error"], **ctx.items[r["index"]].to_dict()}
            for r in rows if r["status"] == "too_long"])
        tokens = (sum(r.input_tokens for r in replies if r.status == "ok"),
                  sum(r.output_tokens for r in replies))
        counts = summarize(rows, n_requests=len(requests), judge_cfg=judge_cfg, tokens=tokens)
        if usage is not None:
            counts.update({"sent_this_run": usage.requests, "retries_this_run": usage.retries,
                           "cost_usd_this_run": round(usage.cost_usd, 6)})
        counts.update(expected_counts(rows))
        plot_both(counts["histogram"], rows, counts, f"{judge_cfg.name} ({judge_cfg.model}), "
                  f"prompt {template.name}", workdir / HISTOGRAM)
        return counts

    artifact = ctx.store.ensure("rate", config, {"data": ctx.data_key}, build)
    counts = artifact.counts
    threshold = arm.threshold if arm.threshold is not None else cfg.threshold
    kept = sum(n for s, n in counts.get("histogram", {}).items() if float(s) >= threshold)
    log.info("[rate] %d items: %d rated, %d unparsed, %d too long; %d kept at threshold %s; "
             "%s+%s tokens, $%s", counts.get("items"), counts.get("rated"),
             counts.get("unparsed"), counts.get("too_long", 0), kept, threshold,
             counts.get("input_tokens"), counts.get("output_tokens"), counts.get("cost_usd"))
    if "expected_scored" in counts:
        log.info("[rate] expected scores: %d items, mean %s (sd %s), %d distinct values vs %d "
                 "parsed; score-token mass %s", counts["expected_scored"],
                 counts["expected_mean"], counts["expected_sd"], counts["distinct_expected"],
                 counts["distinct_scores"], counts["expected_mass_mean"])
    if (artifact.path / HISTOGRAM).is_file():
        ctx.tracker.log_image(f"rate/{judge_cfg.name}/histogram", artifact.path / HISTOGRAM)
    per_score = {f"score_{k}": v for k, v in counts.get("histogram", {}).items()}
    return ctx.finish_stage(artifact, {**counts, **per_score, "kept_at_threshold": kept},
                            name=f"rate/{judge_cfg.name}")


def judge_prompt_identity(judge_cfg: JudgeConfig, template: ChatTemplate) -> dict[str, Any]:
    """What a rating's rows depend on: the judge, the prompt and how replies are parsed
    (stage=noise's repeats carry it too)."""
    return {"judge": judge_identity(judge_cfg), "prompt": template.name,
            "prompt_hash": template.hash, "parser_version": PARSER_VERSION,
            "revision_policy": str(judge_cfg.revision_policy)}


def rate_config(judge_cfg: JudgeConfig, template: ChatTemplate) -> dict[str, Any]:
    """The rate artifact's config (its key is this plus the data key): stage=noise finds an
    existing rating with it."""
    config = judge_prompt_identity(judge_cfg, template)
    if reads_expected(judge_cfg):
        config["expected_version"] = EXPECTED_VERSION
    return config


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    with open(path, "w") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def check_some_scored(rows: list[dict[str, Any]], judge_cfg: JudgeConfig,
                      cache_path: str | Path) -> None:
    """Raise RatingError when not one item got a score (every reply unparsed or too long)."""
    if not rows or any(r["score"] is not None for r in rows):
        return
    statuses = Counter(r["status"] for r in rows)
    too_long = statuses.pop("too_long", 0)
    examples = "; ".join(f"item {r['index']}: {r['reply'][:80]!r}" for r in rows
                         if r["status"] != "too_long")
    hint = []
    if sum(statuses.values()):
        hint.append(f"{sum(statuses.values())} replies hold no valid score "
                    f"({', '.join(f'{n} {s}' for s, n in statuses.items())}; e.g. "
                    f"{examples[:300]}): check judge.model and the prompt, or fix the parser and "
                    "rerun with rate.reparse=true")
    if too_long:
        hint.append(f"{too_long} prompts do not fit judge.context_tokens="
                    f"{judge_cfg.context_tokens} with max_tokens={judge_cfg.max_tokens}")
    raise RatingError(f"no item got a score from judge {judge_cfg.name} ({judge_cfg.model}): "
                      f"{len(rows)} items, {'; '.join(hint)}. No rate artifact was written; "
                      f"the replies are kept in {cache_path}.")


def summarize(rows: list[dict[str, Any]], n_requests: int, judge_cfg: JudgeConfig | None = None,
              tokens: tuple[int, int] | None = None) -> dict[str, Any]:
    """Counts for the manifest. ``tokens``: (input, output) over the requests (duplicates are
    sent once, so this is what the ratings cost); defaults to the sum over rows."""
    statuses = Counter(r["status"] for r in rows)
    histogram = Counter(str(float(r["score"])) for r in rows if r["score"] is not None)
    scores = [r["score"] for r in rows if r["score"] is not None]
    if tokens is None:
        tokens = (sum(r["input_tokens"] for r in rows), sum(r["output_tokens"] for r in rows))
    tin, tout = tokens
    counts: dict[str, Any] = {
        "items": len(rows),
        "requests": n_requests,
        "duplicates": len(rows) - n_requests,
        "rated": statuses.get("ok", 0),
        "unparsed": sum(n for s, n in statuses.items() if s not in ("ok", "too_long")),
        "too_long": statuses.get("too_long", 0),
        "statuses": dict(statuses),
        "histogram": dict(sorted(histogram.items(), key=lambda kv: float(kv[0]))),
        # Items kept at each threshold, so any sweep threshold can be read off one rating.
        "kept_at": {str(t): sum(1 for s in scores if s >= t) for t in BUCKETS},
        "cached_items": sum(1 for r in rows if r.get("cached")),
        "input_tokens": tin,
        "output_tokens": tout,
    }
    if judge_cfg is not None:
        counts["cost_usd"] = round((tin * judge_cfg.price_input_per_mtok
                                    + tout * judge_cfg.price_output_per_mtok) / 1e6, 6)
    return counts


def read_ratings(artifact: Artifact) -> list[dict[str, Any]]:
    with open(artifact.path / RATINGS) as f:
        return [json.loads(line) for line in f]


# --- importing released ratings ----------------------------------------------------------------

_TRIPLET = re.compile(
    r"^###Instruction:\n(?P<instruction>.*?)\n\n### Input:\n(?P<input>.*?)\n\n### Response:\n"
    r"(?P<output>.*)\n\n$", re.DOTALL)


def parse_import_record(rec: Any, where: str) -> tuple[Item, str]:
    """(item, reply text) from one released rating record; errors name file/index/field."""
    if not isinstance(rec, dict):
        raise DataError(f"{where}: expected an object, got {type(rec).__name__}")
    if "triplet" in rec:
        triplet = rec["triplet"]
        if not isinstance(triplet, str):
            raise DataError(f"{where}: field 'triplet' must be a string")
        m = _TRIPLET.match(triplet)
        if not m:
            raise DataError(f"{where}: field 'triplet' is not '###Instruction:\\n...\\n\\n"
                            "### Input:\\n...\\n\\n### Response:\\n...\\n\\n'")
        item = Item(m["instruction"], m["input"], m["output"])
    else:
        item = validate_item(rec, where)
    review = rec.get("review")
    if review is None and "score" in rec:
        review = str(rec["score"])
    if not isinstance(review, str):
        raise DataError(f"{where}: missing field 'review' (the judge's reply) or 'score'")
    return item, review


def read_import_file(path: Path) -> list[tuple[Item, str]]:
    """Every record of a released rating file, validated (main.run calls it up front)."""
    return [parse_import_record(rec, f"{path}: {loc}") for loc, rec in read_records(path)]


def import_ratings(path: Path, template: ChatTemplate, judge_cfg: JudgeConfig,
                   cache_path: str | Path, journal: Any = "wal") -> dict[str, int]:
    """Load released ratings into the reply cache as replies of ``judge_cfg``.

    Each record becomes the stored reply to exactly the request this framework would send
    for that item (same judge identity, same rendered prompt), so those items are not sent.
    Already-stored keys are left as they are. All records are validated before any is stored.
    """
    if judge_cfg.backend == "local":
        raise DataError("rate.import_path needs an API judge (e.g. judge=chatgpt_paper for "
                        "the paper's gpt-3.5-turbo-0301 ratings), not judge=local")
    records = read_import_file(path)
    identity = judge_identity(judge_cfg)
    jkey = judge_key(identity)
    cache = ReplyCache(cache_path, journal=journal)
    added = 0
    try:
        for item, review in records:
            key = request_key(identity, rating_messages(template, item))
            status, score = parse_for_cache("rating", review)
            added += cache.put(key, jkey, judge_cfg.model, review, status=status, score=score,
                               parser_version=PARSER_VERSION, source="import")
    finally:
        cache.close()
    log.info("[rate] imported %d ratings from %s as judge %s (%d new, %d already cached)",
             len(records), path, judge_cfg.name, added, len(records) - added)
    return {"records": len(records), "added": added}
