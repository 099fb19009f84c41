"""Stage `generate`: an arm's trained model answers every test prompt (Alpaca format, greedy).

Prompts with an input (208 of Self-Instruct's 252) use the Alpaca with-input template, as the
reference generation script does. Answers stop at EOS or at the template's own section
headers ("\n### Instruction", "\n### Input", "\n### Response": Alpaca-trained models go on
to invent the next example); a markdown "### Heading" inside an answer is content and kept.

Output: answers.jsonl, one line per prompt: {"testset", "id", "category", "prompt", "input",
"answer"}.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from alpagasus.arms import Arm
from alpagasus.artifacts import Artifact
from alpagasus.context import RunContext
from alpagasus.models import load_for_inference, load_tokenizer
from alpagasus.prompts import alpaca_prompt
from alpagasus.stages import train

ANSWERS = "answers.jsonl"


def cut_at_stop(text: str, stops: list[str]) -> str:
    """Cut at the first stop string. A stop that starts with a newline also matches at the
    very start of the answer (the model may open with "### Instruction:")."""
    cuts = [text.find(s) for s in stops if s in text]
    cuts += [0 for s in stops if s.startswith("\n") and text.startswith(s[1:])]
    return (text[: min(cuts)] if cuts else text).strip()


def run(ctx: RunContext, arm: Arm) -> Artifact:
    return ctx.once(f"generate/{arm.role}", lambda: _run(ctx, arm))


def _run(ctx: RunContext, arm: Arm) -> Artifact:
    gen = ctx.cfg.generate
    trained = train.run(ctx, arm)
    prompts = ctx.testsets

    def build(workdir: Path) -> dict[str, Any]:
        base, adapter = train.model_location(trained, ctx.cache_dir)
        tok = load_tokenizer(base if adapter else str(trained.path / train.MODEL_DIR))
        tok.padding_side = "left"
        model = load_for_inference(base, adapter)
        answers = []
        order = sorted(range(len(prompts)),
                       key=lambda i: -len(prompts[i].prompt) - len(prompts[i].input))
        texts: dict[int, str] = {}
        with tqdm(total=len(order), desc=f"generate ({arm.name})", unit="prompt") as bar:
            for start in range(0, len(order), gen.batch_size):
                batch = order[start : start + gen.batch_size]
                texts_in = [alpaca_prompt(prompts[i].prompt, prompts[i].input) for i in batch]
                outputs = _generate(model, tok, texts_in,
                                    gen.max_new_tokens, gen.temperature, list(gen.stop))
                texts.update(zip(batch, outputs, strict=True))
                bar.update(len(batch))
        with open(workdir / ANSWERS, "w") as f:
            for i, p in enumerate(prompts):
                row = {"testset": p.testset, "id": p.id, "category": p.category,
                       "prompt": p.prompt, "input": p.input,
                       "answer": cut_at_stop(texts[i], list(gen.stop))}
                answers.append(row)
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        empty = sum(1 for a in answers if not a["answer"])
        return {"prompts": len(answers), "empty_answers": empty,
                "mean_answer_chars": round(sum(len(a["answer"]) for a in answers) / len(answers), 1)}

    config = {**ctx.section("generate")}
    inputs = {"model": trained.key, "testsets": ctx.testsets_key}
    artifact = ctx.store.ensure("generate", config, inputs, build, meta={"arm": arm.describe()})
    return ctx.finish_stage(artifact, name=f"generate/{arm.name}")


@torch.no_grad()
def _generate(model, tok, prompts: list[str], max_new_tokens: int, temperature: float,
              stops: list[str]) -> list[str]:
    enc = tok(prompts, return_tensors="pt", padding=True).to(model.device)
    sample = temperature > 0
    out = model.generate(
        **enc, max_new_tokens=max_new_tokens, do_sample=sample,
        temperature=temperature if sample else None, top_p=None, top_k=None,
        stop_strings=stops or None, tokenizer=tok, pad_token_id=tok.pad_token_id,
    )
    return tok.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)


def read_answers(artifact: Artifact) -> list[dict[str, Any]]:
    with open(artifact.path / ANSWERS) as f:
        return [json.loads(line) for line in f]
