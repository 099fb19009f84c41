"""The prepared GPU check: one short script to run when a CUDA machine is at hand.

    make gpu-check                                   # python benchmarks/gpu_check.py
    python benchmarks/gpu_check.py --steps 20 --json outputs/gpu_check.json
    python benchmarks/gpu_check.py --model /models/llama-2-7b    # a bigger model, if local

On the embedded model (SmolLM2-135M, no download) it runs, each on a model loaded fresh
from disk through the project's own loaders (alpagasus.stages.train.load_trainable_model):

* qlora_nf4: QLoRA (nf4, double quantization, bf16 compute, LoRA r=8 on q/v): train steps on
  a fixed batch; the loss must fall and the LoRA gradients must be non-zero. Training never
  reuses a model that has generated: a bitsandbytes 4-bit model that ran generate() first
  gets no LoRA gradients (alpagasus.training.GradientGuard), so generation comes last.
* full_bf16: full fine-tuning with fp32 master weights, bf16 autocast, AdamW.
* lora_packed / lora_padded: LoRA tokens/s (real tokens, padding excluded) with packed rows
  (flash-attn varlen when installed, else SDPA with position_ids) and with padded batches.
* generate_batched / generate_single: HF generate tokens/s, all prompts in one batch vs one
  at a time (greedy, every answer forced to the same length).
* vllm: vLLM generation tokens/s on the same prompts, when vllm is installed (own process).

For each check: steps, seconds, tokens/s, first and last loss, peak GPU memory
(torch.cuda.max_memory_allocated) and, when the planning estimators (alpagasus.planning)
are installed, the plan's peak memory for the same step. It prints a markdown table, writes
JSON (--json), and exits 1 if a check failed. Without CUDA it says "no CUDA device: skipped",
lists the checks, and exits 0 within seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHECKS = {
    "qlora_nf4": "QLoRA nf4 + LoRA r=8 q/v: train steps, loss falls, LoRA gradients non-zero",
    "full_bf16": "full fine-tune, fp32 master weights, bf16 autocast, AdamW: train steps",
    "lora_packed": "LoRA tokens/s, packed rows (flash-attn varlen if installed, else SDPA)",
    "lora_padded": "LoRA tokens/s, padded batches (the same items)",
    "generate_batched": "HF generate tokens/s, all prompts in one batch",
    "generate_single": "HF generate tokens/s, one prompt at a time",
    "vllm": "vLLM generate tokens/s (if vllm is installed)",
}
# The groups each training check composes (conf/), on top of train=smoke.
TRAIN_GROUPS = {
    "qlora_nf4": ["lora=paper", "quant=nf4"],
    "full_bf16": ["lora=none", "quant=none"],
    "lora_packed": ["lora=paper", "quant=none", "train.packing=true"],
    "lora_padded": ["lora=paper", "quant=none", "train.packing=false"],
}
LEARNING_RATE = {"qlora_nf4": 1e-3, "full_bf16": 1e-5, "lora_packed": 1e-3, "lora_padded": 1e-3}


def cuda_visible() -> bool:
    """Cheap first look, before importing torch (seconds on a busy machine): an NVIDIA
    driver device or nvidia-smi. torch.cuda.is_available() then decides."""
    return Path("/dev/nvidiactl").exists() or shutil.which("nvidia-smi") is not None


def skip_line() -> str:
    lines = ["no CUDA device: skipped. On a CUDA machine this runs:"]
    lines += [f"  {name}: {what}" for name, what in CHECKS.items()]
    return "\n".join(lines)


# --- inputs -------------------------------------------------------------------------------------


MAX_LENGTH = 512  # train.max_length of every training check (--max-length)


def compose(model: str, max_length: int, *overrides: str):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from alpagasus.main import CONF_DIR  # registers the resolvers the configs use

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return hydra_compose(config_name="config", overrides=[
            "model=smollm2", f"model.name_or_path={model}", "train=smoke",
            f"train.max_length={max_length}", *overrides])


def training_items(n: int):
    """The paper's random 9k Alpaca sample when ../shared/data has it, else the demo items."""
    from alpagasus.config import DataConfig
    from alpagasus.data import Item, load_items

    shared = ROOT.parent / "shared" / "data" / "alpaca" / "random_9k.json"
    if shared.is_file():
        rows = json.loads(shared.read_text())[:n]
        return [Item(r["instruction"], r.get("input") or "", r["output"]) for r in rows]
    items = load_items(DataConfig(name="demo", source="demo"))
    return (items * (n // len(items) + 1))[:n]


def batches(tok, items, batch_size: int, packing: bool, max_length: int) -> list[dict]:
    from alpagasus.stages.train import make_collator, tokenize_item

    examples = [ex for it in items if (ex := tokenize_item(tok, it, max_length))]
    collate = make_collator(tok, packing)
    out = []
    for i in range(0, len(examples) - batch_size + 1, batch_size):
        group = examples[i:i + batch_size]
        batch = {k: v for k, v in collate([dict(ex) for ex in group]).items()}
        batch["real_tokens"] = sum(len(ex["input_ids"]) for ex in group)
        out.append(batch)
    return out


# --- checks -------------------------------------------------------------------------------------


def device_peak_gib(device: str) -> float | None:
    import torch

    return round(torch.cuda.max_memory_allocated() / 2**30, 3) if device == "cuda" else None


def reset_peak(device: str) -> None:
    import gc

    import torch

    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def train_check(name: str, model_path: str, steps: int, device: str, fixed_batch: bool,
                max_length: int = MAX_LENGTH) -> dict:
    """``steps`` optimizer steps of one training method; the first step is warm-up (untimed)."""
    import torch

    from alpagasus.models import load_tokenizer
    from alpagasus.stages.train import load_trainable_model

    cfg = compose(model_path, max_length, *TRAIN_GROUPS[name])
    tok = load_tokenizer(model_path)
    data = batches(tok, training_items(4 * (steps + 1)), cfg.train.per_device_batch_size,
                   bool(cfg.train.packing), cfg.train.max_length)
    if fixed_batch:  # one batch again and again: a loss that must fall
        data = data[:1]
    reset_peak(device)
    # Fresh from disk, as training always does: never a model that has served generate().
    model = load_trainable_model(cfg, model_path)
    if not getattr(model, "hf_device_map", None):
        model.to(device)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=LEARNING_RATE[name])
    bf16 = device == "cuda" and torch.cuda.is_bf16_supported()
    losses, tokens, seconds, grads_ok = [], 0, 0.0, None
    for step in range(steps):
        batch = data[step % len(data)]
        inputs = {k: v.to(device) for k, v in batch.items() if k != "real_tokens"}
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=bf16):
            loss = model(**inputs).loss
        loss.backward()
        if step == 0:
            grads_ok = live_gradients(model)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device == "cuda":
            torch.cuda.synchronize()
        if step > 0:
            seconds += time.perf_counter() - start
            tokens += batch["real_tokens"]
        losses.append(float(loss.detach()))
    row = {"check": name, "steps": steps, "seconds": round(seconds, 3),
           "tokens_per_s": round(tokens / seconds, 1) if seconds else None,
           "first_loss": round(losses[0], 4), "last_loss": round(losses[-1], 4),
           "peak_gib": device_peak_gib(device),
           "plan_gib": plan_memory_gib(cfg, model_path, max(b["input_ids"].numel() for b in data)),
           "attn": getattr(model.config, "_attn_implementation", None)}
    problems = []
    if not grads_ok:
        problems.append("trainable tensors got no gradient")
    if fixed_batch and not losses[-1] < losses[0]:
        problems.append(f"loss did not fall ({losses[0]:.4f} -> {losses[-1]:.4f})")
    row["status"] = "FAILED: " + "; ".join(problems) if problems else "ok"
    del model, optimizer
    return row


