"""Training throughput: ours (padding-free packing) against the reference recipes, same
model, data, batch and steps:

* padded:  every item padded to max length, no packing (the reference QLoRA script);
* longest: Stanford Alpaca's recipe, each batch padded to its longest item;
* grouped: the same with group_by_length (batches of similar lengths: little padding).

    python benchmarks/train_throughput.py            # CPU: LoRA on the embedded model
    python benchmarks/train_throughput.py --gpu      # random Llama-2-7B, quant=nf4 lora=paper
    python benchmarks/train_throughput.py --steps 20 --recipes longest,grouped,packed

Prints a markdown table: real (non-pad) tokens/s, seconds per step, peak memory (CPU: peak
resident set of a fresh worker process; GPU: torch peak allocated), the ratio of each
recipe's tokens/s to the strongest reference measured, and for the GPU case the projected
time for 9,229 items x 3 epochs. Each measurement runs in its own process so peak memory is
its own. By default the data is exactly steps + 1 batches, so every recipe trains one epoch
over the same items (group_by_length then sorts them all in one mega-batch); the first
(warm-up) step is not timed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# The paper's random 9k sample, else the Claude-selected items (what AlpaGasus trains on).
DATA = [ROOT.parent / "shared" / "data" / "alpaca" / name
        for name in ("random_9k.json", "claude_t45.json")]
PAPER_ITEMS, PAPER_EPOCHS = 9229, 3

# Llama-2-7B's architecture (config.json of meta-llama/Llama-2-7b-hf), written by hand: the
# hub is not needed and the weights are random, which does not change the speed.
LLAMA2_7B = dict(vocab_size=32000, hidden_size=4096, intermediate_size=11008,
                 num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=32,
                 max_position_embeddings=4096, rms_norm_eps=1e-5, rope_theta=10000.0,
                 tie_word_embeddings=False, bos_token_id=1, eos_token_id=2)


def load_items(limit: int):
    from alpagasus.config import DataConfig
    from alpagasus.data import Item
    from alpagasus.data import load_items as load_demo

    for path in DATA:
        if path.is_file():
            rows = json.loads(path.read_text())[:limit]
            return [Item(r["instruction"], r.get("input") or "", r["output"]) for r in rows], path.name
    return load_demo(DataConfig(name="demo", source="demo"))[:limit], "demo"


def random_llama2_7b(folder: Path, tok) -> str:
    """Save a randomly initialised Llama-2-7B once (bf16, ~13 GB) so it loads like a real one."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    arch = dict(LLAMA2_7B)
    if os.environ.get("BENCH_DRY_RUN"):  # exercise this path on CPU with a tiny stand-in
        arch.update(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                    num_attention_heads=4, num_key_value_heads=4)
        folder = folder.with_name(folder.name + "-dry-run")
    if (folder / "config.json").is_file():
        return str(folder)
    config = LlamaConfig(**arch)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return str(folder)


def step_timer():
    """A callback timing every step after the first (wall and process CPU time), and the
    real tokens they processed. CPU time holds up on a shared machine, where wall time
    measures the neighbours too (run with --threads 1 so no thread spins waiting)."""
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        t0 = t1 = cpu0 = cpu1 = tokens0 = tokens1 = 0

        def on_step_end(self, args, state, control, **kwargs):
            now, cpu, seen = time.perf_counter(), time.process_time(), int(state.num_input_tokens_seen)
            if state.global_step == 1:
                self.t0, self.cpu0, self.tokens0 = now, cpu, seen
            self.t1, self.cpu1, self.tokens1 = now, cpu, seen

    return StepTimer()


class CountingCollator:
    """Counts the real tokens and the slots (real + padding) of every batch it builds."""

    def __init__(self, collate):
        self.collate, self.real, self.slots = collate, 0, 0

    def __call__(self, features):
        batch = self.collate(features)
        self.real += sum(len(f["input_ids"]) for f in features)
        self.slots += batch["input_ids"].numel()
        return batch


RECIPES = {
    "padded": "reference QLoRA script: every item padded to max length",
    "longest": "Stanford Alpaca: each batch padded to its longest item",
    "grouped": "Stanford Alpaca + group_by_length",
    "packed": "ours: padding-free packing",
}
REFERENCES = ("padded", "longest", "grouped")


