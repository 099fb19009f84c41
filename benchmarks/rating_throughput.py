"""Rating throughput: our engine vs a reference-style client, against llm-katan's echo server.

    PYTHONPATH=. python benchmarks/rating_throughput.py [--items 2000] [--latency-ms 200]

Starts ``llm-katan --backend echo --latency-ms 200 --max-concurrent 512 --disable-dashboard``
on a free port, then rates N Alpaca items (the shared random_9k sample if present, else the
demo items repeated) with the paper's prompt:

* ``engine``: alpagasus.judges.engine.ApiJudge (limiters off, fresh SQLite cache per run:
  token counting, cache lookups, claims and writes, parsing all included) at several
  concurrencies;
* ``bare SDK``: ``chat.completions.create`` with only a semaphore (no cache, no parsing, no
  token counting);
* ``bare client.post``: the engine's own SDK call (``client.post`` with a plain body, which
  skips the typed-params transform) with only a semaphore: engine CPU minus this is what the
  limiters, the cache, token counting and parsing cost;
* ``reference``: the gpt4life/alpagasus rating script's pattern: 5 requests gathered per
  batch, the whole batch retried on any error, results kept in memory.

Prints req/s, the ideal C / latency, our/ideal, our/reference and the client CPU ms per
request (time.process_time of this process; the server runs in another process), then the
CPU cost of the reply cache's two per-request statements alone (claim, put). Not a test:
timings depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from alpagasus.config import JudgeConfig  # noqa: E402
from alpagasus.data import load_items_file  # noqa: E402
from alpagasus.judges.cache import ReplyCache, new_owner, request_key  # noqa: E402
from alpagasus.judges.engine import ApiJudge, EngineOptions  # noqa: E402
from alpagasus.prompts import rating_messages, rating_prompt  # noqa: E402
from tests.servers import SHARED_ALPACA, katan  # noqa: E402

MODEL = "katan-echo"


def load_requests(n: int) -> list[list[dict[str, str]]]:
    if SHARED_ALPACA.is_file():
        items = load_items_file(SHARED_ALPACA)
    else:
        items = load_items_file(REPO / "alpagasus" / "resources" / "demo_train.json")
    template = rating_prompt("accuracy")
    reqs = []
    for i in range(n):  # a distinct suffix, so every request is a distinct cache key
        m = rating_messages(template, items[i % len(items)])
        m[-1]["content"] += f"(#{i})"
        reqs.append(m)
    return reqs


def run_engine(url: str, reqs, concurrency: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = JudgeConfig(name="bench", backend="openai", model=MODEL, base_url=url,
                          api_key_env=None, concurrency=concurrency, max_tokens=256,
                          context_tokens=8192)
        judge = ApiJudge(cfg, Path(tmp) / "cache.sqlite", EngineOptions(progress=False))
        c0, t0 = time.process_time(), time.perf_counter()
        replies = judge.complete(reqs, "rating")
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        judge.close()
        assert len(replies) == len(reqs) and judge.usage.requests == len(reqs)
    return wall, cpu


def _client(url: str, concurrency: int):
    import httpx2
    import openai

    limits = httpx2.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    return openai.AsyncOpenAI(base_url=url, api_key="x", max_retries=0,
                              http_client=httpx2.AsyncClient(limits=limits, timeout=120))


def run_bare(url: str, reqs, concurrency: int, raw: bool = False) -> tuple[float, float]:
    """The SDK call alone: chat.completions.create, or (raw) the engine's own call,
    client.post with a plain body, so that the difference to the engine is the engine."""

    async def main() -> None:
        client = _client(url, concurrency)
        sem = asyncio.Semaphore(concurrency)

        async def one(m):
            async with sem:
                if raw:
                    r = await client.post("/chat/completions", cast_to=object, body={
                        "model": MODEL, "messages": m, "temperature": 0, "max_tokens": 256})
                    return r["choices"][0]["message"]["content"]
                r = await client.chat.completions.create(model=MODEL, messages=m,
                                                         temperature=0, max_tokens=256)
                return r.choices[0].message.content

        out = await asyncio.gather(*(one(m) for m in reqs))
        assert len(out) == len(reqs)
        await client.close()

    c0, t0 = time.process_time(), time.perf_counter()
    asyncio.run(main())
    return time.perf_counter() - t0, time.process_time() - c0


def run_reference(url: str, reqs, batch: int = 5) -> tuple[float, float]:
    """gpt4life/alpagasus rating: gather 5, retry the whole batch on any error, keep all."""

    async def main() -> None:
        client = _client(url, batch)
        results = []
        for start in range(0, len(reqs), batch):
            chunk = reqs[start:start + batch]
            while True:
                try:
                    out = await asyncio.gather(*(client.chat.completions.create(
                        model=MODEL, messages=m, temperature=0, max_tokens=256) for m in chunk))
                    break
                except Exception:
                    await asyncio.sleep(1)
            results += [r.choices[0].message.content for r in out]
        assert len(results) == len(reqs)
        await client.close()

    c0, t0 = time.process_time(), time.perf_counter()
    asyncio.run(main())
    return time.perf_counter() - t0, time.process_time() - c0


def cache_ops_us(n: int = 5000) -> tuple[float, float]:
    """CPU microseconds per claim and per put on a fresh cache (what each request adds)."""
    keys = [request_key({"bench": 1}, [{"role": "user", "content": str(i)}]) for i in range(n)]
    with tempfile.TemporaryDirectory() as tmp:
        cache, owner = ReplyCache(Path(tmp) / "cache.sqlite"), new_owner()
        c0 = time.process_time()
        for k in keys:
            cache.claim(k, owner, 60)
        claim = time.process_time() - c0
        c0 = time.process_time()
        for k in keys:
            cache.put(k, "j", MODEL, "4.5\nThe response is accurate." * 4, status="ok", score=4.5,
                      parser_version=3, input_tokens=300, output_tokens=20, cost_usd=1e-4,
                      run=owner)
        put = time.process_time() - c0
        cache.close()
    return 1e6 * claim / n, 1e6 * put / n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=2000)
    ap.add_argument("--reference-items", type=int, default=2000)
    ap.add_argument("--latency-ms", type=int, default=200)
    ap.add_argument("--concurrency", default="8,32,64,128")
    ap.add_argument("--json", help="also write the rows here")
    args = ap.parse_args()
    reqs = load_requests(args.items)
    lat = args.latency_ms / 1000
    rows = []
    with tempfile.TemporaryDirectory() as tmp, katan(
            Path(tmp), "--latency-ms", str(args.latency_ms), model=MODEL) as server:
        url = server.url + "/v1"
        run_bare(url, reqs[:50], 8)  # warm-up: connections, imports
        wall, cpu = run_reference(url, reqs[:args.reference_items])
        ref_rps = args.reference_items / wall
        rows.append(("reference (5/batch)", 5, ref_rps, 5 / lat, cpu, args.reference_items))
        for c in [int(x) for x in args.concurrency.split(",")]:
            wall, cpu = run_engine(url, reqs, c)
            rows.append(("engine", c, len(reqs) / wall, c / lat, cpu, len(reqs)))
            wall, cpu = run_bare(url, reqs, c)
            rows.append(("bare SDK", c, len(reqs) / wall, c / lat, cpu, len(reqs)))
            wall, cpu = run_bare(url, reqs, c, raw=True)
            rows.append(("bare client.post", c, len(reqs) / wall, c / lat, cpu, len(reqs)))
    print(f"\n{args.items} items, server latency {args.latency_ms} ms, "
          f"{os.cpu_count()} CPU cores (client and server share them)\n")
    print("| client | C | req/s | ideal C/latency | /ideal | /bare SDK | /reference "
          "| client CPU ms/req |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    bare_cpu = {r[1]: r[4] / r[5] for r in rows if r[0] == "bare SDK"}
    bare_rps = {r[1]: r[2] for r in rows if r[0] == "bare SDK"}
    for name, c, rps, ideal, cpu, n in rows:
        vs_bare = f"{rps / bare_rps[c]:.2f}" if c in bare_rps else "-"
        print(f"| {name} | {c} | {rps:.1f} | {ideal:.0f} | {rps / ideal:.2f} | {vs_bare} | "
              f"{rps / ref_rps:.1f}x | {1000 * cpu / n:.2f} |")
    post_cpu = {r[1]: r[4] / r[5] for r in rows if r[0] == "bare client.post"}
    print("\nengine CPU per request over chat.completions.create: " + ", ".join(
        f"C={r[1]}: {100 * (r[4] / r[5] / bare_cpu[r[1]] - 1):+.0f}%" for r in rows
        if r[0] == "engine"))
    print("engine CPU per request over the same client.post call (limiters, cache, token "
          "counting, parsing): " + ", ".join(
              f"C={r[1]}: {100 * (r[4] / r[5] / post_cpu[r[1]] - 1):+.0f}%" for r in rows
              if r[0] == "engine"))
    claim_us, put_us = cache_ops_us()
    print(f"reply cache per request (CPU): claim {claim_us:.0f} us, put {put_us:.0f} us")
    if args.json:
        Path(args.json).write_text(json.dumps(rows))


if __name__ == "__main__":
    main()