def live_gradients(model) -> bool:
    """Some trainable tensor other than lora_A (zero at the first step, as lora_B starts at
    zero) has a non-zero gradient; none is missing."""
    import torch

    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if any(p.grad is None for _, p in params):
        return False
    return any("lora_A" not in n and bool(torch.any(p.grad != 0)) for n, p in params)


def plan_memory_gib(cfg, model_path: str, batch_tokens: int) -> float | None:
    """The planning estimators' peak memory for this step (None if they cannot say)."""
    from alpagasus.planning.architecture import arch_from_config
    from alpagasus.planning.fit import train_step

    try:
        config = json.loads((Path(model_path) / "config.json").read_text())
        arch = arch_from_config(config)
        if arch is None:
            return None
        step = train_step(arch, cfg, devices=1, gpu=True, batch_tokens=batch_tokens)
        return round(step.memory.total_gib, 3)
    except Exception as e:  # a changed estimator API must not cost the GPU run
        print(f"plan estimate unavailable: {type(e).__name__}: {e}", file=sys.stderr)
        return None


def prompts(n: int) -> list[str]:
    from alpagasus.prompts import alpaca_prompt

    return [alpaca_prompt(it.instruction, it.input) for it in training_items(n)]


def generate_checks(model_path: str, n_prompts: int, new_tokens: int, device: str) -> list[dict]:
    import torch

    from alpagasus.models import load_for_inference, load_tokenizer

    tok = load_tokenizer(model_path)
    tok.padding_side = "left"
    texts = prompts(n_prompts)
    reset_peak(device)
    model = load_for_inference(model_path)  # its own model: nothing trains after this
    rows = []
    for name, groups in (("generate_batched", [texts]),
                         ("generate_single", [[t] for t in texts[: max(2, n_prompts // 4)]])):
        tokens, start = 0, time.perf_counter()
        for group in groups:
            enc = tok(group, return_tensors="pt", padding=True).to(device)
            with torch.no_grad():
                out = model.generate(**enc, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                                     do_sample=False, pad_token_id=tok.pad_token_id)
            tokens += (out.shape[1] - enc["input_ids"].shape[1]) * len(group)
        if device == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        rows.append({"check": name, "steps": len(groups), "seconds": round(seconds, 3),
                     "tokens_per_s": round(tokens / seconds, 1), "peak_gib": device_peak_gib(device),
                     "status": "ok"})
    return rows


def vllm_check(model_path: str, n_prompts: int, new_tokens: int, timeout_s: int) -> dict:
    """vLLM in its own process (its engine takes the GPU memory it is given, and a hang or
    crash there must not lose the other rows)."""
    import importlib.util

    row: dict[str, Any] = {"check": "vllm"}
    if importlib.util.find_spec("vllm") is None:
        return {**row, "status": "skipped: vllm not installed"}
    cmd = [sys.executable, __file__, "--vllm-child", model_path, "--prompts", str(n_prompts),
           "--new-tokens", str(new_tokens)]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {**row, "status": f"FAILED: no result in {timeout_s} s"}
    result = next((line for line in reversed(out.stdout.splitlines()) if line.startswith("{")),
                  None)
    if out.returncode != 0 or result is None:
        return {**row, "status": f"FAILED: {out.stderr.strip().splitlines()[-1:]}"}
    return {**row, **json.loads(result), "status": "ok"}


def vllm_child(model_path: str, n_prompts: int, new_tokens: int) -> None:
    from vllm import LLM, SamplingParams

    llm = LLM(model=model_path, dtype="bfloat16", gpu_memory_utilization=0.4, enforce_eager=True)
    params = SamplingParams(temperature=0.0, max_tokens=new_tokens, ignore_eos=True)
    texts = prompts(n_prompts)
    start = time.perf_counter()
    outputs = llm.generate(texts, params)
    seconds = time.perf_counter() - start
    tokens = sum(len(o.outputs[0].token_ids) for o in outputs)
    print(json.dumps({"steps": 1, "seconds": round(seconds, 3),
                      "tokens_per_s": round(tokens / seconds, 1)}))


# --- the report ---------------------------------------------------------------------------------


COLUMNS = ("check", "status", "steps", "seconds", "tokens_per_s", "first_loss", "last_loss",
           "peak_gib", "plan_gib", "attn")


def table(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "|".join("---" for _ in COLUMNS) + "|"]
    for r in rows:
        lines.append("| " + " | ".join("" if r.get(c) is None else str(r[c]) for c in COLUMNS)
                     + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="embedded:smollm2",
                        help="a local HF folder or embedded:NAME (default: the embedded model)")
    parser.add_argument("--steps", type=int, default=12, help="optimizer steps per training check")
    parser.add_argument("--prompts", type=int, default=32, help="prompts per generation check")
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--json", type=Path, default=ROOT / "outputs" / "gpu_check.json")
    parser.add_argument("--max-length", type=int, default=MAX_LENGTH,
                        help="train.max_length of the training checks")
    parser.add_argument("--vllm-timeout", type=int, default=240)
    parser.add_argument("--cpu", action="store_true",
                        help="run the non-quantized checks on the CPU (slow; tests this script)")
    parser.add_argument("--vllm-child", metavar="MODEL", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.vllm_child:
        vllm_child(args.vllm_child, args.prompts, args.new_tokens)
        return 0

    if not args.cpu and not cuda_visible():
        print(skip_line())
        return 0
    import torch

    if not torch.cuda.is_available() and not args.cpu:
        print(skip_line())
        return 0
    from alpagasus.models import resolve_model_path

    device = "cuda" if torch.cuda.is_available() else "cpu"
    path = resolve_model_path(args.model, os.environ.get("ALPAGASUS_CACHE", "~/.cache/alpagasus"))
    gpu = torch.cuda.get_device_name(0) if device == "cuda" else "cpu"
    print(f"gpu check on {gpu}: model {args.model} ({path})", flush=True)
    started, rows = time.perf_counter(), []
    names = [n for n in TRAIN_GROUPS if device == "cuda" or n != "qlora_nf4"]
    for name in names:  # training first: no model here has generated
        try:
            rows.append(train_check(name, path, args.steps, device,
                                    fixed_batch=name in ("qlora_nf4", "full_bf16"),
                                    max_length=args.max_length))
        except Exception as e:
            rows.append({"check": name, "status": f"FAILED: {type(e).__name__}: {e}"[:300]})
        print(table(rows[-1:]).splitlines()[-1], flush=True)
    try:
        rows += generate_checks(path, args.prompts, args.new_tokens, device)
    except Exception as e:
        rows.append({"check": "generate", "status": f"FAILED: {type(e).__name__}: {e}"[:300]})
    if device == "cuda":
        rows.append(vllm_check(path, args.prompts, args.new_tokens, args.vllm_timeout))
    seconds = round(time.perf_counter() - started, 1)
    print(f"\n{gpu}, {args.model}, {seconds} s\n\n{table(rows)}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"device": gpu, "model": args.model, "model_path": path,
                                     "torch": torch.__version__, "seconds": seconds,
                                     "rows": rows}, indent=1))
    print(f"\njson: {args.json}")
    return 1 if any(str(r.get("status", "")).startswith("FAILED") for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