def collator_for(recipe: str, tok, max_length: int):
    from transformers import DataCollatorForSeq2Seq

    from alpagasus.stages.train import make_collator

    if recipe == "padded":  # the reference QLoRA script: every sequence padded to max length
        return DataCollatorForSeq2Seq(tok, padding="max_length", max_length=max_length,
                                      label_pad_token_id=-100)
    # longest/grouped: Stanford Alpaca's DataCollatorForSupervisedDataset pads to the longest
    # item of the batch, which is our packing=false collator
    return make_collator(tok, packing=recipe == "packed")


def worker(recipe: str, model: str, steps: int, batch: int, max_length: int, limit: int,
           grad_ckpt: bool) -> dict:
    import torch
    from datasets import Dataset
    from hydra import compose, initialize_config_dir
    from transformers import Trainer

    from alpagasus.main import CONF_DIR
    from alpagasus.models import load_tokenizer, resolve_model_path
    from alpagasus.stages.train import load_trainable_model, tokenize_item, training_arguments
    from alpagasus.training import ThroughputCallback

    cache = Path(os.environ.get("ALPAGASUS_CACHE", "~/.cache/alpagasus")).expanduser()
    tok = load_tokenizer(resolve_model_path("embedded:smollm2", cache))
    overrides = ["lora=paper", "train=smoke", f"train.max_steps={steps + 1}",
                 f"train.per_device_batch_size={batch}", f"train.effective_batch_size={batch}",
                 f"train.max_length={max_length}", f"train.packing={recipe == 'packed'}",
                 f"train.gradient_checkpointing={grad_ckpt}", "train.save_steps=100000",
                 "train.logging_steps=100000", "train.learning_rate=2e-5"]
    if model == "llama2-7b":
        path = random_llama2_7b(cache / "bench" / "llama2-7b-random", tok)
        overrides += ["quant=nf4", f"model.name_or_path={path}", "model.context_length=4096"]
    else:
        path = resolve_model_path("embedded:smollm2", cache)
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)

    items, source = load_items(limit)
    examples = [ex for it in items if (ex := tokenize_item(tok, it, max_length))]
    if model == "llama2-7b":  # keep Llama-2's 32k vocabulary: fold our tokenizer's ids into it
        vocab = LLAMA2_7B["vocab_size"]
        examples = [{"input_ids": [i % vocab for i in ex["input_ids"]],
                     "labels": [i if i == -100 else i % vocab for i in ex["labels"]]}
                    for ex in examples]
    mean_len = sum(len(ex["input_ids"]) for ex in examples) / len(examples)
    model_obj = load_trainable_model(cfg, path)
    if grad_ckpt and cfg.quant.mode == "none":
        model_obj.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model_obj.enable_input_require_grads()
    collator = CountingCollator(collator_for(recipe, tok, max_length))
    workdir = Path(os.environ.get("TMPDIR", "/tmp")) / f"alpagasus-bench-{os.getpid()}"
    args = training_arguments(cfg, workdir, report_to=[])
    args.save_strategy = "no"
    if recipe == "grouped":  # transformers' LengthGroupedSampler (Trainer group_by_length)
        args.train_sampling_strategy = "group_by_length"
    timer = step_timer()
    trainer = Trainer(model=model_obj, args=args, train_dataset=Dataset.from_list(examples),
                      data_collator=collator, processing_class=tok, callbacks=[timer])
    trainer.train()
    seconds, cpu_seconds = timer.t1 - timer.t0, timer.cpu1 - timer.cpu0
    tokens = timer.tokens1 - timer.tokens0
    return {
        "recipe": recipe, "model": model, "data": source, "items": len(examples),
        "steps": steps, "batch": batch,
        "max_length": max_length, "mean_item_tokens": round(mean_len, 1),
        "real_tokens": tokens, "seconds": round(seconds, 2),
        "tokens_per_s": round(tokens / seconds, 1), "s_per_step": round(seconds / steps, 2),
        "cpu_seconds": round(cpu_seconds, 2), "tokens_per_cpu_s": round(tokens / cpu_seconds, 1),
        "padding": round(1 - collator.real / collator.slots, 3),
        "peak_memory_gib": ThroughputCallback.peak_memory_gib(),
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "threads": torch.get_num_threads(),
    }


