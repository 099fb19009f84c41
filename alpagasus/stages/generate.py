"""Stage `generate`: an arm's trained model answers every test prompt (Alpaca format, greedy).

Prompts with an input (208 of Self-Instruct's 252) use the Alpaca with-input template, as the
reference generation script does. Answers stop at EOS or at the template's own section
headers ("\n### Instruction", "\n### Input", "\n### Response": Alpaca-trained models go on
to invent the next example); a markdown "### Heading" inside an answer is content and kept.

Generators (the `generator` group, a registry below): `hf`, transformers generate() over
length-sorted batches (prompts of similar length together, so little padding), and `vllm`
on GPU machines (optional extra, import-guarded; a LoRA arm is the base plus its adapter).

Resumable: answers are appended to answers.partial.jsonl in the artifact's partial folder as
each batch finishes; a rerun after a crash or Ctrl-C generates only the prompts without an
answer. When every prompt has one, answers.jsonl is written in test-set order and the
artifact is sealed (renamed into place).

Output: answers.jsonl, one line per prompt: {"testset", "id", "category", "prompt", "input",
"answer"}.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from alpagasus.arms import Arm
from alpagasus.artifacts import Artifact, ArtifactStore
from alpagasus.config import GenerateConfig, GeneratorBackend, GeneratorConfig
from alpagasus.context import RunContext
from alpagasus.data import TestPrompt
from alpagasus.models import load_for_inference, load_tokenizer
from alpagasus.prompts import alpaca_prompt

log = logging.getLogger(__name__)

ANSWERS = "answers.jsonl"
PARTIAL = "answers.partial.jsonl"  # in the partial folder only: what a rerun resumes from


class GeneratorError(RuntimeError):
    """A generator that cannot run on this machine (vllm missing, no GPU)."""


@dataclass(frozen=True)
class ModelSource:
    """Where the weights are: a base model and optionally a LoRA adapter on it."""

    base: str
    adapter: str | None
    tokenizer: str


class Generator(Protocol):
    def generate(self, prompts: list[str], max_new_tokens: int, temperature: float,
                 stops: list[str]) -> list[str]: ...

    def close(self) -> None: ...


def cut_at_stop(text: str, stops: list[str]) -> str:
    """Cut at the first stop string. A stop that starts with a newline also matches at the
    very start of the answer (the model may open with "### Instruction:")."""
    cuts = [text.find(s) for s in stops if s in text]
    cuts += [0 for s in stops if s.startswith("\n") and text.startswith(s[1:])]
    return (text[: min(cuts)] if cuts else text).strip()


def length_sorted_batches(prompts: list[TestPrompt], indices: list[int],
                          batch_size: int) -> list[list[int]]:
    """Longest prompts first, so a batch holds prompts of similar length (little padding)
    and an out-of-memory error, if any, comes in the first batch."""
    order = sorted(indices, key=lambda i: -len(prompts[i].prompt) - len(prompts[i].input))
    return [order[s : s + batch_size] for s in range(0, len(order), batch_size)]


def answer_row(p: TestPrompt, answer: str) -> dict[str, Any]:
    return {"testset": p.testset, "id": p.id, "category": p.category, "prompt": p.prompt,
            "input": p.input, "answer": answer}


def read_partial(path: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """The answers a failed run left, by (testset, id). A process killed mid-write leaves a
    torn last line: it is dropped (that prompt is generated again) and the file rewritten
    without it, so the next append starts on a clean line."""
    if not path.is_file():
        return {}
    done: dict[tuple[str, str], dict[str, Any]] = {}
    lines = path.read_text(encoding="utf-8").splitlines()
    torn = False
    for n, line in enumerate(lines):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            if n == len(lines) - 1:
                torn = True
                break
            raise GeneratorError(f"{path}:{n + 1}: not JSON ({e.msg}); delete the file to "
                                 "generate every answer again") from e
        done[(row["testset"], row["id"])] = row
    if torn:
        log.warning("%s: dropping a torn last line (that prompt is generated again)", path)
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in done.values()),
                        encoding="utf-8")
    return done


def answer_prompts(prompts: list[TestPrompt], make_generator: Callable[[], Generator],
                   gen: GenerateConfig, chunk_size: int, workdir: Path,
                   desc: str = "generate") -> dict[str, Any]:
    """Answer every prompt that has no answer in ``workdir`` yet, appending as batches finish;
    then write answers.jsonl in test-set order. Returns the artifact's counts.

    ``make_generator`` is called only if something is left to generate.
    """
    from tqdm.auto import tqdm

    partial = workdir / PARTIAL
    done = read_partial(partial)
    todo = [i for i, p in enumerate(prompts) if (p.testset, p.id) not in done]
    resumed = len(prompts) - len(todo)
    if resumed:
        log.info("%s: resuming, %d of %d prompts already answered", desc, resumed, len(prompts))
    if todo:
        stops = list(gen.stop)
        generator = make_generator()
        try:
            with open(partial, "a", encoding="utf-8") as f, \
                    tqdm(total=len(prompts), initial=resumed, desc=desc, unit="prompt") as bar:
                for batch in length_sorted_batches(prompts, todo, chunk_size):
                    texts = [alpaca_prompt(prompts[i].prompt, prompts[i].input) for i in batch]
                    outputs = generator.generate(texts, gen.max_new_tokens, gen.temperature,
                                                 stops)
                    if len(outputs) != len(batch):
                        raise GeneratorError(f"the generator returned {len(outputs)} answers "
                                             f"for {len(batch)} prompts")
                    rows = [answer_row(prompts[i], cut_at_stop(text, stops))
                            for i, text in zip(batch, outputs, strict=True)]
                    # One write per batch, flushed: a crash loses at most the batch in flight.
                    f.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
                    f.flush()
                    os.fsync(f.fileno())
                    done.update({(r["testset"], r["id"]): r for r in rows})
                    bar.update(len(batch))
        finally:
            generator.close()
    answers = [done[(p.testset, p.id)] for p in prompts]
    tmp = workdir / f".{ANSWERS}.tmp"
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in answers),
                   encoding="utf-8")
    os.replace(tmp, workdir / ANSWERS)
    partial.unlink()
    empty = sum(1 for a in answers if not a["answer"])
    return {"prompts": len(answers), "generated": len(todo), "resumed": resumed,
            "empty_answers": empty,
            "mean_answer_chars": round(sum(len(a["answer"]) for a in answers) / len(answers), 1)}


# --- generators ---------------------------------------------------------------------------------


class HFGenerator:
    """A transformers model decoding one batch: left padding, KV cache, greedy unless
    temperature > 0, and each row dropped from the batch as soon as it ends.

    transformers' generate() keeps a finished row in the batch until the longest one ends:
    with Alpaca stop strings, answers of 20 and 1,000 tokens share a batch and half the
    compute goes to padding. Here a row leaves the batch (and the KV cache) at EOS or at a
    stop string, so a batch costs the sum of its answers' lengths, not the longest x rows.
    """

    def __init__(self, source: ModelSource, cfg: GeneratorConfig):
        self.tok = load_tokenizer(source.tokenizer)
        self.tok.padding_side = "left"
        self.model = load_for_inference(source.base, source.adapter)
        eos = self.model.generation_config.eos_token_id
        self.eos = {self.tok.eos_token_id, *(eos if isinstance(eos, list) else [eos])} - {None}

    def generate(self, prompts: list[str], max_new_tokens: int, temperature: float,
                 stops: list[str]) -> list[str]:
        import torch

        with torch.no_grad():
            return decode(self.model, self.tok, prompts, max_new_tokens, temperature, stops,
                          self.eos)

    def close(self) -> None:
        del self.model


def decode(model: Any, tok: Any, prompts: list[str], max_new_tokens: int, temperature: float,
           stops: list[str], eos: set[int]) -> list[str]:
    """Greedy (or temperature) decoding of a left-padded batch with a KV cache, dropping
    each row from the batch and the cache when it reaches EOS or ends with a stop string."""
    import torch

    enc = tok(prompts, return_tensors="pt", padding=True).to(model.device)
    mask = enc["attention_mask"]
    positions = (mask.long().cumsum(-1) - 1).clamp(min=0)
    out = model(input_ids=enc["input_ids"], attention_mask=mask, position_ids=positions,
                use_cache=True, logits_to_keep=1)
    cache, next_pos = out.past_key_values, positions[:, -1] + 1
    alive = list(range(len(prompts)))  # batch row -> prompt index
    tokens: list[list[int]] = [[] for _ in prompts]
    # A stop string spans a few tokens: the last `tail` decoded tokens always contain it.
    tail = max((len(tok(s, add_special_tokens=False)["input_ids"]) for s in stops), default=0) + 2
    for step in range(max_new_tokens):
        logits = out.logits[:, -1, :].float()
        if temperature > 0:
            chosen = torch.multinomial(torch.softmax(logits / temperature, -1), 1).squeeze(1)
        else:
            chosen = logits.argmax(-1)
        keep = []
        for row, token in enumerate(chosen.tolist()):
            i = alive[row]
            if token in eos:
                continue
            tokens[i].append(token)
            if stops and any(s in tok.decode(tokens[i][-tail:]) for s in stops):
                continue
            keep.append(row)
        if not keep or step == max_new_tokens - 1:
            break
        if len(keep) < len(alive):
            index = torch.tensor(keep, device=mask.device)
            cache.batch_select_indices(index)
            mask, next_pos, chosen = mask[index], next_pos[index], chosen[index]
            alive = [alive[row] for row in keep]
        mask = torch.cat([mask, mask.new_ones((len(alive), 1))], dim=1)
        out = model(input_ids=chosen[:, None], attention_mask=mask,
                    position_ids=next_pos[:, None], past_key_values=cache, use_cache=True)
        next_pos = next_pos + 1
    return [tok.decode(t, skip_special_tokens=True) for t in tokens]


class VLLMGenerator:
    """vLLM: continuous batching inside a call; a LoRA adapter is applied per request."""

    def __init__(self, source: ModelSource, cfg: GeneratorConfig):
        vllm = _import_vllm()
        kwargs: dict[str, Any] = {
            "model": source.base, "tokenizer": source.tokenizer,
            "tensor_parallel_size": cfg.tensor_parallel_size,
            "gpu_memory_utilization": cfg.gpu_memory_utilization, "dtype": cfg.dtype,
        }
        if cfg.max_model_len is not None:
            kwargs["max_model_len"] = cfg.max_model_len
        self.lora = None
        if source.adapter:
            rank = json.loads((Path(source.adapter) / "adapter_config.json").read_text())["r"]
            kwargs.update(enable_lora=True, max_lora_rank=max(8, rank), max_loras=1)
            from vllm.lora.request import LoRARequest

            self.lora = LoRARequest("arm", 1, source.adapter)
        self.vllm = vllm
        self.llm = vllm.LLM(**kwargs)

    def generate(self, prompts: list[str], max_new_tokens: int, temperature: float,
                 stops: list[str]) -> list[str]:
        params = self.vllm.SamplingParams(temperature=temperature, max_tokens=max_new_tokens,
                                          stop=stops or None)
        outputs = self.llm.generate(prompts, params, lora_request=self.lora, use_tqdm=False)
        return [o.outputs[0].text for o in outputs]

    def close(self) -> None:
        del self.llm


def _import_vllm():
    try:
        import vllm
    except ImportError as e:
        raise GeneratorError("generator=vllm needs the vllm package (GPU machines): "
                             "pip install 'alpagasus[vllm]'; or use generator=hf") from e
    return vllm


GENERATORS: dict[GeneratorBackend, Callable[[ModelSource, GeneratorConfig], Generator]] = {
    GeneratorBackend.hf: HFGenerator,
    GeneratorBackend.vllm: VLLMGenerator,
}


def preflight(cfg: Any) -> None:
    """Before any training: can the configured generator run on this machine?"""
    if GeneratorBackend(cfg.generator.backend) != GeneratorBackend.vllm:
        return
    if importlib.util.find_spec("vllm") is None:
        _import_vllm()
    import torch

    if not torch.cuda.is_available():
        raise GeneratorError("generator=vllm needs a CUDA GPU; use generator=hf on this machine")
    if cfg.generator.tensor_parallel_size > torch.cuda.device_count():
        raise GeneratorError(f"generator.tensor_parallel_size={cfg.generator.tensor_parallel_size}"
                             f" but this machine has {torch.cuda.device_count()} GPU(s)")


def generator_identity(cfg: GeneratorConfig) -> dict[str, Any] | None:
    """What of the generator changes the answers (artifact key); None for hf, so answers
    generated before the generator group existed keep their key."""
    backend = GeneratorBackend(cfg.backend)
    if backend == GeneratorBackend.hf:
        return None
    return {"backend": backend.value, "dtype": cfg.dtype, "max_model_len": cfg.max_model_len}


def answers_config(gen: GenerateConfig, generator: GeneratorConfig) -> dict[str, Any]:
    """The generate artifact's config (inputs: the model and test sets); stage=plan uses it."""
    config = _plain(gen)
    identity = generator_identity(generator)
    if identity is not None:
        config["generator"] = identity
    return config


