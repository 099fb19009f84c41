"""MT-Bench's answers: the Alpaca multi-turn prompt, FastChat's per-category temperatures, and
both turns of every question generated with the arm's model."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from tqdm.auto import tqdm

from alpagasus.config import ConfigError
from alpagasus.data import fingerprint
from alpagasus.evals import ModelRef
from alpagasus.evals.mt_bench.files import TURNS, Question
from alpagasus.prompts import alpaca_prompt
from alpagasus.stages.generate import HFGenerator, cut_at_stop
from alpagasus.stages.generate import ModelSource as Source

# FastChat's temperature_config (fastchat/llm_judge/common.py); gen_model_answer.py samples a
# category it does not list at 0.7, and decodes greedily below 1e-4.
FASTCHAT_TEMPERATURES = {"writing": 0.7, "roleplay": 0.7, "extraction": 0.0, "math": 0.0,
                         "coding": 0.0, "reasoning": 0.0, "stem": 0.1, "humanities": 0.1}
FASTCHAT_OTHER_TEMPERATURE = 0.7
# Bumped when the conversation format or the rating parser changes what is stored.
CONVERSATION_FORMAT = "alpaca-multi-turn-v1"


def conversation_prompt(turns: Sequence[str], answers: Sequence[str]) -> str:
    """The prompt for the last of ``turns``: each earlier turn with the model's own answer,
    all in the Alpaca format it was trained on."""
    if len(answers) != len(turns) - 1:
        raise ValueError(f"{len(turns)} turns need {len(turns) - 1} earlier answers")
    text = alpaca_prompt(turns[0])
    for answer, turn in zip(answers, turns[1:], strict=True):
        text += f"{answer}\n\n### Instruction:\n{turn}\n\n### Response:\n"
    return text


def question_temperature(category: str, sampling: Any) -> float:
    """The temperature a question of ``category`` is answered at: FastChat's for it
    (``sampling=fastchat``), or 0 (``greedy``)."""
    mode = getattr(sampling, "value", sampling)
    if mode == "greedy":
        return 0.0
    if mode == "fastchat":
        return FASTCHAT_TEMPERATURES.get(category, FASTCHAT_OTHER_TEMPERATURE)
    raise ConfigError(f"benchmark.sampling={mode}: fastchat or greedy")


def sampling_settings(questions: Sequence[Question], sampling: Any, seed: int) -> dict[str, Any]:
    """How the answers are decoded, as it enters their key and the report: the mode, the
    temperature of each category asked, and the seed (only when something is sampled)."""
    temps = {q.category: question_temperature(q.category, sampling) for q in questions}
    sampled = any(t > 0 for t in temps.values())
    return {"mode": getattr(sampling, "value", sampling),
            "temperatures": dict(sorted(temps.items())), "seed": int(seed) if sampled else None}


def describe_sampling(settings: dict[str, Any]) -> str:
    """One line for the report: which decoding produced the answers."""
    temps = settings["temperatures"]
    if settings["mode"] == "greedy" or not any(t > 0 for t in temps.values()):
        return f"Answers: greedy decoding (temperature 0), sampling={settings['mode']}."
    by_t: dict[float, list[str]] = defaultdict(list)
    for category, t in temps.items():
        by_t[t].append(category)
    parts = "; ".join(f"{', '.join(cats)} {t:g}" for t, cats in sorted(by_t.items(),
                                                                      reverse=True))
    return (f"Answers: FastChat's per-category temperatures ({parts}; 0 = greedy), "
            f"seed {settings['seed']}.")


def batch_seed(seed: int, turn: int, temperature: float, start: int) -> int:
    """The torch seed of one sampled batch: its own draw, the same on every rerun."""
    digest = fingerprint([{"seed": seed, "turn": turn, "temperature": temperature,
                           "start": start}])
    return int(digest[:8], 16)


def answer_turns(generate: Any, questions: list[Question], temperatures: Sequence[float],
                 batch_size: int, seed: int, bar: Any = None) -> list[list[str]]:
    """Both turns of every question: all first turns, then all second turns, each batch of
    one temperature. ``generate(prompts, temperature, seed)`` returns the answers; ``seed``
    is None for greedy batches."""
    answers: list[list[str]] = [[] for _ in questions]
    for turn in range(TURNS):
        prompts = [conversation_prompt(q.turns[: turn + 1], answers[i])
                   for i, q in enumerate(questions)]
        groups: dict[float, list[int]] = defaultdict(list)
        for i, t in enumerate(temperatures):
            groups[float(t)].append(i)
        for t, members in sorted(groups.items()):
            order = sorted(members, key=lambda i: -len(prompts[i]))
            for start in range(0, len(order), batch_size):
                batch = order[start : start + batch_size]
                draw = batch_seed(seed, turn, t, start) if t > 0 else None
                outs = generate([prompts[i] for i in batch], t, draw)
                for i, out in zip(batch, outs, strict=True):
                    answers[i].append(out)
                if bar is not None:
                    bar.update(len(batch))
    return answers


def generate_answers(model: ModelRef, questions: list[Question], gen: Any,
                     max_new_tokens: int, desc: str, temperatures: Sequence[float],
                     seed: int) -> list[list[str]]:
    """Both turns of every question with the arm's model, each at its temperature."""
    import torch

    # The `generate` stage's decoder (rows leave the batch as they end); the base's tokenizer.
    generator = HFGenerator(Source(base=model.path, adapter=model.adapter,
                                   tokenizer=model.path), None)
    stops = list(gen.stop)

    def generate(prompts: list[str], temperature: float, draw: int | None) -> list[str]:
        if draw is not None:
            torch.manual_seed(draw)
        return [cut_at_stop(out, stops)
                for out in generator.generate(prompts, max_new_tokens, temperature, stops)]

    with tqdm(total=len(questions) * TURNS, desc=desc, unit="turn") as bar:
        return answer_turns(generate, questions, temperatures, gen.batch_size, seed, bar)
