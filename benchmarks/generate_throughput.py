"""Generation throughput: one prompt at a time (the reference script, gpt4life/alpagasus
generation/generation_v2.py, calls transformers' generate() per prompt) against our
length-sorted batches, decoded with finished rows dropped from the batch.

    python benchmarks/generate_throughput.py                      # embedded model, CPU
    python benchmarks/generate_throughput.py --per-set 8 --batch-sizes 8,16 --max-new-tokens 128

Same model, prompts (a few from each of the paper's four test sets in ../shared/data, else
the package's demo prompts), greedy decoding, max new tokens and stop strings; only the
batching differs. Also measured, to separate the gains: transformers' generate() on the same
length-sorted batches (finished rows stay in the batch until the longest ends), and our
decoder on batches in test-set order. Answer tokens: the tokens of
each final answer (cut at the stop strings), so padding and tokens generated past a stop
are not counted. One untimed warm-up call first (it builds the stop-string tables).
Prints a markdown table with wall time and process CPU time: on a machine shared with other
jobs, wall time follows their load, while with --threads 1 the CPU time is this work's own.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TESTSETS = ROOT.parent / "shared" / "data" / "testsets"
SETS = ("koala", "vicuna", "wizardlm", "sinstruct")


def load_prompts(per_set: int):
    from alpagasus.config import TestsetsConfig
    from alpagasus.data import load_testsets

    if TESTSETS.is_dir():
        files = {name: str(TESTSETS / f"{name}_test_set.jsonl") for name in SETS}
        return load_testsets(TestsetsConfig(name="paper", files=files, limit=per_set)), "paper"
    return load_testsets(TestsetsConfig(name="demo", files={"demo": "demo"})), "demo"


def hf_generate(model, tok):
    """transformers' generate(), as the reference script calls it (plus our stop strings)."""
    import torch

    def generate(texts, max_new_tokens, temperature, stops):
        enc = tok(texts, return_tensors="pt", padding=True).to(model.device)
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                 temperature=None, top_p=None, top_k=None,
                                 stop_strings=stops, tokenizer=tok,
                                 pad_token_id=tok.pad_token_id)
        return tok.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)

    return generate


def run_mode(generate, tok, prompts, batches, gen) -> dict:
    from alpagasus.prompts import alpaca_prompt
    from alpagasus.stages.generate import cut_at_stop

    stops = list(gen.stop)
    answers = {}
    started, cpu_started = time.perf_counter(), time.process_time()
    for batch in batches:
        texts = [alpaca_prompt(prompts[i].prompt, prompts[i].input) for i in batch]
        outs = generate(texts, gen.max_new_tokens, gen.temperature, stops)
        answers.update({i: cut_at_stop(o, stops) for i, o in zip(batch, outs, strict=True)})
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    tokens = sum(len(tok(a, add_special_tokens=False).input_ids) for a in answers.values())
    return {"seconds": seconds, "cpu": cpu, "tokens": tokens, "answers": answers}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="embedded:smollm2")
    parser.add_argument("--per-set", type=int, default=6, help="prompts from each test set")
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--batch-sizes", default="8,16")
    parser.add_argument("--skip-unsorted", action="store_true")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: torch's). On a CPU shared with other "
                             "jobs use 1: OpenMP threads spin at barriers when descheduled")
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    from alpagasus.config import GenerateConfig, GeneratorConfig
    from alpagasus.models import default_device, resolve_model_path
    from alpagasus.stages.generate import HFGenerator, ModelSource, length_sorted_batches

    path = resolve_model_path(args.model, Path("~/.cache/alpagasus").expanduser())
    prompts, source = load_prompts(args.per_set)
    gen = GenerateConfig(max_new_tokens=args.max_new_tokens)
    generator = HFGenerator(ModelSource(path, None, path), GeneratorConfig())
    tok = generator.tok
    everything = list(range(len(prompts)))
    reference = hf_generate(generator.model, tok)
    for warm_up in (generator.generate, reference):
        warm_up(["### Instruction:\nHi\n\n### Response:\n"] * 2, 4, 0.0, list(gen.stop))
    ours = generator.generate
    modes = [("one prompt at a time, generate() (reference)", 1, [[i] for i in everything],
              reference)]
    for b in (int(x) for x in args.batch_sizes.split(",")):
        by_length = length_sorted_batches(prompts, everything, b)
        modes.append(("generate(), length-sorted batches", b, by_length, reference))
        if not args.skip_unsorted:
            modes.append(("ours, batches in test-set order", b,
                          [everything[s : s + b] for s in range(0, len(everything), b)], ours))
        modes.append(("ours: length-sorted, finished rows dropped", b, by_length, ours))
    results = []
    for name, b, batches, generate in modes:
        r = run_mode(generate, tok, prompts, batches, gen)
        results.append((name, b, r))
        print(f"{name} b={b}: {r['tokens']} tokens in {r['seconds']:.1f} s", file=sys.stderr)

    base = results[0][2]
    device = default_device()
    print(f"\n{args.model} on {device} ({torch.get_num_threads()} threads), {len(prompts)} "
          f"prompts ({source}: {args.per_set} per set), greedy, max {args.max_new_tokens} "
          "new tokens, Alpaca stop strings\n")
    print("| mode | batch | answer tokens | wall s | tokens/s | speed-up | CPU s "
          "| tokens/CPU-s | speed-up (CPU) | answers as reference |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, b, r in results:
        rate, cpu_rate = r["tokens"] / r["seconds"], r["tokens"] / r["cpu"]
        same = sum(r["answers"][i] == base["answers"][i] for i in everything)
        print(f"| {name} | {b} | {r['tokens']} | {r['seconds']:.1f} | {rate:.1f} | "
              f"{rate / (base['tokens'] / base['seconds']):.2f}x | {r['cpu']:.1f} | "
              f"{cpu_rate:.1f} | {cpu_rate / (base['tokens'] / base['cpu']):.2f}x | "
              f"{same}/{len(prompts)} |")


if __name__ == "__main__":
    main()
