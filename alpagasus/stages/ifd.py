"""Stage `ifd`: per-item Instruction-Following Difficulty with a small causal LM.

IFD (Cherry LLM, Li et al. 2024; Superfiltering, Li et al. 2024) of an item (Q, A) is

    IFD = loss(A | Q) / loss(A)

the mean cross-entropy of the response tokens given the instruction (and input), over the
same without it. IFD >= 1 means the instruction does not help predict the response (a
misaligned pair); below 1, higher means harder to follow. `filter=ifd` keeps IFD < 1, the
highest first. The prompt is the reference code's bare "{instruction}\\n{input}\\n"; as
there, the response-alone loss starts at the response's second token (its first has no
context). Prompt and response are tokenized separately, so both losses cover the same tokens.

Output: scores.jsonl, one line per item in data order {"index", "score" (IFD), "status",
"loss_conditioned", "loss_response", "prompt_tokens", "response_tokens"}, and
histogram.png. The artifact key is the scorer (model, dtype, max_length, version) and the
data; each item's scores also go to a per-item SQLite cache (``ifd.cache``) as batches
finish, so an interrupted run resumes, and another data set or subset sharing items
(data.limit=200, then the whole file) scores only the new ones. Exact duplicates are
scored once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alpagasus.artifacts import Artifact, canonical_json
from alpagasus.context import RunContext
from alpagasus.data import Item
from alpagasus.models import default_device, inference_dtype, load_tokenizer, resolve_model_path
from alpagasus.sqlite_files import connect

log = logging.getLogger(__name__)

SCORES = "scores.jsonl"
HISTOGRAM = "histogram.png"
# Bump when the prompt format or the loss definition changes: it is part of every key.
IFD_VERSION = 1
PROMPT_INPUT = "{instruction}\n{input}\n"
PROMPT_NO_INPUT = "{instruction}\n"


def run(ctx: RunContext, model: str | None = None) -> Artifact:
    """IFD of every item with ``model`` (default ``ifd.model``)."""
    model = model or ctx.cfg.ifd.model
    return ctx.once(f"ifd/{model}", lambda: _run(ctx, model))


def scorer_identity(model: str, dtype: str, max_length: int) -> dict[str, Any]:
    return {"model": model, "dtype": dtype, "max_length": max_length, "version": IFD_VERSION}


def _run(ctx: RunContext, model_name: str) -> Artifact:
    cfg = ctx.cfg.ifd
    device = default_device()
    dtype = resolve_dtype(cfg.dtype, device)
    identity = scorer_identity(model_name, dtype, cfg.max_length)

    def build(workdir: Path) -> dict[str, Any]:
        items = ctx.items
        texts = [item_key(it) for it in items]
        cache = ScoreCache(Path(cfg.cache).expanduser())
        scorer = hashlib.sha256(canonical_json(identity).encode()).hexdigest()[:16]
        try:
            unique = list(dict.fromkeys(texts))
            found = cache.get_many(scorer, unique)
            todo = [t for t in unique if t not in found]
            by_text = dict(zip(texts, items, strict=True))
            started = time.time()
            if todo:
                log.info("[ifd] scoring %d items with %s (%d cached, %d duplicates)",
                         len(todo), model_name, len(found), len(items) - len(unique))
                path = resolve_model_path(model_name, ctx.cache_dir)
                lm, tok = load_scorer(path, dtype, device)
                for done in score_items(lm, tok, [by_text[t] for t in todo], cfg.batch_tokens,
                                        cfg.max_length, progress=cfg.progress):
                    cache.put_many(scorer, {todo[i]: row for i, row in done.items()})
                    found.update({todo[i]: row for i, row in done.items()})
            seconds = time.time() - started
        finally:
            cache.close()
        rows = [{"index": i, **found[t]} for i, t in enumerate(texts)]
        with open(workdir / SCORES, "w") as f:
            for row in rows:
                f.write(json.dumps(row) + "\n")
        counts = summarize(rows)
        counts.update({"unique": len(unique), "scored_this_run": len(todo),
                       "seconds": round(seconds, 2),
                       "items_per_s": round(len(todo) / seconds, 3) if todo and seconds else None})
        plot_histogram([r["score"] for r in rows], f"IFD ({model_name}, {dtype})",
                       workdir / HISTOGRAM)
        return counts

    artifact = ctx.store.ensure("ifd", identity, {"data": ctx.data_key}, build)
    counts = artifact.counts
    log.info("[ifd] %s items: %s scored, %s with IFD < 1, median %s", counts.get("items"),
             counts.get("scored"), counts.get("below_1"), counts.get("median"))
    if (artifact.path / HISTOGRAM).is_file():
        ctx.tracker.log_image(f"ifd/{_safe(model_name)}/histogram", artifact.path / HISTOGRAM)
    return ctx.finish_stage(artifact, name=f"ifd/{_safe(model_name)}")


def _safe(name: str) -> str:
    return name.replace(":", "_").replace("/", "_")


def read_scores(artifact: Artifact) -> list[dict[str, Any]]:
    with open(artifact.path / SCORES) as f:
        return [json.loads(line) for line in f]


def item_key(item: Item) -> str:
    return json.dumps([item.instruction, item.input, item.output], ensure_ascii=False)


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    import statistics
    from collections import Counter

    scores = [r["score"] for r in rows if r["score"] is not None]
    return {
        "items": len(rows),
        "scored": len(scores),
        "statuses": dict(Counter(r["status"] for r in rows)),
        "below_1": sum(1 for s in scores if s < 1),
        "mean": round(statistics.fmean(scores), 4) if scores else None,
        "median": round(statistics.median(scores), 4) if scores else None,
    }


# --- scoring (model in, numbers out) -------------------------------------------------------


def resolve_dtype(name: str, device: str) -> str:
    """"auto": the inference dtype of alpagasus.models (bf16 on CPU and recent GPUs)."""
    if name != "auto":
        return name
    return str(inference_dtype(device)).removeprefix("torch.")


def load_scorer(path: str, dtype: str, device: str):
    import torch
    from transformers import AutoModelForCausalLM

    tok = load_tokenizer(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype))
    return model.to(device).eval(), tok


@dataclass(frozen=True)
class Encoded:
    prompt: list[int]
    response: list[int]
    status: str  # ok | empty (no response tokens) | too_long (the prompt fills max_length)


def encode(tok, item: Item, max_length: int) -> Encoded:
    template = PROMPT_INPUT if item.input else PROMPT_NO_INPUT
    prompt = tok(template.format(instruction=item.instruction, input=item.input),
                 add_special_tokens=False)["input_ids"]
    response = tok(item.output, add_special_tokens=False)["input_ids"]
    if len(response) < 2:  # the response-alone loss needs a second token
        return Encoded(prompt, response, "empty")
    if len(prompt) + 2 > max_length:
        return Encoded(prompt, [], "too_long")
    return Encoded(prompt, response[: max_length - len(prompt)], "ok")


@dataclass(frozen=True)
class LossSpan:
    item: int
    conditioned: bool
    ids: list[int]
    first_label: int  # positions >= this are scored (predicted from the one before)


def sequences(encoded: Sequence[Encoded]) -> list[LossSpan]:
    """Two per scorable item: prompt + response (response tokens scored), response alone
    (from its second token)."""
    out = []
    for i, e in enumerate(encoded):
        if e.status == "ok":
            out.append(LossSpan(i, True, e.prompt + e.response, len(e.prompt)))
            out.append(LossSpan(i, False, e.response, 1))
    return out


def batches(seqs: list[LossSpan], batch_tokens: int, length_sorted: bool) -> Iterator[list[int]]:
    """Positions into ``seqs``, as many per batch as fit in ``batch_tokens`` padded tokens
    (at least one). Sorted: longest first, so the largest batch comes first (a batch that
    does not fit in memory fails at once) and padding stays small."""
    order = list(range(len(seqs)))
    if length_sorted:
        order.sort(key=lambda i: (-len(seqs[i].ids), i))
    batch: list[int] = []
    width = 0
    for i in order:
        new_width = max(width, len(seqs[i].ids))
        if batch and new_width * (len(batch) + 1) > batch_tokens:
            yield batch
            batch, new_width = [], len(seqs[i].ids)
        batch.append(i)
        width = new_width
    if batch:
        yield batch


def mean_losses(model, seqs: list[LossSpan], pad_id: int) -> list[float]:
    """Mean next-token cross-entropy over each sequence's scored positions (one forward pass,
    right-padded; padding is masked and never attended to by the real tokens)."""
    import torch

    device = next(model.parameters()).device
    width = max(len(s.ids) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, s in enumerate(seqs):
        ids[row, : len(s.ids)] = torch.tensor(s.ids)
        mask[row, : len(s.ids)] = 1
    with torch.inference_mode():
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
        losses = []
        for row, s in enumerate(seqs):
            # logits at position p predict token p + 1; fp32 for the softmax over the vocab
            pred = logits[row, s.first_label - 1: len(s.ids) - 1].float()
            target = ids[row, s.first_label: len(s.ids)].to(device)
            losses.append(torch.nn.functional.cross_entropy(pred, target).item())
    return losses


def ifd_row(e: Encoded, conditioned: float | None, alone: float | None) -> dict[str, Any]:
    row: dict[str, Any] = {"score": None, "status": e.status, "loss_conditioned": conditioned,
                           "loss_response": alone, "prompt_tokens": len(e.prompt),
                           "response_tokens": len(e.response)}
    if e.status == "ok":
        if not alone or not math.isfinite(alone) or not math.isfinite(conditioned):
            row["status"] = "degenerate"  # a response the model predicts perfectly alone
        else:
            row["score"] = conditioned / alone
    return row


def score_items(model, tok, items: Sequence[Item], batch_tokens: int, max_length: int,
                length_sorted: bool = True, progress: bool = False,
                ) -> Iterator[dict[int, dict[str, Any]]]:
    """Yield {position in items: row} as items complete (an item is complete once both of
    its sequences are scored), so the caller can store them as they come."""
    encoded = [encode(tok, it, max_length) for it in items]
    seqs = sequences(encoded)
    pending = {i: 2 for i, e in enumerate(encoded) if e.status == "ok"}
    losses: dict[tuple[int, bool], float] = {}
    done = {i: ifd_row(e, None, None) for i, e in enumerate(encoded) if e.status != "ok"}
    if done:
        yield done
    bar = _progress(len(seqs), progress)
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    for batch in batches(seqs, batch_tokens, length_sorted):
        chunk = [seqs[p] for p in batch]
        finished = {}
        for s, loss in zip(chunk, mean_losses(model, chunk, pad), strict=True):
            losses[(s.item, s.conditioned)] = loss
            pending[s.item] -= 1
            if not pending[s.item]:
                finished[s.item] = ifd_row(encoded[s.item], losses.pop((s.item, True)),
                                           losses.pop((s.item, False)))
        bar(len(chunk))
        if finished:
            yield finished


def _progress(total: int, enabled: bool) -> Callable[[int], None]:
    if not enabled:
        return lambda n: None
    from tqdm import tqdm

    bar = tqdm(total=total, desc="ifd", unit="seq", mininterval=5)
    return bar.update


# --- per-item cache ------------------------------------------------------------------------


class ScoreCache:
    """Rows per (scorer, item) in SQLite: shared by runs and sweep jobs (WAL, busy timeout)."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db, _ = connect(path, "wal", 120)  # sweep jobs create it at the same instant
        self.db.execute("CREATE TABLE IF NOT EXISTS scores (scorer TEXT, item TEXT, row TEXT, "
                        "PRIMARY KEY (scorer, item))")

    @staticmethod
    def _hash(text: str) -> str:
        return hashlib.sha256(text.encode()).hexdigest()

    def get_many(self, scorer: str, texts: list[str]) -> dict[str, dict[str, Any]]:
        by_hash = {self._hash(t): t for t in texts}
        found = {}
        hashes = list(by_hash)
        for start in range(0, len(hashes), 500):
            part = hashes[start:start + 500]
            query = (f"SELECT item, row FROM scores WHERE scorer = ? AND item IN "
                     f"({','.join('?' * len(part))})")
            for h, row in self.db.execute(query, [scorer, *part]):
                found[by_hash[h]] = json.loads(row)
        return found

    def put_many(self, scorer: str, rows: dict[str, dict[str, Any]]) -> None:
        with self.db:
            self.db.executemany("INSERT OR REPLACE INTO scores VALUES (?, ?, ?)",
                                [(scorer, self._hash(t), json.dumps(r)) for t, r in rows.items()])

    def close(self) -> None:
        self.db.close()


def plot_histogram(scores: list[float | None], title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values = [s for s in scores if s is not None]
    fig, ax = plt.subplots(figsize=(7, 3.6))
    if values:
        ax.hist(values, bins=40, color="#4c72b0")
    ax.axvline(1.0, color="#c8553d", linestyle="--", linewidth=1, label="IFD = 1")
    ax.set_xlabel("IFD = loss(response | instruction) / loss(response)")
    ax.set_ylabel("items")
    below = sum(1 for v in values if v < 1)
    ax.set_title(f"{title}\n{len(scores)} items, {len(values)} scored, {below} below 1",
                 fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
