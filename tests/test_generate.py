"""Generation: stop strings, length-sorted batches, resuming after an interruption (a fake
generator, then the embedded model through the artifact store), and generator=vllm's
composition with a stand-in vllm module (no GPU here)."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest

from alpagasus.artifacts import ArtifactStore
from alpagasus.config import GenerateConfig, GeneratorConfig, to_object
from alpagasus.data import TestPrompt
from alpagasus.models import resolve_model_path
from alpagasus.stages import generate
from alpagasus.stages.generate import (
    PARTIAL,
    GeneratorError,
    ModelSource,
    answer_prompts,
    cut_at_stop,
    length_sorted_batches,
)

STOPS = ["\n### Instruction", "\n### Input", "\n### Response"]


def prompts(n: int) -> list[TestPrompt]:
    return [TestPrompt("vicuna" if i % 2 else "koala", str(i), "word " * (i % 5 + 1),
                       input="ctx" if i == 3 else "", category="generic" if i % 2 else None)
            for i in range(n)]


def test_cut_at_stop_keeps_markdown_headings():
    assert cut_at_stop("Paris.\n### Instruction:\nNext task", STOPS) == "Paris."
    assert cut_at_stop("### Response:\nx", STOPS) == ""  # opens with a template header
    assert cut_at_stop("Intro\n### Heading\nbody", STOPS) == "Intro\n### Heading\nbody"
    assert cut_at_stop("a\n### Input\nb\n### Instruction", STOPS) == "a"


def test_length_sorted_batches_cover_each_prompt_once_longest_first():
    ps = prompts(11)
    batches = length_sorted_batches(ps, list(range(11)), 4)
    assert [len(b) for b in batches] == [4, 4, 3]
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(11))
    lengths = [len(ps[i].prompt) + len(ps[i].input) for i in flat]
    assert lengths == sorted(lengths, reverse=True)


class Fake:
    """Answers "answer to <prompt>"; records what it was asked; can fail on call N."""

    def __init__(self, fail_on_call: int | None = None):
        self.calls: list[list[str]] = []
        self.fail_on_call = fail_on_call
        self.closed = False

    def generate(self, texts, max_new_tokens, temperature, stops):
        self.calls.append(texts)
        if self.fail_on_call is not None and len(self.calls) == self.fail_on_call:
            raise KeyboardInterrupt  # Ctrl-C mid-run
        return [f"answer {t.split('### Instruction:')[1].split()[0:2]}\n### Instruction: more"
                for t in texts]

    def close(self):
        self.closed = True


def test_an_interrupted_run_resumes_with_only_the_unanswered_prompts(tmp_path):
    ps, gen = prompts(10), GenerateConfig(max_new_tokens=8, batch_size=3)
    first = Fake(fail_on_call=2)
    with pytest.raises(KeyboardInterrupt):
        answer_prompts(ps, lambda: first, gen, 3, tmp_path)
    assert first.closed
    saved = [json.loads(x) for x in (tmp_path / PARTIAL).read_text().splitlines()]
    assert len(saved) == 3 and all(r["answer"].startswith("answer") for r in saved)
    assert not (tmp_path / generate.ANSWERS).exists()

    # A kill mid-write leaves a torn last line: dropped, that prompt generated again.
    with open(tmp_path / PARTIAL, "a") as f:
        f.write('{"testset": "koala", "id": "0", "ans')
    second = Fake()
    counts = answer_prompts(ps, lambda: second, gen, 3, tmp_path)
    asked = sum(len(c) for c in second.calls)
    assert asked == 7 and counts["generated"] == 7 and counts["resumed"] == 3
    assert not (tmp_path / PARTIAL).exists()
    rows = [json.loads(x) for x in (tmp_path / generate.ANSWERS).read_text().splitlines()]
    assert [(r["testset"], r["id"]) for r in rows] == [(p.testset, p.id) for p in ps]
    assert all("### Instruction" not in r["answer"] for r in rows)
    assert rows[3]["input"] == "ctx" and rows[1]["category"] == "generic"

    # Everything answered but not sealed (a crash right before publishing): no model needed.
    (tmp_path / PARTIAL).write_text("".join(json.dumps(r) + "\n" for r in rows))
    counts = answer_prompts(ps, lambda: pytest.fail("loaded a model for nothing"), gen, 3,
                            tmp_path)
    assert counts["generated"] == 0 and counts["resumed"] == 10


def test_the_stage_resumes_through_the_artifact_store_on_the_embedded_model(tmp_path,
                                                                            monkeypatch):
    """The real hf generator: interrupted after its first batch, the artifact is not
    published, its partial folder keeps the answers, and the rerun generates the rest."""
    base = resolve_model_path("embedded:smollm2", Path("~/.cache/alpagasus").expanduser())
    source = ModelSource(base=base, adapter=None, tokenizer=base)
    store, ps = ArtifactStore(tmp_path), prompts(5)
    gen, generator = GenerateConfig(max_new_tokens=6, batch_size=2), GeneratorConfig()
    real = generate.HFGenerator.generate
    asked: list[int] = []

    def counted(self, texts, *args):
        asked.append(len(texts))
        if fail[0] and len(asked) == 2:
            raise RuntimeError("killed")
        return real(self, texts, *args)

    monkeypatch.setattr(generate.HFGenerator, "generate", counted)
    fail = [True]
    with pytest.raises(RuntimeError, match="killed"):
        generate.ensure_answers(store, ps, source, gen, generator, {"model": "base"})
    assert not list((tmp_path / "generate").glob("*/manifest.json"))
    partial = list((tmp_path / "generate").glob(".partial-*"))
    assert len(partial) == 1 and len((partial[0] / PARTIAL).read_text().splitlines()) == 2

    fail[0], asked[:] = False, []
    artifact = generate.ensure_answers(store, ps, source, gen, generator, {"model": "base"})
    assert sum(asked) == 3 and artifact.counts["generated"] == 3
    assert artifact.counts["resumed"] == 2 and artifact.counts["prompts"] == 5
    assert len(generate.read_answers(artifact)) == 5
    assert not list((tmp_path / "generate").glob(".partial-*"))
    asked[:] = []
    again = generate.ensure_answers(store, ps, source, gen, generator, {"model": "base"})
    assert again.reused and asked == []


def test_dropping_finished_rows_decodes_what_transformers_generate_does():
    """Our decoder (rows leave the batch at EOS or a stop string) against transformers'
    generate() on the same left-padded batch, fp32, greedy: the same answers."""
    import torch

    from alpagasus.prompts import alpaca_prompt

    base = resolve_model_path("embedded:smollm2", Path("~/.cache/alpagasus").expanduser())
    hf = generate.HFGenerator(ModelSource(base, None, base), GeneratorConfig())
    hf.model.float()
    texts = [alpaca_prompt(q) for q in ("Name three colors.", "What is 2+2?",
                                        "Write a story about a cat who learns to fly.")]
    texts.append(alpaca_prompt("Rewrite the sentence.", "The cat sat on the mat."))
    tok = hf.tok
    enc = tok(texts, return_tensors="pt", padding=True)
    with torch.no_grad():
        out = hf.model.generate(**enc, max_new_tokens=24, do_sample=False, temperature=None,
                                top_p=None, top_k=None, stop_strings=STOPS, tokenizer=tok,
                                pad_token_id=tok.pad_token_id)
    expected = tok.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    ours = hf.generate(texts, 24, 0.0, STOPS)
    # Raw texts, before cut_at_stop: a row ends where generate() stops it (EOS or right
    # after a stop string), and the rows do not leak into each other.
    assert ours == expected
    assert len(set(ours)) == len(ours)


# --- generator=vllm ---------------------------------------------------------------------------


def test_vllm_composes_and_keys_answers_apart_from_hf(compose_cfg):
    cfg = compose_cfg("generator=vllm", "generator.tensor_parallel_size=4")
    typed = to_object(cfg).generator
    assert typed.backend == "vllm" and typed.tensor_parallel_size == 4
    assert typed.gpu_memory_utilization == 0.9 and typed.chunk_size == 512
    assert generate.generator_identity(typed)["backend"] == "vllm"
    assert generate.generator_identity(to_object(compose_cfg()).generator) is None


def test_vllm_missing_is_a_clear_error_before_anything_runs(compose_cfg, monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm -> ImportError
    monkeypatch.setattr(generate.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(GeneratorError, match=r"pip install 'alpagasus\[vllm\]'"):
        generate.preflight(compose_cfg("generator=vllm"))
    generate.preflight(compose_cfg())  # hf needs nothing


@pytest.fixture
def fake_vllm(monkeypatch):
    """A stand-in for the vllm package recording how it is driven."""
    seen: dict = {"generate": []}

    class LLM:
        def __init__(self, **kwargs):
            seen["llm"] = kwargs

        def generate(self, texts, params, lora_request=None, use_tqdm=True):
            seen["generate"].append((len(texts), params, lora_request))
            out = types.SimpleNamespace
            return [out(outputs=[out(text=f" vllm {n}\n### Instruction x")])
                    for n in range(len(texts))]

    class SamplingParams:
        def __init__(self, **kw):
            self.__dict__.update(kw)

    class LoRARequest:
        def __init__(self, name, ident, path):
            self.name, self.id, self.path = name, ident, path

    module = types.ModuleType("vllm")
    module.LLM, module.SamplingParams = LLM, SamplingParams
    lora = types.ModuleType("vllm.lora")
    request = types.ModuleType("vllm.lora.request")
    request.LoRARequest = LoRARequest
    for name, mod in (("vllm", module), ("vllm.lora", lora), ("vllm.lora.request", request)):
        monkeypatch.setitem(sys.modules, name, mod)
    return seen


def test_vllm_generator_serves_the_lora_arm_in_chunks(tmp_path, fake_vllm):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"r": 16}))
    cfg = GeneratorConfig(name="vllm", backend="vllm", chunk_size=4, tensor_parallel_size=2,
                          max_model_len=2048)
    source = ModelSource(base="/models/llama-7b", adapter=str(adapter), tokenizer="/models/llama-7b")
    gen = GenerateConfig(max_new_tokens=32, batch_size=8)
    counts = answer_prompts(prompts(10), lambda: generate.GENERATORS["vllm"](source, cfg), gen,
                            cfg.chunk_size, tmp_path)
    llm = fake_vllm["llm"]
    assert llm["model"] == "/models/llama-7b"
    assert (llm["tensor_parallel_size"], llm["max_model_len"], llm["gpu_memory_utilization"]) \
        == (2, 2048, 0.9)
    assert llm["enable_lora"] and llm["max_lora_rank"] == 16
    calls = fake_vllm["generate"]
    assert [n for n, _, _ in calls] == [4, 4, 2]  # one call per chunk, saved after each
    params, lora = calls[0][1], calls[0][2]
    assert (params.temperature, params.max_tokens, params.stop) == (0.0, 32, STOPS)
    assert lora.path == str(adapter)
    rows = [json.loads(x) for x in (tmp_path / generate.ANSWERS).read_text().splitlines()]
    assert counts["prompts"] == 10 and all(r["answer"].startswith("vllm") for r in rows)
    assert all("###" not in r["answer"] for r in rows)