def ensure_answers(store: ArtifactStore, prompts: list[TestPrompt], source: ModelSource,
                   gen: GenerateConfig, generator: GeneratorConfig, inputs: dict[str, str],
                   meta: dict[str, Any] | None = None, desc: str = "generate") -> Artifact:
    """The answers artifact for ``source`` on ``prompts``: reused, resumed or built."""
    config = answers_config(gen, generator)
    backend = GeneratorBackend(generator.backend)
    chunk = generator.chunk_size or gen.batch_size

    def build(workdir: Path) -> dict[str, Any]:
        return answer_prompts(prompts, lambda: GENERATORS[backend](source, generator), gen,
                              chunk, workdir, desc)

    return store.ensure("generate", config, inputs, build, resumable=True, meta=meta)


def _plain(node: Any) -> dict[str, Any]:
    """A config node (DictConfig or dataclass) as the plain dict artifact keys hash."""
    from omegaconf import OmegaConf

    if not OmegaConf.is_config(node):
        node = OmegaConf.structured(node)
    return OmegaConf.to_container(node, resolve=True, enum_to_str=True)  # type: ignore[return-value]


def run(ctx: RunContext, arm: Arm) -> Artifact:
    return ctx.once(f"generate/{arm.role}", lambda: _run(ctx, arm))


def _run(ctx: RunContext, arm: Arm) -> Artifact:
    # The one function-local import of a module of ours: stages.train imports torch and
    # transformers, and this module is imported at start-up for preflight(); like torch itself
    # (imported inside the functions that use it), training code loads when a model is needed.
    from alpagasus.stages import train

    trained = train.run(ctx, arm)
    base, adapter = train.model_location(trained, ctx.cache_dir)
    source = ModelSource(base=base, adapter=adapter,
                         tokenizer=base if adapter else str(trained.path / train.MODEL_DIR))
    artifact = ensure_answers(
        ctx.store, ctx.testsets, source, ctx.cfg.generate, ctx.cfg.generator,
        inputs={"model": trained.key, "testsets": ctx.testsets_key},
        meta={"arm": arm.describe()}, desc=f"generate ({arm.name})")
    return ctx.finish_stage(artifact, name=f"generate/{arm.name}")


def read_answers(artifact: Artifact) -> list[dict[str, Any]]:
    with open(artifact.path / ANSWERS) as f:
        return [json.loads(line) for line in f]