def measure(recipe: str, model: str, a: argparse.Namespace) -> dict:
    limit = a.limit or (a.steps + 1) * a.batch
    env = dict(os.environ)
    if a.threads:
        env["OMP_NUM_THREADS"] = str(a.threads)
    cmd = [sys.executable, __file__, "--worker", recipe, "--model", model,
           "--steps", str(a.steps), "--batch", str(a.batch), "--max-length", str(a.max_length),
           "--limit", str(limit)] + (["--grad-ckpt"] if a.grad_ckpt else [])
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode:
        sys.exit(f"{recipe} failed:\n{out.stderr[-4000:]}")
    row = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"{recipe}: {row['tokens_per_s']} tokens/s, {row['s_per_step']} s/step",
          file=sys.stderr)
    return row


def table(rows: list[dict], projected: bool) -> str:
    """One row per recipe; the last column divides by the strongest reference measured."""
    refs = [r for r in rows if r["recipe"] in REFERENCES]
    best = {k: max(refs, key=lambda r: r[k]) for k in ("tokens_per_s", "tokens_per_cpu_s")
            } if refs else {}
    head = ("| recipe | padding | real tokens/s | s/step | real tokens/CPU-s | "
            "peak memory (GiB) |")
    sep = "|---|---:|---:|---:|---:|---:|"
    if best:
        head += (f" tokens/s vs best reference ({best['tokens_per_s']['recipe']}) | "
                 f"tokens/CPU-s vs best reference ({best['tokens_per_cpu_s']['recipe']}) |")
        sep += "---:|---:|"
    if projected:
        head += f" projected {PAPER_ITEMS:,} items x {PAPER_EPOCHS} epochs |"
        sep += "---:|"
    lines = [head, sep]
    for r in rows:
        line = (f"| {RECIPES[r['recipe']]} | {r['padding']:.0%} | {r['tokens_per_s']:,.0f} | "
                f"{r['s_per_step']} | {r['tokens_per_cpu_s']:,.0f} | {r['peak_memory_gib']:.2f} |")
        if best:
            line += "".join(f" {r[k] / best[k][k]:.2f}x |" for k in best)
        if projected:
            minutes = PAPER_ITEMS * PAPER_EPOCHS * r["mean_item_tokens"] / r["tokens_per_s"] / 60
            line += f" {minutes:,.1f} min |"
        lines.append(line)
    r = rows[0]
    return "\n".join(lines) + (
        f"\n\n{r['model']} on {r['device']} ({r['threads']} threads), data {r['data']} "
        f"({r['items']} items, mean {r['mean_item_tokens']} tokens/item), batch {r['batch']}, "
        f"max length {r['max_length']}, {r['steps']} timed steps")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--worker", choices=list(RECIPES))
    p.add_argument("--model", default="smollm2", choices=["smollm2", "llama2-7b"])
    p.add_argument("--gpu", action="store_true", help="also benchmark Llama-2-7B QLoRA on a GPU")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--batch", type=int, help="per step; default 8 on CPU, 16 (qlora_paper) on GPU")
    p.add_argument("--max-length", type=int, default=512)
    p.add_argument("--recipes", default=",".join(RECIPES),
                   help=f"comma-separated, of {', '.join(RECIPES)}")
    p.add_argument("--limit", type=int, help="items read; default (steps + 1) x batch: one epoch")
    p.add_argument("--grad-ckpt", action="store_true")
    p.add_argument("--threads", type=int, help="torch threads per worker (default: torch's)")
    a = p.parse_args()
    a.batch = a.batch or (16 if a.gpu else 8)
    recipes = a.recipes.split(",")
    if unknown := [r for r in recipes if r not in RECIPES]:
        p.error(f"unknown recipes {unknown}: choose from {', '.join(RECIPES)}")
    if a.worker:
        print(json.dumps(worker(a.worker, a.model, a.steps, a.batch, a.max_length, a.limit,
                                a.grad_ckpt)))
        return
    if a.gpu:
        import torch

        if not torch.cuda.is_available() and not os.environ.get("BENCH_DRY_RUN"):
            sys.exit("--gpu: no CUDA device")
        a.grad_ckpt = True  # as train=qlora_paper: activations of 7B do not fit otherwise
        rows = [measure(r, "llama2-7b", a) for r in recipes]
        print("## Llama-2-7B (random weights), quant=nf4 lora=paper\n")
        print(table(rows, projected=True) + "\n")
        return
    rows = [measure(r, a.model, a) for r in recipes]
    print(f"## {a.model}, lora=paper, CPU\n")
    print(table(rows, projected=False))


if __name__ == "__main__":
    main()
