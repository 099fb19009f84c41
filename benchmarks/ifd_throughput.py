"""IFD scoring throughput: length-sorted batches against one sequence per forward pass.

    python benchmarks/ifd_throughput.py                  # 64 random_9k items, embedded model
    python benchmarks/ifd_throughput.py --items 200 --dtype float32 bfloat16

Scores the same items (the first N of ../shared/data/alpaca/random_9k.json, else the demo
data) with the embedded SmolLM2-135M on CPU, in alpagasus's way (stages/ifd.py: every
item's two sequences, sorted by length, packed into batches of at most --batch-tokens padded
tokens) and one sequence at a time in file order (the reference code's loop), and prints a
markdown table: items/s, real (non-pad) tokens/s, padding share, and the largest difference
in IFD against the one-at-a-time scores. One warm-up batch is not timed. Set the thread count
with OMP_NUM_THREADS / --threads.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data" / "alpaca" / "random_9k.json"


def load_items(limit: int):
    from alpagasus.config import DataConfig
    from alpagasus.data import Item
    from alpagasus.data import load_items as load_demo

    if DATA.is_file():
        rows = json.loads(DATA.read_text())[:limit]
        return [Item(r["instruction"], r.get("input") or "", r["output"]) for r in rows], DATA.name
    return load_demo(DataConfig(name="demo", source="demo"))[:limit], "demo"


def measure(model, tok, items, batch_tokens: int, length_sorted: bool, max_length: int):
    from alpagasus.stages import ifd

    encoded = [ifd.encode(tok, it, max_length) for it in items]
    seqs = ifd.sequences(encoded)
    real = sum(len(s.ids) for s in seqs)
    padded = sum(max(len(seqs[i].ids) for i in b) * len(b)
                 for b in ifd.batches(seqs, batch_tokens, length_sorted))
    # warm-up: one small forward pass (allocator, kernels)
    ifd.mean_losses(model, seqs[:1], tok.pad_token_id or 0)
    rows = {}
    start = time.perf_counter()
    for done in ifd.score_items(model, tok, items, batch_tokens, max_length,
                                length_sorted=length_sorted):
        rows.update(done)
    seconds = time.perf_counter() - start
    return [rows[i]["score"] for i in range(len(items))], seconds, real, padded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=64)
    parser.add_argument("--batch-tokens", type=int, default=4096)
    parser.add_argument("--max-length", type=int, default=1024)
    parser.add_argument("--dtype", nargs="+", default=["bfloat16"])
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()

    import torch

    from alpagasus.models import resolve_model_path
    from alpagasus.stages.ifd import load_scorer

    if args.threads:
        torch.set_num_threads(args.threads)
    items, source = load_items(args.items)
    path = resolve_model_path("embedded:smollm2", os.environ.get("ALPAGASUS_CACHE",
                                                                 "~/.cache/alpagasus"))
    print(f"{len(items)} items of {source}, SmolLM2-135M on CPU, {torch.get_num_threads()} "
          f"threads, batches of <= {args.batch_tokens} padded tokens, max_length "
          f"{args.max_length}\n")
    print("| dtype | mode | items/s | real tokens/s | padding | seconds | max rel. IFD diff |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for dtype in args.dtype:
        model, tok = load_scorer(path, dtype, "cpu")
        single, s_sec, real, s_pad = measure(model, tok, items, 1, False, args.max_length)
        batched, b_sec, _, b_pad = measure(model, tok, items, args.batch_tokens, True,
                                           args.max_length)
        unsorted, u_sec, _, u_pad = measure(model, tok, items, args.batch_tokens, False,
                                            args.max_length)
        for mode, scores, sec, padded in (("one sequence at a time", single, s_sec, s_pad),
                                          ("batched, file order", unsorted, u_sec, u_pad),
                                          ("batched, length-sorted", batched, b_sec, b_pad)):
            diff = max((abs(a - b) / b for a, b in zip(scores, single, strict=True)
                        if a is not None and b), default=0.0)
            print(f"| {dtype} | {mode} | {len(items) / sec:.2f} | {real / sec:,.0f} | "
                  f"{1 - real / padded:.0%} | {sec:.1f} | {diff:.1e} |")


if __name__ == "__main__":
    main()
